/**
 * The local APIC of the (single) CPU, xAPIC flavour (Intel SDM vol. 3, ch. 10), memory-mapped at the
 * address in the IA32_APIC_BASE MSR (cpu.apicBase, default 0xFEE00000, 4 KiB).
 *
 * It is the CPU's interrupt controller (cpu.pic): the CPU's INTR line means "there is something to
 * acknowledge", and acknowledge() returns the vector. Sources:
 * - fixed interrupts accepted into the IRR (IOAPIC messages through deliver(), the LVT timer, LINT pins in
 *   fixed mode, self-IPIs, the error LVT) are offered when the highest IRR priority class is above PPR's;
 * - the 8259's INTR output arrives on LINT0 (setPicOutput). In ExtINT mode (virtual wire, what BIOSes and
 *   Linux program) it drives INTR directly and acknowledge() runs the 8259's INTA cycle (`pic`). While the
 *   APIC is disabled — hardware (MSR bit 11 clear) or software (SVR bit 8 clear) — the 8259 passes straight
 *   through the same way, so a BIOS, a `nolapic` kernel or a guest that never touches the APIC see a plain PC.
 *   An ExtINT message from the IOAPIC does the same for one INTA cycle.
 * - LINT1 (setLint1) is the NMI pin: in NMI mode (or with the APIC disabled) a rising edge raises an NMI.
 *
 * Timer. The timer counts at `busHz` (default APIC_BUS_HZ = 100 MHz, i.e. 10 ns per bus clock) divided by
 * the divide configuration. Nothing counts tick by tick: the current count is derived from clock.now()
 * (the machine's single time base, which also drives the TSC, the PIT and the RTC), and each expiry is one
 * clock.at() timer. Periodic expiries lie on an exact grid (base + n × period); expiries the machine could
 * not service in time are coalesced (the IRR holds one bit per vector anyway). Changing the divider or the
 * mode keeps the current count and continues from it.
 *
 * Not modelled (one CPU): INIT/SIPI/SMI messages (ignored), lowest-priority arbitration (treated as fixed),
 * the TSC-deadline mode (CPUID does not report it), directed EOI (version bit 24 clear), LVT polarity
 * (inputs are logical levels: true = asserted). Sub-dword writes are ignored; sub-dword reads work.
 */
import type { Cpu, InterruptController } from '../core/cpu';
import type { Clock } from '../core/clock';
import type { Memory, MmioHandler } from '../core/memory';
import type { Device } from '../core/machine';

export const APIC_DEFAULT_BASE = 0xfee00000;
/** default timer input clock: 100 MHz (10 ns per count at divide-by-1) */
export const APIC_BUS_HZ = 100_000_000;
/** version 0x14 (integrated xAPIC), max LVT entry 5 (timer, thermal, perf, LINT0, LINT1, error) */
export const APIC_VERSION_VALUE = 0x00050014;

// register offsets
export const APIC_ID = 0x020;
export const APIC_VERSION = 0x030;
export const APIC_TPR = 0x080;
export const APIC_APR = 0x090;
export const APIC_PPR = 0x0a0;
export const APIC_EOI = 0x0b0;
export const APIC_RRD = 0x0c0;
export const APIC_LDR = 0x0d0;
export const APIC_DFR = 0x0e0;
export const APIC_SVR = 0x0f0;
export const APIC_ISR = 0x100;
export const APIC_TMR = 0x180;
export const APIC_IRR = 0x200;
export const APIC_ESR = 0x280;
export const APIC_ICR_LO = 0x300;
export const APIC_ICR_HI = 0x310;
export const APIC_LVT_TIMER = 0x320;
export const APIC_LVT_THERMAL = 0x330;
export const APIC_LVT_PERF = 0x340;
export const APIC_LVT_LINT0 = 0x350;
export const APIC_LVT_LINT1 = 0x360;
export const APIC_LVT_ERROR = 0x370;
export const APIC_TIMER_INITIAL = 0x380;
export const APIC_TIMER_CURRENT = 0x390;
export const APIC_TIMER_DIVIDE = 0x3e0;

// MSR bits
export const MSR_APIC_ENABLE = 0x800;

// SVR
export const SVR_ENABLE = 0x100;

