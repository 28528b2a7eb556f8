// `npm run bench`: runs three benchmarks on x86vm, qemu-system-i386 (TCG) and
// v86, one peer after the other:
//  - cpu: the benchmark kernel (bench/kernel/, built into bench/.out/); prints
//    each one's wall time, per-section times, checksums and the ratios
//    x86vm/v86 and x86vm/QEMU;
//  - boot: boot-to-shell and power-off times of the default Linux guest
//    (images/default), see bench/boot.mjs;
//  - disk: guest `dd` read and write throughput of a 64 MiB raw disk on IDE
//    and virtio-blk, see bench/disk.mjs;
//  - snapshot: the default guest at its shell saved and restored on x86vm and
//    v86: size, save time, restore time, see bench/snapshot.mjs.
// Results also go to bench/.out/results.json.
//
//   node bench/run.mjs [--bench cpu,boot,disk,snapshot] [--only x86vm,qemu,v86,v86-nojit]
//                      [--scale N] [--sections alu,x87,…] [--timeout S]
//                      [--boot-timeout S] [--disk-timeout S] [--json FILE]
//
// See bench/README.md for how to read the output.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { runBootBench } from './boot.mjs';
import { runDiskBench } from './disk.mjs';
import { runSnapshotBench, SNAPSHOT_PEERS } from './snapshot.mjs';
import { ensureKernel, kernelPath, outDir } from './build-kernel.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..');
let x86vmBundle = join(repoRoot, 'dist', 'x86vm.mjs');
const PEERS = ['x86vm', 'qemu', 'v86', 'v86-nojit'];
const DEFAULT_PEERS = ['x86vm', 'qemu', 'v86'];
const RUN_ORDER = ['qemu', 'v86', 'v86-nojit', 'x86vm'];
const SECTION_NAMES = ['alu', 'memcpy', 'string', 'calls', 'x87', 'paging'];
const BENCHES = ['cpu', 'boot', 'disk', 'snapshot'];

const USAGE = `usage: node bench/run.mjs [options]
  --bench LIST      benchmarks to run, comma-separated: ${BENCHES.join(', ')} (default: all)
  --only LIST       peers to run, comma-separated: ${PEERS.join(', ')}
                    (default: ${DEFAULT_PEERS.join(',')})
  --scale N         work per section (kernel command line scale=N; default: the
                    kernel's built-in default, 10, about 3 s on QEMU)
  --sections LIST   run only these sections: ${SECTION_NAMES.join(', ')}
  --timeout S       per-peer time limit of the cpu benchmark in seconds (default 900)
  --boot-timeout S  per-peer time limit of the boot benchmark in seconds (default 300)
  --disk-timeout S  per-run time limit of the disk benchmark in seconds (default 300)
  --json FILE       where to write the results (default bench/.out/results.json)
  --x86vm FILE      the x86vm CLI bundle to run (default dist/x86vm.mjs)
  --help            this text`;

function fail(msg) {
  console.error(`bench: ${msg}`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { bench: BENCHES, only: DEFAULT_PEERS, scale: null, sections: null, timeout: 900, bootTimeout: 300, diskTimeout: 300,
    json: join(outDir, 'results.json') };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let value = null;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      value = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const next = () => {
      if (value !== null) return value;
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--bench': {
        const list = next().split(',').map((s) => s.trim()).filter(Boolean);
        for (const b of list) if (!BENCHES.includes(b)) fail(`unknown benchmark "${b}" (known: ${BENCHES.join(', ')})`);
        if (!list.length) fail('--bench needs at least one benchmark');
        opts.bench = list;
        break;
      }
      case '--boot-timeout': {
        const n = Number(next());
        if (!(n > 0)) fail('--boot-timeout needs a positive number of seconds');
        opts.bootTimeout = n;
        break;
      }
      case '--disk-timeout': {
        const n = Number(next());
        if (!(n > 0)) fail('--disk-timeout needs a positive number of seconds');
        opts.diskTimeout = n;
        break;
      }
      case '--only': {
        const list = next().split(',').map((s) => s.trim()).filter(Boolean);
        for (const p of list) if (!PEERS.includes(p)) fail(`unknown peer "${p}" (known: ${PEERS.join(', ')})`);
        opts.only = list;
        break;
      }
      case '--scale': {
        const n = Number(next());
        if (!Number.isInteger(n) || n < 1) fail('--scale needs a positive integer');
        opts.scale = n;
        break;
      }
      case '--sections': {
        const list = next().split(',').map((s) => s.trim()).filter(Boolean);
        for (const s of list) if (!SECTION_NAMES.includes(s)) fail(`unknown section "${s}" (known: ${SECTION_NAMES.join(', ')})`);
        opts.sections = list;
        break;
      }
      case '--timeout': {
        const n = Number(next());
        if (!(n > 0)) fail('--timeout needs a positive number of seconds');
        opts.timeout = n;
        break;
      }
      case '--json':
        opts.json = next();
        break;
      case '--x86vm':
        opts.x86vm = next();
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        fail(`unknown option ${a}\n${USAGE}`);
    }
  }
  return opts;
}

