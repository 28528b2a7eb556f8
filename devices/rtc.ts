/**
 * The MC146818A real-time clock and its CMOS RAM (ports 0x70/0x71 for bytes 0–127, 0x72/0x73 for the
 * upper bank 128–255 as on the PIIX and in QEMU).
 *
 * Time model. The time of day is never counted tick by tick: it is `baseSec` (seconds since the Unix epoch,
 * UTC) at guest time `baseNs`, plus the guest time elapsed since then (Clock.now()), so the RTC, the PIT and
 * the TSC all run off the one time base. Register reads while the clock runs are computed from that; while
 * it is stopped (SET in register B, or the divider held in reset) the registers hold frozen values the guest
 * may rewrite, and restarting the clock turns them back into a new baseSec. Writes to a time register
 * without SET take effect at once (the sub-second phase is kept).
 *
 * Second boundaries ("updates") lie on the divider's grid: 0.5 s after the divider leaves reset and every
 * second after. UIP (register A bit 7) reads as 1 during the 244 µs (8 ticks of 32.768 kHz) before each
 * update. The periodic interrupt ticks at 32768 >> (rate − 1) Hz (rates 1 and 2 as 8 and 9) on the same grid.
 *
 * Interrupt flags are evaluated lazily: before any read of register C or any change of the clock state the
 * device works out which periodic ticks, updates and alarm matches happened since the last look. Timers
 * are scheduled on the Clock only while an interrupt is enabled (PIE, UIE, AIE), so an idle RTC costs
 * nothing and never keeps a halted machine alive. IRQ 8 is asserted while IRQF is set and dropped by reading
 * register C.
 *
 * Not modelled: daylight-saving adjustment (DSE is stored only), the square-wave output, the date alarm
 * of later parts, the "update cycle in progress" window after the boundary (registers change at once).
 */
import type { Clock } from '../core/clock';
import type { IoBus } from '../core/iobus';
import type { IrqLine } from '../core/host';
import type { Device } from '../core/machine';
import { cmosBootBytes, DEFAULT_BOOT_ORDER } from '../core/bootorder';

// register indexes
export const RTC_SECONDS = 0x00;
export const RTC_SECONDS_ALARM = 0x01;
export const RTC_MINUTES = 0x02;
export const RTC_MINUTES_ALARM = 0x03;
export const RTC_HOURS = 0x04;
export const RTC_HOURS_ALARM = 0x05;
export const RTC_DAY_OF_WEEK = 0x06;
export const RTC_DAY_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
export const RTC_REG_D = 0x0d;
export const CMOS_DIAGNOSTIC = 0x0e;
export const CMOS_SHUTDOWN = 0x0f;
export const CMOS_FLOPPY = 0x10;
export const CMOS_EQUIPMENT = 0x14;
export const CMOS_BASE_MEM_LO = 0x15;
export const CMOS_EXT_MEM_LO = 0x17;
export const CMOS_CHECKSUM_HI = 0x2e;
export const CMOS_EXT_MEM2_LO = 0x30;
export const RTC_CENTURY = 0x32;
export const CMOS_MEM_ABOVE_16M_LO = 0x34;
export const RTC_CENTURY_PS2 = 0x37;
export const CMOS_BOOT_ORDER_3 = 0x38;
export const CMOS_BOOT_ORDER_12 = 0x3d;
export const CMOS_MEM_ABOVE_4G = 0x5b;
export const CMOS_SMP_COUNT = 0x5f;

// register A
export const REG_A_UIP = 0x80;
// register B
export const REG_B_SET = 0x80, REG_B_PIE = 0x40, REG_B_AIE = 0x20, REG_B_UIE = 0x10;
export const REG_B_SQWE = 0x08, REG_B_DM = 0x04, REG_B_24H = 0x02, REG_B_DSE = 0x01;
// register C
export const REG_C_IRQF = 0x80, REG_C_PF = 0x40, REG_C_AF = 0x20, REG_C_UF = 0x10;
// register D
export const REG_D_VRT = 0x80;

const NS_PER_SEC = 1e9;
/** one period of the 32.768 kHz time base in ns (exact in binary floating point) */
const NS_PER_TICK = NS_PER_SEC / 32768;
/** UIP is set this long before each update (8 ticks = 244.14 µs) */
export const UIP_WINDOW_NS = 8 * NS_PER_TICK;
/** 2026-01-01T00:00:00Z, the default time of day of a deterministic run */
export const DEFAULT_DETERMINISTIC_START = Date.UTC(2026, 0, 1);

