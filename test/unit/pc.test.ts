/**
 * Tests of the PC platform builder (core/pc.ts): the standard devices and their wiring, and a tiny
 * real-mode program that programs the PIC and the PIT, takes timer interrupts in a handler and checks
 * their number and timing (TSC from the same clock) in deterministic mode.
 */
import { describe, it, expect } from 'vitest';
import { createPc, tscTicks, type Pc } from '../../core/pc';
import { CS, DS, ES, SS, FS, GS } from '../../core/defs';
import { BufferSink } from '../../core/host';
import { pitNs } from '../../devices/pit';
import { nasm } from '../helpers/asm';

const TICKS = 20;
const COUNT = 1193;

function loadReal(pc: Pc, src: string): void {
  const code = nasm(`bits 16\norg 0x7c00\n${src}\n`);
  pc.mem.load(0x7c00, code);
  const cpu = pc.cpu;
  cpu.setSegCache(CS, 0, 0, 0xffff, 0x9b);
  for (const s of [DS, ES, SS, FS, GS]) cpu.setSegCache(s, 0, 0, 0xffff, 0x93);
  cpu.eip = 0x7c00;
  cpu.regs[4] = 0x7000;
}

function runToStop(pc: Pc, max = 50_000_000): void {
  let total = 0;
  let rounds = 0;
  while (!pc.machine.stopReason && total < max && rounds++ < 100_000) total += pc.machine.run(100_000);
}

const TIMER_PROGRAM = `
  cli
  xor ax, ax
  mov ds, ax
  mov ss, ax
  mov sp, 0x7000
  mov word [0x20*4], handler
  mov word [0x20*4+2], 0
  ; the PIC pair: master at 0x20, slave at 0x28, cascade on IR2
  mov al, 0x11
  out 0x20, al
  out 0xa0, al
  mov al, 0x20
  out 0x21, al
  mov al, 0x28
  out 0xa1, al
  mov al, 4
  out 0x21, al
  mov al, 2
  out 0xa1, al
  mov al, 1
  out 0x21, al
  out 0xa1, al
  mov al, 0xfe
  out 0x21, al
  mov al, 0xff
  out 0xa1, al
  ; PIT channel 0, mode 2, ${COUNT} (about 1 kHz)
  mov al, 0x34
  out 0x43, al
  mov al, ${COUNT & 0xff}
  out 0x40, al
  mov al, ${COUNT >> 8}
  rdtsc
  mov [0x600], eax
  mov al, ${COUNT >> 8}
  out 0x40, al
  sti
.wait:
  hlt
  cmp word [count], ${TICKS}
  jb .wait
  cli
  mov al, 0x00
  out 0xf4, al
  hlt

handler:
  push eax
  push edx
  push bx
  rdtsc
  mov bx, [count]
  shl bx, 2
  mov [0x700+bx], eax
  inc word [count]
  mov al, 0x20
  out 0x20, al
  pop bx
  pop edx
  pop eax
  iret
count: dw 0
`;

