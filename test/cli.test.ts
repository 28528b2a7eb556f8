/**
 * The x86vm command line, run as users run it: `node dist/x86vm.mjs run …` after `node scripts/build.mjs`.
 * Usage errors (exit 2, one line, no stack trace), and tiny nasm-built BIOS images and Multiboot kernels
 * that exercise the devices, the exit statuses and the limits end to end.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runVm, type VmControl } from '../node/run';
import { parseCommandLine, parseMemSize, type RunOptions } from '../node/options';

const ROOT = resolve(__dirname, '..');
/** X86VM_CLI may point at another build of the CLI (the default is the one this test builds) */
const BIN = process.env.X86VM_CLI ?? join(ROOT, 'dist', 'x86vm.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'x86vm-cli-'));

beforeAll(() => {
  if (!process.env.X86VM_CLI) execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT });
  expect(existsSync(BIN)).toBe(true);
});

function x86vm(args: string[], input = ''): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, ...args], { input, encoding: 'utf8', timeout: 60_000 });
}

let counter = 0;
function file(name: string, data: string | Uint8Array): string {
  const p = join(tmp, `${counter++}-${name}`);
  writeFileSync(p, data);
  return p;
}

function nasm(source: string): string {
  const src = file('prog.asm', source);
  const out = src.replace(/\.asm$/, '.bin');
  execFileSync('nasm', ['-f', 'bin', '-o', out, src]);
  return out;
}

/** a 64 KiB BIOS image: `body` runs in real mode at F000:0000 after the reset vector's far jump */
function bios(body: string): string {
  return nasm(`
bits 16
org 0
start:
  cli
  xor ax, ax
  mov ss, ax
  mov sp, 0x7000
${body}
  jmp $
times 0x10000 - 16 - ($ - $$) db 0
reset:
  jmp 0xF000:start
times 0x10000 - ($ - $$) db 0
`);
}

const SERIAL_PUTS = `
; prints the zero-terminated string at cs:si on COM1, polling LSR.THRE
puts:
  cs lodsb
  test al, al
  jz .done
  mov bl, al
  mov dx, 0x3FD
.wait:
  in al, dx
  test al, 0x20
  jz .wait
  mov dx, 0x3F8
  mov al, bl
  out dx, al
  jmp puts
.done:
  ret
`;

