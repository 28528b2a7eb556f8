/**
 * Unit tests of the local APIC and the IOAPIC. Each test builds a bare deterministic Machine (no firmware)
 * with a LocalApic and an IoApic; time is moved by hand with clock.advance() + runDue(), except in the last
 * test, which runs a real guest program that counts APIC timer interrupts.
 */
import { describe, it, expect } from 'vitest';
import { Machine } from '../../core/machine';
import { CS, DS, ES, SS, FS, GS, CR0_PE } from '../../core/defs';
import { IrqRouter } from '../../core/irq';
import type { InterruptController } from '../../core/cpu';
import {
  LocalApic, APIC_ID, APIC_VERSION, APIC_TPR, APIC_APR, APIC_PPR, APIC_EOI, APIC_LDR, APIC_DFR, APIC_SVR,
  APIC_ISR, APIC_TMR, APIC_IRR, APIC_ESR, APIC_ICR_LO, APIC_ICR_HI, APIC_LVT_TIMER, APIC_LVT_THERMAL,
  APIC_LVT_PERF, APIC_LVT_LINT0, APIC_LVT_LINT1, APIC_LVT_ERROR, APIC_TIMER_INITIAL, APIC_TIMER_CURRENT,
  APIC_TIMER_DIVIDE, DM_FIXED, DM_NMI, DM_EXTINT, DM_LOWEST, ESR_SEND_ILLEGAL, ESR_RECV_ILLEGAL,
} from '../../devices/apic';
import { IoApic, IOREGSEL, IOWIN, RTE_MASKED, RTE_LEVEL, RTE_REMOTE_IRR, RTE_LOGICAL } from '../../devices/ioapic';
import { nasm } from '../helpers/asm';

const LAPIC = 0xfee00000;
const IOAPIC = 0xfec00000;

class FakePic implements InterruptController {
  acks = 0;
  out = false;
  constructor(public apic: LocalApic | null = null, public vector = 0x08) {}
  raise(): void {
    this.out = true;
    this.apic?.setPicOutput(true);
  }
  acknowledge(): number {
    this.acks++;
    this.out = false;
    this.apic?.setPicOutput(false);
    return this.vector;
  }
}

function rig(busHz?: number) {
  const m = new Machine({ memSize: 1 << 20, deterministic: true });
  const apic = new LocalApic(m, { busHz });
  const pic = new FakePic(apic);
  apic.pic = pic;
  const io = new IoApic(m, { target: apic });
  m.addDevice(apic);
  m.addDevice(io);
  const r = (off: number) => m.mem.read32(LAPIC + off) >>> 0;
  const w = (off: number, v: number) => m.mem.write32(LAPIC + off, v);
  const ior = (reg: number) => {
    m.mem.write32(IOAPIC + IOREGSEL, reg);
    return m.mem.read32(IOAPIC + IOWIN) >>> 0;
  };
  const iow = (reg: number, v: number) => {
    m.mem.write32(IOAPIC + IOREGSEL, reg);
    m.mem.write32(IOAPIC + IOWIN, v);
  };
  const elapse = (ns: number) => {
    m.clock.advance(ns);
    m.clock.runDue();
  };
  const enable = () => w(APIC_SVR, 0x1ff);
  return { m, cpu: m.cpu, apic, pic, io, r, w, ior, iow, elapse, enable };
}

const bit = (v: number) => 1 << (v & 31);

