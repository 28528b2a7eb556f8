/**
 * Test helpers: QEMU's image tools (qemu-img, qemu-io from Debian's qemu-utils) as the reference for
 * image formats, and scratch directories that are removed after the tests.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ToolResult {
  status: number;
  stdout: string;
  stderr: string;
}

function run(tool: string, args: string[], allowFail: boolean): ToolResult {
  const r = spawnSync(tool, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw new Error(`${tool}: ${r.error.message} (is qemu-utils installed?)`);
  const res = { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  if (!allowFail && res.status !== 0) {
    throw new Error(`${tool} ${args.join(' ')} exited ${res.status}: ${res.stderr.trim() || res.stdout.trim()}`);
  }
  return res;
}

/** runs qemu-img; throws unless it exits 0 (or allowFail) */
export function qemuImg(args: string[], allowFail = false): ToolResult {
  return run('qemu-img', args, allowFail);
}

/** runs qemu-io commands (`-c CMD` each) on an image of the given format */
export function qemuIo(file: string, format: string, commands: string[], allowFail = false): ToolResult {
  return run('qemu-io', ['-f', format, ...commands.flatMap((c) => ['-c', c]), file], allowFail);
}

/** `qemu-img info --output=json` */
export function qemuInfo(file: string, format?: string): { 'virtual-size': number; format: string; [k: string]: unknown } {
  const args = ['info', '--output=json'];
  if (format) args.push('-f', format);
  return JSON.parse(qemuImg([...args, file]).stdout);
}

/** `qemu-img compare`: true when the two images read the same (a longer one's tail must be zeros) */
export function qemuCompare(a: string, aFormat: string, b: string, bFormat: string): ToolResult {
  return qemuImg(['compare', '-f', aFormat, '-F', bFormat, a, b], true);
}

/** a scratch directory under the OS's temp dir, and a function that removes it */
export function scratchDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** deterministic bytes (a xorshift stream): distinct per seed, never all zero over a sector */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 0x9e3779b1) >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
    if (i + 1 < length) out[i + 1] = (x >>> 8) & 0xff;
    if (i + 2 < length) out[i + 2] = (x >>> 16) & 0xff;
    if (i + 3 < length) out[i + 3] = x >>> 24;
  }
  return out;
}

/**
 * A raw file of `bytes` bytes whose content is known: runs of pattern data with zero runs between them
 * (so sparse copies have something to skip). Returns the content too.
 */
export function patternedRaw(path: string, bytes: number, seed: number): Uint8Array {
  const data = new Uint8Array(bytes);
  const run = 1536 * 1024;
  for (let off = 0, k = 0; off < bytes; off += run, k++) {
    if (k % 3 === 1) continue; // a zero run
    const end = Math.min(bytes, off + run - (k % 5) * 4096);
    data.set(pattern(end - off, seed + k), off);
  }
  writeFileSync(path, data);
  return data;
}
