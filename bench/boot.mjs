// Boot benchmark: boots the default Linux guest (images/default/bzImage +
// initramfs.cpio.gz, "console=ttyS0", 128 MiB) on x86vm, qemu-system-i386
// (TCG) and v86, one after the other, and measures the wall time from process
// start to the first shell prompt on the serial console, to the kernel's
// "reboot: Power down" line after `poweroff -f` is typed, and to the end of
// the process. Called by bench/run.mjs (`--bench boot`); also runs alone:
//
//   node bench/boot.mjs [--only x86vm,qemu,v86,v86-nojit] [--timeout S] [--x86vm FILE]
//
// (standalone it prints the table only; run.mjs also writes results.json).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..');
const outDir = join(here, '.out');
export const BOOT_PEERS = ['x86vm', 'qemu', 'v86', 'v86-nojit'];
const RUN_ORDER = ['qemu', 'v86', 'v86-nojit', 'x86vm'];
const GUEST = {
  kernel: join(repoRoot, 'images', 'default', 'bzImage'),
  initrd: join(repoRoot, 'images', 'default', 'initramfs.cpio.gz'),
  append: 'console=ttyS0',
  memMiB: 128,
};
const PROMPT = 'x86vm:/# ';
const SEND = 'poweroff -f\n';
const POWER_DOWN = 'reboot: Power down';
const SEABIOS = ['/usr/share/seabios/bios.bin', '/usr/share/seabios/vgabios-stdvga.bin'];

/**
 * Spawns a command and watches its stdout (the guest's serial console) as it
 * arrives: records the time (ms since the spawn) the prompt first appears and
 * calls onPrompt(child) then; records when the power-down line appears.
 * Resolves with { promptMs, powerDownMs, wallMs, code, signal, output, stderr, timedOut, spawnError }.
 */
function runConsole(cmd, args, { timeoutMs, onPrompt, stdin = 'ignore' }) {
  return new Promise((done) => {
    const start = performance.now();
    let output = '';
    let stderr = '';
    let promptMs = null;
    let powerDownMs = null;
    let timedOut = false;
    let spawnError = null;
    let child;
    try {
      child = spawn(cmd, args, { stdio: [stdin, 'pipe', 'pipe'] });
    } catch (e) {
      done({ promptMs, powerDownMs, wallMs: 0, code: null, signal: null, output, stderr, timedOut, spawnError: e.message });
      return;
    }
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk) => {
      const t = performance.now() - start;
      // Search only the new text plus enough of the old to catch a match
      // split across chunks.
      const from = Math.max(0, output.length - 64);
      output += chunk;
      const recent = output.slice(from);
      if (promptMs === null && recent.includes(PROMPT)) {
        promptMs = t;
        onPrompt?.(child);
      }
      if (promptMs !== null && powerDownMs === null && recent.includes(POWER_DOWN)) powerDownMs = t;
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-8000);
    });
    child.stdin?.on('error', () => { /* the process may exit before reading */ });
    child.on('error', (e) => {
      spawnError = e.message;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ promptMs, powerDownMs, wallMs: performance.now() - start, code, signal, output, stderr, timedOut, spawnError });
    });
  });
}

const lastLines = (text, n = 6) => text.trim().split('\n').slice(-n).join('\n');

function saveConsole(name, text) {
  const path = join(outDir, `boot-${name}-console.txt`);
  try {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(path, text ?? '', 'latin1');
  } catch { /* ignore */ }
  return path;
}

/** Common verdict for a process that should print the prompt, then power off and exit 0. */
function verdict(r, res, timeoutS) {
  if (r.spawnError) return { ...res, ok: false, reason: `cannot start: ${r.spawnError}` };
  if (r.timedOut) {
    const where = r.promptMs === null ? 'before the prompt' : 'after the prompt, before it exited';
    return { ...res, ok: false, reason: `timed out after ${timeoutS} s ${where}` };
  }
  if (r.promptMs === null) return { ...res, ok: false, reason: `exited (${r.code ?? r.signal}) without printing the prompt: ${lastLines(r.stderr || r.output)}` };
  if (r.code !== 0) return { ...res, ok: false, reason: `exit status ${r.code ?? r.signal} after the prompt: ${lastLines(r.stderr || r.output)}` };
  return { ...res, ok: true };
}

async function haveCommand(cmd) {
  const r = await runConsole(cmd, ['--version'], { timeoutMs: 10000 });
  return !r.spawnError && r.code === 0;
}

