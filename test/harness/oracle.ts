// Conformance-test harness: assemble nasm test programs, run them on QEMU (the oracle), on x86vm and
// (optionally) on Bochs, and compare what they print on the debug console (port 0xE9).
//
// Protocol (see test/conformance/common/conf.inc): a program prints one line per case and ends with
// "DONE\n" and a write of 0 to port 0xF4, i.e. exit status 1 on both QEMU and x86vm. A program passes when
// x86vm's debugcon output equals QEMU's byte for byte and both exit with status 1.
//
// Typical use in a vitest file:
//   const bin = await assemble('test/conformance/real/alu.asm');
//   const q = await runQemuCached(bin); checkQemuRun(q, { minLines: 100 });
//   const x = await runX86vm(bin); expectSameOutput(q, x, 'alu');   // throws with a readable diff
// or simply: await expectSameAsQemu('test/conformance/real/alu.asm')
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json')) || !existsSync(join(d, 'test/conformance'))) {
    const up = dirname(d);
    if (up === d) return process.cwd();
    d = up;
  }
  return d;
}
export const ROOT = findRoot();
export const OUT_DIR = join(ROOT, 'test/.out');
export const COMMON_DIR = join(ROOT, 'test/conformance/common');
export const X86VM = join(ROOT, 'dist/x86vm.mjs');

/** QEMU CPU model used as the oracle. pentium2 = family 6 model 5 with FPU, VME, DE, PSE, TSC, MSR, PAE,
 * MCE, CX8, APIC, SEP, MTRR, PGE, MCA, CMOV, PAT, PSE36, MMX, FXSR. We switch off what x86vm does not
 * promise (PAE, VME) so that CPUID-dependent code sees the same CPU. */
export const QEMU_CPU = 'pentium2,pae=off,vme=off';

export interface RunOptions {
  /** RAM size, QEMU syntax (default "32M"). */
  mem?: string;
  /** 'bios': the binary is a BIOS image (-bios); 'kernel': a Multiboot kernel (-kernel). */
  kind?: 'bios' | 'kernel';
  /** Wall-clock limit (default 20 s). The process is killed after it; the result has timedOut=true. */
  timeoutMs?: number;
  /** Kernel command line (kind 'kernel'). */
  append?: string;
  /** Extra emulator arguments. */
  extraArgs?: string[];
}