describe('LocalApic registers', () => {
  it('has the power-up values and is the CPU interrupt controller', () => {
    const { cpu, apic, r } = rig();
    expect(cpu.hasApic).toBe(true);
    expect(cpu.pic).toBe(apic);
    expect(apic.mmioBase).toBe(LAPIC);
    expect(r(APIC_ID)).toBe(0);
    expect(r(APIC_VERSION)).toBe(0x00050014);
    expect(r(APIC_TPR)).toBe(0);
    expect(r(APIC_PPR)).toBe(0);
    expect(r(APIC_LDR)).toBe(0);
    expect(r(APIC_DFR)).toBe(0xffffffff);
    expect(r(APIC_SVR)).toBe(0xff);
    for (const off of [APIC_LVT_TIMER, APIC_LVT_THERMAL, APIC_LVT_PERF, APIC_LVT_LINT0, APIC_LVT_LINT1, APIC_LVT_ERROR]) {
      expect(r(off)).toBe(0x10000);
    }
    for (let i = 0; i < 8; i++) expect(r(APIC_IRR + i * 16) | r(APIC_ISR + i * 16) | r(APIC_TMR + i * 16)).toBe(0);
    expect(r(APIC_TIMER_CURRENT)).toBe(0);
    expect(apic.enabled).toBe(false);
  });

  it('keeps the writable bits of each register', () => {
    const { r, w, m, apic } = rig();
    w(APIC_ID, 0x12345678);
    expect(r(APIC_ID)).toBe(0x12000000);
    w(APIC_LDR, 0xffffffff);
    expect(r(APIC_LDR)).toBe(0xff000000);
    w(APIC_DFR, 0x0fffffff);
    expect(r(APIC_DFR)).toBe(0x0fffffff);
    w(APIC_TPR, 0x1234);
    expect(r(APIC_TPR)).toBe(0x34);
    w(APIC_SVR, 0xffffffff);
    expect(r(APIC_SVR)).toBe(0x3ff);
    expect(apic.enabled).toBe(true);
    w(APIC_LVT_TIMER, 0xffffffff);
    expect(r(APIC_LVT_TIMER)).toBe(0x300ff);
    w(APIC_LVT_LINT0, 0xffffffff);
    expect(r(APIC_LVT_LINT0)).toBe(0x1a7ff & ~0x4000 | 0x10000); // remote IRR is read-only
    w(APIC_LVT_ERROR, 0xffffffff);
    expect(r(APIC_LVT_ERROR)).toBe(0x100ff);
    w(APIC_LVT_THERMAL, 0x000004fe);
    expect(r(APIC_LVT_THERMAL)).toBe(0x4fe);
    w(APIC_TIMER_DIVIDE, 0xffffffff);
    expect(r(APIC_TIMER_DIVIDE)).toBe(0xb);
    expect(apic.timerDivisor).toBe(1);
    w(APIC_ICR_HI, 0x01abcdef);
    expect(r(APIC_ICR_HI)).toBe(0x01000000);
    w(APIC_VERSION, 0);
    expect(r(APIC_VERSION)).toBe(0x00050014);
    // sub-dword reads
    expect(m.mem.read8(LAPIC + APIC_VERSION)).toBe(0x14);
    expect(m.mem.read8(LAPIC + APIC_VERSION + 2)).toBe(0x05);
    expect(m.mem.read16(LAPIC + APIC_SVR)).toBe(0x3ff);
  });

  it('forces the LVT masks while software-disabled', () => {
    const { r, w } = rig();
    w(APIC_LVT_LINT0, 0x700);
    expect(r(APIC_LVT_LINT0)).toBe(0x10700);
    w(APIC_SVR, 0x1ff);
    w(APIC_LVT_LINT0, 0x700);
    w(APIC_LVT_TIMER, 0x20040);
    expect(r(APIC_LVT_LINT0)).toBe(0x700);
    w(APIC_SVR, 0x0ff);
    expect(r(APIC_LVT_LINT0)).toBe(0x10700);
    expect(r(APIC_LVT_TIMER)).toBe(0x30040);
  });

  it('latches errors into ESR on write and reports illegal registers', () => {
    const { r, w, enable } = rig();
    enable();
    w(APIC_ICR_LO, 0x00040005); // self-IPI with vector 5: illegal
    expect(r(APIC_ESR)).toBe(0);
    w(APIC_ESR, 0);
    expect(r(APIC_ESR)).toBe(ESR_SEND_ILLEGAL);
    w(APIC_ESR, 0);
    expect(r(APIC_ESR)).toBe(0);
    r(0x2f0); // no CMCI LVT on this version
    w(APIC_ESR, 0);
    expect(r(APIC_ESR)).toBe(0x80);
  });

  it('raises the error interrupt when an error is logged', () => {
    const { r, w, enable, apic } = rig();
    enable();
    w(APIC_LVT_ERROR, 0xfe);
    apic.deliver(3, DM_FIXED, false, false, 0); // illegal vector received
    expect(r(APIC_IRR + 7 * 16)).toBe(bit(0xfe) >>> 0);
    w(APIC_ESR, 0);
    expect(r(APIC_ESR)).toBe(ESR_RECV_ILLEGAL);
  });

  it('moves with the base MSR and vanishes when disabled there', () => {
    const { cpu, apic, m, r, w, enable } = rig();
    enable();
    w(APIC_TPR, 0x20);
    cpu.apicBase = 0xfed00900 | 0;
    cpu.onApicBaseChange();
    expect(apic.mmioBase).toBe(0xfed00000);
    expect(m.mem.read32(0xfed00000 + APIC_TPR)).toBe(0x20);
    expect(m.mem.read32(LAPIC + APIC_TPR) >>> 0).toBe(0xffffffff);
    cpu.apicBase = 0xfee00100; // BSP, disabled
    cpu.onApicBaseChange();
    expect(apic.mmioBase).toBe(-1);
    expect(m.mem.read32(0xfed00000 + APIC_TPR) >>> 0).toBe(0xffffffff);
    expect(r(APIC_SVR)).toBe(0xffffffff);
    cpu.apicBase = 0xfee00900 | 0;
    cpu.onApicBaseChange();
    expect(r(APIC_SVR)).toBe(0xff); // back in the power-up state
    expect(r(APIC_TPR)).toBe(0);
  });
});

