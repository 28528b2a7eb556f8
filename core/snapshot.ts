/**
 * Whole-machine snapshots: the file format, saving a running Machine into it, and rebuilding the same
 * machine from it. Pure core code: no Node or DOM APIs. Compression is injected by the host through the
 * small `Compressor` interface (node/ uses zlib; a browser uses CompressionStream — see
 * `compressionStreamCompressor` below — and both read and write the same bytes: raw DEFLATE, RFC 1951).
 *
 * File layout (all integers little-endian; 64-bit lengths are two 32-bit words, low first):
 *
 *   header   magic "X86VMSNP" (8) · version u32 · section count u32 · file length u64 · CRC32 of the
 *            preceding 24 bytes u32                                                          = 28 bytes
 *   sections, each: name length u8 · name (ASCII) · flags u8 · stored length u64 · raw length u64 ·
 *            CRC32 u32 (over this section's header bytes before it, then its stored bytes) · data
 *
 * Section flags: 1 = DEFLATE-compressed, 2 = JSON text (UTF-8), 4 = optional (a reader that does not
 * know the section may skip it). Numbers in JSON sections go through a lossless encoding: -0, ±Infinity
 * and NaN, which JSON cannot hold, are written as {"$num": "-0"} etc.
 *
 *   meta      JSON: format, version, date, creator, mode, the machine configuration needed to build the
 *             same machine again (RAM size, APIC/PCI, deterministic, no-reboot, TSC rate, device list),
 *             instruction count, guest time, RAM statistics, ROM list, disk references
 *   cpu       JSON (deflated): Cpu.saveState() — registers, descriptor caches, MSRs, FPU, TLB, pending events
 *   machine   JSON (deflated): Machine.saveState() — the clock's time base, the A20 gate
 *   devices   JSON (deflated): [{ name, state }] for every machine.devices entry, in order
 *   memmap    binary (deflated): the physical page-kind table (RAM, ROM-in-RAM, MMIO, none), one byte a
 *             4 KiB page; checked against the rebuilt machine on restore
 *   ram       binary: page size u32 · page count u32 · pages per chunk u32 · chunk count u32 · a bitmap
 *             of the non-zero pages (bit p%8 of byte p/8) · chunk count × u32 compressed chunk sizes ·
 *             the chunks: the non-zero pages in order, `pages per chunk` at a time, each chunk deflated
 *             on its own (so hosts compress and inflate them in parallel). Zero pages take one bit.
 *   rom:NAME  binary (deflated): a ROM image mapped outside RAM (the BIOS at the top of 4 GiB); its
 *             address is in meta.roms. ROMs inside RAM (the BIOS window below 1 MiB) are in `ram`.
 *   host      JSON (deflated), optional: whatever the host wants back on restore (the console script's
 *             progress, for the CLI)
 *   disk:ID   binary, one per drive whose writes were kept in memory (a copy-on-write overlay: snapshot=on,
 *             --snapshot): sector size u32 (512) · span count u32 · sectors per chunk u32 · chunk count u32 ·
 *             span count × (first sector u64, sector count u32) · chunk count × u32 compressed chunk sizes ·
 *             the chunks: the written sectors' bytes in span order, `sectors per chunk` at a time (1 MiB),
 *             each deflated on its own, as the RAM chunks. Its raw length is the overlay's size in bytes.
 *
 * Disks. meta.disks has one DiskRef per drive, in the order the host attached them: its ID ("ide0"–"ide3"
 * by IDE slot, "virtio-blk0"… in attach order, "virtio-scsi0"… by target), controller, slot, media, the
 * image format, read-only, whether its writes were in an overlay, and its files — the image, then the
 * parents of a differencing image — each with its path (absolute, and relative to the snapshot file's
 * folder so a VM folder moved as a whole still restores), size and SHA-256 at save time. A drive written
 * directly holds no section: the host quiesced the machine and flushed the image before fingerprinting
 * it, so the file is the disk as it was at the snapshot. Restoring re-opens each file, refuses one whose
 * fingerprint differs (diskFileProblem below words it), and puts each overlay back before the machine
 * runs. Readers that predate disks refuse "disk:" sections ("disk overlays are not supported").
 *
 * Restoring: build the same machine (createPcFromSnapshot does this from meta.config, with the host's
 * sinks), map the saved ROMs, then load RAM, CPU, machine and devices. Nothing is re-loaded from the
 * original kernel or firmware files: what was loaded is in RAM.
 */
import type { Machine } from './machine';
import { createPc, type Pc, type PcDeviceFactory } from './pc';
import type { SerialSink } from './host';
import { PageKind } from './memory';

export const SNAPSHOT_MAGIC = 'X86VMSNP';
export const SNAPSHOT_VERSION = 1;
export const HEADER_SIZE = 28;
export const PAGE_SIZE = 4096;
/** non-zero RAM pages per compressed chunk (1 MiB of input) */
export const CHUNK_PAGES = 256;

export const SECTION_DEFLATE = 1;
export const SECTION_JSON = 2;
export const SECTION_OPTIONAL = 4;

/** A problem with a snapshot file (the message does not name the file: hosts add that). */
export class SnapshotError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotError';
  }
}

/** raw DEFLATE (RFC 1951) both ways, supplied by the host */
export interface Compressor {
  deflate(data: Uint8Array): Promise<Uint8Array>;
  inflate(data: Uint8Array): Promise<Uint8Array>;
}

/**
 * A Compressor on the Compression Streams API (browsers, Workers, Node ≥ 18): what the browser host
 * uses. Slower than Node's zlib but byte-compatible with it.
 */
export function compressionStreamCompressor(): Compressor {
  const run = async (data: Uint8Array, stream: CompressionStream | DecompressionStream): Promise<Uint8Array> => {
    const piped = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream);
    return new Uint8Array(await new Response(piped).arrayBuffer());
  };
  return {
    deflate: (data) => run(data, new CompressionStream('deflate-raw')),
    inflate: (data) => run(data, new DecompressionStream('deflate-raw')),
  };
}

