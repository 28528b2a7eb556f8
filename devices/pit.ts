/**
 * The 8254 programmable interval timer at 0x40–0x43 and the PC's system control port B at 0x61.
 *
 * Channel 0 drives IRQ 0, channel 1 (the old DRAM refresh timer) has no output wired, channel 2 feeds
 * the speaker; its gate is port 0x61 bit 0 and its output reads back as port 0x61 bit 5.
 *
 * Time: the counters run at 1 193 182 Hz derived from the machine's Clock (guest ns), never from wall
 * time, so in deterministic mode every read is exact and reproducible. A loaded counter keeps the guest
 * time it started at (its anchor) plus a tick offset; its elapsed tick count is computed exactly in
 * integer arithmetic (no drift, however long it runs), and the counter value and OUT level are pure
 * functions of that count and the mode. The only timers are channel 0's OUT transitions, scheduled with
 * clock.at() for the exact guest ns at which the next transition happens, and only while one can happen
 * (a mode 0 count that has expired, a stopped gate or an unloaded counter schedule nothing).
 *
 * Modes 0–5 (6 and 7 alias 2 and 3), binary and BCD, LSB/MSB/LSB-then-MSB access, counter latch,
 * read-back (count and status latches), gate semantics per the datasheet (modes 0/2/3/4: gate low stops
 * counting, in 2/3 it also forces OUT high and a rising gate reloads; modes 1/5: a rising gate triggers).
 * A count is taken into the counting element when written (the datasheet's one-clock load delay is not
 * modelled). In modes 2 and 3 a new count written while counting takes effect at the end of the current
 * period, as on the real part.
 */
import type { Clock } from '../core/clock';
import type { IoBus } from '../core/iobus';
import type { IrqLine } from '../core/host';
import type { Device } from '../core/machine';

export const PIT_HZ = 1193182;
export const PIT_PORT = 0x40;
export const PORT_B = 0x61;
/** the DRAM refresh request toggles (port 0x61 bit 4) every 15.085 µs */
const REFRESH_NS = 15085;
const NS = 1e9;

/** exact floor(a / b) for non-negative integers a < 2^53 */
function floorDiv(a: number, b: number): number {
  return (a - (a % b)) / b;
}

/** the number of whole PIT ticks in `ns` guest nanoseconds (exact) */
export function pitTicks(ns: number): number {
  if (ns <= 0) return 0;
  const n = Math.floor(ns);
  const s = floorDiv(n, NS);
  const r = n - s * NS;
  return s * PIT_HZ + floorDiv(r * PIT_HZ, NS);
}

/** the smallest whole ns count holding `t` PIT ticks (exact; pitTicks(pitNs(t)) >= t) */
export function pitNs(t: number): number {
  if (t <= 0) return 0;
  const s = floorDiv(t, PIT_HZ);
  const r = t - s * PIT_HZ;
  return s * NS + floorDiv(r * NS + PIT_HZ - 1, PIT_HZ);
}

function fromBcd(v: number): number {
  return ((v >> 12) & 15) * 1000 + ((v >> 8) & 15) * 100 + ((v >> 4) & 15) * 10 + (v & 15);
}

function toBcd(v: number): number {
  return (Math.floor(v / 1000) % 10 << 12) | (Math.floor(v / 100) % 10 << 8) | (Math.floor(v / 10) % 10 << 4) | v % 10;
}

export interface PitChannelState {
  mode: number;
  bcd: boolean;
  rw: number;
  /** the count register as last written (raw, BCD if bcd) */
  cr: number;
  /** the count in effect (1..65536 binary, 1..10000 BCD) */
  n: number;
  /** a count written in mode 2/3 while counting: the count and the tick it takes effect at, or -1 */
  pendingN: number;
  pendingAt: number;
  /** the counting element holds a count (or, modes 1/5, has been triggered) */
  armed: boolean;
  /** the counter is counting (armed and, where it matters, gate high) */
  running: boolean;
  /** ticks counted before the anchor */
  d0: number;
  /** guest ns since the anchor (when running) */
  sinceAnchor: number;
  gate: boolean;
  /** LSB written, MSB awaited (RW mode 3) */
  writeHigh: boolean;
  writeLow: number;
  /** next unlatched read returns the MSB (RW mode 3) */
  readHigh: boolean;
  /** latched count bytes still to be read, first first */
  latch: number[];
  /** latched status byte, or -1 */
  status: number;
  nullCount: boolean;
  crValid: boolean;
  /** the value the counter holds while not counting */
  held: number;
  /** OUT level while unarmed */
  outIdle: boolean;
}

