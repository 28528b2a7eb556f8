/**
 * The I/O APIC (Intel 82093AA datasheet), memory-mapped at 0xFEC00000: IOREGSEL at +0x00 selects a
 * register, IOWIN at +0x10 reads/writes it. Registers: 0x00 ID (bits 24–27), 0x01 version 0x00170011
 * (24 redirection entries, version 0x11: no EOI register, EOIs come as the local APIC's broadcast),
 * 0x02 arbitration ID, 0x10 + 2n / 0x11 + 2n the low/high halves of redirection entry n.
 *
 * It is an IrqSink: attach it to the IrqRouter and pin n follows IRQ line n (logical levels, true =
 * asserted; the polarity bit is stored but not applied, since the router already hands out asserted/idle —
 * the ACPI tables may describe PCI lines as active-low without any change here). Which ISA IRQ lands on
 * which pin (IRQ0 → pin 2) is the platform's and the MADT's business: this device only has pins.
 *
 * Edge-triggered entries send one message per rising edge while unmasked (edges on a masked pin are lost,
 * as the datasheet says). Level-triggered entries (fixed or lowest-priority) send a message while the pin is
 * asserted, unmasked and remote IRR is clear, and set remote IRR when the local APIC takes it; the local
 * APIC's EOI broadcast for that vector clears remote IRR and, if the pin is still asserted, sends again.
 * Switching an entry to edge clears remote IRR (Linux's workaround for IOAPICs without an EOI register
 * relies on it). NMI, ExtINT, SMI and INIT entries are always edge-triggered. Messages are delivered at
 * once, so delivery status always reads idle.
 */
import type { Memory } from '../core/memory';
import type { Device } from '../core/machine';
import type { IrqSink } from '../core/irq';

export const IOAPIC_DEFAULT_BASE = 0xfec00000;
export const IOAPIC_PINS = 24;
export const IOAPIC_VERSION_VALUE = 0x00170011;

export const IOREGSEL = 0x00;
export const IOWIN = 0x10;

export const IOAPIC_REG_ID = 0x00;
export const IOAPIC_REG_VERSION = 0x01;
export const IOAPIC_REG_ARB = 0x02;
export const IOAPIC_REG_REDTBL = 0x10;

// redirection entry (low dword) fields
export const RTE_MASKED = 0x10000;
export const RTE_LEVEL = 0x8000;
export const RTE_REMOTE_IRR = 0x4000;
export const RTE_ACTIVE_LOW = 0x2000;
export const RTE_DELIVS = 0x1000;
export const RTE_LOGICAL = 0x800;
const RTE_WRITABLE = 0x1afff;

/** where the IOAPIC's messages go (devices/apic's LocalApic satisfies this) */
export interface IoApicTarget {
  /** delivers a message; returns true if a local APIC accepted it */
  deliver(vector: number, mode: number, levelTriggered: boolean, logical: boolean, dest: number): boolean;
  /** the local APIC calls this with the vector of each level-triggered EOI (the IOAPIC installs it) */
  onEoi: ((vector: number) => void) | null;
}

export interface IoApicHost {
  readonly mem: Memory;
}

export interface IoApicOptions {
  /** the local APIC */
  target: IoApicTarget;
  /** MMIO base (default 0xFEC00000) */
  base?: number;
  /** IOAPIC ID after reset (default 1, after the one CPU's APIC ID 0, as SeaBIOS numbers it) */
  id?: number;
  name?: string;
}

export interface IoApicState {
  id: number;
  regsel: number;
  lo: number[];
  hi: number[];
  pins: number[];
}

export class IoApic implements Device, IrqSink {
  readonly name: string;
  readonly base: number;
  private readonly target: IoApicTarget;
  private readonly initialId: number;
  private id = 0;
  private regsel = 0;
  private readonly lo = new Int32Array(IOAPIC_PINS);
  private readonly hi = new Int32Array(IOAPIC_PINS);
  /** current input levels (1 = asserted) */
  private readonly pins = new Uint8Array(IOAPIC_PINS);

  constructor(host: IoApicHost, options: IoApicOptions) {
    this.name = options.name ?? 'ioapic';
    this.base = (options.base ?? IOAPIC_DEFAULT_BASE) >>> 0;
    this.target = options.target;
    this.initialId = (options.id ?? 1) & 0xf;
    this.target.onEoi = (v) => this.eoi(v);
    host.mem.mapMmio(this.base, 0x1000, {
      name: this.name,
      read8: (a) => (this.readMmio(a & 0xffc) >>> ((a & 3) * 8)) & 0xff,
      write8: (a, v) => this.writeMmioByte(a & 0xfff, v),
      read32: (a) => this.readMmio(a & 0xffc),
      write32: (a, v) => {
        if ((a & 3) === 0) this.writeMmio(a & 0xfff, v);
      },
    });
    this.reset();
  }

