/**
 * VHD images against QEMU's tools: images qemu-img makes (fixed, dynamic, odd sizes, past 4 GiB) read
 * like the raw data they came from, images we write read right in qemu-img/qemu-io, differencing disks
 * (parent untouched, merged view, commit), damaged files refused with one-line errors and left unchanged,
 * Hyper-V / Virtual PC / VirtualBox-style files built by hand, and allocation that stays consistent if
 * the process dies after any write.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { copyFileSync, readFileSync, renameSync, mkdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskError, MemoryStore, type ByteStore } from '../../disk/block';
import { openImage, detectFormat } from '../../disk/detect';
import {
  VhdImage,
  checkVhd,
  commitVhd,
  createVhd,
  openVhd,
  vhdChecksum,
  vhdGeometry,
  vhdRoundedSectors,
} from '../../disk/vhd';
import { createRaw } from '../../disk/raw';
import { FileStore, NodeOpener } from '../../node/file-store';
import { pattern, patternedRaw, qemuCompare, qemuImg, qemuInfo, qemuIo, scratchDir } from '../helpers/qemu-img';

const { dir, cleanup } = scratchDir('x86vm-vhd-');
afterAll(cleanup);
const opener = new NodeOpener();
let n = 0;
const file = (name: string): string => join(dir, `${n++}-${name}`);

async function openFile(path: string, readOnly = true, extra: { parentWritable?: boolean } = {}) {
  const store = FileStore.open(path, { readOnly });
  try {
    return await openImage(store, opener, { readOnly, ...extra });
  } catch (e) {
    await store.close();
    throw e;
  }
}

async function readAll(dev: { sectors: number; read(s: number, b: Uint8Array): Promise<void> }): Promise<Uint8Array> {
  const out = new Uint8Array(dev.sectors * 512);
  const step = 8192;
  for (let s = 0; s < dev.sectors; s += step) {
    const c = Math.min(step, dev.sectors - s);
    await dev.read(s, out.subarray(s * 512, (s + c) * 512));
  }
  return out;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

/** `data` zero-padded to `length` */
function padded(data: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  out.set(data.subarray(0, Math.min(length, data.length)));
  return out;
}

describe('VHD geometry and sizes', () => {
  it('computes the specification geometry for known sizes', () => {
    // 64 MiB: cth = 131072/17 = 7710 → heads 8 → 963 cylinders (963*8*17 = 130968)
    expect(vhdGeometry(131072)).toEqual({ cylinders: 963, heads: 8, sectorsPerTrack: 17 });
    // 10 GiB: past 17 and 31 sectors per track → 63, 16 heads
    expect(vhdGeometry(20971520)).toEqual({ cylinders: 20805, heads: 16, sectorsPerTrack: 63 });
    // past 65535*16*63: 255 sectors per track; capped at the largest geometry
    expect(vhdGeometry(65535 * 16 * 255 + 1000)).toEqual({ cylinders: 65535, heads: 16, sectorsPerTrack: 255 });
  });

  it('rounds sizes up to a CHS geometry exactly as qemu-img create -f vpc does', () => {
    const sizes = [10 * 1048576 + 3 * 512, 64 * 1048576, 1000 * 1048576 + 512, 10 * 1024 ** 3, 4200 * 1048576, 130 * 1024 ** 3];
    for (const bytes of sizes) {
      const f = file('geo.vhd');
      qemuImg(['create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic', f, String(bytes)]);
      const qsize = qemuInfo(f, 'vpc')['virtual-size'];
      expect(vhdRoundedSectors(bytes / 512) * 512, `size ${bytes}`).toBe(qsize);
      // and the geometry we would write is qemu's (bytes 56..59 of the footer)
      const foot = readFileSync(f).subarray(-512);
      const g = vhdGeometry(qsize / 512);
      expect([foot.readUInt16BE(56), foot[58], foot[59]], `size ${bytes}`).toEqual([g.cylinders, g.heads, g.sectorsPerTrack]);
    }
  });
});