export interface RunResult {
  who: 'qemu' | 'x86vm' | 'bochs';
  /** Process exit status (null if killed by a signal). */
  exitCode: number | null;
  debugcon: Buffer;
  serial: Buffer;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

function ensureOut(): void {
  mkdirSync(OUT_DIR, { recursive: true });
}

interface Spawned { code: number | null; stdout: string; stderr: string; timedOut: boolean; ms: number }

function run(cmd: string, args: string[], timeoutMs: number, cwd = ROOT): Promise<Spawned> {
  return new Promise((res, rej) => {
    const t0 = Date.now();
    const p = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    p.stdout.on('data', (d: Buffer) => { if (stdout.length < 1 << 20) stdout += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { if (stderr.length < 1 << 20) stderr += d.toString(); });
    const timer = setTimeout(() => { timedOut = true; p.kill('SIGKILL'); }, timeoutMs);
    p.on('error', (e) => { clearTimeout(timer); rej(e); });
    p.on('close', (code) => { clearTimeout(timer); res({ code, stdout, stderr, timedOut, ms: Date.now() - t0 }); });
  });
}

export interface AssembleOptions {
  /** nasm -D definitions. */
  defines?: Record<string, string | number>;
  /** Output file name (without directory); default: source base name + defines + ".bin". */
  outName?: string;
  /** nasm output format (default "bin"; use "elf32" for objects you link yourself). */
  format?: string;
}

/** Assemble a nasm source (path relative to the repo root or absolute) into test/.out/, with
 * test/conformance/common/ and the source's own directory on the include path. Returns the output path. */
export async function assemble(srcPath: string, opts: AssembleOptions = {}): Promise<string> {
  ensureOut();
  const src = isAbsolute(srcPath) ? srcPath : join(ROOT, srcPath);
  const defs = Object.entries(opts.defines ?? {});
  const suffix = defs.map(([k, v]) => `-${k}${v === '' ? '' : '=' + v}`).join('').replace(/[^\w=.-]/g, '_');
  const out = join(OUT_DIR, opts.outName ?? basename(src).replace(/\.(asm|s|nasm)$/, '') + suffix + '.bin');
  const args = ['-f', opts.format ?? 'bin', '-w+error=number-overflow', '-i', COMMON_DIR + '/', '-i', dirname(src) + '/',
    ...defs.map(([k, v]) => (v === '' ? `-D${k}` : `-D${k}=${v}`)), '-o', out, src];
  const r = await run('nasm', args, 120_000);
  if (r.code !== 0) throw new Error(`nasm failed for ${srcPath}:\n${r.stderr}${r.stdout}`);
  return out;
}

/** Write generated nasm text to test/.out/NAME.asm and assemble it (see assemble). */
export async function assembleText(name: string, text: string, opts: AssembleOptions = {}): Promise<string> {
  ensureOut();
  const src = join(OUT_DIR, name + '.asm');
  writeFileSync(src, text);
  return assemble(src, opts);
}

function tmp(prefix: string): string {
  ensureOut();
  return mkdtempSync(join(OUT_DIR, `run-${prefix}-`));
}

function readOr(path: string): Buffer {
  return existsSync(path) ? readFileSync(path) : Buffer.alloc(0);
}

/** Run a BIOS image / kernel on qemu-system-i386 (TCG). */
export async function runQemu(bin: string, opts: RunOptions = {}): Promise<RunResult> {
  const dir = tmp('qemu');
  const dc = join(dir, 'debugcon');
  const se = join(dir, 'serial');
  const args = ['-nodefaults', '-display', 'none', '-vga', 'none', '-no-reboot', '-accel', 'tcg',
    '-cpu', QEMU_CPU, '-m', opts.mem ?? '32M',
    ...(opts.kind === 'kernel' ? ['-kernel', bin, ...(opts.append ? ['-append', opts.append] : [])] : ['-bios', bin]),
    '-debugcon', `file:${dc}`, '-serial', `file:${se}`,
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', ...(opts.extraArgs ?? [])];
  try {
    const r = await run('qemu-system-i386', args, opts.timeoutMs ?? 20_000);
    return { who: 'qemu', exitCode: r.code, debugcon: readOr(dc), serial: readOr(se), stderr: r.stderr, timedOut: r.timedOut, ms: r.ms };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const qemuCache = new Map<string, Promise<RunResult>>();
/** runQemu, memoised per (binary, mtime, options) within this process. */
export function runQemuCached(bin: string, opts: RunOptions = {}): Promise<RunResult> {
  const key = JSON.stringify([bin, statSync(bin).mtimeMs, opts]);
  let p = qemuCache.get(key);
  if (!p) { p = runQemu(bin, opts); qemuCache.set(key, p); }
  return p;
}

let buildPromise: Promise<void> | undefined;
/** Build dist/x86vm.mjs (node scripts/build.mjs) once if it is missing. */
export function ensureBuilt(): Promise<void> {
  if (existsSync(X86VM)) return Promise.resolve();
  buildPromise ??= (async () => {
    const r = await run(process.execPath, [join(ROOT, 'scripts/build.mjs')], 300_000);
    if (r.code !== 0 || !existsSync(X86VM)) throw new Error(`building dist/x86vm.mjs failed:\n${r.stderr}${r.stdout}`);
  })();
  return buildPromise;
}

/** Run a BIOS image / kernel on x86vm: node dist/x86vm.mjs run --bios|--kernel FILE --debugcon … */
export async function runX86vm(bin: string, opts: RunOptions = {}): Promise<RunResult> {
  await ensureBuilt();
  const dir = tmp('x86vm');
  const dc = join(dir, 'debugcon');
  const se = join(dir, 'serial');
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const args = [X86VM, 'run', opts.kind === 'kernel' ? '--kernel' : '--bios', bin,
    ...(opts.kind === 'kernel' && opts.append ? ['--append', opts.append] : []),
    '--debugcon', dc, '--serial', `file:${se}`, '--mem', opts.mem ?? '32M',
    '--timeout', String(Math.ceil(timeoutMs / 1000)), ...(opts.extraArgs ?? [])];
  try {
    const r = await run(process.execPath, args, timeoutMs + 5000);
    return { who: 'x86vm', exitCode: r.code, debugcon: readOr(dc), serial: readOr(se), stderr: r.stderr + r.stdout, timedOut: r.timedOut || r.code === 124, ms: r.ms };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Run a 64 KiB–128 KiB BIOS image on Bochs (Debian's bochs, no display, debug console = port 0xE9 hack).
 * Bochs has no isa-debug-exit: the run ends at the time-out or at the "DONE" line is not detected; the
 * result's exitCode is 1 if the output ends with "DONE\n" (to match the protocol), else null. */
export async function runBochs(bin: string, opts: RunOptions = {}): Promise<RunResult> {
  const dir = tmp('bochs');
  const log = join(dir, 'log');
  const cfg = join(dir, 'bochsrc');
  const memMb = parseInt(opts.mem ?? '32', 10) || 32;
  writeFileSync(cfg, [
    `megs: ${memMb}`,
    `romimage: file=${bin}, address=0x${(0x100000000 - statSync(bin).size).toString(16)}`,
    'cpu: model=p2_klamath, count=1, ips=50000000, reset_on_triple_fault=0',
    'display_library: nogui',
    'port_e9_hack: enabled=1',
    `log: ${log}`,
    'panic: action=fatal', 'error: action=report', 'info: action=ignore', 'debug: action=ignore',
    'boot: disk', 'clock: sync=none, time0=1',
  ].join('\n') + '\n');
  try {
    // Bochs writes port 0xE9 bytes to stderr; it keeps running after the program halts, so stop it once
    // "DONE\n" or "UNEXPECTED" has been printed, or at the time-out.
    const t0 = Date.now();
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const out = await new Promise<{ text: string; timedOut: boolean }>((res) => {
      const p = spawn('bochs', ['-q', '-f', cfg], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      let done = false;
      const finish = (timedOut: boolean) => { if (!done) { done = true; p.kill('SIGKILL'); res({ text, timedOut }); } };
      p.stderr.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (/(^|\n)DONE\n|UNEXPECTED\n/.test(text)) setTimeout(() => finish(false), 50);
      });
      p.on('close', () => finish(false));
      setTimeout(() => finish(true), timeoutMs);
    });
    const text = out.text.replace(/^.*(?:Bochs|bochs|=====|\[).*\n/gm, '');
    const ok = /(^|\n)DONE\n$/.test(text);
    return { who: 'bochs', exitCode: ok ? 1 : null, debugcon: Buffer.from(text, 'latin1'), serial: Buffer.alloc(0), stderr: readOr(log).toString(), timedOut: out.timedOut, ms: Date.now() - t0 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Line-oriented comparison. Returns null when equal, else a readable report naming the first differing
 * lines (with their case labels = the first word of the line) and a few lines of context. */
export function diffOutputs(expected: Buffer | string, actual: Buffer | string, names: [string, string] = ['qemu', 'x86vm'], maxDiffs = 8): string | null {
  const a = expected.toString('latin1');
  const b = actual.toString('latin1');
  if (a === b) return null;
  const la = a.split('\n');
  const lb = b.split('\n');
  const w = Math.max(names[0].length, names[1].length);
  const pad = (s: string) => s.padEnd(w);
  const out: string[] = [`outputs differ (${names[0]}: ${la.length - 1} lines, ${names[1]}: ${lb.length - 1} lines)`];
  let shown = 0;
  let first = -1;
  const n = Math.max(la.length, lb.length);
  for (let i = 0; i < n && shown < maxDiffs; i++) {
    if (la[i] === lb[i]) continue;
    if (first < 0) {
      first = i;
      for (let j = Math.max(0, i - 2); j < i; j++) out.push(`  ${String(j + 1).padStart(6)}  ${pad('')}  ${la[j]}`);
    }
    const label = (la[i] ?? lb[i] ?? '').split(' ')[0];
    out.push(`  line ${i + 1} [${label}]:`);
    out.push(`    ${pad(names[0])}: ${la[i] === undefined ? '<missing>' : JSON.stringify(la[i]).slice(1, -1)}`);
    out.push(`    ${pad(names[1])}: ${lb[i] === undefined ? '<missing>' : JSON.stringify(lb[i]).slice(1, -1)}`);
    if (la[i] !== undefined && lb[i] !== undefined && la[i].length === lb[i].length) {
      let m = '';
      for (let k = 0; k < la[i].length; k++) m += la[i][k] === lb[i][k] ? ' ' : '^';
      out.push(`    ${pad('')}  ${m.trimEnd()}`);
    }
    shown++;
  }
  let total = 0;
  for (let i = 0; i < n; i++) if (la[i] !== lb[i]) total++;
  out.push(`  ${total} differing line(s) in all`);
  return out.join('\n');
}

export interface QemuCheck {
  /** The output must have at least this many lines (DONE included). */
  minLines?: number;
  /** Exact number of lines expected (DONE included). */
  lines?: number;
  /** Substrings that must appear. */
  contains?: string[];
}

/** Sanity-check a QEMU run of a conformance program: exit status 1, output ends with "DONE\n", no
 * "UNEXPECTED", and the expected amount of output. Throws with a readable message otherwise. */
export function checkRun(r: RunResult, check: QemuCheck = {}): string[] {
  const text = r.debugcon.toString('latin1');
  const lines = text.split('\n');
  lines.pop();
  const problems: string[] = [];
  if (r.timedOut) problems.push(`${r.who} timed out after ${r.ms} ms`);
  if (r.exitCode !== 1) problems.push(`${r.who} exit status ${r.exitCode}, expected 1`);
  if (!text.endsWith('DONE\n')) problems.push(`${r.who} output does not end with "DONE\\n" (last: ${JSON.stringify(lines.slice(-2))})`);
  if (text.includes('UNEXPECTED')) problems.push(`${r.who} hit an unexpected exception: ${lines.filter((l) => l.startsWith('EXC')).slice(-1)[0]}`);
  if (check.minLines !== undefined && lines.length < check.minLines) problems.push(`${r.who} printed ${lines.length} lines, expected >= ${check.minLines}`);
  if (check.lines !== undefined && lines.length !== check.lines) problems.push(`${r.who} printed ${lines.length} lines, expected ${check.lines}`);
  for (const c of check.contains ?? []) if (!text.includes(c)) problems.push(`${r.who} output lacks ${JSON.stringify(c)}`);
  if (problems.length) throw new Error(problems.join('\n') + (r.stderr ? `\nstderr: ${r.stderr.slice(0, 2000)}` : ''));
  return lines;
}

/** Throw (with a readable diff) unless `actual` printed the same debugcon bytes as `expected` and both
 * exited with status 1. */
export function expectSameOutput(expected: RunResult, actual: RunResult, name: string): void {
  const d = diffOutputs(expected.debugcon, actual.debugcon, [expected.who, actual.who]);
  const problems: string[] = [];
  if (d) problems.push(d);
  if (actual.exitCode !== expected.exitCode) problems.push(`exit status: ${expected.who} ${expected.exitCode}, ${actual.who} ${actual.exitCode}${actual.timedOut ? ' (timed out)' : ''}`);
  if (problems.length) {
    throw new Error(`${name}: ${actual.who} differs from ${expected.who}\n${problems.join('\n')}` +
      (actual.stderr ? `\n${actual.who} stderr: ${actual.stderr.slice(0, 3000)}` : ''));
  }
}

/** Assemble `src` (a .asm path relative to the repo root), run it on QEMU and on x86vm and compare. */
export async function expectSameAsQemu(src: string, opts: RunOptions & AssembleOptions & QemuCheck = {}): Promise<void> {
  const bin = await assemble(src, opts);
  const q = await runQemuCached(bin, opts);
  checkRun(q, opts);
  const x = await runX86vm(bin, opts);
  expectSameOutput(q, x, basename(src));
}
