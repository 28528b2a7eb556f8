/**
 * VirtualBox VDI images: static (fixed), dynamic (normal) and differencing, read and write.
 *
 * Layout (little-endian throughout), as VirtualBox documents it (VDICore.h):
 *
 *   0x000  pre-header: 64 bytes of text ("<<< Oracle VM VirtualBox Disk Image >>>\n" or an older
 *          vendor's), signature 0xBEDA107F at 0x40, version at 0x44 (major << 16 | minor)
 *   0x048  header. Version 1.x: header size, image type (1 dynamic, 2 static, 3 undo, 4 differencing),
 *          flags, 256-byte comment, block map offset, data offset, legacy geometry (its sector size
 *          must be 512), a spare word, disk size (u64), block size (a power of two, 1 MiB as made by
 *          VirtualBox and QEMU), extra bytes per block (stored before each block's data), number of
 *          blocks, number of allocated blocks, and four UUIDs: the image's own (create), its last
 *          modification, the parent's create UUID (link) and the parent's modification UUID; 1.1+ headers
 *          (size 400) add an LCHS geometry. Version 0 ("0.2", very old images) has no header size, no
 *          offsets (the map follows the 348-byte header, the data follows the map), no extra bytes and no
 *          parent-modification UUID.
 *   map    one uint32 per block: the block's index in the data area, 0xFFFFFFFF = not allocated (zeros,
 *          or the parent's data in a differencing image), 0xFFFFFFFE = a zero block (zeros, never the
 *          parent's). Block i's bytes live at dataOffset + entry * (blockExtra + blockSize) + blockExtra.
 *
 * UUIDs are stored as VirtualBox's RTUUID: the first three fields little-endian (like a Windows GUID).
 * The text form here is the one VirtualBox prints (`VBoxManage showmediuminfo`).
 *
 * Writes into an allocated block go straight to its data. A write into an unallocated block appends a
 * whole new block at the end of the data area, in this order: the block's bytes (the write merged with
 * zeros, or with the parent's data in a differencing image), a flush of the file, the block map entry,
 * then the header's allocated-block count. So a crash leaves at worst an unreferenced block at the end
 * (reused by the next allocation) or a count one short (recomputed on open, rewritten with the next
 * allocation); a map entry never points at data that is not on the disk. Allocations are serialised.
 *
 * Differencing images: VirtualBox keeps the parent's location in its media registry, not in the image, so
 * the parent is found by UUID: the image's link UUID must equal the parent's create UUID. Callers pass
 * the files to try (`parentCandidates`, e.g. the sibling .vdi files of the image's directory, opened
 * through the StoreOpener) or their own lookup (`findParent`). The parent is opened read-only and may be
 * a differencing image itself.
 */
import { DiskError, SECTOR_SIZE, type BlockDevice, type ByteStore, type StoreOpener } from './block';

const PREHEADER_SIZE = 0x48;
const SIGNATURE = 0xbeda107f;
const HEADER1_SIZE = 0x180; // VDIHEADER1
const HEADER1PLUS_SIZE = 0x190; // VDIHEADER1PLUS (adds the LCHS geometry)
const HEADER0_SIZE = 348;
const VERSION_0 = 0x00000002;
const VERSION_1_1 = 0x00010001;
const BLOCK_FREE = 0xffffffff;
const BLOCK_ZERO = 0xfffffffe;
const TYPE_DYNAMIC = 1;
const TYPE_STATIC = 2;
const TYPE_UNDO = 3;
const TYPE_DIFF = 4;
const DEFAULT_BLOCK_SIZE = 1 << 20;
/** VirtualBox aligns the block map and the data area to 1 MiB (VDI_DATA_ALIGN); so do we */
const DATA_ALIGN = 1 << 20;
/** QEMU's and VirtualBox's limit: the map of 2^30 - 1 blocks must fit in a uint32 offset */
const MAX_BLOCKS = 0x3fffffff;
const FILE_INFO = '<<< Oracle VM VirtualBox Disk Image >>>\n';
const MAX_PARENT_DEPTH = 64;

export type VdiType = 'dynamic' | 'static' | 'differencing';