describe('VHD files made by qemu-img read like their raw source', () => {
  for (const subformat of ['dynamic', 'fixed']) {
    for (const bytes of [10 * 1048576 + 3 * 512, 6 * 1048576]) {
      it(`${subformat}, ${bytes} bytes (raw → qemu-img convert -O vpc)`, async () => {
        const raw = file('src.raw');
        const data = patternedRaw(raw, bytes, bytes + subformat.length);
        const vhd = file(`q-${subformat}.vhd`);
        qemuImg(['convert', '-f', 'raw', '-O', 'vpc', '-o', `subformat=${subformat}`, raw, vhd]);
        expect(await detectFormat(new MemoryStore('x', readFileSync(vhd)))).toBe('vhd');
        const dev = await openFile(vhd);
        expect(dev.format).toBe(`vhd-${subformat}`);
        expect(dev.sectors * 512).toBe(qemuInfo(vhd, 'vpc')['virtual-size']);
        expect(dev.sectors * 512).toBeGreaterThanOrEqual(bytes);
        expect(same(await readAll(dev), padded(data, dev.sectors * 512))).toBe(true);
        // unaligned multi-block reads agree too
        const buf = new Uint8Array(4099 * 512);
        await dev.read(4093, buf);
        expect(same(buf, padded(data.subarray(4093 * 512), buf.length))).toBe(true);
        await dev.close();
      });
    }
  }

  it('a dynamic VHD past 4 GiB: data beyond the 4 GiB mark reads and writes right both ways', async () => {
    const vhd = file('big.vhd');
    qemuImg(['create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic', vhd, '4200M']);
    const at = 4 * 1024 ** 3 + 3 * 1048576 + 7 * 512; // past 2^32, not block aligned
    qemuIo(vhd, 'vpc', [`write -P 0xa5 ${at} 65536`, 'write -P 0x3c 0 4096']);
    let dev = await openFile(vhd, false);
    expect(dev.sectors * 512).toBe(qemuInfo(vhd, 'vpc')['virtual-size']);
    const buf = new Uint8Array(65536 + 1024);
    await dev.read(at / 512 - 1, buf);
    expect(buf.subarray(0, 512).every((b) => b === 0)).toBe(true);
    expect(buf.subarray(512, 512 + 65536).every((b) => b === 0xa5)).toBe(true);
    expect(buf.subarray(512 + 65536).every((b) => b === 0)).toBe(true);
    const head = new Uint8Array(8192);
    await dev.read(0, head);
    expect(head.subarray(0, 4096).every((b) => b === 0x3c) && head.subarray(4096).every((b) => b === 0)).toBe(true);
    // our write near the end of the disk, read back by qemu-io
    const last = dev.sectors - 16;
    await dev.write(last, new Uint8Array(8192).fill(0x77));
    await dev.close();
    const r = qemuIo(vhd, 'vpc', [`read -P 0x77 ${last * 512} 8192`, `read -P 0xa5 ${at} 65536`]);
    expect(r.stdout).not.toMatch(/fail/i);
    expect(statSync(vhd).size).toBeLessThan(16 * 1048576);
    dev = await openFile(vhd);
    expect(await checkVhd((dev as VhdImage).store, opener)).toEqual([]);
    await dev.close();
  });
});

