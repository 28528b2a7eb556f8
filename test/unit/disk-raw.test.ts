/**
 * Raw images (odd sizes, bounds), format detection, and the Node file store under them: sparse growth,
 * reads past the end, errors that name the file, and the in-process side of image locking.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { existsSync, readFileSync, statSync, writeFileSync, symlinkSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { DiskError, MemoryStore } from '../../disk/block';
import { createRaw, openRaw } from '../../disk/raw';
import { detectFormat, openImage } from '../../disk/detect';
import { FileStore, NodeOpener } from '../../node/file-store';
import { pattern, qemuImg, scratchDir } from '../helpers/qemu-img';

const { dir, cleanup } = scratchDir('x86vm-raw-');
afterAll(cleanup);
let n = 0;
const file = (name: string): string => join(dir, `${n++}-${name}`);

describe('raw images', () => {
  it('a file of 10 MiB + 3 sectors + 100 bytes is a disk of ceil(size/512) sectors; the tail reads zero-padded', async () => {
    const size = 10 * 1048576 + 3 * 512 + 100;
    const data = pattern(size, 5);
    const path = file('odd.img');
    writeFileSync(path, data);
    const dev = openRaw(FileStore.open(path));
    expect(dev.format).toBe('raw');
    expect(dev.sectors).toBe(Math.ceil(size / 512));
    const last = new Uint8Array(1024);
    await dev.read(dev.sectors - 2, last);
    expect(Buffer.compare(last.subarray(0, 612), data.subarray(size - 612))).toBe(0);
    expect(last.subarray(612).every((b) => b === 0)).toBe(true);
    const mid = new Uint8Array(7 * 512);
    await dev.read(1001, mid);
    expect(Buffer.compare(mid, data.subarray(1001 * 512, 1008 * 512))).toBe(0);
    // a write to the partial last sector completes it (the file grows to whole sectors)
    await dev.write(dev.sectors - 1, new Uint8Array(512).fill(0xab));
    await dev.close();
    expect(statSync(path).size).toBe(dev.sectors * 512);
    expect(readFileSync(path).subarray(-512).every((b) => b === 0xab)).toBe(true);
  });

  it('refuses requests outside the disk or not in whole sectors, naming the file', async () => {
    const dev = await createRaw(new MemoryStore('small.img'), 4096);
    expect(dev.sectors).toBe(8);
    await expect(dev.read(7, new Uint8Array(1024))).rejects.toThrow(/^small\.img: request past the end of the disk: sectors 7\.\.8 of 8$/);
    await expect(dev.read(0, new Uint8Array(100))).rejects.toThrow(/small\.img: bad request/);
    await expect(dev.write(-1, new Uint8Array(512))).rejects.toThrow(DiskError);
    const ro = openRaw(new MemoryStore('ro.img', new Uint8Array(1024), true));
    expect(ro.readOnly).toBe(true);
    await expect(ro.write(0, new Uint8Array(512))).rejects.toThrow(/ro\.img: the disk is read-only/);
  });

  it('createRaw makes a sparse file that qemu-img sees with the same size', async () => {
    const path = file('new.img');
    const dev = await createRaw(FileStore.open(path, { create: 'new' }), 256 * 1048576);
    await dev.write(1000, new Uint8Array(512).fill(1));
    await dev.close();
    expect(statSync(path).size).toBe(256 * 1048576);
    expect(statSync(path).blocks * 512).toBeLessThan(1048576);
    const info = JSON.parse(qemuImg(['info', '--output=json', '-f', 'raw', path]).stdout);
    expect(info['virtual-size']).toBe(256 * 1048576);
  });
});

describe('format detection', () => {
  it('tells raw, VHD, VDI and ISO apart and refuses formats it does not read', async () => {
    const vhd = file('d.vhd');
    qemuImg(['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', vhd, '1M']);
    const vdi = file('d.vdi');
    qemuImg(['create', '-q', '-f', 'vdi', vdi, '1M']);
    const qcow = file('d.qcow2');
    qemuImg(['create', '-q', '-f', 'qcow2', qcow, '1M']);
    const raw = file('d.img');
    writeFileSync(raw, pattern(65536, 1));
    const iso = new Uint8Array(20 * 2048);
    iso.set([1, 0x43, 0x44, 0x30, 0x30, 0x31, 1], 16 * 2048);
    const fmt = (p: string): Promise<string> => detectFormat(new MemoryStore(p, new Uint8Array(readFileSync(p))));
    expect(await fmt(vhd)).toBe('vhd');
    expect(await fmt(vdi)).toBe('vdi');
    expect(await fmt(qcow)).toBe('qcow');
    expect(await fmt(raw)).toBe('raw');
    expect(await detectFormat(new MemoryStore('x.iso', iso))).toBe('iso');
    const opener = new NodeOpener();
    const store = FileStore.open(qcow, { readOnly: true });
    await expect(openImage(store, opener, { readOnly: true })).rejects.toThrow(
      /d\.qcow2: this is a qcow image, which x86vm does not read; convert it first/,
    );
    await store.close();
    // an explicit format wins: a VHD opened as raw shows its footer as the last sector
    const s2 = FileStore.open(vhd, { readOnly: true });
    const dev = await openImage(s2, opener, { format: 'raw', readOnly: true });
    const vsize = JSON.parse(qemuImg(['info', '--output=json', '-f', 'vpc', vhd]).stdout)['virtual-size'];
    expect(dev.sectors).toBe(vsize / 512 + 1);
    await dev.close();
    const s3 = FileStore.open(raw, { readOnly: true });
    await expect(openImage(s3, opener, { format: 'vhd' })).rejects.toThrow(/d\.img: not a VHD image: no 'conectix' footer/);
    await expect(openImage(s3, opener, { format: 'qcow2' })).rejects.toThrow(/unknown image format 'qcow2'/);
    await s3.close();
  });
});

describe('FileStore', () => {
  it('reads past the end as zeros, grows sparsely, truncates, and names the file in errors', async () => {
    const path = file('fs.bin');
    const s = FileStore.open(path, { create: 'new' });
    expect(s.name).toBe(path);
    expect(s.size()).toBe(0);
    await s.write(1 << 30, new Uint8Array([1, 2, 3]));
    expect(s.size()).toBe((1 << 30) + 3);
    expect(s.allocatedBytes()).toBeLessThan(1048576);
    const b = new Uint8Array(8).fill(7);
    await s.read((1 << 30) - 2, b);
    expect([...b]).toEqual([0, 0, 1, 2, 3, 0, 0, 0]);
    await s.truncate(10);
    expect(s.size()).toBe(10);
    await s.flush();
    await s.close();
    await expect(s.read(0, b)).rejects.toThrow(/fs\.bin: the file is closed/);
    expect(() => FileStore.open(join(dir, 'missing.img'))).toThrow(/missing\.img: no such file$/);
    expect(() => FileStore.open(dir)).toThrow(/is a directory/);
    expect(() => FileStore.open(path, { create: 'new' })).toThrow(/fs\.bin: already exists/);
    const ro = FileStore.open(path, { readOnly: true });
    await expect(ro.write(0, b)).rejects.toThrow(/fs\.bin: the file is open read-only/);
    await ro.close();
  });

  it('locks within one process: read-write once, read-only shared, released on close; symlinks are the same file', async () => {
    const path = file('lock.img');
    writeFileSync(path, new Uint8Array(4096));
    const link = join(dir, 'lock-link.img');
    symlinkSync(path, link);
    const rw = FileStore.open(path);
    expect(existsSync(`${path}.lock`)).toBe(true);
    expect(() => FileStore.open(link)).toThrow(/lock-link\.img: already open read-write in this x86vm process/);
    expect(() => FileStore.open(path, { readOnly: true })).toThrow(/already open read-write/);
    await rw.close();
    expect(existsSync(`${path}.lock`)).toBe(false);
    const r1 = FileStore.open(path, { readOnly: true });
    const r2 = FileStore.open(link, { readOnly: true });
    expect(() => FileStore.open(path)).toThrow(/lock\.img: already open in this x86vm process/);
    await r1.close();
    expect(readdirSync(dir).some((f) => f.includes('lock.img.lock.ro-'))).toBe(true);
    await r2.close();
    expect(readdirSync(dir).some((f) => f.includes('lock.img.lock'))).toBe(false);
    // unlocked opens (scratch files) do not take part
    const free = FileStore.open(path, { lock: false });
    const again = FileStore.open(path);
    await free.close();
    await again.close();
  });

  it('a stale lock of a process that is gone is taken over', async () => {
    const path = file('stale.img');
    writeFileSync(path, new Uint8Array(512));
    // a PID that is not running: the largest PID Linux hands out is below 2^22
    writeFileSync(`${path}.lock`, JSON.stringify({ pid: 4194304 + 17, host: hostname(), mode: 'rw' }));
    writeFileSync(`${path}.lock.ro-4194305`, JSON.stringify({ pid: 4194305, host: hostname(), mode: 'ro' }));
    const s = FileStore.open(path);
    expect(JSON.parse(readFileSync(`${path}.lock`, 'utf8')).pid).toBe(process.pid);
    expect(existsSync(`${path}.lock.ro-4194305`)).toBe(false);
    await s.close();
  });

  it('NodeOpener resolves parent paths: relative to the child, Windows separators, absolute paths that moved', async () => {
    const o = new NodeOpener();
    const child = join(dir, 'sub', 'child.vhd');
    expect(o.resolve('p.vhd', child)).toBe(join(dir, 'sub', 'p.vhd'));
    expect(o.resolve('.\\p.vhd', child)).toBe(join(dir, 'sub', 'p.vhd'));
    expect(o.resolve('..\\base\\p.vhd', child)).toBe(join(dir, 'base', 'p.vhd'));
    expect(o.resolve('C:\\VMs\\Disks\\p.vhd', child)).toBe(join(dir, 'sub', 'p.vhd'));
    expect(o.resolve('/no/such/dir/p.vhd', child)).toBe(join(dir, 'sub', 'p.vhd'));
    const real = file('exists.img');
    writeFileSync(real, '');
    expect(o.resolve(real, child)).toBe(real);
    expect(await o.exists(real)).toBe(true);
    expect(await o.exists('nothing.img', child)).toBe(false);
  });
});