export interface PitState {
  channels: PitChannelState[];
  portB: number;
  irqLevel: boolean;
}

/** what the PIT needs from the machine */
export interface PitHost {
  readonly io: IoBus;
  readonly clock: Clock;
}

class Channel {
  mode = 0;
  bcd = false;
  rw = 3;
  cr = 0;
  n = 0x10000;
  pendingN = -1;
  pendingAt = 0;
  armed = false;
  running = false;
  d0 = 0;
  anchor = 0;
  gate: boolean;
  writeHigh = false;
  writeLow = 0;
  readHigh = false;
  latch: number[] = [];
  status = -1;
  nullCount = true;
  /** a complete count has been written since the control word */
  crValid = false;
  held = 0;
  outIdle = true;

  constructor(gate: boolean) {
    this.gate = gate;
  }

  powerOn(gate: boolean): void {
    this.mode = 0;
    this.bcd = false;
    this.rw = 3;
    this.cr = 0;
    this.n = 0x10000;
    this.pendingN = -1;
    this.pendingAt = 0;
    this.armed = false;
    this.running = false;
    this.d0 = 0;
    this.anchor = 0;
    this.gate = gate;
    this.writeHigh = false;
    this.writeLow = 0;
    this.readHigh = false;
    this.latch = [];
    this.status = -1;
    this.nullCount = true;
    this.crValid = false;
    this.held = 0;
    // the power-on OUT level is undefined on the real part; high means programming a periodic mode
    // does not make a rising edge (a stray IRQ 0) out of nothing
    this.outIdle = true;
  }

  private get modulus(): number {
    return this.bcd ? 10000 : 0x10000;
  }

  /** ticks counted at guest time `now` (taking in a pending mode 2/3 count once its period ends) */
  elapsed(now: number): number {
    if (!this.armed) return 0;
    let d = this.running ? this.d0 + pitTicks(now - this.anchor) : this.d0;
    if (this.pendingN >= 0 && d >= this.pendingAt) {
      this.d0 -= this.pendingAt;
      d -= this.pendingAt;
      this.n = this.pendingN;
      this.pendingN = -1;
      this.nullCount = false;
    }
    return d;
  }

  /** OUT after d ticks */
  outAt(d: number): boolean {
    if (!this.armed) return this.outIdle;
    const n = this.n;
    switch (this.mode) {
      case 0:
      case 1:
        return d >= n;
      case 2:
        if (!this.gate) return true;
        return n === 1 || d % n !== n - 1;
      case 3:
        if (!this.gate) return true;
        return d % n < (n + 1) >> 1;
      default: // 4, 5
        return d !== n;
    }
  }

  /** the counting element after d ticks */
  countAt(d: number): number {
    if (!this.armed) return this.held;
    const n = this.n;
    const mod = this.modulus;
    let v: number;
    switch (this.mode) {
      case 2: {
        v = n - (d % n);
        break;
      }
      case 3: {
        const p = d % n;
        const high = (n + 1) >> 1;
        if (n % 2 === 0) {
          v = p < high ? n - 2 * p : n - 2 * (p - high);
        } else if (p < high) {
          v = p === 0 ? n : n - 1 - 2 * (p - 1);
        } else {
          const q = p - high;
          v = q === 0 ? n : n - 3 - 2 * (q - 1);
        }
        break;
      }
      default:
        v = (((n - d) % mod) + mod) % mod;
        break;
    }
    v %= mod; // the full count (65536 / 10000) reads as 0
    return v;
  }

  /** the first tick count after d at which OUT changes, or Infinity */
  nextTransition(d: number): number {
    if (!this.armed || !this.running) return Infinity;
    const n = this.n;
    let t: number;
    switch (this.mode) {
      case 0:
      case 1:
        t = d < n ? n : Infinity;
        break;
      case 2: {
        if (n === 1) {
          t = Infinity;
          break;
        }
        const p = d % n;
        t = p < n - 1 ? d + (n - 1 - p) : d + 1;
        break;
      }
      case 3: {
        const high = (n + 1) >> 1;
        if (high === n) {
          t = Infinity;
          break;
        }
        const p = d % n;
        t = p < high ? d + (high - p) : d + (n - p);
        break;
      }
      default:
        t = d < n ? n : d === n ? n + 1 : Infinity;
        break;
    }
    if (this.pendingN >= 0 && this.pendingAt > d && this.pendingAt < t) t = this.pendingAt;
    return t;
  }