// ---------------------------------------------------------------- running ---

/**
 * Spawns a command, timestamps every stdout line as it arrives (ms since the
 * spawn) and keeps the tail of stderr. Resolves with
 * { lines: [{t, text}], wallMs, code, signal, stderr, timedOut, spawnError }.
 */
function runProcess(cmd, args, { timeoutMs, onLine } = {}) {
  return new Promise((resolve) => {
    const start = performance.now();
    const lines = [];
    let partial = '';
    let stderr = '';
    let timedOut = false;
    let spawnError = null;
    let child;
    try {
      child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      resolve({ lines, wallMs: 0, code: null, signal: null, stderr: '', timedOut, spawnError: e.message });
      return;
    }
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk) => {
      const t = performance.now() - start;
      partial += chunk;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const text = partial.slice(0, nl).replace(/\r$/, '');
        partial = partial.slice(nl + 1);
        const line = { t, text };
        lines.push(line);
        onLine?.(line);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-8000);
    });
    child.on('error', (e) => {
      spawnError = e.message;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (partial) lines.push({ t: performance.now() - start, text: partial });
      resolve({ lines, wallMs: performance.now() - start, code, signal, stderr, timedOut, spawnError });
    });
  });
}

function lastLines(text, n = 6) {
  return text.trim().split('\n').slice(-n).join('\n');
}

function readIfExists(path) {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return null;
  }
}

async function haveCommand(cmd) {
  const r = await runProcess(cmd, ['--version'], { timeoutMs: 10000 });
  return !r.spawnError && r.code === 0;
}