describe('VHD files we write, read by qemu', () => {
  for (const type of ['dynamic', 'fixed'] as const) {
    it(`${type}: scattered writes (across block boundaries, partial blocks) read back in qemu-img`, async () => {
      const vhd = file(`ours-${type}.vhd`);
      const sectors = vhdRoundedSectors((9 * 1048576) / 512);
      const model = new Uint8Array(sectors * 512);
      const img = await createVhd(FileStore.open(vhd, { create: 'new' }), { sectors, type });
      const writes: [number, number][] = [
        [0, 1],
        [4095, 2], // crosses the first 2 MiB block boundary
        [5000, 300],
        [12000, 4096], // spans two blocks
        [sectors - 3, 3], // the disk's last sectors (a partial block)
        [5100, 8], // back into an allocated block
      ];
      let seed = 1;
      for (const [s, c] of writes) {
        const d = pattern(c * 512, seed++);
        await img.write(s, d);
        model.set(d, s * 512);
      }
      expect(same(await readAll(img), model)).toBe(true);
      await img.close();
      const raw = file('expect.raw');
      writeFileSync(raw, model);
      const cmp = qemuCompare(vhd, 'vpc', raw, 'raw');
      expect(cmp.stdout + cmp.stderr).toMatch(/identical/);
      expect(cmp.status).toBe(0);
      expect(qemuInfo(vhd, 'vpc')['virtual-size']).toBe(sectors * 512);
      const re = await openFile(vhd);
      expect(same(await readAll(re), model)).toBe(true);
      expect(await checkVhd((re as VhdImage).store, opener)).toEqual([]);
      await re.close();
    });
  }

  it('writes into a qemu-made dynamic image with data keep qemu reading it right', async () => {
    const raw = file('base.raw');
    const bytes = 8 * 1048576;
    const data = patternedRaw(raw, bytes, 77);
    const vhd = file('q.vhd');
    qemuImg(['convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=dynamic', raw, vhd]);
    const dev = await openFile(vhd, false);
    const model = padded(data, dev.sectors * 512);
    for (const [s, c, seed] of [[100, 50, 5], [3100, 2000, 6], [6000, 1, 7]]) {
      const d = pattern(c * 512, seed);
      await dev.write(s, d);
      model.set(d, s * 512);
    }
    await dev.close();
    const want = file('want.raw');
    writeFileSync(want, model);
    expect(qemuCompare(vhd, 'vpc', want, 'raw').status).toBe(0);
  });

  it('concurrent writes into one new block allocate it once', async () => {
    const store = new MemoryStore('c.vhd');
    const img = await createVhd(store, { sectors: 8192, type: 'dynamic' });
    const ps: Promise<void>[] = [];
    for (let i = 0; i < 64; i++) ps.push(img.write(i * 16, new Uint8Array(512).fill(i + 1)));
    await Promise.all(ps);
    expect(img.allocatedBlocks()).toBe(1);
    for (let i = 0; i < 64; i++) {
      const b = new Uint8Array(512);
      await img.read(i * 16, b);
      expect(b[0]).toBe(i + 1);
    }
    expect(await checkVhd(store, opener)).toEqual([]);
  });
});

