/**
 * ISO 9660 CD images: a read-only block device over the file (CD controllers address 2048-byte blocks
 * themselves: block n is sectors 4n..4n+3), and a tiny reader of files on the disc (primary volume
 * descriptor, directory records, path walk; no Joliet or Rock Ridge) for tests and the browser host.
 *
 * ECMA-119 in brief: 2048-byte logical sectors; sectors 0-15 are the system area; the volume descriptor
 * set starts at sector 16, each descriptor being [type, "CD001", version, …] and the set ending with type
 * 255. The primary volume descriptor (type 1) holds the volume space size (u32 both-endian at 80), the
 * logical block size (u16 both-endian at 128) and the root directory record (at 156). A directory is an
 * extent of records [length, extended-attribute length, extent LBA (both-endian u32 at 2), data length
 * (at 10), …, flags (at 25: 0x02 directory, 0x80 not the final extent), name length (32), name (33)];
 * a record never crosses a logical block, a zero length byte pads to the next block. File names carry a
 * ";1" version suffix and an empty extension leaves a trailing ".".
 */
import { DiskError, SECTOR_SIZE, type BlockDevice, type ByteStore } from './block';

const CD_SECTOR = 2048;
const VD_START = 16 * CD_SECTOR;
const MAX_DESCRIPTORS = 64;

function isCd001(b: Uint8Array, off: number): boolean {
  return b[off] === 0x43 && b[off + 1] === 0x44 && b[off + 2] === 0x30 && b[off + 3] === 0x30 && b[off + 4] === 0x31;
}

/** whether the store holds an ISO 9660 volume ("CD001" at byte 0x8001) */
export async function probeIso(store: ByteStore): Promise<boolean> {
  if (store.size() < VD_START + CD_SECTOR) return false;
  const b = new Uint8Array(6);
  await store.read(VD_START, b);
  return isCd001(b, 1);
}

export class IsoImage implements BlockDevice {
  readonly format = 'iso';
  readonly readOnly = true;
  readonly name: string;
  readonly sectors: number;
  private closed = false;

  constructor(private readonly store: ByteStore) {
    this.name = store.name;
    this.sectors = Math.ceil(store.size() / SECTOR_SIZE);
  }

  async read(sector: number, buf: Uint8Array): Promise<void> {
    if (this.closed) throw new DiskError(this.name, 'the image is closed');
    if (!Number.isSafeInteger(sector) || sector < 0 || buf.length % SECTOR_SIZE !== 0) {
      throw new DiskError(this.name, `bad request: sector ${sector}, ${buf.length} bytes (whole sectors only)`);
    }
    if (sector + buf.length / SECTOR_SIZE > this.sectors) {
      throw new DiskError(this.name, `request past the end of the disc: sector ${sector} + ${buf.length / SECTOR_SIZE} of ${this.sectors}`);
    }
    await this.store.read(sector * SECTOR_SIZE, buf);
  }

  async write(_sector: number, _data: Uint8Array): Promise<void> {
    throw new DiskError(this.name, 'a CD image is read-only');
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.store.close();
  }
}

/**
 * Opens a CD image read-only. Refuses a file without an ISO 9660 (or UDF) volume descriptor at sector 16,
 * and one shorter than its primary volume descriptor says (a truncated download).
 */
export async function openIso(store: ByteStore): Promise<IsoImage> {
  const size = store.size();
  if (size < VD_START + CD_SECTOR) {
    throw new DiskError(store.name, `not an ISO 9660 image: ${size} bytes is too short for a volume descriptor at sector 16`);
  }
  const vd = new Uint8Array(CD_SECTOR);
  let pvdFound = false;
  for (let i = 0; i < MAX_DESCRIPTORS; i++) {
    const off = VD_START + i * CD_SECTOR;
    if (off + CD_SECTOR > size) break;
    await store.read(off, vd);
    const id = String.fromCharCode(vd[1], vd[2], vd[3], vd[4], vd[5]);
    if (id !== 'CD001') {
      // a UDF-only disc has its own volume recognition sequence here (BEA01, NSR02/NSR03, TEA01)
      if (i === 0 && !/^(BEA01|NSR0[23]|TEA01)$/.test(id)) {
        throw new DiskError(store.name, 'not an ISO 9660 image: no CD001 volume descriptor at sector 16');
      }
      break;
    }
    if (vd[0] === 255) break;
    if (vd[0] === 1 && !pvdFound) {
      pvdFound = true;
      const dv = new DataView(vd.buffer);
      const blocks = dv.getUint32(80, true);
      const blockSize = dv.getUint16(128, true);
      const bytes = blocks * blockSize;
      if (bytes > size) {
        throw new DiskError(
          store.name,
          `truncated: the volume holds ${blocks} blocks of ${blockSize} bytes (${bytes} bytes) but the file has ${size}`,
        );
      }
    }
  }
  return new IsoImage(store);
}