/** what the header says (for `x86vm disk info`, parent lookups and tests) */
export interface VdiInfo {
  /** "1.1", "0.2", … */
  version: string;
  type: VdiType;
  comment: string;
  /** capacity in bytes (a multiple of 512: an odd size is rounded down, as VirtualBox does) */
  diskSize: number;
  blockSize: number;
  blockExtra: number;
  blocks: number;
  /** the header's count of allocated blocks */
  blocksAllocated: number;
  blocksOffset: number;
  dataOffset: number;
  uuid: string;
  modifyUuid: string;
  /** the parent's create UUID (all zeros unless differencing) */
  parentUuid: string;
  parentModifyUuid: string;
}

/** where the parent of a differencing image may be (see the file comment) */
export interface VdiOpenOptions {
  readOnly: boolean;
  /**
   * files to try as the parent, opened read-only through the StoreOpener relative to the image (e.g. the
   * other .vdi files of its directory); the one whose create UUID equals the image's link UUID is used
   */
  parentCandidates?: string[];
  /** the host's own lookup of a parent by its create UUID; null when unknown (then the candidates are tried) */
  findParent?: (uuid: string) => Promise<ByteStore | null>;
}

export interface VdiCreateOptions {
  /** capacity in 512-byte sectors */
  sectors: number;
  type: 'static' | 'dynamic';
  /**
   * makes a differencing image over the VDI whose create UUID is `uuid` (`type` is then ignored). Pass the
   * parent's modification UUID to record it, and its opened device so the returned device reads through
   * to it; without `device`, reading a block the child does not hold fails with a clear error.
   */
  parent?: { uuid: string; modifyUuid?: string; device?: BlockDevice };
  /** the image's create UUID (default: random) */
  uuid?: string;
  /** at most 255 bytes of UTF-8 */
  comment?: string;
}

// ---- UUIDs ----

const NULL_UUID = '00000000-0000-0000-0000-000000000000';

/** the text of the RTUUID at `off` (first three fields little-endian) */
function uuidAt(b: Uint8Array, off: number): string {
  const h = (i: number): string => b[off + i].toString(16).padStart(2, '0');
  return (
    h(3) + h(2) + h(1) + h(0) + '-' + h(5) + h(4) + '-' + h(7) + h(6) + '-' + h(8) + h(9) + '-' +
    h(10) + h(11) + h(12) + h(13) + h(14) + h(15)
  );
}

/** stores a UUID given as text in RTUUID byte order; throws on a malformed string */
function putUuid(b: Uint8Array, off: number, text: string): void {
  const hex = text.trim().replace(/^\{|\}$/g, '');
  if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(hex)) {
    throw new Error(`not a UUID: '${text}'`);
  }
  const d = hex.replace(/-/g, '');
  const byte = (i: number): number => parseInt(d.slice(2 * i, 2 * i + 2), 16);
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  for (let i = 0; i < 16; i++) b[off + i] = byte(order[i]);
}

