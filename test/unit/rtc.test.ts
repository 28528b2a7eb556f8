/**
 * Unit tests of the MC146818 RTC/CMOS on a bare I/O bus and a deterministic clock whose instruction count
 * (1 ns each) the test moves by hand.
 */
import { describe, it, expect } from 'vitest';
import { IoBus } from '../../core/iobus';
import { Clock } from '../../core/clock';
import { Rtc, type RtcOptions, DEFAULT_DETERMINISTIC_START } from '../../devices/rtc';

const MS = 1e6, S = 1e9;
// 2026-01-01 (a Thursday) 13:45:30 UTC
const START = Date.UTC(2026, 0, 1, 13, 45, 30);

class Rig {
  io = new IoBus();
  clock = new Clock(true);
  insns = 0;
  rises = 0;
  level = false;
  rtc: Rtc;
  constructor(opts: RtcOptions = { startTime: START }) {
    this.clock.instructions = () => this.insns;
    this.rtc = new Rtc(this, {
      ...opts,
      irq: (l) => {
        if (l && !this.level) this.rises++;
        this.level = l;
      },
    });
  }
  elapse(ns: number): void {
    const end = this.insns + ns;
    // step through the timers one by one so each fires at its own time
    for (;;) {
      const next = this.clock.nextDeadline();
      if (next > end) break;
      this.insns = Math.max(this.insns, Math.ceil(next));
      this.clock.runDue();
    }
    this.insns = end;
    this.clock.runDue();
  }
  rd(i: number): number {
    this.io.out8(0x70, i);
    return this.io.in8(0x71);
  }
  wr(i: number, v: number): void {
    this.io.out8(0x70, i);
    this.io.out8(0x71, v);
  }
  time(): number[] {
    return [0, 2, 4, 6, 7, 8, 9, 0x32].map((i) => this.rd(i));
  }
}