// ---- reading files ----

interface DirRecord {
  name: string;
  lba: number;
  length: number;
  flags: number;
}

/** reads `length` bytes at byte `offset` of the device (whole sectors underneath) */
async function readBytes(dev: BlockDevice, offset: number, length: number): Promise<Uint8Array> {
  const first = Math.floor(offset / SECTOR_SIZE);
  const last = Math.ceil((offset + length) / SECTOR_SIZE);
  if (last > dev.sectors) {
    throw new DiskError(dev.name, `ISO 9660: an extent at byte ${offset} (${length} bytes) runs past the end of the image`);
  }
  const buf = new Uint8Array((last - first) * SECTOR_SIZE);
  if (buf.length > 0) await dev.read(first, buf);
  const skip = offset - first * SECTOR_SIZE;
  return buf.subarray(skip, skip + length);
}

/** the identifier as a comparable name: upper case, without ";version" and without a trailing "." */
function normalName(name: string): string {
  let n = name;
  const semi = n.indexOf(';');
  if (semi >= 0) n = n.slice(0, semi);
  if (n.endsWith('.')) n = n.slice(0, -1);
  return n.toUpperCase();
}

function parseRecords(dev: BlockDevice, data: Uint8Array, blockSize: number): DirRecord[] {
  const out: DirRecord[] = [];
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  while (pos < data.length) {
    const len = data[pos];
    if (len === 0) {
      pos = (Math.floor(pos / blockSize) + 1) * blockSize;
      continue;
    }
    const nameLen = data[pos + 32];
    if (len < 34 || pos + len > data.length || 33 + nameLen > len) {
      throw new DiskError(dev.name, `ISO 9660: bad directory record at byte ${pos} of a directory`);
    }
    let name = '';
    for (let i = 0; i < nameLen; i++) name += String.fromCharCode(data[pos + 33 + i]);
    out.push({ name, lba: dv.getUint32(pos + 2, true), length: dv.getUint32(pos + 10, true), flags: data[pos + 25] });
    pos += len;
  }
  return out;
}

/**
 * The contents of the file at `path` ("/DIR/FILE.TXT", matched without case, version suffix or a trailing
 * dot) on the ISO 9660 volume of `dev`; null when there is no such file (or it is a directory).
 */
export async function readIsoFile(dev: BlockDevice, path: string): Promise<Uint8Array | null> {
  if (dev.sectors * SECTOR_SIZE < VD_START + CD_SECTOR) throw new DiskError(dev.name, 'not an ISO 9660 image (too small)');
  let pvd: Uint8Array | null = null;
  for (let i = 0; i < MAX_DESCRIPTORS; i++) {
    const off = VD_START + i * CD_SECTOR;
    if (off + CD_SECTOR > dev.sectors * SECTOR_SIZE) break;
    const vd = await readBytes(dev, off, CD_SECTOR);
    if (!isCd001(vd, 1)) break;
    if (vd[0] === 1) {
      pvd = vd;
      break;
    }
    if (vd[0] === 255) break;
  }
  if (!pvd) throw new DiskError(dev.name, 'not an ISO 9660 image: no primary volume descriptor');
  const pdv = new DataView(pvd.buffer, pvd.byteOffset, pvd.byteLength);
  const blockSize = pdv.getUint16(128, true);
  if (blockSize !== 512 && blockSize !== 1024 && blockSize !== 2048) {
    throw new DiskError(dev.name, `ISO 9660: unsupported logical block size ${blockSize}`);
  }
  let dir: DirRecord = { name: '', lba: pdv.getUint32(156 + 2, true), length: pdv.getUint32(156 + 10, true), flags: 2 };
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  for (let k = 0; k < parts.length; k++) {
    if (!(dir.flags & 2)) return null;
    const records = parseRecords(dev, await readBytes(dev, dir.lba * blockSize, dir.length), blockSize);
    const want = normalName(parts[k]);
    // a file may span several extents: consecutive records of the same name, all but the last flagged 0x80
    let found: DirRecord[] = [];
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      if (r.name.length === 1 && (r.name === '\0' || r.name === '\x01')) continue;
      if (normalName(r.name) !== want) continue;
      found = [r];
      let j = i;
      while (records[j].flags & 0x80 && j + 1 < records.length && normalName(records[j + 1].name) === want) {
        j++;
        found.push(records[j]);
      }
      break;
    }
    if (found.length === 0) return null;
    if (k < parts.length - 1) {
      dir = found[0];
      continue;
    }
    if (found[0].flags & 2) return null;
    let total = 0;
    for (const r of found) total += r.length;
    const out = new Uint8Array(total);
    let at = 0;
    for (const r of found) {
      out.set(await readBytes(dev, r.lba * blockSize, r.length), at);
      at += r.length;
    }
    return out;
  }
  return null;
}