/** a store that dies (every later write ignored) after `limit` writes: a crash at that point */
class CrashingStore implements ByteStore {
  readonly readOnly = false;
  writes = 0;
  constructor(
    readonly inner: MemoryStore,
    private readonly limit: number,
  ) {}
  get name(): string {
    return this.inner.name;
  }
  size(): number {
    return this.inner.size();
  }
  read(o: number, b: Uint8Array): Promise<void> {
    return this.inner.read(o, b);
  }
  async write(o: number, d: Uint8Array): Promise<void> {
    if (this.writes++ >= this.limit) throw new Error('crashed');
    await this.inner.write(o, d);
  }
  async truncate(s: number): Promise<void> {
    if (this.writes++ >= this.limit) throw new Error('crashed');
    await this.inner.truncate(s);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('VHD crash consistency', () => {
  it('a crash after any write of an allocation leaves a file that opens with the data flushed before', async () => {
    const base = new MemoryStore('base.vhd');
    const img0 = await createVhd(base, { sectors: 16384, type: 'dynamic' });
    await img0.write(10, new Uint8Array(1024).fill(0x11));
    await img0.flush();
    const snapshot = base.bytes().slice();
    for (let limit = 0; limit < 12; limit++) {
      const mem = new MemoryStore('crash.vhd', snapshot.slice());
      const crashing = new CrashingStore(mem, limit);
      const img = await openVhd(crashing, opener);
      let crashed = false;
      try {
        await img.write(5000, new Uint8Array(4096).fill(0x22)); // a new block
        await img.write(5008, new Uint8Array(512).fill(0x33)); // into it
        await img.write(12000, new Uint8Array(512).fill(0x44)); // another new block
      } catch {
        crashed = true;
      }
      const after = await openVhd(new MemoryStore('crash.vhd', mem.bytes().slice()), opener);
      const b = new Uint8Array(1024);
      await after.read(10, b);
      expect(b.every((x) => x === 0x11), `limit ${limit}`).toBe(true);
      const c = new Uint8Array(512);
      await after.read(5000, c);
      expect(c.every((x) => x === 0) || c.every((x) => x === 0x22), `limit ${limit}`).toBe(true);
      expect(await checkVhd(new MemoryStore('crash.vhd', mem.bytes().slice()), opener), `limit ${limit}`).toEqual([]);
      if (!crashed) break;
    }
  });
});

describe('differencing VHDs', () => {
  async function makeParent(bytes = 6 * 1048576): Promise<{ path: string; data: Uint8Array }> {
    const raw = file('p.raw');
    const src = patternedRaw(raw, bytes, 1234);
    const path = file('parent.vhd');
    qemuImg(['convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=dynamic', raw, path]);
    const size = qemuInfo(path, 'vpc')['virtual-size'];
    return { path, data: padded(src, size) };
  }

  it('writes go to the child, the parent stays byte-identical, reads merge, commit merges into the parent', async () => {
    const parent = await makeParent();
    const parentBytes = readFileSync(parent.path);
    const childPath = file('child.vhd');
    const pdev = await openFile(parent.path);
    const child = await createVhd(FileStore.open(childPath, { create: 'new' }), { type: 'differencing', parent: pdev });
    expect(child.format).toBe('vhd-differencing');
    expect(child.sectors).toBe(pdev.sectors);
    const model = parent.data.slice();
    for (const [s, c, seed] of [[1, 2, 1], [4090, 12, 2], [7000, 3000, 3], [child.sectors - 1, 1, 4]]) {
      const d = pattern(c * 512, seed + 50);
      await child.write(s, d);
      model.set(d, s * 512);
    }
    expect(same(await readAll(child), model)).toBe(true);
    await child.close();
    expect(same(readFileSync(parent.path), parentBytes)).toBe(true);

    // reopened from the file: the parent is found through its locators
    const re = await openFile(childPath);
    expect((re as VhdImage).parent?.name).toBe(parent.path);
    expect(same(await readAll(re), model)).toBe(true);
    expect(await checkVhd((re as VhdImage).store, opener)).toEqual([]);
    await re.close();

    // commit
    const rw = (await openFile(childPath, false, { parentWritable: true })) as VhdImage;
    const copied = await commitVhd(rw);
    expect(copied).toBe(2 + 12 + 3000 + 1);
    await rw.close();
    const p2 = await openFile(parent.path);
    expect(same(await readAll(p2), model)).toBe(true);
    await p2.close();
    const want = file('merged.raw');
    writeFileSync(want, model);
    expect(qemuCompare(parent.path, 'vpc', want, 'raw').status).toBe(0);
    const c2 = (await openFile(childPath)) as VhdImage;
    expect(c2.allocatedBlocks()).toBe(0);
    expect(same(await readAll(c2), model)).toBe(true);
    await c2.close();
    expect(statSync(childPath).size).toBeLessThan(8192);
  });

  it('finds a moved pair through the relative locator, and a lone file name next to the child', async () => {
    const parent = await makeParent(3 * 1048576);
    const childPath = file('c.vhd');
    const pdev = await openFile(parent.path);
    const child = await createVhd(FileStore.open(childPath, { create: 'new' }), { type: 'differencing', parent: pdev });
    await child.write(0, new Uint8Array(512).fill(9));
    await child.close();
    const moved = join(dir, 'moved');
    mkdirSync(moved);
    // the relative locator names the parent's file name: keep it, move both
    const pname = parent.path.split('/').pop()!;
    renameSync(parent.path, join(moved, pname));
    renameSync(childPath, join(moved, 'c.vhd'));
    const dev = await openFile(join(moved, 'c.vhd'));
    const b = new Uint8Array(1024);
    await dev.read(0, b);
    expect(b.subarray(0, 512).every((x) => x === 9)).toBe(true);
    expect(same(b.subarray(512), parent.data.subarray(512, 1024))).toBe(true);
    await dev.close();
  });

  it('a missing parent and a changed parent are one-line errors; the child is left unchanged', async () => {
    const parent = await makeParent(2 * 1048576);
    const childPath = file('orphan.vhd');
    const pdev = await openFile(parent.path);
    const child = await createVhd(FileStore.open(childPath, { create: 'new' }), { type: 'differencing', parent: pdev });
    await child.write(0, new Uint8Array(512).fill(1));
    await child.close();
    const before = readFileSync(childPath);

    // changed: another VHD of the same size under the parent's name
    const other = file('other.vhd');
    qemuImg(['create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic', other, '2M']);
    renameSync(parent.path, `${parent.path}.away`);
    copyFileSync(other, parent.path);
    let err = await openFile(childPath).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskError);
    expect((err as Error).message).toMatch(/^\S+orphan\.vhd: the parent image has changed: \S+ has unique ID [0-9a-f-]{36}/);
    expect((err as Error).message).not.toMatch(/\n/);
    let problems = await checkVhd(FileStore.open(childPath, { readOnly: true }), opener);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^the parent image has changed/);

    // missing
    renameSync(parent.path, `${parent.path}.gone`);
    err = await openFile(childPath).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/orphan\.vhd: parent image not found \(tried .*parent\.vhd\)$/);
    problems = await checkVhd(FileStore.open(childPath, { readOnly: true }), opener);
    expect(problems[0]).toMatch(/^parent image not found/);
    expect(same(readFileSync(childPath), before)).toBe(true);
  });