/** Each peer returns { ok, reason?, wallMs, code, lines, debugcon?, command }. */
const runners = {
  async qemu(kernel, cmdline, timeoutS) {
    const bin = 'qemu-system-i386';
    if (!(await haveCommand(bin))) return { ok: false, reason: `${bin} not found (apt-get install qemu-system-x86)` };
    const debugconPath = join(outDir, 'qemu-debugcon.txt');
    rmSync(debugconPath, { force: true });
    const args = ['-kernel', kernel, '-nodefaults', '-display', 'none', '-debugcon', `file:${debugconPath}`,
      '-serial', 'stdio', '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-m', '64', '-accel', 'tcg',
      '-no-reboot'];
    if (cmdline) args.push('-append', cmdline);
    const r = await runProcess(bin, args, { timeoutMs: timeoutS * 1000 });
    const res = { wallMs: r.wallMs, code: r.code, lines: r.lines, debugcon: readIfExists(debugconPath), command: [bin, ...args] };
    if (r.timedOut) return { ...res, ok: false, reason: `timed out after ${timeoutS} s` };
    if (r.code !== 1) return { ...res, ok: false, reason: `exit status ${r.code ?? r.signal} (expected 1 from isa-debug-exit): ${lastLines(r.stderr)}` };
    return { ...res, ok: true };
  },

  async v86(kernel, cmdline, timeoutS, { jit = true } = {}) {
    const args = [join(here, 'v86-runner.mjs'), '--kernel', kernel, '--timeout', String(timeoutS), '--mem', '64'];
    if (cmdline) args.push('--cmdline', cmdline);
    if (!jit) args.push('--no-jit');
    for (const f of ['/usr/share/seabios/bios.bin', '/usr/share/seabios/vgabios-stdvga.bin']) {
      if (!existsSync(f)) return { ok: false, reason: `${f} missing (apt-get install seabios)` };
    }
    const r = await runProcess(process.execPath, args, { timeoutMs: (timeoutS + 30) * 1000 });
    // The runner reports JSON lines with its own timestamps (closer to the
    // emulator than our pipe); anything else it printed is kept as noise.
    const lines = [];
    let exit = null;
    let ready = null;
    for (const { text } of r.lines) {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch {
        continue;
      }
      if (msg.type === 'line') lines.push({ t: msg.t, text: msg.text });
      else if (msg.type === 'exit') exit = msg;
      else if (msg.type === 'ready') ready = msg.t;
    }
    const res = { wallMs: r.wallMs, code: r.code, lines, readyMs: ready, command: [process.execPath, ...args] };
    if (r.timedOut) return { ...res, ok: false, reason: `timed out after ${timeoutS} s` };
    if (!exit) return { ...res, ok: false, reason: `runner exited (${r.code ?? r.signal}) without a result: ${lastLines(r.stderr)}` };
    if (exit.reason === 'timeout') return { ...res, ok: false, reason: `timed out after ${timeoutS} s` };
    if (exit.reason !== 'done' && exit.reason !== 'debug-exit') {
      return { ...res, ok: false, reason: `v86 ${exit.reason.split('\n')[0]}` };
    }
    return { ...res, ok: true };
  },

  async x86vm(kernel, cmdline, timeoutS) {
    if (!existsSync(x86vmBundle)) {
      return { ok: false, reason: `${relative(repoRoot, x86vmBundle)} not built (node scripts/build.mjs)` };
    }
    const debugconPath = join(outDir, 'x86vm-debugcon.txt');
    rmSync(debugconPath, { force: true });
    // Serial goes to stdout so that section lines are timestamped as they
    // come; the debug console goes to a file and is checked against it.
    const args = [x86vmBundle, 'run', '--kernel', kernel, '--mem', '64M', '--serial', 'stdio',
      '--debugcon', debugconPath, '--timeout', String(timeoutS)];
    if (cmdline) args.push('--append', cmdline);
    const r = await runProcess(process.execPath, args, { timeoutMs: (timeoutS + 30) * 1000 });
    const res = { wallMs: r.wallMs, code: r.code, lines: r.lines, debugcon: readIfExists(debugconPath), command: [process.execPath, ...args] };
    if (r.timedOut || r.code === 124) return { ...res, ok: false, reason: `timed out after ${timeoutS} s` };
    if (r.code !== 1) {
      const why = r.code === 2 ? 'usage/input error' : r.code === 3 ? 'CPU halted with interrupts off' : 'unexpected exit';
      return { ...res, ok: false, reason: `${why}: exit status ${r.code ?? r.signal} (expected 1 from isa-debug-exit)${r.stderr.trim() ? `: ${lastLines(r.stderr, 4)}` : ''}` };
    }
    return { ...res, ok: true };
  },
};
runners['v86-nojit'] = (kernel, cmdline, timeoutS) => runners.v86(kernel, cmdline, timeoutS, { jit: false });

// ---------------------------------------------------------------- parsing ---

function parseKv(rest) {
  const kv = {};
  for (const m of rest.matchAll(/(\w+)=(\S+)/g)) kv[m[1]] = m[2];
  return kv;
}

/**
 * Turns the BENCH lines of one run into sections with times. Section times
 * come from the host-side arrival times of the lines when the output was
 * streamed; otherwise the guest's TSC cycles are scaled to the wall time.
 */
