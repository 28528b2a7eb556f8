/**
 * Disk images for guest tests, built with Debian's e2fsprogs: an ext2/ext4 filesystem from a directory
 * (mke2fs -d), optionally inside an MBR partition, and files read back from an image with debugfs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, writeSync, ftruncateSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';

export const MKE2FS = '/usr/sbin/mke2fs';
export const DEBUGFS = '/usr/sbin/debugfs';
export const E2FSCK = '/usr/sbin/e2fsck';

/** a fresh temporary directory (remove it with rmSync(dir, { recursive: true })) */
export function tempDir(prefix = 'x86vm-disk-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** writes `files` (path → contents) under `dir` */
export function writeTree(dir: string, files: Record<string, string | Uint8Array>): void {
  for (const [path, data] of Object.entries(files)) {
    const full = join(dir, path);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, data);
  }
}

/**
 * Makes a raw image of `sizeMiB` MiB holding a `type` filesystem built from `tree`. With `partitioned`,
 * the filesystem goes into partition 1 (type 0x83, from sector 2048 to the end) of an MBR disk.
 */
export function makeFsImage(
  path: string,
  tree: string,
  opts: { sizeMiB: number; type?: 'ext2' | 'ext4'; partitioned?: boolean; label?: string },
): void {
  const bytes = opts.sizeMiB * 1024 * 1024;
  const fd = openSync(path, 'w');
  ftruncateSync(fd, bytes);
  const start = opts.partitioned ? 2048 : 0;
  if (opts.partitioned) {
    const mbr = new Uint8Array(512);
    const dv = new DataView(mbr.buffer);
    const sectors = bytes / 512 - start;
    const e = 446;
    mbr[e] = 0x80; // bootable
    // CHS fields: 0xFE/0xFF/0xFF means "use the LBA fields" (as fdisk writes past cylinder 1023)
    mbr.set([0xfe, 0xff, 0xff], e + 1);
    mbr[e + 4] = 0x83;
    mbr.set([0xfe, 0xff, 0xff], e + 5);
    dv.setUint32(e + 8, start, true);
    dv.setUint32(e + 12, sectors, true);
    dv.setUint32(440, 0x78563412, true); // disk signature
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    writeSync(fd, mbr, 0, 512, 0);
  }
  closeSync(fd);
  const fsBytes = bytes - start * 512;
  const args = ['-q', '-F', '-t', opts.type ?? 'ext2', '-d', tree, '-E', `offset=${start * 512}`];
  if (opts.label) args.push('-L', opts.label);
  args.push(path, `${fsBytes / 1024}k`);
  execFileSync(MKE2FS, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, E2FSPROGS_FAKE_TIME: '1700000000' } });
}

/** a file's bytes inside an ext2/3/4 image (at byte `offset` of `image`), read with debugfs; null if absent */
export function readExtBytes(image: string, path: string, offset = 0): Buffer | null {
  const target = offset ? `${image}?offset=${offset}` : image;
  // debugfs reports a missing file on stderr and still exits 0
  const r = spawnSync(DEBUGFS, ['-R', `cat ${path}`, target], { maxBuffer: 1 << 28 });
  const stderr = r.stderr?.toString('latin1') ?? '';
  if (r.status !== 0) throw new Error(`debugfs failed on ${image}: ${r.error?.message ?? stderr}`);
  if (/File not found/.test(stderr)) return null;
  return r.stdout;
}

/** a file's contents inside an ext2/3/4 image as text (latin1), read with debugfs; null if absent */
export function readExtFile(image: string, path: string, offset = 0): string | null {
  return readExtBytes(image, path, offset)?.toString('latin1') ?? null;
}

/** e2fsck -fn (check everything, change nothing) on an ext2/3/4 image: its exit status, 0 when the file system is clean */
export function fsckExt(image: string): number {
  const r = spawnSync(E2FSCK, ['-fn', image], { stdio: 'pipe' });
  if (r.error) throw new Error(`e2fsck could not run on ${image}: ${r.error.message}`);
  return r.status ?? -1;
}

/** unpacks a gzip'd newc cpio archive (the default guest's initramfs) into `dir` (regular files, dirs, symlinks) */
export function unpackCpio(cpioGz: string, dir: string): void {
  const data = gunzipSync(readFileSync(cpioGz));
  const text = new TextDecoder('latin1');
  let p = 0;
  const hex = (o: number) => parseInt(text.decode(data.subarray(p + o, p + o + 8)), 16);
  while (p + 110 <= data.length) {
    if (text.decode(data.subarray(p, p + 6)) !== '070701') throw new Error(`${cpioGz}: not a newc cpio archive`);
    const mode = hex(14);
    const size = hex(54);
    const nameSize = hex(94);
    const name = text.decode(data.subarray(p + 110, p + 110 + nameSize - 1));
    let q = (p + 110 + nameSize + 3) & ~3;
    const body = data.subarray(q, q + size);
    q = (q + size + 3) & ~3;
    p = q;
    if (name === 'TRAILER!!!') break;
    if (name === '.' || name === '') continue;
    const full = join(dir, name);
    const kind = mode & 0o170000;
    if (kind === 0o040000) mkdirSync(full, { recursive: true });
    else if (kind === 0o100000) {
      mkdirSync(join(full, '..'), { recursive: true });
      writeFileSync(full, body, { mode: mode & 0o7777 });
    } else if (kind === 0o120000) {
      mkdirSync(join(full, '..'), { recursive: true });
      execFileSync('ln', ['-sfn', text.decode(body), full]);
    }
    // device nodes are left out: the guest mounts devtmpfs
  }
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