  // ---- IrqSink ----

  setIrq(n: number, level: boolean): void {
    if (n < 0 || n >= IOAPIC_PINS) return;
    const prev = this.pins[n];
    this.pins[n] = level ? 1 : 0;
    if (level && !prev) this.service(n, true);
  }

  /** the low dword of redirection entry n (tests, debuggers) */
  entryLow(n: number): number {
    return this.lo[n] >>> 0;
  }

  /** the high dword of redirection entry n */
  entryHigh(n: number): number {
    return this.hi[n] >>> 0;
  }

  /** the EOI broadcast from the local APIC */
  eoi(vector: number): void {
    for (let n = 0; n < IOAPIC_PINS; n++) {
      const l = this.lo[n];
      if (l & RTE_REMOTE_IRR && (l & 0xff) === vector) {
        this.lo[n] = l & ~RTE_REMOTE_IRR;
        this.service(n, false);
      }
    }
  }

  // ---- Device ----

  reset(): void {
    this.id = this.initialId;
    this.regsel = 0;
    this.lo.fill(RTE_MASKED);
    this.hi.fill(0);
  }

  saveState(): IoApicState {
    return {
      id: this.id,
      regsel: this.regsel,
      lo: Array.from(this.lo),
      hi: Array.from(this.hi),
      pins: Array.from(this.pins),
    };
  }

  loadState(state: unknown): void {
    const s = state as IoApicState;
    this.id = s.id & 0xf;
    this.regsel = s.regsel & 0xff;
    for (let n = 0; n < IOAPIC_PINS; n++) {
      this.lo[n] = s.lo[n] | 0;
      this.hi[n] = s.hi[n] | 0;
      this.pins[n] = s.pins[n] ? 1 : 0;
    }
  }

  // ---- delivery ----

  /** pin n changed or its entry was written: sends a message if one is due */
  private service(n: number, rising: boolean): void {
    const l = this.lo[n];
    if (l & RTE_MASKED) return;
    const mode = (l >> 8) & 7;
    const level = (l & RTE_LEVEL) !== 0 && mode <= 1;
    if (level) {
      if (!this.pins[n] || l & RTE_REMOTE_IRR) return;
      if (this.target.deliver(l & 0xff, mode, true, (l & RTE_LOGICAL) !== 0, this.hi[n] >>> 24)) {
        this.lo[n] |= RTE_REMOTE_IRR;
      }
    } else if (rising) {
      this.target.deliver(l & 0xff, mode, false, (l & RTE_LOGICAL) !== 0, this.hi[n] >>> 24);
    }
  }

  // ---- registers ----

  private readMmio(off: number): number {
    if (off === IOREGSEL) return this.regsel;
    if (off === IOWIN) return this.readReg(this.regsel);
    return 0;
  }

  private writeMmio(off: number, v: number): void {
    if (off === IOREGSEL) this.regsel = v & 0xff;
    else if (off === IOWIN) this.writeReg(this.regsel, v);
  }

  private writeMmioByte(off: number, v: number): void {
    if (off === IOREGSEL) {
      this.regsel = v & 0xff;
    } else if (off >= IOWIN && off < IOWIN + 4) {
      const shift = (off - IOWIN) * 8;
      const cur = this.readReg(this.regsel);
      this.writeReg(this.regsel, (cur & ~(0xff << shift)) | ((v & 0xff) << shift));
    }
  }

  private readReg(r: number): number {
    switch (r) {
      case IOAPIC_REG_ID: return this.id << 24;
      case IOAPIC_REG_VERSION: return IOAPIC_VERSION_VALUE;
      case IOAPIC_REG_ARB: return this.id << 24;
      default: {
        const n = (r - IOAPIC_REG_REDTBL) >> 1;
        if (r < IOAPIC_REG_REDTBL || n >= IOAPIC_PINS) return 0;
        return r & 1 ? this.hi[n] : this.lo[n];
      }
    }
  }

  private writeReg(r: number, v: number): void {
    if (r === IOAPIC_REG_ID) {
      this.id = (v >>> 24) & 0xf;
      return;
    }
    const n = (r - IOAPIC_REG_REDTBL) >> 1;
    if (r < IOAPIC_REG_REDTBL || n >= IOAPIC_PINS) return;
    if (r & 1) {
      this.hi[n] = v & 0xff000000;
      return;
    }
    let nv = (v & RTE_WRITABLE) | (this.lo[n] & RTE_REMOTE_IRR);
    if ((nv & RTE_LEVEL) === 0) nv &= ~RTE_REMOTE_IRR;
    this.lo[n] = nv;
    this.service(n, false);
  }
}