describe('createPc', () => {
  it('wires the standard PC devices', () => {
    const pc = createPc({ memSize: 1 << 20 });
    const io = pc.io;
    expect(io.ownerOf(0x20)).toBe('pic-master');
    expect(io.ownerOf(0xa0)).toBe('pic-slave');
    expect(io.ownerOf(0x4d1)).toBe('elcr');
    expect(io.ownerOf(0x40)).toBe('pit');
    expect(io.ownerOf(0x61)).toBe('port-b');
    expect(io.ownerOf(0x3f8)).toBe('uart@3f8');
    expect(io.ownerOf(0x2f8)).toBe('uart@2f8');
    expect(io.ownerOf(0x3e8)).toBe('uart@3e8');
    expect(io.ownerOf(0x2e8)).toBe('uart@2e8');
    expect(io.ownerOf(0x80)).toBe('post-codes@0x80');
    expect(io.ownerOf(0xf4)).toBe('isa-debug-exit');
    expect(io.ownerOf(0xe9)).toBeUndefined(); // no debugcon unless asked for
    // with the local APIC (the default) the CPU takes interrupts from it; the 8259 reaches it via LINT0
    expect(pc.cpu.pic).toBe(pc.apic);
    expect(pc.cpu.hasApic).toBe(true);
    expect(io.ownerOf(0x70)).toBe('rtc');
    expect(io.ownerOf(0x60)).toBeDefined();
    const noApic = createPc({ memSize: 2 << 20, apic: false });
    expect(noApic.cpu.pic).toBe(noApic.pic);
    expect(noApic.cpu.hasApic).toBe(false);
    expect(pc.uarts.length).toBe(4);
    expect(pc.com1).toBe(pc.uarts[0]);
    const names = pc.machine.devices.map((d) => d.name);
    expect(names).toContain('pic');
    expect(names).toContain('pit');
    expect(names).toContain('irq-router');
  });

  it('routes UART interrupts to the PIC inputs of their COM port (COM2 → IRQ 3, COM3 → IRQ 4)', () => {
    const pc = createPc({ memSize: 1 << 20 });
    const io = pc.io;
    expect(pc.cpu.intr).toBe(false); // the PIC is not initialised yet
    for (const [port, v] of [[0x20, 0x11], [0x21, 0x08], [0x21, 0x04], [0x21, 0x01]]) io.out8(port, v);
    expect(io.in8(0x20)).toBe(0); // ICW1 cleared the edge latched from the PIT's OUT0 at power-on
    io.out8(0x2f9, 0x02); // COM2: THR-empty interrupt enabled → asserts at once
    expect(pc.irq.level(3)).toBe(true);
    expect(io.in8(0x20) & 0x08).toBe(0x08); // master IRR bit 3
    io.out8(0x3e9, 0x02); // COM3 shares IRQ 4 with COM1
    expect(pc.irq.level(4)).toBe(true);
    expect(pc.cpu.intr).toBe(true);
    expect(pc.pic.acknowledge()).toBe(0x08 + 3);
    expect(pc.cpu.intr).toBe(false); // IRQ 4 waits: IRQ 3 is in service
    io.out8(0x20, 0x20);
    expect(pc.cpu.intr).toBe(true);
    expect(pc.pic.acknowledge()).toBe(0x08 + 4);
  });

  it('connects COM1 and the debug console to their sinks', () => {
    const serial = new BufferSink();
    const dbg = new BufferSink();
    const pc = createPc({ memSize: 1 << 20, serial, debugcon: dbg });
    pc.io.out8(0x3f8, 0x41);
    pc.io.out8(0xe9, 0x42);
    expect(serial.text()).toBe('A');
    expect(dbg.text()).toBe('B');
  });

  it('derives the TSC from the machine clock', () => {
    expect(tscTicks(1e9, 1e9)).toBe(1e9);
    expect(tscTicks(1e9 + 1, 2.5e9)).toBe(2.5e9 + 2);
    expect(tscTicks(3600e9 + 7, 3e9)).toBe(3600 * 3e9 + 21);
    const pc = createPc({ memSize: 1 << 20, deterministic: true, tscHz: 2e9 });
    pc.cpu.instructionCount = 12345;
    expect(pc.cpu.tscSource()).toBe(2 * pc.clock.now());
  });

  it('lets a local APIC take over the PIC output (setIntrTarget)', () => {
    const pc = createPc({ memSize: 1 << 20 });
    const seen: boolean[] = [];
    pc.setIntrTarget((l) => seen.push(l));
    expect(seen).toEqual([false]);
    pc.io.out8(0x20, 0x13); // single 8259 is enough here: ICW1, ICW2, ICW4
    pc.io.out8(0x21, 0x08);
    pc.io.out8(0x21, 0x01);
    pc.io.out8(0x21, 0xf7); // only IRQ 3
    pc.io.out8(0x2f9, 0x02);
    expect(seen).toEqual([false, true]);
  });

  it('builds extension devices from factories', () => {
    let sawRouter = false;
    const pc = createPc({
      memSize: 1 << 20,
      devices: [
        (p) => {
          sawRouter = p.irq.line(8) !== null;
          return { name: 'rtc-stub' };
        },
        () => undefined,
      ],
    });
    expect(sawRouter).toBe(true);
    expect(pc.machine.devices.map((d) => d.name)).toContain('rtc-stub');
  });

  it('runs a guest that counts PIT interrupts: exact count and virtual time', () => {
    const pc = createPc({ memSize: 1 << 20, deterministic: true });
    loadReal(pc, TIMER_PROGRAM);
    runToStop(pc);
    expect(pc.machine.stopReason).toEqual({
      kind: 'exit',
      code: 1,
      message: 'the guest wrote 0x00 to isa-debug-exit',
    });
    const mem = pc.mem;
    const rd32 = (a: number): number => mem.read32(a) >>> 0;
    const start = rd32(0x600);
    const stamps = Array.from({ length: TICKS }, (_, k) => rd32(0x700 + 4 * k));
    // interrupt k comes N·(k+1) PIT ticks after the count was loaded (the handler adds a few instructions)
    const lead = stamps[0] - start - pitNs(COUNT);
    expect(lead).toBeGreaterThanOrEqual(0);
    expect(lead).toBeLessThan(20);
    for (let k = 1; k < TICKS; k++) {
      expect(stamps[k] - stamps[0]).toBe(pitNs((k + 1) * COUNT) - pitNs(COUNT));
    }
    // elapsed guest time: TICKS periods of the PIT (plus the setup and the exit code)
    const elapsed = pc.clock.now();
    expect(elapsed).toBeGreaterThanOrEqual(pitNs(TICKS * COUNT));
    expect(elapsed).toBeLessThan(pitNs(TICKS * COUNT) + 200);
    expect(rd32(0x7c00 + 0) & 0xff).toBe(0xfa); // the program is still there (cli)
  });

  it('is reproducible: two deterministic runs take the same time', () => {
    const a = createPc({ memSize: 1 << 20, deterministic: true });
    const b = createPc({ memSize: 1 << 20, deterministic: true });
    loadReal(a, TIMER_PROGRAM);
    loadReal(b, TIMER_PROGRAM);
    runToStop(a);
    runToStop(b);
    expect(a.clock.now()).toBe(b.clock.now());
    expect(a.cpu.instructionCount).toBe(b.cpu.instructionCount);
  });
});
