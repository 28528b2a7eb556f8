// Runs a Multiboot kernel on v86 (the npm package) in this Node process and
// reports on stdout, one JSON object per line:
//   {"type":"ready","t":ms}            emulator created, about to run
//   {"type":"line","t":ms,"text":"…"}   one line of guest serial output (COM1)
//   {"type":"exit","t":ms,"reason":"…","code":n|null}
// t is milliseconds since this script started. v86's port 0xE9 is a no-op, and
// its multiboot test device on port 0xF4 throws to stop the CPU, so the end of
// the run is detected by the "BENCH done" line on the serial console (and, as
// a fallback, by the "Test exited with code" message v86 logs on a 0xF4 write).
//
// Usage: node bench/v86-runner.mjs --kernel K.elf [--cmdline STR] [--mem MiB]
//        [--timeout S] [--no-jit] [--done-marker STR]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';

const t0 = performance.now();
const now = () => Math.round((performance.now() - t0) * 1000) / 1000;
const emit = (obj) => process.stdout.write(JSON.stringify({ ...obj, t: now() }) + '\n');

function parseArgs(argv) {
  const opts = { kernel: '', cmdline: '', mem: 64, timeout: 600, jit: true, doneMarker: 'BENCH done' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--kernel') opts.kernel = next();
    else if (a === '--cmdline') opts.cmdline = next();
    else if (a === '--mem') opts.mem = Number(next());
    else if (a === '--timeout') opts.timeout = Number(next());
    else if (a === '--no-jit') opts.jit = false;
    else if (a === '--done-marker') opts.doneMarker = next();
    else throw new Error(`unknown option ${a}`);
  }
  if (!opts.kernel) throw new Error('--kernel is required');
  return opts;
}

let finished = false;
function finish(reason, code, emulator) {
  if (finished) return;
  finished = true;
  emit({ type: 'exit', reason, code });
  // v86 keeps timers and (with the JIT) worker threads alive; leave at once.
  try { emulator?.stop(); } catch { /* ignore */ }
  process.exitCode = reason === 'done' || reason === 'debug-exit' ? 0 : 1;
  setImmediate(() => process.exit());
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const require = createRequire(import.meta.url);
  const v86Main = require.resolve('v86');                     // …/v86/build/libv86.mjs
  const wasmPath = join(dirname(v86Main), 'v86.wasm');
  const { V86 } = await import(v86Main);

  const toArrayBuffer = (path) => {
    const b = readFileSync(path);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  };
  const bios = toArrayBuffer('/usr/share/seabios/bios.bin');
  const vgaBios = toArrayBuffer('/usr/share/seabios/vgabios-stdvga.bin');
  const kernel = toArrayBuffer(opts.kernel);

  // A write to port 0xF4 makes v86 log "Test exited with code 0x.." and throw.
  const origLog = console.log;
  console.log = (...args) => {
    const m = /^Test exited with code (?:0x)?([0-9a-f]+)/i.exec(String(args[0] ?? ''));
    if (m) finish('debug-exit', parseInt(m[1], 16), emulator);
    else origLog(...args.map(String).map((s) => `[v86] ${s}`));
  };

  const emulator = new V86({
    wasm_path: wasmPath,
    bios: { buffer: bios },
    vga_bios: { buffer: vgaBios },
    multiboot: { buffer: kernel },
    cmdline: opts.cmdline,
    memory_size: opts.mem * 1024 * 1024,
    vga_memory_size: 2 * 1024 * 1024,
    autostart: true,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    disable_jit: !opts.jit,
    log_level: 0,
  });

  let line = '';
  emulator.add_listener('serial0-output-byte', (byte) => {
    if (byte === 10) {
      const text = line.replace(/\r$/, '');
      line = '';
      emit({ type: 'line', text });
      if (text.startsWith(opts.doneMarker)) finish('done', 0, emulator);
    } else {
      line += String.fromCharCode(byte);
    }
  });
  emulator.add_listener('emulator-ready', () => emit({ type: 'ready' }));
  emulator.add_listener('emulator-stopped', () => {
    if (!finished) setTimeout(() => finish('stopped', null, emulator), 100);
  });
  setTimeout(() => finish('timeout', null, emulator), opts.timeout * 1000).unref();
}

process.on('uncaughtException', (e) => {
  if (e === 'HALT') return finish('debug-exit', null, null);
  emit({ type: 'exit', reason: `error: ${e?.stack ?? e}`, code: null });
  process.exit(1);
});
process.on('unhandledRejection', (e) => {
  emit({ type: 'exit', reason: `error: ${e?.stack ?? e}`, code: null });
  process.exit(1);
});

main().catch((e) => {
  emit({ type: 'exit', reason: `error: ${e?.message ?? e}`, code: null });
  process.exit(1);
});
