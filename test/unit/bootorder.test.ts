/**
 * core/bootorder.ts: QEMU's -boot letters and options, the CMOS bytes and fw_cfg files Debian's SeaBIOS
 * reads, device paths for the "bootorder" file — checked against qemu-system-i386 itself. A probe BIOS
 * (assembled here) prints the CMOS bytes, the fw_cfg items and every small fw_cfg file on the debug
 * console, resets the machine through the keyboard controller, and prints the CMOS boot bytes again (for
 * `once=`). It runs on QEMU with -boot options and bootindex devices, and on createPc() with the same
 * settings applied by applyBootConfig(); the outputs must agree.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyBootConfig,
  bootDevicePath,
  bootorderFile,
  BootOrderError,
  checkBootOrder,
  cmosBootBytes,
  describeBootOrder,
  parseBootOption,
  seabiosCmosPriorities,
  SEABIOS_DEFAULT_PRIO,
  DEFAULT_BOOT_ORDER,
  type BootConfig,
  type BootTarget,
} from '../../core/bootorder';
import { createPc } from '../../core/pc';
import { BufferSink } from '../../core/host';
import { loadBios } from '../../core/loader/bios';
import { FW_CFG_BOOT_MENU, FW_CFG_FILE_DIR } from '../../devices/fwcfg';
import { nasm } from '../helpers/asm';

// ---------------------------------------------------------------------------------------------------
// pure functions

describe('boot letters', () => {
  it('accepts what QEMU accepts for the PC and normalizes case', () => {
    for (const ok of ['c', 'd', 'a', 'b', 'n', 'cad', 'dc', 'DC', 'nda', 'cd']) expect(checkBootOrder(ok)).toBe(ok.toLowerCase());
    expect(DEFAULT_BOOT_ORDER).toBe('cad');
  });

  it('rejects what QEMU rejects, naming the problem', () => {
    const bad: [string, RegExp][] = [
      ['', /empty boot order/],
      ['cadn', /Too many boot devices for PC/],
      ['cc', /'c' was given twice/],
      ['x', /Invalid boot device 'x'/],
      ['e', /Invalid boot device for PC: 'e'/],
      ['c1', /Invalid boot device '1'/],
    ];
    for (const [text, re] of bad) {
      expect(() => checkBootOrder(text), text).toThrow(BootOrderError);
      expect(() => checkBootOrder(text), text).toThrow(re);
    }
  });

  it('encodes nibbles as QEMU does and SeaBIOS decodes them back to the same order', () => {
    const letters = ['a', 'c', 'd', 'n'];
    const kind: Record<string, 'floppy' | 'disk' | 'cdrom' | 'network'> = { a: 'floppy', c: 'disk', d: 'cdrom', n: 'network' };
    const orders: string[] = [];
    for (const x of letters) {
      orders.push(x);
      for (const y of letters) {
        if (y === x) continue;
        orders.push(x + y);
        for (const z of letters) if (z !== x && z !== y) orders.push(x + y + z);
      }
    }
    expect(orders.length).toBe(4 + 12 + 24);
    for (const order of orders) {
      for (const check of [true, false]) {
        const b = cmosBootBytes(checkBootOrder(order), check);
        const { prio, checkFloppySignature } = seabiosCmosPriorities(b.flag1, b.flag2);
        expect(checkFloppySignature).toBe(check);
        for (const k of ['floppy', 'disk', 'cdrom', 'network'] as const) {
          const pos = [...order].findIndex((ch) => kind[ch] === k);
          expect(prio[k], `${order} ${k}`).toBe(pos < 0 ? SEABIOS_DEFAULT_PRIO : 101 + pos);
        }
      }
    }
    // 'b' is a floppy too; the device encoder is lenient (unknown letters: no device; only three count)
    expect(cmosBootBytes('b')).toEqual(cmosBootBytes('a'));
    expect(cmosBootBytes('xcdna')).toEqual({ flag2: 0x20, flag1: 0x30 });
    expect(describeBootOrder('dca')).toBe('CD-ROM, hard disk, floppy');
  });
});

describe("QEMU's -boot option", () => {
  it('parses the short form and every key', () => {
    expect(parseBootOption('d')).toEqual({ order: 'd' });
    expect(parseBootOption('order=dc,once=n,menu=on,splash-time=500,strict=on,reboot-timeout=1000')).toEqual({
      order: 'dc',
      once: 'n',
      menu: true,
      menuWaitMs: 500,
      strict: true,
      rebootTimeoutMs: 1000,
    });
    expect(parseBootOption('dc,menu=off,reboot-timeout=-1')).toEqual({ order: 'dc', menu: false, rebootTimeoutMs: -1 });
    expect(parseBootOption('menu=on')).toEqual({ order: 'cad', menu: true });
  });

  it('rejects bad values with a message naming the key', () => {
    const bad: [string, RegExp][] = [
      ['menu=maybe', /menu=maybe: expected on or off/],
      ['splash-time=70000', /splash-time=70000: must be between 0 and 65535/],
      ['reboot-timeout=-2', /reboot-timeout=-2: must be between -1 and 65535/],
      ['reboot-timeout=1.5', /not a whole number/],
      ['foo=1', /unknown boot option 'foo'/],
      ['dc,xyz', /boot option 'xyz': expected key=value/],
      ['order=dd', /'d' was given twice/],
      ['once=q', /Invalid boot device 'q'/],
      ['once=e', /Invalid boot device for PC: 'e'/],
    ];
    for (const [text, re] of bad) expect(() => parseBootOption(text), text).toThrow(re);
  });
});

describe('bootorder file', () => {
  it('gives the device paths QEMU writes', () => {
    expect(bootDevicePath({ kind: 'ide', channel: 1, unit: 0 })).toBe('/pci@i0cf8/ide@1,1/drive@1/disk@0');
    expect(bootDevicePath({ kind: 'floppy', unit: 1 })).toBe('/pci@i0cf8/isa@1/fdc@03f0/floppy@1');
    expect(bootDevicePath({ kind: 'virtio-blk', slot: 10 })).toBe('/pci@i0cf8/scsi@a/disk@0,0');
    expect(bootDevicePath({ kind: 'scsi', slot: 5, fn: 2, target: 11, lun: 1 })).toBe('/pci@i0cf8/scsi@5,2/channel@0/disk@b,1');
    expect(bootDevicePath({ kind: 'pci-rom', slot: 3 })).toBe('/pci@i0cf8/ethernet@3');
    expect(bootDevicePath({ kind: 'named-rom', name: 'linuxboot_dma.bin' })).toBe('/rom@genroms/linuxboot_dma.bin');
    expect(() => bootDevicePath({ kind: 'ide', channel: 2, unit: 0 })).toThrow(/no IDE channel 2/);
    expect(() => bootDevicePath({ kind: 'virtio-blk', slot: 32 })).toThrow(/no PCI device 32/);
  });

  it('joins lines with newlines, ends with a NUL, adds HALT when strict, and is empty without devices', () => {
    const t: BootTarget[] = [{ kind: 'ide', channel: 0, unit: 0 }, { kind: 'floppy', unit: 0 }];
    const text = (b: Uint8Array) => String.fromCharCode(...b);
    expect(text(bootorderFile(t))).toBe('/pci@i0cf8/ide@1,1/drive@0/disk@0\n/pci@i0cf8/isa@1/fdc@03f0/floppy@0\0');
    expect(text(bootorderFile(t, true))).toBe('/pci@i0cf8/ide@1,1/drive@0/disk@0\n/pci@i0cf8/isa@1/fdc@03f0/floppy@0\nHALT\0');
    expect(bootorderFile([], true).length).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------
// on a PC: CMOS through ports 0x70/0x71, fw_cfg through 0x510/0x511, once= across a reset

function cmos(pc: ReturnType<typeof createPc>, i: number): number {
  pc.io.out8(0x70, i);
  return pc.io.in8(0x71);
}

function fwFile(pc: ReturnType<typeof createPc>, name: string): Uint8Array | null {
  const b = () => pc.io.in8(0x511);
  const be32 = () => ((b() << 24) | (b() << 16) | (b() << 8) | b()) >>> 0;
  pc.io.out16(0x510, FW_CFG_FILE_DIR);
  const n = be32();
  for (let i = 0; i < n; i++) {
    const size = be32();
    const select = (b() << 8) | b();
    b();
    b();
    let s = '';
    for (let c = 0; c < 56; c++) {
      const ch = b();
      if (ch) s += String.fromCharCode(ch);
    }
    if (s !== name) continue;
    pc.io.out16(0x510, select);
    const out = new Uint8Array(size);
    for (let k = 0; k < size; k++) out[k] = b();
    return out;
  }
  return null;
}

describe('applyBootConfig on a PC', () => {
  it('writes the CMOS bytes and the fw_cfg files SeaBIOS reads', () => {
    const pc = createPc({ memSize: 32 << 20, deterministic: true });
    // a PC as createPc makes it already looks like QEMU's default
    expect([cmos(pc, 0x3d), cmos(pc, 0x38)]).toEqual([0x12, 0x30]);
    expect(Array.from(fwFile(pc, 'bootorder')!)).toEqual([]);
    expect(Array.from(fwFile(pc, 'etc/boot-fail-wait')!)).toEqual([0xff, 0xff, 0xff, 0xff]);
    applyBootConfig(pc, { order: 'dc', menu: true, menuWaitMs: 500, rebootTimeoutMs: 1000, strict: true }, [
      { kind: 'ide', channel: 1, unit: 0 },
    ]);
    expect([cmos(pc, 0x3d), cmos(pc, 0x38)]).toEqual([0x23, 0x00]);
    expect(String.fromCharCode(...fwFile(pc, 'bootorder')!)).toBe('/pci@i0cf8/ide@1,1/drive@1/disk@0\nHALT\0');
    expect(Array.from(fwFile(pc, 'etc/boot-fail-wait')!)).toEqual([0xe8, 0x03, 0, 0]);
    expect(Array.from(fwFile(pc, 'etc/boot-menu-wait')!)).toEqual([0xf4, 0x01]);
    pc.io.out16(0x510, FW_CFG_BOOT_MENU);
    expect([pc.io.in8(0x511), pc.io.in8(0x511)]).toEqual([1, 0]);
    expect(() => applyBootConfig(pc, { order: 'cadn' })).toThrow(/Too many boot devices/);
    expect(() => applyBootConfig(pc, { rebootTimeoutMs: 70000 })).toThrow(/reboot timeout 70000/);
  });

  it('boots in the once= order first and in the normal order after a reset, also across a snapshot', () => {
    const pc = createPc({ memSize: 32 << 20, deterministic: true });
    applyBootConfig(pc, { order: 'c', once: 'd' });
    expect(cmos(pc, 0x3d)).toBe(0x03);
    const once = pc.machine.devices.find((d) => d.name === 'boot-once')!;
    const saved = JSON.parse(JSON.stringify(once.saveState!()));
    pc.machine.reset();
    expect(cmos(pc, 0x3d)).toBe(0x02);
    // a second reset keeps the normal order
    pc.io.out8(0x70, 0x3d);
    pc.io.out8(0x71, 0x03);
    pc.machine.reset();
    expect(cmos(pc, 0x3d)).toBe(0x03);
    // a snapshot taken before the first reset still switches at the next one
    once.loadState!(saved);
    pc.machine.reset();
    expect(cmos(pc, 0x3d)).toBe(0x02);
  });

  it('leaves a PC without fw_cfg with the CMOS bytes only', () => {
    const pc = createPc({ memSize: 32 << 20, deterministic: true, pci: false });
    applyBootConfig(pc, { order: 'n', checkFloppySignature: false });
    expect([cmos(pc, 0x3d), cmos(pc, 0x38)]).toEqual([0x04, 0x01]);
  });
});

// ---------------------------------------------------------------------------------------------------
// the oracle: the probe BIOS on QEMU and on x86vm

const PROBE = String.raw`
bits 16
org 0
MARK equ 0x0500
start:
  cli
  xor ax, ax
  mov ss, ax
  mov sp, 0x7000
  mov es, ax
  mov ax, 0xf000
  mov ds, ax
  cmp word [es:MARK], 0xb007
  je second
  mov word [es:MARK], 0xb007
  call dump_cmos
  call dump_items
  call dump_files
  mov si, s_reset
  call puts
  mov al, 0xfe            ; reset through the keyboard controller
  out 0x64, al
.w: hlt
  jmp .w
second:
  mov word [es:MARK], 0
  mov si, s_after
  call puts
  call dump_cmos
  mov si, s_done
  call puts
  mov al, 0
  out 0xf4, al
.h: hlt
  jmp .h

; "cmos 38=XX 3D=XX ..." for the bytes in cmos_list
dump_cmos:
  mov si, s_cmos
  call puts
  mov bx, cmos_list
.c: mov al, [bx]
  cmp al, 0xff
  je .e
  mov ah, al
  mov al, ' '
  call putc
  mov al, ah
  call hex8
  mov al, '='
  call putc
  mov al, ah
  out 0x70, al
  in al, 0x71
  call hex8
  inc bx
  jmp .c
.e: mov al, 10
  jmp putc

; "items 00=... " for the numbered fw_cfg items in item_list (key, length)
dump_items:
  mov si, s_items
  call puts
  mov bx, item_list
.i: mov ax, [bx]
  cmp ax, 0xffff
  je .e
  push ax
  mov al, ' '
  call putc
  pop ax
  call hex8
  push ax
  mov al, '='
  call putc
  pop ax
  mov dx, 0x510
  out dx, ax
  mov dx, 0x511
  mov cx, [bx+2]
.b: in al, dx
  call hex8
  loop .b
  add bx, 4
  jmp .i
.e: mov al, 10
  jmp putc

; the file directory: "file NAME SIZE" for each, then "NAME=bytes" for the files up to 256 bytes
dump_files:
  mov ax, 0x19
  mov dx, 0x510
  out dx, ax
  mov dx, 0x511
  xor bp, bp
  mov cx, 4
.n: shl bp, 8
  in al, dx
  mov ah, 0
  or bp, ax
  loop .n
  cmp bp, 100
  jbe .k
  mov bp, 100
.k: mov di, 0x1000
  mov bx, bp
.r: test bx, bx
  jz .l
  mov cx, 64
.rb: in al, dx
  stosb
  loop .rb
  dec bx
  jmp .r
.l: mov bx, 0x1000
  mov cx, bp
.p: jcxz .pd
  push cx
  mov si, s_file
  call puts
  lea si, [bx+8]
  call puts_es
  mov al, ' '
  call putc
  mov al, [es:bx+2]
  call hex8
  mov al, [es:bx+3]
  call hex8
  mov al, 10
  call putc
  pop cx
  add bx, 64
  dec cx
  jmp .p
.pd:
  mov bx, 0x1000
  mov cx, bp
.f: jcxz .fd
  push cx
  cmp word [es:bx], 0
  jne .next
  mov cx, [es:bx+2]
  xchg cl, ch
  cmp cx, 256
  ja .next
  lea si, [bx+8]
  call puts_es
  mov al, '='
  call putc
  mov ax, [es:bx+4]
  xchg al, ah
  mov dx, 0x510
  out dx, ax
  mov dx, 0x511
  mov cx, [es:bx+2]
  xchg cl, ch
.fb: jcxz .fe
  in al, dx
  cmp al, 32
  jb .np
  cmp al, 126
  jbe .pr
.np: push ax
  mov al, '<'
  call putc
  pop ax
  call hex8
  mov al, '>'
.pr: call putc
  dec cx
  jmp .fb
.fe: mov al, 10
  call putc
.next:
  pop cx
  add bx, 64
  dec cx
  jmp .f
.fd: ret

putc: out 0xe9, al
  ret
puts: lodsb
  test al, al
  jz .r
  call putc
  jmp puts
.r: ret
puts_es: mov al, [es:si]
  inc si
  test al, al
  jz .r
  call putc
  jmp puts_es
.r: ret
hex8: push ax
  shr al, 4
  call nib
  pop ax
  push ax
  and al, 15
  call nib
  pop ax
  ret
nib: add al, '0'
  cmp al, '9'
  jbe .o
  add al, 7
.o: jmp putc

cmos_list: db 0x38, 0x3d, 0x10, 0x14, 0x5f, 0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35, 0x5b, 0x5c, 0x5d, 0xff
item_list: dw 0x00, 4, 0x01, 4, 0x04, 2, 0x05, 2, 0x0c, 2, 0x0e, 2, 0x0f, 2, 0xffff
s_cmos: db 'cmos', 0
s_items: db 'items', 0
s_file: db 'file ', 0
s_reset: db 'reset', 10, 0
s_after: db 'after reset', 10, 0
s_done: db 'DONE', 10, 0

times 0xfff0 - ($ - $$) db 0xff
  jmp 0xf000:start
times 0x10000 - ($ - $$) db 0xff
`;

let dir = '';
let probe = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'x86vm-bootorder-'));
  probe = join(dir, 'probe.bin');
  writeFileSync(probe, nasm(PROBE));
  // small backing files for QEMU's bootindex devices
  writeFileSync(join(dir, 'disk.img'), new Uint8Array(1 << 20));
  writeFileSync(join(dir, 'cd.iso'), new Uint8Array(1 << 20));
  writeFileSync(join(dir, 'fd.img'), new Uint8Array(1474560));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** the probe on qemu-system-i386 (no -no-reboot: the probe resets once and ends through isa-debug-exit) */