// ---------------------------------------------------------------------------------------------------
// CRC32 (IEEE 802.3, the zlib/PNG polynomial)

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC32 of data, continuing from a previous crc32() result */
export function crc32(data: Uint8Array, prev = 0): number {
  let c = ~prev;
  const t = CRC_TABLE;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// ---------------------------------------------------------------------------------------------------
// lossless JSON

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeJson(value: unknown): Uint8Array {
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'number' && (!Number.isFinite(v) || Object.is(v, -0))) {
      return { $num: Object.is(v, -0) ? '-0' : String(v) };
    }
    return v;
  });
  return utf8Encoder.encode(text ?? 'null');
}

export function decodeJson(bytes: Uint8Array): unknown {
  return JSON.parse(utf8Decoder.decode(bytes), (_key, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length === 1 && keys[0] === '$num' && typeof o.$num === 'string') return Number(o.$num);
    }
    return v;
  });
}

// ---------------------------------------------------------------------------------------------------
// what a snapshot describes

/** everything needed to build the same machine again (core/pc.ts createPc options) */
export interface MachineConfig {
  memSize: number;
  deterministic: boolean;
  noReboot: boolean;
  apic: boolean;
  pci: boolean;
  debugExit: boolean;
  /** a debug console on port 0xE9 */
  debugcon: boolean;
  tscHz: number;
  /** the names of machine.devices, in order (the restoring host must build the same list) */
  devices: string[];
}

/** one file under a drive (its image, or a parent of a differencing image) as it was at save time */
export interface DiskFileRef {
  /** absolute path on the saving host */
  path: string;
  /** path relative to the snapshot file's folder (absent when the host had no file to be relative to) */
  rel?: string;
  /** bytes */
  size: number;
  /** SHA-256 of the whole file, hex */
  sha256: string;
}

export type DiskController = 'ide' | 'virtio-blk' | 'virtio-scsi';

/** a drive of the snapshot's machine (see the file comment) */
export interface DiskRef {
  /** "ide0", "virtio-blk0", "virtio-scsi2": the drive, and its overlay's section "disk:ID" */
  id: string;
  controller: DiskController;
  media: 'disk' | 'cdrom';
  /** IDE slot 0–3 (primary master … secondary slave) or SCSI target; absent for virtio-blk */
  index?: number;
  /** the image file as the user named it (for messages) */
  file: string;
  /** the format as opened: 'raw', 'vhd-dynamic', 'vdi-static', 'iso', … */
  format: string;
  /** the format the user asked for (format=), if any: used again to open it */
  formatOption?: string;
  readOnly: boolean;
  /** the guest's writes were kept in memory: they are in the "disk:ID" section */
  overlay: boolean;
  /** capacity in 512-byte sectors */
  sectors: number;
  /** sectors in the overlay (0 without one) */
  overlaySectors: number;
  /** the image file, then its parents (differencing images), nearest first */
  files: DiskFileRef[];
}

/** what an overlay gives a snapshot (disk/overlay.ts CowOverlay) */
export interface OverlaySource {
  writtenSpans(): { sector: number; count: number }[];
  /** copies written sectors (part of one span) into `out` */
  copyWritten(sector: number, out: Uint8Array): void;
}

/** a drive to save: its reference (files fingerprinted by the host) and its overlay, if it has one */
export interface SnapshotDisk {
  ref: DiskRef;
  overlay?: OverlaySource | null;
}

/** how a drive is named in messages: "ide0 (disk.vhd)" */
export function diskLabel(ref: Pick<DiskRef, 'id' | 'file'>): string {
  return `${ref.id} (${ref.file})`;
}

/** the fingerprint of a file as found now */
export interface FileFingerprint {
  size: number;
  sha256: string;
}

/**
 * Compares file `i` of a drive (0: its image; 1…: parents) with what the host finds now. Returns the
 * problem as a sentence ("disk ide0 (disk.vhd) has changed since the snapshot was taken"), or null.
 * `now` null: the file could not be found (`where` says where the host looked).
 */
export function diskFileProblem(ref: DiskRef, i: number, now: FileFingerprint | null, where?: string): string | null {
  const f = ref.files[i];
  const what = i === 0 ? `disk ${diskLabel(ref)}` : `disk ${diskLabel(ref)}: its parent image '${f.path}'`;
  if (!now) return i === 0 ? `disk ${ref.id}: its image '${ref.file}' is missing${where ? ` (${where})` : ''}` : `${what} is missing${where ? ` (${where})` : ''}`;
  if (now.size !== f.size) return `${what} has changed since the snapshot was taken (${now.size} bytes, was ${f.size})`;
  if (now.sha256 !== f.sha256) return `${what} has changed since the snapshot was taken`;
  return null;
}

/** sectors per compressed chunk of a "disk:ID" section (1 MiB of input) */
export const DISK_CHUNK_SECTORS = 2048;
const SECTOR = 512;

export interface SnapshotMeta {
  format: 'x86vm-snapshot';
  version: number;
  /** ISO date of the save */
  created: string;
  /** what wrote it, e.g. "x86vm 0.1.0" */
  creator: string;
  mode: 'deterministic' | 'real-time';
  config: MachineConfig;
  /** instructions retired since power-on */
  instructions: number;
  /** guest time in ns */
  guestNs: number;
  ram: { pageSize: number; pages: number; nonZeroPages: number };
  /** ROMs outside RAM, each in a "rom:NAME" section */
  roms: { name: string; base: number; size: number }[];
  disks: DiskRef[];
  /** informational: what the machine was booted from (host's words) */
  origin?: Record<string, string>;
}

/** the machine configuration of a PC built by createPc */
export function pcConfig(pc: Pc): MachineConfig {
  const m = pc.machine;
  return {
    memSize: m.mem.ramSize,
    deterministic: m.clock.deterministic,
    noReboot: !!m.options.noReboot,
    apic: pc.apic !== null,
    pci: pc.pci !== null,
    debugExit: pc.debugExit !== null,
    debugcon: pc.debugcon !== null,
    tscHz: pc.tscHz,
    devices: m.devices.map((d) => d.name),
  };
}

// ---------------------------------------------------------------------------------------------------
// saving

export interface SnapshotRom {
  name: string;
  /** physical address of its first byte */
  base: number;
  data: Uint8Array;
}

export interface ExtraSection {
  name: string;
  data: Uint8Array;
  compress?: boolean;
  optional?: boolean;
}