/** a random version-4 UUID as text */
export function randomVdiUuid(): string {
  const r = new Uint8Array(16);
  globalThis.crypto.getRandomValues(r);
  r[6] = (r[6] & 0x0f) | 0x40;
  r[8] = (r[8] & 0x3f) | 0x80;
  let s = '';
  for (let i = 0; i < 16; i++) s += r[i].toString(16).padStart(2, '0');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

// ---- header ----

/** a parsed header plus what the code needs to write it back */
interface Header extends VdiInfo {
  major: number;
  typeCode: number;
  /** file offset of the allocated-block count */
  allocatedField: number;
}

/** a fault in the image's structure: the text of a DiskError without the file name */
class Fault extends Error {}

function u64(dv: DataView, off: number): number {
  const lo = dv.getUint32(off, true);
  const hi = dv.getUint32(off + 4, true);
  if (hi >= 0x200000) return NaN;
  return hi * 0x100000000 + lo;
}

function cString(b: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return new TextDecoder('utf-8', { fatal: false }).decode(b.subarray(off, end));
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** whether the first bytes of a file are a VDI pre-header (the signature at 0x40) */
export function probeVdi(head: Uint8Array): boolean {
  if (head.length < PREHEADER_SIZE) return false;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  return dv.getUint32(0x40, true) === SIGNATURE;
}

/** parses and checks the header (the first 512 bytes of a file of `fileSize` bytes); throws a Fault */
function parseHeader(head: Uint8Array, fileSize: number): Header {
  if (fileSize < PREHEADER_SIZE) {
    throw new Fault(`truncated: ${fileSize} bytes is too short for a VDI image`);
  }
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const signature = dv.getUint32(0x40, true);
  if (signature !== SIGNATURE) {
    throw new Fault(
      `not a VDI image: bad signature 0x${signature.toString(16).padStart(8, '0')} at offset 0x40 (expected 0xbeda107f)`,
    );
  }
  const version = dv.getUint32(0x44, true);
  const major = version >>> 16;
  const minor = version & 0xffff;
  const versionText = `${major}.${minor}`;
  if (major !== 1 && version !== VERSION_0) throw new Fault(`unsupported VDI version ${versionText}`);

  let h: Header;
  if (major === 1) {
    const headerSize = dv.getUint32(0x48, true);
    if (headerSize < HEADER1_SIZE || headerSize > 512 - PREHEADER_SIZE) {
      throw new Fault(`bad VDI header size ${headerSize} (expected ${HEADER1_SIZE} to ${HEADER1PLUS_SIZE})`);
    }
    if (fileSize < PREHEADER_SIZE + headerSize) {
      throw new Fault(`truncated: ${fileSize} bytes is too short for the VDI header (${PREHEADER_SIZE + headerSize} bytes)`);
    }
    const sectorSize = dv.getUint32(0x168, true);
    if (sectorSize !== 0 && sectorSize !== SECTOR_SIZE) throw new Fault(`unsupported sector size ${sectorSize} (not 512)`);
    if (headerSize >= HEADER1PLUS_SIZE) {
      const lchsSector = dv.getUint32(0x1d4, true);
      if (lchsSector !== 0 && lchsSector !== SECTOR_SIZE) throw new Fault(`unsupported sector size ${lchsSector} (not 512)`);
    }
    h = {
      version: versionText,
      major,
      typeCode: dv.getUint32(0x4c, true),
      type: 'dynamic',
      comment: cString(head, 0x54, 256),
      blocksOffset: dv.getUint32(0x154, true),
      dataOffset: dv.getUint32(0x158, true),
      diskSize: u64(dv, 0x170),
      blockSize: dv.getUint32(0x178, true),
      blockExtra: dv.getUint32(0x17c, true),
      blocks: dv.getUint32(0x180, true),
      blocksAllocated: dv.getUint32(0x184, true),
      allocatedField: 0x184,
      uuid: uuidAt(head, 0x188),
      modifyUuid: uuidAt(head, 0x198),
      parentUuid: uuidAt(head, 0x1a8),
      parentModifyUuid: uuidAt(head, 0x1b8),
    };
    if (h.blocksOffset < PREHEADER_SIZE + HEADER1_SIZE) {
      throw new Fault(`bad block map offset ${h.blocksOffset} (inside the header)`);
    }
  } else {
    if (fileSize < PREHEADER_SIZE + HEADER0_SIZE) {
      throw new Fault(`truncated: ${fileSize} bytes is too short for the VDI header (${PREHEADER_SIZE + HEADER0_SIZE} bytes)`);
    }
    const sectorSize = dv.getUint32(0x15c, true);
    if (sectorSize !== 0 && sectorSize !== SECTOR_SIZE) throw new Fault(`unsupported sector size ${sectorSize} (not 512)`);
    const blocks = dv.getUint32(0x16c, true);
    h = {
      version: versionText,
      major,
      typeCode: dv.getUint32(0x48, true),
      type: 'dynamic',
      comment: cString(head, 0x50, 256),
      blocksOffset: PREHEADER_SIZE + HEADER0_SIZE,
      dataOffset: PREHEADER_SIZE + HEADER0_SIZE + 4 * blocks,
      diskSize: u64(dv, 0x160),
      blockSize: dv.getUint32(0x168, true),
      blockExtra: 0,
      blocks,
      blocksAllocated: dv.getUint32(0x170, true),
      allocatedField: 0x170,
      uuid: uuidAt(head, 0x174),
      modifyUuid: uuidAt(head, 0x184),
      parentUuid: uuidAt(head, 0x194),
      parentModifyUuid: NULL_UUID,
    };
  }

  switch (h.typeCode) {
    case TYPE_DYNAMIC:
      h.type = 'dynamic';
      break;
    case TYPE_STATIC:
      h.type = 'static';
      break;
    case TYPE_DIFF:
      h.type = 'differencing';
      if (h.parentUuid === NULL_UUID) throw new Fault('differencing image without a parent UUID');
      break;
    case TYPE_UNDO:
      throw new Fault('unsupported VDI image type 3 (undo image)');
    default:
      throw new Fault(`unsupported VDI image type ${h.typeCode}`);
  }
  if (!Number.isFinite(h.diskSize)) throw new Fault('disk size too large (above 2^53 bytes)');
  h.diskSize -= h.diskSize % SECTOR_SIZE;
  if (h.diskSize === 0) throw new Fault('disk size is 0');
  if (!isPowerOfTwo(h.blockSize) || h.blockSize < SECTOR_SIZE) throw new Fault(`bad block size ${h.blockSize} (not a power of two of at least 512)`);
  if (h.blockExtra !== 0 && (!isPowerOfTwo(h.blockExtra) || h.blockExtra % SECTOR_SIZE !== 0)) {
    throw new Fault(`unsupported block extra size ${h.blockExtra} (not a power of two, sector-aligned)`);
  }
  if (h.blocks === 0 || h.blocks * h.blockSize < h.diskSize) {
    throw new Fault(`${h.blocks} blocks of ${h.blockSize} bytes cannot hold the disk size ${h.diskSize}`);
  }
  if (h.blocks > MAX_BLOCKS) throw new Fault(`too many blocks (${h.blocks}, at most ${MAX_BLOCKS})`);
  if (h.blocksAllocated > h.blocks) throw new Fault(`allocated block count ${h.blocksAllocated} exceeds the ${h.blocks} blocks`);
  if (h.dataOffset < h.blocksOffset + 4 * h.blocks) {
    throw new Fault(`bad data offset ${h.dataOffset} (the block map ends at ${h.blocksOffset + 4 * h.blocks})`);
  }
  if (h.blocksOffset + 4 * h.blocks > fileSize) {
    throw new Fault(
      `truncated: the block map ends at byte ${h.blocksOffset + 4 * h.blocks} but the file has ${fileSize} bytes`,
    );
  }
  return h;
}

/** the problems of a block map: fatal (open refuses) and minor (check reports, open tolerates) */
function scanMap(h: Header, map: Uint32Array, fileSize: number): { fatal: string[]; minor: string[] } {
  const fatal: string[] = [];
  const minor: string[] = [];
  const stride = h.blockSize + h.blockExtra;
  const owner = new Int32Array(h.blocks).fill(-1);
  let allocated = 0;
  let firstPastEof = -1;
  for (let i = 0; i < h.blocks; i++) {
    const e = map[i];
    if (e >= BLOCK_ZERO) continue;
    if (e >= h.blocks) {
      fatal.push(`block map entry ${i} is ${e}, beyond the ${h.blocks} blocks of the image`);
      continue;
    }
    allocated++;
    if (owner[e] >= 0) {
      fatal.push(`block map entries ${owner[e]} and ${i} both point to data block ${e}`);
      continue;
    }
    owner[e] = i;
    const end = h.dataOffset + (e + 1) * stride;
    if (end > fileSize && firstPastEof < 0) {
      firstPastEof = i;
      fatal.push(
        `truncated: block map entry ${i} points to data block ${e} at ${h.dataOffset + e * stride}..${end}, ` +
          `past the end of the file (${fileSize} bytes)`,
      );
    }
  }
  if (allocated !== h.blocksAllocated) {
    minor.push(`the header counts ${h.blocksAllocated} allocated blocks but the block map holds ${allocated}`);
  }
  return { fatal, minor };
}

async function readHeaderOf(store: ByteStore): Promise<Header> {
  const head = new Uint8Array(512);
  await store.read(0, head);
  try {
    return parseHeader(head, store.size());
  } catch (e) {
    if (e instanceof Fault) throw new DiskError(store.name, e.message);
    throw e;
  }
}

async function readMap(store: ByteStore, h: Header): Promise<Uint32Array> {
  const raw = new Uint8Array(4 * h.blocks);
  await store.read(h.blocksOffset, raw);
  const map = new Uint32Array(h.blocks);
  const dv = new DataView(raw.buffer);
  for (let i = 0; i < h.blocks; i++) map[i] = dv.getUint32(4 * i, true);
  return map;
}

function publicInfo(h: Header): VdiInfo {
  const { major: _m, typeCode: _t, allocatedField: _a, ...info } = h;
  return info;
}

/** the header of a VDI file (checked as on open; the block map is not read) */
export async function readVdiInfo(store: ByteStore): Promise<VdiInfo> {
  return publicInfo(await readHeaderOf(store));
}

/**
 * The problems of a VDI file, one line each (without the file name), for `x86vm disk check`; empty when
 * it is consistent. Reads only; never throws for a damaged image (I/O errors still reject).
 */
export async function checkVdi(store: ByteStore): Promise<string[]> {
  const head = new Uint8Array(512);
  await store.read(0, head);
  let h: Header;
  try {
    h = parseHeader(head, store.size());
  } catch (e) {
    if (e instanceof Fault) return [e.message];
    throw e;
  }
  const map = await readMap(store, h);
  const { fatal, minor } = scanMap(h, map, store.size());
  return [...fatal, ...minor];
}

// ---- the device ----

export class VdiImage implements BlockDevice {
  readonly name: string;
  readonly format: string;
  readonly sectors: number;
  readonly readOnly: boolean;
  readonly info: VdiInfo;
  /** the parent of a differencing image (null otherwise, or when not attached) */
  readonly parent: BlockDevice | null;

  private readonly store: ByteStore;
  private readonly h: Header;
  private readonly map: Uint32Array;
  private readonly blockSize: number;
  private readonly blockShift: number;
  private readonly stride: number;
  /** the data-area index the next new block gets */
  private nextIndex: number;
  /** allocations run one at a time, in order */
  private allocTail: Promise<void> = Promise.resolve();
  private closed = false;

  /** @internal use openVdi / createVdi */
  constructor(store: ByteStore, h: Header, map: Uint32Array, readOnly: boolean, parent: BlockDevice | null) {
    this.store = store;
    this.h = h;
    this.map = map;
    this.name = store.name;
    this.format = `vdi-${h.type}`;
    this.sectors = h.diskSize / SECTOR_SIZE;
    this.readOnly = readOnly || store.readOnly;
    this.parent = parent;
    this.info = publicInfo(h);
    this.blockSize = h.blockSize;
    this.blockShift = Math.log2(h.blockSize);
    this.stride = h.blockSize + h.blockExtra;
    let next = h.blocksAllocated;
    for (let i = 0; i < map.length; i++) if (map[i] < BLOCK_ZERO && map[i] + 1 > next) next = map[i] + 1;
    this.nextIndex = next;
  }

  private check(sector: number, length: number): void {
    if (this.closed) throw new DiskError(this.name, 'the image is closed');
    if (!Number.isSafeInteger(sector) || sector < 0 || length % SECTOR_SIZE !== 0) {
      throw new DiskError(this.name, `bad request: sector ${sector}, ${length} bytes (whole sectors only)`);
    }
    if (sector + length / SECTOR_SIZE > this.sectors) {
      throw new DiskError(this.name, `request past the end of the disk: sector ${sector} + ${length / SECTOR_SIZE} of ${this.sectors}`);
    }
  }

  private blockData(entry: number): number {
    return this.h.dataOffset + entry * this.stride + this.h.blockExtra;
  }

  /** fills buf from the parent at byte `offset` (zeros past the parent's end, or with no parent) */
  private async readParent(offset: number, buf: Uint8Array): Promise<void> {
    const p = this.parent;
    if (!p) {
      if (this.h.type === 'differencing') {
        throw new DiskError(this.name, `the parent image (UUID ${this.h.parentUuid}) is not attached`);
      }
      buf.fill(0);
      return;
    }
    const limit = p.sectors * SECTOR_SIZE;
    const n = Math.max(0, Math.min(buf.length, limit - offset));
    if (n > 0) await p.read(offset / SECTOR_SIZE, buf.subarray(0, n));
    if (n < buf.length) buf.fill(0, n);
  }

  async read(sector: number, buf: Uint8Array): Promise<void> {
    this.check(sector, buf.length);
    const ops: Promise<void>[] = [];
    const map = this.map;
    const bs = this.blockSize;
    let byte = sector * SECTOR_SIZE;
    const end = byte + buf.length;
    let pos = 0;
    // a run of pieces read in one request: kind 1 = this file at runSrc, kind 2 = the parent at runSrc
    let runKind = 0;
    let runPos = 0;
    let runSrc = 0;
    let runLen = 0;
    const flushRun = (): void => {
      if (runKind === 1) ops.push(this.store.read(runSrc, buf.subarray(runPos, runPos + runLen)));
      else if (runKind === 2) ops.push(this.readParent(runSrc, buf.subarray(runPos, runPos + runLen)));
      runKind = 0;
    };
    while (byte < end) {
      const b = Math.floor(byte / bs);
      const inBlock = byte - b * bs;
      const n = Math.min(bs - inBlock, end - byte);
      const e = map[b];
      let kind: number;
      let src = 0;
      if (e < BLOCK_ZERO) {
        kind = 1;
        src = this.blockData(e) + inBlock;
      } else if (e === BLOCK_FREE && this.h.type === 'differencing') {
        kind = 2;
        src = byte;
      } else {
        kind = 0;
        buf.fill(0, pos, pos + n);
      }
      if (kind !== 0 && kind === runKind && runSrc + runLen === src) {
        runLen += n;
      } else {
        flushRun();
        if (kind !== 0) {
          runKind = kind;
          runPos = pos;
          runSrc = src;
          runLen = n;
        }
      }
      pos += n;
      byte += n;
    }
    flushRun();
    await Promise.all(ops);
  }

  async write(sector: number, data: Uint8Array): Promise<void> {
    if (this.readOnly) throw new DiskError(this.name, 'the image is read-only');
    this.check(sector, data.length);
    const ops: Promise<void>[] = [];
    const map = this.map;
    const bs = this.blockSize;
    let byte = sector * SECTOR_SIZE;
    const end = byte + data.length;
    let pos = 0;
    let runPos = 0;
    let runDst = -1;
    let runLen = 0;
    while (byte < end) {
      const b = Math.floor(byte / bs);
      const inBlock = byte - b * bs;
      const n = Math.min(bs - inBlock, end - byte);
      const e = map[b];
      if (e < BLOCK_ZERO) {
        const dst = this.blockData(e) + inBlock;
        if (runDst >= 0 && runDst + runLen === dst) runLen += n;
        else {
          if (runDst >= 0) ops.push(this.store.write(runDst, data.subarray(runPos, runPos + runLen)));
          runPos = pos;
          runDst = dst;
          runLen = n;
        }
      } else {
        ops.push(this.allocate(b, inBlock, data.subarray(pos, pos + n)));
      }
      pos += n;
      byte += n;
    }
    if (runDst >= 0) ops.push(this.store.write(runDst, data.subarray(runPos, runPos + runLen)));
    await Promise.all(ops);
  }

  /** queues the allocation of block `b` holding `piece` at `inBlock` (see the file comment for the order) */
  private allocate(b: number, inBlock: number, piece: Uint8Array): Promise<void> {
    const job = this.allocTail.then(() => this.allocateNow(b, inBlock, piece));
    this.allocTail = job.then(
      () => undefined,
      () => undefined,
    );
    return job;
  }

  private async allocateNow(b: number, inBlock: number, piece: Uint8Array): Promise<void> {
    const old = this.map[b];
    if (old < BLOCK_ZERO) {
      // an earlier queued allocation made it
      await this.store.write(this.blockData(old) + inBlock, piece);
      return;
    }
    if (this.nextIndex >= this.h.blocks) {
      throw new DiskError(this.name, `no room for a new block: all ${this.h.blocks} data blocks are in use`);
    }
    const extra = this.h.blockExtra;
    const block = new Uint8Array(this.stride);
    const whole = inBlock === 0 && piece.length === this.blockSize;
    if (!whole && old === BLOCK_FREE && this.h.type === 'differencing') {
      await this.readParent(b * this.blockSize, block.subarray(extra));
    }
    block.set(piece, extra + inBlock);
    const index = this.nextIndex;
    await this.store.write(this.h.dataOffset + index * this.stride, block);
    this.nextIndex = index + 1;
    // the data must be on the disk before a map entry points at it
    await this.store.flush();
    const entry = new Uint8Array(4);
    const dv = new DataView(entry.buffer);
    dv.setUint32(0, index, true);
    await this.store.write(this.h.blocksOffset + 4 * b, entry);
    this.map[b] = index;
    this.h.blocksAllocated = this.nextIndex;
    this.info.blocksAllocated = this.nextIndex;
    dv.setUint32(0, this.nextIndex, true);
    await this.store.write(this.h.allocatedField, entry);
  }

  async flush(): Promise<void> {
    if (this.readOnly || this.closed) return;
    await this.allocTail;
    await this.store.flush();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.allocTail;
    if (!this.readOnly) await this.store.flush();
    this.closed = true;
    await this.store.close();
    if (this.parent) await this.parent.close();
  }

  /**
   * Whether sectors from `sector` hold data in this image (or, for a differencing image, in its chain),
   * and for how many sectors (up to `count`) that stays the same: lets convert skip unallocated ranges.
   */
  async extent(sector: number, count: number): Promise<{ allocated: boolean; sectors: number }> {
    const per = this.blockSize / SECTOR_SIZE;
    const limit = Math.min(count, this.sectors - sector);
    const kindOf = (b: number): number => {
      const e = this.map[b];
      if (e < BLOCK_ZERO) return 1;
      if (e === BLOCK_FREE && this.h.type === 'differencing') return 2;
      return 0;
    };
    const first = kindOf(Math.floor(sector / per));
    let n = 0;
    while (n < limit) {
      const b = Math.floor((sector + n) / per);
      if (kindOf(b) !== first) break;
      n = Math.min(limit, (b + 1) * per - sector);
    }
    if (first === 2) {
      const p = this.parent as (BlockDevice & { extent?: VdiImage['extent'] }) | null;
      if (!p) return { allocated: true, sectors: n };
      if (sector >= p.sectors) return { allocated: false, sectors: n };
      if (!p.extent) return { allocated: true, sectors: n };
      const r = await p.extent(sector, Math.min(n, p.sectors - sector));
      return { allocated: r.allocated, sectors: Math.max(1, r.sectors) };
    }
    return { allocated: first === 1, sectors: n };
  }
}

// ---- open ----

async function openChain(
  store: ByteStore,
  opener: StoreOpener | null,
  options: VdiOpenOptions,
  depth: number,
): Promise<VdiImage> {
  const h = await readHeaderOf(store);
  const map = await readMap(store, h);
  const { fatal } = scanMap(h, map, store.size());
  if (fatal.length > 0) {
    const more = fatal.length > 1 ? ` (and ${fatal.length - 1} more problem${fatal.length > 2 ? 's' : ''})` : '';
    throw new DiskError(store.name, fatal[0] + more);
  }
  let parent: VdiImage | null = null;
  if (h.type === 'differencing') {
    if (depth >= MAX_PARENT_DEPTH) throw new DiskError(store.name, `differencing chain deeper than ${MAX_PARENT_DEPTH} images`);
    const parentStore = await findParentStore(store, h, opener, options);
    try {
      parent = await openChain(parentStore, opener, { ...options, readOnly: true }, depth + 1);
    } catch (e) {
      await parentStore.close().catch(() => undefined);
      throw e;
    }
  }
  return new VdiImage(store, h, map, options.readOnly, parent);
}

async function findParentStore(
  store: ByteStore,
  h: Header,
  opener: StoreOpener | null,
  options: VdiOpenOptions,
): Promise<ByteStore> {
  const want = h.parentUuid;
  const tried: string[] = [];
  if (options.findParent) {
    const s = await options.findParent(want);
    if (s) {
      if (await hasUuid(s, want)) return s;
      tried.push(s.name);
      await s.close().catch(() => undefined);
    }
  }
  const candidates = options.parentCandidates ?? [];
  if (candidates.length > 0 && !opener) {
    throw new DiskError(store.name, 'differencing image: parent candidates were given without a StoreOpener to open them');
  }
  if (opener) {
    const self = opener.resolve(store.name);
    for (const c of candidates) {
      if (opener.resolve(c, store.name) === self) continue;
      if (!(await opener.exists(c, store.name))) continue;
      let s: ByteStore;
      try {
        s = await opener.open(c, { readOnly: true, relativeTo: store.name });
      } catch {
        tried.push(opener.resolve(c, store.name));
        continue;
      }
      if (await hasUuid(s, want)) return s;
      tried.push(s.name);
      await s.close().catch(() => undefined);
    }
  }
  const where = tried.length > 0 ? `none of ${tried.join(', ')} is it` : 'no candidate files were given';
  throw new DiskError(store.name, `the parent of this differencing image (create UUID ${want}) was not found: ${where}`);
}

async function hasUuid(s: ByteStore, want: string): Promise<boolean> {
  if (s.size() < 512) return false;
  const head = new Uint8Array(512);
  await s.read(0, head);
  try {
    return parseHeader(head, s.size()).uuid === want;
  } catch (e) {
    if (e instanceof Fault) return false;
    throw e;
  }
}

/**
 * Opens a VDI image. A damaged image (bad signature or version, truncated, a block map entry past the
 * end of the file, beyond the image or shared by two blocks) is refused with a DiskError naming the file
 * and the fault, and nothing is written to it. A differencing image finds its parent as described above
 * (`opener` may be null when no candidates are given).
 */
export async function openVdi(store: ByteStore, opener: StoreOpener | null, options: VdiOpenOptions): Promise<BlockDevice> {
  return openChain(store, opener, options, 0);
}

// ---- create ----

/**
 * Makes `store` (emptied first) a new VDI 1.1 image, as VirtualBox lays it out: a 400-byte header, the
 * block map at 1 MiB, data from the next MiB boundary; a static image's blocks are all mapped (the file
 * is extended sparsely), a dynamic one's all unallocated. The header goes last, so an interrupted
 * create leaves no file that looks like a VDI.
 */
export async function createVdi(store: ByteStore, options: VdiCreateOptions): Promise<VdiImage> {
  const { sectors } = options;
  if (!Number.isSafeInteger(sectors) || sectors <= 0) throw new DiskError(store.name, `bad disk size: ${sectors} sectors`);
  const diskSize = sectors * SECTOR_SIZE;
  const blockSize = DEFAULT_BLOCK_SIZE;
  const blocks = Math.ceil(diskSize / blockSize);
  if (blocks > MAX_BLOCKS) throw new DiskError(store.name, `disk too large for VDI (${blocks} blocks of 1 MiB, at most ${MAX_BLOCKS})`);
  const typeCode = options.parent ? TYPE_DIFF : options.type === 'static' ? TYPE_STATIC : TYPE_DYNAMIC;
  const blocksOffset = DATA_ALIGN;
  const dataOffset = Math.ceil((blocksOffset + 4 * blocks) / DATA_ALIGN) * DATA_ALIGN;
  if (dataOffset > 0xffffffff) throw new DiskError(store.name, 'disk too large for VDI (data offset past 4 GiB)');

  const head = new Uint8Array(512);
  const dv = new DataView(head.buffer);
  for (let i = 0; i < FILE_INFO.length; i++) head[i] = FILE_INFO.charCodeAt(i);
  dv.setUint32(0x40, SIGNATURE, true);
  dv.setUint32(0x44, VERSION_1_1, true);
  dv.setUint32(0x48, HEADER1PLUS_SIZE, true);
  dv.setUint32(0x4c, typeCode, true);
  dv.setUint32(0x50, 0, true);
  if (options.comment) {
    const c = new TextEncoder().encode(options.comment);
    if (c.length > 255) throw new DiskError(store.name, 'the comment is longer than 255 bytes');
    head.set(c, 0x54);
  }
  dv.setUint32(0x154, blocksOffset, true);
  dv.setUint32(0x158, dataOffset, true);
  dv.setUint32(0x168, SECTOR_SIZE, true); // legacy geometry: not calculated, sector size 512
  dv.setUint32(0x170, diskSize % 0x100000000, true);
  dv.setUint32(0x174, Math.floor(diskSize / 0x100000000), true);
  dv.setUint32(0x178, blockSize, true);
  dv.setUint32(0x17c, 0, true);
  dv.setUint32(0x180, blocks, true);
  dv.setUint32(0x184, typeCode === TYPE_STATIC ? blocks : 0, true);
  try {
    putUuid(head, 0x188, options.uuid ?? randomVdiUuid());
    putUuid(head, 0x198, randomVdiUuid());
    if (options.parent) {
      putUuid(head, 0x1a8, options.parent.uuid);
      putUuid(head, 0x1b8, options.parent.modifyUuid ?? NULL_UUID);
    }
  } catch (e) {
    throw new DiskError(store.name, (e as Error).message);
  }
  dv.setUint32(0x1d4, SECTOR_SIZE, true); // LCHS geometry: not calculated, sector size 512

  const map = new Uint8Array(4 * blocks);
  const mv = new DataView(map.buffer);
  for (let i = 0; i < blocks; i++) mv.setUint32(4 * i, typeCode === TYPE_STATIC ? i : BLOCK_FREE, true);

  await store.truncate(0);
  await store.write(blocksOffset, map);
  await store.truncate(dataOffset + (typeCode === TYPE_STATIC ? blocks * blockSize : 0));
  await store.flush();
  await store.write(0, head);
  await store.flush();

  const h = parseHeader(head, store.size());
  const parsedMap = new Uint32Array(blocks);
  for (let i = 0; i < blocks; i++) parsedMap[i] = mv.getUint32(4 * i, true);
  return new VdiImage(store, h, parsedMap, false, options.parent?.device ?? null);
}