describe('LocalApic interrupt delivery', () => {
  it('delivers by priority class and blocks classes at or below PPR', () => {
    const { apic, cpu, r, w, enable } = rig();
    enable();
    apic.deliver(0x31, DM_FIXED, false, false, 0);
    apic.deliver(0x52, DM_FIXED, false, false, 0);
    apic.deliver(0x45, DM_FIXED, false, false, 0);
    expect(cpu.intr).toBe(true);
    expect(r(APIC_IRR + 16)).toBe(bit(0x31) >>> 0);
    expect(r(APIC_IRR + 2 * 16)).toBe((bit(0x52) | bit(0x45)) >>> 0);
    expect(apic.acknowledge()).toBe(0x52);
    expect(r(APIC_ISR + 2 * 16)).toBe(bit(0x52) >>> 0);
    expect(r(APIC_PPR)).toBe(0x50);
    expect(cpu.intr).toBe(false); // 0x45 is a lower class than the one in service
    apic.deliver(0x55, DM_FIXED, false, false, 0);
    expect(cpu.intr).toBe(false); // same class: waits too
    apic.deliver(0x61, DM_FIXED, false, false, 0);
    expect(cpu.intr).toBe(true);
    expect(apic.acknowledge()).toBe(0x61);
    expect(r(APIC_PPR)).toBe(0x60);
    w(APIC_EOI, 0);
    expect(r(APIC_PPR)).toBe(0x50);
    expect(cpu.intr).toBe(false);
    w(APIC_EOI, 0);
    expect(r(APIC_PPR)).toBe(0);
    expect(apic.acknowledge()).toBe(0x55);
    w(APIC_EOI, 0);
    expect(apic.acknowledge()).toBe(0x45);
    w(APIC_EOI, 0);
    expect(apic.acknowledge()).toBe(0x31);
    w(APIC_EOI, 0);
    expect(cpu.intr).toBe(false);
    for (let i = 0; i < 8; i++) expect(r(APIC_ISR + i * 16) | r(APIC_IRR + i * 16)).toBe(0);
  });

  it('computes PPR and APR from TPR and the ISR/IRR', () => {
    const { apic, cpu, r, w, enable } = rig();
    enable();
    w(APIC_TPR, 0x47);
    expect(r(APIC_PPR)).toBe(0x47);
    expect(r(APIC_APR)).toBe(0x47);
    apic.deliver(0x45, DM_FIXED, false, false, 0);
    expect(cpu.intr).toBe(false); // class 4 is not above TPR class 4
    expect(r(APIC_APR)).toBe(0x47);
    w(APIC_TPR, 0x30);
    expect(cpu.intr).toBe(true);
    expect(r(APIC_APR)).toBe(0x40);
    expect(apic.acknowledge()).toBe(0x45);
    expect(r(APIC_PPR)).toBe(0x40);
    w(APIC_TPR, 0x5f);
    expect(r(APIC_PPR)).toBe(0x5f);
    w(APIC_EOI, 0);
    w(APIC_TPR, 0);
    expect(r(APIC_PPR)).toBe(0);
  });

  it('returns the spurious vector when the TPR masked the interrupt after INTR', () => {
    const { apic, w, enable } = rig();
    w(APIC_SVR, 0x1e7);
    enable();
    w(APIC_SVR, 0x1e7);
    apic.deliver(0x45, DM_FIXED, false, false, 0);
    w(APIC_TPR, 0xf0);
    expect(apic.acknowledge()).toBe(0xe7);
  });

  it('broadcasts EOI only for level-triggered interrupts and sets the TMR', () => {
    const { apic, r, w, enable } = rig();
    enable();
    const eois: number[] = [];
    apic.onEoi = (v) => eois.push(v);
    apic.deliver(0x40, DM_FIXED, true, false, 0);
    apic.deliver(0x30, DM_FIXED, false, false, 0);
    expect(r(APIC_TMR + 2 * 16)).toBe(bit(0x40) >>> 0);
    expect(r(APIC_TMR + 1 * 16)).toBe(0);
    expect(apic.acknowledge()).toBe(0x40);
    w(APIC_EOI, 0);
    expect(apic.acknowledge()).toBe(0x30);
    w(APIC_EOI, 0);
    expect(eois).toEqual([0x40]);
  });

  it('matches physical and logical destinations', () => {
    const { apic, cpu, r, w, enable } = rig();
    enable();
    expect(apic.deliver(0x40, DM_FIXED, false, false, 1)).toBe(false);
    expect(apic.deliver(0x40, DM_FIXED, false, true, 1)).toBe(false); // LDR is 0
    w(APIC_LDR, 0x01000000);
    expect(apic.deliver(0x41, DM_LOWEST, false, true, 0x03)).toBe(true); // flat
    w(APIC_DFR, 0x0fffffff); // cluster model
    w(APIC_LDR, 0x21000000);
    expect(apic.deliver(0x42, DM_FIXED, false, true, 0x11)).toBe(false);
    expect(apic.deliver(0x43, DM_FIXED, false, true, 0x23)).toBe(true);
    expect(apic.deliver(0x44, DM_FIXED, false, false, 0xff)).toBe(true);
    expect(r(APIC_IRR + 2 * 16)).toBe((bit(0x41) | bit(0x43) | bit(0x44)) >>> 0);
    expect(apic.deliver(2, DM_NMI, false, false, 0)).toBe(true);
    expect(cpu.nmiPending).toBe(true);
  });

  it('sends self-IPIs', () => {
    const { apic, cpu, r, w, enable } = rig();
    enable();
    w(APIC_ICR_LO, 0x00044060); // shorthand self, fixed, vector 0x60
    expect(r(APIC_ICR_LO) & 0x1000).toBe(0); // delivery status idle
    expect(r(APIC_IRR + 3 * 16)).toBe(bit(0x60) >>> 0);
    w(APIC_ICR_LO, 0x000c0061); // all excluding self: nobody
    w(APIC_ICR_LO, 0x00080062); // all including self
    w(APIC_ICR_HI, 0x00000000);
    w(APIC_ICR_LO, 0x00000063); // physical destination 0: us
    w(APIC_ICR_HI, 0x05000000);
    w(APIC_ICR_LO, 0x00000064); // physical destination 5: nobody
    expect(r(APIC_IRR + 3 * 16)).toBe((bit(0x60) | bit(0x62) | bit(0x63)) >>> 0);
    expect(cpu.intr).toBe(true);
    expect(apic.acknowledge()).toBe(0x63);
    w(APIC_ICR_LO, 0x00044400); // NMI to self
    expect(cpu.nmiPending).toBe(true);
  });
});

