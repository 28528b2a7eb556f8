// Disk benchmark: boots the default Linux guest (images/default/bzImage +
// initramfs.cpio.gz, "console=ttyS0", 128 MiB) with a 64 MiB raw disk image of
// pseudo-random data and times, in the guest, busybox `dd` over the whole disk:
//   read         echo 3 > /proc/sys/vm/drop_caches; dd if=DEV of=/dev/null bs=1M count=64
//   read-direct  dd if=DEV of=/dev/null bs=1M count=64 iflag=direct   (no page cache)
//   write        dd if=/dev/zero of=DEV bs=1M count=64 oflag=direct conv=fsync
// Each step is timed twice: on the host, from the arrival of serial marker lines
// printed right before and after it, and in the guest by busybox `time -p`.
// Peers, one after the other: x86vm with the disk on IDE (--hda) and on
// virtio-blk (--drive if=virtio-blk), v86 on IDE (`hda: { buffer }`,
// bench/v86-disk-runner.mjs), qemu-system-i386 (TCG) on IDE and on virtio.
// Every peer gets a fresh copy of the same image; the bytes the guest read are
// checked (MD5 of four 4 KiB blocks against the host's) and so is the image
// after the run (it must hold the zeros written). Called by bench/run.mjs
// (`--bench disk`); also runs alone:
//
//   node bench/disk.mjs [--only x86vm,qemu,v86,v86-nojit] [--timeout S] [--x86vm FILE]
//
// (standalone it prints the table only; run.mjs also writes results.json).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..');
const outDir = join(here, '.out');
export const DISK_PEERS = ['x86vm', 'qemu', 'v86', 'v86-nojit'];
const GUEST = {
  kernel: join(repoRoot, 'images', 'default', 'bzImage'),
  initrd: join(repoRoot, 'images', 'default', 'initramfs.cpio.gz'),
  append: 'console=ttyS0',
  memMiB: 128,
};
const PROMPT = 'x86vm:/# ';
const POWER_DOWN = 'reboot: Power down';
const SEABIOS = ['/usr/share/seabios/bios.bin', '/usr/share/seabios/vgabios-stdvga.bin'];
const DISK_MIB = 64;
const DISK_BYTES = DISK_MIB * 1024 * 1024;
const MB = DISK_BYTES / 1e6; // what one pass moves, in MB (10^6 bytes)
/** 4 KiB blocks the guest hashes after the read (first, two inside, last) */
const SAMPLE_BLOCKS = [0, 5003, 11111, DISK_BYTES / 4096 - 1];
const OPS = ['read', 'read-direct', 'write'];

/**
 * The disk configurations, in run order: which emulator (the --only name),
 * how the disk is attached, and its device name in the guest.
 */
const CONFIGS = [
  { name: 'qemu-ide', peer: 'qemu', dev: 'sda', qemuIf: 'ide' },
  { name: 'qemu-virtio', peer: 'qemu', dev: 'vda', qemuIf: 'virtio' },
  { name: 'v86-ide', peer: 'v86', dev: 'sda' },
  { name: 'v86-nojit-ide', peer: 'v86-nojit', dev: 'sda' },
  { name: 'x86vm-ide', peer: 'x86vm', dev: 'sda', x86vmDrive: (f) => ['--hda', f] },
  { name: 'x86vm-virtio', peer: 'x86vm', dev: 'vda', x86vmDrive: (f) => ['--drive', `file=${f},if=virtio-blk,format=raw`] },
];
/** time ratios shown: [x86vm config, peer config] */
const RATIOS = [['x86vm-ide', 'v86-ide'], ['x86vm-ide', 'qemu-ide'], ['x86vm-virtio', 'qemu-virtio']];

/**
 * The one command line typed at the prompt. Markers are echoed as
 * "@@DISK OP 0" before and "@@DISK OP 1" after each step; the command's own
 * echo shows "$((0))" there instead, so it never matches.
 */