// LVT / ICR / redirection-entry fields
export const LVT_MASKED = 0x10000;
export const LVT_LEVEL = 0x8000;
export const LVT_REMOTE_IRR = 0x4000;
export const LVT_DELIVS = 0x1000;
export const LVT_TIMER_PERIODIC = 0x20000;
export const ICR_LOGICAL = 0x800;

// delivery modes
export const DM_FIXED = 0;
export const DM_LOWEST = 1;
export const DM_SMI = 2;
export const DM_NMI = 4;
export const DM_INIT = 5;
export const DM_STARTUP = 6;
export const DM_EXTINT = 7;

// ESR bits
export const ESR_SEND_ILLEGAL = 0x20;
export const ESR_RECV_ILLEGAL = 0x40;
export const ESR_ILLEGAL_REG = 0x80;

// LVT indexes
const LVT_T = 0;
const LVT_L0 = 3;
const LVT_L1 = 4;
const LVT_ERR = 5;
const LVT_COUNT = 6;
/** writable bits of each LVT entry */
const LVT_WRITABLE = [0x300ff, 0x107ff, 0x107ff, 0x1a7ff, 0x1a7ff, 0x100ff];
const LVT_RESET = LVT_MASKED;
const ICR_LO_WRITABLE = 0x000ccfff;

/** what the APIC needs from the machine (core/machine's Machine satisfies this) */
export interface ApicHost {
  readonly cpu: Cpu;
  readonly mem: Memory;
  readonly clock: Clock;
}

export interface ApicOptions {
  /** the 8259's INTA side, used for ExtINT (can be set later through the `pic` field) */
  pic?: InterruptController | null;
  /** timer input clock in Hz (default APIC_BUS_HZ, 100 MHz) */
  busHz?: number;
  /** APIC ID (default 0) */
  id?: number;
  /** device name (default "lapic") */
  name?: string;
}

export interface ApicState {
  /** the MSR value the mapping was made for */
  msr: number;
  id: number;
  tpr: number;
  ldr: number;
  dfr: number;
  svr: number;
  irr: number[];
  isr: number[];
  tmr: number[];
  esr: number;
  esrPending: number;
  icrLo: number;
  icrHi: number;
  lvt: number[];
  timerInitial: number;
  timerDivide: number;
  timerRunning: boolean;
  /** guest ns from the timer's base point to the time of saving */
  timerBaseAgo: number;
  timerBaseCount: number;
  /** guest ns from the time of saving to the pending expiry (-1: none) */
  timerDueIn: number;
  picLevel: boolean;
  lint1Level: boolean;
  extIntPending: boolean;
}

function highest(bits: Int32Array): number {
  for (let i = 7; i >= 0; i--) {
    const w = bits[i];
    if (w !== 0) return i * 32 + 31 - Math.clz32(w);
  }
  return -1;
}

export class LocalApic implements Device, InterruptController {
  readonly name: string;
  /** the 8259 (ExtINT source); null when there is none */
  pic: InterruptController | null;
  /** called with the vector when an EOI retires a level-triggered interrupt (the IOAPIC hooks this) */
  onEoi: ((vector: number) => void) | null = null;
  readonly busHz: number;

  private readonly cpu: Cpu;
  private readonly mem: Memory;
  private readonly clock: Clock;
  private readonly mmio: MmioHandler;
  private readonly initialId: number;
  /** ns per bus clock */
  private readonly busTickNs: number;

  // ---- hardware enable and mapping ----
  private msr = 0;
  private hwEnabled = false;
  private mappedBase = -1;

  // ---- registers ----
  private id = 0;
  private tpr = 0;
  private ldr = 0;
  private dfr = -1;
  private svr = 0xff;
  private readonly irr = new Int32Array(8);
  private readonly isr = new Int32Array(8);
  private readonly tmr = new Int32Array(8);
  private esr = 0;
  private esrPending = 0;
  private icrLo = 0;
  private icrHi = 0;
  private readonly lvt = new Int32Array(LVT_COUNT);

  // ---- timer ----
  private timerInitial = 0;
  private timerDivide = 0;
  private timerRunning = false;
  /** the count was timerBaseCount at guest time timerBaseNs */
  private timerBaseNs = 0;
  private timerBaseCount = 0;
  private timerId = -1;
  private timerDeadline = 0;
  private readonly timerCb: (now: number) => void;

  // ---- inputs ----
  private picLevel = false;
  private lint1Level = false;
  private extIntPending = false;

