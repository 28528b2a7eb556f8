/**
 * VHD images (Microsoft "Virtual Hard Disk Image Format Specification", v1.0): fixed, dynamic and
 * differencing disks, read and write.
 *
 * Layout (all fields big-endian):
 *   fixed:        [disk data: current size bytes][footer 512]
 *   dynamic/diff: [footer copy 512][dynamic header 1024][BAT][parent locator data…][blocks…][footer 512]
 * A block is a sector bitmap (one bit per sector, most significant bit first, padded to 512 bytes) followed
 * by the block's data (2 MiB by default). The BAT maps block numbers to the sector offset of the block in
 * the file, 0xFFFFFFFF for a block that is not allocated.
 *
 * Sizes: the disk's size is the footer's current size, whatever the CHS geometry says (Hyper-V, VirtualBox
 * and Virtual PC files alike). Geometry is computed with the specification's algorithm when creating.
 *
 * Reads: a dynamic disk's unallocated block reads as zeros; a differencing disk reads it from its parent,
 * and inside an allocated block reads the sectors whose bitmap bit is clear from the parent too. In a
 * dynamic (not differencing) disk an allocated block's data is read as stored (QEMU writes all bitmap bits
 * set; we leave the sectors never written as zeros in the file), so the bitmap does not need consulting.
 *
 * Writes keep the file consistent at every moment, data before the metadata that points to it:
 * a new block is placed where the footer is: first the footer is written at the new end of the file (so the
 * last 512 bytes are always a valid footer), then the block's bitmap and data, then (after a flush barrier,
 * so a power cut cannot reorder them) its BAT entry. Bitmap bits are set after the data they cover is
 * written. Allocations and metadata writes are serialised by a mutex; data writes to allocated blocks go
 * straight to the file.
 *
 * Differencing parents: the parent is found through the parent locators, in this order: W2ru (relative,
 * UTF-16LE), W2ku (absolute, UTF-16LE), Wi2r, Wi2k (ASCII, deprecated), MacX (a file:// URL), then the
 * parent's name from the header next to the child. The first one that exists and whose unique ID matches
 * the child's record is used; a missing or changed parent is an error naming what was tried.
 * We also create differencing VHDs over non-VHD parents (raw, VDI): the locators are written the same
 * way, the parent unique ID is all zeros (there is none to record), and on opening we then check only that
 * the parent is at least as large as the child.
 */
import { DiskError, SECTOR_SIZE, type BlockDevice, type ByteStore, type StoreOpener } from './block';
import {
  Mutex,
  ascii,
  baseName,
  bytesEqual,
  checkRequest,
  decodeUtf16,
  dirName,
  encodeUtf16,
  getU64,
  putAscii,
  randomUuid,
  relativePath,
  setU64,
  uuidText,
} from './util';

export const VHD_FOOTER_SIZE = 512;
const HEADER_SIZE = 1024;
const FOOTER_COOKIE = 'conectix';
const HEADER_COOKIE = 'cxsparse';
export const VHD_TYPE_FIXED = 2;
export const VHD_TYPE_DYNAMIC = 3;
export const VHD_TYPE_DIFFERENCING = 4;
const UNALLOCATED = 0xffffffff;
export const VHD_DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024;
/** the largest VHD: 2040 GiB (as QEMU and Hyper-V allow) */
export const VHD_MAX_SECTORS = 0xff000000;
/** the largest CHS geometry, 65535 cylinders x 16 heads x 255 sectors */
export const VHD_MAX_CHS = 65535 * 16 * 255;
/** seconds from 1970-01-01 to 2000-01-01, the VHD epoch */
const EPOCH_2000 = 946684800;
const CREATOR_APP = 'x86v';
const CREATOR_VERSION = 0x00010000;
const HOST_OS_WINDOWS = 'Wi2k';
/** at most this many problems of one kind are listed by check */
const MAX_LISTED = 20;

const TYPE_NAMES: Record<number, string> = { 2: 'fixed', 3: 'dynamic', 4: 'differencing' };

// ---------------------------------------------------------------------------------------------------
// structures

export interface Geometry {
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
}

export interface VhdFooter {
  /** the 512 bytes as stored */
  raw: Uint8Array;
  features: number;
  version: number;
  /** offset of the dynamic header (-1 for a fixed disk) */
  dataOffset: number;
  timestamp: number;
  creatorApp: string;
  creatorVersion: number;
  creatorHostOs: string;
  originalSize: number;
  currentSize: number;
  geometry: Geometry;
  diskType: number;
  checksum: number;
  uniqueId: Uint8Array;
  savedState: number;
}

export interface ParentLocator {
  code: string;
  /** platform data space as stored (sectors per the spec; some writers store bytes) */
  space: number;
  length: number;
  offset: number;
}

export interface VhdHeader {
  raw: Uint8Array;
  tableOffset: number;
  version: number;
  maxTableEntries: number;
  blockSize: number;
  checksum: number;
  parentUniqueId: Uint8Array;
  parentTimestamp: number;
  parentName: string;
  locators: ParentLocator[];
}

/** one's complement of the byte sum, skipping the 4-byte checksum field at `skip` */
export function vhdChecksum(buf: Uint8Array, skip: number): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) {
    if (i >= skip && i < skip + 4) continue;
    sum += buf[i];
  }
  return ~sum >>> 0;
}

/** CHS geometry for a disk of `sectors` sectors: the algorithm in the VHD specification (appendix) */
export function vhdGeometry(sectors: number): Geometry {
  const total = Math.min(sectors, VHD_MAX_CHS);
  let spt: number;
  let heads: number;
  let cth: number;
  if (total >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cth = Math.floor(total / spt);
  } else {
    spt = 17;
    cth = Math.floor(total / spt);
    heads = Math.floor((cth + 1023) / 1024);
    if (heads < 4) heads = 4;
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cth = Math.floor(total / spt);
    }
    if (cth >= heads * 1024) {
      spt = 63;
      heads = 16;
      cth = Math.floor(total / spt);
    }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectorsPerTrack: spt };
}

