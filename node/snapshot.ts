/**
 * The Node side of snapshots (the format and the machine side are in core/snapshot.ts):
 * - zlib as the Compressor (raw DEFLATE, on Node's thread pool, so the RAM chunks compress in parallel);
 * - reading a snapshot file with one-line errors that name the file;
 * - writing one atomically: a temporary file in the target's directory, flushed to disk, then renamed
 *   over the target, so a crash leaves either the old file or the complete new one;
 * - rebuilding the machine for `x86vm run --restore FILE`, and what the CLI keeps in the snapshot's host
 *   section: the console script's progress (the steps still to play and the output since its last
 *   match) and the serial output the script had not seen yet, so a restored run goes on with the same
 *   script at the same points as an uninterrupted run;
 * - the machine's disks (below);
 * - `x86vm snapshot info FILE`.
 *
 * Disks. A snapshot records each drive (core/snapshot.ts DiskRef): controller and slot, media, format,
 * read-only, the image file as the user named it, and every file under it (the image, then the parents of
 * a differencing image) with its absolute path, its path relative to the snapshot's folder, its size and
 * the SHA-256 of its bytes. Saving settles the machine (every host I/O done), copies the in-memory
 * overlays of snapshot=on / --snapshot drives into "disk:ID" sections at the same instant as the RAM, then
 * flushes the directly-written images (fsync) and fingerprints the files, so a directly-written image on
 * disk is the disk as it was at the snapshot. Fingerprinting streams each file through SHA-256 once per
 * save: about 1.3–2 s per GiB here (page-cached file, 2 shared cores, ~0.8 GB/s SHA-256 with SHA-NI;
 * longer from a cold disk), and restoring checks each file again at the same cost. Files opened
 * read-only (overlay bases, CDs, parents) cannot be written while x86vm holds them, so their fingerprint
 * is made once per run and reused by later saves.
 *
 * Restoring finds each image relative to the snapshot's folder first (a VM folder moved or copied as a
 * whole restores with its own images), else at its absolute path, and refuses — one line naming the
 * snapshot, the drive and the problem, before anything is opened for writing — an image that is
 * missing, a different size, or whose bytes changed: "disk ide0 (disk.vhd) has changed since the
 * snapshot was taken". Then it opens the drives as they were (a snapshot=on drive stays snapshot=on;
 * `--restore F --snapshot` puts every drive behind an overlay so the images stay as they are and the
 * snapshot can be restored again), checks the parents a differencing image found and the formats, puts
 * the overlays back, and rebuilds the controllers in the same order, so the machine is the same one.
 * Drives on the command line are refused (the snapshot brings its own).
 *
 * A directly-written disk and Ctrl-A S (save and go on). The snapshot holds such a disk by reference: once
 * the guest writes it again the image no longer matches and that snapshot will not restore (restore
 * refuses it as changed; nothing is damaged). Keeping the guest's later writes in memory instead, to
 * commit them at the end, would leave writes the guest was told were durable (a FLUSH) in memory only,
 * and lose them on a crash — not a trade x86vm makes silently. So the save goes on as asked and says so:
 * the notice line names the directly-written disks ("restorable while the guest leaves them unwritten"),
 * and the guest's first write to one of them after the save prints a second notice that the snapshot is
 * now stale. For snapshots that stay restorable, run with --snapshot (or snapshot=on per drive): the
 * writes then travel in the snapshot's "disk:ID" sections, and --save-state (save and stop) is exact
 * with directly-written disks too, since nothing runs after it.
 */
import { deflateRaw, inflateRaw, constants as zlibConstants } from 'node:zlib';
import { promisify } from 'node:util';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import {
  captureSnapshot,
  settleForSnapshot,
  createPcFromSnapshot,
  encodeSnapshot,
  parseSnapshot,
  sectionBytes,
  sectionJson,
  findSection,
  SECTION_DEFLATE,
  SECTION_JSON,
  SECTION_OPTIONAL,
  SnapshotError,
  diskFileProblem,
  diskLabel,
  readDiskOverlay,
  type Compressor,
  type DiskRef,
  type FileFingerprint,
  type ParsedSnapshot,
  type PcHostParts,
  type SnapshotRom,
} from '../core/snapshot';
import type { Pc } from '../core/pc';
import { ConsoleScript, compileExpect, ScriptError, type ScriptStep } from './expect';
import { UsageError, VERSION, type RunOptions } from './options';
import { openDrives, type OpenDrive } from './attach-drives';
import type { DriveSpec } from './drives';