/** what the RTC needs from the machine */
export interface RtcHost {
  readonly io: IoBus;
  readonly clock: Clock;
}

export interface RtcOptions {
  /** IRQ 8 */
  irq?: IrqLine | null;
  /** the time of day at guest time "now" (ms since the epoch, UTC); default: the host's time, or
   *  2026-01-01 00:00:00 UTC when the clock is deterministic */
  startTime?: Date | number;
  /** RAM size in bytes, for the memory-size bytes (can be set later with setMemorySize) */
  memSize?: number;
  /** boot order in QEMU's letters: a = floppy, c = hard disk, d = CD-ROM, n = network (default "cad") */
  bootOrder?: string;
  /** SeaBIOS checks a floppy boot sector's 0xAA55 signature (default true, as QEMU without -no-fd-bootchk) */
  checkFloppySignature?: boolean;
  /** number of floppy drives (1.44 MB each) recorded in bytes 0x10/0x14 (default 0) */
  floppies?: number;
  /** number of CPUs recorded at 0x5F for SeaBIOS (default 1) */
  cpus?: number;
  /** device name (default "rtc") */
  name?: string;
}

export interface RtcState {
  cmos: number[];
  index: number;
  baseSec: number;
  /** guest ns from baseNs to the time of saving */
  baseAgo: number;
  /** guest ns from the divider's phase origin to the time of saving */
  divAgo: number;
  doneSec: number;
  pfTick: number;
  irqLevel: boolean;
}

export class Rtc implements Device {
  readonly name: string;
  private readonly clock: Clock;
  private irq: IrqLine | null;
  private readonly cmos = new Uint8Array(256);
  /** index register (bits 0–7; bit 7 of port 0x70's value is the NMI mask, kept apart) */
  private index = 0;
  private nmiMask = false;

  /** the time of day (epoch seconds) at guest time baseNs, which lies on an update boundary */
  private baseSec = 0;
  private baseNs = 0;
  /** origin of the divider's tick grid (guest ns) */
  private divNs = 0;
  /** the last epoch second whose update has been accounted for (UF/AF) */
  private doneSec = 0;
  /** index of the last periodic period accounted for (PF) */
  private pfTick = 0;
  private updateTimer = -1;
  private periodicTimer = -1;
  private irqLevel = false;

  constructor(host: RtcHost, options: RtcOptions = {}) {
    this.name = options.name ?? 'rtc';
    this.clock = host.clock;
    this.irq = options.irq ?? null;
    host.io.register(this.name, 0x70, 4, {
      read8: (p) => this.readPort(p),
      write8: (p, v) => this.writePort(p, v),
    });
    const start = options.startTime ?? (host.clock.deterministic ? DEFAULT_DETERMINISTIC_START : Date.now());
    const ms = typeof start === 'number' ? start : start.getTime();
    this.cmos[RTC_REG_A] = 0x26;
    this.cmos[RTC_REG_B] = REG_B_24H;
    this.cmos[RTC_REG_D] = REG_D_VRT;
    const now = this.clock.now();
    const subMs = ((ms % 1000) + 1000) % 1000;
    this.baseSec = Math.floor(ms / 1000);
    this.baseNs = Math.round(now - subMs * 1e6);
    this.divNs = this.baseNs - NS_PER_SEC / 2;
    this.doneSec = this.timeAt(now);
    this.pfTick = this.tickIndex(now);
    this.writeTimeRegs(this.doneSec);
    this.setBootOrder(options.bootOrder ?? DEFAULT_BOOT_ORDER, options.checkFloppySignature ?? true);
    this.setFloppies(options.floppies ?? 0);
    this.cmos[CMOS_SMP_COUNT] = Math.max(0, (options.cpus ?? 1) - 1) & 0xff;
    this.setMemorySize(options.memSize ?? 0);
  }

  // ---------------------------------------------------------------------------------------------
  // host / platform side
  // ---------------------------------------------------------------------------------------------

  connectIrq(irq: IrqLine | null): void {
    this.irq = irq;
    if (irq) irq(this.irqLevel);
  }

  /** bit 7 of the last index written to port 0x70: NMIs are masked */
  get nmiMasked(): boolean {
    return this.nmiMask;
  }

  get irqAsserted(): boolean {
    return this.irqLevel;
  }

  /** the RTC's current time of day as ms since the epoch (whole seconds) */
  timeOfDay(): number {
    if (this.running()) return this.timeAt(this.clock.now()) * 1000;
    return this.regsToSeconds() * 1000;
  }