describe('Rtc time of day', () => {
  it('starts at the host time in BCD, 24-hour mode, with the standard register values', () => {
    const r = new Rig();
    expect(r.time()).toEqual([0x30, 0x45, 0x13, 0x05, 0x01, 0x01, 0x26, 0x20]);
    expect(r.rd(0x0a)).toBe(0x26);
    expect(r.rd(0x0b)).toBe(0x02);
    expect(r.rd(0x0c)).toBe(0x00);
    expect(r.rd(0x0d)).toBe(0x80);
    expect(r.io.in8(0x70)).toBe(0xff);
  });

  it('defaults to 2026-01-01 00:00:00 in deterministic mode', () => {
    const r = new Rig({});
    expect(DEFAULT_DETERMINISTIC_START).toBe(Date.UTC(2026, 0, 1));
    expect(r.time()).toEqual([0x00, 0x00, 0x00, 0x05, 0x01, 0x01, 0x26, 0x20]);
    expect(r.rtc.timeOfDay()).toBe(Date.UTC(2026, 0, 1));
  });

  it('accepts a Date and follows guest time from the clock', () => {
    const r = new Rig({ startTime: new Date(Date.UTC(2025, 11, 31, 23, 59, 58)) });
    expect(r.time()).toEqual([0x58, 0x59, 0x23, 0x04, 0x31, 0x12, 0x25, 0x20]);
    r.elapse(1.5 * S);
    expect(r.rd(0)).toBe(0x59);
    r.elapse(0.5 * S);
    expect(r.time()).toEqual([0x00, 0x00, 0x00, 0x05, 0x01, 0x01, 0x26, 0x20]);
    r.elapse(3600 * S);
    expect(r.rd(4)).toBe(0x01);
    expect(r.rtc.timeOfDay()).toBe(Date.UTC(2026, 0, 1, 1, 0, 0));
  });

  it('reports binary values with DM set', () => {
    const r = new Rig();
    r.wr(0x0b, 0x06);
    expect(r.time()).toEqual([30, 45, 13, 5, 1, 1, 26, 20]);
  });

  it('reports 12-hour time with the PM bit', () => {
    const r = new Rig();
    r.wr(0x0b, 0x00);
    expect(r.rd(4)).toBe(0x81); // 1 PM
    r.wr(0x0b, 0x04); // binary, 12 h
    expect(r.rd(4)).toBe(0x81);
    const m = new Rig({ startTime: Date.UTC(2026, 0, 1, 0, 15, 0) });
    m.wr(0x0b, 0x00);
    expect(m.rd(4)).toBe(0x12); // 12 AM
    m.elapse(12 * 3600 * S);
    expect(m.rd(4)).toBe(0x92); // 12 PM
    m.elapse(11 * 3600 * S);
    expect(m.rd(4)).toBe(0x91); // 11 PM
  });

  it('holds the time while SET is on and restarts from the written registers, keeping the phase', () => {
    const r = new Rig();
    r.elapse(0.3 * S);
    r.wr(0x0b, 0x82);
    r.elapse(5 * S);
    expect(r.rd(0)).toBe(0x30); // frozen
    r.wr(0, 0x00);
    r.wr(2, 0x00);
    r.wr(4, 0x08);
    r.wr(7, 0x15);
    r.wr(8, 0x06);
    r.wr(9, 0x30);
    expect(r.rd(4)).toBe(0x08);
    r.wr(0x0b, 0x02); // at t = 5.3 s
    expect(r.rtc.timeOfDay()).toBe(Date.UTC(2030, 5, 15, 8, 0, 0));
    expect(r.rd(6)).toBe(0x07); // 2030-06-15 is a Saturday
    r.elapse(0.69 * S);
    expect(r.rd(0)).toBe(0x00);
    r.elapse(0.02 * S); // the divider's second boundary at t = 6 s
    expect(r.rd(0)).toBe(0x01);
    r.elapse(60 * S);
    expect(r.rtc.timeOfDay()).toBe(Date.UTC(2030, 5, 15, 8, 1, 1));
  });

  it('applies writes without SET at once', () => {
    const r = new Rig();
    r.wr(2, 0x10);
    expect(r.time().slice(0, 3)).toEqual([0x30, 0x10, 0x13]);
    r.elapse(S);
    expect(r.time().slice(0, 3)).toEqual([0x31, 0x10, 0x13]);
    r.wr(0x32, 0x19);
    expect(r.rtc.timeOfDay()).toBe(Date.UTC(1926, 0, 1, 13, 10, 31));
  });

  it('sets UIP during the 244 µs before each update, not with SET', () => {
    const r = new Rig();
    r.elapse(S - 300_000);
    expect(r.rd(0x0a) & 0x80).toBe(0);
    r.elapse(100_000);
    expect(r.rd(0x0a)).toBe(0xa6);
    expect(r.rd(0)).toBe(0x30);
    r.elapse(200_001);
    expect(r.rd(0x0a)).toBe(0x26);
    expect(r.rd(0)).toBe(0x31);
    r.elapse(S - 100_000);
    r.wr(0x0b, 0x82);
    expect(r.rd(0x0a)).toBe(0x26);
  });

  it('stops while the divider is in reset; the first update comes 500 ms after it restarts', () => {
    const r = new Rig();
    r.wr(0x0a, 0x76);
    r.elapse(10 * S);
    expect(r.rd(0)).toBe(0x30);
    expect(r.rd(0x0a)).toBe(0x76);
    r.elapse(0.1 * S);
    r.wr(0x0a, 0x26);
    r.elapse(0.499 * S);
    expect(r.rd(0)).toBe(0x30);
    r.elapse(0.002 * S);
    expect(r.rd(0)).toBe(0x31);
  });
});

