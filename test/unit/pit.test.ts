/**
 * Unit tests of the 8254 PIT and port 0x61 (devices/pit.ts) on a bare I/O bus with a deterministic clock
 * whose instruction count (1 ns each) the test moves by hand.
 */
import { describe, it, expect, beforeEach } from 'vitest';
import { IoBus } from '../../core/iobus';
import { Clock } from '../../core/clock';
import { Pit8254, PIT_HZ, pitNs, pitTicks } from '../../devices/pit';

class Rig {
  io = new IoBus();
  clock = new Clock(true);
  insns = 0;
  /** [guest ns, level] of every IRQ 0 change */
  irq: [number, boolean][] = [];
  pit: Pit8254;
  constructor() {
    this.clock.instructions = () => this.insns;
    this.pit = new Pit8254(this, (l) => this.irq.push([this.clock.now(), l]));
    expect(this.irq).toEqual([[0, true]]); // OUT starts high
    this.irq.length = 0;
  }
  /** moves time to `ns`, firing each timer at its deadline as the machine's run loop does */
  to(ns: number): void {
    for (;;) {
      const next = this.clock.nextDeadline();
      if (next > ns) break;
      this.insns = Math.max(this.insns, Math.ceil(next));
      this.clock.runDue();
    }
    this.insns = ns;
    this.clock.runDue();
  }
  ticks(t: number): void {
    this.to(this.insns + pitNs(t));
  }
  /** program channel c: control word then count (lobyte/hibyte) */
  program(c: number, mode: number, count: number, bcd = false): void {
    this.io.out8(0x43, (c << 6) | 0x30 | (mode << 1) | (bcd ? 1 : 0));
    this.io.out8(0x40 + c, count & 0xff);
    this.io.out8(0x40 + c, count >> 8);
  }
  read(c: number): number {
    const lo = this.io.in8(0x40 + c);
    return lo | (this.io.in8(0x40 + c) << 8);
  }
  latch(c: number): number {
    this.io.out8(0x43, c << 6);
    return this.read(c);
  }
  rises(): number[] {
    return this.irq.filter(([, l]) => l).map(([t]) => t);
  }
}

describe('PIT tick arithmetic', () => {
  it('converts between ns and ticks exactly', () => {
    expect(pitTicks(1e9)).toBe(PIT_HZ);
    expect(pitTicks(3600e9)).toBe(3600 * PIT_HZ);
    for (const t of [1, 2, 1193, 11932, 65536, 1193182, 1193183, 123456789012]) {
      const ns = pitNs(t);
      expect(pitTicks(ns)).toBe(t);
      expect(pitTicks(ns - 1)).toBe(t - 1);
    }
  });
});