function probeQemu(extra: string[]): Promise<string> {
  const log = join(dir, `qemu-${Math.random().toString(36).slice(2)}.log`);
  const args = ['-nodefaults', '-display', 'none', '-vga', 'none', '-accel', 'tcg', '-m', '32', '-bios', probe,
    '-debugcon', `file:${log}`, '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', ...extra];
  return new Promise((resolve, reject) => {
    const p = spawn('qemu-system-i386', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      const out = existsSync(log) ? readFileSync(log, 'latin1') : '';
      if (code !== 1) reject(new Error(`qemu exited with ${code}: ${err}\n${out}`));
      else resolve(out);
    });
  });
}

/** the probe on x86vm: createPc with the boot configuration applied as a host would */
function probeX86vm(cfg: Partial<BootConfig> | null, targets: BootTarget[] = []): string {
  const out = new BufferSink();
  const pc = createPc({ memSize: 32 << 20, deterministic: true, debugcon: out });
  if (cfg) applyBootConfig(pc, cfg, targets);
  loadBios(pc.mem, new Uint8Array(readFileSync(probe)));
  for (let i = 0; i < 200 && !pc.machine.stopReason; i++) pc.machine.run(1_000_000);
  const stop = pc.machine.stopReason;
  expect(stop, out.text()).toMatchObject({ kind: 'exit', code: 1 });
  return out.text();
}