  constructor(host: ApicHost, options: ApicOptions = {}) {
    this.name = options.name ?? 'lapic';
    this.cpu = host.cpu;
    this.mem = host.mem;
    this.clock = host.clock;
    this.pic = options.pic ?? null;
    this.busHz = options.busHz ?? APIC_BUS_HZ;
    if (!(this.busHz > 0)) throw new RangeError('APIC bus frequency must be positive');
    this.busTickNs = 1e9 / this.busHz;
    this.initialId = (options.id ?? 0) & 0xff;
    this.timerCb = (now) => this.timerExpired(now);
    this.mmio = {
      name: this.name,
      read8: (a) => (this.read(a & 0xffc) >>> ((a & 3) * 8)) & 0xff,
      write8: () => {},
      read16: (a) => (this.read(a & 0xffc) >>> ((a & 2) * 8)) & 0xffff,
      write16: () => {},
      read32: (a) => this.read(a & 0xffc),
      write32: (a, v) => {
        if ((a & 3) === 0) this.write(a & 0xfff, v);
      },
    };
    const cpu = this.cpu;
    cpu.hasApic = true;
    cpu.pic = this;
    cpu.onApicBaseChange = () => this.syncMsr();
    this.resetRegisters();
    this.syncMsr();
  }

  // =============================================================================================
  // platform side
  // =============================================================================================

  /** the 8259's INTR output (LINT0) */
  setPicOutput(level: boolean): void {
    const prev = this.picLevel;
    this.picLevel = level;
    this.lintChanged(LVT_L0, level, prev);
  }

  /** the NMI pin (LINT1) */
  setLint1(level: boolean): void {
    const prev = this.lint1Level;
    this.lint1Level = level;
    this.lintChanged(LVT_L1, level, prev);
  }

  /** the APIC is enabled in the MSR and in the SVR */
  get enabled(): boolean {
    return this.hwEnabled && (this.svr & SVR_ENABLE) !== 0;
  }

  /** the guest-physical address the registers are mapped at, or -1 */
  get mmioBase(): number {
    return this.mappedBase;
  }

  /**
   * An interrupt message (from the IOAPIC): delivery mode DM_*, trigger (true = level), destination mode
   * (true = logical) and the 8-bit destination. Returns true if this APIC took it.
   */
  deliver(vector: number, mode: number, levelTriggered: boolean, logical: boolean, dest: number): boolean {
    if (!this.hwEnabled || !this.matchesDest(logical, dest)) return false;
    switch (mode) {
      case DM_FIXED:
      case DM_LOWEST:
        return this.accept(vector & 0xff, levelTriggered);
      case DM_NMI:
        this.cpu.raiseNmi();
        return true;
      case DM_EXTINT:
        this.extIntPending = true;
        this.updateIntr();
        return true;
      default:
        return false; // SMI, INIT, SIPI: not modelled
    }
  }

  /** the register at `offset` as the guest would read it (tests, debuggers) */
  readRegister(offset: number): number {
    return this.read(offset & 0xff0) >>> 0;
  }

  /** writes a register as the guest would (tests) */
  writeRegister(offset: number, value: number): void {
    this.write(offset & 0xff0, value | 0);
  }

  // =============================================================================================
  // the CPU side
  // =============================================================================================

  acknowledge(): number {
    if (!this.hwEnabled) return this.pic ? this.pic.acknowledge() : -1;
    const swEnabled = (this.svr & SVR_ENABLE) !== 0;
    if (swEnabled) {
      const v = this.deliverable();
      if (v >= 0) {
        this.irr[v >>> 5] &= ~(1 << (v & 31));
        this.isr[v >>> 5] |= 1 << (v & 31);
        this.updateIntr();
        return v;
      }
    }
    if (this.extIntPending || (this.picLevel && this.lint0PassThrough())) {
      this.extIntPending = false;
      const v = this.pic ? this.pic.acknowledge() : -1;
      this.updateIntr();
      return v;
    }
    this.updateIntr();
    return swEnabled ? this.svr & 0xff : -1;
  }

  // =============================================================================================
  // Device
  // =============================================================================================

  reset(): void {
    this.resetRegisters();
    this.extIntPending = false;
    this.msr = ~this.cpu.apicBase; // force a re-sync
    this.syncMsr();
  }