  /** the guest ns at which the element reaches tick count t (it must be running) */
  timeOf(t: number): number {
    return this.anchor + pitNs(t - this.d0);
  }

  /** starts counting from the count n at guest time now */
  start(now: number): void {
    this.armed = true;
    this.running = this.mode === 1 || this.mode === 5 || this.gate;
    this.d0 = 0;
    this.anchor = now;
    this.pendingN = -1;
    this.nullCount = false;
  }

  /** freezes the count (gate low in modes 0/4) */
  pause(now: number): void {
    if (!this.running) return;
    this.d0 = this.elapsed(now);
    this.running = false;
  }

  /** resumes counting (gate high again in modes 0/4) */
  resume(now: number): void {
    if (this.running || !this.armed) return;
    this.anchor = now;
    this.running = true;
  }

  countFromCr(): number {
    const v = this.bcd ? fromBcd(this.cr) : this.cr;
    return v === 0 ? this.modulus : v;
  }

  latchCount(now: number): void {
    if (this.latch.length) return;
    const v = this.bcd ? toBcd(this.countAt(this.elapsed(now))) : this.countAt(this.elapsed(now));
    switch (this.rw) {
      case 1:
        this.latch = [v & 0xff];
        break;
      case 2:
        this.latch = [v >> 8];
        break;
      default:
        this.latch = this.readHigh ? [v >> 8, v & 0xff] : [v & 0xff, v >> 8];
        break;
    }
  }

  statusByte(now: number): number {
    const out = this.outAt(this.elapsed(now));
    return (out ? 0x80 : 0) | (this.nullCount ? 0x40 : 0) | (this.rw << 4) | (this.mode << 1) | (this.bcd ? 1 : 0);
  }
}

/** the 8254 and port 0x61 */
export class Pit8254 implements Device {
  readonly name = 'pit';
  private readonly clock: Clock;
  private readonly ch: Channel[];
  private irq: IrqLine | null;
  /** channel 0's OUT as driven onto IRQ 0 (high at power-on, see Channel.powerOn) */
  private irqLevel = true;
  private timer = -1;
  private timerAt = 0;
  /** port 0x61 bits 0–3: gate 2, speaker data, parity and I/O check disables */
  private portB = 0;

  constructor(host: PitHost, irq: IrqLine | null = null) {
    this.clock = host.clock;
    this.irq = irq;
    this.ch = [new Channel(true), new Channel(true), new Channel(false)];
    if (irq) irq(this.irqLevel);
    host.io.register('pit', PIT_PORT, 4, {
      read8: (p) => this.read(p & 3),
      write8: (p, v) => this.write(p & 3, v),
    });
    host.io.register('port-b', PORT_B, 1, {
      read8: () => this.readPortB(),
      write8: (_p, v) => this.writePortB(v),
    });
  }

  /** connects (or disconnects) channel 0's output; the line is driven to its current level */
  connectIrq(irq: IrqLine | null): void {
    this.irq = irq;
    if (irq) irq(this.irqLevel);
  }

  // ---------------------------------------------------------------------------------------------
  // host-visible helpers (tests, speaker emulation)
  // ---------------------------------------------------------------------------------------------

  /** OUT of channel c now */
  out(c: number): boolean {
    const ch = this.ch[c];
    return ch.outAt(ch.elapsed(this.clock.now()));
  }

  /** the counting element of channel c now (binary) */
  count(c: number): number {
    const ch = this.ch[c];
    return ch.countAt(ch.elapsed(this.clock.now()));
  }

  /** the speaker is sounding a tone: gate 2 and speaker data on, channel 2 in mode 3 */
  get speakerFrequency(): number {
    const ch = this.ch[2];
    if ((this.portB & 3) !== 3 || ch.mode !== 3 || !ch.armed) return 0;
    return PIT_HZ / ch.n;
  }

  /** the level channel 0 drives onto IRQ 0 */
  get irqAsserted(): boolean {
    return this.irqLevel;
  }

  // ---------------------------------------------------------------------------------------------
  // ports
  // ---------------------------------------------------------------------------------------------

  private read(reg: number): number {
    if (reg === 3) return 0xff; // the control word register cannot be read
    const ch = this.ch[reg];
    const now = this.clock.now();
    if (ch.status >= 0) {
      const v = ch.status;
      ch.status = -1;
      return v;
    }
    if (ch.latch.length) return ch.latch.shift()!;
    let v = ch.countAt(ch.elapsed(now));
    if (ch.bcd) v = toBcd(v);
    switch (ch.rw) {
      case 1:
        return v & 0xff;
      case 2:
        return v >> 8;
      default:
        ch.readHigh = !ch.readHigh;
        return ch.readHigh ? v & 0xff : v >> 8;
    }
  }