/**
 * The size a VHD of at least `sectors` sectors gets when its size should be exactly a CHS geometry (what
 * Virtual PC and qemu-img do, so that readers that size a VHD by its geometry agree with the footer):
 * the smallest geometry's product not below `sectors`; sizes past the largest geometry stay as they are.
 */
export function vhdRoundedSectors(sectors: number): number {
  if (sectors >= VHD_MAX_CHS) return sectors;
  for (let s = sectors; ; s++) {
    const g = vhdGeometry(s);
    const product = g.cylinders * g.heads * g.sectorsPerTrack;
    if (product >= sectors) return product;
  }
}

function parseFooter(raw: Uint8Array): VhdFooter {
  const v = new DataView(raw.buffer, raw.byteOffset, 512);
  return {
    raw,
    features: v.getUint32(8),
    version: v.getUint32(12),
    dataOffset: getU64(v, 16),
    timestamp: v.getUint32(24),
    creatorApp: ascii(raw, 28, 4),
    creatorVersion: v.getUint32(32),
    creatorHostOs: ascii(raw, 36, 4),
    originalSize: getU64(v, 40),
    currentSize: getU64(v, 48),
    geometry: { cylinders: v.getUint16(56), heads: raw[58], sectorsPerTrack: raw[59] },
    diskType: v.getUint32(60),
    checksum: v.getUint32(64),
    uniqueId: raw.slice(68, 84),
    savedState: raw[84],
  };
}

function parseHeader(raw: Uint8Array): VhdHeader {
  const v = new DataView(raw.buffer, raw.byteOffset, HEADER_SIZE);
  const locators: ParentLocator[] = [];
  for (let i = 0; i < 8; i++) {
    const o = 576 + i * 24;
    const codeNum = v.getUint32(o);
    if (codeNum === 0) continue;
    locators.push({ code: ascii(raw, o, 4), space: v.getUint32(o + 4), length: v.getUint32(o + 8), offset: getU64(v, o + 16) });
  }
  return {
    raw,
    tableOffset: getU64(v, 16),
    version: v.getUint32(24),
    maxTableEntries: v.getUint32(28),
    blockSize: v.getUint32(32),
    checksum: v.getUint32(36),
    parentUniqueId: raw.slice(40, 56),
    parentTimestamp: v.getUint32(56),
    parentName: decodeUtf16(raw.subarray(64, 576), false),
    locators,
  };
}

function hasCookie(buf: Uint8Array, offset: number, cookie: string): boolean {
  if (buf.length < offset + cookie.length) return false;
  for (let i = 0; i < cookie.length; i++) if (buf[offset + i] !== cookie.charCodeAt(i)) return false;
  return true;
}