export interface SaveInput {
  pc: Pc;
  /** ROMs mapped outside RAM (node/ passes the --bios image) */
  roms?: SnapshotRom[];
  /** JSON-able data the host wants back on restore */
  host?: unknown;
  /** more sections */
  extra?: ExtraSection[];
  /** the machine's drives, in the order they were attached (overlays are copied at the capture) */
  disks?: SnapshotDisk[];
  creator?: string;
  created?: Date;
  origin?: Record<string, string>;
}

/** the machine's state taken at one instant (synchronous), not yet compressed */
export interface SnapshotCapture {
  meta: SnapshotMeta;
  cpu: unknown;
  machine: unknown;
  devices: { name: string; state: unknown }[];
  memmap: Uint8Array;
  /** page bitmap of the non-zero RAM pages */
  bitmap: Uint8Array;
  /** copies of the non-zero pages, CHUNK_PAGES at a time */
  chunks: Uint8Array[];
  roms: SnapshotRom[];
  host: unknown;
  extra: ExtraSection[];
  /** the overlays' written sectors, copied at the capture (meta.disks[…].overlaySectors counts them) */
  overlays: CapturedOverlay[];
}

/** an overlay's written sectors, as spans and 1 MiB chunks of their bytes in span order */
export interface CapturedOverlay {
  id: string;
  spans: { sector: number; count: number }[];
  chunks: Uint8Array[];
}

/** copies an overlay's written sectors into DISK_CHUNK_SECTORS-sector chunks (typed-array copies) */
function captureOverlay(id: string, src: OverlaySource): CapturedOverlay {
  const spans = src.writtenSpans().map((s) => ({ sector: s.sector, count: s.count }));
  const total = spans.reduce((n, s) => n + s.count, 0);
  const chunks: Uint8Array[] = [];
  let chunk: Uint8Array | null = null;
  let used = 0;
  let left = total;
  for (const span of spans) {
    let sector = span.sector;
    let count = span.count;
    while (count > 0) {
      if (!chunk || used === chunk.length / SECTOR) {
        chunk = new Uint8Array(Math.min(DISK_CHUNK_SECTORS, left) * SECTOR);
        chunks.push(chunk);
        used = 0;
      }
      const n = Math.min(count, chunk.length / SECTOR - used);
      src.copyWritten(sector, chunk.subarray(used * SECTOR, (used + n) * SECTOR));
      used += n;
      sector += n;
      count -= n;
      left -= n;
    }
  }
  return { id, spans, chunks };
}

/**
 * Gets a machine ready for captureSnapshot: host I/O settled, and the timers already due fired, as the
 * next Machine.run() would do first (so a snapshot never holds a timer that is due but not yet
 * delivered). Stop a real-time clock first.
 */
export async function settleForSnapshot(machine: Machine): Promise<void> {
  for (;;) {
    await machine.quiesce();
    machine.clock.runDue();
    if (!machine.hostWait) return;
  }
}

/**
 * Takes the machine's state at this instant. Call it between Machine.run() calls, after
 * `await settleForSnapshot(machine)`. A running real-time clock is stopped for the capture (so every
 * device sees one instant) and started again. RAM is copied (non-zero pages only), so the machine may run
 * on while the capture is being encoded.
 */
export function captureSnapshot(input: SaveInput): SnapshotCapture {
  const pc = input.pc;
  const machine = pc.machine;
  if (machine.hostWait) throw new SnapshotError('host I/O is still in flight (await settleForSnapshot() first)');
  const clock = machine.clock;
  const wasRunning = !clock.deterministic && clock.running;
  if (wasRunning) clock.setRunning(false);
  try {
    clock.runDue();
    if (machine.hostWait) throw new SnapshotError('host I/O is still in flight (await settleForSnapshot() first)');
    if (machine.stopReason) throw new SnapshotError(`the machine has stopped (${machine.stopReason.kind})`);
    const config = pcConfig(pc);
    const machineState = machine.saveState();
    const devices = machine.devices.map((d) => ({ name: d.name, state: d.saveState ? d.saveState() : null }));
    // CPU after the devices: a device's saveState may read the clock, never the other way round
    const cpu = machine.cpu.saveState();
    const mem = machine.mem;
    const pages = mem.ramSize / PAGE_SIZE;
    const bitmap = new Uint8Array(Math.ceil(pages / 8));
    const words = mem.mem32;
    const nonZero: number[] = [];
    for (let p = 0; p < pages; p++) {
      const end = (p + 1) * (PAGE_SIZE / 4);
      for (let w = p * (PAGE_SIZE / 4); w < end; w++) {
        if (words[w] !== 0) {
          bitmap[p >> 3] |= 1 << (p & 7);
          nonZero.push(p);
          break;
        }
      }
    }
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < nonZero.length; i += CHUNK_PAGES) {
      const n = Math.min(CHUNK_PAGES, nonZero.length - i);
      const buf = new Uint8Array(n * PAGE_SIZE);
      // copy runs of consecutive pages with one set() each
      let j = 0;
      while (j < n) {
        let k = j + 1;
        while (k < n && nonZero[i + k] === nonZero[i + k - 1] + 1) k++;
        const from = nonZero[i + j] * PAGE_SIZE;
        buf.set(mem.mem8.subarray(from, from + (k - j) * PAGE_SIZE), j * PAGE_SIZE);
        j = k;
      }
      chunks.push(buf);
    }
    const roms = (input.roms ?? []).map((r) => ({ name: r.name, base: r.base, data: r.data.slice() }));
    const disks: DiskRef[] = [];
    const overlays: CapturedOverlay[] = [];
    for (const d of input.disks ?? []) {
      const ref: DiskRef = { ...d.ref, files: d.ref.files.map((f) => ({ ...f })) };
      if (!/^[a-z][a-z0-9-]{0,30}$/.test(ref.id) || disks.some((o) => o.id === ref.id)) throw new SnapshotError(`bad or repeated disk ID '${ref.id}'`);
      if (d.overlay) {
        const o = captureOverlay(ref.id, d.overlay);
        overlays.push(o);
        ref.overlay = true;
        ref.overlaySectors = o.spans.reduce((n, s) => n + s.count, 0);
      } else {
        ref.overlay = false;
        ref.overlaySectors = 0;
      }
      disks.push(ref);
    }
    for (const r of roms) {
      if (!/^[\w.@-]{1,48}$/.test(r.name)) throw new SnapshotError(`bad ROM name '${r.name}'`);
    }
    const meta: SnapshotMeta = {
      format: 'x86vm-snapshot',
      version: SNAPSHOT_VERSION,
      created: (input.created ?? new Date()).toISOString(),
      creator: input.creator ?? 'x86vm',
      mode: clock.deterministic ? 'deterministic' : 'real-time',
      config,
      instructions: cpu.instructionCount,
      guestNs: machineState.clock.nowNs,
      ram: { pageSize: PAGE_SIZE, pages, nonZeroPages: nonZero.length },
      roms: roms.map((r) => ({ name: r.name, base: r.base, size: r.data.length })),
      disks,
    };
    if (input.origin) meta.origin = input.origin;
    return {
      meta,
      cpu,
      machine: machineState,
      devices,
      memmap: mem.pageKind.slice(),
      bitmap,
      chunks,
      roms,
      host: input.host ?? null,
      extra: input.extra ?? [],
      overlays,
    };
  } finally {
    if (wasRunning) clock.setRunning(true);
  }
}