/** Each returns { ok, reason?, promptMs, powerDownMs, wallMs, code, command }. */
const runners = {
  async x86vm({ timeoutS, x86vmBundle }) {
    if (!existsSync(x86vmBundle)) return { ok: false, reason: `${x86vmBundle} missing (node scripts/build.mjs)` };
    // Real-time mode (no --deterministic); the CLI types the command itself.
    const args = [x86vmBundle, 'run', '--kernel', GUEST.kernel, '--initrd', GUEST.initrd, '--append', GUEST.append,
      '--mem', `${GUEST.memMiB}M`, '--expect', PROMPT.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
      '--send', SEND.replace(/\n/g, '\\n'), '--timeout', String(timeoutS)];
    const r = await runConsole(process.execPath, args, { timeoutMs: (timeoutS + 30) * 1000 });
    saveConsole('x86vm', r.output);
    const res = { promptMs: r.promptMs, powerDownMs: r.powerDownMs, wallMs: r.wallMs, code: r.code, command: [process.execPath, ...args] };
    if (r.code === 124) return { ...res, ok: false, reason: `x86vm --timeout ${timeoutS} reached${r.promptMs === null ? ' before the prompt' : ''}` };
    return verdict(r, res, timeoutS);
  },

  async qemu({ timeoutS }) {
    const bin = 'qemu-system-i386';
    if (!(await haveCommand(bin))) return { ok: false, reason: `${bin} not found (apt-get install qemu-system-x86)` };
    const args = ['-kernel', GUEST.kernel, '-initrd', GUEST.initrd, '-append', GUEST.append, '-nographic',
      '-no-reboot', '-m', String(GUEST.memMiB), '-accel', 'tcg'];
    // -nographic puts the serial console on stdio; type the command on stdin.
    const r = await runConsole(bin, args, {
      timeoutMs: timeoutS * 1000,
      stdin: 'pipe',
      onPrompt: (child) => child.stdin.write(SEND),
    });
    saveConsole('qemu', r.output);
    return verdict(r, { promptMs: r.promptMs, powerDownMs: r.powerDownMs, wallMs: r.wallMs, code: r.code, command: [bin, ...args] }, timeoutS);
  },

  async v86({ timeoutS, jit = true }) {
    for (const f of SEABIOS) if (!existsSync(f)) return { ok: false, reason: `${f} missing (apt-get install seabios)` };
    const name = jit ? 'v86' : 'v86-nojit';
    const logPath = join(outDir, `boot-${name}-console.txt`);
    const args = [join(here, 'v86-boot-runner.mjs'), '--bzimage', GUEST.kernel, '--initrd', GUEST.initrd,
      '--cmdline', GUEST.append, '--mem', String(GUEST.memMiB), '--timeout', String(timeoutS),
      '--prompt', PROMPT, '--send', SEND, '--log', logPath];
    if (!jit) args.push('--no-jit');
    mkdirSync(outDir, { recursive: true });
    const r = await runConsole(process.execPath, args, { timeoutMs: (timeoutS + 30) * 1000 });
    // The runner reports JSON lines with its own timestamps (ms since its own start,
    // which is within a few ms of the spawn).
    const ev = {};
    for (const text of r.output.split('\n')) {
      try {
        const msg = JSON.parse(text);
        if (msg && typeof msg.type === 'string' && !(msg.type in ev)) ev[msg.type] = msg;
      } catch { /* [v86] log lines */ }
    }
    const res = { promptMs: ev.prompt?.t ?? null, powerDownMs: ev.poweroff?.t ?? null, wallMs: r.wallMs, code: r.code,
      command: [process.execPath, ...args] };
    if (r.spawnError) return { ...res, ok: false, reason: `cannot start: ${r.spawnError}` };
    if (!ev.exit) return { ...res, ok: false, reason: `runner exited (${r.code ?? r.signal}) without a result: ${lastLines(r.stderr)}` };
    if (res.promptMs === null) return { ...res, ok: false, reason: `no prompt (${ev.exit.reason})` };
    if (ev.exit.reason !== 'stopped' && ev.exit.reason !== 'poweroff') return { ...res, ok: false, reason: `after the prompt: ${ev.exit.reason}` };
    // v86 keeps running after the guest turns itself off; its run ends at the
    // power-down line (plus the runner's 200 ms grace), so "exit" is not comparable.
    return { ...res, ok: true, exitNote: ev.exit.reason === 'poweroff' ? 'the runner stops v86 200 ms after the power-down line' : null };
  },
};
runners['v86-nojit'] = (o) => runners.v86({ ...o, jit: false });