/** whether the file looks like a VHD: a footer at its end (or 511 bytes from it), or a copy at offset 0 */
export function probeVhd(head: Uint8Array, tail: Uint8Array, tail511?: Uint8Array): boolean {
  return hasCookie(tail, 0, FOOTER_COOKIE) || hasCookie(head, 0, FOOTER_COOKIE) || (!!tail511 && hasCookie(tail511, 0, FOOTER_COOKIE));
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function isZeroId(id: Uint8Array): boolean {
  for (let i = 0; i < id.length; i++) if (id[i] !== 0) return false;
  return true;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

// ---------------------------------------------------------------------------------------------------
// analysis: shared by open (the first fatal problem is an error) and check (every problem is listed)

interface Problem {
  text: string;
  /** false for problems that do not stop the image from opening (a stale footer copy, extra bytes) */
  fatal: boolean;
}

interface Layout {
  footer: VhdFooter;
  /** where the footer is (the end of the disk data or of the last block) */
  footerPos: number;
  header?: VhdHeader;
  bat?: Uint32Array;
  /** bytes of each block's sector bitmap (padded to 512) */
  bitmapBytes: number;
  /** end of the metadata before the first block (header, BAT, locator data) */
  metadataEnd: number;
  /** where the next block goes */
  nextFree: number;
  problems: Problem[];
}

async function readAt(store: ByteStore, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await store.read(offset, buf);
  return buf;
}

async function analyze(store: ByteStore): Promise<Layout | { problems: Problem[] }> {
  const problems: Problem[] = [];
  const fatal = (text: string): { problems: Problem[] } => {
    problems.push({ text, fatal: true });
    return { problems };
  };
  const size = store.size();
  if (size < VHD_FOOTER_SIZE) return fatal(`too small to be a VHD image (${size} bytes)`);

  // the footer: at the end, or 511 bytes from the end (some old writers dropped the last reserved byte)
  let footerPos = size - VHD_FOOTER_SIZE;
  let raw = await readAt(store, footerPos, VHD_FOOTER_SIZE);
  if (!hasCookie(raw, 0, FOOTER_COOKIE)) {
    const alt = await readAt(store, size - 511, VHD_FOOTER_SIZE);
    if (hasCookie(alt, 0, FOOTER_COOKIE)) {
      raw = alt;
      footerPos = size - 511;
    } else {
      const head = await readAt(store, 0, VHD_FOOTER_SIZE);
      if (hasCookie(head, 0, FOOTER_COOKIE)) {
        return fatal(`truncated or damaged: no VHD footer at the end of the file (${size} bytes); the copy at offset 0 is intact`);
      }
      return fatal(`not a VHD image: no 'conectix' footer at the end of the file`);
    }
  }
  const footer = parseFooter(raw);
  const sum = vhdChecksum(raw, 64);
  if (sum !== footer.checksum) {
    return fatal(`bad footer checksum (stored ${hex32(footer.checksum)}, computed ${hex32(sum)})`);
  }
  if (footer.version >>> 16 !== 1) return fatal(`unsupported VHD version ${hex32(footer.version)}`);
  if (!(footer.diskType in TYPE_NAMES)) return fatal(`unsupported VHD disk type ${footer.diskType}`);
  const cur = footer.currentSize;
  if (!Number.isSafeInteger(cur) || cur < 0 || cur % SECTOR_SIZE !== 0) {
    return fatal(`bad disk size in the footer: ${cur} is not a whole number of sectors`);
  }
  if (cur / SECTOR_SIZE > VHD_MAX_SECTORS) return fatal(`disk size ${cur} is past the VHD limit of 2040 GiB`);

  if (footer.diskType === VHD_TYPE_FIXED) {
    if (footerPos < cur) {
      return fatal(`truncated: the file holds ${footerPos} bytes of disk data, the footer says ${cur}`);
    }
    if (footerPos > cur) {
      problems.push({ text: `${footerPos - cur} unexpected bytes between the disk data and the footer`, fatal: false });
    }
    return { footer, footerPos, bitmapBytes: 0, metadataEnd: 0, nextFree: footerPos, problems };
  }

  // dynamic and differencing disks
  const copy = await readAt(store, 0, VHD_FOOTER_SIZE);
  if (!hasCookie(copy, 0, FOOTER_COOKIE)) {
    problems.push({ text: 'the footer copy at offset 0 is missing', fatal: false });
  } else if (vhdChecksum(copy, 64) !== new DataView(copy.buffer).getUint32(64)) {
    problems.push({ text: 'the footer copy at offset 0 has a bad checksum', fatal: false });
  } else if (!bytesEqual(copy, raw)) {
    problems.push({ text: 'the footer copy at offset 0 differs from the footer at the end', fatal: false });
  }
  const hOff = footer.dataOffset;
  if (!Number.isSafeInteger(hOff) || hOff < 0 || hOff + HEADER_SIZE > footerPos) {
    return fatal(`the dynamic header offset ${hOff} in the footer is outside the file`);
  }
  const hraw = await readAt(store, hOff, HEADER_SIZE);
  if (!hasCookie(hraw, 0, HEADER_COOKIE)) return fatal(`no dynamic disk header ('cxsparse') at offset ${hOff}`);
  const header = parseHeader(hraw);
  const hsum = vhdChecksum(hraw, 36);
  if (hsum !== header.checksum) {
    return fatal(`bad dynamic header checksum (stored ${hex32(header.checksum)}, computed ${hex32(hsum)})`);
  }
  if (header.version >>> 16 !== 1) return fatal(`unsupported dynamic header version ${hex32(header.version)}`);
  const bs = header.blockSize;
  if (bs < SECTOR_SIZE || bs > 256 * 1024 * 1024 || (bs & (bs - 1)) !== 0) return fatal(`bad block size ${bs}`);
  const blocksNeeded = Math.ceil(cur / bs);
  if (header.maxTableEntries < blocksNeeded) {
    return fatal(`the BAT has ${header.maxTableEntries} entries; a disk of ${cur} bytes needs ${blocksNeeded}`);
  }
  const tOff = header.tableOffset;
  const batBytes = roundUp(header.maxTableEntries * 4, SECTOR_SIZE);
  if (!Number.isSafeInteger(tOff) || tOff < 0 || tOff + header.maxTableEntries * 4 > footerPos) {
    return fatal(`the BAT (offset ${tOff}, ${header.maxTableEntries} entries) lies past the end of the file`);
  }
  const batRaw = await readAt(store, tOff, header.maxTableEntries * 4);
  const bat = new Uint32Array(header.maxTableEntries);
  const bv = new DataView(batRaw.buffer);
  for (let i = 0; i < bat.length; i++) bat[i] = bv.getUint32(i * 4);

  const bitmapBytes = roundUp(Math.ceil(bs / SECTOR_SIZE / 8), SECTOR_SIZE);
  // metadata regions a block must not overlap
  const regions: { start: number; end: number; what: string }[] = [
    { start: 0, end: VHD_FOOTER_SIZE, what: 'the footer copy' },
    { start: hOff, end: hOff + HEADER_SIZE, what: 'the dynamic header' },
    { start: tOff, end: tOff + batBytes, what: 'the BAT' },
  ];
  if (footer.diskType === VHD_TYPE_DIFFERENCING) {
    for (const loc of header.locators) {
      if (!Number.isSafeInteger(loc.offset) || loc.offset < 0 || loc.offset + loc.length > footerPos) {
        problems.push({ text: `parent locator ${loc.code.trim() || '?'}: its data lies outside the file`, fatal: false });
        continue;
      }
      if (loc.length > 0) regions.push({ start: loc.offset, end: loc.offset + loc.length, what: `parent locator ${loc.code}` });
    }
  }
  let metadataEnd = 0;
  for (const r of regions) metadataEnd = Math.max(metadataEnd, r.end);

  // BAT entries: inside the file, not overlapping each other or the metadata
  const used: { start: number; end: number; block: number }[] = [];
  let pastEof = 0;
  let listedPast = 0;
  for (let b = 0; b < blocksNeeded; b++) {
    const e = bat[b];
    if (e === UNALLOCATED) continue;
    const start = e * SECTOR_SIZE;
    const dataNeeded = Math.min(bs, cur - b * bs);
    const end = start + bitmapBytes + dataNeeded;
    if (start + bitmapBytes > footerPos || end > footerPos) {
      pastEof++;
      if (listedPast++ < MAX_LISTED) {
        problems.push({
          text:
            start + bitmapBytes > footerPos
              ? `BAT entry for block ${b} points past the end of the file (offset ${start}; the file's data ends at ${footerPos})`
              : `block ${b} (offset ${start}) runs past the end of the file (its data ends at ${end}, the file's at ${footerPos})`,
          fatal: true,
        });
      }
      continue;
    }
    used.push({ start, end: start + bitmapBytes + bs, block: b });
  }
  if (pastEof > MAX_LISTED) problems.push({ text: `... and ${pastEof - MAX_LISTED} more BAT entries past the end of the file`, fatal: true });
  for (let b = blocksNeeded; b < bat.length; b++) {
    if (bat[b] !== UNALLOCATED) {
      problems.push({ text: `BAT entry for block ${b} is set but the block lies past the end of the disk`, fatal: false });
      break;
    }
  }
  used.sort((a, b) => a.start - b.start);
  let overlaps = 0;
  for (let i = 0; i < used.length; i++) {
    const u = used[i];
    // the last block of a disk whose size is not a multiple of the block size may be stored short
    const uEnd = Math.min(u.end, footerPos);
    if (i > 0 && Math.min(used[i - 1].end, footerPos) > u.start) {
      if (overlaps++ < MAX_LISTED) {
        problems.push({ text: `blocks ${used[i - 1].block} and ${u.block} overlap in the file (at offset ${u.start})`, fatal: true });
      }
    }
    for (const r of regions) {
      if (u.start < r.end && r.start < uEnd) {
        if (overlaps++ < MAX_LISTED) problems.push({ text: `block ${u.block} (offset ${u.start}) overlaps ${r.what}`, fatal: true });
      }
    }
  }
  if (overlaps > MAX_LISTED) problems.push({ text: `... and ${overlaps - MAX_LISTED} more overlaps`, fatal: true });

  let nextFree = roundUp(Math.max(footerPos, metadataEnd), SECTOR_SIZE);
  if (used.length) nextFree = Math.max(nextFree, roundUp(Math.min(used[used.length - 1].end, footerPos), SECTOR_SIZE));
  return { footer, footerPos, header, bat, bitmapBytes, metadataEnd, nextFree, problems };
}

// ---------------------------------------------------------------------------------------------------
// parents

export interface OpenVhdOptions {
  readOnly?: boolean;
  /** open the parent of a differencing disk read-write (for commit); default read-only */
  parentWritable?: boolean;
  /** opens a parent file as an image of any format (detect.ts supplies openImage); default: VHD only */
  openParent?: (store: ByteStore, options: { readOnly: boolean }) => Promise<BlockDevice>;
}

/** the paths a differencing disk's locators name, in the order they are tried */
async function locatorPaths(store: ByteStore, header: VhdHeader, footerPos: number): Promise<string[]> {
  const order = ['W2ru', 'W2ku', 'Wi2r', 'Wi2k', 'MacX'];
  const out: string[] = [];
  const sorted = [...header.locators].sort((a, b) => order.indexOf(a.code) - order.indexOf(b.code));
  for (const loc of sorted) {
    if (!order.includes(loc.code)) continue;
    if (!Number.isSafeInteger(loc.offset) || loc.offset < 0 || loc.length === 0 || loc.length > 65536) continue;
    if (loc.offset + loc.length > footerPos) continue;
    const data = await readAt(store, loc.offset, loc.length);
    let path: string;
    if (loc.code === 'W2ru' || loc.code === 'W2ku') path = decodeUtf16(data, true);
    else {
      path = ascii(data, 0, data.length);
      const nul = path.indexOf('\0');
      if (nul >= 0) path = path.slice(0, nul);
      if (loc.code === 'MacX') path = decodeURIComponent(path.replace(/^file:\/\/(localhost)?/, ''));
    }
    if (path && !out.includes(path)) out.push(path);
  }
  if (header.parentName) {
    const bare = baseName(header.parentName);
    if (bare && !out.includes(bare)) out.push(bare);
  }
  return out;
}

async function openParentOf(
  store: ByteStore,
  opener: StoreOpener,
  layout: Layout,
  sectors: number,
  options: OpenVhdOptions,
): Promise<BlockDevice> {
  const header = layout.header!;
  const paths = await locatorPaths(store, header, layout.footerPos);
  if (paths.length === 0) throw new DiskError(store.name, 'differencing image without a usable parent locator');
  const expected = header.parentUniqueId;
  const mismatches: string[] = [];
  const readOnly = !options.parentWritable;
  const seen = new Set<string>();
  for (const p of paths) {
    const resolved = opener.resolve(p, store.name);
    if (seen.has(resolved)) continue;
    seen.add(resolved);
    if (!(await opener.exists(p, store.name))) continue;
    const pstore = await opener.open(p, { readOnly, relativeTo: store.name });
    let parent: BlockDevice;
    try {
      parent = options.openParent
        ? await options.openParent(pstore, { readOnly })
        : await openVhd(pstore, opener, { readOnly, openParent: options.openParent });
    } catch (e) {
      await pstore.close();
      if (e instanceof DiskError) throw new DiskError(store.name, `parent ${e.message}`);
      throw e;
    }
    if (parent instanceof VhdImage && !isZeroId(expected)) {
      if (bytesEqual(parent.footer.uniqueId, expected)) return parent;
      mismatches.push(`${parent.name} has unique ID ${uuidText(parent.footer.uniqueId)}`);
    } else if (isZeroId(expected)) {
      if (parent.sectors >= sectors) return parent;
      mismatches.push(`${parent.name} has ${parent.sectors} sectors, the child has ${sectors}`);
    } else {
      mismatches.push(`${parent.name} is a ${parent.format} image, not the VHD with unique ID ${uuidText(expected)}`);
    }
    await parent.close();
  }
  if (mismatches.length) {
    throw new DiskError(
      store.name,
      `the parent image has changed: ${mismatches.join('; ')} (expected unique ID ${uuidText(expected)})`,
    );
  }
  throw new DiskError(store.name, `parent image not found (tried ${[...seen].join(', ')})`);
}

// ---------------------------------------------------------------------------------------------------
// the block device

export class VhdImage implements BlockDevice {
  readonly name: string;
  readonly format: string;
  readonly sectors: number;
  readonly readOnly: boolean;
  readonly footer: VhdFooter;
  readonly header?: VhdHeader;
  /** the parent of a differencing disk */
  readonly parent?: BlockDevice;
  /** issue a flush between writing a new block and its BAT entry (off for scratch files being converted) */
  barriers = true;
  private readonly bat?: Uint32Array;
  private readonly bitmapBytes: number;
  private readonly blockSectors: number;
  private readonly metadataEnd: number;
  private nextFree: number;
  private readonly bitmaps = new Map<number, Uint8Array>();
  private readonly bitmapLoads = new Map<number, Promise<Uint8Array>>();
  private readonly mutex = new Mutex();

  constructor(
    readonly store: ByteStore,
    layout: Layout,
    readOnly: boolean,
    parent?: BlockDevice,
  ) {
    this.name = store.name;
    this.footer = layout.footer;
    this.header = layout.header;
    this.format = `vhd-${TYPE_NAMES[layout.footer.diskType]}`;
    this.sectors = layout.footer.currentSize / SECTOR_SIZE;
    this.readOnly = readOnly || store.readOnly;
    this.parent = parent;
    this.bat = layout.bat;
    this.bitmapBytes = layout.bitmapBytes;
    this.blockSectors = layout.header ? layout.header.blockSize / SECTOR_SIZE : 0;
    this.metadataEnd = layout.metadataEnd;
    this.nextFree = layout.nextFree;
  }

  get diskType(): number {
    return this.footer.diskType;
  }

  get blockSize(): number {
    return this.blockSectors * SECTOR_SIZE;
  }

  /** number of allocated blocks (0 for a fixed disk) */
  allocatedBlocks(): number {
    if (!this.bat) return 0;
    let n = 0;
    const blocks = Math.ceil(this.sectors / this.blockSectors);
    for (let b = 0; b < blocks; b++) if (this.bat[b] !== UNALLOCATED) n++;
    return n;
  }

  /** whether block `b` is allocated in this file */
  blockAllocated(b: number): boolean {
    return !!this.bat && this.bat[b] !== UNALLOCATED;
  }

  async read(sector: number, buf: Uint8Array): Promise<void> {
    checkRequest(this, sector, buf.length);
    if (!this.bat) {
      await this.store.read(sector * SECTOR_SIZE, buf);
      return;
    }
    const spb = this.blockSectors;
    let done = 0;
    while (done < buf.length) {
      const s = sector + done / SECTOR_SIZE;
      const blk = Math.floor(s / spb);
      const within = s - blk * spb;
      const n = Math.min((buf.length - done) / SECTOR_SIZE, spb - within);
      const sub = buf.subarray(done, done + n * SECTOR_SIZE);
      const e = this.bat[blk];
      if (e === UNALLOCATED) {
        if (this.parent) await this.readParent(s, sub);
        else sub.fill(0);
      } else if (!this.parent) {
        await this.store.read(e * SECTOR_SIZE + this.bitmapBytes + within * SECTOR_SIZE, sub);
      } else {
        await this.readMerged(blk, e, within, n, sub);
      }
      done += n * SECTOR_SIZE;
    }
  }

  /** sectors of an allocated block of a differencing disk: runs of set bits from here, the rest from the parent */
  private async readMerged(blk: number, entry: number, within: number, n: number, sub: Uint8Array): Promise<void> {
    const bm = await this.bitmap(blk, entry);
    const base = entry * SECTOR_SIZE + this.bitmapBytes;
    const first = blk * this.blockSectors;
    let i = within;
    const end = within + n;
    while (i < end) {
      const bit = (bm[i >>> 3] >>> (7 - (i & 7))) & 1;
      let j = i + 1;
      while (j < end) {
        // skip whole bytes that are all set or all clear
        if ((j & 7) === 0 && j + 8 <= end && bm[j >>> 3] === (bit ? 0xff : 0)) {
          j += 8;
          continue;
        }
        if (((bm[j >>> 3] >>> (7 - (j & 7))) & 1) !== bit) break;
        j++;
      }
      const part = sub.subarray((i - within) * SECTOR_SIZE, (j - within) * SECTOR_SIZE);
      if (bit) await this.store.read(base + i * SECTOR_SIZE, part);
      else await this.readParent(first + i, part);
      i = j;
    }
  }

  private async readParent(sector: number, buf: Uint8Array): Promise<void> {
    const parent = this.parent!;
    const count = buf.length / SECTOR_SIZE;
    const inside = Math.max(0, Math.min(count, parent.sectors - sector));
    if (inside > 0) await parent.read(sector, buf.subarray(0, inside * SECTOR_SIZE));
    if (inside < count) buf.fill(0, inside * SECTOR_SIZE);
  }

  private bitmap(blk: number, entry: number): Promise<Uint8Array> | Uint8Array {
    const cached = this.bitmaps.get(blk);
    if (cached) return cached;
    let load = this.bitmapLoads.get(blk);
    if (!load) {
      load = readAt(this.store, entry * SECTOR_SIZE, this.bitmapBytes).then(
        (bm) => {
          this.bitmapLoads.delete(blk);
          // an allocation may have cached a fresher one meanwhile
          const now = this.bitmaps.get(blk);
          if (now) return now;
          this.bitmaps.set(blk, bm);
          return bm;
        },
        (e: unknown) => {
          this.bitmapLoads.delete(blk);
          throw e;
        },
      );
      this.bitmapLoads.set(blk, load);
    }
    return load;
  }

  async write(sector: number, data: Uint8Array): Promise<void> {
    if (this.readOnly) throw new DiskError(this.name, 'the disk is read-only');
    checkRequest(this, sector, data.length);
    if (!this.bat) {
      await this.store.write(sector * SECTOR_SIZE, data);
      return;
    }
    const spb = this.blockSectors;
    let done = 0;
    while (done < data.length) {
      const s = sector + done / SECTOR_SIZE;
      const blk = Math.floor(s / spb);
      const within = s - blk * spb;
      const n = Math.min((data.length - done) / SECTOR_SIZE, spb - within);
      const sub = data.subarray(done, done + n * SECTOR_SIZE);
      if (this.bat[blk] === UNALLOCATED) {
        await this.mutex.run(() =>
          this.bat![blk] === UNALLOCATED ? this.allocate(blk, within, sub) : this.writeInBlock(blk, within, sub, true),
        );
      } else {
        await this.writeInBlock(blk, within, sub, false);
      }
      done += n * SECTOR_SIZE;
    }
  }

  /** a write inside an allocated block: the data, then (serialised) any bitmap bits not yet set */
  private async writeInBlock(blk: number, within: number, sub: Uint8Array, locked: boolean): Promise<void> {
    const entry = this.bat![blk];
    await this.store.write(entry * SECTOR_SIZE + this.bitmapBytes + within * SECTOR_SIZE, sub);
    const n = sub.length / SECTOR_SIZE;
    const bm = await this.bitmap(blk, entry);
    if (allSet(bm, within, n)) return;
    const update = async (): Promise<void> => {
      const first = Math.floor((within >>> 3) / SECTOR_SIZE) * SECTOR_SIZE;
      const last = Math.floor(((within + n - 1) >>> 3) / SECTOR_SIZE) * SECTOR_SIZE + SECTOR_SIZE;
      setBits(bm, within, n);
      await this.store.write(entry * SECTOR_SIZE + first, bm.subarray(first, last));
    };
    if (locked) await update();
    else await this.mutex.run(update);
  }

  /** a write to a block not yet in the file (under the mutex) */
  private async allocate(blk: number, within: number, sub: Uint8Array): Promise<void> {
    const off = this.nextFree;
    const total = this.bitmapBytes + this.blockSectors * SECTOR_SIZE;
    if ((off + total) / SECTOR_SIZE > UNALLOCATED) throw new DiskError(this.name, 'the image file would pass 2 TiB');
    // 1. the footer at the new end: the last 512 bytes of the file are a valid footer at every moment
    await this.store.write(off + total, this.footer.raw);
    // 2. the block: its bitmap (bits set for the sectors written) and the data
    const bm = new Uint8Array(this.bitmapBytes);
    const n = sub.length / SECTOR_SIZE;
    setBits(bm, within, n);
    await this.store.write(off, bm);
    await this.store.write(off + this.bitmapBytes + within * SECTOR_SIZE, sub);
    if (this.barriers) await this.store.flush();
    // 3. the BAT entry pointing at it
    const entry = new Uint8Array(4);
    new DataView(entry.buffer).setUint32(0, off / SECTOR_SIZE);
    await this.store.write(this.header!.tableOffset + blk * 4, entry);
    this.bitmaps.set(blk, bm);
    this.bitmapLoads.delete(blk);
    this.bat![blk] = off / SECTOR_SIZE;
    this.nextFree = off + total;
  }

  async flush(): Promise<void> {
    if (this.readOnly) return;
    await this.mutex.idle();
    await this.store.flush();
  }

  async close(): Promise<void> {
    try {
      if (!this.readOnly) await this.flush();
    } finally {
      try {
        await this.store.close();
      } finally {
        if (this.parent) await this.parent.close();
      }
    }
  }

  /**
   * Whether sectors from `sector` hold data (allocated here or, for a differencing disk, in the parent
   * chain), and for how many sectors (up to `count`) the answer stays the same. Unallocated reads as zeros.
   */
  async extent(sector: number, count: number): Promise<{ allocated: boolean; sectors: number }> {
    const limit = Math.min(count, this.sectors - sector);
    if (!this.bat) return { allocated: true, sectors: limit };
    const spb = this.blockSectors;
    let n = 0;
    let state: boolean | undefined;
    while (n < limit) {
      const s = sector + n;
      const blk = Math.floor(s / spb);
      const run = Math.min(limit - n, spb - (s - blk * spb));
      let here: boolean;
      let len = run;
      if (this.bat[blk] !== UNALLOCATED) here = true;
      else if (this.parent) {
        const sub = await parentExtent(this.parent, s, run);
        here = sub.allocated;
        len = sub.sectors;
      } else here = false;
      if (state === undefined) state = here;
      else if (state !== here) break;
      n += len;
      if (len < run) break;
    }
    return { allocated: state ?? false, sectors: Math.max(n, 1) };
  }

  /** the sector runs of this file's own data (bitmap bits set in allocated blocks), in disk order */
  async *ownRuns(): AsyncGenerator<{ sector: number; count: number }> {
    if (!this.bat) {
      yield { sector: 0, count: this.sectors };
      return;
    }
    const spb = this.blockSectors;
    const blocks = Math.ceil(this.sectors / spb);
    for (let b = 0; b < blocks; b++) {
      const e = this.bat[b];
      if (e === UNALLOCATED) continue;
      const inDisk = Math.min(spb, this.sectors - b * spb);
      if (!this.parent) {
        yield { sector: b * spb, count: inDisk };
        continue;
      }
      const bm = await this.bitmap(b, e);
      let i = 0;
      while (i < inDisk) {
        if (((bm[i >>> 3] >>> (7 - (i & 7))) & 1) === 0) {
          i++;
          continue;
        }
        let j = i + 1;
        while (j < inDisk && ((bm[j >>> 3] >>> (7 - (j & 7))) & 1) === 1) j++;
        yield { sector: b * spb + i, count: j - i };
        i = j;
      }
    }
  }

  /**
   * Empties a differencing or dynamic disk: every BAT entry unallocated, the file cut back to its metadata.
   * Order: the BAT first (nothing points at the blocks any more), then the footer at the new end, then
   * the truncation, so the file is valid at every step.
   */
  async empty(): Promise<void> {
    if (this.readOnly) throw new DiskError(this.name, 'the disk is read-only');
    if (!this.bat || !this.header) throw new DiskError(this.name, 'a fixed VHD cannot be emptied');
    await this.mutex.run(async () => {
      const batBytes = new Uint8Array(this.bat!.length * 4).fill(0xff);
      await this.store.write(this.header!.tableOffset, batBytes);
      await this.store.flush();
      this.bat!.fill(UNALLOCATED);
      this.bitmaps.clear();
      this.bitmapLoads.clear();
      const end = roundUp(this.metadataEnd, SECTOR_SIZE);
      await this.store.write(end, this.footer.raw);
      await this.store.flush();
      await this.store.truncate(end + VHD_FOOTER_SIZE);
      await this.store.flush();
      this.nextFree = end;
    });
  }

  /** the problems check finds in this image's file (see checkVhd) */
  check(opener: StoreOpener, options: OpenVhdOptions = {}): Promise<string[]> {
    return checkVhd(this.store, opener, options);
  }
}

function allSet(bm: Uint8Array, from: number, n: number): boolean {
  for (let i = from; i < from + n; i++) if (((bm[i >>> 3] >>> (7 - (i & 7))) & 1) === 0) return false;
  return true;
}

function setBits(bm: Uint8Array, from: number, n: number): void {
  let i = from;
  const end = from + n;
  while (i < end && (i & 7) !== 0) {
    bm[i >>> 3] |= 0x80 >>> (i & 7);
    i++;
  }
  while (i + 8 <= end) {
    bm[i >>> 3] = 0xff;
    i += 8;
  }
  while (i < end) {
    bm[i >>> 3] |= 0x80 >>> (i & 7);
    i++;
  }
}

/** a device's allocation map where it has one (ours do), else "all data" */
export async function parentExtent(dev: BlockDevice, sector: number, count: number): Promise<{ allocated: boolean; sectors: number }> {
  const ext = (dev as Partial<{ extent: (s: number, c: number) => Promise<{ allocated: boolean; sectors: number }> }>).extent;
  if (typeof ext === 'function') return ext.call(dev, sector, count);
  return { allocated: true, sectors: count };
}

// ---------------------------------------------------------------------------------------------------
// open, check, create

/** opens a VHD (fixed, dynamic or differencing, with its parent); a damaged file is a DiskError */
export async function openVhd(store: ByteStore, opener: StoreOpener, options: OpenVhdOptions = {}): Promise<VhdImage> {
  const layout = await analyze(store);
  const bad = layout.problems.find((p) => p.fatal);
  if (bad || !('footer' in layout)) throw new DiskError(store.name, (bad ?? layout.problems[0]).text);
  let parent: BlockDevice | undefined;
  if (layout.footer.diskType === VHD_TYPE_DIFFERENCING) {
    parent = await openParentOf(store, opener, layout, layout.footer.currentSize / SECTOR_SIZE, options);
  }
  return new VhdImage(store, layout, !!options.readOnly, parent);
}

/**
 * Every problem found in a VHD file, one line each (empty when the image is sound): bad footer or
 * header checksums, a missing or stale footer copy, BAT entries past the end of the file or overlapping,
 * a missing or changed parent. Reads only.
 */
export async function checkVhd(store: ByteStore, opener: StoreOpener, options: OpenVhdOptions = {}): Promise<string[]> {
  const layout = await analyze(store);
  const out = layout.problems.map((p) => p.text);
  if (!('footer' in layout) || layout.problems.some((p) => p.fatal)) return out;
  if (layout.footer.diskType === VHD_TYPE_DIFFERENCING) {
    try {
      const parent = await openParentOf(store, opener, layout, layout.footer.currentSize / SECTOR_SIZE, {
        ...options,
        parentWritable: false,
      });
      await parent.close();
    } catch (e) {
      if (!(e instanceof DiskError)) throw e;
      out.push(e.message.startsWith(`${store.name}: `) ? e.message.slice(store.name.length + 2) : e.message);
    }
  }
  return out;
}

export interface CreateVhdOptions {
  /** disk size in sectors (a differencing disk takes its parent's) */
  sectors?: number;
  type: 'fixed' | 'dynamic' | 'differencing';
  /** the parent of a differencing disk (any format) */
  parent?: BlockDevice;
  /** bytes per block of a dynamic or differencing disk (a power of two; default 2 MiB) */
  blockSize?: number;
  /** the creator application (4 characters; default 'x86v') */
  creator?: string;
  /** seconds since 2000-01-01 UTC (default now) */
  timestamp?: number;
  uniqueId?: Uint8Array;
}

function buildFooter(o: {
  type: number;
  dataOffset: number;
  size: number;
  geometry: Geometry;
  timestamp: number;
  uniqueId: Uint8Array;
  creator: string;
}): Uint8Array {
  const f = new Uint8Array(VHD_FOOTER_SIZE);
  const v = new DataView(f.buffer);
  putAscii(f, 0, FOOTER_COOKIE);
  v.setUint32(8, 0x00000002); // features: the reserved bit that is always set
  v.setUint32(12, 0x00010000);
  setU64(v, 16, o.dataOffset);
  v.setUint32(24, o.timestamp >>> 0);
  putAscii(f, 28, o.creator.padEnd(4, ' ').slice(0, 4));
  v.setUint32(32, CREATOR_VERSION);
  putAscii(f, 36, HOST_OS_WINDOWS);
  setU64(v, 40, o.size);
  setU64(v, 48, o.size);
  v.setUint16(56, o.geometry.cylinders);
  f[58] = o.geometry.heads;
  f[59] = o.geometry.sectorsPerTrack;
  v.setUint32(60, o.type);
  f.set(o.uniqueId, 68);
  v.setUint32(64, vhdChecksum(f, 64));
  return f;
}

/** the relative parent path as Windows writes it: ".\name.vhd", "..\dir\name.vhd" */
function windowsRelative(path: string): string {
  const p = path.replace(/\//g, '\\');
  return p.startsWith('..') ? p : `.\\${p}`;
}

/** writes a new, empty VHD into `store` (its old contents are discarded) and opens it read-write */
export async function createVhd(store: ByteStore, options: CreateVhdOptions): Promise<VhdImage> {
  const parent = options.parent;
  if (options.type === 'differencing' && !parent) throw new DiskError(store.name, 'a differencing VHD needs a parent');
  if (options.type !== 'differencing' && parent) throw new DiskError(store.name, `a ${options.type} VHD has no parent`);
  const sectors = parent ? parent.sectors : options.sectors;
  if (sectors === undefined || !Number.isSafeInteger(sectors) || sectors <= 0) {
    throw new DiskError(store.name, `bad disk size: ${sectors} sectors`);
  }
  if (parent && options.sectors !== undefined && options.sectors !== parent.sectors) {
    throw new DiskError(store.name, `a differencing disk has its parent's size (${parent.sectors} sectors)`);
  }
  if (sectors > VHD_MAX_SECTORS) throw new DiskError(store.name, `a VHD holds at most 2040 GiB (asked for ${sectors} sectors)`);
  const blockSize = options.blockSize ?? VHD_DEFAULT_BLOCK_SIZE;
  if (blockSize < 4096 || blockSize > 256 * 1024 * 1024 || (blockSize & (blockSize - 1)) !== 0) {
    throw new DiskError(store.name, `bad block size ${blockSize} (a power of two from 4 KiB to 256 MiB)`);
  }
  const size = sectors * SECTOR_SIZE;
  const timestamp = options.timestamp ?? Math.max(0, Math.floor(Date.now() / 1000) - EPOCH_2000);
  const uniqueId = options.uniqueId ?? randomUuid();
  const creator = options.creator ?? CREATOR_APP;
  const geometry = parent instanceof VhdImage ? parent.footer.geometry : vhdGeometry(sectors);
  const type = options.type === 'fixed' ? VHD_TYPE_FIXED : options.type === 'dynamic' ? VHD_TYPE_DYNAMIC : VHD_TYPE_DIFFERENCING;

  await store.truncate(0);
  if (type === VHD_TYPE_FIXED) {
    const footer = buildFooter({ type, dataOffset: -1, size, geometry, timestamp, uniqueId, creator });
    await store.truncate(size);
    await store.write(size, footer);
    await store.flush();
    return reopenNew(store, parent);
  }

  const entries = Math.ceil(size / blockSize);
  const tableOffset = VHD_FOOTER_SIZE + HEADER_SIZE;
  const batBytes = roundUp(entries * 4, SECTOR_SIZE);
  let end = tableOffset + batBytes;
  const header = new Uint8Array(HEADER_SIZE);
  const hv = new DataView(header.buffer);
  putAscii(header, 0, HEADER_COOKIE);
  setU64(hv, 8, -1);
  setU64(hv, 16, tableOffset);
  hv.setUint32(24, 0x00010000);
  hv.setUint32(28, entries);
  hv.setUint32(32, blockSize);
  const locatorData: { offset: number; data: Uint8Array }[] = [];
  if (parent) {
    if (parent instanceof VhdImage) {
      header.set(parent.footer.uniqueId, 40);
      hv.setUint32(56, parent.footer.timestamp);
    }
    header.set(encodeUtf16(baseName(parent.name).slice(0, 255), false), 64);
    const locs: { code: string; path: string }[] = [];
    const rel = relativePath(dirName(store.name), parent.name);
    if (rel !== undefined) locs.push({ code: 'W2ru', path: windowsRelative(rel) });
    locs.push({ code: 'W2ku', path: parent.name });
    locs.forEach((loc, i) => {
      const data = encodeUtf16(loc.path, true);
      const space = roundUp(Math.max(data.length, SECTOR_SIZE), SECTOR_SIZE);
      const o = 576 + i * 24;
      putAscii(header, o, loc.code);
      hv.setUint32(o + 4, space / SECTOR_SIZE);
      hv.setUint32(o + 8, data.length);
      setU64(hv, o + 16, end);
      locatorData.push({ offset: end, data });
      end += space;
    });
  }
  hv.setUint32(36, vhdChecksum(header, 36));
  const footer = buildFooter({ type, dataOffset: VHD_FOOTER_SIZE, size, geometry, timestamp, uniqueId, creator });

  await store.write(0, footer);
  await store.write(VHD_FOOTER_SIZE, header);
  await store.write(tableOffset, new Uint8Array(batBytes).fill(0xff));
  for (const l of locatorData) await store.write(l.offset, l.data);
  await store.write(end, footer);
  await store.truncate(end + VHD_FOOTER_SIZE);
  await store.flush();
  return reopenNew(store, parent);
}

async function reopenNew(store: ByteStore, parent?: BlockDevice): Promise<VhdImage> {
  const layout = await analyze(store);
  if (!('footer' in layout) || layout.problems.length) {
    throw new DiskError(store.name, `internal error: the new VHD does not check (${layout.problems.map((p) => p.text).join('; ')})`);
  }
  return new VhdImage(store, layout, false, parent);
}

/** a short description of a VHD for `x86vm disk info` */
export function describeVhd(img: VhdImage): string[] {
  const f = img.footer;
  const g = f.geometry;
  const lines = [
    `creator: '${f.creatorApp}' version ${(f.creatorVersion >>> 16).toString()}.${f.creatorVersion & 0xffff} on '${f.creatorHostOs}'`,
    `geometry (CHS): ${g.cylinders}/${g.heads}/${g.sectorsPerTrack} = ${g.cylinders * g.heads * g.sectorsPerTrack} sectors`,
    `unique ID: ${uuidText(f.uniqueId)}`,
    `created: ${new Date((f.timestamp + EPOCH_2000) * 1000).toISOString()}`,
  ];
  if (img.header) {
    const blocks = Math.ceil(img.sectors / (img.blockSize / SECTOR_SIZE));
    lines.push(`blocks: ${img.allocatedBlocks()} of ${blocks} allocated, ${img.blockSize / 1024} KiB each`);
  }
  if (img.header && f.diskType === VHD_TYPE_DIFFERENCING) {
    lines.push(`parent unique ID: ${uuidText(img.header.parentUniqueId)}`);
  }
  return lines;
}

/**
 * Merges a differencing VHD into its parent (which must be open read-write: openVhd with parentWritable):
 * every sector the child holds is written to the parent, the parent is flushed, then the child is emptied.
 * A crash part-way leaves the child whole (the view through it is unchanged), so the commit can be re-run.
 * Returns the number of sectors copied.
 */
export async function commitVhd(child: VhdImage, onProgress?: (done: number, total: number) => void): Promise<number> {
  const parent = child.parent;
  if (child.diskType !== VHD_TYPE_DIFFERENCING || !parent) {
    throw new DiskError(child.name, `not a differencing image (${child.format}): there is no parent to commit to`);
  }
  if (parent.readOnly) throw new DiskError(parent.name, 'the parent is open read-only');
  if (child.readOnly) throw new DiskError(child.name, 'the image is open read-only');
  const chunk = 4096;
  const buf = new Uint8Array(chunk * SECTOR_SIZE);
  let copied = 0;
  for await (const run of child.ownRuns()) {
    let s = run.sector;
    const end = run.sector + run.count;
    while (s < end) {
      const n = Math.min(chunk, end - s, parent.sectors - s);
      if (n <= 0) break;
      const part = buf.subarray(0, n * SECTOR_SIZE);
      await child.read(s, part);
      await parent.write(s, part);
      s += n;
      copied += n;
    }
    onProgress?.(run.sector + run.count, child.sectors);
  }
  await parent.flush();
  await child.empty();
  return copied;
}