function guestScript(dev) {
  const d = `/dev/${dev}`;
  const mark = (op, n) => `echo @@DISK ${op} $((${n}))`;
  const dd = `dd bs=1M count=${DISK_MIB}`;
  return [
    `echo 3 > /proc/sys/vm/drop_caches || ${mark('no-drop-caches', 1)}`,
    mark('read', 0), `time -p ${dd} if=${d} of=/dev/null`, mark('read', 1),
    mark('check', 0),
    `for b in ${SAMPLE_BLOCKS.join(' ')}; do dd if=${d} bs=4k skip=$b count=1 2>/dev/null | md5sum; done`,
    mark('check', 1),
    mark('read-direct', 0), `time -p ${dd} if=${d} of=/dev/null iflag=direct`, mark('read-direct', 1),
    mark('write', 0), `time -p ${dd} if=/dev/zero of=${d} oflag=direct conv=fsync`, mark('write', 1),
    'poweroff -f',
  ].join('; ');
}

// ------------------------------------------------------------------ image ---

/** DISK_BYTES of xorshift32 output (seed fixed): the same bytes every run. */
function makePattern() {
  const words = new Uint32Array(DISK_BYTES / 4);
  let x = 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return new Uint8Array(words.buffer);
}

const md5 = (bytes) => createHash('md5').update(bytes).digest('hex');
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

// ---------------------------------------------------------------- running ---

/**
 * Spawns a command, timestamps every stdout line as it arrives (ms since the
 * spawn), calls onPrompt(child) when the prompt first appears. Resolves with
 * { lines: [{t, text}], promptMs, wallMs, code, signal, output, stderr, timedOut, spawnError }.
 */
function runConsole(cmd, args, { timeoutMs, onPrompt, stdin = 'ignore' }) {
  return new Promise((done) => {
    const start = performance.now();
    const lines = [];
    let partial = '';
    let output = '';
    let stderr = '';
    let promptMs = null;
    let timedOut = false;
    let spawnError = null;
    let child;
    try {
      child = spawn(cmd, args, { stdio: [stdin, 'pipe', 'pipe'] });
    } catch (e) {
      done({ lines, promptMs, wallMs: 0, code: null, signal: null, output, stderr, timedOut, spawnError: e.message });
      return;
    }
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk) => {
      const t = performance.now() - start;
      const from = Math.max(0, output.length - 64);
      output += chunk;
      if (promptMs === null && output.slice(from).includes(PROMPT)) {
        promptMs = t;
        onPrompt?.(child);
      }
      partial += chunk;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        lines.push({ t, text: partial.slice(0, nl).replace(/\r$/, '') });
        partial = partial.slice(nl + 1);
      }
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
      if (partial) lines.push({ t: performance.now() - start, text: partial });
      done({ lines, promptMs, wallMs: performance.now() - start, code, signal, output, stderr, timedOut, spawnError });
    });
  });
}

const lastLines = (text, n = 6) => text.trim().split('\n').slice(-n).join('\n');

function saveConsole(name, text) {
  const path = join(outDir, `disk-${name}-console.txt`);
  try {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(path, text ?? '', 'latin1');
  } catch { /* ignore */ }
  return path;
}

async function haveCommand(cmd) {
  const r = await runConsole(cmd, ['--version'], { timeoutMs: 10000 });
  return !r.spawnError && r.code === 0;
}

/** The verdict on a process that should reach the prompt, run the script and power off with status 0. */
function verdict(r, res, timeoutS) {
  if (r.spawnError) return { ...res, ok: false, reason: `cannot start: ${r.spawnError}` };
  if (r.timedOut) return { ...res, ok: false, reason: `timed out after ${timeoutS} s${r.promptMs === null ? ' before the prompt' : ''}` };
  if (r.promptMs === null) return { ...res, ok: false, reason: `exited (${r.code ?? r.signal}) without printing the prompt: ${lastLines(r.stderr || r.output)}` };
  if (r.code !== 0) return { ...res, ok: false, reason: `exit status ${r.code ?? r.signal} after the prompt: ${lastLines(r.stderr || r.output, 3)}` };
  return { ...res, ok: true };
}