  saveState(): ApicState {
    const now = this.clock.now();
    return {
      msr: this.msr,
      id: this.id,
      tpr: this.tpr,
      ldr: this.ldr,
      dfr: this.dfr,
      svr: this.svr,
      irr: Array.from(this.irr),
      isr: Array.from(this.isr),
      tmr: Array.from(this.tmr),
      esr: this.esr,
      esrPending: this.esrPending,
      icrLo: this.icrLo,
      icrHi: this.icrHi,
      lvt: Array.from(this.lvt),
      timerInitial: this.timerInitial,
      timerDivide: this.timerDivide,
      timerRunning: this.timerRunning,
      timerBaseAgo: now - this.timerBaseNs,
      timerBaseCount: this.timerBaseCount,
      timerDueIn: this.timerId >= 0 ? this.timerDeadline - now : -1,
      picLevel: this.picLevel,
      lint1Level: this.lint1Level,
      extIntPending: this.extIntPending,
    };
  }

  loadState(state: unknown): void {
    const s = state as ApicState;
    const now = this.clock.now();
    this.cancelTimer();
    this.setMapping(s.msr | 0);
    this.id = s.id | 0;
    this.tpr = s.tpr & 0xff;
    this.ldr = s.ldr | 0;
    this.dfr = s.dfr | 0;
    this.svr = s.svr & 0x3ff;
    for (let i = 0; i < 8; i++) {
      this.irr[i] = s.irr[i] | 0;
      this.isr[i] = s.isr[i] | 0;
      this.tmr[i] = s.tmr[i] | 0;
    }
    this.esr = s.esr | 0;
    this.esrPending = s.esrPending | 0;
    this.icrLo = s.icrLo | 0;
    this.icrHi = s.icrHi | 0;
    for (let i = 0; i < LVT_COUNT; i++) this.lvt[i] = s.lvt[i] | 0;
    this.timerInitial = s.timerInitial >>> 0;
    this.timerDivide = s.timerDivide & 0xb;
    this.timerRunning = !!s.timerRunning;
    this.timerBaseNs = now - s.timerBaseAgo;
    this.timerBaseCount = s.timerBaseCount;
    if (s.timerDueIn >= 0) {
      this.timerDeadline = now + s.timerDueIn;
      this.timerId = this.clock.at(this.timerDeadline, this.timerCb);
    }
    this.picLevel = !!s.picLevel;
    this.lint1Level = !!s.lint1Level;
    this.extIntPending = !!s.extIntPending;
    this.updateIntr();
  }

  // =============================================================================================
  // enable, mapping, reset
  // =============================================================================================

  /** follows cpu.apicBase: maps/unmaps/moves the registers; a hardware disable resets the APIC */
  private syncMsr(): void {
    const msr = this.cpu.apicBase | 0;
    if (msr === this.msr) return;
    const wasEnabled = this.hwEnabled;
    this.setMapping(msr);
    if (wasEnabled && !this.hwEnabled) {
      // SDM 10.4.3: the APIC returns to its power-up state
      this.resetRegisters();
      this.extIntPending = false;
    }
    this.updateIntr();
  }

  private setMapping(msr: number): void {
    this.msr = msr;
    this.hwEnabled = (msr & MSR_APIC_ENABLE) !== 0;
    const base = this.hwEnabled ? (msr & ~0xfff) >>> 0 : -1;
    if (base === this.mappedBase) return;
    if (this.mappedBase >= 0) this.mem.unmapMmio(this.mappedBase, 0x1000);
    this.mappedBase = -1;
    if (base >= 0) {
      try {
        this.mem.mapMmio(base, 0x1000, this.mmio);
        this.mappedBase = base;
      } catch {
        // the guest moved the APIC onto another device's MMIO: it stays unreachable (as if unmapped)
      }
    }
  }

  private resetRegisters(): void {
    this.cancelTimer();
    this.id = this.initialId << 24;
    this.tpr = 0;
    this.ldr = 0;
    this.dfr = -1;
    this.svr = 0xff;
    this.irr.fill(0);
    this.isr.fill(0);
    this.tmr.fill(0);
    this.esr = 0;
    this.esrPending = 0;
    this.icrLo = 0;
    this.icrHi = 0;
    this.lvt.fill(LVT_RESET);
    this.timerInitial = 0;
    this.timerDivide = 0;
    this.timerRunning = false;
    this.timerBaseNs = 0;
    this.timerBaseCount = 0;
  }