function analyse(run) {
  let lines = run.lines.filter((l) => l.text.startsWith('BENCH '));
  let source = 'serial';
  if (lines.length === 0 && run.debugcon) {
    lines = run.debugcon.split('\n').filter((s) => s.startsWith('BENCH ')).map((text) => ({ t: null, text }));
    source = 'debugcon';
  }
  const out = { begin: null, sections: [], end: null, done: false, warnings: [] };
  let prevT = null;
  for (const { t, text } of lines) {
    const [, kind, rest = ''] = /^BENCH (\w+)\s*(.*)$/.exec(text) ?? [];
    const kv = parseKv(rest);
    if (kind === 'begin') {
      out.begin = { t, scale: Number(kv.scale), multiboot: kv.multiboot };
      prevT = t;
    } else if (kind === 'section') {
      out.sections.push({ name: kv.name, iters: Number(kv.iters), check: kv.check, cycles: BigInt(kv.cycles ?? 0),
        t, hostMs: t !== null && prevT !== null ? t - prevT : null });
      prevT = t;
    } else if (kind === 'end') {
      out.end = { t, check: kv.check, cycles: BigInt(kv.cycles ?? 0), sections: Number(kv.sections) };
    } else if (kind === 'done') {
      out.done = true;
    }
  }
  if (out.begin?.multiboot && out.begin.multiboot !== 'ok') out.warnings.push('kernel saw a bad multiboot magic');

  // The debug console must carry the same BENCH lines as the serial port.
  if (source === 'serial' && run.debugcon !== undefined) {
    const dc = (run.debugcon ?? '').split('\n').filter((s) => s.startsWith('BENCH '));
    const se = lines.map((l) => l.text);
    if (dc.join('\n') !== se.join('\n')) out.warnings.push('debug console (0xE9) output differs from serial output');
  }

  // Without an end line (a failed run) the last section line ends the span.
  const last = out.end ?? out.sections[out.sections.length - 1] ?? null;
  const span = out.begin && last && out.begin.t !== null && last.t !== null ? last.t - out.begin.t : null;
  const totalCycles = out.end ? Number(out.end.cycles) : out.sections.reduce((n, s) => n + Number(s.cycles), 0);
  // Streamed if the output visibly took time to arrive (not all flushed at exit).
  const streamed = span !== null && span > 0.2 * run.wallMs;
  out.guestMs = streamed ? span : null;
  out.tscPerMs = streamed && totalCycles > 0 ? totalCycles / span : null;
  if (streamed) {
    out.timing = 'host timestamps of the serial lines';
    for (const s of out.sections) s.ms = s.hostMs;
    // Lines that arrived in one chunk share a timestamp: the emulator flushed
    // its output late, and the earlier section's time includes the later one's.
    out.sections.forEach((s, i) => {
      if (s.hostMs !== null && s.hostMs < 0.05) {
        s.merged = true;
        if (i > 0) out.sections[i - 1].merged = true;
      }
    });
    if (out.sections.some((s) => s.merged)) {
      out.warnings.push('some section lines arrived together (output flushed in batches): times marked ~ are shared with a neighbour');
    }
  } else if (totalCycles > 0) {
    out.timing = 'guest TSC scaled to the wall time (approximate: includes start-up)';
    out.tscPerMs = totalCycles / run.wallMs;
    out.guestMs = run.wallMs;
    for (const s of out.sections) s.ms = Number(s.cycles) / out.tscPerMs;
  } else {
    out.timing = 'none';
    for (const s of out.sections) s.ms = null;
  }
  for (const s of out.sections) s.tscMs = out.tscPerMs ? Number(s.cycles) / out.tscPerMs : null;
  return out;
}

// ---------------------------------------------------------------- output ---