/** the lines about booting: CMOS and items (all of them), the boot files, the second CMOS dump */
function bootLines(text: string, withCmos = true): string[] {
  const keep = /^(cmos |items |after reset|bootorder=|etc\/boot-fail-wait=|etc\/boot-menu-wait=|DONE)/;
  return text
    .split('\n')
    .filter((l) => keep.test(l))
    .filter((l) => withCmos || !/^(cmos|items)/.test(l));
}

describe('against QEMU (probe BIOS)', () => {
  const cases: { name: string; qemu: string[]; cfg: Partial<BootConfig> | null }[] = [
    { name: 'the default order', qemu: [], cfg: null },
    { name: '-boot d', qemu: ['-boot', 'd'], cfg: parseBootOption('d') },
    { name: '-boot dca', qemu: ['-boot', 'dca'], cfg: parseBootOption('dca') },
    { name: '-boot n -no-fd-bootchk', qemu: ['-boot', 'n', '-no-fd-bootchk'], cfg: { ...parseBootOption('n'), checkFloppySignature: false } },
    {
      name: 'menu, splash time, reboot timeout',
      qemu: ['-boot', 'order=c,menu=on,splash-time=500,reboot-timeout=1000'],
      cfg: parseBootOption('order=c,menu=on,splash-time=500,reboot-timeout=1000'),
    },
    { name: 'once=d (then c after the reset)', qemu: ['-boot', 'order=c,once=d'], cfg: parseBootOption('order=c,once=d') },
  ];
  for (const c of cases) {
    it(`agrees on ${c.name}`, async () => {
      const q = await probeQemu(c.qemu);
      const x = probeX86vm(c.cfg);
      const ql = bootLines(q);
      expect(ql.length, q).toBeGreaterThanOrEqual(6);
      expect(ql.some((l) => l.startsWith('bootorder='))).toBe(true);
      expect(bootLines(x)).toEqual(ql);
    });
  }

  it('agrees on the bootorder file for devices with boot indexes (IDE, floppy, virtio-blk, virtio-scsi; strict)', async () => {
    const q = await probeQemu([
      '-drive', `file=${join(dir, 'cd.iso')},format=raw,if=none,id=c0,readonly=on`, '-device', 'ide-cd,drive=c0,bus=ide.1,unit=0,bootindex=1',
      '-drive', `file=${join(dir, 'disk.img')},format=raw,if=none,id=d0,snapshot=on`, '-device', 'ide-hd,drive=d0,bus=ide.0,unit=1,bootindex=2',
      '-drive', `file=${join(dir, 'disk.img')},format=raw,if=none,id=v0,snapshot=on`, '-device', 'virtio-blk-pci,drive=v0,addr=4,bootindex=3',
      '-device', 'virtio-scsi-pci,id=s0,addr=5',
      '-drive', `file=${join(dir, 'disk.img')},format=raw,if=none,id=v1,snapshot=on`, '-device', 'scsi-hd,drive=v1,bus=s0.0,scsi-id=2,lun=0,bootindex=4',
      '-drive', `file=${join(dir, 'fd.img')},format=raw,if=floppy,snapshot=on`, '-global', 'isa-fdc.bootindexA=5',
      '-boot', 'strict=on',
    ]);
    const x = probeX86vm(parseBootOption('strict=on'), [
      { kind: 'ide', channel: 1, unit: 0 },
      { kind: 'ide', channel: 0, unit: 1 },
      { kind: 'virtio-blk', slot: 4 },
      { kind: 'scsi', slot: 5, target: 2 },
      { kind: 'floppy', unit: 0 },
    ]);
    const ql = bootLines(q, false);
    expect(ql.find((l) => l.startsWith('bootorder='))).toMatch(/drive@1\/disk@0<0A>.*HALT<00>$/);
    expect(bootLines(x, false)).toEqual(ql);
  });
});