/**
 * Each runner boots the guest with `image` attached, types the script, and
 * returns { ok, reason?, lines: [{t, text}], promptMs, wallMs, code, command,
 * imageSha256 (the image after the run), output }.
 */
const runners = {
  async x86vm(cfg, image, script, { timeoutS, x86vmBundle }) {
    if (!existsSync(x86vmBundle)) return { ok: false, reason: `${x86vmBundle} missing (node scripts/build.mjs)` };
    // Real-time mode (no --deterministic); the CLI types the script itself.
    const args = [x86vmBundle, 'run', '--kernel', GUEST.kernel, '--initrd', GUEST.initrd, '--append', GUEST.append,
      '--mem', `${GUEST.memMiB}M`, ...cfg.x86vmDrive(image), '--serial', 'stdio',
      '--expect', PROMPT.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), '--send', `${script.replace(/\\/g, '\\\\')}\\n`,
      '--timeout', String(timeoutS)];
    const r = await runConsole(process.execPath, args, { timeoutMs: (timeoutS + 30) * 1000 });
    const res = { lines: r.lines, promptMs: r.promptMs, wallMs: r.wallMs, code: r.code, output: r.output,
      command: [process.execPath, ...args], imageSha256: sha256(readFileSync(image)) };
    if (r.code === 124) return { ...res, ok: false, reason: `x86vm --timeout ${timeoutS} reached${r.promptMs === null ? ' before the prompt' : ''}` };
    if (r.code === 2) return { ...res, ok: false, reason: `x86vm refused the command line: ${lastLines(r.stderr, 2)}` };
    return verdict(r, res, timeoutS);
  },

  async qemu(cfg, image, script, { timeoutS }) {
    const bin = 'qemu-system-i386';
    if (!(await haveCommand(bin))) return { ok: false, reason: `${bin} not found (apt-get install qemu-system-x86)` };
    const args = ['-kernel', GUEST.kernel, '-initrd', GUEST.initrd, '-append', GUEST.append, '-nographic',
      '-no-reboot', '-m', String(GUEST.memMiB), '-accel', 'tcg', '-drive', `file=${image},format=raw,if=${cfg.qemuIf}`];
    // -nographic puts the serial console on stdio; type the script on stdin.
    const r = await runConsole(bin, args, {
      timeoutMs: timeoutS * 1000,
      stdin: 'pipe',
      onPrompt: (child) => child.stdin.write(`${script}\n`),
    });
    const res = { lines: r.lines, promptMs: r.promptMs, wallMs: r.wallMs, code: r.code, output: r.output,
      command: [bin, ...args], imageSha256: sha256(readFileSync(image)) };
    return verdict(r, res, timeoutS);
  },

  async v86(cfg, image, script, { timeoutS, jit = true }) {
    for (const f of SEABIOS) if (!existsSync(f)) return { ok: false, reason: `${f} missing (apt-get install seabios)` };
    const args = [join(here, 'v86-disk-runner.mjs'), '--bzimage', GUEST.kernel, '--initrd', GUEST.initrd,
      '--hda', image, '--cmdline', GUEST.append, '--mem', String(GUEST.memMiB), '--timeout', String(timeoutS),
      '--prompt', PROMPT, '--send', `${script}\n`, '--log', join(outDir, `disk-${cfg.name}-console.txt`)];
    if (!jit) args.push('--no-jit');
    const r = await runConsole(process.execPath, args, { timeoutMs: (timeoutS + 30) * 1000 });
    // The runner reports JSON lines with its own timestamps (ms since its start,
    // within a few ms of the spawn), and writes the console log itself.
    const lines = [];
    const ev = {};
    for (const { text } of r.lines) {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch {
        continue; // [v86] log lines
      }
      if (!msg || typeof msg.type !== 'string') continue;
      if (msg.type === 'line') lines.push({ t: msg.t, text: msg.text });
      else if (!(msg.type in ev)) ev[msg.type] = msg;
    }
    const res = { lines, promptMs: ev.prompt?.t ?? null, wallMs: r.wallMs, code: r.code, output: null,
      command: [process.execPath, ...args], imageSha256: ev.disk?.sha256 ?? null };
    if (r.spawnError) return { ...res, ok: false, reason: `cannot start: ${r.spawnError}` };
    if (!ev.exit) return { ...res, ok: false, reason: `runner exited (${r.code ?? r.signal}) without a result: ${lastLines(r.stderr)}` };
    if (res.promptMs === null) return { ...res, ok: false, reason: `no prompt (${ev.exit.reason.split('\n')[0]})` };
    if (ev.exit.reason !== 'stopped' && ev.exit.reason !== 'poweroff') return { ...res, ok: false, reason: `after the prompt: ${ev.exit.reason.split('\n')[0]}` };
    return { ...res, ok: true };
  },
};
runners['v86-nojit'] = (cfg, image, script, o) => runners.v86(cfg, image, script, { ...o, jit: false });