const fmtMs = (ms) => (ms === null || ms === undefined ? 'n/a' : ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));
const fmtRatio = (a, b) => (a > 0 && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.x86vm) x86vmBundle = resolve(opts.x86vm);
  mkdirSync(outDir, { recursive: true });
  const json = {
    date: new Date().toISOString(),
    host: { cpu: os.cpus()[0]?.model ?? null, cpus: os.cpus().length, node: process.version, platform: `${os.platform()} ${os.release()}` },
  };
  // The cpu benchmark's fields stay at the top level (as before the boot benchmark existed).
  if (opts.bench.includes('cpu')) Object.assign(json, await cpuBench(opts));
  if (opts.bench.includes('boot')) {
    if (opts.bench.includes('cpu')) console.log('');
    json.boot = await runBootBench({ only: opts.only, timeoutS: opts.bootTimeout, x86vmBundle });
  }
  if (opts.bench.includes('disk')) {
    if (opts.bench.includes('cpu') || opts.bench.includes('boot')) console.log('');
    json.disk = await runDiskBench({ only: opts.only, timeoutS: opts.diskTimeout, x86vmBundle });
  }
  if (opts.bench.includes('snapshot')) {
    if (opts.bench.length > 1) console.log('');
    // x86vm and v86 (QEMU's savevm needs a qcow2 disk, which this guest does not have)
    json.snapshot = await runSnapshotBench({ only: SNAPSHOT_PEERS.filter((p) => opts.only.includes(p)), timeoutS: opts.bootTimeout });
  }
  mkdirSync(dirname(opts.json), { recursive: true });
  writeFileSync(opts.json, JSON.stringify(json, null, 2) + '\n');
  console.log(`results: ${relative(process.cwd(), opts.json) || opts.json}`);
}