  // =============================================================================================
  // priorities and the INTR line
  // =============================================================================================

  private ppr(): number {
    const isrv = highest(this.isr);
    const isrClass = isrv < 0 ? 0 : isrv & 0xf0;
    return (this.tpr & 0xf0) >= isrClass ? this.tpr : isrClass;
  }

  private apr(): number {
    const isrv = Math.max(highest(this.isr), 0) & 0xf0;
    const irrv = Math.max(highest(this.irr), 0) & 0xf0;
    const tprc = this.tpr & 0xf0;
    if (tprc >= irrv && tprc > isrv) return this.tpr;
    return Math.max(tprc, isrv, irrv);
  }

  /** the vector the CPU would get now, or -1 */
  private deliverable(): number {
    const v = highest(this.irr);
    if (v < 0) return -1;
    return (v & 0xf0) > (this.ppr() & 0xf0) ? v : -1;
  }

  /** the 8259's output reaches INTR: the APIC is software-disabled, or LINT0 is unmasked ExtINT */
  private lint0PassThrough(): boolean {
    if ((this.svr & SVR_ENABLE) === 0) return true;
    return (this.lvt[LVT_L0] & (LVT_MASKED | 0x700)) === DM_EXTINT << 8;
  }

  private updateIntr(): void {
    let want: boolean;
    if (!this.hwEnabled) want = this.picLevel;
    else if ((this.svr & SVR_ENABLE) !== 0 && this.deliverable() >= 0) want = true;
    else want = this.extIntPending || (this.picLevel && this.lint0PassThrough());
    this.cpu.setIntr(want);
  }

  /** a fixed interrupt enters the IRR (TMR records its trigger mode) */
  private accept(vector: number, levelTriggered: boolean): boolean {
    if (vector < 16) {
      this.signalError(ESR_RECV_ILLEGAL);
      return false;
    }
    const w = vector >>> 5;
    const bit = 1 << (vector & 31);
    this.irr[w] |= bit;
    if (levelTriggered) this.tmr[w] |= bit;
    else this.tmr[w] &= ~bit;
    this.updateIntr();
    return true;
  }

  private signalError(bits: number): void {
    const fresh = bits & ~this.esrPending;
    this.esrPending |= bits;
    if (!fresh) return;
    const l = this.lvt[LVT_ERR];
    if ((l & LVT_MASKED) === 0 && (l & 0xff) >= 16) this.accept(l & 0xff, false);
  }

  private eoi(): void {
    const v = highest(this.isr);
    if (v < 0) return;
    const w = v >>> 5;
    const bit = 1 << (v & 31);
    this.isr[w] &= ~bit;
    if (this.tmr[w] & bit) {
      // a level-triggered interrupt: LINT pins in fixed level mode, then the broadcast to the IOAPIC
      for (let i = LVT_L0; i <= LVT_L1; i++) {
        const l = this.lvt[i];
        if (l & LVT_REMOTE_IRR && (l & 0xff) === v) {
          this.lvt[i] = l & ~LVT_REMOTE_IRR;
          this.lintLevelCheck(i);
        }
      }
      if (this.onEoi) this.onEoi(v);
    }
    this.updateIntr();
  }

  private matchesDest(logical: boolean, dest: number): boolean {
    dest &= 0xff;
    if (dest === 0xff) return true;
    if (!logical) return dest === this.id >>> 24;
    const ldr = this.ldr >>> 24;
    if (this.dfr >>> 28 === 0xf) return (ldr & dest) !== 0; // flat model
    return ldr >>> 4 === dest >>> 4 && (ldr & dest & 0xf) !== 0; // cluster model
  }

  // =============================================================================================
  // LINT pins
  // =============================================================================================

  private lintChanged(i: number, level: boolean, prev: boolean): void {
    if (!this.hwEnabled || (this.svr & SVR_ENABLE) === 0) {
      // disabled: LINT0 is INTR, LINT1 is NMI
      if (i === LVT_L0) this.updateIntr();
      else if (level && !prev) this.cpu.raiseNmi();
      return;
    }
    if (i === LVT_L0) this.updateIntr();
    const l = this.lvt[i];
    if (l & LVT_MASKED) return;
    switch ((l >> 8) & 7) {
      case DM_NMI:
        if (level && !prev) this.cpu.raiseNmi();
        break;
      case DM_FIXED:
        if (l & LVT_LEVEL) this.lintLevelCheck(i);
        else if (level && !prev) this.accept(l & 0xff, false);
        break;
      default:
        break; // ExtINT is handled by updateIntr; SMI/INIT not modelled
    }
  }