describe('Pit8254', () => {
  let r: Rig;
  let io: IoBus;
  beforeEach(() => {
    r = new Rig();
    io = r.io;
  });

  it('owns 0x40–0x43 and 0x61', () => {
    expect(io.ownerOf(0x40)).toBe('pit');
    expect(io.ownerOf(0x43)).toBe('pit');
    expect(io.ownerOf(0x61)).toBe('port-b');
  });

  it('mode 2 raises IRQ 0 every N ticks, exactly, with no drift', () => {
    r.program(0, 2, 1193); // ~1000 Hz
    expect(r.pit.irqAsserted).toBe(true);
    r.to(1_000_000_000); // one second
    const rises = r.rises();
    expect(rises.length).toBe(Math.floor(PIT_HZ / 1193));
    rises.forEach((t, i) => expect(t).toBe(pitNs((i + 1) * 1193)));
    // the low pulse lasts one tick
    const falls = r.irq.filter(([, l]) => !l).map(([t]) => t);
    expect(falls[0]).toBe(pitNs(1192));
    // the counter counts N..1
    r.to(pitNs(1193 * 1000 + 100));
    expect(r.latch(0)).toBe(1093);
  });

  it('mode 2 at 100 Hz keeps exact periods over ten seconds', () => {
    r.program(0, 2, 11932);
    r.to(10_000_000_000);
    const rises = r.rises();
    expect(rises.length).toBe(Math.floor((10 * PIT_HZ) / 11932));
    expect(rises[rises.length - 1]).toBe(pitNs(rises.length * 11932));
  });

  it('mode 0 counts down once, then raises OUT and stops interrupting', () => {
    r.program(0, 0, 1000);
    expect(r.pit.irqAsserted).toBe(false);
    r.ticks(400);
    expect(r.latch(0)).toBe(600);
    r.to(pitNs(1000) - 1);
    expect(r.pit.irqAsserted).toBe(false);
    r.to(pitNs(1000));
    expect(r.pit.irqAsserted).toBe(true);
    expect(r.clock.nextDeadline()).toBe(Infinity); // no timer once expired
    r.to(pitNs(1010));
    expect(r.latch(0)).toBe(0x10000 - 10); // wraps and keeps counting
  });

  it('mode 0: the first byte of a new count stops counting and drops OUT', () => {
    r.program(0, 0, 100);
    r.ticks(200);
    expect(r.pit.irqAsserted).toBe(true);
    io.out8(0x40, 50);
    expect(r.pit.irqAsserted).toBe(false);
    r.ticks(100);
    expect(r.pit.irqAsserted).toBe(false);
    io.out8(0x40, 0);
    const t0 = r.clock.now();
    r.to(t0 + pitNs(49));
    expect(r.pit.irqAsserted).toBe(false);
    r.to(t0 + pitNs(50));
    expect(r.pit.irqAsserted).toBe(true);
  });

  it('mode 3 makes a square wave (odd and even counts) and reads down by two', () => {
    r.program(0, 3, 10);
    r.ticks(3);
    expect(r.pit.count(0)).toBe(4);
    expect(r.pit.out(0)).toBe(true);
    r.to(pitNs(5));
    expect(r.pit.out(0)).toBe(false);
    expect(r.pit.count(0)).toBe(10);
    r.to(pitNs(10));
    expect(r.pit.out(0)).toBe(true);
    r.to(pitNs(1000));
    expect(r.rises().length).toBe(100);
    const r2 = new Rig();
    r2.program(0, 3, 7); // high 4 ticks, low 3
    r2.to(pitNs(3));
    expect(r2.pit.out(0)).toBe(true);
    expect(r2.pit.count(0)).toBe(2);
    r2.to(pitNs(4));
    expect(r2.pit.out(0)).toBe(false);
    r2.to(pitNs(7));
    expect(r2.pit.out(0)).toBe(true);
  });

  it('mode 4 strobes OUT low for one tick at terminal count, once', () => {
    r.program(0, 4, 500);
    expect(r.pit.irqAsserted).toBe(true);
    r.to(pitNs(2000));
    expect(r.irq).toEqual([
      [pitNs(500), false],
      [pitNs(501), true],
    ]);
    expect(r.clock.nextDeadline()).toBe(Infinity);
  });

  it('mode 1 and mode 5 wait for a rising gate (channel 2 via port 0x61)', () => {
    r.program(2, 1, 300);
    expect(r.pit.out(2)).toBe(true);
    r.ticks(1000);
    expect(r.pit.out(2)).toBe(true); // no trigger yet
    io.out8(0x61, 0x01); // gate 2 rises: trigger
    expect(r.pit.out(2)).toBe(false);
    r.ticks(299);
    expect(io.in8(0x61) & 0x20).toBe(0);
    r.ticks(1);
    expect(io.in8(0x61) & 0x20).toBe(0x20);
    io.out8(0x61, 0x00);
    r.program(2, 5, 20);
    io.out8(0x61, 0x01);
    r.ticks(20);
    expect(r.pit.out(2)).toBe(false);
    r.ticks(1);
    expect(r.pit.out(2)).toBe(true);
  });

  it('channel 2 in mode 0 gated by port 0x61, as Linux calibrates the TSC', () => {
    io.out8(0x61, 0x00);
    r.program(2, 0, 0xffff);
    r.ticks(5000);
    expect(r.read(2)).toBe(0xffff); // gate low: not counting
    io.out8(0x61, 0x01);
    const t0 = r.clock.now();
    expect(io.in8(0x61) & 0x21).toBe(0x01);
    r.to(t0 + pitNs(0x1234));
    expect(r.read(2)).toBe(0xffff - 0x1234);
    // gate low pauses mode 0, gate high resumes
    io.out8(0x61, 0x00);
    r.ticks(100);
    expect(r.read(2)).toBe(0xffff - 0x1234);
    io.out8(0x61, 0x01);
    r.to(r.clock.now() + pitNs(0xffff - 0x1234));
    expect(io.in8(0x61) & 0x20).toBe(0x20);
  });

  it('port 0x61 keeps bits 0–3 and toggles the refresh bit with time', () => {
    io.out8(0x61, 0xff);
    expect(io.in8(0x61) & 0x0f).toBe(0x0f);
    r.to(0);
    const a = io.in8(0x61) & 0x10;
    r.to(15085);
    const b = io.in8(0x61) & 0x10;
    r.to(30170);
    const c = io.in8(0x61) & 0x10;
    expect(a).toBe(0);
    expect(b).toBe(0x10);
    expect(c).toBe(0);
  });

  it('latches the count: later reads return the latched value until read out', () => {
    r.program(0, 2, 50000);
    r.ticks(100);
    io.out8(0x43, 0x00);
    r.ticks(300);
    expect(r.read(0)).toBe(49900);
    expect(r.read(0)).toBe(49600); // unlatched again
    // a second latch before reading is ignored
    io.out8(0x43, 0x00);
    r.ticks(10);
    io.out8(0x43, 0x00);
    expect(r.read(0)).toBe(49600);
  });

  it('lobyte-only and hibyte-only access', () => {
    io.out8(0x43, 0x10 | (2 << 1)); // channel 0, LSB only, mode 2
    io.out8(0x40, 200);
    r.ticks(50);
    expect(io.in8(0x40)).toBe(150);
    io.out8(0x43, 0x20 | (2 << 1)); // MSB only
    io.out8(0x40, 0x02); // count 0x200
    r.ticks(0x10);
    expect(io.in8(0x40)).toBe(0x01);
  });

  it('counts in BCD', () => {
    r.program(0, 2, 0x1000, true); // 1000 decimal
    r.ticks(1);
    expect(r.latch(0)).toBe(0x0999);
    r.ticks(998);
    expect(r.latch(0)).toBe(0x0001);
    expect(r.rises().length).toBe(0);
    r.ticks(1);
    expect(r.rises().length).toBe(1);
    r.program(1, 0, 0, true); // 0 = 10000 in BCD
    r.ticks(1);
    expect(r.latch(1)).toBe(0x9999);
  });

  it('read-back latches status and counts', () => {
    r.program(2, 0, 100);
    io.out8(0x61, 0x01);
    r.ticks(150);
    r.program(1, 3, 0x400);
    r.ticks(5);
    io.out8(0x43, 0xc0 | 0x08 | 0x04); // count and status of channels 1 and 2
    r.ticks(50);
    // channel 2: OUT high, count loaded, LSB/MSB, mode 0, binary
    expect(io.in8(0x42)).toBe(0x80 | 0x30);
    expect(r.read(2)).toBe((100 - 155 + 0x10000) & 0xffff);
    expect(io.in8(0x41)).toBe(0x80 | 0x30 | (3 << 1));
    expect(r.read(1)).toBe(0x400 - 10);
    // status only, right after a control word: null count set, OUT low in mode 0
    io.out8(0x43, 0xb0);
    io.out8(0x43, 0xe8);
    expect(io.in8(0x42)).toBe(0x40 | 0x30);
  });

  it('a count written in mode 2 takes effect when the current period ends', () => {
    r.program(0, 2, 1000);
    r.ticks(300);
    io.out8(0x40, 500 & 0xff);
    io.out8(0x40, 500 >> 8);
    expect(r.pit.count(0)).toBe(700);
    r.to(pitNs(3000));
    expect(r.rises()).toEqual([pitNs(1000), pitNs(1500), pitNs(2000), pitNs(2500), pitNs(3000)]);
  });

  it('saves and restores exactly, the timer in flight included', () => {
    r.program(0, 2, 1193);
    r.program(2, 0, 40000);
    io.out8(0x61, 0x03);
    r.ticks(5000);
    io.out8(0x43, 0x80); // a pending latch on channel 2
    const s = JSON.parse(JSON.stringify(r.pit.saveState()));
    const r2 = new Rig();
    r2.insns = r.insns;
    r2.pit.loadState(s);
    r2.irq = [];
    expect(r2.clock.nextDeadline()).toBe(r.clock.nextDeadline());
    expect(r2.read(2)).toBe(r.read(2));
    const t = r.insns + 10_000_000;
    r.irq = [];
    r.to(t);
    r2.to(t);
    expect(r2.rises()).toEqual(r.rises());
    expect(r2.pit.count(0)).toBe(r.pit.count(0));
    expect(r2.read(2)).toBe(r.read(2));
    expect(r2.io.in8(0x61)).toBe(r.io.in8(0x61));
  });

  it('reset stops channel 0 and cancels its timer', () => {
    r.program(0, 2, 100);
    r.pit.reset();
    expect(r.clock.nextDeadline()).toBe(Infinity);
    expect(r.pit.irqAsserted).toBe(true);
    expect(r.pit.out(2)).toBe(true);
  });
});