// ---------------------------------------------------------------- parsing ---

/**
 * Finds each step between its markers: host time (ms between the marker
 * lines' arrival), guest time (`time -p`'s "real"), whether dd copied all
 * records, and the MD5 lines of the check step.
 */
export function analyse(lines) {
  const spans = {};
  let open = null;
  let noDrop = false;
  for (const { t, text } of lines) {
    const m = /@@DISK ([\w-]+) ([01])(?!\S)/.exec(text);
    if (m) {
      if (m[1] === 'no-drop-caches') {
        noDrop = true;
      } else if (m[2] === '0') {
        open = { op: m[1], t0: t, t1: null, body: [] };
        spans[m[1]] = open;
      } else if (open && open.op === m[1]) {
        open.t1 = t;
        open = null;
      }
      continue;
    }
    if (open) open.body.push(text);
  }
  const steps = {};
  for (const op of OPS) {
    const s = spans[op];
    if (!s) {
      steps[op] = { ok: false, reason: 'not reached', hostMs: null, guestS: null };
      continue;
    }
    const real = s.body.map((l) => /^real\s+([\d.]+)\s*$/.exec(l)).find(Boolean);
    const guestS = real ? Number(real[1]) : null;
    const hostMs = s.t1 !== null ? s.t1 - s.t0 : null;
    const copied = s.body.some((l) => l.includes(`${DISK_MIB}+0 records out`));
    let reason = null;
    if (s.t1 === null) reason = 'did not finish';
    else if (!copied) reason = `dd did not copy ${DISK_MIB} MiB: ${s.body.find((l) => /dd:|records/.test(l)) ?? s.body.slice(-1)[0] ?? 'no output'}`;
    steps[op] = { ok: reason === null, reason, hostMs, guestS };
  }
  const md5s = (spans.check?.body ?? []).map((l) => /^([0-9a-f]{32})\s+-\s*$/.exec(l)?.[1]).filter(Boolean);
  return { steps, md5s, noDrop };
}

// ---------------------------------------------------------------- output ---