  /** a LINT pin in fixed, level-triggered mode: (re)delivers while asserted and not awaiting EOI */
  private lintLevelCheck(i: number): void {
    const l = this.lvt[i];
    if ((l & (LVT_MASKED | 0x700 | LVT_LEVEL | LVT_REMOTE_IRR)) !== LVT_LEVEL) return;
    const level = i === LVT_L0 ? this.picLevel : this.lint1Level;
    if (!level || !this.hwEnabled || (this.svr & SVR_ENABLE) === 0) return;
    if (this.accept(l & 0xff, true)) this.lvt[i] = l | LVT_REMOTE_IRR;
  }

  // =============================================================================================
  // registers
  // =============================================================================================

  private read(off: number): number {
    off &= 0xff0;
    switch (off) {
      case APIC_ID: return this.id;
      case APIC_VERSION: return APIC_VERSION_VALUE;
      case APIC_TPR: return this.tpr;
      case APIC_APR: return this.apr();
      case APIC_PPR: return this.ppr();
      case APIC_EOI: return 0;
      case APIC_RRD: return 0;
      case APIC_LDR: return this.ldr;
      case APIC_DFR: return this.dfr;
      case APIC_SVR: return this.svr;
      case APIC_ESR: return this.esr;
      case APIC_ICR_LO: return this.icrLo;
      case APIC_ICR_HI: return this.icrHi;
      case APIC_TIMER_INITIAL: return this.timerInitial | 0;
      case APIC_TIMER_CURRENT: return this.currentCount(this.clock.now()) | 0;
      case APIC_TIMER_DIVIDE: return this.timerDivide;
      default:
        if (off >= APIC_ISR && off < APIC_ISR + 0x80) return this.isr[(off - APIC_ISR) >> 4];
        if (off >= APIC_TMR && off < APIC_TMR + 0x80) return this.tmr[(off - APIC_TMR) >> 4];
        if (off >= APIC_IRR && off < APIC_IRR + 0x80) return this.irr[(off - APIC_IRR) >> 4];
        if (off >= APIC_LVT_TIMER && off <= APIC_LVT_ERROR) return this.lvt[(off - APIC_LVT_TIMER) >> 4];
        this.signalError(ESR_ILLEGAL_REG);
        return 0;
    }
  }

  private write(off: number, v: number): void {
    if ((off & 0xf) !== 0) return;
    switch (off) {
      case APIC_ID:
        this.id = v & 0xff000000;
        break;
      case APIC_TPR:
        this.tpr = v & 0xff;
        this.updateIntr();
        break;
      case APIC_EOI:
        this.eoi();
        break;
      case APIC_LDR:
        this.ldr = v & 0xff000000;
        break;
      case APIC_DFR:
        this.dfr = v | 0x0fffffff;
        break;
      case APIC_SVR:
        this.svr = v & 0x3ff;
        if ((v & SVR_ENABLE) === 0) for (let i = 0; i < LVT_COUNT; i++) this.lvt[i] |= LVT_MASKED;
        this.updateIntr();
        break;
      case APIC_ESR:
        this.esr = this.esrPending;
        this.esrPending = 0;
        break;
      case APIC_ICR_LO:
        this.icrLo = v & ICR_LO_WRITABLE;
        this.sendIpi();
        break;
      case APIC_ICR_HI:
        this.icrHi = v & 0xff000000;
        break;
      case APIC_TIMER_INITIAL:
        this.startTimer(v >>> 0);
        break;
      case APIC_TIMER_DIVIDE: {
        const now = this.clock.now();
        const c = this.currentCount(now);
        this.timerDivide = v & 0xb;
        this.rebaseTimer(now, c);
        break;
      }
      case APIC_VERSION:
      case APIC_APR:
      case APIC_PPR:
      case APIC_RRD:
      case APIC_TIMER_CURRENT:
        break; // read-only
      default:
        if (off >= APIC_LVT_TIMER && off <= APIC_LVT_ERROR) this.writeLvt((off - APIC_LVT_TIMER) >> 4, v);
        else if (off < APIC_ISR || off >= APIC_IRR + 0x80) this.signalError(ESR_ILLEGAL_REG);
        break; // ISR/TMR/IRR are read-only
    }
  }