/** little-endian byte writer for headers */
class Writer {
  private buf: Uint8Array;
  private view: DataView;
  len = 0;
  constructor(size = 64) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    bigger.set(this.buf);
    this.buf = bigger;
    this.view = new DataView(bigger.buffer);
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.len++] = v;
  }
  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.len, v >>> 0, true);
    this.len += 4;
  }
  u64(v: number): void {
    this.u32(v % 0x1_0000_0000);
    this.u32(Math.floor(v / 0x1_0000_0000));
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  take(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

interface PendingSection {
  name: string;
  flags: number;
  /** the stored bytes, possibly in pieces */
  parts: Uint8Array[];
  rawLength: number;
}

function sectionHeader(name: string, flags: number, stored: number, raw: number): Uint8Array {
  const w = new Writer();
  const nameBytes = utf8Encoder.encode(name);
  if (nameBytes.length === 0 || nameBytes.length > 255) throw new SnapshotError(`bad section name '${name}'`);
  w.u8(nameBytes.length);
  w.bytes(nameBytes);
  w.u8(flags);
  w.u64(stored);
  w.u64(raw);
  return w.take();
}

/**
 * Encodes a capture into the file's bytes, as a list of pieces (write them in order; their total is
 * `size`). Compression runs through the host's Compressor, the RAM chunks all at once.
 */
export async function encodeSnapshot(cap: SnapshotCapture, compressor: Compressor): Promise<{ parts: Uint8Array[]; size: number }> {
  const sections: PendingSection[] = [];
  const json = async (name: string, value: unknown, deflate: boolean, optional = false): Promise<void> => {
    const raw = encodeJson(value);
    const stored = deflate ? await compressor.deflate(raw) : raw;
    sections.push({
      name,
      flags: SECTION_JSON | (deflate ? SECTION_DEFLATE : 0) | (optional ? SECTION_OPTIONAL : 0),
      parts: [stored],
      rawLength: raw.length,
    });
  };
  const binary = async (name: string, raw: Uint8Array, deflate: boolean, optional = false): Promise<void> => {
    const stored = deflate ? await compressor.deflate(raw) : raw;
    sections.push({ name, flags: (deflate ? SECTION_DEFLATE : 0) | (optional ? SECTION_OPTIONAL : 0), parts: [stored], rawLength: raw.length });
  };

  // the RAM chunks compress in parallel (Node's zlib runs them on its thread pool)
  const ramChunks = Promise.all(cap.chunks.map((c) => compressor.deflate(c)));
  await json('meta', cap.meta, false);
  await json('cpu', cap.cpu, true);
  await json('machine', cap.machine, true);
  await json('devices', cap.devices, true);
  await binary('memmap', cap.memmap, true);
  const chunks = await ramChunks;
  const head = new Writer(16 + cap.bitmap.length + chunks.length * 4);
  head.u32(PAGE_SIZE);
  head.u32(cap.meta.ram.pages);
  head.u32(CHUNK_PAGES);
  head.u32(chunks.length);
  head.bytes(cap.bitmap);
  for (const c of chunks) head.u32(c.length);
  sections.push({ name: 'ram', flags: 0, parts: [head.take(), ...chunks], rawLength: cap.meta.config.memSize });
  for (const r of cap.roms) await binary(`rom:${r.name}`, r.data, true);
  if (cap.host !== null && cap.host !== undefined) await json('host', cap.host, true, true);
  for (const o of cap.overlays) {
    const deflated = await Promise.all(o.chunks.map((c) => compressor.deflate(c)));
    const head = new Writer(16 + o.spans.length * 12 + deflated.length * 4);
    head.u32(SECTOR);
    head.u32(o.spans.length);
    head.u32(DISK_CHUNK_SECTORS);
    head.u32(deflated.length);
    for (const sp of o.spans) {
      head.u64(sp.sector);
      head.u32(sp.count);
    }
    for (const c of deflated) head.u32(c.length);
    const rawLength = o.spans.reduce((n, sp) => n + sp.count, 0) * SECTOR;
    sections.push({ name: `disk:${o.id}`, flags: 0, parts: [head.take(), ...deflated], rawLength });
  }
  for (const x of cap.extra) await binary(x.name, x.data, x.compress !== false, !!x.optional);

  const parts: Uint8Array[] = [];
  let size = HEADER_SIZE;
  const headerSlot = new Uint8Array(HEADER_SIZE);
  parts.push(headerSlot);
  for (const s of sections) {
    const stored = s.parts.reduce((n, p) => n + p.length, 0);
    const h = sectionHeader(s.name, s.flags, stored, s.rawLength);
    let crc = crc32(h);
    for (const p of s.parts) crc = crc32(p, crc);
    const crcBytes = new Uint8Array(4);
    new DataView(crcBytes.buffer).setUint32(0, crc, true);
    parts.push(h, crcBytes, ...s.parts);
    size += h.length + 4 + stored;
  }
  const w = new Writer(HEADER_SIZE);
  w.bytes(utf8Encoder.encode(SNAPSHOT_MAGIC));
  w.u32(SNAPSHOT_VERSION);
  w.u32(sections.length);
  w.u64(size);
  const head24 = w.take();
  headerSlot.set(head24);
  new DataView(headerSlot.buffer).setUint32(24, crc32(head24), true);
  return { parts, size };
}

/** captureSnapshot + encodeSnapshot into one byte array (tests, browsers) */
export async function saveSnapshot(input: SaveInput, compressor: Compressor): Promise<Uint8Array> {
  await settleForSnapshot(input.pc.machine);
  const { parts, size } = await encodeSnapshot(captureSnapshot(input), compressor);
  return joinParts(parts, size);
}

/** the parts of an encoded snapshot as one byte array of `size` bytes */
export function joinParts(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// reading

export interface SnapshotSection {
  name: string;
  flags: number;
  /** offset of the stored bytes in the file */
  offset: number;
  storedLength: number;
  rawLength: number;
  crc: number;
}

export interface ParsedSnapshot {
  version: number;
  /** file size */
  size: number;
  meta: SnapshotMeta;
  sections: SnapshotSection[];
  bytes: Uint8Array;
}

const KNOWN_SECTIONS = new Set(['meta', 'cpu', 'machine', 'devices', 'memmap', 'ram', 'host']);
const REQUIRED_SECTIONS = ['meta', 'cpu', 'machine', 'devices', 'memmap', 'ram'];

function fmtBytes(n: number): string {
  return `${n} byte${n === 1 ? '' : 's'}`;
}

/**
 * Checks a snapshot's structure and every checksum, and reads its meta section. Throws SnapshotError
 * with a one-line reason: not a snapshot (wrong magic), a newer or unknown version, truncated, a header
 * or section checksum mismatch, a missing or unknown section.
 */
export function parseSnapshot(bytes: Uint8Array): ParsedSnapshot {
  const magic = utf8Encoder.encode(SNAPSHOT_MAGIC);
  if (bytes.length < magic.length || magic.some((b, i) => bytes[i] !== b)) {
    if (bytes.length < magic.length && magic.subarray(0, bytes.length).every((b, i) => bytes[i] === b)) {
      throw new SnapshotError(`truncated: ${fmtBytes(bytes.length)}, shorter than the ${HEADER_SIZE}-byte header`);
    }
    throw new SnapshotError('not an x86vm snapshot (wrong magic number)');
  }
  if (bytes.length < 12) throw new SnapshotError(`truncated: ${fmtBytes(bytes.length)}, shorter than the ${HEADER_SIZE}-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version > SNAPSHOT_VERSION) {
    throw new SnapshotError(`snapshot format version ${version} is newer than this x86vm reads (version ${SNAPSHOT_VERSION}); use a newer x86vm`);
  }
  if (version < 1) throw new SnapshotError(`unknown snapshot format version ${version}`);
  if (bytes.length < HEADER_SIZE) throw new SnapshotError(`truncated: ${fmtBytes(bytes.length)}, shorter than the ${HEADER_SIZE}-byte header`);
  if (crc32(bytes.subarray(0, 24)) !== view.getUint32(24, true)) throw new SnapshotError('header checksum mismatch (the file is corrupted)');
  const count = view.getUint32(12, true);
  const size = view.getUint32(16, true) + view.getUint32(20, true) * 0x1_0000_0000;
  if (bytes.length < size) throw new SnapshotError(`truncated: ${fmtBytes(bytes.length)} of ${fmtBytes(size)}`);
  if (bytes.length > size) throw new SnapshotError(`${fmtBytes(bytes.length - size)} of unexpected data after the end of the snapshot (${fmtBytes(size)})`);

  const sections: SnapshotSection[] = [];
  let off = HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    const start = off;
    const need = (n: number, what: string): void => {
      if (off + n > size) throw new SnapshotError(`section ${i + 1} of ${count}: ${what} runs past the end of the file (corrupted)`);
    };
    need(1, 'header');
    const nameLen = bytes[off++];
    need(nameLen + 1 + 16 + 4, 'header');
    let name: string;
    try {
      name = utf8Decoder.decode(bytes.subarray(off, off + nameLen));
    } catch {
      throw new SnapshotError(`section ${i + 1} of ${count}: bad name (corrupted)`);
    }
    off += nameLen;
    const flags = bytes[off++];
    const stored = view.getUint32(off, true) + view.getUint32(off + 4, true) * 0x1_0000_0000;
    const raw = view.getUint32(off + 8, true) + view.getUint32(off + 12, true) * 0x1_0000_0000;
    off += 16;
    const crcAt = off;
    const crc = view.getUint32(off, true);
    off += 4;
    const label = /^[\x20-\x7e]+$/.test(name) ? `'${name}'` : `${i + 1} of ${count}`;
    if (off + stored > size) throw new SnapshotError(`section ${label}: ${fmtBytes(stored)} run past the end of the file (corrupted)`);
    const actual = crc32(bytes.subarray(off, off + stored), crc32(bytes.subarray(start, crcAt)));
    if (actual !== crc) throw new SnapshotError(`section ${label}: checksum mismatch (the file is corrupted)`);
    sections.push({ name, flags, offset: off, storedLength: stored, rawLength: raw, crc });
    off += stored;
  }
  if (off !== size) throw new SnapshotError(`${fmtBytes(size - off)} after the last section (corrupted)`);
  for (const s of sections) {
    if (KNOWN_SECTIONS.has(s.name) || s.name.startsWith('rom:') || s.name.startsWith('disk:') || s.flags & SECTION_OPTIONAL) continue;
    throw new SnapshotError(`unknown section '${s.name}' (written by a newer x86vm?)`);
  }
  for (const r of REQUIRED_SECTIONS) {
    if (!sections.some((s) => s.name === r)) throw new SnapshotError(`the '${r}' section is missing`);
  }
  const metaSec = sections.find((s) => s.name === 'meta')!;
  let meta: SnapshotMeta;
  try {
    meta = decodeJson(bytes.subarray(metaSec.offset, metaSec.offset + metaSec.storedLength)) as SnapshotMeta;
  } catch (e) {
    throw new SnapshotError(`the 'meta' section is not valid JSON: ${(e as Error).message}`);
  }
  checkMeta(meta);
  for (const d of meta.disks) {
    if (d.overlay && !sections.some((s) => s.name === `disk:${d.id}`)) throw new SnapshotError(`the 'disk:${d.id}' section (the overlay of disk ${d.id}) is missing`);
  }
  for (const s of sections) {
    if (s.name.startsWith('disk:') && !meta.disks.some((d) => d.overlay && `disk:${d.id}` === s.name)) {
      throw new SnapshotError(`section '${s.name}' belongs to no disk of the snapshot (corrupted)`);
    }
  }
  return { version, size, meta, sections, bytes };
}

function checkMeta(m: SnapshotMeta): void {
  const bad = (what: string): never => {
    throw new SnapshotError(`the 'meta' section is inconsistent: ${what}`);
  };
  if (!m || typeof m !== 'object' || m.format !== 'x86vm-snapshot') bad('not an x86vm snapshot description');
  const c = m.config;
  if (!c || typeof c !== 'object') bad('no machine configuration');
  if (!(Number.isInteger(c.memSize) && c.memSize >= 1 << 20 && c.memSize % PAGE_SIZE === 0)) bad(`RAM size ${c.memSize}`);
  if (!Array.isArray(c.devices) || c.devices.some((d) => typeof d !== 'string')) bad('device list');
  if (!m.ram || m.ram.pageSize !== PAGE_SIZE || m.ram.pages * PAGE_SIZE !== c.memSize) bad('RAM page count');
  if (!Number.isSafeInteger(m.instructions) || m.instructions < 0) bad('instruction count');
  if (!Array.isArray(m.roms) || !Array.isArray(m.disks)) bad('ROM or disk list');
  const ids = new Set<string>();
  for (const d of m.disks as unknown[]) {
    const r = d as DiskRef;
    const label = r && typeof r === 'object' && typeof r.id === 'string' ? `disk ${r.id}` : 'a disk';
    if (!r || typeof r !== 'object' || typeof r.id !== 'string' || !/^[a-z][a-z0-9-]{0,30}$/.test(r.id) || ids.has(r.id)) bad(`${label}: bad or repeated ID`);
    ids.add(r.id);
    if (r.controller !== 'ide' && r.controller !== 'virtio-blk' && r.controller !== 'virtio-scsi') bad(`${label}: controller ${String(r.controller)}`);
    if (r.media !== 'disk' && r.media !== 'cdrom') bad(`${label}: media ${String(r.media)}`);
    const maxIndex = r.controller === 'ide' ? 3 : r.controller === 'virtio-scsi' ? 255 : -1;
    if (r.index !== undefined && !(Number.isInteger(r.index) && r.index >= 0 && r.index <= maxIndex)) bad(`${label}: slot ${String(r.index)}`);
    if (r.controller !== 'virtio-blk' && r.index === undefined) bad(`${label}: no slot`);
    if (typeof r.file !== 'string' || typeof r.format !== 'string') bad(`${label}: file or format`);
    if (r.formatOption !== undefined && typeof r.formatOption !== 'string') bad(`${label}: format option`);
    if (typeof r.readOnly !== 'boolean' || typeof r.overlay !== 'boolean') bad(`${label}: read-only or overlay flag`);
    if (!Number.isSafeInteger(r.sectors) || r.sectors < 0) bad(`${label}: sector count`);
    if (!Number.isSafeInteger(r.overlaySectors) || r.overlaySectors < 0 || r.overlaySectors > r.sectors || (!r.overlay && r.overlaySectors)) bad(`${label}: overlay size`);
    if (!Array.isArray(r.files) || r.files.length < 1) bad(`${label}: no files`);
    for (const f of r.files) {
      const ok = f && typeof f === 'object' && typeof f.path === 'string' && (f.rel === undefined || typeof f.rel === 'string') &&
        Number.isSafeInteger(f.size) && f.size >= 0 && typeof f.sha256 === 'string' && /^[0-9a-f]{64}$/.test(f.sha256);
      if (!ok) bad(`${label}: a file's path, size or SHA-256`);
    }
  }
}

/** the named section, or undefined */
export function findSection(snap: ParsedSnapshot, name: string): SnapshotSection | undefined {
  return snap.sections.find((s) => s.name === name);
}

/** the stored bytes of a section, inflated if they were deflated (length-checked) */
export async function sectionBytes(snap: ParsedSnapshot, name: string, compressor: Compressor): Promise<Uint8Array> {
  const s = findSection(snap, name);
  if (!s) throw new SnapshotError(`the '${name}' section is missing`);
  const stored = snap.bytes.subarray(s.offset, s.offset + s.storedLength);
  if (!(s.flags & SECTION_DEFLATE)) return stored;
  let raw: Uint8Array;
  try {
    raw = await compressor.inflate(stored);
  } catch (e) {
    throw new SnapshotError(`section '${name}': cannot decompress: ${(e as Error).message}`);
  }
  if (raw.length !== s.rawLength) throw new SnapshotError(`section '${name}': decompressed to ${fmtBytes(raw.length)}, expected ${fmtBytes(s.rawLength)}`);
  return raw;
}

/** a JSON section's value */
export async function sectionJson(snap: ParsedSnapshot, name: string, compressor: Compressor): Promise<unknown> {
  const bytes = await sectionBytes(snap, name, compressor);
  try {
    return decodeJson(bytes);
  } catch (e) {
    throw new SnapshotError(`section '${name}' is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * The chunked tail of a "ram" or "disk:" section: at `off`, `count` u32 compressed sizes, then the chunks,
 * which must end the section; returns them inflated. `bad` throws a SnapshotError naming the section.
 */
async function inflateChunks(bytes: Uint8Array, off: number, count: number, compressor: Compressor, bad: (what: string) => never): Promise<Uint8Array[]> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const inputs: Uint8Array[] = [];
  let at = off + count * 4;
  for (let i = 0; i < count; i++) {
    const n = view.getUint32(off + i * 4, true);
    if (at + n > bytes.length) bad('a chunk runs past the section');
    inputs.push(bytes.subarray(at, at + n));
    at += n;
  }
  if (at !== bytes.length) bad('unexpected bytes after the last chunk');
  try {
    return await Promise.all(inputs.map((c) => compressor.inflate(c)));
  } catch (e) {
    return bad(`cannot decompress: ${(e as Error).message}`);
  }
}

/**
 * The written sectors of drive `id`'s overlay ("disk:ID" section), as runs whose data are views into the
 * inflated chunks (a run may come in several pieces where it crosses a chunk). Every length is checked
 * against the section's header and the drive's capacity.
 */
export async function readDiskOverlay(snap: ParsedSnapshot, id: string, compressor: Compressor): Promise<{ sector: number; data: Uint8Array }[]> {
  const name = `disk:${id}`;
  const ref = snap.meta.disks.find((d) => d.id === id);
  const s = findSection(snap, name);
  if (!ref || !s) throw new SnapshotError(`the '${name}' section is missing`);
  const bytes = snap.bytes.subarray(s.offset, s.offset + s.storedLength);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (what: string): never => {
    throw new SnapshotError(`section '${name}': ${what}`);
  };
  if (bytes.length < 16) bad('too short');
  const sectorSize = view.getUint32(0, true);
  const spanCount = view.getUint32(4, true);
  const chunkSectors = view.getUint32(8, true);
  const chunkCount = view.getUint32(12, true);
  if (sectorSize !== SECTOR) bad(`sector size ${sectorSize}`);
  if (chunkSectors < 1) bad('bad chunk size');
  let off = 16;
  if (off + spanCount * 12 + chunkCount * 4 > bytes.length) bad('span or chunk table runs past the section');
  const spans: { sector: number; count: number }[] = [];
  let total = 0;
  let prevEnd = 0;
  for (let i = 0; i < spanCount; i++) {
    const sector = view.getUint32(off, true) + view.getUint32(off + 4, true) * 0x1_0000_0000;
    const count = view.getUint32(off + 8, true);
    off += 12;
    if (count < 1 || sector < prevEnd || sector + count > ref.sectors) bad(`span ${i} (sector ${sector}, ${count} sectors) is out of order or past the disk's end`);
    prevEnd = sector + count;
    total += count;
    spans.push({ sector, count });
  }
  if (total !== ref.overlaySectors) bad(`holds ${total} sectors, the disk's description says ${ref.overlaySectors}`);
  if (total * SECTOR !== s.rawLength) bad(`holds ${total} sectors, its header says ${fmtBytes(s.rawLength)}`);
  if (Math.ceil(total / chunkSectors) !== chunkCount) bad(`${chunkCount} chunks cannot hold ${total} sectors`);
  const chunks = await inflateChunks(bytes, off, chunkCount, compressor, bad);
  chunks.forEach((c, i) => {
    const want = Math.min(chunkSectors, total - i * chunkSectors) * SECTOR;
    if (c.length !== want) bad(`chunk ${i} holds ${fmtBytes(c.length)}, expected ${fmtBytes(want)}`);
  });
  const runs: { sector: number; data: Uint8Array }[] = [];
  let ci = 0;
  let at = 0;
  for (const sp of spans) {
    let sector = sp.sector;
    let count = sp.count;
    while (count > 0) {
      const c = chunks[ci];
      const n = Math.min(count, c.length / SECTOR - at);
      runs.push({ sector, data: c.subarray(at * SECTOR, (at + n) * SECTOR) });
      at += n;
      sector += n;
      count -= n;
      if (at === c.length / SECTOR) {
        ci++;
        at = 0;
      }
    }
  }
  return runs;
}

/** writes the RAM section into mem8 (which must be memSize bytes): zero pages zeroed, the others inflated */
async function loadRam(snap: ParsedSnapshot, mem8: Uint8Array, compressor: Compressor): Promise<void> {
  const s = findSection(snap, 'ram')!;
  const bytes = snap.bytes.subarray(s.offset, s.offset + s.storedLength);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (what: string): never => {
    throw new SnapshotError(`section 'ram': ${what}`);
  };
  if (bytes.length < 16) bad('too short');
  const pageSize = view.getUint32(0, true);
  const pages = view.getUint32(4, true);
  const chunkPages = view.getUint32(8, true);
  const chunkCount = view.getUint32(12, true);
  if (pageSize !== PAGE_SIZE || pages * PAGE_SIZE !== mem8.length) bad(`${pages} pages of ${pageSize} bytes do not make ${fmtBytes(mem8.length)} of RAM`);
  if (chunkPages < 1) bad('bad chunk size');
  const bitmapLen = Math.ceil(pages / 8);
  let off = 16;
  if (off + bitmapLen + chunkCount * 4 > bytes.length) bad('bitmap or chunk table runs past the section');
  const bitmap = bytes.subarray(off, off + bitmapLen);
  off += bitmapLen;
  const nonZero: number[] = [];
  for (let p = 0; p < pages; p++) if (bitmap[p >> 3] & (1 << (p & 7))) nonZero.push(p);
  if (Math.ceil(nonZero.length / chunkPages) !== chunkCount) bad(`${chunkCount} chunks cannot hold ${nonZero.length} pages`);
  const chunks = await inflateChunks(bytes, off, chunkCount, compressor, bad);
  mem8.fill(0);
  chunks.forEach((c, i) => {
    const first = i * chunkPages;
    const n = Math.min(chunkPages, nonZero.length - first);
    if (c.length !== n * PAGE_SIZE) bad(`chunk ${i} holds ${fmtBytes(c.length)}, expected ${fmtBytes(n * PAGE_SIZE)}`);
    let j = 0;
    while (j < n) {
      let k = j + 1;
      while (k < n && nonZero[first + k] === nonZero[first + k - 1] + 1) k++;
      mem8.set(c.subarray(j * PAGE_SIZE, k * PAGE_SIZE), nonZero[first + j] * PAGE_SIZE);
      j = k;
    }
  });
}

const KIND_NAMES = ['RAM', 'ROM', 'MMIO', 'nothing'];

/**
 * Loads a snapshot into a machine built with the same configuration (RAM size, mode, devices in the same
 * order, ROMs mapped): RAM, CPU, clock, devices. Every section is decoded and checked before the machine
 * is touched, except the RAM chunks, which are inflated straight into RAM.
 */
export async function restoreMachine(snap: ParsedSnapshot, machine: Machine, compressor: Compressor): Promise<void> {
  const meta = snap.meta;
  const config = meta.config;
  if (machine.mem.ramSize !== config.memSize) {
    throw new SnapshotError(`it was taken with ${config.memSize / 1048576} MiB of RAM, this machine has ${machine.mem.ramSize / 1048576} MiB`);
  }
  if (machine.clock.deterministic !== config.deterministic) {
    throw new SnapshotError(`it was taken in ${meta.mode} mode, this machine runs in ${machine.clock.deterministic ? 'deterministic' : 'real-time'} mode`);
  }
  const names = machine.devices.map((d) => d.name);
  if (names.join(',') !== config.devices.join(',')) {
    throw new SnapshotError(`it was taken with the devices [${config.devices.join(', ')}], this machine has [${names.join(', ')}]`);
  }
  const cpu = await sectionJson(snap, 'cpu', compressor);
  const machineState = await sectionJson(snap, 'machine', compressor);
  const devices = (await sectionJson(snap, 'devices', compressor)) as { name: string; state: unknown }[];
  const memmap = await sectionBytes(snap, 'memmap', compressor);
  if (!Array.isArray(devices) || devices.length !== names.length || devices.some((d, i) => !d || d.name !== names[i])) {
    throw new SnapshotError(`the 'devices' section does not match the device list`);
  }
  const pageKind = machine.mem.pageKind;
  if (memmap.length !== pageKind.length) throw new SnapshotError(`the 'memmap' section has ${memmap.length} entries, expected ${pageKind.length}`);

  await loadRam(snap, machine.mem.mem8, compressor);
  try {
    // the CPU first: deterministic time is the instruction count, and the devices read the time
    machine.cpu.loadState(cpu);
    machine.loadState(machineState);
  } catch (e) {
    throw new SnapshotError(`cannot load the CPU state: ${(e as Error).message}`);
  }
  machine.devices.forEach((d, i) => {
    const state = devices[i].state;
    if (state === null || state === undefined || !d.loadState) return;
    try {
      d.loadState(state);
    } catch (e) {
      throw new SnapshotError(`cannot load the state of device '${d.name}': ${(e as Error).message}`);
    }
  });
  // the memory map: RAM vs ROM-in-RAM as saved (shadow-RAM settings), everything else must agree
  for (let p = 0; p < pageKind.length; p++) {
    const want = memmap[p];
    const have = pageKind[p];
    if (want === have) continue;
    if (want <= PageKind.RomInRam && have <= PageKind.RomInRam) {
      pageKind[p] = want;
      continue;
    }
    const addr = (p * PAGE_SIZE).toString(16).padStart(8, '0');
    throw new SnapshotError(`the rebuilt machine has ${KIND_NAMES[have] ?? have} at 0x${addr} where the snapshot has ${KIND_NAMES[want] ?? want}`);
  }
  machine.mem.onMapChange();
  // the CPU once more: the devices' loadState may have driven its interrupt line or flushed its TLB
  machine.cpu.loadState(cpu);
}

/** what a host supplies to rebuild a PC: its sinks and extra device factories */
export interface PcHostParts {
  /**
   * the host re-attaches the snapshot's drives itself (in `devices`, as it attached them when it saved,
   * their overlays restored); a snapshot with disks is refused without it
   */
  disks?: boolean;
  serial?: SerialSink;
  serialExtra?: (SerialSink | null | undefined)[];
  /** used when the snapshot's machine had a debug console */
  debugcon?: SerialSink;
  /** the firmware's debug log (port 0x402), if the host wants it: an output only, not in the snapshot */
  firmwareLog?: SerialSink;
  post?: SerialSink;
  devices?: PcDeviceFactory[];
}

/**
 * Builds the PC a snapshot was taken on (from meta.config and the host's sinks), maps its ROMs and loads
 * its state. The host then continues running it (a real-time clock must be started: setRunning(true)).
 */
export async function createPcFromSnapshot(snap: ParsedSnapshot, host: PcHostParts, compressor: Compressor): Promise<Pc> {
  const c = snap.meta.config;
  if (snap.meta.disks.length && !host.disks) {
    throw new SnapshotError(`it holds disks (${snap.meta.disks.map((d) => d.id).join(', ')}), which this host cannot restore`);
  }
  let pc: Pc;
  try {
    pc = createPc({
      memSize: c.memSize,
      deterministic: c.deterministic,
      noReboot: c.noReboot,
      apic: c.apic,
      pci: c.pci,
      debugExit: c.debugExit,
      tscHz: c.tscHz,
      serial: host.serial,
      serialExtra: host.serialExtra,
      debugcon: c.debugcon ? (host.debugcon ?? { write() {} }) : undefined,
      firmwareLog: host.firmwareLog,
      post: host.post,
      devices: host.devices,
      // the VGA's registers and video memory are in its saved state; its option ROM was copied into RAM
      // by the firmware that ran it
      vga: c.devices.includes('vga') ? true : undefined,
    });
  } catch (e) {
    throw new SnapshotError(`cannot build its machine: ${(e as Error).message}`);
  }
  for (const r of snap.meta.roms) {
    const data = await sectionBytes(snap, `rom:${r.name}`, compressor);
    if (data.length !== r.size) throw new SnapshotError(`ROM '${r.name}' holds ${fmtBytes(data.length)}, expected ${fmtBytes(r.size)}`);
    try {
      pc.mem.mapRom(r.base, data, r.name);
    } catch (e) {
      throw new SnapshotError(`cannot map ROM '${r.name}': ${(e as Error).message}`);
    }
  }
  await restoreMachine(snap, pc.machine, compressor);
  return pc;
}

/**
 * Checks each drive's files against what the host finds now: `probe` returns the fingerprint of file `i`
 * of a drive (0: the image, 1…: its parents), or null when it cannot find it. Returns the first problem
 * as a sentence (diskFileProblem), or null when every file is unchanged.
 */
export async function checkDiskRefs(
  refs: DiskRef[],
  probe: (ref: DiskRef, i: number) => Promise<FileFingerprint | null> | FileFingerprint | null,
): Promise<string | null> {
  for (const ref of refs) {
    for (let i = 0; i < ref.files.length; i++) {
      const problem = diskFileProblem(ref, i, await probe(ref, i));
      if (problem) return problem;
    }
  }
  return null;
}
