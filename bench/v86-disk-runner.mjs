// Boots a Linux bzImage + initrd on v86 (the npm package) in this Node process
// with a raw disk image as its first IDE disk (v86's `hda: { buffer }`), types
// TEXT once the shell prompt appears on COM1, and reports on stdout, one JSON
// object per line:
//   {"type":"ready","t":ms}                  emulator created, about to run
//   {"type":"prompt","t":ms}                 the prompt first appeared on COM1
//   {"type":"line","t":ms,"text":"…"}        one line of serial output after the prompt
//   {"type":"poweroff","t":ms}               the kernel printed "reboot: Power down"
//   {"type":"disk","t":ms,"sha256":"…","bytes":n}
//                                            the disk image as the run left it (v86 writes
//                                            into the buffer it was given)
//   {"type":"exit","t":ms,"reason":"…"}      reason: stopped | poweroff | timeout | error: …
// t is milliseconds since this script started. With --log FILE, the raw serial
// output is written to FILE at the end. The image file itself is not changed.
//
// Usage: node bench/v86-disk-runner.mjs --bzimage K --initrd I --hda IMAGE
//        [--cmdline STR] [--mem MiB] [--timeout S] [--no-jit] [--prompt STR]
//        [--send TEXT] [--log FILE]
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';

const t0 = performance.now();
const now = () => Math.round((performance.now() - t0) * 1000) / 1000;
const emit = (obj) => process.stdout.write(JSON.stringify({ ...obj, t: now() }) + '\n');
// The line the kernel prints right before it turns the machine off.
const POWER_DOWN = 'reboot: Power down';

function parseArgs(argv) {
  const opts = { bzimage: '', initrd: '', hda: '', cmdline: 'console=ttyS0', mem: 128, timeout: 300, jit: true,
    prompt: 'x86vm:/# ', send: 'poweroff -f\n', log: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--bzimage') opts.bzimage = next();
    else if (a === '--initrd') opts.initrd = next();
    else if (a === '--hda') opts.hda = next();
    else if (a === '--cmdline') opts.cmdline = next();
    else if (a === '--mem') opts.mem = Number(next());
    else if (a === '--timeout') opts.timeout = Number(next());
    else if (a === '--no-jit') opts.jit = false;
    else if (a === '--prompt') opts.prompt = next();
    else if (a === '--send') opts.send = next();
    else if (a === '--log') opts.log = next();
    else throw new Error(`unknown option ${a}`);
  }
  if (!opts.bzimage || !opts.initrd || !opts.hda) throw new Error('--bzimage, --initrd and --hda are required');
  return opts;
}

let finished = false;
let output = '';
let logPath = null;
let disk = null;
function finish(reason, emulator) {
  if (finished) return;
  finished = true;
  try { emulator?.stop(); } catch { /* ignore */ }
  if (disk && (reason === 'stopped' || reason === 'poweroff')) {
    emit({ type: 'disk', sha256: createHash('sha256').update(disk).digest('hex'), bytes: disk.byteLength });
  }
  emit({ type: 'exit', reason });
  if (logPath) {
    try { writeFileSync(logPath, output, 'latin1'); } catch { /* ignore */ }
  }
  process.exitCode = reason === 'stopped' || reason === 'poweroff' ? 0 : 1;
  // v86 keeps timers and (with the JIT) worker threads alive; leave at once.
  setImmediate(() => process.exit());
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  logPath = opts.log;
  const require = createRequire(import.meta.url);
  const v86Main = require.resolve('v86');
  const wasmPath = join(dirname(v86Main), 'v86.wasm');
  const { V86 } = await import(v86Main);

  const toArrayBuffer = (path) => {
    const b = readFileSync(path);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  };
  const hda = toArrayBuffer(opts.hda);
  disk = new Uint8Array(hda);

  const origLog = console.log;
  console.log = (...args) => origLog(...args.map(String).map((s) => `[v86] ${s}`));

  const emulator = new V86({
    wasm_path: wasmPath,
    bios: { buffer: toArrayBuffer('/usr/share/seabios/bios.bin') },
    vga_bios: { buffer: toArrayBuffer('/usr/share/seabios/vgabios-stdvga.bin') },
    bzimage: { buffer: toArrayBuffer(opts.bzimage) },
    initrd: { buffer: toArrayBuffer(opts.initrd) },
    hda: { buffer: hda },
    cmdline: opts.cmdline,
    acpi: true,
    memory_size: opts.mem * 1024 * 1024,
    vga_memory_size: 8 * 1024 * 1024,
    autostart: true,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    disable_jit: !opts.jit,
    log_level: 0,
  });

  let sawPrompt = false;
  let sawPowerDown = false;
  let line = '';
  emulator.add_listener('serial0-output-byte', (byte) => {
    const ch = String.fromCharCode(byte);
    output += ch;
    if (!sawPrompt) {
      if (output.endsWith(opts.prompt)) {
        sawPrompt = true;
        emit({ type: 'prompt' });
        emulator.serial0_send(opts.send);
      }
      return;
    }
    if (byte !== 10) {
      line += ch;
      return;
    }
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    line = '';
    emit({ type: 'line', text });
    if (!sawPowerDown && text.includes(POWER_DOWN)) {
      sawPowerDown = true;
      emit({ type: 'poweroff' });
      // If v86 does not stop the CPU on ACPI S5, the guest halts for good
      // right after this line: give it a moment, then end the run.
      setTimeout(() => finish('poweroff', emulator), 200);
    }
  });
  emulator.add_listener('emulator-ready', () => emit({ type: 'ready' }));
  emulator.add_listener('emulator-stopped', () => {
    if (!finished) setTimeout(() => finish('stopped', emulator), 50);
  });
  setTimeout(() => finish('timeout', emulator), opts.timeout * 1000).unref();
}

process.on('uncaughtException', (e) => {
  emit({ type: 'exit', reason: `error: ${e?.stack ?? e}` });
  process.exit(1);
});
process.on('unhandledRejection', (e) => {
  emit({ type: 'exit', reason: `error: ${e?.stack ?? e}` });
  process.exit(1);
});

main().catch((e) => {
  emit({ type: 'exit', reason: `error: ${e?.message ?? e}` });
  process.exit(1);
});