  private writeLvt(i: number, v: number): void {
    const old = this.lvt[i];
    let nv = v & LVT_WRITABLE[i];
    if (i === LVT_L0 || i === LVT_L1) {
      nv |= old & LVT_REMOTE_IRR;
      if ((nv & LVT_LEVEL) === 0) nv &= ~LVT_REMOTE_IRR;
    }
    if ((this.svr & SVR_ENABLE) === 0) nv |= LVT_MASKED;
    if (i === LVT_T && (nv ^ old) & LVT_TIMER_PERIODIC) {
      const now = this.clock.now();
      const c = this.currentCount(now);
      this.lvt[i] = nv;
      this.rebaseTimer(now, c);
      return;
    }
    this.lvt[i] = nv;
    if (i === LVT_L0) {
      this.updateIntr();
      this.lintLevelCheck(i);
    } else if (i === LVT_L1) {
      this.lintLevelCheck(i);
    }
  }

  private sendIpi(): void {
    const lo = this.icrLo;
    const vector = lo & 0xff;
    const mode = (lo >> 8) & 7;
    let toSelf: boolean;
    switch ((lo >> 18) & 3) {
      case 0: toSelf = this.matchesDest((lo & ICR_LOGICAL) !== 0, this.icrHi >>> 24); break;
      case 1: // self
      case 2: toSelf = true; break; // all including self
      default: toSelf = false; break; // all excluding self: nobody else here
    }
    switch (mode) {
      case DM_FIXED:
      case DM_LOWEST:
        if (vector < 16) {
          this.signalError(ESR_SEND_ILLEGAL);
          return;
        }
        if (toSelf) this.accept(vector, false);
        break;
      case DM_NMI:
        if (toSelf) this.cpu.raiseNmi();
        break;
      default:
        break; // INIT, SIPI, SMI: one CPU, not modelled; delivery status stays idle
    }
  }

  // =============================================================================================
  // timer
  // =============================================================================================

  /** ns per count at the current divide configuration */
  private countNs(): number {
    const d = ((this.timerDivide & 8) >> 1) | (this.timerDivide & 3);
    return this.busTickNs * (d === 7 ? 1 : 2 << d);
  }

  /** the timer divisor (1–128) */
  get timerDivisor(): number {
    const d = ((this.timerDivide & 8) >> 1) | (this.timerDivide & 3);
    return d === 7 ? 1 : 2 << d;
  }

  private currentCount(now: number): number {
    if (!this.timerRunning) return 0;
    const e = Math.floor((now - this.timerBaseNs) / this.countNs());
    if (e < this.timerBaseCount) return this.timerBaseCount - e;
    if ((this.lvt[LVT_T] & LVT_TIMER_PERIODIC) === 0) return 0;
    return this.timerInitial - ((e - this.timerBaseCount) % this.timerInitial);
  }

  private startTimer(initial: number): void {
    this.timerInitial = initial;
    this.rebaseTimer(this.clock.now(), initial);
  }

  /** the count is `count` at `now`: (re)schedules the next expiry */
  private rebaseTimer(now: number, count: number): void {
    this.cancelTimer();
    if (count <= 0 || this.timerInitial === 0) {
      this.timerRunning = false;
      return;
    }
    this.timerRunning = true;
    this.timerBaseNs = now;
    this.timerBaseCount = count;
    this.timerDeadline = now + count * this.countNs();
    this.timerId = this.clock.at(this.timerDeadline, this.timerCb);
  }

  private cancelTimer(): void {
    if (this.timerId >= 0) this.clock.cancel(this.timerId);
    this.timerId = -1;
  }

  private timerExpired(now: number): void {
    this.timerId = -1;
    const l = this.lvt[LVT_T];
    if ((l & LVT_MASKED) === 0) this.accept(l & 0xff, false);
    if ((l & LVT_TIMER_PERIODIC) === 0) {
      this.timerRunning = false;
      return;
    }
    const period = this.timerInitial * this.countNs();
    let next = this.timerDeadline + period;
    if (next <= now) next += (Math.floor((now - next) / period) + 1) * period; // coalesce missed expiries
    this.timerDeadline = next;
    this.timerId = this.clock.at(next, this.timerCb);
  }
}
