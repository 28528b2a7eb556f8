// Snapshot benchmark: the default Linux guest (images/default, "console=ttyS0", 128 MiB) booted to its
// shell prompt, then saved and restored, on x86vm and on v86 in the same run. Prints the snapshot
// size, the save time and the restore time of each, and that the restored machine ran on (it powers
// off when told to). Called by bench/run.mjs (`--bench snapshot`); also runs alone:
//
//   node bench/snapshot.mjs [--only x86vm,v86] [--timeout S]
//
// x86vm: bench/snapshot-runner.ts (bundled here with esbuild) drives the CLI's run loop in one
// process: `--save-on PROMPT --save-state FILE` in real-time mode, then `--restore FILE`. Its save time
// is settle + capture + compress (zlib level 1, RAM chunks in parallel) + the atomic write; its restore
// time is read + checksum + build the machine + inflate + load. The file is what goes to disk.
// v86: bench/v86-snapshot-runner.mjs times save_state() and, in a second emulator built with the same
// options, restore_state(); its state stays in memory (uncompressed ArrayBuffer, no file write).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..');
const outDir = join(here, '.out');
export const SNAPSHOT_PEERS = ['x86vm', 'v86'];
const GUEST = {
  kernel: join(repoRoot, 'images', 'default', 'bzImage'),
  initrd: join(repoRoot, 'images', 'default', 'initramfs.cpio.gz'),
  append: 'console=ttyS0',
  memMiB: 128,
};
const SEABIOS = ['/usr/share/seabios/bios.bin', '/usr/share/seabios/vgabios-stdvga.bin'];

/** runs a node script, collects its JSON lines (first of each type) and stderr's tail */
function runJsonLines(args, timeoutMs) {
  return new Promise((done) => {
    const start = performance.now();
    const ev = {};
    let partial = '';
    let stderr = '';
    let timedOut = false;
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop();
      for (const line of lines) {
        try {
          const msg = JSON.parse(line);
          if (msg && typeof msg.type === 'string' && !(msg.type in ev)) ev[msg.type] = msg;
        } catch { /* log lines */ }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.on('error', (e) => {
      stderr += e.message;
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ ev, code, stderr, timedOut, wallMs: performance.now() - start });
    });
  });
}

function verdict(r, timeoutS) {
  const ev = r.ev;
  const res = { bytes: ev.saved?.bytes ?? null, deflatedBytes: ev.saved?.deflatedBytes ?? null, saveMs: ev.saved?.saveMs ?? null,
    restoreMs: ev.restored?.restoreMs ?? null, powerDownMs: ev.restored?.powerDownMs ?? null, wallMs: r.wallMs };
  if (r.timedOut) return { ...res, ok: false, reason: `timed out after ${timeoutS} s` };
  if (ev.exit?.reason !== 'ok') {
    const why = ev.exit?.reason ?? `exited (${r.code}) without a result: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`;
    return { ...res, ok: false, reason: why.split('\n')[0] };
  }
  return { ...res, ok: true };
}

const runners = {
  async x86vm({ timeoutS }) {
    const bundle = join(outDir, 'snapshot-runner.mjs');
    mkdirSync(outDir, { recursive: true });
    await build({ entryPoints: [join(here, 'snapshot-runner.ts')], outfile: bundle, bundle: true, platform: 'node', format: 'esm',
      target: 'node20', logLevel: 'warning' });
    const file = join(outDir, 'x86vm-shell.snap');
    rmSync(file, { force: true });
    const r = await runJsonLines([bundle, '--kernel', GUEST.kernel, '--initrd', GUEST.initrd, '--append', GUEST.append,
      '--mem', String(GUEST.memMiB), '--file', file, '--timeout', String(timeoutS)], (timeoutS * 2 + 30) * 1000);
    return { ...verdict(r, timeoutS), file };
  },
  async v86({ timeoutS }) {
    for (const f of SEABIOS) if (!existsSync(f)) return { ok: false, reason: `${f} missing (apt-get install seabios)` };
    const r = await runJsonLines([join(here, 'v86-snapshot-runner.mjs'), '--bzimage', GUEST.kernel, '--initrd', GUEST.initrd,
      '--cmdline', GUEST.append, '--mem', String(GUEST.memMiB), '--timeout', String(timeoutS)], (timeoutS + 30) * 1000);
    return verdict(r, timeoutS);
  },
};