const deflateRawAsync = promisify(deflateRaw);
const inflateRawAsync = promisify(inflateRaw);

/** zlib at `level` (1: fastest; snapshots are dominated by RAM, which compresses well even so) */
export function nodeCompressor(level = 1): Compressor {
  return {
    async deflate(data) {
      const out = await deflateRawAsync(data, { level, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    },
    async inflate(data) {
      const out = await inflateRawAsync(data);
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    },
  };
}

/** a snapshot file problem; the message is one line naming the file */
export class SnapshotFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotFileError';
  }
}

function fsReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EROFS':
      return 'read-only file system';
    default:
      return err?.message ?? String(e);
  }
}

/** reads and checks a snapshot file (structure, version, every checksum) */
export async function readSnapshotFile(path: string): Promise<ParsedSnapshot> {
  let bytes: Uint8Array;
  try {
    const b = await readFile(path);
    bytes = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    throw new SnapshotFileError(`cannot read snapshot '${path}': ${fsReason(e)}`);
  }
  try {
    return parseSnapshot(bytes);
  } catch (e) {
    if (e instanceof SnapshotError) throw new SnapshotFileError(`snapshot '${path}': ${e.message}`);
    throw e;
  }
}

/**
 * Writes `parts` to `path` atomically: a temporary file next to it, fsync, rename over `path`, then an
 * fsync of the directory (best effort). On failure the temporary file is removed and `path` is untouched.
 */
