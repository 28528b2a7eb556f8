/**
 * Unit tests for core/protmode.ts: small GDT/IDT/TSS structures are built in the memory of a Machine
 * and the protected-mode functions are called directly.
 */
import { describe, it, expect, beforeEach } from 'vitest';
import { Machine } from '../../core/machine';
import type { Cpu } from '../../core/cpu';
import {
  FAULT, CS, SS, DS, ES, FS, GS, ESP, EAX, EBX, ECX, EDX,
  F_IF, F_TF, F_VM, F_NT, F_CF, F_ZF, F_IOPL,
  INT_HW, INT_SOFT, INT_EXC,
  EX_GP, EX_NP, EX_SS, EX_TS, CR0_PE, CR0_TS,
} from '../../core/defs';
import * as pm from '../../core/protmode';

const GDT = 0x1000, IDT = 0x2000, TSS_A = 0x3000, TSS_B = 0x3100, LDT = 0x3400;

// selectors
const CODE0 = 0x08, DATA0 = 0x10, CODE3 = 0x1b, DATA3 = 0x23, TSSA = 0x28, TSSB = 0x30, CGATE = 0x3b;
const NPDATA = 0x40, RODATA = 0x48, XCODE = 0x50, CODE16 = 0x58, LDTSEL = 0x60, DATA2 = 0x6a, CONF = 0x70;
const SMALLCODE = 0x78, TSS16 = 0x80;

let m: Machine;
let cpu: Cpu;

function w32(a: number, v: number): void {
  m.mem.write32(a, v);
}
function r32(a: number): number {
  return m.mem.read32(a) | 0;
}
function r16(a: number): number {
  return m.mem.read16(a);
}

/** writes a code/data/system segment descriptor: access byte, flags nibble (G, D) */
function seg(addr: number, base: number, limit: number, access: number, flags: number): void {
  w32(addr, (limit & 0xffff) | ((base & 0xffff) << 16));
  w32(addr + 4, ((base >>> 16) & 0xff) | (access << 8) | (limit & 0xf0000) | (flags << 20) | (base & 0xff000000));
}
/** writes a gate descriptor */
function gate(addr: number, sel: number, off: number, access: number, count = 0): void {
  w32(addr, (off & 0xffff) | (sel << 16));
  w32(addr + 4, (off & 0xffff0000) | (access << 8) | count);
}

function expectFault(fn: () => void, vector: number, code: number): void {
  let caught: unknown = null;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBe(FAULT);
  expect([cpu.excVector, cpu.excCode]).toEqual([vector, code]);
}

/** enters flat 32-bit protected mode at ring 0 with TR = TSS A */
function enterPm(): void {
  seg(GDT + 0x08, 0, 0xfffff, 0x9a, 0xc);
  seg(GDT + 0x10, 0, 0xfffff, 0x92, 0xc);
  seg(GDT + 0x18, 0, 0xfffff, 0xfa, 0xc);
  seg(GDT + 0x20, 0, 0xfffff, 0xf2, 0xc);
  seg(GDT + 0x28, TSS_A, 0x67, 0x89, 0);
  seg(GDT + 0x30, TSS_B, 0x67, 0x89, 0);
  gate(GDT + 0x38, CODE0, 0x5000, 0xec, 2); // 32-bit call gate, DPL 3, 2 parameters
  seg(GDT + 0x40, 0, 0xfffff, 0x12, 0xc); // not present
  seg(GDT + 0x48, 0, 0xfffff, 0x90, 0xc); // read-only data
  seg(GDT + 0x50, 0, 0xfffff, 0x98, 0xc); // execute-only code
  seg(GDT + 0x58, 0x10000, 0xffff, 0x9a, 0); // 16-bit code
  seg(GDT + 0x60, LDT, 0x17, 0x82, 0); // LDT
  seg(GDT + 0x68, 0, 0xfffff, 0xd2, 0xc); // DPL 2 data
  seg(GDT + 0x70, 0, 0xfffff, 0x9e, 0xc); // conforming code, DPL 0
  seg(GDT + 0x78, 0, 0xfff, 0x9a, 0x4); // small code (limit 0xfff)
  seg(GDT + 0x80, TSS_A + 0x200, 0x2b, 0x81, 0); // 16-bit TSS
  cpu.gdtBase = GDT;
  cpu.gdtLimit = 0x87;
  cpu.idtBase = IDT;
  cpu.idtLimit = 0x7ff;
  cpu.cr0 |= CR0_PE;
  cpu.updateMode();
  cpu.setSegCache(CS, CODE0, 0, 0xffffffff, 0xc09b);
  for (const s of [SS, DS, ES, FS, GS]) cpu.setSegCache(s, DATA0, 0, 0xffffffff, 0xc093);
  cpu.setCpl(0);
  cpu.rederiveSegments();
  // TSS A: ring-0 stack
  w32(TSS_A + 4, 0x9000);
  w32(TSS_A + 8, DATA0);
  pm.ltr(cpu, TSSA);
  cpu.regs[ESP] = 0x8000;
  cpu.eip = 0x4000;
}