function expectUsageError(r: SpawnSyncReturns<string>, pattern: RegExp): void {
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/^x86vm: /);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('x86vm usage', () => {
  it('prints help', () => {
    const top = x86vm(['--help']);
    expect(top.status).toBe(0);
    expect(top.stdout).toMatch(/Usage:/);
    expect(top.stdout).toMatch(/x86vm run/);
    const run = x86vm(['run', '--help']);
    expect(run.status).toBe(0);
    for (const opt of ['--bios', '--kernel', '--append', '--mem', '--serial', '--debugcon', '--post-log', '--timeout', '--max-instructions', '--deterministic', '--no-reboot']) {
      expect(run.stdout).toContain(opt);
    }
    // a VM described by a vm.json (x86vm create makes one)
    expect(top.stdout).toMatch(/x86vm run VM \[options\]/);
    expect(top.stdout).toMatch(/x86vm create DIR/);
    expect(run.stdout).toMatch(/x86vm run VM \[options\]/);
    expect(run.stdout).toMatch(/VM is a vm\.json, or a folder holding one \(x86vm create DIR makes one\)/);
    const create = x86vm(['create', '--help']);
    expect(create.status).toBe(0);
    expect(create.stdout).toMatch(/^Usage: x86vm create DIR \[options\]/);
    for (const opt of ['--disk SIZE', 'format=vhd', 'interface=ide|virtio-blk|virtio-scsi', '--memory', '--cdrom', '--copy-cdrom', '--kernel', '--initrd', '--append', '--bios seabios|FILE', '--nic', '--boot']) {
      expect(create.stdout).toContain(opt);
    }
  });

  it('rejects an unknown flag with exit 2 and no stack trace', () => {
    expectUsageError(x86vm(['run', '--frobnicate']), /--frobnicate/);
    expectUsageError(x86vm(['--frobnicate']), /--frobnicate/);
    expectUsageError(x86vm(['fly']), /unknown command 'fly'/);
    expectUsageError(x86vm([]), /no command/);
  });

  it('rejects bad option values', () => {
    const k = file('dummy', 'x');
    expectUsageError(x86vm(['run', '--kernel', k, '--mem', 'lots']), /--mem/);
    expectUsageError(x86vm(['run', '--kernel', k, '--mem', '3G']), /--mem.*between 1 MiB/);
    expectUsageError(x86vm(['run', '--kernel', k, '--mem', '512K']), /--mem/);
    expectUsageError(x86vm(['run', '--kernel', k, '--serial', 'tcp:1234']), /--serial/);
    expectUsageError(x86vm(['run', '--kernel', k, '--timeout', '-1']), /--timeout/);
    expectUsageError(x86vm(['run', '--kernel', k, '--max-instructions', '1.5']), /--max-instructions/);
    expectUsageError(x86vm(['run', '--kernel']), /--kernel/);
  });

  it('boots the default Linux guest when given neither --kernel nor --bios', () => {
    const cmd = parseCommandLine(['run']);
    expect(cmd.command).toBe('run');
    if (cmd.command === 'run') {
      expect(cmd.options.defaultGuest).toBe(true);
      expect(cmd.options.kernel).toBeUndefined();
    }
    expect(parseCommandLine(['run', '--kernel', 'k']).command === 'run' &&
      (parseCommandLine(['run', '--kernel', 'k']) as { options: RunOptions }).options.defaultGuest).toBeFalsy();
  });

  it('names a missing or unreadable file', () => {
    const missing = join(tmp, 'no-such-kernel.elf');
    expectUsageError(x86vm(['run', '--kernel', missing]), new RegExp(`${missing}.*no such file`));
    expectUsageError(x86vm(['run', '--bios', join(tmp, 'nope.bin')]), /nope\.bin/);
    expectUsageError(x86vm(['run', '--kernel', tmp]), /directory/);
    const b = bios('');
    expectUsageError(x86vm(['run', '--bios', b, '--debugcon', join(tmp, 'no', 'dir', 'out')]), /debugcon.*no such file/);
  });

  it('refuses a file that is not a Multiboot kernel, naming it', () => {
    const junk = file('junk.bin', new Uint8Array(20000).fill(0x90));
    expectUsageError(x86vm(['run', '--kernel', junk]), new RegExp(`${junk}.*neither a Linux bzImage nor a Multiboot kernel`));
    const linux = new Uint8Array(0x4000);
    linux.set([0x55, 0xaa], 0x1fe);
    linux.set([0x48, 0x64, 0x72, 0x53], 0x202); // "HdrS"
    const lk = file('bzImage', linux);
    // a Linux header that is too short / too old is named with the reason
    expectUsageError(x86vm(['run', '--kernel', lk]), new RegExp(`kernel '${lk}': `));
    // an initrd needs a Linux kernel
    expectUsageError(x86vm(['run', '--kernel', junk, '--initrd', junk]), /--initrd .* is not a Linux kernel/);
  });

  it('refuses a BIOS image of the wrong size', () => {
    expectUsageError(x86vm(['run', '--bios', file('small.rom', new Uint8Array(4096))]), /64, 128, 192 or 256 KiB/);
    expectUsageError(x86vm(['run', '--bios', file('odd.rom', new Uint8Array(100000))]), /100000 bytes/);
    expectUsageError(x86vm(['run', '--bios', file('huge.rom', new Uint8Array(512 * 1024))]), /BIOS/);
  });
});

// ---- these run guest code: they need the CPU's instruction set ----