describe('LocalApic timer', () => {
  it('counts down once and interrupts at zero (one-shot)', () => {
    const { apic, cpu, r, w, elapse, enable } = rig();
    enable();
    w(APIC_TIMER_DIVIDE, 0x3); // divide by 16: 160 ns per count at 100 MHz
    w(APIC_LVT_TIMER, 0x40);
    w(APIC_TIMER_INITIAL, 1000);
    expect(r(APIC_TIMER_INITIAL)).toBe(1000);
    expect(r(APIC_TIMER_CURRENT)).toBe(1000);
    elapse(16_000);
    expect(r(APIC_TIMER_CURRENT)).toBe(900);
    elapse(159);
    expect(r(APIC_TIMER_CURRENT)).toBe(900);
    elapse(1);
    expect(r(APIC_TIMER_CURRENT)).toBe(899);
    expect(cpu.intr).toBe(false);
    elapse(160_000 - 16_160 - 1);
    expect(r(APIC_TIMER_CURRENT)).toBe(1);
    expect(cpu.intr).toBe(false);
    elapse(1);
    expect(r(APIC_TIMER_CURRENT)).toBe(0);
    expect(cpu.intr).toBe(true);
    expect(apic.acknowledge()).toBe(0x40);
    w(APIC_EOI, 0);
    elapse(1_000_000);
    expect(cpu.intr).toBe(false);
    expect(r(APIC_TIMER_CURRENT)).toBe(0);
    expect(r(APIC_IRR + 2 * 16)).toBe(0);
  });

  it('reloads in periodic mode', () => {
    const { m, apic, cpu, r, w, elapse, enable } = rig();
    enable();
    w(APIC_TIMER_DIVIDE, 0xb); // divide by 1: 10 ns per count
    w(APIC_LVT_TIMER, 0x20041);
    w(APIC_TIMER_INITIAL, 100); // 1 µs period
    let ticks = 0;
    for (let i = 0; i < 10; i++) {
      elapse(1000);
      if (cpu.intr) {
        expect(apic.acknowledge()).toBe(0x41);
        w(APIC_EOI, 0);
        ticks++;
      }
    }
    expect(ticks).toBe(10);
    elapse(250);
    expect(r(APIC_TIMER_CURRENT)).toBe(75);
    // missed periods are coalesced (one IRR bit) and the grid is kept
    elapse(5000);
    expect(apic.acknowledge()).toBe(0x41);
    w(APIC_EOI, 0);
    expect(cpu.intr).toBe(false);
    expect(r(APIC_TIMER_CURRENT)).toBe(75);
    expect(m.clock.nextDeadline()).toBe(m.clock.now() + 750);
    // writing 0 to the initial count stops it
    w(APIC_TIMER_INITIAL, 0);
    expect(m.clock.nextDeadline()).toBe(Infinity);
    expect(r(APIC_TIMER_CURRENT)).toBe(0);
  });

  it('masked timer keeps counting without interrupting', () => {
    const { cpu, r, w, elapse, enable } = rig();
    enable();
    w(APIC_TIMER_DIVIDE, 0xb);
    w(APIC_LVT_TIMER, 0x30042);
    w(APIC_TIMER_INITIAL, 100);
    elapse(1500);
    expect(cpu.intr).toBe(false);
    expect(r(APIC_TIMER_CURRENT)).toBe(50);
    w(APIC_LVT_TIMER, 0x20042);
    elapse(500);
    expect(cpu.intr).toBe(true);
  });

  it('applies every divide setting and keeps the count across a change', () => {
    const { apic, r, w, elapse, enable } = rig();
    enable();
    const table: [number, number][] = [[0x0, 2], [0x1, 4], [0x2, 8], [0x3, 16], [0x8, 32], [0x9, 64], [0xa, 128], [0xb, 1]];
    for (const [cfg, div] of table) {
      w(APIC_TIMER_DIVIDE, cfg);
      expect(apic.timerDivisor).toBe(div);
      w(APIC_TIMER_INITIAL, 1_000_000);
      elapse(10 * div * 7);
      expect(r(APIC_TIMER_CURRENT)).toBe(1_000_000 - 7);
    }
    w(APIC_TIMER_DIVIDE, 0x0); // /2
    w(APIC_TIMER_INITIAL, 1000);
    elapse(20 * 100);
    expect(r(APIC_TIMER_CURRENT)).toBe(900);
    w(APIC_TIMER_DIVIDE, 0xa); // /128
    expect(r(APIC_TIMER_CURRENT)).toBe(900);
    elapse(1280 * 10);
    expect(r(APIC_TIMER_CURRENT)).toBe(890);
  });

  it('uses the configured bus frequency', () => {
    const { r, w, elapse, enable } = rig(1_000_000_000);
    enable();
    w(APIC_TIMER_DIVIDE, 0xb);
    w(APIC_TIMER_INITIAL, 5000);
    elapse(1234);
    expect(r(APIC_TIMER_CURRENT)).toBe(5000 - 1234);
  });
});