/** switches the current state to ring 3 (flat) */
function toRing3(esp = 0x7000): void {
  cpu.setCpl(3);
  cpu.setSegCache(CS, CODE3, 0, 0xffffffff, 0xc0fb);
  for (const s of [SS, DS, ES, FS, GS]) cpu.setSegCache(s, DATA3, 0, 0xffffffff, 0xc0f3);
  cpu.regs[ESP] = esp;
}

beforeEach(() => {
  m = new Machine({ memSize: 2 << 20 });
  cpu = m.cpu;
});

describe('real mode', () => {
  it('delivers an interrupt through the IVT and IRET returns', () => {
    cpu.setSegCache(CS, 0x1000, 0x10000, 0xffff, 0x93);
    cpu.eip = 0x0102;
    pm.loadSeg(cpu, SS, 0x2000);
    cpu.regs[ESP] = 0x100;
    cpu.setFlags(F_IF | F_TF | F_CF, -1);
    w32(0x21 * 4, 0x56781234 | 0); // 5678:1234
    pm.deliverInterrupt(cpu, 0x21, INT_SOFT, -1);
    expect(cpu.segSel[CS]).toBe(0x5678);
    expect(cpu.segBase[CS]).toBe(0x56780);
    expect(cpu.eip).toBe(0x1234);
    expect(cpu.regs[ESP]).toBe(0xfa);
    expect(r16(0x20000 + 0xfa)).toBe(0x0102);
    expect(r16(0x20000 + 0xfc)).toBe(0x1000);
    expect(r16(0x20000 + 0xfe) & 0xfff).toBe(F_IF | F_TF | F_CF | 2);
    expect(cpu.getFlags() & (F_IF | F_TF)).toBe(0);
    expect(cpu.getFlags() & F_CF).toBe(F_CF);
    cpu.osize32 = false;
    pm.iret(cpu);
    expect(cpu.segSel[CS]).toBe(0x1000);
    expect(cpu.eip).toBe(0x0102);
    expect(cpu.regs[ESP]).toBe(0x100);
    expect(cpu.getFlags() & (F_IF | F_TF | F_CF)).toBe(F_IF | F_TF | F_CF);
  });

  it('raises #GP for a vector beyond the IVT limit', () => {
    cpu.idtLimit = 0x3f;
    expectFault(() => pm.deliverInterrupt(cpu, 0x10, INT_SOFT, -1), EX_GP, 0);
  });

  it('loads segments as base = sel << 4 and keeps the limit (big real mode)', () => {
    cpu.setSegCache(DS, 0, 0, 0xffffffff, 0x93);
    pm.loadSeg(cpu, DS, 0x1234);
    expect(cpu.segBase[DS]).toBe(0x12340);
    expect(cpu.segLimit[DS]).toBe(0xffffffff);
    pm.loadSeg(cpu, SS, 0x10);
    expect(cpu.shadow).toBe(true);
  });

  it('far jump, far call and far return', () => {
    cpu.setSegCache(CS, 0, 0, 0xffff, 0x93);
    pm.loadSeg(cpu, SS, 0);
    cpu.regs[ESP] = 0x800;
    cpu.eip = 0x10;
    cpu.osize32 = false;
    pm.farCall(cpu, 0x2000, 0x300);
    expect([cpu.segSel[CS], cpu.segBase[CS], cpu.eip, cpu.regs[ESP]]).toEqual([0x2000, 0x20000, 0x300, 0x7fc]);
    expect(r16(0x7fc)).toBe(0x10);
    expect(r16(0x7fe)).toBe(0);
    pm.farRet(cpu, 4);
    expect([cpu.segSel[CS], cpu.eip, cpu.regs[ESP]]).toEqual([0, 0x10, 0x804]);
    pm.farJmp(cpu, 0xf000, 0xfff0);
    expect([cpu.segBase[CS], cpu.eip]).toEqual([0xf0000, 0xfff0]);
  });
});