  it('a differencing VHD over a raw parent reads through it and records locators', async () => {
    const rawPath = file('base.img');
    const data = patternedRaw(rawPath, 3 * 1048576 + 1024, 99);
    const base = await openFile(rawPath);
    const childPath = file('over-raw.vhd');
    const child = await createVhd(FileStore.open(childPath, { create: 'new' }), { type: 'differencing', parent: base });
    expect(child.sectors).toBe(base.sectors);
    await child.write(2, new Uint8Array(512).fill(0xee));
    await child.close();
    const re = await openFile(childPath);
    expect(re.format).toBe('vhd-differencing');
    const model = padded(data, re.sectors * 512);
    model.fill(0xee, 1024, 1536);
    expect(same(await readAll(re), model)).toBe(true);
    await re.close();
    // a raw parent that shrank is a changed parent
    truncateSync(rawPath, 1048576);
    const err = await openFile(childPath).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/the parent image has changed: .*base\.img has 2048 sectors, the child has 6146/);
  });
});

describe('differencing chains', () => {
  it('raw ← VHD ← VHD and VDI ← VHD: each level reads through the ones below; commit merges one level', async () => {
    const rawPath = file('chain.img');
    const data = patternedRaw(rawPath, 4 * 1048576, 17);
    const l1Path = file('chain-1.vhd');
    const l2Path = file('chain-2.vhd');
    const l1 = await createVhd(FileStore.open(l1Path, { create: 'new' }), { type: 'differencing', parent: await openFile(rawPath) });
    await l1.write(100, new Uint8Array(2048).fill(1));
    await l1.close();
    const l2 = await createVhd(FileStore.open(l2Path, { create: 'new' }), { type: 'differencing', parent: await openFile(l1Path) });
    await l2.write(102, new Uint8Array(4096).fill(2));
    await l2.close();
    const model = data.slice();
    model.fill(1, 100 * 512, 104 * 512);
    model.fill(2, 102 * 512, 110 * 512);
    const dev = (await openFile(l2Path)) as VhdImage;
    expect((dev.parent as VhdImage).parent?.format).toBe('raw');
    expect(same(await readAll(dev), model)).toBe(true);
    await dev.close();
    const rawBefore = readFileSync(rawPath);
    const rw = (await openFile(l2Path, false, { parentWritable: true })) as VhdImage;
    expect(await commitVhd(rw)).toBe(8);
    await rw.close();
    expect(same(readFileSync(rawPath), rawBefore)).toBe(true); // only one level down is written
    const l1again = await openFile(l1Path);
    expect(same(await readAll(l1again), model)).toBe(true);
    await l1again.close();

    const vdiPath = file('chain.vdi');
    qemuImg(['convert', '-f', 'raw', '-O', 'vdi', rawPath, vdiPath]);
    const overVdi = file('over-vdi.vhd');
    const c = await createVhd(FileStore.open(overVdi, { create: 'new' }), { type: 'differencing', parent: await openFile(vdiPath) });
    await c.write(0, new Uint8Array(512).fill(3));
    await c.close();
    const cv = (await openFile(overVdi)) as VhdImage;
    expect(cv.parent?.format).toMatch(/^vdi-/);
    const want = data.slice();
    want.fill(3, 0, 512);
    expect(same(await readAll(cv), want)).toBe(true);
    await cv.close();
  });
});