export async function writeFileAtomic(path: string, parts: Uint8Array[]): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`);
  let fh: Awaited<ReturnType<typeof open>> | null = null;
  try {
    fh = await open(tmp, 'wx', 0o644);
    for (const p of parts) {
      let off = 0;
      while (off < p.length) {
        const { bytesWritten } = await fh.write(p, off, p.length - off);
        off += bytesWritten;
      }
    }
    await fh.sync();
    await fh.close();
    fh = null;
    await rename(tmp, path);
  } catch (e) {
    if (fh) await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw new SnapshotFileError(`cannot write snapshot '${path}': ${fsReason(e)}`);
  }
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // some file systems cannot fsync a directory; the rename itself is atomic
  }
}

// ---------------------------------------------------------------------------------------------------
// the CLI's host section

export type SavedStep = { kind: 'expect'; source: string } | { kind: 'send'; data: string };

/** what `x86vm run` keeps in a snapshot's host section */
export interface CliHostState {
  /** the console script still running when saved: its remaining steps and the output since its last match */
  script: { steps: SavedStep[]; buffer: string } | null;
  /** serial output (Latin-1) produced before the save that the script has not been shown yet */
  unfed: string;
}

/**
 * ConsoleScript (node/expect.ts) keeps its progress in plain fields; we read and set them here.
 * TODO(expect.ts owner): replace with ConsoleScript.saveState()/loadState().
 */
interface ScriptInternals {
  steps: ScriptStep[];
  next: number;
  buffer: string;
}

function internals(script: ConsoleScript): ScriptInternals {
  const s = script as unknown as ScriptInternals;
  if (!Array.isArray(s.steps) || typeof s.next !== 'number' || typeof s.buffer !== 'string') {
    throw new Error('ConsoleScript no longer has the fields snapshots read (node/snapshot.ts)');
  }
  return s;
}

/** the script's progress as plain data, or null when it has finished */
export function saveScript(script: ConsoleScript | null): CliHostState['script'] {
  if (!script || script.done) return null;
  const s = internals(script);
  const steps: SavedStep[] = s.steps
    .slice(s.next)
    .map((st) => (st.kind === 'expect' ? { kind: 'expect', source: st.source } : { kind: 'send', data: st.data }));
  return { steps, buffer: s.buffer };
}

/** the saved steps as ScriptSteps (the expects compiled again) */
export function savedSteps(saved: SavedStep[], file: string): ScriptStep[] {
  try {
    return saved.map((st) =>
      st.kind === 'expect'
        ? { kind: 'expect', re: compileExpect(String(st.source), `snapshot '${file}'`), source: String(st.source) }
        : { kind: 'send', data: String(st.data) },
    );
  } catch (e) {
    if (e instanceof ScriptError) throw new SnapshotFileError(e.message);
    throw e;
  }
}

/**
 * The console script of a run: the one on the command line (--expect/--send; after a restore it starts
 * from the output the saved script had not matched yet), else the saved one, continued exactly where it
 * was (it is not started again: its next step is an expect still waiting). `unfed` is the output the
 * saved run had not shown its script yet: the caller queues it before any new output.
 */
export function scriptForRun(
  options: RunOptions,
  saved: CliHostState | null,
  send: (bytes: Uint8Array) => void,
): { script: ConsoleScript | null; unfed: number[] } {
  let script: ConsoleScript | null = null;
  if (options.script.length) {
    script = new ConsoleScript(options.script, send);
    if (saved?.script) setScriptBuffer(script, saved.script.buffer);
    script.start();
  } else if (saved?.script) {
    script = new ConsoleScript(savedSteps(saved.script.steps, options.restore ?? ''), send);
    setScriptBuffer(script, saved.script.buffer);
  }
  return { script, unfed: saved ? latin1Bytes(saved.unfed) : [] };
}

/** gives a ConsoleScript the output it had seen since its last match (before the snapshot) */
export function setScriptBuffer(script: ConsoleScript, buffer: string): void {
  internals(script).buffer = buffer;
}

/** Latin-1 text of bytes, and back (serial output in JSON) */
export function latin1(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...Array.prototype.slice.call(bytes, i, Math.min(bytes.length, i + 8192)));
  }
  return s;
}

export function latin1Bytes(text: string): number[] {
  const out: number[] = new Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// saving and restoring a CLI run

export interface SaveResult {
  path: string;
  bytes: number;
  /** wall time of quiesce + capture + compression + write */
  ms: number;
  instructions: number;
  /** the directly-written disks the snapshot holds by reference, as "ide0 (disk.img)" */
  directDisks: string[];
}

/**
 * SHA-256 and size of a file, streamed in 4 MiB reads through one buffer (cost: see the file comment).
 * Throws a one-line Error naming the file.
 */
export async function fingerprintFile(path: string): Promise<FileFingerprint> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new Error(`cannot read '${path}': ${fsReason(e)}`);
  }
  try {
    const hash = createHash('sha256');
    const buf = new Uint8Array(4 << 20);
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, size);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { size, sha256: hash.digest('hex') };
  } catch (e) {
    throw new Error(`cannot read '${path}': ${fsReason(e)}`);
  } finally {
    await fh.close();
  }
}

/** the reference a drive starts from (files fingerprinted later) */
function driveRef(d: OpenDrive): DiskRef {
  const spec = d.spec;
  const ref: DiskRef = {
    id: d.id,
    controller: spec.interface,
    media: spec.media,
    file: d.file,
    format: d.image.format,
    readOnly: spec.readOnly,
    overlay: d.overlay !== null,
    sectors: d.dev.sectors,
    overlaySectors: 0,
    files: [],
  };
  if (spec.interface !== 'virtio-blk') ref.index = spec.index ?? 0;
  if (spec.format !== undefined) ref.formatOption = spec.format;
  return ref;
}

/**
 * Saves the running machine (between Machine.run calls) to `path`. With `drives`, the snapshot holds
 * them (see the file comment); `onStale`, for a save that lets the guest go on (Ctrl-A S), is told when
 * the guest first writes a directly-written disk afterwards.
 */
export async function saveRunSnapshot(
  path: string,
  pc: Pc,
  what: { roms: SnapshotRom[]; host: CliHostState; origin?: Record<string, string>; drives?: OpenDrive[]; onStale?: (text: string) => void },
): Promise<SaveResult> {
  const t0 = performance.now();
  const drives = what.drives ?? [];
  await settleForSnapshot(pc.machine);
  let cap;
  try {
    cap = captureSnapshot({
      pc,
      roms: what.roms,
      host: what.host,
      creator: `x86vm ${VERSION}`,
      origin: what.origin,
      disks: drives.map((d) => ({ ref: driveRef(d), overlay: d.overlay })),
    });
  } catch (e) {
    if (e instanceof SnapshotError) throw new SnapshotFileError(`cannot save snapshot '${path}': ${e.message}`);
    throw e;
  }
  // the directly-written images on disk become the disk at this instant: flush, then fingerprint
  const folder = dirname(resolve(path));
  for (let i = 0; i < drives.length; i++) {
    const d = drives[i];
    const ref = cap.meta.disks[i];
    try {
      if (!d.overlay && !d.image.readOnly) await d.image.flush();
      for (const file of d.files()) {
        let fp = d.fingerprints.get(file);
        if (!fp) {
          fp = await fingerprintFile(file);
          // a file open read-only (and locked) cannot change while this run holds it
          if (d.overlay || d.image.readOnly || file !== d.files()[0]) d.fingerprints.set(file, fp);
        }
        ref.files.push({ path: file, rel: relative(folder, file), size: fp.size, sha256: fp.sha256 });
      }
    } catch (e) {
      throw new SnapshotFileError(`cannot save snapshot '${path}': disk ${diskLabel(ref)}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const { parts, size } = await encodeSnapshot(cap, nodeCompressor());
  await writeFileAtomic(path, parts);
  const direct = drives.filter((d) => d.watch !== null);
  if (what.onStale) {
    for (const d of direct) {
      const label = diskLabel({ id: d.id, file: d.file });
      d.watch!.onWrite = () => what.onStale!(`x86vm: the guest wrote to disk ${label}: snapshot '${path}' will no longer restore (it holds that disk as it was when saved)`);
    }
  }
  return {
    path,
    bytes: size,
    ms: performance.now() - t0,
    instructions: cap.meta.instructions,
    directDisks: direct.map((d) => diskLabel({ id: d.id, file: d.file })),
  };
}