describe('segment loads in protected mode', () => {
  beforeEach(enterPm);

  it('loads data segments and sets the accessed bit', () => {
    pm.loadSeg(cpu, DS, DATA0);
    expect(cpu.segAr[DS] & 0xff).toBe(0x93);
    expect(r32(GDT + 0x14) & 0x100).toBe(0x100);
    expect(cpu.segLimit[DS]).toBe(0xffffffff);
    pm.loadSeg(cpu, ES, 0x08 | 0); // readable code
    expect(cpu.segSel[ES]).toBe(0x08);
  });

  it('null selectors: allowed for DS, #GP(0) for SS', () => {
    pm.loadSeg(cpu, DS, 0x3);
    expect(cpu.segSel[DS]).toBe(3);
    expect(cpu.segAr[DS]).toBe(0);
    expectFault(() => pm.loadSeg(cpu, SS, 0), EX_GP, 0);
  });

  it('faults with the right vectors and codes', () => {
    expectFault(() => pm.loadSeg(cpu, DS, 0x1f8), EX_GP, 0x1f8);
    expectFault(() => pm.loadSeg(cpu, DS, NPDATA), EX_NP, NPDATA);
    expectFault(() => pm.loadSeg(cpu, DS, XCODE), EX_GP, XCODE);
    expectFault(() => pm.loadSeg(cpu, SS, RODATA), EX_GP, RODATA);
    expectFault(() => pm.loadSeg(cpu, SS, DATA0 | 1), EX_GP, DATA0);
    expectFault(() => pm.loadSeg(cpu, SS, DATA3), EX_GP, DATA3 & ~3);
    // SS not present → #SS
    seg(GDT + 0x40, 0, 0xfffff, 0x12, 0xc);
    expectFault(() => pm.loadSeg(cpu, SS, NPDATA), EX_SS, NPDATA);
    expect(cpu.segSel[SS]).toBe(DATA0);
  });

  it('checks DPL against CPL and RPL', () => {
    toRing3();
    expectFault(() => pm.loadSeg(cpu, DS, DATA0 | 3), EX_GP, DATA0);
    pm.loadSeg(cpu, DS, DATA3);
    pm.loadSeg(cpu, ES, CONF | 3); // conforming readable code: no DPL check
    // RPL 3 at CPL 0 for a DPL 2 segment
    enterPm();
    expectFault(() => pm.loadSeg(cpu, DS, DATA2 | 3), EX_GP, DATA2 & ~3);
    pm.loadSeg(cpu, DS, DATA2 & ~3);
  });

  it('uses the LDT', () => {
    seg(LDT + 8, 0x12345, 0xfff, 0x92, 0x4);
    pm.lldt(cpu, LDTSEL);
    pm.loadSeg(cpu, FS, 0x0c);
    expect(cpu.segBase[FS]).toBe(0x12345);
    expectFault(() => pm.loadSeg(cpu, FS, 0x1c), EX_GP, 0x1c);
    pm.lldt(cpu, 0);
    expectFault(() => pm.loadSeg(cpu, FS, 0x0c), EX_GP, 0x0c);
  });
});