const mbps = (ms) => (ms > 0 ? MB / (ms / 1000) : null);
const fmtRate = (v) => (v === null || v === undefined ? 'n/a' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const fmtRatio = (a, b) => (a > 0 && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const load = () => os.loadavg().map((x) => x.toFixed(2));

/**
 * Runs the disk benchmark on the configurations of the given peers and prints
 * its table. Returns the object that goes under "disk" in results.json.
 */
export async function runDiskBench({ only, timeoutS = 300, x86vmBundle = join(repoRoot, 'dist', 'x86vm.mjs') } = {}) {
  const want = only ?? ['x86vm', 'qemu', 'v86'];
  const configs = CONFIGS.filter((c) => want.includes(c.peer));
  const loadBefore = load();
  console.log(`disk benchmark: ${relative(process.cwd(), GUEST.kernel)} + ${relative(process.cwd(), GUEST.initrd)}` +
    `, "${GUEST.append}", ${GUEST.memMiB} MiB; a ${DISK_MIB} MiB raw image of pseudo-random data, busybox dd bs=1M`);
  console.log(`load average before: ${loadBefore.join(' ')} (${os.cpus().length} CPUs)`);
  const missing = [GUEST.kernel, GUEST.initrd].filter((f) => !existsSync(f));

  mkdirSync(outDir, { recursive: true });
  const pattern = makePattern();
  const expectedMd5s = SAMPLE_BLOCKS.map((b) => md5(pattern.subarray(b * 4096, (b + 1) * 4096)));
  const zerosSha256 = sha256(new Uint8Array(DISK_BYTES));

  const results = {};
  for (const cfg of configs) {
    process.stdout.write(`running ${pad(cfg.name, 14)} … `);
    let run;
    let a = null;
    const warnings = [];
    const image = join(outDir, `disk-${cfg.name}.raw`);
    if (missing.length) {
      run = { ok: false, reason: `guest files missing: ${missing.map((f) => relative(repoRoot, f)).join(', ')}` };
    } else {
      try {
        writeFileSync(image, pattern);
        run = await runners[cfg.peer](cfg, image, guestScript(cfg.dev), { timeoutS, x86vmBundle });
      } catch (e) {
        run = { ok: false, reason: `runner crashed: ${e.message}` };
      } finally {
        rmSync(image, { force: true });
      }
    }
    if (run.output !== null && run.output !== undefined) saveConsole(cfg.name, run.output);
    if (run.lines) {
      a = analyse(run.lines);
      if (a.noDrop) warnings.push('echo 3 > /proc/sys/vm/drop_caches failed: the read may come from the page cache');
      // The data read must be the image's: compare the guest's MD5s of sample blocks.
      const r = a.steps.read;
      if (r.ok && a.md5s.join(' ') !== expectedMd5s.join(' ')) {
        r.ok = false;
        r.reason = `the guest read wrong data (MD5s of blocks ${SAMPLE_BLOCKS.join(', ')}: ${a.md5s.join(' ') || 'none'})`;
      }
      // The image must hold what was written (only known once the peer exited cleanly).
      const w = a.steps.write;
      if (w.ok && run.ok && run.imageSha256 !== zerosSha256) {
        w.ok = false;
        w.reason = `the image does not hold the zeros written (sha256 ${run.imageSha256 ?? 'unknown'})`;
      } else if (w.ok && !run.ok) {
        warnings.push('the written data was not checked (the run failed)');
      }
    }
    results[cfg.name] = { cfg, run, a, warnings };
    const steps = a?.steps;
    const summary = OPS.map((op) => `${op} ${steps?.[op]?.ok ? `${fmtRate(mbps(steps[op].hostMs))} MB/s` : 'n/a'}`).join(', ');
    console.log(run.ok ? summary : `n/a: ${run.reason}${steps && OPS.some((op) => steps[op].ok) ? ` (${summary})` : ''}`);
  }
  const loadAfter = load();

  // A step counts when dd copied everything and its data checked out, even if the run failed later.
  const stepOf = (name, op) => {
    const s = results[name]?.a?.steps[op];
    return s?.ok ? s : null;
  };
  const hostRate = (name, op) => mbps(stepOf(name, op)?.hostMs);
  const guestRate = (name, op) => {
    const g = stepOf(name, op)?.guestS;
    return g > 0 ? MB / g : null;
  };

  console.log('');
  console.log('disk throughput in MB/s (10^6 bytes/s; higher is better): timed on the host from the serial markers,');
  console.log("and in brackets by the guest's `time -p`");
  let header = pad('disk', 16);
  for (const op of OPS) header += lpad(op, 20);
  console.log(header);
  for (const cfg of configs) {
    let row = pad(cfg.name, 16);
    for (const op of OPS) {
      const h = hostRate(cfg.name, op);
      const g = guestRate(cfg.name, op);
      row += lpad(h === null ? 'n/a' : `${fmtRate(h)} (${fmtRate(g)})`, 20);
    }
    console.log(row);
  }
  const ratios = RATIOS.filter(([x, p]) => results[x] && results[p]);
  if (ratios.length) {
    console.log('');
    console.log('time ratios from the host-timed figures (> 1 means x86vm is slower)');
    let rh = pad('', 26);
    for (const op of OPS) rh += lpad(op, 13);
    console.log(rh);
    for (const [x, p] of ratios) {
      let row = pad(`${x}/${p}`, 26);
      for (const op of OPS) row += lpad(fmtRatio(hostRate(p, op), hostRate(x, op)), 13);
      console.log(row);
    }
  }
  console.log('');
  console.log(`read: after drop_caches, through the page cache; read-direct: iflag=direct; write: /dev/zero with` +
    ` oflag=direct conv=fsync. Host times include starting \`time\` and \`dd\` in the guest.`);
  console.log(`load average after: ${loadAfter.join(' ')}`);
  for (const [name, { run, a, warnings }] of Object.entries(results)) {
    if (!run.ok) console.log(`${name}: n/a: ${run.reason}`);
    for (const op of OPS) {
      const s = a?.steps[op];
      if (s && !s.ok && s.reason !== 'not reached' && s.reason !== 'did not finish') console.log(`${name}: ${op}: ${s.reason}`);
    }
    for (const w of warnings) console.log(`${name}: warning: ${w}`);
  }
  console.log(`serial console output: ${relative(process.cwd(), join(outDir, 'disk-*-console.txt'))}`);

  return {
    guest: {
      kernel: relative(repoRoot, GUEST.kernel),
      initrd: relative(repoRoot, GUEST.initrd),
      append: GUEST.append,
      mem_mib: GUEST.memMiB,
      prompt: PROMPT,
    },
    image: { format: 'raw', mib: DISK_MIB, content: 'xorshift32 pseudo-random bytes', sample_blocks_4k: SAMPLE_BLOCKS,
      sample_md5s: expectedMd5s },
    script: { sda: guestScript('sda'), vda: guestScript('vda') },
    unit: 'MB/s (10^6 bytes per second)',
    load_before: loadBefore.map(Number),
    load_after: loadAfter.map(Number),
    peers: Object.fromEntries(Object.entries(results).map(([name, { cfg, run, a, warnings }]) => [name, {
      ok: !!run.ok,
      reason: run.ok ? null : run.reason,
      emulator: cfg.peer,
      device: `/dev/${cfg.dev}`,
      command: run.command ?? null,
      exit_code: run.code ?? null,
      prompt_ms: run.promptMs ?? null,
      wall_ms: run.wallMs ?? null,
      image_sha256_after: run.imageSha256 ?? null,
      steps: Object.fromEntries(OPS.map((op) => {
        const s = a?.steps[op];
        return [op, {
          ok: !!s?.ok,
          reason: s?.ok ? null : (s?.reason ?? run.reason ?? null),
          host_ms: s?.hostMs ?? null,
          guest_s: s?.guestS ?? null,
          host_mb_s: hostRate(name, op),
          guest_mb_s: guestRate(name, op),
        }];
      })),
      warnings,
    }])),
    ratios: Object.fromEntries(ratios.map(([x, p]) => [`${x}/${p}`,
      Object.fromEntries(OPS.map((op) => {
        const hx = hostRate(x, op);
        const hp = hostRate(p, op);
        return [op, hx > 0 && hp > 0 ? hp / hx : null];
      }))])),
  };
}

// Standalone use.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const opts = { only: ['x86vm', 'qemu', 'v86'], timeoutS: 300 };
  const usage = `usage: node bench/disk.mjs [--only ${DISK_PEERS.join(',')}] [--timeout S] [--x86vm FILE]`;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--only' && v) { opts.only = v.split(',').filter(Boolean); i++; }
    else if (a === '--timeout' && Number(v) > 0) { opts.timeoutS = Number(v); i++; }
    else if (a === '--x86vm' && v) { opts.x86vmBundle = resolve(v); i++; }
    else { console.error(usage); process.exit(2); }
  }
  for (const p of opts.only) if (!DISK_PEERS.includes(p)) { console.error(`unknown peer "${p}"\n${usage}`); process.exit(2); }
  await runDiskBench(opts);
}
