/**
 * ISO 9660 images made by genisoimage: probing, the read-only block device, and reading files by path.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskError, MemoryStore } from '../../disk/block';
import { openIso, probeIso, readIsoFile } from '../../disk/iso';

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

let dir: string;
let isoBytes: Uint8Array;
const hello = new TextEncoder().encode('hello from the CD\n');
const big = pattern(300 * 1024 + 17, 1); // several 2048-byte blocks, odd length
const readme = new TextEncoder().encode('no extension\n');

function genisoimage(args: string[]): void {
  const r = spawnSync('genisoimage', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`genisoimage is needed (apt-get install genisoimage): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`genisoimage failed: ${r.stderr}`);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'x86vm-iso-'));
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'sub', 'deeper'), { recursive: true });
  writeFileSync(join(tree, 'hello.txt'), hello);
  writeFileSync(join(tree, 'README'), readme);
  writeFileSync(join(tree, 'empty.dat'), new Uint8Array(0));
  writeFileSync(join(tree, 'sub', 'deeper', 'data.bin'), big);
  writeFileSync(join(tree, 'a.bin'), pattern(5000, 2));
  writeFileSync(join(tree, 'b.bin'), pattern(3000, 3));
  genisoimage(['-quiet', '-V', 'X86VMTEST', '-o', join(dir, 'test.iso'), tree]);
  isoBytes = new Uint8Array(readFileSync(join(dir, 'test.iso')));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** byte equality (vitest's deep toEqual is slow on large typed arrays) */
function same(a: Uint8Array | null, b: Uint8Array): boolean {
  return !!a && a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

const text = (b: Uint8Array | null): string | null => (b ? new TextDecoder().decode(b) : null);

describe('ISO 9660 images', () => {
  it('probes: CD001 at 0x8001', async () => {
    expect(await probeIso(new MemoryStore('t.iso', isoBytes))).toBe(true);
    expect(await probeIso(new MemoryStore('x.img', pattern(64 * 1024, 9)))).toBe(false);
    expect(await probeIso(new MemoryStore('small', new Uint8Array(100)))).toBe(false);
  });

  it('is a read-only block device of file-size/512 sectors whose sectors are the file', async () => {
    const dev = await openIso(new MemoryStore('t.iso', isoBytes));
    expect(dev.format).toBe('iso');
    expect(dev.readOnly).toBe(true);
    expect(dev.sectors).toBe(isoBytes.length / 512);
    const buf = new Uint8Array(4 * 2048);
    await dev.read(16 * 4, buf); // CD blocks 16..19: the volume descriptors
    expect(same(buf, isoBytes.subarray(16 * 2048, 20 * 2048))).toBe(true);
    await expect(dev.write(0, new Uint8Array(512))).rejects.toThrow(/t\.iso: a CD image is read-only/);
    await expect(dev.read(dev.sectors - 1, new Uint8Array(1024))).rejects.toThrow(/past the end/);
  });

  it('reads files by path: case-insensitive, version suffix and trailing dot ignored, nested directories', async () => {
    const dev = await openIso(new MemoryStore('t.iso', isoBytes));
    expect(text(await readIsoFile(dev, '/hello.txt'))).toBe('hello from the CD\n');
    expect(text(await readIsoFile(dev, 'HELLO.TXT'))).toBe('hello from the CD\n');
    expect(text(await readIsoFile(dev, '/README'))).toBe('no extension\n');
    expect(same(await readIsoFile(dev, '/sub/deeper/data.bin'), big)).toBe(true);
    expect(await readIsoFile(dev, '/empty.dat')).toEqual(new Uint8Array(0));
    expect(await readIsoFile(dev, '/nothere.txt')).toBeNull();
    expect(await readIsoFile(dev, '/sub/deeper')).toBeNull(); // a directory
    expect(await readIsoFile(dev, '/hello.txt/x')).toBeNull(); // through a file
    expect(await readIsoFile(dev, '/sub/nothere/data.bin')).toBeNull();
  });

  it('joins a file recorded in several extents (flag 0x80 on all but the last record)', async () => {
    // make A.BIN;1 a two-extent file: flag its record "more extents follow" and rename B.BIN;1 to A.BIN;1
    const bytes = isoBytes.slice();
    const dv = new DataView(bytes.buffer);
    const rootLba = dv.getUint32(16 * 2048 + 156 + 2, true);
    const rootLen = dv.getUint32(16 * 2048 + 156 + 10, true);
    let pos = rootLba * 2048;
    const end = pos + rootLen;
    let patchedA = false;
    let patchedB = false;
    while (pos < end && bytes[pos] !== 0) {
      const len = bytes[pos];
      const name = String.fromCharCode(...bytes.subarray(pos + 33, pos + 33 + bytes[pos + 32]));
      if (name === 'A.BIN;1') {
        bytes[pos + 25] |= 0x80;
        patchedA = true;
      } else if (name === 'B.BIN;1') {
        bytes[pos + 33] = 'A'.charCodeAt(0);
        patchedB = true;
      }
      pos += len;
    }
    expect(patchedA && patchedB).toBe(true);
    const dev = await openIso(new MemoryStore('m.iso', bytes));
    const got = await readIsoFile(dev, '/a.bin');
    const want = new Uint8Array(8000);
    want.set(pattern(5000, 2));
    want.set(pattern(3000, 3), 5000);
    expect(same(got, want)).toBe(true);
  });

  it('refuses a truncated ISO and a file that is not one, naming the file', async () => {
    const cut = new MemoryStore('cut.iso', isoBytes.slice(0, isoBytes.length - 4096));
    const err = await openIso(cut).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskError);
    expect((err as Error).message).toMatch(/^cut\.iso: truncated: the volume holds \d+ blocks of 2048 bytes/);
    await expect(openIso(new MemoryStore('junk.img', pattern(40000, 4)))).rejects.toThrow(
      /^junk\.img: not an ISO 9660 image: no CD001 volume descriptor at sector 16/,
    );
    await expect(openIso(new MemoryStore('tiny.img', new Uint8Array(1000)))).rejects.toThrow(/^tiny\.img: not an ISO 9660 image/);
  });
});