describe('interrupts in protected mode', () => {
  beforeEach(enterPm);

  it('interrupt gate at the same privilege, with an error code', () => {
    gate(IDT + 13 * 8, CODE0, 0x6000, 0x8e);
    cpu.setFlags(F_IF | F_ZF, -1);
    cpu.eip = 0x4321;
    pm.deliverInterrupt(cpu, 13, INT_EXC, 0x18);
    expect(cpu.eip).toBe(0x6000);
    expect(cpu.regs[ESP]).toBe(0x8000 - 16);
    expect(r32(0x8000 - 16)).toBe(0x18);
    expect(r32(0x8000 - 12)).toBe(0x4321);
    expect(r32(0x8000 - 8)).toBe(CODE0);
    expect(r32(0x8000 - 4) & 0xfff).toBe(F_IF | F_ZF | 2);
    expect(cpu.getFlags() & F_IF).toBe(0);
    expect(cpu.getFlags() & F_ZF).toBe(F_ZF);
  });

  it('pushes lazily-computed arithmetic flags correctly', () => {
    gate(IDT + 0x31 * 8, CODE0, 0x6000, 0x8e);
    cpu.setFlags(F_IF, -1);
    cpu.sub(5, 5, 31); // ZF=1, CF=0 kept lazily
    pm.deliverInterrupt(cpu, 0x31, INT_SOFT, -1);
    expect(r32(0x8000 - 4) & (F_ZF | F_CF | F_IF)).toBe(F_ZF | F_IF);
    expect(cpu.getFlags() & (F_ZF | F_IF)).toBe(F_ZF);
  });

  it('trap gate keeps IF; 16-bit gate pushes words', () => {
    gate(IDT + 0x40 * 8, CODE0, 0x6000, 0x8f);
    cpu.setFlags(F_IF, -1);
    pm.deliverInterrupt(cpu, 0x40, INT_HW, -1);
    expect(cpu.getFlags() & F_IF).toBe(F_IF);
    cpu.regs[ESP] = 0x8000;
    gate(IDT + 0x41 * 8, CODE0, 0x6000, 0x86);
    cpu.eip = 0x1234;
    pm.deliverInterrupt(cpu, 0x41, INT_HW, 0x55);
    expect(cpu.regs[ESP]).toBe(0x8000 - 8);
    expect(r16(0x8000 - 8)).toBe(0x55);
    expect(r16(0x8000 - 6)).toBe(0x1234);
    expect(r16(0x8000 - 4)).toBe(CODE0);
  });

  it('gate lookup errors', () => {
    cpu.idtLimit = 0xff;
    expectFault(() => pm.deliverInterrupt(cpu, 0x20, INT_HW, -1), EX_GP, 0x20 * 8 + 3);
    expectFault(() => pm.deliverInterrupt(cpu, 0x20, INT_SOFT, -1), EX_GP, 0x20 * 8 + 2);
    cpu.idtLimit = 0x7ff;
    gate(IDT + 0x21 * 8, CODE0, 0x6000, 0x0e); // not present
    expectFault(() => pm.deliverInterrupt(cpu, 0x21, INT_HW, -1), EX_NP, 0x21 * 8 + 3);
    gate(IDT + 0x22 * 8, CODE0, 0x6000, 0x8c); // a call gate in the IDT
    expectFault(() => pm.deliverInterrupt(cpu, 0x22, INT_EXC, -1), EX_GP, 0x22 * 8 + 3);
    gate(IDT + 0x23 * 8, NPDATA, 0x6000, 0x8e); // target not code
    expectFault(() => pm.deliverInterrupt(cpu, 0x23, INT_HW, -1), EX_GP, NPDATA | 1);
    gate(IDT + 0x24 * 8, 0, 0x6000, 0x8e); // null target
    expectFault(() => pm.deliverInterrupt(cpu, 0x24, INT_SOFT, -1), EX_GP, 0);
    gate(IDT + 0x25 * 8, SMALLCODE, 0x6000, 0x8e); // beyond the CS limit
    expectFault(() => pm.deliverInterrupt(cpu, 0x25, INT_HW, -1), EX_GP, 1);
    expect(cpu.eip).toBe(0x4000);
    expect(cpu.regs[ESP]).toBe(0x8000);
  });

  it('gate DPL is checked for software interrupts only', () => {
    gate(IDT + 0x30 * 8, CODE0, 0x6000, 0x8e); // DPL 0
    toRing3();
    expectFault(() => pm.deliverInterrupt(cpu, 0x30, INT_SOFT, -1), EX_GP, 0x30 * 8 + 2);
    expectFault(() => pm.deliverInterrupt(cpu, 0x30, pm.INT_SOFT3, -1), EX_GP, 0x30 * 8 + 2);
    pm.deliverInterrupt(cpu, 0x30, pm.INT_ICEBP, -1);
    expect(cpu.cpl).toBe(0);
  });

  it('ring 3 → ring 0 through an interrupt gate and IRET back', () => {
    gate(IDT + 0x80 * 8, CODE0, 0x6000, 0xee); // DPL 3 interrupt gate
    toRing3(0x7000);
    cpu.setFlags(F_IF, -1);
    cpu.eip = 0x4444;
    pm.deliverInterrupt(cpu, 0x80, INT_SOFT, -1);
    expect(cpu.cpl).toBe(0);
    expect(cpu.segSel[CS]).toBe(CODE0);
    expect(cpu.segSel[SS]).toBe(DATA0);
    expect(cpu.regs[ESP]).toBe(0x9000 - 20);
    expect([r32(0x9000 - 20), r32(0x9000 - 16), r32(0x9000 - 12) & 0xfff, r32(0x9000 - 8), r32(0x9000 - 4)]).toEqual([
      0x4444, CODE3, F_IF | 2, 0x7000, DATA3,
    ]);
    expect(cpu.getFlags() & F_IF).toBe(0);
    cpu.osize32 = true;
    pm.iret(cpu);
    expect(cpu.cpl).toBe(3);
    expect([cpu.segSel[CS], cpu.segSel[SS], cpu.regs[ESP], cpu.eip]).toEqual([CODE3, DATA3, 0x7000, 0x4444]);
    expect(cpu.getFlags() & F_IF).toBe(F_IF);
    expect(cpu.segSel[DS]).toBe(DATA3);
  });

  it('IRET to ring 3 nulls data segments with DPL < 3 and keeps IOPL at CPL 3', () => {
    gate(IDT + 0x80 * 8, CODE0, 0x6000, 0xee);
    toRing3(0x7000);
    pm.deliverInterrupt(cpu, 0x80, INT_SOFT, -1);
    pm.loadSeg(cpu, DS, DATA0);
    pm.loadSeg(cpu, ES, CONF);
    w32(cpu.regs[ESP] + 8, F_IOPL | F_IF | 2); // popped EFLAGS with IOPL 3
    cpu.osize32 = true;
    pm.iret(cpu);
    expect(cpu.segSel[DS]).toBe(0);
    expect(cpu.segAr[DS]).toBe(0);
    expect(cpu.segSel[ES]).toBe(CONF); // conforming code stays
    expect(cpu.getFlags() & F_IOPL).toBe(F_IOPL); // changed at CPL 0
    // at CPL 3 IRET cannot change IOPL or IF (IOPL now 3, so IF may change)
    cpu.setFlags(F_IF, -1);
    cpu.regs[ESP] = 0x7000 - 12;
    w32(0x7000 - 12, 0x100);
    w32(0x7000 - 8, CODE3);
    w32(0x7000 - 4, F_IOPL | 2);
    pm.iret(cpu);
    expect(cpu.getFlags() & (F_IOPL | F_IF)).toBe(F_IF); // IOPL 0 < CPL 3: IF unchanged too
  });

  it('inter-privilege stack switch errors: #TS and #SS', () => {
    gate(IDT + 0x80 * 8, CODE0, 0x6000, 0xee);
    toRing3(0x7000);
    w32(TSS_A + 8, 0);
    expectFault(() => pm.deliverInterrupt(cpu, 0x80, INT_SOFT, -1), EX_TS, 0);
    w32(TSS_A + 8, DATA3);
    expectFault(() => pm.deliverInterrupt(cpu, 0x80, INT_HW, -1), EX_TS, DATA3 - 3 + 1);
    w32(TSS_A + 8, NPDATA);
    seg(GDT + 0x40, 0, 0xfffff, 0x12, 0xc);
    expectFault(() => pm.deliverInterrupt(cpu, 0x80, INT_SOFT, -1), EX_SS, NPDATA);
    w32(TSS_A + 8, DATA0);
    w32(TSS_A + 4, 8); // no room
    seg(GDT + 0x10, 0, 0xf, 0x92, 0x0); // small stack limit
    expectFault(() => pm.deliverInterrupt(cpu, 0x80, INT_SOFT, -1), EX_SS, DATA0);
    expect(cpu.cpl).toBe(3);
    expect(cpu.regs[ESP]).toBe(0x7000);
  });

  it('v86 → ring 0 and IRET back to v86', () => {
    gate(IDT + 0x20 * 8, CODE0, 0x6000, 0x8e);
    // enter v86 with IRETD at CPL 0
    const sp = 0x8000 - 36;
    const frame = [0x0123, 0x2000, F_VM | F_IF | 2, 0x0ff0, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000];
    frame.forEach((v, i) => w32(sp + i * 4, v));
    cpu.regs[ESP] = sp;
    cpu.osize32 = true;
    pm.iret(cpu);
    expect(cpu.getFlags() & F_VM).toBe(F_VM);
    expect(cpu.cpl).toBe(3);
    expect([cpu.segSel[CS], cpu.segBase[CS], cpu.eip]).toEqual([0x2000, 0x20000, 0x123]);
    expect([cpu.segSel[SS], cpu.regs[ESP], cpu.segSel[ES], cpu.segSel[DS], cpu.segSel[FS], cpu.segSel[GS]]).toEqual([
      0x3000, 0x0ff0, 0x4000, 0x5000, 0x6000, 0x7000,
    ]);
    expect(cpu.segBase[GS]).toBe(0x70000);
    expect(cpu.code32).toBe(false);
    // INT n with IOPL 0 in v86 → #GP(0)
    expectFault(() => pm.deliverInterrupt(cpu, 0x20, INT_SOFT, -1), EX_GP, 0);
    // hardware interrupt → ring 0
    cpu.eip = 0x456;
    pm.deliverInterrupt(cpu, 0x20, INT_HW, -1);
    expect(cpu.getFlags() & F_VM).toBe(0);
    expect(cpu.cpl).toBe(0);
    expect(cpu.regs[ESP]).toBe(0x9000 - 36);
    const pushed = Array.from({ length: 9 }, (_, i) => r32(0x9000 - 36 + i * 4));
    expect(pushed[2] & F_VM).toBe(F_VM);
    pushed[2] &= ~0xfff | F_VM;
    expect(pushed).toEqual([0x456, 0x2000, F_VM, 0x0ff0, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000]);
    for (const s of [DS, ES, FS, GS]) expect([cpu.segSel[s], cpu.segAr[s]]).toEqual([0, 0]);
    expect(cpu.code32).toBe(true);
    pm.iret(cpu);
    expect(cpu.getFlags() & F_VM).toBe(F_VM);
    expect([cpu.segSel[CS], cpu.eip, cpu.segSel[DS], cpu.regs[ESP]]).toEqual([0x2000, 0x456, 0x5000, 0x0ff0]);
    // IRET in v86 with IOPL < 3 → #GP(0)
    cpu.osize32 = false;
    expectFault(() => pm.iret(cpu), EX_GP, 0);
    // with IOPL 3 it works like real mode but cannot change IOPL
    cpu.setFlags(cpu.getFlags() | F_IOPL, -1);
    w32(0x30000 + 0x0ff0, 0x00001111 | (0x2200 << 16));
    m.mem.write16(0x30000 + 0x0ff4, 0);
    pm.iret(cpu);
    expect([cpu.segSel[CS], cpu.eip, cpu.regs[ESP] & 0xffff]).toEqual([0x2200, 0x1111, 0x0ff6]);
    expect(cpu.getFlags() & (F_VM | F_IOPL)).toBe(F_VM | F_IOPL);
    // data segment loads in v86
    pm.loadSeg(cpu, DS, 0xb800);
    expect([cpu.segBase[DS], cpu.segLimit[DS], cpu.segAr[DS]]).toEqual([0xb8000, 0xffff, 0xf3]);
  });
});