describe('LocalApic LINT pins and the 8259', () => {
  it('passes the PIC through while software-disabled (power-up state)', () => {
    const { apic, cpu, pic } = rig();
    pic.raise();
    expect(cpu.intr).toBe(true);
    expect(apic.acknowledge()).toBe(0x08);
    expect(pic.acks).toBe(1);
    expect(cpu.intr).toBe(false);
  });

  it('passes the PIC through while hardware-disabled', () => {
    const { apic, cpu, pic } = rig();
    cpu.apicBase = 0xfee00100;
    cpu.onApicBaseChange();
    pic.vector = 0x20;
    pic.raise();
    expect(cpu.intr).toBe(true);
    expect(apic.acknowledge()).toBe(0x20);
    expect(cpu.intr).toBe(false);
  });

  it('routes LINT0 in ExtINT mode to the PIC and blocks it when masked', () => {
    const { apic, cpu, pic, w, enable } = rig();
    enable();
    pic.raise();
    expect(cpu.intr).toBe(false); // LINT0 masked
    w(APIC_LVT_LINT0, 0x700); // ExtINT
    expect(cpu.intr).toBe(true);
    // an APIC interrupt goes first, then the PIC's
    apic.deliver(0x50, DM_FIXED, false, false, 0);
    expect(apic.acknowledge()).toBe(0x50);
    expect(cpu.intr).toBe(true);
    expect(apic.acknowledge()).toBe(0x08);
    expect(pic.acks).toBe(1);
    expect(cpu.intr).toBe(false);
    pic.raise();
    w(APIC_LVT_LINT0, 0x10700);
    expect(cpu.intr).toBe(false);
  });

  it('takes a one-shot ExtINT message from the IOAPIC', () => {
    const { apic, cpu, pic, enable } = rig();
    enable();
    pic.vector = 0x30;
    apic.deliver(0, DM_EXTINT, false, false, 0);
    expect(cpu.intr).toBe(true);
    expect(apic.acknowledge()).toBe(0x30);
    expect(cpu.intr).toBe(false);
  });

  it('raises NMIs from LINT1', () => {
    const { apic, cpu, w, enable } = rig();
    apic.setLint1(true); // disabled: LINT1 is the NMI pin
    expect(cpu.nmiPending).toBe(true);
    apic.setLint1(false);
    cpu.nmiPending = false;
    enable();
    apic.setLint1(true);
    expect(cpu.nmiPending).toBe(false); // masked
    apic.setLint1(false);
    w(APIC_LVT_LINT1, 0x400);
    apic.setLint1(true);
    expect(cpu.nmiPending).toBe(true);
  });

  it('delivers level-triggered fixed LINT interrupts again after EOI', () => {
    const { apic, cpu, r, w, enable } = rig();
    enable();
    w(APIC_LVT_LINT1, 0x8055);
    apic.setLint1(true);
    expect(r(APIC_LVT_LINT1) & 0x4000).toBe(0x4000);
    expect(apic.acknowledge()).toBe(0x55);
    w(APIC_EOI, 0);
    expect(cpu.intr).toBe(true); // still asserted: again
    expect(apic.acknowledge()).toBe(0x55);
    apic.setLint1(false);
    w(APIC_EOI, 0);
    expect(r(APIC_LVT_LINT1) & 0x4000).toBe(0);
    expect(cpu.intr).toBe(false);
  });
});