/** The cpu benchmark: prints its table and returns its part of results.json. */
async function cpuBench(opts) {
  let kernel;
  try {
    kernel = ensureKernel({ quiet: true });
  } catch (e) {
    if (!existsSync(kernelPath)) {
      console.error(`bench: cannot build the benchmark kernel (needs gcc with -m32 support, i.e. gcc-multilib): ${e.message}`);
      process.exit(1);
    }
    console.error(`bench: kernel rebuild failed, using the existing ${kernelPath}: ${e.message}`);
    kernel = kernelPath;
  }
  const cmdlineParts = [];
  if (opts.scale !== null) cmdlineParts.push(`scale=${opts.scale}`);
  if (opts.sections) cmdlineParts.push(`only=${opts.sections.join(',')}`);
  const cmdline = cmdlineParts.join(' ');

  console.log(`x86vm benchmark: ${relative(process.cwd(), kernel) || kernel}` +
    `${cmdline ? `  cmdline "${cmdline}"` : '  (default scale)'}`);
  console.log(`host: ${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}, Node ${process.version}`);

  const peers = RUN_ORDER.filter((p) => opts.only.includes(p));
  const results = {};
  for (const name of peers) {
    process.stdout.write(`running ${pad(name, 9)} … `);
    let run;
    try {
      run = await runners[name](kernel, cmdline, opts.timeout);
    } catch (e) {
      run = { ok: false, reason: `runner crashed: ${e.message}` };
    }
    const a = run.lines ? analyse(run) : null;
    if (run.ok && a && !a.done) {
      run.ok = false;
      run.reason = `exited without printing "BENCH done" (${a.sections.length} sections seen)`;
    }
    results[name] = { run, a };
    if (run.ok) {
      console.log(`${(run.wallMs / 1000).toFixed(2)} s wall, ${(a.guestMs / 1000).toFixed(2)} s in the sections`);
    } else {
      console.log(`n/a: ${run.reason}`);
    }
    for (const w of a?.warnings ?? []) console.log(`  warning (${name}): ${w}`);
  }

  // Checksums must agree across every peer that produced them.
  const mismatches = [];
  const sectionOrder = [];
  for (const { a } of Object.values(results)) {
    for (const s of a?.sections ?? []) if (!sectionOrder.includes(s.name)) sectionOrder.push(s.name);
  }
  const agreed = {};
  for (const sec of [...sectionOrder, 'end']) {
    const byPeer = {};
    for (const [name, { a }] of Object.entries(results)) {
      const c = sec === 'end' ? a?.end?.check : a?.sections.find((s) => s.name === sec)?.check;
      if (c) byPeer[name] = c;
    }
    const distinct = new Set(Object.values(byPeer));
    agreed[sec] = distinct.size === 1 ? [...distinct][0] : distinct.size === 0 ? null : 'MISMATCH';
    if (distinct.size > 1) mismatches.push({ section: sec, checks: byPeer });
  }

  // The table.
  const cols = peers;
  const ratioCols = [];
  if (opts.only.includes('x86vm')) {
    for (const p of ['v86', 'qemu']) if (cols.includes(p)) ratioCols.push(p);
  }
  const msOf = (peer, sec) => {
    const r = results[peer];
    if (!r?.a) return null;
    // Sections finished before a failure still count; totals need a full run.
    if (sec === 'total') return r.run.ok ? r.a.guestMs : null;
    if (sec === 'wall') return r.run.ok ? r.run.wallMs : null;
    return r.a.sections.find((s) => s.name === sec)?.ms ?? null;
  };
  console.log('');
  console.log('times in ms (lower is better); ratios > 1 mean x86vm is slower');
  let header = `${pad('section', 10)}${lpad('iters', 11)}  ${pad('check', 10)}`;
  for (const c of cols) header += lpad(c, 11);
  for (const p of ratioCols) header += lpad(`x86vm/${p}`, 13);
  console.log(header);
  const rows = [...sectionOrder, 'total', 'wall'];
  for (const sec of rows) {
    let iters = '';
    if (SECTION_NAMES.includes(sec) || sectionOrder.includes(sec)) {
      for (const { a } of Object.values(results)) {
        const s = a?.sections.find((x) => x.name === sec);
        if (s) {
          iters = String(s.iters);
          break;
        }
      }
    }
    const check = sec === 'total' ? (agreed.end ?? '') : sec === 'wall' ? '' : (agreed[sec] ?? '');
    let row = `${pad(sec, 10)}${lpad(iters, 11)}  ${pad(check, 10)}`;
    const merged = (peer) => results[peer]?.a?.sections.find((s) => s.name === sec)?.merged ? '~' : '';
    for (const c of cols) row += lpad(merged(c) + fmtMs(msOf(c, sec)), 11);
    for (const p of ratioCols) {
      const r = fmtRatio(msOf('x86vm', sec), msOf(p, sec));
      row += lpad(r === 'n/a' ? r : merged('x86vm') + r, 13);
    }
    console.log(row);
  }
  console.log('("total" is the time from the first to the last BENCH line; "wall" includes process start-up and boot)');
  for (const [name, { run, a }] of Object.entries(results)) {
    if (!run.ok) console.log(`${name}: n/a: ${run.reason}`);
    else if (a.timing !== 'host timestamps of the serial lines') console.log(`${name}: section times from ${a.timing}`);
  }
  if (mismatches.length) {
    console.log('');
    for (const m of mismatches) {
      console.log(`WARNING: checksum mismatch in ${m.section}: ${Object.entries(m.checks).map(([p, c]) => `${p}=${c}`).join(' ')}`);
    }
  } else if (Object.values(results).filter((r) => r.run.ok).length > 1) {
    console.log('checksums agree across all peers that ran');
  }

  // JSON.
  return {
    kernel: relative(repoRoot, kernel),
    cmdline,
    scale: Object.values(results).find((r) => r.a?.begin)?.a.begin.scale ?? opts.scale,
    peers: Object.fromEntries(Object.entries(results).map(([name, { run, a }]) => [name, {
      ok: !!run.ok,
      reason: run.ok ? null : run.reason,
      command: run.command ?? null,
      exit_code: run.code ?? null,
      wall_ms: run.wallMs ?? null,
      guest_ms: a?.guestMs ?? null,
      timing: a?.timing ?? null,
      tsc_per_ms: a?.tscPerMs ?? null,
      sections: (a?.sections ?? []).map((s) => ({ name: s.name, iters: s.iters, check: s.check,
        cycles: s.cycles.toString(), ms: s.ms, tsc_ms: s.tscMs, merged_with_neighbour: !!s.merged })),
      end: a?.end ? { check: a.end.check, cycles: a.end.cycles.toString() } : null,
      warnings: a?.warnings ?? [],
    }])),
    ratios: Object.fromEntries(ratioCols.map((p) => [`x86vm/${p}`, Object.fromEntries(
      [...sectionOrder, 'total', 'wall'].map((sec) => {
        const x = msOf('x86vm', sec);
        const y = msOf(p, sec);
        return [sec, x > 0 && y > 0 ? x / y : null];
      }))])),
    checksums: agreed,
    checksum_mismatches: mismatches,
  };
}

main().catch((e) => {
  console.error(`bench: ${e?.stack ?? e}`);
  process.exit(1);
});