describe('x86vm run (guest code)', () => {
  it('runs a BIOS from the reset vector: debugcon output and isa-debug-exit status', () => {
    const b = bios(`
  mov al, 'h'
  out 0xE9, al
  mov al, 'i'
  out 0xE9, al
  mov eax, 0x1234
  out 0xF4, eax      ; QEMU (iosize=4) exits with (0x2469 & 0xff) = 105
`);
    const dc = join(tmp, 'hi.debugcon');
    const r = x86vm(['run', '--bios', b, '--debugcon', dc]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(105);
    expect(readFileSync(dc, 'latin1')).toBe('hi');
  });

  it('maps the BIOS below 4 GiB and its last 128 KiB below 1 MiB', () => {
    // 256 KiB image: a marker at its first byte (0xFFFC0000) and one at offset 128 KiB (0xE0000)
    const src = `
bits 16
org 0
  db 'M1'
times 0x20000 - ($ - $$) db 0
  db 'M2'
times 0x30000 - ($ - $$) db 0
start:
  cli
  mov ax, 0xE000
  mov ds, ax
  mov al, [0]          ; 'M' from 0xE0000 (isa-bios mirror of offset 128 KiB)
  out 0xE9, al
  mov al, [1]
  out 0xE9, al
  mov ax, 0xF000
  mov ds, ax
  mov al, [0xFFF0]     ; the reset vector's first byte (EA: far jmp) mirrored at 0xFFFF0
  out 0xE9, al
  mov al, 0
  out 0xF4, al
times 0x40000 - 16 - ($ - $$) db 0
  jmp 0xF000:(start - 0x30000)
times 0x40000 - ($ - $$) db 0
`;
    const b = nasm(src);
    const dc = join(tmp, 'map.debugcon');
    const r = x86vm(['run', '--bios', b, '--debugcon', dc]);
    expect(r.status).toBe(1);
    expect(Array.from(readFileSync(dc))).toEqual([0x4d, 0x32, 0xea]);
  });

  it('sends COM1 output to stdout, a file, or nowhere', () => {
    const b = bios(`
  mov si, msg
  call puts
  mov al, 0
  out 0xF4, al
  jmp $
${SERIAL_PUTS}
msg: db 'hello, serial', 13, 10, 0
`);
    const r = x86vm(['run', '--bios', b]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('hello, serial\r\n');
    const out = join(tmp, 'serial.txt');
    const f = x86vm(['run', '--bios', b, '--serial', `file:${out}`]);
    expect(f.status).toBe(1);
    expect(f.stdout).toBe('');
    expect(readFileSync(out, 'latin1')).toBe('hello, serial\r\n');
    const n = x86vm(['run', '--bios', b, '--serial', 'none']);
    expect(n.status).toBe(1);
    expect(n.stdout).toBe('');
  });

  it('feeds stdin to the COM1 receiver', () => {
    const b = bios(`
.next:
  mov dx, 0x3FD
.wait:
  in al, dx
  test al, 1
  jz .wait
  mov dx, 0x3F8
  in al, dx
  out 0xE9, al
  cmp al, 10
  jne .next
  mov al, 2
  out 0xF4, al
`);
    const dc = join(tmp, 'echo.debugcon');
    const r = x86vm(['run', '--bios', b, '--debugcon', dc, '--timeout', '30'], 'typed input\nnot read');
    expect(r.status).toBe(5);
    expect(readFileSync(dc, 'latin1')).toBe('typed input\n');
  });

  it('plays a console script: --expect/--send pairs in order, and --script FILE', () => {
    // prints a prompt, echoes one line to port 0xE9, prints a second prompt, echoes one more line, exits
    const echoLine = `
.next%:
  mov dx, 0x3FD
.wait%:
  in al, dx
  test al, 1
  jz .wait%
  mov dx, 0x3F8
  in al, dx
  out 0xE9, al
  cmp al, 10
  jne .next%
`;
    const b = bios(`
  mov si, prompt1
  call puts
${echoLine.replace(/%/g, '1')}
  mov si, prompt2
  call puts
${echoLine.replace(/%/g, '2')}
  mov al, 2
  out 0xF4, al
  jmp $
prompt1: db 'login: ', 0
prompt2: db 'second? ', 0
${SERIAL_PUTS}`);
    const dc = join(tmp, 'script.debugcon');
    const r = x86vm(['run', '--bios', b, '--debugcon', dc, '--timeout', '30', '--serial', 'none',
      '--expect', 'login:', '--send', 'root\\n', '--expect', 'second\\?', '--send', 'two\\n']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(5);
    expect(readFileSync(dc, 'latin1')).toBe('root\ntwo\n');

    const sc = file('session.txt', '# a session\nexpect login:\nsend abc\\n\nexpect second\nsend def\\n\n');
    const dc2 = join(tmp, 'script2.debugcon');
    const r2 = x86vm(['run', '--bios', b, '--debugcon', dc2, '--timeout', '30', '--serial', 'none', '--script', sc]);
    expect(r2.status).toBe(5);
    expect(readFileSync(dc2, 'latin1')).toBe('abc\ndef\n');

    // an expect that never matches is named when the run times out
    const r3 = x86vm(['run', '--bios', b, '--timeout', '2', '--serial', 'none', '--expect', 'never printed']);
    expect(r3.status).toBe(124);
    expect(r3.stderr).toMatch(/still waiting for --expect 'never printed'/);

    // a bad regular expression is a usage error
    const r4 = x86vm(['run', '--bios', b, '--expect', '(unclosed']);
    expect(r4.status).toBe(2);
    expect(r4.stderr).toMatch(/^x86vm: --expect: not a valid regular expression/);
  });

  it('logs POST codes from ports 0x80 and 0x190, one byte per write', () => {
    const b = bios(`
  mov al, 0x01
  out 0x80, al
  mov al, 0x02
  out 0x80, al
  mov dx, 0x190
  mov al, 0x03
  out dx, al
  mov ax, 0x5504
  out 0x80, ax
  mov al, 0
  out 0xF4, al
`);
    const log = join(tmp, 'post.log');
    const r = x86vm(['run', '--bios', b, '--post-log', log]);
    expect(r.status).toBe(1);
    expect(Array.from(readFileSync(log))).toEqual([1, 2, 3, 4]);
  });

  it("writes the firmware's debug log (port 0x402) with --firmware-log: SeaBIOS's own messages", () => {
    const log = join(tmp, 'firmware.log');
    // SeaBIOS probes 0x402 (reads back 0xE9) and logs its start-up there; with no disk it ends in its
    // "No bootable device" wait (halted, timers armed), so the run ends at the time limit
    const r = x86vm(['run', '--bios', '/usr/share/seabios/bios.bin', '--vga', 'none', '--serial', 'none',
      '--firmware-log', log, '--timeout', '15']);
    expect(r.status).toBe(124);
    const text = readFileSync(log, 'latin1');
    expect(text).toMatch(/^SeaBIOS \(version [^)]+\)/m);
    expect(text).toMatch(/Found 3 PCI devices/);
    expect(text).toMatch(/No bootable device\./);
    // without the flag nothing answers at 0x402, so SeaBIOS does not log: a plain debugcon at 0xE9 stays empty
    const e9 = join(tmp, 'e9.log');
    const r2 = x86vm(['run', '--bios', '/usr/share/seabios/bios.bin', '--vga', 'none', '--serial', 'none',
      '--debugcon', e9, '--timeout', '5']);
    expect(r2.status).toBe(124);
    expect(existsSync(e9)).toBe(true);
    expect(readFileSync(e9, 'latin1')).not.toMatch(/SeaBIOS/);
  });

  it('--firmware-log works on --restore too: the log goes on where the snapshot left it', () => {
    const log1 = join(tmp, 'fw-before.log');
    const log2 = join(tmp, 'fw-after.log');
    const snap = join(tmp, 'fw.snap');
    const saved = x86vm(['run', '--bios', '/usr/share/seabios/bios.bin', '--vga', 'none', '--serial', 'none',
      '--firmware-log', log1, '--save-state', snap, '--save-at', '3000000']);
    expect(saved.status, saved.stderr).toBe(0);
    const before = readFileSync(log1, 'latin1');
    expect(before).toMatch(/^SeaBIOS \(version/m);
    expect(before).not.toMatch(/No bootable device/);
    const r = x86vm(['run', '--restore', snap, '--serial', 'none', '--firmware-log', log2, '--timeout', '8']);
    expect(r.status, r.stderr).toBe(124);
    const after = readFileSync(log2, 'latin1');
    expect(after).not.toMatch(/SeaBIOS \(version/);
    expect(after).toMatch(/No bootable device\./);
  });

  it('exits 3 when the CPU halts with interrupts disabled', () => {
    const r = x86vm(['run', '--bios', bios('  cli\n  hlt')]);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/halted/);
    expect(r.stderr).toMatch(/interrupts disabled/);
  });

  it('exits 124 at the instruction limit or the time limit', () => {
    const b = bios('');
    const lim = x86vm(['run', '--bios', b, '--max-instructions', '5000']);
    expect(lim.status).toBe(124);
    expect(lim.stderr).toMatch(/stopped after 5000 instructions/);
    const t0 = Date.now();
    const to = x86vm(['run', '--bios', b, '--timeout', '0.5']);
    expect(to.status).toBe(124);
    expect(to.stderr).toMatch(/timed out/);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('stops on a triple fault with --no-reboot (exit 4) and reboots without it', () => {
    // an IDT limit of 0 makes INT 3 fault, then #GP, then #DF: a triple fault
    const b = bios(`
  mov al, 0x11
  out 0x80, al
  lidt [cs:idt0]
  int3
  jmp $
idt0: dw 0
      dd 0
`);
    const r = x86vm(['run', '--bios', b, '--no-reboot']);
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/triple fault/);
    const log = join(tmp, 'reboot.log');
    const rb = x86vm(['run', '--bios', b, '--post-log', log, '--max-instructions', '200']);
    expect(rb.status).toBe(124);
    const codes = Array.from(readFileSync(log));
    expect(codes.length).toBeGreaterThan(3); // it went through the reset vector again and again
    expect(codes.every((c) => c === 0x11)).toBe(true);
  });

  it('boots a Multiboot kernel with a command line (as QEMU passes it: "FILE ARGS")', () => {
    const k = nasm(`
bits 32
org 0x100000
hdr:
  dd 0x1BADB002, 0x00010000, -(0x1BADB002 + 0x00010000)
  dd hdr, hdr, end, end, start
start:
  cmp eax, 0x2BADB002
  jne .bad
  mov esi, [ebx + 16]
.print:
  lodsb
  test al, al
  jz .done
  out 0xE9, al
  jmp .print
.done:
  mov eax, [ebx + 8]
  shr eax, 10
  add al, '0'
  out 0xE9, al     ; mem_upper in MiB: (16 - 1) → '?'-ish; checked below
  mov al, 0x10
  out 0xF4, al
.bad:
  mov al, 0x7f
  out 0xF4, al
end:
`);
    const dc = join(tmp, 'mb.debugcon');
    const r = x86vm(['run', '--kernel', k, '--append', 'console=ttyS0 quiet', '--mem', '16M', '--debugcon', dc]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0x21);
    expect(readFileSync(dc, 'latin1')).toBe(`${k} console=ttyS0 quiet${String.fromCharCode(0x30 + 15)}`);
  });

  it('runs deterministically with --deterministic', () => {
    const b = bios(`
  rdtsc
  mov cx, 8
.l:
  rol eax, 4
  mov bl, al
  and bl, 0x0F
  add bl, 'a'
  xchg al, bl
  out 0xE9, al
  xchg al, bl
  loop .l
  mov al, 0
  out 0xF4, al
`);
    const a = join(tmp, 'det-a'), c = join(tmp, 'det-b');
    expect(x86vm(['run', '--bios', b, '--deterministic', '--max-instructions', '1000000', '--debugcon', a]).status).toBe(1);
    expect(x86vm(['run', '--bios', b, '--deterministic', '--max-instructions', '1000000', '--debugcon', c]).status).toBe(1);
    expect(readFileSync(a, 'latin1')).toHaveLength(8);
    expect(readFileSync(a, 'latin1')).toBe(readFileSync(c, 'latin1'));
  });
});

describe('runVm (in-process)', () => {
  function opts(args: string[]): RunOptions {
    const c = parseCommandLine(['run', ...args]);
    if (c.command !== 'run') throw new Error('not a run command');
    return c.options;
  }

  it('parses sizes like QEMU users write them', () => {
    expect(parseMemSize('32M')).toBe(32 << 20);
    expect(parseMemSize('1G')).toBe(1 << 30);
    expect(parseMemSize('1GiB')).toBe(1 << 30);
    expect(parseMemSize('64')).toBe(64 << 20);
    expect(parseMemSize('2048K')).toBe(2 << 20);
    expect(parseMemSize('1.5M')).toBe(1.5 * (1 << 20));
    expect(opts(['--kernel', 'k']).memSize).toBe(128 << 20);
    expect(opts(['--kernel', 'k']).serial).toEqual({ kind: 'stdio' });
    expect(opts(['--kernel', 'k', '--serial', 'file:/x/y']).serial).toEqual({ kind: 'file', path: '/x/y' });
  });

  it('returns serial output to the host callback and the exit status', async () => {
    const b = bios(`
  mov si, msg
  call puts
  mov al, 3
  out 0xF4, al
  jmp $
${SERIAL_PUTS}
msg: db 'in-process', 0
`);
    const chunks: Uint8Array[] = [];
    const res = await runVm(opts(['--bios', b]), { stdout: (bytes) => chunks.push(bytes) });
    expect(res.exitCode).toBe(7);
    expect(res.message).toBeUndefined();
    expect(Buffer.concat(chunks).toString('latin1')).toBe('in-process');
    expect(res.stopReason).toMatchObject({ kind: 'exit', code: 7 });
    expect(res.instructions).toBeGreaterThan(10);
  });

  it('sleeps instead of spinning while the guest waits in HLT with interrupts enabled', async () => {
    const res = await runVm(opts(['--bios', bios('  sti\n  hlt\n  jmp $'), '--timeout', '0.4']));
    expect(res.exitCode).toBe(124);
    expect(res.wallSeconds).toBeGreaterThanOrEqual(0.4);
    expect(res.instructions).toBeLessThan(100);
  });

  it('lets the host stop the run and feed input', async () => {
    const b = bios(`
.wait:
  mov dx, 0x3FD
  in al, dx
  test al, 1
  jz .wait
  mov dx, 0x3F8
  in al, dx
  out 0xF4, al
`);
    let vm: VmControl | undefined;
    const run = runVm(opts(['--bios', b, '--serial', 'none']), { onReady: (v) => (vm = v) });
    await new Promise((r) => setTimeout(r, 50));
    vm!.input([0x20]);
    const res = await run;
    expect(res.exitCode).toBe(0x41);
    const spin = runVm(opts(['--bios', bios(''), '--serial', 'none']), { onReady: (v) => (vm = v) });
    await new Promise((r) => setTimeout(r, 50));
    vm!.stop(42, 'stopped by the test');
    expect(await spin).toMatchObject({ exitCode: 42, message: 'stopped by the test' });
  });

  it('reports a bug in a device as an internal error with CS:EIP (exit 70)', async () => {
    const b = bios(`
  mov dx, 0x2a0
  in al, dx
`);
    const res = await runVm(opts(['--bios', b, '--serial', 'none']), {
      onReady: (vm) =>
        vm.machine.io.register('buggy', 0x2a0, 1, {
          read8: () => {
            throw new TypeError('oops');
          },
        }),
    });
    expect(res.exitCode).toBe(70);
    expect(res.message).toMatch(/^x86vm: internal error: oops \(at CS:EIP=f000:0000000[0-9a-f]\)$/);
    expect(res.detail).toMatch(/TypeError: oops/);
  });

  it('turns unreadable input into exit 2, not an exception', async () => {
    const res = await runVm(opts(['--kernel', join(tmp, 'absent.elf')]));
    expect(res.exitCode).toBe(2);
    expect(res.message).toMatch(/absent\.elf.*no such file/);
  });
});
