/**
 * VDI images: reads of images made by qemu-img equal the raw bytes they were made from; images we create
 * and write pass `qemu-img check` and `qemu-img compare` against the raw source; differencing images
 * merge with their parent (found by UUID); damaged images are refused with a clear error and left
 * untouched; allocations write data before metadata.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import {
  closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdtempSync, openSync, readFileSync, readSync, rmSync,
  writeFileSync, writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { DiskError, MemoryStore, type BlockDevice, type ByteStore, type StoreOpener } from '../../disk/block';
import { checkVdi, createVdi, openVdi, probeVdi, readVdiInfo, VdiImage } from '../../disk/vdi';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

// ---- helpers (local: a shared test/helpers/qemu-img.ts did not exist when this was written) ----

function qemuImg(args: string[]): { status: number; out: string } {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function mustQemuImg(args: string[]): string {
  const r = qemuImg(args);
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')} failed (${r.status}): ${r.out}`);
  return r.out;
}

/** a ByteStore over a host file (synchronous fs calls; enough for tests) */
class FileStore implements ByteStore {
  readonly name: string;
  readonly readOnly: boolean;
  private fd: number;
  writes = 0;
  constructor(path: string, readOnly = false) {
    this.name = path;
    this.readOnly = readOnly;
    this.fd = openSync(path, readOnly ? 'r' : 'r+');
  }
  size(): number {
    return fstatSync(this.fd).size;
  }
  async read(offset: number, buf: Uint8Array): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const n = readSync(this.fd, buf, done, buf.length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    buf.fill(0, done);
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.readOnly) throw new DiskError(this.name, 'read-only');
    this.writes++;
    let done = 0;
    while (done < data.length) done += writeSync(this.fd, data, done, data.length - done, offset + done);
  }
  async truncate(size: number): Promise<void> {
    if (this.readOnly) throw new DiskError(this.name, 'read-only');
    this.writes++;
    ftruncateSync(this.fd, size);
  }
  async flush(): Promise<void> {
    if (!this.readOnly) fsyncSync(this.fd);
  }
  async close(): Promise<void> {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** opens files relative to an image's directory */
class DirOpener implements StoreOpener {
  opened: string[] = [];
  resolve(path: string, relativeTo?: string): string {
    return isAbsolute(path) || !relativeTo ? resolve(path) : resolve(dirname(relativeTo), path);
  }
  async exists(path: string, relativeTo?: string): Promise<boolean> {
    return existsSync(this.resolve(path, relativeTo));
  }
  async open(path: string, options: { readOnly: boolean; relativeTo?: string }): Promise<ByteStore> {
    const p = this.resolve(path, options.relativeTo);
    this.opened.push(p);
    return new FileStore(p, options.readOnly);
  }
}

/** deterministic pseudo-random bytes (xorshift32), distinct per seed */
function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  const words = new Uint32Array(out.buffer, 0, length >>> 2);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return out;
}

/** writes `data` into a host file at `offset` */
function pwrite(path: string, offset: number, data: Uint8Array): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, data, 0, data.length, offset);
  closeSync(fd);
}

function pread(path: string, offset: number, length: number): Uint8Array {
  const fd = openSync(path, 'r');
  const buf = new Uint8Array(length);
  readSync(fd, buf, 0, length, offset);
  closeSync(fd);
  return buf;
}

function makeRaw(path: string, size: number, regions: [number, Uint8Array][]): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  for (const [off, data] of regions) writeSync(fd, data, 0, data.length, off);
  closeSync(fd);
}

