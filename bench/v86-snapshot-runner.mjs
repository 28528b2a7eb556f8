// The v86 side of the snapshot benchmark: boots a Linux bzImage + initrd on v86 (the npm package) in
// this Node process until the shell prompt appears on COM1, times save_state(), then creates a second
// emulator with the same options, times restore_state() into it, and types `poweroff -f` to show that
// the restored machine runs on. Reports on stdout, one JSON object per line:
//   {"type":"saved","t":ms,"bytes":n,"deflatedBytes":n,"saveMs":ms}
//   {"type":"restored","t":ms,"restoreMs":ms,"powerDownMs":ms}   powerDownMs: from the restore's start
//   {"type":"exit","t":ms,"reason":"ok"|"…"}
// deflatedBytes: the state compressed with zlib level 1 (x86vm's setting), for comparison only; v86
// itself writes its state uncompressed.
//
// Usage: node bench/v86-snapshot-runner.mjs --bzimage K --initrd I [--cmdline STR] [--mem MiB] [--timeout S]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { deflateRawSync } from 'node:zlib';

const t0 = performance.now();
const now = () => Math.round((performance.now() - t0) * 1000) / 1000;
const emit = (obj) => process.stdout.write(JSON.stringify({ ...obj, t: now() }) + '\n');
const PROMPT = 'x86vm:/# ';
const POWER_DOWN = 'reboot: Power down';

function parseArgs(argv) {
  const o = { bzimage: '', initrd: '', cmdline: 'console=ttyS0', mem: 128, timeout: 300 };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in o)) throw new Error(`unknown option ${argv[i]}`);
    o[k] = typeof o[k] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!o.bzimage || !o.initrd) throw new Error('--bzimage and --initrd are required');
  return o;
}

let finished = false;
function finish(reason, ...emulators) {
  if (finished) return;
  finished = true;
  emit({ type: 'exit', reason });
  for (const e of emulators) {
    try { e?.stop(); } catch { /* ignore */ }
  }
  process.exitCode = reason === 'ok' ? 0 : 1;
  // v86 keeps timers and JIT worker threads alive: leave at once
  setImmediate(() => process.exit());
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const require = createRequire(import.meta.url);
  const v86Main = require.resolve('v86');
  const { V86 } = await import(v86Main);
  const buf = (path) => {
    const b = readFileSync(path);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  };
  const origLog = console.log;
  console.log = (...args) => origLog(...args.map(String).map((s) => `[v86] ${s}`));
  const options = () => ({
    wasm_path: join(dirname(v86Main), 'v86.wasm'),
    bios: { buffer: buf('/usr/share/seabios/bios.bin') },
    vga_bios: { buffer: buf('/usr/share/seabios/vgabios-stdvga.bin') },
    bzimage: { buffer: buf(o.bzimage) },
    initrd: { buffer: buf(o.initrd) },
    cmdline: o.cmdline,
    acpi: true,
    memory_size: o.mem * 1024 * 1024,
    vga_memory_size: 8 * 1024 * 1024,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    log_level: 0,
  });
  setTimeout(() => finish('timeout'), o.timeout * 1000).unref();

  const first = new V86({ ...options(), autostart: true });
  let out = '';
  const state = await new Promise((resolve, reject) => {
    first.add_listener('serial0-output-byte', (byte) => {
      out = (out + String.fromCharCode(byte)).slice(-256);
      if (out.endsWith(PROMPT)) {
        out = '';
        const s0 = performance.now();
        first.save_state().then((st) => {
          const saveMs = performance.now() - s0;
          const bytes = new Uint8Array(st);
          emit({ type: 'saved', bytes: bytes.length, deflatedBytes: deflateRawSync(bytes, { level: 1 }).length, saveMs });
          resolve(st);
        }, reject);
      }
    });
  });
  first.stop();
  first.destroy?.();

  const second = new V86({ ...options(), autostart: false });
  await new Promise((resolve) => second.add_listener('emulator-ready', resolve));
  const r0 = performance.now();
  await second.restore_state(state);
  const restoreMs = performance.now() - r0;
  let powerDownMs = null;
  second.add_listener('serial0-output-byte', (byte) => {
    out = (out + String.fromCharCode(byte)).slice(-256);
    if (powerDownMs === null && out.includes(POWER_DOWN)) {
      powerDownMs = performance.now() - r0;
      emit({ type: 'restored', restoreMs, powerDownMs });
      finish('ok', second);
    }
  });
  second.run();
  second.serial0_send('poweroff -f\n');
}

process.on('uncaughtException', (e) => finish(`error: ${e?.stack ?? e}`));
process.on('unhandledRejection', (e) => finish(`error: ${e?.stack ?? e}`));
main().catch((e) => finish(`error: ${e?.message ?? e}`));