const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const mib = (b) => (typeof b === 'number' ? (b / 1048576).toFixed(1) : 'n/a');
const ms = (v) => (typeof v === 'number' ? (v >= 100 ? v.toFixed(0) : v.toFixed(1)) : 'n/a');
const ratio = (a, b) => (typeof a === 'number' && typeof b === 'number' && a > 0 && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');

/** Runs the snapshot benchmark, prints its table, returns the object that goes under "snapshot" in results.json. */
export async function runSnapshotBench({ only, timeoutS = 300 } = {}) {
  const peers = SNAPSHOT_PEERS.filter((p) => (only ?? SNAPSHOT_PEERS).includes(p));
  console.log(`snapshot benchmark: ${relative(process.cwd(), GUEST.kernel)} + ${relative(process.cwd(), GUEST.initrd)}, ` +
    `"${GUEST.append}", ${GUEST.memMiB} MiB, booted to its shell prompt; save, restore, then "poweroff -f"`);
  const missing = [GUEST.kernel, GUEST.initrd].filter((f) => !existsSync(f));
  const results = {};
  for (const name of peers) {
    process.stdout.write(`${pad(name, 6)} … `);
    let run;
    if (missing.length) run = { ok: false, reason: `guest files missing: ${missing.map((f) => relative(repoRoot, f)).join(', ')}` };
    else {
      try {
        run = await runners[name]({ timeoutS });
      } catch (e) {
        run = { ok: false, reason: `runner crashed: ${e.message}` };
      }
    }
    results[name] = run;
    console.log(run.ok ? `saved ${mib(run.bytes)} MiB in ${ms(run.saveMs)} ms, restored in ${ms(run.restoreMs)} ms, powered off ${ms(run.powerDownMs)} ms after the restore began` : `n/a: ${run.reason}`);
  }
  const both = peers.includes('x86vm') && peers.includes('v86');
  const rows = [
    ['size (MiB)', (r) => mib(r.bytes), 'bytes'],
    ['  deflated (MiB)', (r) => (r === results.v86 ? mib(r.deflatedBytes) : mib(r.bytes)), null],
    ['save (ms)', (r) => ms(r.saveMs), 'saveMs'],
    ['restore (ms)', (r) => ms(r.restoreMs), 'restoreMs'],
  ];
  console.log('');
  console.log('snapshot of the guest at its shell prompt (lower is better); ratios > 1 mean x86vm is bigger or slower');
  let header = pad('', 18);
  for (const p of peers) header += lpad(p, 10);
  if (both) header += lpad('x86vm/v86', 12);
  console.log(header);
  for (const [label, f, key] of rows) {
    let row = pad(label, 18);
    for (const p of peers) row += lpad(results[p]?.ok || results[p]?.bytes ? f(results[p]) : 'n/a', 10);
    if (both && key) row += lpad(ratio(results.x86vm?.[key], results.v86?.[key]), 12);
    console.log(row);
  }
  console.log('(x86vm: a file on disk, RAM deflated with zero pages skipped, written atomically; v86: save_state()/' +
    'restore_state() in memory, uncompressed; "deflated": v86\'s state through zlib level 1, for comparison)');
  return {
    guest: { kernel: relative(repoRoot, GUEST.kernel), initrd: relative(repoRoot, GUEST.initrd), append: GUEST.append, mem_mib: GUEST.memMiB },
    peers: Object.fromEntries(Object.entries(results).map(([name, r]) => [name, {
      ok: !!r.ok,
      reason: r.ok ? null : r.reason,
      bytes: r.bytes ?? null,
      deflated_bytes: name === 'v86' ? r.deflatedBytes ?? null : r.bytes ?? null,
      save_ms: r.saveMs ?? null,
      restore_ms: r.restoreMs ?? null,
      power_down_after_restore_ms: r.powerDownMs ?? null,
    }])),
    ratios: both ? { 'x86vm/v86': {
      size: results.x86vm.bytes && results.v86.bytes ? results.x86vm.bytes / results.v86.bytes : null,
      save: results.x86vm.saveMs && results.v86.saveMs ? results.x86vm.saveMs / results.v86.saveMs : null,
      restore: results.x86vm.restoreMs && results.v86.restoreMs ? results.x86vm.restoreMs / results.v86.restoreMs : null,
    } } : {},
  };
}

// Standalone use.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const opts = { only: SNAPSHOT_PEERS, timeoutS: 300 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--only') { opts.only = v.split(',').filter(Boolean); i++; }
    else if (a === '--timeout') { opts.timeoutS = Number(v); i++; }
    else { console.error(`usage: node bench/snapshot.mjs [--only ${SNAPSHOT_PEERS.join(',')}] [--timeout S]`); process.exit(2); }
  }
  for (const p of opts.only) if (!SNAPSHOT_PEERS.includes(p)) { console.error(`unknown peer "${p}"`); process.exit(2); }
  await runSnapshotBench(opts);
}