describe('far transfers in protected mode', () => {
  beforeEach(enterPm);

  it('far jump checks', () => {
    cpu.osize32 = true;
    expectFault(() => pm.farJmp(cpu, 0, 0), EX_GP, 0);
    expectFault(() => pm.farJmp(cpu, DATA0, 0), EX_GP, DATA0);
    expectFault(() => pm.farJmp(cpu, CODE3, 0), EX_GP, CODE3 & ~3);
    expectFault(() => pm.farJmp(cpu, SMALLCODE, 0x1000), EX_GP, 0);
    pm.farJmp(cpu, CODE16, 0x1234);
    expect([cpu.segSel[CS], cpu.segBase[CS], cpu.eip, cpu.code32]).toEqual([CODE16, 0x10000, 0x1234, false]);
    pm.farJmp(cpu, CONF | 3, 0x10); // conforming: RPL ignored, CPL kept
    expect([cpu.segSel[CS], cpu.cpl]).toEqual([CONF, 0]);
  });

  it('call gate with parameters from ring 3 and RETF imm back', () => {
    toRing3(0x7000);
    // two parameters pushed by the caller
    cpu.regs[ESP] = 0x7000 - 8;
    w32(0x7000 - 8, 0x11111111);
    w32(0x7000 - 4, 0x22222222);
    cpu.eip = 0x4567;
    cpu.osize32 = true;
    pm.farCall(cpu, CGATE, 0xdeadbeef);
    expect(cpu.cpl).toBe(0);
    expect([cpu.segSel[CS], cpu.eip, cpu.segSel[SS]]).toEqual([CODE0, 0x5000, DATA0]);
    expect(cpu.regs[ESP]).toBe(0x9000 - 24);
    const f = Array.from({ length: 6 }, (_, i) => r32(0x9000 - 24 + i * 4));
    expect(f).toEqual([0x4567, CODE3, 0x11111111, 0x22222222, 0x7000 - 8, DATA3]);
    pm.loadSeg(cpu, FS, DATA0);
    pm.farRet(cpu, 8);
    expect(cpu.cpl).toBe(3);
    expect([cpu.segSel[CS], cpu.eip, cpu.segSel[SS], cpu.regs[ESP]]).toEqual([CODE3, 0x4567, DATA3, 0x7000]);
    expect(cpu.segSel[FS]).toBe(0);
    expect(cpu.segSel[DS]).toBe(DATA3);
  });

  it('call gate privilege checks', () => {
    gate(GDT + 0x38, CODE0, 0x5000, 0x8c, 0); // DPL 0 gate
    toRing3();
    cpu.osize32 = true;
    expectFault(() => pm.farCall(cpu, CGATE, 0), EX_GP, CGATE & ~3);
    // JMP through a DPL 3 gate to a more privileged non-conforming segment → #GP(code selector)
    gate(GDT + 0x38, CODE0, 0x5000, 0xec, 0);
    expectFault(() => pm.farJmp(cpu, CGATE, 0), EX_GP, CODE0);
    expect(cpu.cpl).toBe(3);
  });

  it('far call and return at the same privilege (16-bit operand size)', () => {
    cpu.osize32 = false;
    cpu.eip = 0x1234;
    pm.farCall(cpu, CODE16, 0x20);
    expect([cpu.segSel[CS], cpu.eip, cpu.regs[ESP]]).toEqual([CODE16, 0x20, 0x8000 - 4]);
    expect([r16(0x8000 - 4), r16(0x8000 - 2)]).toEqual([0x1234, CODE0]);
    pm.farRet(cpu, 0);
    expect([cpu.segSel[CS], cpu.eip, cpu.regs[ESP], cpu.code32]).toEqual([CODE0, 0x1234, 0x8000, true]);
  });

  it('RETF to an inner ring is refused and leaves the state unchanged', () => {
    toRing3(0x7000);
    w32(0x7000, 0x100);
    w32(0x7004, CODE0);
    cpu.osize32 = true;
    expectFault(() => pm.farRet(cpu, 0), EX_GP, CODE0);
    expect([cpu.cpl, cpu.regs[ESP], cpu.segSel[CS]]).toEqual([3, 0x7000, CODE3]);
  });
});