describe('damaged VHD files', () => {
  async function damaged(mutate: (b: Buffer) => Buffer): Promise<string> {
    const raw = file('d.raw');
    patternedRaw(raw, 5 * 1048576, 3);
    const vhd = file('d.vhd');
    qemuImg(['convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=dynamic', raw, vhd]);
    writeFileSync(vhd, mutate(readFileSync(vhd)));
    return vhd;
  }

  async function expectRefused(vhd: string, re: RegExp): Promise<void> {
    const before = readFileSync(vhd);
    for (const readOnly of [true, false]) {
      const err = await openFile(vhd, readOnly).catch((e: unknown) => e);
      expect(err, String(err)).toBeInstanceOf(DiskError);
      const msg = (err as Error).message;
      expect(msg.startsWith(`${vhd}: `)).toBe(true);
      expect(msg).toMatch(re);
      expect(msg).not.toMatch(/\n/);
    }
    const problems = await checkVhd(FileStore.open(vhd, { readOnly: true }), opener);
    expect(problems.some((p) => re.test(p))).toBe(true);
    expect(same(readFileSync(vhd), before)).toBe(true);
  }

  /** BAT offset (from the dynamic header at 512) */
  const batOffset = (b: Buffer): number => Number(b.readBigUInt64BE(512 + 16));

  it('truncated', async () => {
    const vhd = await damaged((b) => b.subarray(0, b.length - 700));
    await expectRefused(vhd, /truncated or damaged: no VHD footer at the end of the file/);
  });

  it('a flipped footer checksum byte', async () => {
    const vhd = await damaged((b) => {
      b[b.length - 512 + 66] ^= 0x40;
      return b;
    });
    await expectRefused(vhd, /bad footer checksum \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)/);
  });

  it('a damaged dynamic header', async () => {
    const vhd = await damaged((b) => {
      b[512 + 100] ^= 1;
      return b;
    });
    await expectRefused(vhd, /bad dynamic header checksum/);
  });

  it('a BAT entry past the end of the file', async () => {
    const vhd = await damaged((b) => {
      b.writeUInt32BE(0x00100000, batOffset(b) + 4); // block 1 at 512 MiB
      return b;
    });
    await expectRefused(vhd, /BAT entry for block 1 points past the end of the file/);
  });

  it('two BAT entries for one block', async () => {
    const vhd = await damaged((b) => {
      const t = batOffset(b);
      b.writeUInt32BE(b.readUInt32BE(t), t + 4); // block 1 → block 0's place
      return b;
    });
    await expectRefused(vhd, /blocks 0 and 1 overlap in the file/);
  });

  it('a stale footer copy is reported by check but does not stop the image from opening', async () => {
    const vhd = await damaged((b) => {
      b[30] ^= 1; // creator application byte of the copy at offset 0
      return b;
    });
    const dev = await openFile(vhd);
    await dev.close();
    expect(await checkVhd(FileStore.open(vhd, { readOnly: true }), opener)).toEqual(['the footer copy at offset 0 has a bad checksum']);
  });
});

// ---- VHD files as other programs write them, built by hand from the specification ----

interface HandOptions {
  creator: string;
  type: 2 | 3 | 4;
  /** current size in bytes */
  size: number;
  /** geometry written in the footer */
  chs: [number, number, number];
  /** blocks: index → [bitmap bits set (sector numbers within block), data of the whole block] */
  blocks?: Map<number, { sectors: number[]; data: Uint8Array }>;
  blockSize?: number;
  parentId?: Uint8Array;
  locators?: { code: string; text: string; utf16: boolean }[];
  uniqueId?: Uint8Array;
  /** drop the last byte of the footer (old Virtual PC fixed disks) */
  footer511?: boolean;
}