  /** a CMOS byte as the guest would read it (time registers computed live) */
  peek(index: number): number {
    index &= 0xff;
    if (index <= RTC_YEAR || index === RTC_CENTURY || index === RTC_CENTURY_PS2) this.refreshTimeRegs();
    if (index === RTC_REG_A) return this.regA();
    return this.cmos[index];
  }

  /** sets a CMOS byte from the host side; the standard checksum is kept right */
  setByte(index: number, value: number): void {
    index &= 0xff;
    this.cmos[index] = value & 0xff;
    if (index >= 0x10 && index <= 0x2d) this.updateChecksum();
  }

  /** records the RAM size in the memory-size bytes BIOSes and bootloaders read */
  setMemorySize(bytes: number): void {
    const KiB = 1024, MiB = 1024 * 1024;
    this.cmos[CMOS_BASE_MEM_LO] = 640 & 0xff;
    this.cmos[CMOS_BASE_MEM_LO + 1] = 640 >> 8;
    const below4g = Math.min(bytes, 0x1_0000_0000);
    const ext = Math.min(0xffff, Math.max(0, Math.floor((below4g - MiB) / KiB)));
    this.cmos[CMOS_EXT_MEM_LO] = ext & 0xff;
    this.cmos[CMOS_EXT_MEM_LO + 1] = ext >> 8;
    this.cmos[CMOS_EXT_MEM2_LO] = ext & 0xff;
    this.cmos[CMOS_EXT_MEM2_LO + 1] = ext >> 8;
    const above16 = Math.min(0xffff, Math.max(0, Math.floor((below4g - 16 * MiB) / (64 * KiB))));
    this.cmos[CMOS_MEM_ABOVE_16M_LO] = above16 & 0xff;
    this.cmos[CMOS_MEM_ABOVE_16M_LO + 1] = above16 >> 8;
    const above4g = Math.min(0xffffff, Math.max(0, Math.floor((bytes - 0x1_0000_0000) / (64 * KiB))));
    this.cmos[CMOS_MEM_ABOVE_4G] = above4g & 0xff;
    this.cmos[CMOS_MEM_ABOVE_4G + 1] = (above4g >> 8) & 0xff;
    this.cmos[CMOS_MEM_ABOVE_4G + 2] = (above4g >> 16) & 0xff;
    this.updateChecksum();
  }

  /**
   * Boot devices in QEMU's letters (a/b floppy, c disk, d CD-ROM, n network), up to three, in bytes 0x3D
   * and 0x38 as QEMU writes them (core/bootorder.ts: unknown letters count as no device). Bit 0 of 0x38
   * set tells SeaBIOS to skip the floppy boot-sector signature check: QEMU sets it only with -no-fd-bootchk.
   */
  setBootOrder(order: string, checkFloppySignature = true): void {
    const b = cmosBootBytes(order, checkFloppySignature);
    this.cmos[CMOS_BOOT_ORDER_12] = b.flag2;
    this.cmos[CMOS_BOOT_ORDER_3] = b.flag1;
  }

  /** number of 1.44 MB floppy drives (0–2) in the floppy-type and equipment bytes */
  setFloppies(n: number): void {
    this.cmos[CMOS_FLOPPY] = (n > 0 ? 0x40 : 0) | (n > 1 ? 0x04 : 0);
    // bit 1 FPU present, bit 2 PS/2 mouse, bits 4–5 = 00 EGA/VGA, bit 0 / bits 6–7 floppy drives
    let eq = 0x06;
    if (n > 0) eq |= 0x01 | ((Math.min(n, 4) - 1) << 6);
    this.cmos[CMOS_EQUIPMENT] = eq;
    this.updateChecksum();
  }

  private updateChecksum(): void {
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += this.cmos[i];
    this.cmos[CMOS_CHECKSUM_HI] = (sum >> 8) & 0xff;
    this.cmos[CMOS_CHECKSUM_HI + 1] = sum & 0xff;
  }

  // ---------------------------------------------------------------------------------------------
  // time arithmetic
  // ---------------------------------------------------------------------------------------------

  private get bcd(): boolean {
    return (this.cmos[RTC_REG_B] & REG_B_DM) === 0;
  }

  /** the divider counts (DV = 000, 001 or 010; 11x holds it in reset) */
  private dividerRunning(): boolean {
    return (this.cmos[RTC_REG_A] & 0x60) !== 0x60;
  }