  private write(reg: number, v: number): void {
    const now = this.clock.now();
    if (reg === 3) {
      this.control(v, now);
      return;
    }
    const ch = this.ch[reg];
    switch (ch.rw) {
      case 1:
        ch.cr = v;
        break;
      case 2:
        ch.cr = v << 8;
        break;
      default:
        if (!ch.writeHigh) {
          ch.writeLow = v;
          ch.writeHigh = true;
          if (ch.mode === 0) {
            // mode 0: writing the first byte stops the count and drops OUT
            ch.held = ch.countAt(ch.elapsed(now));
            ch.armed = false;
            ch.running = false;
            ch.outIdle = false;
            if (reg === 0) this.updateIrq();
          }
          return;
        }
        ch.writeHigh = false;
        ch.cr = ch.writeLow | (v << 8);
        break;
    }
    this.loadCount(reg, now);
  }

  /** a complete count was written to channel c's count register */
  private loadCount(c: number, now: number): void {
    const ch = this.ch[c];
    const n = ch.countFromCr();
    ch.nullCount = true;
    ch.crValid = true;
    switch (ch.mode) {
      case 0:
      case 4:
        ch.n = n;
        ch.start(now);
        break;
      case 2:
      case 3:
        if (ch.armed && ch.running) {
          // takes effect when the current period ends
          const d = ch.elapsed(now);
          ch.pendingN = n;
          ch.pendingAt = d - (d % ch.n) + ch.n;
        } else if (ch.armed) {
          // gate low: loaded at the next rising gate
          ch.n = n;
        } else {
          ch.n = n;
          ch.start(now);
        }
        break;
      default:
        // modes 1 and 5 wait for a rising gate
        break;
    }
    if (c === 0) this.updateIrq();
  }

  private control(v: number, now: number): void {
    const sel = v >> 6;
    if (sel === 3) {
      // read-back: bit 5 clear latches counts, bit 4 clear latches status, bits 1–3 select counters
      for (let c = 0; c < 3; c++) {
        if (!(v & (2 << c))) continue;
        const ch = this.ch[c];
        if (!(v & 0x20)) ch.latchCount(now);
        if (!(v & 0x10) && ch.status < 0) ch.status = ch.statusByte(now);
      }
      return;
    }
    const ch = this.ch[sel];
    const rw = (v >> 4) & 3;
    if (rw === 0) {
      ch.latchCount(now);
      return;
    }
    ch.held = ch.countAt(ch.elapsed(now));
    let mode = (v >> 1) & 7;
    if (mode > 5) mode -= 4;
    ch.mode = mode;
    ch.bcd = (v & 1) !== 0;
    ch.rw = rw;
    ch.writeHigh = false;
    ch.readHigh = false;
    ch.latch = [];
    ch.status = -1;
    ch.armed = false;
    ch.running = false;
    ch.pendingN = -1;
    ch.nullCount = true;
    ch.crValid = false;
    // a control word sets OUT low in mode 0 and high in the others
    ch.outIdle = mode !== 0;
    if (sel === 0) this.updateIrq();
  }

  private readPortB(): number {
    const now = this.clock.now();
    const refresh = Math.floor(now / REFRESH_NS) & 1;
    return (this.portB & 0x0f) | (refresh << 4) | (this.out(2) ? 0x20 : 0);
  }

  private writePortB(v: number): void {
    this.portB = v & 0x0f;
    this.setGate(2, (v & 1) !== 0);
  }

  /** drives channel c's gate input */
  setGate(c: number, level: boolean): void {
    const ch = this.ch[c];
    if (ch.gate === level) return;
    const now = this.clock.now();
    const d = ch.elapsed(now);
    ch.gate = level;
    switch (ch.mode) {
      case 0:
      case 4:
        if (level) ch.resume(now);
        else ch.pause(now);
        if (ch.armed) ch.held = ch.countAt(d);
        break;
      case 2:
      case 3:
        if (level) {
          // a rising gate reloads the count and restarts the period
          if (ch.armed) {
            if (ch.pendingN >= 0) ch.n = ch.pendingN;
            ch.start(now);
          }
        } else if (ch.armed) {
          ch.d0 = d;
          ch.running = false;
        }
        break;
      default:
        // modes 1 and 5: a rising gate (re)triggers with the count register's value
        if (level && ch.crValid) {
          ch.n = ch.countFromCr();
          ch.start(now);
        }
        break;
    }
    if (c === 0) this.updateIrq();
  }