describe('task switches', () => {
  beforeEach(() => {
    enterPm();
    // task B: its own registers, ring 0 flat segments
    w32(TSS_B + 0x20, 0x7777); // EIP
    w32(TSS_B + 0x24, 0x2 | F_CF); // EFLAGS
    w32(TSS_B + 0x28, 0xaaaa); // EAX
    w32(TSS_B + 0x38, 0x6000); // ESP
    w32(TSS_B + 0x48, DATA0); // ES
    w32(TSS_B + 0x4c, CODE0); // CS
    w32(TSS_B + 0x50, DATA0); // SS
    w32(TSS_B + 0x54, DATA0); // DS
    w32(TSS_B + 0x58, 0); // FS
    w32(TSS_B + 0x5c, 0); // GS
    w32(TSS_B + 0x60, LDTSEL);
    seg(LDT, 0, 0, 0, 0);
  });

  it('JMP to a TSS and back', () => {
    cpu.regs[EAX] = 0x1111;
    cpu.regs[EBX] = 0x2222;
    cpu.eip = 0x4100;
    cpu.osize32 = true;
    pm.farJmp(cpu, TSSB, 0);
    expect(cpu.trSel).toBe(TSSB);
    expect([cpu.eip, cpu.regs[EAX], cpu.regs[ESP], cpu.segSel[FS]]).toEqual([0x7777, 0xaaaa, 0x6000, 0]);
    expect(cpu.getFlags() & (F_CF | F_NT)).toBe(F_CF);
    expect(cpu.ldtSel).toBe(LDTSEL);
    expect(cpu.cr0 & CR0_TS).toBe(CR0_TS);
    // old task saved and not busy; new busy
    expect([r32(TSS_A + 0x20), r32(TSS_A + 0x28), r32(TSS_A + 0x34), r32(TSS_A + 0x38)]).toEqual([
      0x4100, 0x1111, 0x2222, 0x8000,
    ]);
    expect((r32(GDT + 0x2c) >>> 8) & 0xf).toBe(9);
    expect((r32(GDT + 0x34) >>> 8) & 0xf).toBe(0xb);
    // jumping to a busy TSS is a #GP
    expectFault(() => pm.farJmp(cpu, TSSB, 0), EX_GP, TSSB);
    pm.farJmp(cpu, TSSA, 0);
    expect([cpu.trSel, cpu.eip, cpu.regs[EAX], cpu.regs[EBX], cpu.regs[ESP]]).toEqual([TSSA, 0x4100, 0x1111, 0x2222, 0x8000]);
  });

  it('CALL to a TSS sets NT and the back link; IRET returns', () => {
    cpu.regs[ECX] = 0x3333;
    cpu.eip = 0x4200;
    cpu.osize32 = true;
    pm.farCall(cpu, TSSB, 0);
    expect(cpu.trSel).toBe(TSSB);
    expect(cpu.getFlags() & F_NT).toBe(F_NT);
    expect(r16(TSS_B)).toBe(TSSA);
    expect((r32(GDT + 0x2c) >>> 8) & 0xf).toBe(0xb); // caller stays busy
    cpu.regs[ECX] = 0;
    pm.iret(cpu);
    expect([cpu.trSel, cpu.eip, cpu.regs[ECX]]).toEqual([TSSA, 0x4200, 0x3333]);
    expect((r32(GDT + 0x34) >>> 8) & 0xf).toBe(9);
    expect(r32(TSS_B + 0x24) & F_NT).toBe(0); // NT cleared in the saved image
  });

  it('interrupt through a task gate pushes the error code on the new stack', () => {
    gate(IDT + 8 * 8, TSSB, 0, 0x85);
    cpu.eip = 0x4300;
    pm.deliverInterrupt(cpu, 8, INT_EXC, 0);
    expect([cpu.trSel, cpu.eip, cpu.regs[ESP]]).toEqual([TSSB, 0x7777, 0x6000 - 4]);
    expect(cpu.getFlags() & F_NT).toBe(F_NT);
    expect(r32(TSS_A + 0x20)).toBe(0x4300);
  });

  it('faults before the commit point leave the task; after it, they belong to the new task', () => {
    seg(GDT + 0x30, TSS_B, 0x60, 0x89, 0); // limit too small
    expectFault(() => pm.farJmp(cpu, TSSB, 0), EX_TS, TSSB);
    expect(cpu.trSel).toBe(TSSA);
    seg(GDT + 0x30, TSS_B, 0x67, 0x89, 0);
    w32(TSS_B + 0x50, RODATA); // bad SS in the new task
    cpu.instrStart = 0x4000;
    expectFault(() => pm.farJmp(cpu, TSSB, 0), EX_TS, RODATA);
    expect(cpu.trSel).toBe(TSSB);
    expect(cpu.instrStart).toBe(0x7777);
  });

  it('16-bit TSS', () => {
    const t = TSS_A + 0x200;
    m.mem.write16(t + 0x0e, 0x99); // IP
    m.mem.write16(t + 0x10, 2); // FLAGS
    m.mem.write16(t + 0x12, 0x1234); // AX
    m.mem.write16(t + 0x1a, 0x5000); // SP
    m.mem.write16(t + 0x22, DATA0);
    m.mem.write16(t + 0x24, CODE16);
    m.mem.write16(t + 0x26, DATA0);
    m.mem.write16(t + 0x28, DATA0);
    m.mem.write16(t + 0x2a, 0);
    cpu.osize32 = true;
    pm.farCall(cpu, TSS16, 0);
    expect([cpu.trSel, cpu.eip, cpu.regs[EAX] | 0, cpu.segSel[CS], cpu.code32]).toEqual([
      TSS16, 0x99, 0xffff1234 | 0, CODE16, false,
    ]);
    expect(r16(t)).toBe(TSSA);
    pm.iret(cpu);
    expect(cpu.trSel).toBe(TSSA);
    expect(r16(t + 0x0e)).toBe(0x99);
  });
});