  /** time advances and updates happen */
  private running(): boolean {
    return (this.cmos[RTC_REG_B] & REG_B_SET) === 0 && this.dividerRunning();
  }

  /** epoch seconds at guest time t (clock running) */
  private timeAt(t: number): number {
    return this.baseSec + Math.floor((t - this.baseNs) / NS_PER_SEC);
  }

  /** periodic-interrupt period in 32.768 kHz ticks, 0 when off */
  private periodTicks(): number {
    let rs = this.cmos[RTC_REG_A] & 0x0f;
    if (rs === 0) return 0;
    if (rs <= 2) rs += 7;
    return 1 << (rs - 1);
  }

  /** index of the periodic period containing guest time t */
  private tickIndex(t: number): number {
    const p = this.periodTicks();
    if (p === 0) return 0;
    return Math.floor((t - this.divNs) / (NS_PER_TICK * p));
  }

  private toReg(v: number): number {
    return this.bcd ? (Math.floor(v / 10) << 4) | v % 10 : v;
  }

  private fromReg(b: number): number {
    return this.bcd ? (b >> 4) * 10 + (b & 0x0f) : b;
  }

  private hourToReg(h: number): number {
    if (this.cmos[RTC_REG_B] & REG_B_24H) return this.toReg(h);
    return this.toReg(h % 12 || 12) | (h >= 12 ? 0x80 : 0);
  }

  private hourFromReg(b: number): number {
    if (this.cmos[RTC_REG_B] & REG_B_24H) return this.fromReg(b & 0x7f);
    return (this.fromReg(b & 0x7f) % 12) + (b & 0x80 ? 12 : 0);
  }

  private writeTimeRegs(sec: number): void {
    const d = new Date(sec * 1000);
    const c = this.cmos;
    c[RTC_SECONDS] = this.toReg(d.getUTCSeconds());
    c[RTC_MINUTES] = this.toReg(d.getUTCMinutes());
    c[RTC_HOURS] = this.hourToReg(d.getUTCHours());
    c[RTC_DAY_OF_WEEK] = this.toReg(d.getUTCDay() + 1);
    c[RTC_DAY_OF_MONTH] = this.toReg(d.getUTCDate());
    c[RTC_MONTH] = this.toReg(d.getUTCMonth() + 1);
    const year = d.getUTCFullYear();
    c[RTC_YEAR] = this.toReg(year % 100);
    c[RTC_CENTURY] = this.toReg(Math.floor(year / 100) % 100);
    c[RTC_CENTURY_PS2] = c[RTC_CENTURY];
  }

  private regsToSeconds(): number {
    const c = this.cmos;
    const year = this.fromReg(c[RTC_CENTURY]) * 100 + this.fromReg(c[RTC_YEAR]);
    const d = new Date(0);
    d.setUTCFullYear(year, this.fromReg(c[RTC_MONTH]) - 1, this.fromReg(c[RTC_DAY_OF_MONTH]));
    d.setUTCHours(this.hourFromReg(c[RTC_HOURS]), this.fromReg(c[RTC_MINUTES]), this.fromReg(c[RTC_SECONDS]), 0);
    const ms = d.getTime();
    return Number.isFinite(ms) ? Math.floor(ms / 1000) : this.baseSec;
  }

  private refreshTimeRegs(): void {
    if (this.running()) this.writeTimeRegs(this.timeAt(this.clock.now()));
  }

  /** a time-of-day field matches its alarm byte (0xC0–0xFF = don't care) */
  private alarmField(alarm: number, value: number): boolean {
    return (alarm & 0xc0) === 0xc0 || alarm === value;
  }

  /** the first epoch second after `after` whose time matches the alarm registers, or Infinity */
  private nextAlarm(after: number): number {
    const c = this.cmos;
    const hours: number[] = [], mins: number[] = [], secs: number[] = [];
    for (let h = 0; h < 24; h++) if (this.alarmField(c[RTC_HOURS_ALARM], this.hourToReg(h))) hours.push(h);
    for (let m = 0; m < 60; m++) if (this.alarmField(c[RTC_MINUTES_ALARM], this.toReg(m))) mins.push(m);
    for (let s = 0; s < 60; s++) if (this.alarmField(c[RTC_SECONDS_ALARM], this.toReg(s))) secs.push(s);
    if (!hours.length || !mins.length || !secs.length) return Infinity;
    const day0 = Math.floor(after / 86400) * 86400;
    for (let d = 0; d < 2; d++) {
      const day = day0 + d * 86400;
      for (const h of hours) {
        if (day + h * 3600 + 3599 <= after) continue;
        for (const m of mins) {
          const base = day + h * 3600 + m * 60;
          if (base + 59 <= after) continue;
          for (const s of secs) if (base + s > after) return base + s;
        }
      }
    }
    return Infinity;
  }