/** what a save that lets the guest go on adds to its notice line about directly-written disks ('' without) */
export function staleDiskNote(r: SaveResult): string {
  if (!r.directDisks.length) return '';
  const many = r.directDisks.length > 1;
  return `; it holds disk${many ? 's' : ''} ${r.directDisks.join(', ')} as written directly: restorable while the guest leaves ${many ? 'them' : 'it'} unwritten (--snapshot keeps disk writes in snapshots)`;
}

export interface RestoredRun {
  pc: Pc;
  /** the ROMs outside RAM (the BIOS), for the next snapshot */
  roms: SnapshotRom[];
  host: CliHostState | null;
  instructions: number;
  origin?: Record<string, string>;
  ms: number;
}

/** where a drive's file may be now: beside the snapshot (by its relative path), then where it was */
export function diskCandidates(snapshotFile: string, f: { path: string; rel?: string }): string[] {
  const out: string[] = [];
  if (f.rel !== undefined && !isAbsolute(f.rel)) out.push(resolve(dirname(resolve(snapshotFile)), f.rel));
  if (!out.includes(f.path)) out.push(f.path);
  return out;
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** the first candidate that exists, with its fingerprint, or null (missing) */
async function findDiskFile(snapshotFile: string, f: { path: string; rel?: string }): Promise<{ path: string; fp: FileFingerprint } | null> {
  for (const p of diskCandidates(snapshotFile, f)) {
    if (await isFile(p)) return { path: p, fp: await fingerprintFile(p) };
  }
  return null;
}

/**
 * Opens the drives of a snapshot as they were (see the file comment) into `drives` (the caller closes
 * them, also when this fails). Every image is found and fingerprinted before any is opened. Throws
 * SnapshotError with the reason.
 */
async function openSnapshotDrives(file: string, snap: ParsedSnapshot, allOverlay: boolean, drives: OpenDrive[], compressor: Compressor): Promise<void> {
  const refs = snap.meta.disks;
  const found: string[] = [];
  for (const ref of refs) {
    let hit: { path: string; fp: FileFingerprint } | null;
    try {
      hit = await findDiskFile(file, ref.files[0]);
    } catch (e) {
      throw new SnapshotError(`disk ${diskLabel(ref)}: ${(e as Error).message}`);
    }
    const where = `looked for ${diskCandidates(file, ref.files[0]).join(' and ')}`;
    const problem = diskFileProblem(ref, 0, hit?.fp ?? null, where);
    if (problem) throw new SnapshotError(problem);
    found.push(hit!.path);
  }
  const specs: DriveSpec[] = refs.map((ref, i) => ({
    file: found[i],
    interface: ref.controller,
    media: ref.media,
    format: ref.formatOption,
    readOnly: ref.readOnly,
    index: ref.index,
    snapshot: ref.overlay,
    source: `disk ${diskLabel(ref)}`,
  }));
  try {
    drives.push(...(await openDrives(specs, allOverlay, refs.map((r) => r.file))));
  } catch (e) {
    if (e instanceof UsageError) throw new SnapshotError(e.message);
    throw e;
  }
  for (let i = 0; i < refs.length; i++) {
    const ref = refs[i];
    const d = drives[i];
    if (d.id !== ref.id) throw new SnapshotError(`disk ${diskLabel(ref)} comes back as ${d.id} (corrupted disk list)`);
    if (d.image.format !== ref.format) throw new SnapshotError(`disk ${diskLabel(ref)} opens as a ${d.image.format} image, it was ${ref.format}`);
    if (d.dev.sectors !== ref.sectors) throw new SnapshotError(`disk ${diskLabel(ref)} holds ${d.dev.sectors} sectors, it held ${ref.sectors}`);
    // the parents a differencing image found now must be the ones it had
    const files = d.files();
    for (let k = 1; k < Math.max(files.length, ref.files.length); k++) {
      if (k >= files.length) throw new SnapshotError(`disk ${diskLabel(ref)}: its parent image '${ref.files[k].path}' is no longer used by it`);
      if (k >= ref.files.length) throw new SnapshotError(`disk ${diskLabel(ref)} now has a parent image '${files[k]}' it did not have`);
      let fp: FileFingerprint;
      try {
        fp = await fingerprintFile(files[k]);
      } catch (e) {
        throw new SnapshotError(`disk ${diskLabel(ref)}: ${(e as Error).message}`);
      }
      const problem = diskFileProblem(ref, k, fp);
      if (problem) throw new SnapshotError(problem);
      d.fingerprints.set(files[k], fp);
    }
    if (ref.overlay) {
      if (!d.overlay) throw new SnapshotError(`disk ${diskLabel(ref)}: no overlay to put its writes back into`);
      const runs = await readDiskOverlay(snap, ref.id, compressor);
      try {
        d.overlay.restore(runs);
      } catch (e) {
        throw new SnapshotError(`section 'disk:${ref.id}': ${(e as Error).message}`);
      }
    }
  }
}

/**
 * Rebuilds the machine of `options.restore` with the host's sinks, and its drives (opened into `drives`,
 * which the caller closes; `parts.devices` must attach `drives` to the PC where the saving run attached
 * its drives). Options that would build a different machine are refused: a different --mem,
 * --deterministic for a real-time snapshot, --no-reboot for one saved without it, drives.
 */
export async function restoreRun(options: RunOptions, parts: PcHostParts, drives: OpenDrive[] = []): Promise<RestoredRun> {
  const t0 = performance.now();
  const file = options.restore!;
  const snap = await readSnapshotFile(file);
  const c = snap.meta.config;
  const mib = (n: number): string => `${n / 1048576} MiB`;
  if (options.memExplicit && options.memSize !== c.memSize) {
    throw new SnapshotFileError(`--mem ${mib(options.memSize)} conflicts with snapshot '${file}', taken with ${mib(c.memSize)} of RAM (leave --mem out)`);
  }
  if (options.deterministic && !c.deterministic) {
    throw new SnapshotFileError(`--deterministic conflicts with snapshot '${file}', taken in real-time mode (a restored run keeps the mode it was saved in)`);
  }
  if (options.noReboot && !c.noReboot) {
    throw new SnapshotFileError(`--no-reboot conflicts with snapshot '${file}', taken without it`);
  }
  if (options.drives?.length) {
    throw new SnapshotFileError(`${options.drives[0].source} conflicts with snapshot '${file}', which brings its own disks (leave the drive options out)`);
  }
  if (!!parts.debugcon && !c.debugcon) {
    throw new SnapshotFileError(`--debugcon: snapshot '${file}' was taken without a debug console (the restored machine has the same devices)`);
  }
  const compressor = nodeCompressor();
  try {
    await openSnapshotDrives(file, snap, !!options.snapshot, drives, compressor);
    const pc = await createPcFromSnapshot(snap, { ...parts, disks: true }, compressor);
    const roms: SnapshotRom[] = [];
    for (const r of snap.meta.roms) roms.push({ name: r.name, base: r.base, data: (await sectionBytes(snap, `rom:${r.name}`, compressor)).slice() });
    const host = findSection(snap, 'host') ? ((await sectionJson(snap, 'host', compressor)) as CliHostState) : null;
    if (host !== null) {
      const ok = typeof host === 'object' && typeof host.unfed === 'string' &&
        (host.script === null || (typeof host.script === 'object' && Array.isArray(host.script.steps) && typeof host.script.buffer === 'string'));
      if (!ok) throw new SnapshotError(`the 'host' section is not an x86vm run state`);
      if (host.script) savedSteps(host.script.steps, file); // a bad expression fails here, with the file named
    }
    return { pc, roms, host, instructions: snap.meta.instructions, origin: snap.meta.origin, ms: performance.now() - t0 };
  } catch (e) {
    if (e instanceof SnapshotError) throw new SnapshotFileError(`snapshot '${file}': ${e.message}`);
    throw e;
  }
}

/** a new file name for an interactive snapshot, e.g. x86vm-20260101-120000.snap (not an existing file) */
export function interactiveSnapshotName(exists: (p: string) => boolean, now = new Date()): string {
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${p2(now.getMonth() + 1)}${p2(now.getDate())}-${p2(now.getHours())}${p2(now.getMinutes())}${p2(now.getSeconds())}`;
  let name = `x86vm-${stamp}.snap`;
  for (let i = 2; exists(name); i++) name = `x86vm-${stamp}-${i}.snap`;
  return name;
}

// ---------------------------------------------------------------------------------------------------
// x86vm snapshot info

export const SNAPSHOT_HELP = `Usage: x86vm snapshot info FILE

Shows what a snapshot (written by x86vm run --save-state, or Ctrl-A S) holds: format version,
date, mode, RAM size, instruction count, guest time, the machine, its drives (controller and
slot, image file, format, written directly or kept in an overlay in the snapshot, and whether
each image file still matches the fingerprint taken at the save: ok, CHANGED or MISSING, found
where --restore would look: beside the snapshot first, then where it was), and each section with
its stored size, size and CRC32. Every checksum is verified.

Exit status: 0 a valid snapshot, 2 bad usage or a file that is not a valid snapshot.
`;

function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

/** what `x86vm snapshot info` found for a drive's files now (index as in DiskRef.files) */
export type DiskFileStatus = { state: 'ok' | 'changed' | 'missing' | 'unreadable'; path?: string; why?: string };

const IDE_SLOTS = ['primary master', 'primary slave', 'secondary master', 'secondary slave'];

/** a drive's controller and slot in words: "IDE primary master", "virtio-scsi target 2", "virtio-blk" */
export function diskPlace(d: DiskRef): string {
  if (d.controller === 'ide') return `IDE ${IDE_SLOTS[d.index ?? 0]}`;
  if (d.controller === 'virtio-scsi') return `virtio-scsi target ${d.index ?? 0}`;
  return 'virtio-blk';
}

/** checks a snapshot's drive files as a restore would find them (info; never throws for a bad file) */
export async function diskStatuses(file: string, snap: ParsedSnapshot): Promise<Map<string, DiskFileStatus[]>> {
  const out = new Map<string, DiskFileStatus[]>();
  for (const d of snap.meta.disks) {
    const list: DiskFileStatus[] = [];
    for (let i = 0; i < d.files.length; i++) {
      try {
        const hit = await findDiskFile(file, d.files[i]);
        if (!hit) list.push({ state: 'missing', why: `looked for ${diskCandidates(file, d.files[i]).join(' and ')}` });
        else list.push({ state: diskFileProblem(d, i, hit.fp) ? 'changed' : 'ok', path: hit.path });
      } catch (e) {
        list.push({ state: 'unreadable', why: (e as Error).message });
      }
    }
    out.set(d.id, list);
  }
  return out;
}

/** the text `x86vm snapshot info` prints (the drives' fingerprints checked when `disks` is given) */
export function formatSnapshotInfo(file: string, snap: ParsedSnapshot, disks?: Map<string, DiskFileStatus[]>): string {
  const m = snap.meta;
  const c = m.config;
  const lines: string[] = [];
  const row = (k: string, v: string): void => {
    lines.push(`${(k + ':').padEnd(14)}${v}`);
  };
  row('file', `${file} (${size(snap.size)})`);
  row('format', `x86vm snapshot, version ${snap.version}`);
  row('created', `${m.created} by ${m.creator}`);
  row('mode', m.mode);
  row('memory', `${c.memSize / 1048576} MiB (${m.ram.nonZeroPages} of ${m.ram.pages} pages in use, ${size(m.ram.nonZeroPages * m.ram.pageSize)})`);
  row('instructions', String(m.instructions));
  row('guest time', `${(m.guestNs / 1e9).toFixed(9)} s`);
  const features = [c.apic ? 'APIC+IOAPIC' : '8259 PIC only', c.pci ? 'PCI+ACPI' : 'no PCI', c.noReboot ? 'no-reboot' : 'reboots', `TSC ${c.tscHz / 1e6} MHz`];
  row('machine', features.join(', '));
  row('devices', c.devices.join(' '));
  if (m.origin) row('booted from', Object.entries(m.origin).map(([k, v]) => `${k} ${v}`).join(', '));
  if (m.roms.length) row('ROMs', m.roms.map((r) => `${r.name} ${size(r.size)} at 0x${r.base.toString(16)}`).join(', '));
  if (m.disks.length) {
    lines.push('disks:');
    const w = Math.max(...m.disks.map((d) => d.id.length)) + 2;
    for (const d of m.disks) {
      const how = d.overlay
        ? `writes in the snapshot: overlay ${size(d.overlaySectors * 512)} (${d.overlaySectors} sectors)`
        : d.readOnly
          ? 'read-only'
          : 'written directly (the image holds the disk as saved)';
      lines.push(`  ${d.id.padEnd(w)}${diskPlace(d)} ${d.media}: ${d.file} (${d.format}, ${size(d.sectors * 512)}); ${how}`);
      d.files.forEach((f, i) => {
        const st = disks?.get(d.id)?.[i];
        const fp = `${size(f.size)}, sha256 ${f.sha256.slice(0, 16)}…`;
        const state = !st
          ? ''
          : st.state === 'ok'
            ? `: fingerprint ok${st.path !== f.path ? ` (found at ${st.path})` : ''}`
            : st.state === 'changed'
              ? `: CHANGED since the snapshot was taken (${st.path}); it will not restore`
              : st.state === 'missing'
                ? `: MISSING (${st.why}); it will not restore`
                : `: cannot check (${st.why})`;
        lines.push(`  ${''.padEnd(w)}${i === 0 ? 'image' : 'parent'} ${f.path} (${fp})${state}`);
      });
    }
  }
  lines.push('sections:');
  const nw = Math.max(12, ...snap.sections.map((s) => s.name.length + 2));
  lines.push(`  ${'name'.padEnd(nw)}${'stored'.padStart(12)}${'size'.padStart(12)}  ${'crc32'.padEnd(10)}encoding`);
  for (const s of snap.sections) {
    const enc = [s.flags & SECTION_JSON ? 'JSON' : s.name === 'ram' ? 'page bitmap + deflated chunks' : s.name.startsWith('disk:') ? 'disk overlay: span table + deflated chunks' : 'binary'];
    if (s.flags & SECTION_DEFLATE) enc.push('deflated');
    if (s.flags & SECTION_OPTIONAL) enc.push('optional');
    lines.push(
      `  ${s.name.padEnd(nw)}${size(s.storedLength).padStart(12)}${size(s.rawLength).padStart(12)}  ${s.crc.toString(16).padStart(8, '0').padEnd(10)}${enc.join(', ')}`,
    );
  }
  lines.push('all checksums verified');
  return lines.join('\n') + '\n';
}

/** `x86vm snapshot ARGS`: returns the exit status; output through the given writers */
export async function snapshotMain(
  argv: string[],
  out: (text: string) => void = (t) => void process.stdout.write(t),
  err: (text: string) => void = (t) => void process.stderr.write(t),
): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    (sub === undefined ? err : out)(SNAPSHOT_HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'info') {
    err(`x86vm: unknown snapshot command '${sub}' (x86vm snapshot --help)\n`);
    return 2;
  }
  if (rest.length !== 1 || rest[0].startsWith('-')) {
    if (rest[0] === '--help' || rest[0] === '-h') {
      out(SNAPSHOT_HELP);
      return 0;
    }
    err(`x86vm: snapshot info needs exactly one FILE (x86vm snapshot --help)\n`);
    return 2;
  }
  try {
    const snap = await readSnapshotFile(rest[0]);
    out(formatSnapshotInfo(rest[0], snap, await diskStatuses(rest[0], snap)));
    return 0;
  } catch (e) {
    if (e instanceof SnapshotFileError) {
      err(`x86vm: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