describe('LAR, LSL, VERR, VERW, LTR, SYSENTER', () => {
  beforeEach(enterPm);

  it('LAR / LSL', () => {
    expect(pm.lar(cpu, DATA0)).toBe(0x00c09200);
    pm.loadSeg(cpu, DS, DATA0);
    expect(pm.lar(cpu, DATA0)).toBe(0x00c09300); // accessed
    expect(pm.lsl(cpu, DATA0)).toBe(0xffffffff);
    expect(pm.lsl(cpu, SMALLCODE)).toBe(0xfff);
    expect(pm.lar(cpu, 0)).toBeNull();
    expect(pm.lar(cpu, 0x1f0)).toBeNull();
    expect(pm.lar(cpu, CGATE)).not.toBeNull();
    expect(pm.lsl(cpu, CGATE)).toBeNull();
    expect(pm.lsl(cpu, TSSA)).toBe(0x67);
    toRing3();
    expect(pm.lar(cpu, DATA0)).toBeNull();
    expect(pm.lar(cpu, CONF)).not.toBeNull();
  });

  it('VERR / VERW', () => {
    expect(pm.verr(cpu, DATA0)).toBe(true);
    expect(pm.verw(cpu, DATA0)).toBe(true);
    expect(pm.verw(cpu, RODATA)).toBe(false);
    expect(pm.verr(cpu, XCODE)).toBe(false);
    expect(pm.verr(cpu, CODE0)).toBe(true);
    expect(pm.verw(cpu, CODE0)).toBe(false);
    expect(pm.verr(cpu, TSSA)).toBe(false);
    toRing3();
    expect(pm.verr(cpu, DATA0)).toBe(false);
    expect(pm.verr(cpu, CONF)).toBe(true);
  });

  it('LTR marks the TSS busy; LTR of a busy TSS faults', () => {
    expect((r32(GDT + 0x2c) >>> 8) & 0xf).toBe(0xb);
    expectFault(() => pm.ltr(cpu, TSSA), EX_GP, TSSA);
    expectFault(() => pm.ltr(cpu, DATA0), EX_GP, DATA0);
  });

  it('SYSENTER and SYSEXIT', () => {
    cpu.sysenterCs = CODE0;
    cpu.sysenterEsp = 0x9999;
    cpu.sysenterEip = 0x1234;
    toRing3();
    cpu.setFlags(F_IF, -1);
    pm.sysenter(cpu);
    expect([cpu.cpl, cpu.segSel[CS], cpu.segSel[SS], cpu.regs[ESP], cpu.eip]).toEqual([0, CODE0, DATA0, 0x9999, 0x1234]);
    expect(cpu.getFlags() & F_IF).toBe(0);
    cpu.regs[ECX] = 0x7000;
    cpu.regs[EDX] = 0x4321;
    pm.sysexit(cpu);
    expect([cpu.cpl, cpu.segSel[CS], cpu.segSel[SS], cpu.regs[ESP], cpu.eip]).toEqual([3, CODE3, DATA3, 0x7000, 0x4321]);
    expectFault(() => pm.sysexit(cpu), EX_GP, 0);
    cpu.sysenterCs = 0;
    expectFault(() => pm.sysenter(cpu), EX_GP, 0);
  });
});