describe('Rtc interrupts', () => {
  it('raises periodic interrupts at the rate of register A and register C clears them', () => {
    const r = new Rig();
    r.wr(0x0a, 0x2f); // 2 Hz
    r.wr(0x0b, 0x42); // PIE
    r.elapse(0.499 * S);
    expect(r.level).toBe(false);
    r.elapse(0.002 * S);
    expect(r.level).toBe(true);
    expect(r.rd(0x0c)).toBe(0xc0);
    expect(r.level).toBe(false);
    expect(r.rd(0x0c)).toBe(0x00);
    r.elapse(0.499 * S);
    expect(r.level).toBe(true);
    expect(r.rises).toBe(2);
    // 1024 Hz: count interrupts over 100 ms, acknowledging each one
    r.rd(0x0c);
    r.wr(0x0a, 0x26);
    r.rises = 0;
    for (let t = 0; t < 100 * MS; t += 50_000) {
      r.elapse(50_000);
      if (r.level) r.rd(0x0c);
    }
    expect(r.rises).toBeGreaterThanOrEqual(102);
    expect(r.rises).toBeLessThanOrEqual(103);
  });

  it('raises the update-ended interrupt once a second', () => {
    const r = new Rig();
    r.elapse(0.25 * S);
    r.wr(0x0b, 0x12); // UIE
    r.elapse(0.74 * S);
    expect(r.level).toBe(false);
    r.elapse(0.02 * S);
    expect(r.level).toBe(true);
    expect(r.rd(0x0c)).toBe(0xd0); // IRQF | UF, and PF (1024 Hz) with PIE off
    expect(r.rd(0)).toBe(0x31);
    for (let i = 0; i < 5; i++) {
      r.elapse(S);
      expect(r.rd(0x0c)).toBe(0xd0);
    }
    expect(r.rises).toBe(6);
  });

  it('raises the alarm interrupt on a match, with 0xC0-0xFF as "don\'t care"', () => {
    const r = new Rig();
    r.wr(1, 0x35);
    r.wr(3, 0x45);
    r.wr(5, 0x13);
    r.wr(0x0b, 0x22); // AIE
    r.elapse(4.9 * S);
    expect(r.level).toBe(false);
    r.elapse(0.2 * S);
    expect(r.level).toBe(true);
    expect(r.rd(0x0c)).toBe(0xf0); // IRQF | AF, plus UF and PF: flags are set regardless of enables
    r.elapse(60 * S);
    expect(r.level).toBe(false); // the hour/minute no longer match
    // every minute at :00
    r.wr(1, 0x00);
    r.wr(3, 0xff);
    r.wr(5, 0xc0);
    r.rd(0x0c);
    r.rises = 0;
    r.elapse(24.8 * S); // 13:46:59.9
    expect(r.level).toBe(false);
    r.elapse(0.2 * S);
    expect(r.level).toBe(true);
    expect(r.rd(2)).toBe(0x47);
    expect(r.rd(0)).toBe(0x00);
    r.rd(0x0c);
    r.elapse(120 * S);
    expect(r.rises).toBe(2); // 13:47:00 and 13:48:00; at 13:49:00 the line is still high (not acknowledged)
    expect(r.rd(0x0c)).toBe(0xf0);
  });

  it('sets the flags without interrupts when disabled, and IRQF only for enabled ones', () => {
    const r = new Rig();
    r.elapse(1.2 * S);
    expect(r.rd(0x0c)).toBe(0x50); // PF (1024 Hz) and UF
    expect(r.rd(0x0c)).toBe(0x00);
    expect(r.rises).toBe(0);
    // enabling an interrupt whose flag is already set raises IRQ 8 at once
    r.elapse(1 * S);
    r.wr(0x0b, 0x12);
    expect(r.level).toBe(true);
    expect(r.rd(0x0c)).toBe(0xd0);
    expect(r.level).toBe(false);
  });

  it('clears UIE when SET goes high and stops update interrupts', () => {
    const r = new Rig();
    r.wr(0x0b, 0x12);
    r.wr(0x0b, 0x92);
    expect(r.rd(0x0b)).toBe(0x82);
    r.elapse(3 * S);
    expect(r.rises).toBe(0);
    expect(r.rd(0x0c) & 0x10).toBe(0);
  });

  it('reset() clears the interrupt enables and flags but keeps the time', () => {
    const r = new Rig();
    r.wr(0x0b, 0x76);
    r.elapse(1.5 * S);
    expect(r.level).toBe(true);
    r.rtc.reset();
    expect(r.level).toBe(false);
    expect(r.rd(0x0b)).toBe(0x06);
    expect(r.rd(0)).toBe(31);
    r.elapse(2 * S);
    expect(r.rises).toBe(1);
  });
});