describe('IoApic', () => {
  it('has ID, version and arbitration registers and masked entries', () => {
    const { ior, iow, m } = rig();
    expect(ior(0)).toBe(0x01000000);
    expect(ior(1)).toBe(0x00170011);
    expect(ior(2)).toBe(0x01000000);
    iow(0, 0x0f000000);
    expect(ior(0)).toBe(0x0f000000);
    for (let n = 0; n < 24; n++) {
      expect(ior(0x10 + 2 * n)).toBe(RTE_MASKED);
      expect(ior(0x11 + 2 * n)).toBe(0);
    }
    iow(0x10 + 2 * 23, 0xffffffff);
    expect(ior(0x10 + 2 * 23)).toBe(0x1afff);
    iow(0x11 + 2 * 23, 0xffffffff);
    expect(ior(0x11 + 2 * 23)).toBe(0xff000000);
    expect(ior(0x40)).toBe(0); // beyond the table
    m.mem.write8(IOAPIC + IOREGSEL, 0x01);
    expect(m.mem.read8(IOAPIC + IOWIN + 2)).toBe(0x17);
    expect(m.mem.read32(IOAPIC + IOREGSEL)).toBe(0x01);
  });

  it('delivers edges of unmasked pins and loses edges of masked ones', () => {
    const { io, apic, cpu, iow, r, w, enable } = rig();
    enable();
    const router = new IrqRouter();
    router.attach(io);
    const irq2 = router.line(2);
    iow(0x10 + 2 * 2, 0x30 | RTE_MASKED);
    irq2(true);
    irq2(false);
    expect(cpu.intr).toBe(false);
    iow(0x10 + 2 * 2, 0x30);
    expect(cpu.intr).toBe(false); // the edge is gone
    irq2(true);
    expect(cpu.intr).toBe(true);
    expect(apic.acknowledge()).toBe(0x30);
    expect(r(APIC_TMR + 16)).toBe(0);
    w(APIC_EOI, 0);
    expect(cpu.intr).toBe(false); // no re-delivery for edge while the line stays high
    irq2(false);
    irq2(true);
    expect(apic.acknowledge()).toBe(0x30);
    w(APIC_EOI, 0);
  });

  it('re-delivers level interrupts after EOI while asserted, tracking remote IRR', () => {
    const { io, apic, cpu, ior, iow, r, w, enable } = rig();
    enable();
    const router = new IrqRouter();
    router.attach(io);
    const a = router.line(11);
    const b = router.line(11); // a shared PCI line
    iow(0x10 + 2 * 11, 0x51 | RTE_LEVEL);
    a(true);
    expect(ior(0x10 + 2 * 11) & RTE_REMOTE_IRR).toBe(RTE_REMOTE_IRR);
    expect(io.entryLow(11) & RTE_REMOTE_IRR).toBe(RTE_REMOTE_IRR);
    expect(apic.acknowledge()).toBe(0x51);
    expect(r(APIC_TMR + 2 * 16)).toBe(bit(0x51) >>> 0);
    b(true);
    expect(cpu.intr).toBe(false);
    a(false);
    w(APIC_EOI, 0); // b still asserts the line: delivered again
    expect(ior(0x10 + 2 * 11) & RTE_REMOTE_IRR).toBe(RTE_REMOTE_IRR);
    expect(cpu.intr).toBe(true);
    expect(apic.acknowledge()).toBe(0x51);
    b(false);
    w(APIC_EOI, 0);
    expect(ior(0x10 + 2 * 11) & RTE_REMOTE_IRR).toBe(0);
    expect(cpu.intr).toBe(false);
    // a message nobody accepts leaves remote IRR clear; masking holds a level until unmasked
    iow(0x11 + 2 * 11, 0x07000000);
    a(true);
    expect(ior(0x10 + 2 * 11) & RTE_REMOTE_IRR).toBe(0);
    iow(0x11 + 2 * 11, 0);
    iow(0x10 + 2 * 11, 0x51 | RTE_LEVEL | RTE_MASKED);
    expect(cpu.intr).toBe(false);
    iow(0x10 + 2 * 11, 0x51 | RTE_LEVEL);
    expect(cpu.intr).toBe(true);
    // switching to edge clears remote IRR (Linux's EOI workaround for version 0x11)
    expect(ior(0x10 + 2 * 11) & RTE_REMOTE_IRR).toBe(RTE_REMOTE_IRR);
    iow(0x10 + 2 * 11, 0x51 | RTE_MASKED);
    expect(ior(0x10 + 2 * 11) & RTE_REMOTE_IRR).toBe(0);
  });

  it('sends NMI and logical-destination messages', () => {
    const { io, apic, cpu, iow, w, enable } = rig();
    enable();
    w(APIC_LDR, 0x01000000);
    iow(0x10 + 2 * 5, 0x66 | RTE_LOGICAL | (DM_LOWEST << 8));
    iow(0x11 + 2 * 5, 0x01000000);
    io.setIrq(5, true);
    expect(apic.acknowledge()).toBe(0x66);
    iow(0x10 + 2 * 6, DM_NMI << 8);
    io.setIrq(6, true);
    expect(cpu.nmiPending).toBe(true);
  });
});