const fmtMs = (ms) => (ms === null || ms === undefined ? 'n/a' : ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));
const fmtRatio = (a, b) => (a > 0 && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const ROWS = [
  ['prompt', 'promptMs'],
  ['power-down', 'powerDownMs'],
  ['exit', 'wallMs'],
];

/**
 * Runs the boot benchmark on the given peers and prints its table. Returns the
 * object that goes under "boot" in results.json.
 */
export async function runBootBench({ only, timeoutS = 300, x86vmBundle = join(repoRoot, 'dist', 'x86vm.mjs') } = {}) {
  const peers = RUN_ORDER.filter((p) => (only ?? ['x86vm', 'qemu', 'v86']).includes(p));
  console.log(`boot benchmark: ${relative(process.cwd(), GUEST.kernel)} + ${relative(process.cwd(), GUEST.initrd)}` +
    `, "${GUEST.append}", ${GUEST.memMiB} MiB; prompt "${PROMPT}", then "${SEND.trim()}"`);
  const missing = [GUEST.kernel, GUEST.initrd].filter((f) => !existsSync(f));
  const results = {};
  for (const name of peers) {
    process.stdout.write(`booting ${pad(name, 9)} … `);
    let run;
    if (missing.length) {
      run = { ok: false, reason: `guest files missing: ${missing.map((f) => relative(repoRoot, f)).join(', ')}` };
    } else {
      try {
        run = await runners[name]({ timeoutS, x86vmBundle });
      } catch (e) {
        run = { ok: false, reason: `runner crashed: ${e.message}` };
      }
    }
    results[name] = run;
    if (run.ok) console.log(`prompt at ${(run.promptMs / 1000).toFixed(2)} s, powered off at ${((run.powerDownMs ?? run.wallMs) / 1000).toFixed(2)} s`);
    else console.log(`n/a: ${run.reason}`);
  }

  const ratioCols = peers.includes('x86vm') ? ['v86', 'qemu'].filter((p) => peers.includes(p)) : [];
  // A failed run still shows the times it reached (e.g. the prompt before a hang after it).
  const msOf = (peer, key) => {
    const v = results[peer]?.[key];
    if (key === 'wallMs' && !results[peer]?.ok) return null;
    return typeof v === 'number' ? v : null;
  };
  console.log('');
  console.log('boot times in ms from process start (lower is better); ratios > 1 mean x86vm is slower');
  let header = pad('boot', 12);
  for (const c of peers) header += lpad(c, 11);
  for (const p of ratioCols) header += lpad(`x86vm/${p}`, 13);
  console.log(header);
  for (const [label, key] of ROWS) {
    let row = pad(label, 12);
    for (const c of peers) row += lpad(fmtMs(msOf(c, key)), 11);
    for (const p of ratioCols) row += lpad(key === 'wallMs' && p.startsWith('v86') ? 'n/a' : fmtRatio(msOf('x86vm', key), msOf(p, key)), 13);
    console.log(row);
  }
  console.log('("prompt": first "x86vm:/# " on the serial console; "power-down": the kernel\'s "reboot: Power down"' +
    ' line after "poweroff -f"; "exit": the process ended)');
  for (const [name, run] of Object.entries(results)) {
    if (!run.ok) console.log(`${name}: n/a: ${run.reason}`);
    else if (run.exitNote) console.log(`${name}: exit: ${run.exitNote}`);
  }
  console.log(`serial console output: ${relative(process.cwd(), join(outDir, 'boot-*-console.txt'))}`);

  return {
    guest: {
      kernel: relative(repoRoot, GUEST.kernel),
      initrd: relative(repoRoot, GUEST.initrd),
      append: GUEST.append,
      mem_mib: GUEST.memMiB,
      prompt: PROMPT,
      send: SEND,
    },
    peers: Object.fromEntries(Object.entries(results).map(([name, run]) => [name, {
      ok: !!run.ok,
      reason: run.ok ? null : run.reason,
      command: run.command ?? null,
      exit_code: run.code ?? null,
      prompt_ms: run.promptMs ?? null,
      power_down_ms: run.powerDownMs ?? null,
      wall_ms: run.wallMs ?? null,
      note: run.exitNote ?? null,
    }])),
    ratios: Object.fromEntries(ratioCols.map((p) => [`x86vm/${p}`, {
      prompt: msOf('x86vm', 'promptMs') > 0 && msOf(p, 'promptMs') > 0 ? msOf('x86vm', 'promptMs') / msOf(p, 'promptMs') : null,
      power_down: msOf('x86vm', 'powerDownMs') > 0 && msOf(p, 'powerDownMs') > 0 ? msOf('x86vm', 'powerDownMs') / msOf(p, 'powerDownMs') : null,
    }])),
  };
}

// Standalone use.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const opts = { only: ['x86vm', 'qemu', 'v86'], timeoutS: 300 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--only') { opts.only = v.split(',').filter(Boolean); i++; }
    else if (a === '--timeout') { opts.timeoutS = Number(v); i++; }
    else if (a === '--x86vm') { opts.x86vmBundle = resolve(v); i++; }
    else { console.error(`usage: node bench/boot.mjs [--only ${BOOT_PEERS.join(',')}] [--timeout S] [--x86vm FILE]`); process.exit(2); }
  }
  for (const p of opts.only) if (!BOOT_PEERS.includes(p)) { console.error(`unknown peer "${p}"`); process.exit(2); }
  await runBootBench(opts);
}
