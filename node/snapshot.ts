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
 * - `x86vm snapshot info FILE`.
 */
import { deflateRaw, inflateRaw, constants as zlibConstants } from 'node:zlib';
import { promisify } from 'node:util';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
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
  type Compressor,
  type ParsedSnapshot,
  type PcHostParts,
  type SnapshotRom,
} from '../core/snapshot';
import type { Pc } from '../core/pc';
import { ConsoleScript, compileExpect, ScriptError, type ScriptStep } from './expect';
import { VERSION, type RunOptions } from './options';

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
}

/** saves the running machine (between Machine.run calls) to `path` */
export async function saveRunSnapshot(
  path: string,
  pc: Pc,
  what: { roms: SnapshotRom[]; host: CliHostState; origin?: Record<string, string> },
): Promise<SaveResult> {
  const t0 = performance.now();
  await settleForSnapshot(pc.machine);
  let cap;
  try {
    cap = captureSnapshot({ pc, roms: what.roms, host: what.host, creator: `x86vm ${VERSION}`, origin: what.origin });
  } catch (e) {
    if (e instanceof SnapshotError) throw new SnapshotFileError(`cannot save snapshot '${path}': ${e.message}`);
    throw e;
  }
  const { parts, size } = await encodeSnapshot(cap, nodeCompressor());
  await writeFileAtomic(path, parts);
  return { path, bytes: size, ms: performance.now() - t0, instructions: cap.meta.instructions };
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

/**
 * Rebuilds the machine of `options.restore` with the host's sinks. Options that would build a different
 * machine are refused: a different --mem, --deterministic for a real-time snapshot, --no-reboot for one
 * saved without it, disks.
 */
export async function restoreRun(options: RunOptions, parts: PcHostParts): Promise<RestoredRun> {
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
  if (options.drives?.length) throw new SnapshotFileError(`${options.drives[0].source}: disks cannot be attached to a restored machine (snapshot '${file}')`);
  if (snap.meta.disks.length) throw new SnapshotFileError(`snapshot '${file}' has disks, which this x86vm cannot restore yet`);
  if (!!parts.debugcon && !c.debugcon) {
    throw new SnapshotFileError(`--debugcon: snapshot '${file}' was taken without a debug console (the restored machine has the same devices)`);
  }
  const compressor = nodeCompressor();
  try {
    const pc = await createPcFromSnapshot(snap, parts, compressor);
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
date, mode, RAM size, instruction count, guest time, the machine, and each section with its
stored size, size and CRC32. Every checksum is verified.

Exit status: 0 a valid snapshot, 2 bad usage or a file that is not a valid snapshot.
`;

function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

/** the text `x86vm snapshot info` prints */
export function formatSnapshotInfo(file: string, snap: ParsedSnapshot): string {
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
  if (m.disks.length) row('disks', m.disks.map((d) => d.path ?? d.id).join(', '));
  lines.push('sections:');
  lines.push(`  ${'name'.padEnd(12)}${'stored'.padStart(12)}${'size'.padStart(12)}  ${'crc32'.padEnd(10)}encoding`);
  for (const s of snap.sections) {
    const enc = [s.flags & SECTION_JSON ? 'JSON' : s.name === 'ram' ? 'page bitmap + deflated chunks' : 'binary'];
    if (s.flags & SECTION_DEFLATE) enc.push('deflated');
    if (s.flags & SECTION_OPTIONAL) enc.push('optional');
    lines.push(
      `  ${s.name.padEnd(12)}${size(s.storedLength).padStart(12)}${size(s.rawLength).padStart(12)}  ${s.crc.toString(16).padStart(8, '0').padEnd(10)}${enc.join(', ')}`,
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
    out(formatSnapshotInfo(rest[0], snap));
    return 0;
  } catch (e) {
    if (e instanceof SnapshotFileError) {
      err(`x86vm: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