describe('save and load', () => {
  it('round-trips the local APIC with a timer in flight', () => {
    const a = rig();
    a.enable();
    a.w(APIC_TPR, 0x20);
    a.w(APIC_LDR, 0x03000000);
    a.w(APIC_TIMER_DIVIDE, 0x1);
    a.w(APIC_LVT_TIMER, 0x20044);
    a.w(APIC_LVT_LINT0, 0x700);
    a.w(APIC_TIMER_INITIAL, 777);
    a.apic.deliver(0x91, DM_FIXED, true, false, 0);
    a.apic.acknowledge();
    a.apic.deliver(0x35, DM_FIXED, false, false, 0);
    a.elapse(12_345);
    const saved = JSON.parse(JSON.stringify(a.apic.saveState()));
    const b = rig();
    b.elapse(12_345);
    b.apic.loadState(saved);
    expect(b.apic.saveState()).toEqual(a.apic.saveState());
    for (const off of [APIC_TPR, APIC_PPR, APIC_LDR, APIC_SVR, APIC_LVT_TIMER, APIC_LVT_LINT0, APIC_TIMER_CURRENT, APIC_TIMER_DIVIDE,
      APIC_ISR + 4 * 16, APIC_IRR + 16, APIC_TMR + 4 * 16]) {
      expect(b.r(off)).toBe(a.r(off));
    }
    expect(b.m.clock.nextDeadline()).toBe(a.m.clock.nextDeadline());
    for (const x of [a, b]) {
      x.w(APIC_EOI, 0);
      x.w(APIC_EOI, 0);
    }
    const trace = (x: typeof a) => {
      const out: number[] = [];
      for (let i = 0; i < 40; i++) {
        x.elapse(5000);
        if (x.cpu.intr) {
          out.push(x.m.clock.now(), x.apic.acknowledge());
          x.w(APIC_EOI, 0);
        }
      }
      return out;
    };
    const ta = trace(a);
    expect(ta.length).toBeGreaterThan(4);
    expect(trace(b)).toEqual(ta);
  });

  it('round-trips the IOAPIC', () => {
    const a = rig();
    a.enable();
    a.iow(0, 0x05000000);
    a.iow(0x10 + 2 * 9, 0x49 | RTE_LEVEL);
    a.iow(0x11 + 2 * 9, 0);
    a.io.setIrq(9, true);
    a.iow(0x10 + 2 * 3, 0x43);
    const saved = JSON.parse(JSON.stringify(a.io.saveState()));
    const b = rig();
    b.enable();
    b.io.loadState(saved);
    expect(b.io.saveState()).toEqual(a.io.saveState());
    expect(b.ior(0)).toBe(0x05000000);
    expect(b.ior(0x10 + 2 * 9)).toBe(0x49 | RTE_LEVEL | RTE_REMOTE_IRR);
    // the restored remote IRR is cleared by the EOI broadcast and the still-high pin re-delivers
    b.io.eoi(0x49);
    expect(b.apic.acknowledge()).toBe(0x49);
    b.io.reset();
    expect(b.ior(0x10 + 2 * 9)).toBe(RTE_MASKED);
  });
});