  // ---------------------------------------------------------------------------------------------
  // channel 0 → IRQ 0
  // ---------------------------------------------------------------------------------------------

  private drive(level: boolean): void {
    if (level === this.irqLevel) return;
    this.irqLevel = level;
    if (this.irq) this.irq(level);
  }

  /** drives IRQ 0 to channel 0's OUT now and schedules the next transition */
  private updateIrq(): void {
    const ch = this.ch[0];
    const now = this.clock.now();
    const d = ch.elapsed(now);
    this.drive(ch.outAt(d));
    this.schedule(d);
  }

  private schedule(d: number): void {
    if (this.timer >= 0) {
      this.clock.cancel(this.timer);
      this.timer = -1;
    }
    const ch = this.ch[0];
    const t = ch.nextTransition(d);
    if (t === Infinity) return;
    this.armTimer(ch.timeOf(t), t);
  }

  private armTimer(at: number, t: number): void {
    this.timerAt = at;
    this.timer = this.clock.at(at, () => this.transition(t));
  }

  /** channel 0's OUT changes at tick t (the timer may run late in real-time mode) */
  private transition(t: number): void {
    this.timer = -1;
    const ch = this.ch[0];
    const now = this.clock.now();
    const d0Before = ch.d0;
    let d = ch.elapsed(now);
    // a pending mode 2/3 count taken in just now restarts the tick numbering at its period boundary
    t -= d0Before - ch.d0;
    const level = ch.outAt(t);
    this.drive(level);
    if (d < t) d = t;
    if (d > t) {
      // late: collapse the transitions missed since t into one pulse so an edge is not lost
      const nowLevel = ch.outAt(d);
      if (nowLevel !== level) {
        this.drive(nowLevel);
      } else if (ch.nextTransition(t) <= d) {
        this.drive(!level);
        this.drive(level);
      }
    }
    this.schedule(d);
  }

  // ---------------------------------------------------------------------------------------------
  // Device
  // ---------------------------------------------------------------------------------------------

  reset(): void {
    this.ch[0].powerOn(true);
    this.ch[1].powerOn(true);
    this.ch[2].powerOn(false);
    this.portB = 0;
    this.updateIrq();
  }

  saveState(): PitState {
    const now = this.clock.now();
    return {
      channels: this.ch.map((c) => {
        return {
          mode: c.mode,
          bcd: c.bcd,
          rw: c.rw,
          cr: c.cr,
          n: c.n,
          pendingN: c.pendingN,
          pendingAt: c.pendingAt,
          armed: c.armed,
          running: c.running,
          d0: c.d0,
          sinceAnchor: now - c.anchor,
          gate: c.gate,
          writeHigh: c.writeHigh,
          writeLow: c.writeLow,
          readHigh: c.readHigh,
          latch: c.latch.slice(),
          status: c.status,
          nullCount: c.nullCount,
          crValid: c.crValid,
          held: c.held,
          outIdle: c.outIdle,
        };
      }),
      portB: this.portB,
      irqLevel: this.irqLevel,
    };
  }

  loadState(state: unknown): void {
    const s = state as PitState;
    const now = this.clock.now();
    s.channels.forEach((cs, i) => {
      const c = this.ch[i];
      c.mode = cs.mode & 7;
      c.bcd = !!cs.bcd;
      c.rw = cs.rw & 3;
      c.cr = cs.cr & 0xffff;
      c.n = cs.n;
      c.pendingN = cs.pendingN;
      c.pendingAt = cs.pendingAt;
      c.armed = !!cs.armed;
      c.running = !!cs.running;
      c.d0 = cs.d0;
      c.anchor = now - cs.sinceAnchor;
      c.gate = !!cs.gate;
      c.writeHigh = !!cs.writeHigh;
      c.writeLow = cs.writeLow & 0xff;
      c.readHigh = !!cs.readHigh;
      c.latch = cs.latch.map((b) => b & 0xff);
      c.status = cs.status;
      c.nullCount = !!cs.nullCount;
      c.crValid = !!cs.crValid;
      c.held = cs.held;
      c.outIdle = !!cs.outIdle;
    });
    this.portB = s.portB & 0x0f;
    this.irqLevel = !!s.irqLevel;
    if (this.irq) this.irq(this.irqLevel);
    // the next transition is re-derived from the restored counter: the timer in flight comes back exactly
    if (this.timer >= 0) this.clock.cancel(this.timer);
    this.timer = -1;
    this.schedule(this.ch[0].elapsed(now));
  }
}