  // ---------------------------------------------------------------------------------------------
  // interrupt flags and timers
  // ---------------------------------------------------------------------------------------------

  /** accounts for the periodic ticks, updates and alarms that happened up to guest time `now` */
  private catchUp(now: number, forcePeriodic = false, forceSec = -Infinity): void {
    const c = this.cmos;
    if (this.dividerRunning() && this.periodTicks() !== 0) {
      let t = this.tickIndex(now);
      if (forcePeriodic) t = Math.max(t, this.pfTick + 1);
      if (t > this.pfTick) {
        c[RTC_REG_C] |= REG_C_PF;
        this.pfTick = t;
      }
    }
    if (this.running()) {
      const cur = Math.max(this.timeAt(now), forceSec);
      if (cur > this.doneSec) {
        c[RTC_REG_C] |= REG_C_UF;
        if (this.nextAlarm(this.doneSec) <= cur) c[RTC_REG_C] |= REG_C_AF;
        this.doneSec = cur;
      }
    }
  }

  /** re-bases the flag bookkeeping on the present (after a change of the clock's state) */
  private resync(now: number): void {
    this.pfTick = this.tickIndex(now);
    if (this.running()) this.doneSec = this.timeAt(now);
  }

  private updateIrq(): void {
    const c = this.cmos;
    if (c[RTC_REG_C] & c[RTC_REG_B] & (REG_C_PF | REG_C_AF | REG_C_UF)) c[RTC_REG_C] |= REG_C_IRQF;
    else c[RTC_REG_C] &= ~REG_C_IRQF;
    const level = (c[RTC_REG_C] & REG_C_IRQF) !== 0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      if (this.irq) this.irq(level);
    }
  }

  private schedule(): void {
    if (this.periodicTimer >= 0) this.clock.cancel(this.periodicTimer);
    if (this.updateTimer >= 0) this.clock.cancel(this.updateTimer);
    this.periodicTimer = this.updateTimer = -1;
    const b = this.cmos[RTC_REG_B];
    const p = this.periodTicks();
    if (b & REG_B_PIE && p !== 0 && this.dividerRunning()) {
      const deadline = this.divNs + Math.ceil((this.pfTick + 1) * p * NS_PER_TICK);
      this.periodicTimer = this.clock.at(deadline, (now) => {
        this.periodicTimer = -1;
        this.catchUp(now, true);
        this.updateIrq();
        this.schedule();
      });
    }
    if (this.running() && b & (REG_B_UIE | REG_B_AIE)) {
      const next = b & REG_B_UIE ? this.doneSec + 1 : this.nextAlarm(this.doneSec);
      if (next !== Infinity) {
        const deadline = this.baseNs + (next - this.baseSec) * NS_PER_SEC;
        this.updateTimer = this.clock.at(deadline, (now) => {
          this.updateTimer = -1;
          this.catchUp(now, false, next);
          this.updateIrq();
          this.schedule();
        });
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // registers
  // ---------------------------------------------------------------------------------------------

  private regA(): number {
    let a = this.cmos[RTC_REG_A] & 0x7f;
    if (this.running()) {
      const phase = (((this.clock.now() - this.baseNs) % NS_PER_SEC) + NS_PER_SEC) % NS_PER_SEC;
      if (phase >= NS_PER_SEC - UIP_WINDOW_NS) a |= REG_A_UIP;
    }
    return a;
  }

  private readPort(port: number): number {
    if ((port & 1) === 0) return 0xff; // the index register is write-only
    return this.readReg(this.index);
  }

  private writePort(port: number, value: number): void {
    if ((port & 1) === 0) {
      if (port === 0x70) {
        this.index = value & 0x7f;
        this.nmiMask = (value & 0x80) !== 0;
      } else {
        this.index = (value & 0x7f) | 0x80;
      }
      return;
    }
    this.writeReg(this.index, value);
  }

  private readReg(index: number): number {
    switch (index) {
      case RTC_REG_A:
        return this.regA();
      case RTC_REG_C: {
        this.catchUp(this.clock.now());
        this.updateIrq();
        const v = this.cmos[RTC_REG_C];
        this.cmos[RTC_REG_C] = 0;
        this.updateIrq();
        this.schedule();
        return v;
      }
      case RTC_REG_D:
        return REG_D_VRT;
      default:
        return this.peek(index);
    }
  }

  private writeReg(index: number, value: number): void {
    const c = this.cmos;
    const now = this.clock.now();
    switch (index) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case RTC_CENTURY:
      case RTC_CENTURY_PS2: {
        if (!this.running()) {
          c[index] = value;
          if (index === RTC_CENTURY) c[RTC_CENTURY_PS2] = value;
          return;
        }
        this.catchUp(now);
        this.writeTimeRegs(this.timeAt(now));
        c[index] = value;
        if (index === RTC_CENTURY_PS2) c[RTC_CENTURY] = value;
        // keep the phase: the new time starts at the current second's boundary
        this.baseNs += Math.floor((now - this.baseNs) / NS_PER_SEC) * NS_PER_SEC;
        this.baseSec = this.regsToSeconds();
        this.resync(now);
        this.updateIrq();
        this.schedule();
        return;
      }
      case RTC_REG_A: {
        this.catchUp(now);
        const wasRunning = this.running();
        const wasDivRunning = this.dividerRunning();
        if (wasRunning) this.writeTimeRegs(this.timeAt(now));
        c[RTC_REG_A] = value & 0x7f;
        if (!wasDivRunning && this.dividerRunning()) {
          // leaving divider reset: the first update comes half a second later
          this.divNs = Math.round(now);
          this.baseNs = this.divNs - NS_PER_SEC / 2;
          this.baseSec = this.regsToSeconds();
        } else if (!wasRunning && this.running()) {
          this.restartKeepingPhase(now);
        }
        this.resync(now);
        this.updateIrq();
        this.schedule();
        return;
      }
      case RTC_REG_B: {
        this.catchUp(now);
        const wasRunning = this.running();
        const old = c[RTC_REG_B];
        if (wasRunning) this.writeTimeRegs(this.timeAt(now));
        // setting SET clears UIE (rising edge, as in the datasheet)
        if (value & REG_B_SET && !(old & REG_B_SET)) value &= ~REG_B_UIE;
        c[RTC_REG_B] = value;
        if (!wasRunning && this.running()) this.restartKeepingPhase(now);
        this.resync(now);
        this.updateIrq();
        this.schedule();
        return;
      }
      case RTC_REG_C:
      case RTC_REG_D:
        return; // read-only
      default:
        c[index] = value;
    }
  }

  /** restarts the clock from the registers, keeping the divider's phase (SET cleared) */
  private restartKeepingPhase(now: number): void {
    const grid = this.divNs + NS_PER_SEC / 2;
    this.baseNs = grid + Math.floor((now - grid) / NS_PER_SEC) * NS_PER_SEC;
    this.baseSec = this.regsToSeconds();
  }

  // ---------------------------------------------------------------------------------------------
  // Device
  // ---------------------------------------------------------------------------------------------

  /** the RESET pin: interrupt enables, SQWE and the flags clear; the time and the CMOS RAM stay */
  reset(): void {
    const now = this.clock.now();
    this.catchUp(now);
    this.cmos[RTC_REG_B] &= ~(REG_B_PIE | REG_B_AIE | REG_B_UIE | REG_B_SQWE);
    this.cmos[RTC_REG_C] = 0;
    this.resync(now);
    this.updateIrq();
    this.schedule();
  }

  saveState(): RtcState {
    const now = this.clock.now();
    this.refreshTimeRegs();
    return {
      cmos: Array.from(this.cmos),
      index: this.index | (this.nmiMask ? 0x100 : 0),
      baseSec: this.baseSec,
      baseAgo: now - this.baseNs,
      divAgo: now - this.divNs,
      doneSec: this.doneSec,
      pfTick: this.pfTick,
      irqLevel: this.irqLevel,
    };
  }

  loadState(state: unknown): void {
    const s = state as RtcState;
    const now = this.clock.now();
    for (let i = 0; i < 256; i++) this.cmos[i] = (s.cmos[i] ?? 0) & 0xff;
    this.index = s.index & 0xff;
    this.nmiMask = (s.index & 0x100) !== 0;
    this.baseSec = s.baseSec;
    this.baseNs = now - s.baseAgo;
    this.divNs = now - s.divAgo;
    this.doneSec = s.doneSec;
    this.pfTick = s.pfTick;
    this.irqLevel = !!s.irqLevel;
    if (this.irq) this.irq(this.irqLevel);
    this.schedule();
  }
}