describe('guest code', () => {
  it('programs the APIC timer periodic and counts interrupts with EOI in the handler', () => {
    const code = nasm(`bits 32
org 0x10000
      mov edi, 0x2000 + 0x40 * 8
      mov eax, handler
      mov [edi], ax
      mov word [edi + 2], 0x08
      mov word [edi + 4], 0x8e00
      shr eax, 16
      mov [edi + 6], ax
      mov edi, 0x2000 + 0xff * 8
      mov eax, spurious
      mov [edi], ax
      mov word [edi + 2], 0x08
      mov word [edi + 4], 0x8e00
      shr eax, 16
      mov [edi + 6], ax
      lidt [idtr]
      mov ecx, 0x1b
      rdmsr
      or eax, 0x800
      wrmsr
      mov dword [0xfee000f0], 0x1ff      ; software enable, spurious vector 0xFF
      mov dword [0xfee003e0], 0x3        ; divide by 16
      mov dword [0xfee00320], 0x20040    ; periodic, vector 0x40
      mov dword [0xfee00380], 1000       ; 1000 counts: 160 us at 100 MHz
      sti
idle: hlt
      cmp dword [count], 5
      jb idle
      cli
      mov dword [0xfee00380], 0          ; stop the timer
      mov eax, [count]
      mov ebx, [spur]
      mov ecx, [0xfee00100 + 0x40 / 32 * 16] ; ISR word of vector 0x40
      hlt
handler:
      inc dword [count]
      mov dword [0xfee000b0], 0          ; EOI
      iret
spurious:
      inc dword [spur]
      iret
idtr: dw 0x7ff
      dd 0x2000
count: dd 0
spur: dd 0
`);
    const m = new Machine({ memSize: 1 << 20, deterministic: true });
    const apic = new LocalApic(m);
    m.addDevice(apic);
    m.mem.load(0x10000, code);
    const cpu = m.cpu;
    const gdt = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0x9b, 0xcf, 0, 0xff, 0xff, 0, 0, 0, 0x93, 0xcf, 0]);
    m.mem.load(0x1000, gdt);
    cpu.gdtBase = 0x1000;
    cpu.gdtLimit = gdt.length - 1;
    cpu.cr0 |= CR0_PE;
    cpu.updateMode();
    cpu.setSegCache(CS, 0x08, 0, 0xffffffff, 0xc09b);
    for (const s of [DS, ES, SS, FS, GS]) cpu.setSegCache(s, 0x10, 0, 0xffffffff, 0xc093);
    cpu.rederiveSegments();
    cpu.eip = 0x10000;
    cpu.regs[4] = 0x80000;
    for (let i = 0; i < 100 && !m.stopReason; i++) m.run(100_000);
    expect(m.stopReason?.kind).toBe('halted');
    expect(cpu.regs[0]).toBe(5); // EAX: interrupts counted
    expect(cpu.regs[3]).toBe(0); // EBX: no spurious interrupts
    expect(cpu.regs[1]).toBe(0); // ECX: nothing left in service
    // five periods of 160 µs passed in guest time (the CPU slept through them)
    expect(m.clock.now()).toBeGreaterThanOrEqual(5 * 160_000);
    expect(m.clock.now()).toBeLessThan(6 * 160_000);
    expect(apic.enabled).toBe(true);
  });
});