async function readAll(dev: BlockDevice): Promise<Uint8Array> {
  const out = new Uint8Array(dev.sectors * 512);
  // odd-sized pieces so requests straddle block boundaries
  for (let s = 0; s < dev.sectors; s += 300) {
    const n = Math.min(300, dev.sectors - s);
    await dev.read(s, out.subarray(s * 512, s * 512 + n * 512));
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

function fileBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'x86vm-vdi-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

// ---- images made by qemu-img ----

describe('VDI images made by qemu-img', () => {
  const size = 5 * MiB + 7 * 512; // odd: not a whole number of 1 MiB blocks
  const regions: [number, Uint8Array][] = [
    [0, pattern(4096, 1)],
    [MiB - 1024, pattern(3000 & ~511, 2)], // straddles the first block boundary
    [3 * MiB + 512 * 9, pattern(64 * 1024, 3)],
    [size - 2048, pattern(2048, 4)], // the last, partial block
  ];

  for (const variant of ['dynamic', 'static'] as const) {
    it(`qemu-img convert -O vdi (${variant}) reads back byte-identical to the raw source`, async () => {
      const raw = join(dir, `src-${variant}.raw`);
      const vdi = join(dir, `conv-${variant}.vdi`);
      makeRaw(raw, size, regions);
      mustQemuImg(['convert', '-f', 'raw', '-O', 'vdi', ...(variant === 'static' ? ['-o', 'static=on'] : []), raw, vdi]);
      const head = pread(vdi, 0, 512);
      expect(probeVdi(head)).toBe(true);
      const store = new FileStore(vdi, true);
      const dev = await openVdi(store, null, { readOnly: true });
      expect(dev.format).toBe(`vdi-${variant}`);
      expect(dev.sectors).toBe(size / 512);
      expect(dev.readOnly).toBe(true);
      const got = await readAll(dev);
      expect(sameBytes(got, fileBytes(raw))).toBe(true);
      const info = (dev as VdiImage).info;
      expect(info.blocks).toBe(6);
      expect(info.blockSize).toBe(MiB);
      if (variant === 'dynamic') expect(info.blocksAllocated).toBe(4); // blocks 0, 1, 3, 5 hold data
      expect(await checkVdi(store)).toEqual([]);
      await dev.close();
    });

    it(`qemu-img create -f vdi (${variant}, odd size) opens as an all-zero disk`, async () => {
      const vdi = join(dir, `empty-${variant}.vdi`);
      mustQemuImg(['create', '-q', '-f', 'vdi', ...(variant === 'static' ? ['-o', 'static=on'] : []), vdi, '3000K']);
      const dev = await openVdi(new FileStore(vdi, true), null, { readOnly: true });
      expect(dev.sectors).toBe(6000);
      const buf = new Uint8Array(dev.sectors * 512).fill(0xaa);
      await dev.read(0, buf);
      expect(buf.every((b) => b === 0)).toBe(true);
      await dev.close();
    });
  }

  it('a dynamic image past 4 GiB: reads at every region equal the raw file, and our writes past 4 GiB compare identical', async () => {
    const big = 4 * GiB + 3 * MiB + 5 * 512;
    const bigRegions: [number, Uint8Array][] = [
      [0, pattern(8192, 11)],
      [4 * GiB - 4096, pattern(8192, 12)], // straddles 4 GiB
      [4 * GiB + MiB + 100 * 512, pattern(128 * 1024, 13)],
      [big - 4096, pattern(4096, 14)],
    ];
    const raw = join(dir, 'big.raw');
    const vdi = join(dir, 'big.vdi');
    makeRaw(raw, big, bigRegions);
    mustQemuImg(['convert', '-f', 'raw', '-O', 'vdi', raw, vdi]);
    const dev = await openVdi(new FileStore(vdi), null, { readOnly: false });
    expect(dev.sectors).toBe(big / 512);
    for (const [off, data] of bigRegions) {
      // read a window around each region: before, the data, after
      const start = Math.max(0, off - 65536);
      const len = Math.min(big - start, data.length + 2 * 65536);
      const got = new Uint8Array(len);
      await dev.read(start / 512, got);
      expect(sameBytes(got, pread(raw, start, len))).toBe(true);
    }
    // an unallocated block far from the data reads as zeros
    const hole = new Uint8Array(MiB);
    await dev.read((2 * GiB) / 512, hole);
    expect(hole.every((b) => b === 0)).toBe(true);

    // our writes: into a new block past 4 GiB, into an allocated block, and across a block boundary
    const writes: [number, Uint8Array][] = [
      [4 * GiB + 2 * MiB + 512 * 3, pattern(512 * 5, 21)],
      [4 * GiB + MiB + 100 * 512 + 4096, pattern(4096, 22)],
      [3 * GiB + MiB - 2048, pattern(8192, 23)],
    ];
    for (const [off, data] of writes) {
      await dev.write(off / 512, data);
      pwrite(raw, off, data);
    }
    await dev.close();
    expect(qemuImg(['check', '-f', 'vdi', vdi]).status).toBe(0);
    const cmp = qemuImg(['compare', '-f', 'vdi', '-F', 'raw', vdi, raw]);
    expect(cmp.out).toContain('Images are identical');
    expect(cmp.status).toBe(0);
  });
});

// ---- images we create ----

describe('createVdi', () => {
  const size = 5 * MiB + 3 * 512;
  const writes: [number, Uint8Array][] = [
    [0, pattern(512, 31)],
    [MiB - 512, pattern(2048, 32)], // across blocks 0/1
    [2 * MiB, pattern(MiB, 33)], // a whole block
    [4 * MiB + 512 * 17, pattern(512 * 9, 34)],
    [size - 1024, pattern(1024, 35)], // the partial last block
    [512 * 2, pattern(512 * 3, 36)], // into an allocated block again
  ];

  for (const type of ['dynamic', 'static'] as const) {
    it(`${type}: our image passes qemu-img check and compares identical to the raw source`, async () => {
      const store = new MemoryStore(`ours-${type}.vdi`);
      const dev = await createVdi(store, { sectors: size / 512, type });
      expect(dev.format).toBe(`vdi-${type}`);
      expect(dev.sectors).toBe(size / 512);
      const rawData = new Uint8Array(size);
      for (const [off, data] of writes) {
        await dev.write(off / 512, data);
        rawData.set(data, off);
      }
      // concurrent writes into one new block must allocate it once
      await Promise.all([
        dev.write((3 * MiB) / 512, pattern(512, 37)),
        dev.write((3 * MiB + 8192) / 512, pattern(1024, 38)),
        dev.write((3 * MiB + 65536) / 512, pattern(512, 39)),
      ]);
      rawData.set(pattern(512, 37), 3 * MiB);
      rawData.set(pattern(1024, 38), 3 * MiB + 8192);
      rawData.set(pattern(512, 39), 3 * MiB + 65536);
      expect(sameBytes(await readAll(dev), rawData)).toBe(true);
      await dev.flush();
      const vdi = join(dir, `ours-${type}.vdi`);
      const raw = join(dir, `ours-${type}.raw`);
      writeFileSync(vdi, store.bytes());
      writeFileSync(raw, rawData);
      const check = qemuImg(['check', '-f', 'vdi', vdi]);
      expect(check.out).toContain('No errors were found');
      expect(check.status).toBe(0);
      const info = JSON.parse(mustQemuImg(['info', '--output=json', vdi]));
      expect(info.format).toBe('vdi');
      expect(info['virtual-size']).toBe(size);
      const cmp = qemuImg(['compare', '-f', 'vdi', '-F', 'raw', vdi, raw]);
      expect(cmp.out).toContain('Images are identical');
      expect(cmp.status).toBe(0);
      expect(await checkVdi(store)).toEqual([]);
      if (type === 'dynamic') expect(dev.info.blocksAllocated).toBe(6); // every block got a write
    });
  }

  it('a dynamic image on a host file: allocation order is data, flush, map entry, header count', async () => {
    const path = join(dir, 'order.vdi');
    writeFileSync(path, new Uint8Array(0));
    const file = new FileStore(path);
    const log: string[] = [];
    const recording: ByteStore = {
      name: path,
      readOnly: false,
      size: () => file.size(),
      read: (o, b) => file.read(o, b),
      write: async (o, d) => {
        log.push(`write ${o} ${d.length}`);
        await file.write(o, d);
      },
      truncate: (s) => file.truncate(s),
      flush: async () => {
        log.push('flush');
        await file.flush();
      },
      close: () => file.close(),
    };
    const dev = await createVdi(recording, { sectors: (4 * MiB) / 512, type: 'dynamic' });
    const info = (dev as VdiImage).info;
    log.length = 0;
    await dev.write((MiB + 4096) / 512, pattern(4096, 41)); // block 1 becomes data block 0
    expect(log).toEqual([
      `write ${info.dataOffset} ${MiB}`,
      'flush',
      `write ${info.blocksOffset + 4} 4`,
      `write ${0x184} 4`,
    ]);
    log.length = 0;
    await dev.write((MiB + 8192) / 512, pattern(512, 42)); // already allocated: one write in place
    expect(log).toEqual([`write ${info.dataOffset + 8192} 512`]);
    await dev.close();
    expect(qemuImg(['check', '-f', 'vdi', path]).status).toBe(0);
    const reopened = await openVdi(new FileStore(path, true), null, { readOnly: true });
    const got = new Uint8Array(8192);
    await reopened.read((MiB + 4096) / 512, got);
    const want = new Uint8Array(8192);
    want.set(pattern(4096, 41));
    want.set(pattern(512, 42), 4096);
    expect(sameBytes(got, want)).toBe(true);
    await reopened.close();
  });

  it('a crash after the data but before the map entry: the image opens, holds the old data, and the next allocation reuses the space', async () => {
    const store = new MemoryStore('crash.vdi');
    const dev = await createVdi(store, { sectors: (4 * MiB) / 512, type: 'dynamic' });
    await dev.write(0, pattern(512, 51));
    const info = (dev as VdiImage).info;
    // simulate the crash: a second block's data reached the file, its map entry and the count did not
    const crashed = new MemoryStore('crash.vdi', store.bytes().slice());
    await crashed.write(info.dataOffset + MiB, pattern(MiB, 52));
    const after = await openVdi(crashed, null, { readOnly: false });
    const buf = new Uint8Array(MiB);
    await after.read((2 * MiB) / 512, buf);
    expect(buf.every((b) => b === 0)).toBe(true);
    await after.write((2 * MiB) / 512, pattern(512, 53));
    expect(crashed.size()).toBe(info.dataOffset + 2 * MiB); // the orphan's slot was reused
    expect(await checkVdi(crashed)).toEqual([]);
    // a crash between the map entry and the count: open tolerates it, check reports it, the next allocation repairs it
    const dv = new DataView(crashed.bytes().buffer, crashed.bytes().byteOffset);
    dv.setUint32(0x184, 1, true);
    expect((await checkVdi(crashed)).join()).toContain('counts 1 allocated blocks but the block map holds 2');
    const again = await openVdi(crashed, null, { readOnly: false });
    await again.write((3 * MiB) / 512, pattern(512, 54));
    expect(await checkVdi(crashed)).toEqual([]);
    const back = new Uint8Array(512);
    await again.read((2 * MiB) / 512, back);
    expect(sameBytes(back, pattern(512, 53))).toBe(true);
  });

  it('extent() reports allocated and unallocated runs', async () => {
    const dev = await createVdi(new MemoryStore('ext.vdi'), { sectors: (4 * MiB) / 512, type: 'dynamic' });
    await dev.write((2 * MiB) / 512, pattern(512, 61));
    expect(await dev.extent(0, dev.sectors)).toEqual({ allocated: false, sectors: 4096 });
    expect(await dev.extent(4096, dev.sectors)).toEqual({ allocated: true, sectors: 2048 });
    expect(await dev.extent(4096 + 2048, 100)).toEqual({ allocated: false, sectors: 100 });
  });

  it('rejects writes to a read-only image and requests outside the disk', async () => {
    const store = new MemoryStore('ro.vdi');
    await createVdi(store, { sectors: 2048, type: 'dynamic' });
    const ro = await openVdi(store, null, { readOnly: true });
    await expect(ro.write(0, new Uint8Array(512))).rejects.toThrow(/ro\.vdi: .*read-only/);
    await expect(ro.read(2047, new Uint8Array(1024))).rejects.toThrow(/past the end/);
    await expect(ro.read(0, new Uint8Array(100))).rejects.toThrow(/whole sectors/);
  });
});

// ---- differencing images ----

describe('differencing VDI', () => {
  it('reads merge child and parent; writes go to the child; the parent is found by UUID among candidates', async () => {
    const sectors = (3 * MiB) / 512;
    const parentPath = join(dir, 'base.vdi');
    const childPath = join(dir, 'snap.vdi');
    const otherPath = join(dir, 'other.vdi');
    const parentStore = new MemoryStore('base.vdi');
    const parent = await createVdi(parentStore, { sectors, type: 'dynamic' });
    const expected = new Uint8Array(3 * MiB);
    const put = (off: number, data: Uint8Array): void => expected.set(data, off);
    await parent.write(0, pattern(2 * MiB, 71)); // blocks 0 and 1
    put(0, pattern(2 * MiB, 71));
    await parent.close();
    writeFileSync(parentPath, parentStore.bytes());
    const otherStore = new MemoryStore('other.vdi');
    await createVdi(otherStore, { sectors, type: 'dynamic' });
    writeFileSync(otherPath, otherStore.bytes());

    // the child, made with the parent attached
    const parentInfo = await readVdiInfo(new MemoryStore('p', parentStore.bytes()));
    const parentDev = await openVdi(new FileStore(parentPath, true), null, { readOnly: true });
    const childStore = new MemoryStore('snap.vdi');
    const child = await createVdi(childStore, {
      sectors,
      type: 'dynamic',
      parent: { uuid: parentInfo.uuid, modifyUuid: parentInfo.modifyUuid, device: parentDev },
    });
    expect(child.format).toBe('vdi-differencing');
    expect(child.info.parentUuid).toBe(parentInfo.uuid);
    await child.write((MiB + 4096) / 512, pattern(1024, 72)); // partial write into a parent block
    put(MiB + 4096, pattern(1024, 72));
    await child.write((2 * MiB + 512) / 512, pattern(512, 73)); // into a block the parent lacks
    put(2 * MiB + 512, pattern(512, 73));
    expect(sameBytes(await readAll(child), expected)).toBe(true);
    await child.flush();
    writeFileSync(childPath, childStore.bytes());
    await parentDev.close();

    // reopened from files: the parent is the candidate whose create UUID is the child's link UUID
    const parentBefore = fileBytes(parentPath);
    const opener = new DirOpener();
    const dev = await openVdi(new FileStore(childPath), opener, {
      readOnly: false,
      parentCandidates: ['other.vdi', 'snap.vdi', 'base.vdi'],
    });
    expect(dev.format).toBe('vdi-differencing');
    expect(((dev as VdiImage).parent as VdiImage).info.uuid).toBe(parentInfo.uuid);
    expect(sameBytes(await readAll(dev), expected)).toBe(true);
    await dev.write(100, pattern(512 * 4, 74)); // block 0: parent data → copied up into the child
    put(100 * 512, pattern(512 * 4, 74));
    expect(sameBytes(await readAll(dev), expected)).toBe(true);
    await dev.close();
    expect(sameBytes(fileBytes(parentPath), parentBefore)).toBe(true); // the parent is untouched
    const childInfo = await readVdiInfo(new FileStore(childPath, true));
    expect(childInfo.blocksAllocated).toBe(3);

    // a zero block in the child hides the parent's data
    const zeroed = fileBytes(childPath);
    const zinfo = await readVdiInfo(new MemoryStore('z', zeroed));
    new DataView(zeroed.buffer, zeroed.byteOffset).setUint32(zinfo.blocksOffset, 0xfffffffe, true);
    const zpath = join(dir, 'zero-snap.vdi');
    writeFileSync(zpath, zeroed);
    const zdev = await openVdi(new FileStore(zpath, true), new DirOpener(), { readOnly: true, parentCandidates: ['base.vdi'] });
    const zbuf = new Uint8Array(MiB);
    await zdev.read(0, zbuf);
    expect(zbuf.every((b) => b === 0)).toBe(true);
    const rest = new Uint8Array(MiB);
    await zdev.read(MiB / 512, rest);
    expect(sameBytes(rest, expected.subarray(MiB, 2 * MiB))).toBe(true);
    await zdev.close();

    // findParent: the host's own lookup
    let asked = '';
    const viaLookup = await openVdi(new FileStore(childPath, true), null, {
      readOnly: true,
      findParent: async (uuid) => {
        asked = uuid;
        return new FileStore(parentPath, true);
      },
    });
    expect(asked).toBe(parentInfo.uuid);
    expect(sameBytes(await readAll(viaLookup), expected)).toBe(true);
    await viaLookup.close();
  });

  it('a missing parent is a clear error naming the image and the UUID', async () => {
    const parentStore = new MemoryStore('gone.vdi');
    const p = await createVdi(parentStore, { sectors: 2048, type: 'dynamic' });
    const childPath = join(dir, 'orphan.vdi');
    const childStore = new MemoryStore(childPath);
    await createVdi(childStore, { sectors: 2048, type: 'dynamic', parent: { uuid: p.info.uuid } });
    writeFileSync(childPath, childStore.bytes());
    const before = fileBytes(childPath);
    const opener = new DirOpener();
    const err = await openVdi(new FileStore(childPath), opener, { readOnly: false, parentCandidates: ['other.vdi', 'nope.vdi'] }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DiskError);
    const msg = (err as Error).message;
    expect(msg.startsWith(`${childPath}: `)).toBe(true);
    expect(msg).toContain(p.info.uuid);
    expect(msg).toMatch(/parent .* not found/);
    expect(msg).toContain('other.vdi');
    const none = await openVdi(new FileStore(childPath), null, { readOnly: true }).catch((e: unknown) => e);
    expect((none as Error).message).toMatch(/not found: no candidate files were given/);
    expect(sameBytes(fileBytes(childPath), before)).toBe(true);
  });
});

// ---- damaged images ----

describe('damaged VDI images', () => {
  let good: string;
  let goodInfo: Awaited<ReturnType<typeof readVdiInfo>>;
  beforeAll(async () => {
    const raw = join(dir, 'dmg.raw');
    good = join(dir, 'dmg-good.vdi');
    makeRaw(raw, 4 * MiB, [
      [0, pattern(4096, 81)],
      [2 * MiB, pattern(4096, 82)],
      [3 * MiB + 4096, pattern(4096, 83)],
    ]);
    mustQemuImg(['convert', '-f', 'raw', '-O', 'vdi', raw, good]);
    goodInfo = await readVdiInfo(new FileStore(good, true));
  });

  /** copies the good image, damages it with `edit`, and checks open refuses it and changes nothing */
  async function expectRefused(name: string, edit: (b: Uint8Array, dv: DataView) => Uint8Array, fault: RegExp): Promise<void> {
    const bytes = fileBytes(good);
    const damaged = edit(bytes, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    const path = join(dir, `${name}.vdi`);
    writeFileSync(path, damaged);
    const store = new FileStore(path);
    const err = await openVdi(store, new DirOpener(), { readOnly: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskError);
    const msg = (err as Error).message;
    expect(msg.startsWith(`${path}: `)).toBe(true);
    expect(msg).not.toContain('\n');
    expect(msg).toMatch(fault);
    expect(store.writes).toBe(0);
    await store.close();
    expect(sameBytes(fileBytes(path), damaged)).toBe(true);
    const problems = await checkVdi(new FileStore(path, true));
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join('\n')).toMatch(fault);
  }

  it('the undamaged image opens and checks clean', async () => {
    expect(goodInfo.blocksAllocated).toBe(3);
    expect(await checkVdi(new FileStore(good, true))).toEqual([]);
  });

  it('wrong signature', () =>
    expectRefused('bad-sig', (b, dv) => (dv.setUint32(0x40, 0xbeda1070, true), b), /not a VDI image: bad signature 0xbeda1070/));

  it('unsupported version', () =>
    expectRefused('bad-version', (b, dv) => (dv.setUint32(0x44, 0x00020000, true), b), /unsupported VDI version 2\.0/));

  it('truncated inside the header', () => expectRefused('trunc-head', (b) => b.slice(0, 200), /truncated/));

  it('truncated inside the block map', () =>
    expectRefused('trunc-map', (b) => b.slice(0, goodInfo.blocksOffset + 6), /truncated: the block map ends/));

  it('truncated file: the last data block is cut short', () =>
    expectRefused('trunc-data', (b) => b.slice(0, b.length - 4096), /truncated: block map entry \d+ points to data block 2 .*past the end of the file/));

  it('a block map entry past the end of the file', () =>
    expectRefused(
      'entry-past-eof',
      (b, dv) => {
        dv.setUint32(goodInfo.blocksOffset + 4 * 1, 3, true); // block 1 → data block 3, never written
        dv.setUint32(0x184, 4, true);
        return b;
      },
      /block map entry 1 points to data block 3 .*past the end of the file/,
    ));

  it('a block map entry beyond the blocks of the image', () =>
    expectRefused('entry-too-big', (b, dv) => (dv.setUint32(goodInfo.blocksOffset + 4, 0x1000, true), b), /entry 1 is 4096, beyond the 4 blocks/));

  it('two block map entries pointing to the same data block', () =>
    expectRefused(
      'entry-dup',
      (b, dv) => (dv.setUint32(goodInfo.blocksOffset + 4 * 1, dv.getUint32(goodInfo.blocksOffset, true), true), b),
      /block map entries 0 and 1 both point to data block 0/,
    ));

  it('an unsupported image type and a bad block size', async () => {
    await expectRefused('bad-type', (b, dv) => (dv.setUint32(0x4c, 3, true), b), /unsupported VDI image type 3/);
    await expectRefused('bad-block', (b, dv) => (dv.setUint32(0x178, 1000000, true), b), /bad block size 1000000/);
  });

  it('a file that is not a VDI at all', async () => {
    const store = new MemoryStore('plain.img', pattern(4096, 99));
    await expect(openVdi(store, null, { readOnly: true })).rejects.toThrow(/^plain\.img: not a VDI image/);
    expect(probeVdi(pattern(512, 99))).toBe(false);
    expect(probeVdi(new Uint8Array(10))).toBe(false);
  });
});

// ---- version 0 headers ----

describe('VDI version 0 (0.2) images', () => {
  it('reads a hand-made v0 image and writes a new block into it', async () => {
    const blocks = 3;
    const blocksOffset = 72 + 348;
    const dataOffset = blocksOffset + 4 * blocks;
    const bytes = new Uint8Array(dataOffset + MiB);
    const dv = new DataView(bytes.buffer);
    const text = '<<< innotek VirtualBox Disk Image >>>\n';
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    dv.setUint32(0x40, 0xbeda107f, true);
    dv.setUint32(0x44, 0x00000002, true);
    dv.setUint32(0x48, 1, true); // dynamic
    dv.setUint32(0x15c, 512, true);
    dv.setUint32(0x160, 3 * MiB, true);
    dv.setUint32(0x168, MiB, true);
    dv.setUint32(0x16c, blocks, true);
    dv.setUint32(0x170, 1, true);
    bytes.set(pattern(16, 5), 0x174);
    bytes.set(pattern(16, 6), 0x184);
    dv.setUint32(blocksOffset, 0xffffffff, true);
    dv.setUint32(blocksOffset + 4, 0, true); // block 1 → data block 0
    dv.setUint32(blocksOffset + 8, 0xffffffff, true);
    bytes.set(pattern(MiB, 7), dataOffset);
    const store = new MemoryStore('old.vdi', bytes);
    const dev = await openVdi(store, null, { readOnly: false });
    expect(dev.format).toBe('vdi-dynamic');
    expect((dev as VdiImage).info.version).toBe('0.2');
    const got = await readAll(dev);
    const want = new Uint8Array(3 * MiB);
    want.set(pattern(MiB, 7), MiB);
    expect(sameBytes(got, want)).toBe(true);
    await dev.write((2 * MiB) / 512, pattern(512, 8));
    expect(new DataView(store.bytes().buffer).getUint32(blocksOffset + 8, true)).toBe(1);
    expect(new DataView(store.bytes().buffer).getUint32(0x170, true)).toBe(2);
    const again = await openVdi(store, null, { readOnly: true });
    const b = new Uint8Array(512);
    await again.read((2 * MiB) / 512, b);
    expect(sameBytes(b, pattern(512, 8))).toBe(true);
  });
});