function handVhd(o: HandOptions, fixedData?: Uint8Array): Buffer {
  const footer = Buffer.alloc(512);
  footer.write('conectix', 0, 'latin1');
  footer.writeUInt32BE(2, 8);
  footer.writeUInt32BE(0x00010000, 12);
  footer.writeUInt32BE(0x12345678, 24);
  footer.write(o.creator, 28, 'latin1');
  footer.writeUInt32BE(0x000a0000, 32);
  footer.write('Wi2k', 36, 'latin1');
  footer.writeBigUInt64BE(BigInt(o.size), 40);
  footer.writeBigUInt64BE(BigInt(o.size), 48);
  footer.writeUInt16BE(o.chs[0], 56);
  footer[58] = o.chs[1];
  footer[59] = o.chs[2];
  footer.writeUInt32BE(o.type, 60);
  (o.uniqueId ?? pattern(16, o.size)).forEach((v, i) => (footer[68 + i] = v));
  const sum = (b: Buffer, skip: number): number => {
    let s = 0;
    for (let i = 0; i < b.length; i++) if (i < skip || i >= skip + 4) s += b[i];
    return ~s >>> 0;
  };
  if (o.type === 2) {
    footer.writeBigUInt64BE(0xffffffffffffffffn, 16);
    footer.writeUInt32BE(sum(footer, 64), 64);
    const body = Buffer.alloc(o.size);
    if (fixedData) body.set(fixedData);
    return Buffer.concat([body, o.footer511 ? footer.subarray(0, 511) : footer]);
  }
  footer.writeBigUInt64BE(512n, 16);
  footer.writeUInt32BE(sum(footer, 64), 64);
  const blockSize = o.blockSize ?? 2 * 1048576;
  const entries = Math.ceil(o.size / blockSize);
  const header = Buffer.alloc(1024);
  header.write('cxsparse', 0, 'latin1');
  header.writeBigUInt64BE(0xffffffffffffffffn, 8);
  // Hyper-V style: BAT after the header and the locators, blocks aligned to 1 MiB... here 4 KiB
  const locData: Buffer[] = [];
  let pos = 1536;
  const locs = o.locators ?? [];
  locs.forEach((l, i) => {
    const data = l.utf16 ? Buffer.from(l.text, 'utf16le') : Buffer.from(l.text, 'latin1');
    const space = Math.ceil(Math.max(data.length, 1) / 512) * 512;
    const e = 576 + i * 24;
    header.write(l.code, e, 'latin1');
    header.writeUInt32BE(space, e + 4); // in bytes, as Hyper-V writes it (the spec says sectors)
    header.writeUInt32BE(data.length, e + 8);
    header.writeBigUInt64BE(BigInt(pos), e + 16);
    const padded = Buffer.alloc(space);
    data.copy(padded);
    locData.push(padded);
    pos += space;
  });
  const tableOffset = pos;
  header.writeBigUInt64BE(BigInt(tableOffset), 16);
  header.writeUInt32BE(0x00010000, 24);
  header.writeUInt32BE(entries, 28);
  header.writeUInt32BE(blockSize, 32);
  if (o.parentId) o.parentId.forEach((v, i) => (header[40 + i] = v));
  header.write('parent', 64, 'utf16le'); // not big-endian: junk on purpose, the locators win
  const batBytes = Math.ceil((entries * 4) / 512) * 512;
  const bat = Buffer.alloc(batBytes, 0xff);
  const bitmapBytes = Math.ceil(blockSize / 512 / 8 / 512) * 512;
  let next = Math.ceil((tableOffset + batBytes) / 4096) * 4096;
  const blocks: Buffer[] = [];
  const gap = Buffer.alloc(next - tableOffset - batBytes);
  for (const [index, b] of [...(o.blocks ?? new Map()).entries()].sort((x, y) => y[0] - x[0])) {
    // blocks in reverse order of their index, as a file grown by random writes has them
    bat.writeUInt32BE(next / 512, index * 4);
    const bm = Buffer.alloc(bitmapBytes);
    for (const s of b.sectors) bm[s >> 3] |= 0x80 >> (s & 7);
    blocks.push(bm, Buffer.from(b.data));
    next += bitmapBytes + blockSize;
  }
  header.writeUInt32BE(sum(header, 36), 36);
  return Buffer.concat([footer, header, ...locData, bat, gap, ...blocks, footer]);
}

