// Builds the benchmark kernel bench/.out/bench-kernel.elf from bench/kernel/
// with gcc -m32 (freestanding, no libc). Run directly (`node bench/build-kernel.mjs
// [--force]`) or through run.mjs, which calls ensureKernel() before a run.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const kernelDir = join(here, 'kernel');
export const outDir = join(here, '.out');
export const kernelPath = join(outDir, 'bench-kernel.elf');

const CFLAGS = [
  '-m32', '-march=i686', '-ffreestanding', '-fno-pic', '-fno-pie', '-fno-stack-protector',
  '-nostdlib', '-O2', '-Wall', '-Wextra', '-std=gnu11',
  // Keep the C copy loops as loops (no memcpy calls), no SSE/MMX, plain x87.
  '-fno-builtin', '-fno-tree-loop-distribute-patterns', '-mno-sse', '-mno-mmx',
  '-fno-math-errno', '-fno-asynchronous-unwind-tables', '-fno-omit-frame-pointer',
];

function sources() {
  return readdirSync(kernelDir).filter((f) => /\.(c|S|h|ld)$/.test(f)).map((f) => join(kernelDir, f));
}

/** True when the kernel is missing or older than any of its sources (or this script). */
export function kernelIsStale() {
  if (!existsSync(kernelPath)) return true;
  const built = statSync(kernelPath).mtimeMs;
  return [...sources(), fileURLToPath(import.meta.url)].some((f) => statSync(f).mtimeMs > built);
}

export function buildKernel({ quiet = false } = {}) {
  mkdirSync(outDir, { recursive: true });
  const objDir = join(outDir, 'obj');
  mkdirSync(objDir, { recursive: true });
  const objects = [];
  for (const src of sources()) {
    const m = /([^/]+)\.(c|S)$/.exec(src);
    if (!m) continue;
    const obj = join(objDir, `${m[1]}.o`);
    execFileSync('gcc', [...CFLAGS, '-c', src, '-o', obj], { stdio: 'inherit' });
    objects.push(obj);
  }
  execFileSync('gcc', ['-m32', '-nostdlib', '-static', '-no-pie', '-Wl,--build-id=none',
    '-Wl,-z,max-page-size=0x1000', '-Wl,-z,noexecstack', '-T', join(kernelDir, 'linker.ld'),
    '-o', kernelPath, ...objects], { stdio: 'inherit' });
  if (!quiet) console.log(`built ${kernelPath}`);
  return kernelPath;
}

/** Builds the kernel if it is missing or stale; returns its path. */
export function ensureKernel(opts = {}) {
  if (kernelIsStale()) buildKernel(opts);
  return kernelPath;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    if (process.argv.includes('--force') || kernelIsStale()) buildKernel();
    else console.log(`${kernelPath} is up to date`);
  } catch (e) {
    console.error(`kernel build failed: ${e.message}`);
    process.exit(1);
  }
}