describe('Rtc CMOS memory', () => {
  it('holds the memory-size bytes and the checksum', () => {
    const r = new Rig({ startTime: START, memSize: 32 << 20 });
    expect([r.rd(0x15), r.rd(0x16)]).toEqual([0x80, 0x02]);
    expect([r.rd(0x17), r.rd(0x18)]).toEqual([0x00, 0x7c]);
    expect([r.rd(0x30), r.rd(0x31)]).toEqual([0x00, 0x7c]);
    expect([r.rd(0x34), r.rd(0x35)]).toEqual([0x00, 0x01]);
    expect([r.rd(0x5b), r.rd(0x5c), r.rd(0x5d)]).toEqual([0, 0, 0]);
    r.rtc.setMemorySize(512 << 20);
    expect([r.rd(0x17), r.rd(0x18)]).toEqual([0xff, 0xff]);
    expect([r.rd(0x34), r.rd(0x35)]).toEqual([0x00, 0x1f]);
    r.rtc.setMemorySize(8 << 20);
    expect([r.rd(0x34), r.rd(0x35)]).toEqual([0, 0]);
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += r.rd(i);
    expect((r.rd(0x2e) << 8) | r.rd(0x2f)).toBe(sum);
    expect(r.rd(0x14)).toBe(0x06); // FPU, PS/2 mouse, VGA, no floppy
    expect(r.rd(0x10)).toBe(0x00);
    expect(r.rd(0x0e)).toBe(0x00);
    expect(r.rd(0x0f)).toBe(0x00);
    expect(r.rd(0x32)).toBe(0x20);
    expect(r.rd(0x3d)).toBe(0x12); // boot order c, a
    expect(r.rd(0x38)).toBe(0x30); // then d; the floppy signature is checked (QEMU without -no-fd-bootchk)
  });

  it('records floppies and the boot order', () => {
    const r = new Rig({ startTime: START, floppies: 1, bootOrder: 'dc' });
    expect(r.rd(0x10)).toBe(0x40);
    expect(r.rd(0x14)).toBe(0x07);
    expect(r.rd(0x3d)).toBe(0x23);
    expect(r.rd(0x38)).toBe(0x00);
    // -no-fd-bootchk; a new order replaces all three nibbles
    r.rtc.setBootOrder('n', false);
    expect(r.rd(0x3d)).toBe(0x04);
    expect(r.rd(0x38)).toBe(0x01);
  });

  it('is general RAM elsewhere, with an upper bank at 0x72/0x73', () => {
    const r = new Rig();
    r.wr(0x0f, 0x0a);
    r.wr(0x40, 0x5a);
    expect(r.rd(0x0f)).toBe(0x0a);
    expect(r.rd(0x40)).toBe(0x5a);
    r.io.out8(0x72, 0x40);
    r.io.out8(0x73, 0xa5);
    expect(r.rd(0x40)).toBe(0x5a);
    r.io.out8(0x72, 0x40);
    expect(r.io.in8(0x73)).toBe(0xa5);
    expect(r.rtc.peek(0xc0)).toBe(0xa5);
    r.wr(0x0d, 0);
    expect(r.rd(0x0d)).toBe(0x80);
  });

  it('exposes the NMI mask bit of the index register', () => {
    const r = new Rig();
    expect(r.rtc.nmiMasked).toBe(false);
    r.io.out8(0x70, 0x8f);
    expect(r.rtc.nmiMasked).toBe(true);
    r.io.out8(0x71, 0x0a);
    expect(r.rd(0x0f)).toBe(0x0a); // the index was 0x0F
    expect(r.rtc.nmiMasked).toBe(false);
  });
});

describe('Rtc state', () => {
  it('round-trips through saveState/loadState with timers in flight', () => {
    const a = new Rig();
    a.wr(0x0a, 0x2d); // 8 Hz
    a.wr(0x0b, 0x52); // PIE | UIE
    a.wr(0x40, 0x77);
    a.elapse(0.33 * S);
    a.rd(0x0c);
    a.elapse(0.01 * S);
    const snap = JSON.parse(JSON.stringify(a.rtc.saveState()));
    const b = new Rig({ startTime: Date.UTC(2000, 0, 1) });
    b.insns = a.insns;
    b.rtc.loadState(snap);
    expect(b.time()).toEqual(a.time());
    expect(b.rd(0x40)).toBe(0x77);
    const trace = (r: Rig): string[] => {
      const out: string[] = [];
      for (let i = 0; i < 300; i++) {
        r.elapse(10 * MS);
        if (r.level) out.push(`${i}:${r.rd(0x0c).toString(16)}:${r.rd(0)}`);
      }
      return out;
    };
    const ta = trace(a), tb = trace(b);
    expect(tb).toEqual(ta);
    expect(ta.length).toBeGreaterThan(20);
    expect(b.rtc.saveState()).toEqual(a.rtc.saveState());
  });
});