describe('VHD files from other programs (built by hand)', () => {
  it('Hyper-V ("win "): the current size wins over a smaller CHS size; bitmaps and a Windows parent path', async () => {
    const size = 10 * 1048576 + 5 * 512; // not a CHS product
    const g = vhdGeometry(size / 512);
    expect(g.cylinders * g.heads * g.sectorsPerTrack).toBeLessThan(size / 512);
    const blockData = pattern(2 * 1048576, 8);
    const tail = pattern(512 * 5, 9);
    const lastBlock = new Uint8Array(2 * 1048576);
    lastBlock.set(tail, 0); // the disk's last 5 sectors are the start of block 5
    const base = handVhd({
      creator: 'win ',
      type: 3,
      size,
      chs: [g.cylinders, g.heads, g.sectorsPerTrack],
      blocks: new Map([
        [1, { sectors: Array.from({ length: 4096 }, (_, i) => i), data: blockData }],
        [5, { sectors: [0, 1, 2, 3, 4], data: lastBlock }],
      ]),
    });
    const basePath = join(dir, 'hv-base.vhd');
    writeFileSync(basePath, base);
    const dev = (await openFile(basePath)) as VhdImage;
    expect(dev.sectors).toBe(size / 512);
    expect(dev.footer.creatorApp).toBe('win ');
    const model = new Uint8Array(size);
    model.set(blockData, 2 * 1048576);
    model.set(tail, 10 * 1048576);
    expect(same(await readAll(dev), model)).toBe(true);
    expect(await checkVhd(dev.store, opener)).toEqual([]);
    await dev.close();

    // a Hyper-V differencing child naming its parent by a Windows absolute path only
    const childData = new Uint8Array(2 * 1048576);
    childData.fill(0x5a, 512 * 10, 512 * 12);
    childData.fill(0x6b, 512 * 4095, 512 * 4096); // bit not set below: must come from the parent
    const child = handVhd({
      creator: 'win ',
      type: 4,
      size,
      chs: [g.cylinders, g.heads, g.sectorsPerTrack],
      parentId: pattern(16, size),
      uniqueId: pattern(16, 4242),
      locators: [{ code: 'W2ku', text: 'D:\\Hyper-V\\Virtual Hard Disks\\hv-base.vhd', utf16: true }],
      blocks: new Map([[1, { sectors: [10, 11], data: childData }]]),
    });
    const childPath = join(dir, 'hv-child.vhd');
    writeFileSync(childPath, child);
    const cdev = (await openFile(childPath)) as VhdImage;
    expect(cdev.parent?.name).toBe(basePath);
    const merged = model.slice();
    merged.fill(0x5a, 2 * 1048576 + 512 * 10, 2 * 1048576 + 512 * 12);
    expect(same(await readAll(cdev), merged)).toBe(true);
    await cdev.close();
  });

  it('Virtual PC ("vpc "): a fixed disk with a 511-byte footer; VirtualBox ("vbox"): a dynamic disk with 512 KiB blocks', async () => {
    const size = 3 * 1048576;
    const g = vhdGeometry(size / 512);
    const data = pattern(size, 31);
    const vpc = join(dir, 'vpc.vhd');
    writeFileSync(vpc, handVhd({ creator: 'vpc ', type: 2, size, chs: [g.cylinders, g.heads, g.sectorsPerTrack], footer511: true }, data));
    const dev = await openFile(vpc);
    expect(dev.format).toBe('vhd-fixed');
    expect(same(await readAll(dev), data)).toBe(true);
    await dev.close();

    const blk = pattern(512 * 1024, 32);
    const vbox = join(dir, 'vbox.vhd');
    writeFileSync(
      vbox,
      handVhd({
        creator: 'vbox',
        type: 3,
        size,
        blockSize: 512 * 1024,
        chs: [g.cylinders, g.heads, g.sectorsPerTrack],
        blocks: new Map([[3, { sectors: Array.from({ length: 1024 }, (_, i) => i), data: blk }]]),
      }),
    );
    const vdev = await openFile(vbox, false);
    const model = new Uint8Array(size);
    model.set(blk, 3 * 512 * 1024);
    expect(same(await readAll(vdev), model)).toBe(true);
    // a write into a new 512 KiB block, then qemu reads the file the same way
    await vdev.write(2000, new Uint8Array(1024).fill(0x99));
    model.fill(0x99, 2000 * 512, 2002 * 512);
    await vdev.close();
    const want = join(dir, 'vbox.raw');
    writeFileSync(want, model);
    // qemu 7.2 sizes a 'vbox' image by its CHS geometry (24 sectors short here); the rest must agree
    // and the raw file's extra tail is zeros, which qemu-img compare accepts
    const cmp = qemuCompare(vbox, 'vpc', want, 'raw');
    expect(cmp.status, cmp.stdout + cmp.stderr).toBe(0);
    const re = await openFile(vbox);
    expect(same(await readAll(re), model)).toBe(true);
    expect(await checkVhd((re as VhdImage).store, opener)).toEqual([]);
    await re.close();
  });

  it('footer and header checksums are the one-complement byte sums', () => {
    const b = new Uint8Array(512).fill(1);
    expect(vhdChecksum(b, 64)).toBe(~(508) >>> 0);
  });

  it('create refuses what a VHD cannot hold', async () => {
    await expect(createVhd(new MemoryStore('x.vhd'), { sectors: 0xff000001, type: 'dynamic' })).rejects.toThrow(/x\.vhd: a VHD holds at most 2040 GiB/);
    await expect(createVhd(new MemoryStore('x.vhd'), { type: 'differencing' })).rejects.toThrow(/needs a parent/);
    const raw = await createRaw(new MemoryStore('r.img'), 1048576);
    await expect(createVhd(new MemoryStore('x.vhd'), { type: 'dynamic', sectors: 2048, parent: raw })).rejects.toThrow(/has no parent/);
  });
});
