/**
 * The PC's pair of 8259A programmable interrupt controllers: the master at 0x20/0x21 (IRQ 0–7) and the
 * slave at 0xA0/0xA1 (IRQ 8–15) cascaded into the master's IR2, plus the PIIX edge/level control
 * registers (ELCR) at 0x4D0/0x4D1.
 *
 * Implemented from the Intel 8259A datasheet and the PIIX3 datasheet:
 * - ICW1–ICW4 initialisation (single/cascade, ICW4 present or not, AEOI, special fully nested mode);
 *   ICW1.LTIM is ignored as on the PIIX: the ELCR alone selects edge or level triggering per input.
 * - OCW1 (mask), OCW2 (non-specific/specific EOI, rotate on EOI, rotate in AEOI mode, set priority),
 *   OCW3 (read IRR/ISR, poll command, special mask mode).
 * - Priority resolution with rotation, nesting against the in-service register, special mask mode.
 * - Edge inputs latch a rising edge into IRR (cleared by INTA); level inputs' IRR follows the line.
 * - An INTA with nothing left to deliver yields the spurious vector of IR7 (master) or IR15 (slave,
 *   with the master's IR2 in service), without setting the chip's ISR, as the real part does.
 * Until its first ICW1 a chip keeps INT low (the real part's state before initialisation is undefined;
 * this keeps a line that is high at power-on, like the PIT's OUT0, from interrupting a fresh machine).
 * The master's cascade input follows the slave's INT output as a level (ELCR bit 2 is reserved), so a
 * slave with several requests keeps asking the master until it is drained. Line 2 of the IrqRouter is
 * not an ISA pin on a PC (the bus's IRQ2 pin is wired to IRQ9), so setIrq(2, …) is ignored here.
 */
import type { IoBus } from '../core/iobus';
import type { IrqSink } from '../core/irq';
import type { Device } from '../core/machine';
import type { InterruptController } from '../core/cpu';

export const PIC_MASTER_PORT = 0x20;
export const PIC_SLAVE_PORT = 0xa0;
export const ELCR_PORT = 0x4d0;
/** ELCR bits that can be set (IRQ 0, 1, 2, 8 and 13 are always edge-triggered on the PIIX) */
const ELCR_MASK = [0xf8, 0xde];
const CASCADE_IRQ = 2;

/** the state of one 8259A */
export interface PicChipState {
  irr: number;
  isr: number;
  imr: number;
  elcr: number;
  /** current levels of the 8 input lines */
  lines: number;
  vectorBase: number;
  lowest: number;
  /** next write to the odd port: 0 = OCW1, 2 = ICW2, 3 = ICW3, 4 = ICW4 */
  initStep: number;
  icw4Needed: boolean;
  single: boolean;
  icw3: number;
  autoEoi: boolean;
  rotateOnAeoi: boolean;
  sfnm: boolean;
  readIsr: boolean;
  poll: boolean;
  specialMask: boolean;
  /** ICW1 has been written since power-on */
  ready: boolean;
}

export interface PicState {
  chips: [PicChipState, PicChipState];
  output: boolean;
}

/** one 8259A: registers and priority logic; the pair below does the wiring */
class PicChip {
  irr = 0;
  isr = 0;
  imr = 0;
  elcr = 0;
  lines = 0;
  vectorBase = 0;
  /** the lowest-priority IR input (7 after init: IR0 has the highest priority) */
  lowest = 7;
  initStep = 0;
  icw4Needed = false;
  single = false;
  icw3 = 0;
  autoEoi = false;
  rotateOnAeoi = false;
  sfnm = false;
  readIsr = false;
  poll = false;
  specialMask = false;
  /** an uninitialised chip (no ICW1 since power-on) latches requests but keeps INT low */
  ready = false;

  constructor(readonly isMaster: boolean) {}

  powerOn(): void {
    this.irr = 0;
    this.isr = 0;
    this.imr = 0;
    this.elcr = 0;
    this.lines = 0;
    this.vectorBase = 0;
    this.lowest = 7;
    this.initStep = 0;
    this.icw4Needed = false;
    this.single = false;
    this.icw3 = 0;
    this.autoEoi = false;
    this.rotateOnAeoi = false;
    this.sfnm = false;
    this.readIsr = false;
    this.poll = false;
    this.specialMask = false;
    this.ready = false;
  }

  /** rank of input n: 0 = highest priority */
  private rank(n: number): number {
    return (n - this.lowest - 1) & 7;
  }

  /** the highest-priority input set in mask, or -1 */
  highest(mask: number): number {
    if (!mask) return -1;
    for (let i = 0; i < 8; i++) {
      const n = (this.lowest + 1 + i) & 7;
      if (mask & (1 << n)) return n;
    }
    return -1;
  }

  /** the input the chip asks service for (its INT output), or -1 */
  request(): number {
    if (!this.ready) return -1;
    const req = this.highest(this.irr & ~this.imr & 0xff);
    if (req < 0) return -1;
    let inService = this.isr;
    // special mask mode: masked levels in service do not hold back anything
    if (this.specialMask) inService &= ~this.imr;
    // special fully nested mode: the slave's input in service does not block the slave's own requests
    if (this.isMaster && this.sfnm) inService &= ~(1 << CASCADE_IRQ);
    const cur = this.highest(inService & 0xff);
    if (cur >= 0 && this.rank(req) >= this.rank(cur)) return -1;
    return req;
  }

  /** a new level on input n (ELCR decides the sensing) */
  setInput(n: number, level: boolean): void {
    const bit = 1 << n;
    const was = (this.lines & bit) !== 0;
    if (level) this.lines |= bit;
    else this.lines &= ~bit;
    if (this.elcr & bit) {
      if (level) this.irr |= bit;
      else this.irr &= ~bit;
    } else if (level && !was) {
      this.irr |= bit;
    }
  }

  /** the INTA cycle for input n: sets ISR (unless AEOI), clears an edge request */
  ack(n: number): void {
    const bit = 1 << n;
    if (this.autoEoi) {
      if (this.rotateOnAeoi) this.lowest = n;
    } else {
      this.isr |= bit;
    }
    if (!(this.elcr & bit)) this.irr &= ~bit;
  }

  writeElcr(v: number): void {
    const mask = ELCR_MASK[this.isMaster ? 0 : 1];
    this.elcr = v & mask;
    // level-sensed inputs show their line in IRR
    this.irr = (this.irr & ~this.elcr) | (this.lines & this.elcr);
  }

  write(a0: number, v: number): void {
    if (a0 === 0) {
      if (v & 0x10) this.icw1(v);
      else if (v & 0x08) this.ocw3(v);
      else this.ocw2(v);
      return;
    }
    switch (this.initStep) {
      case 2:
        this.vectorBase = v & 0xf8;
        this.initStep = this.single ? (this.icw4Needed ? 4 : 0) : 3;
        break;
      case 3:
        this.icw3 = v;
        this.initStep = this.icw4Needed ? 4 : 0;
        break;
      case 4:
        this.autoEoi = (v & 0x02) !== 0;
        this.sfnm = (v & 0x10) !== 0;
        this.initStep = 0;
        break;
      default:
        this.imr = v;
        break;
    }
  }

  private icw1(v: number): void {
    this.icw4Needed = (v & 0x01) !== 0;
    this.single = (v & 0x02) !== 0;
    this.initStep = 2;
    this.ready = true;
    // the datasheet: mask cleared, IR7 lowest priority, special mask mode off, read IRR selected,
    // edge-sense latches cleared; like QEMU and Bochs we also drop the in-service bits
    this.imr = 0;
    this.isr = 0;
    this.irr = this.lines & this.elcr;
    this.lowest = 7;
    this.specialMask = false;
    this.readIsr = false;
    this.poll = false;
    this.rotateOnAeoi = false;
    if (!this.icw4Needed) {
      this.autoEoi = false;
      this.sfnm = false;
    }
  }

  private ocw2(v: number): void {
    const level = v & 7;
    switch (v >> 5) {
      case 0: // rotate in AEOI mode: clear
        this.rotateOnAeoi = false;
        break;
      case 4: // rotate in AEOI mode: set
        this.rotateOnAeoi = true;
        break;
      case 1: // non-specific EOI
      case 5: {
        // rotate on non-specific EOI
        const n = this.highest(this.isr);
        if (n >= 0) {
          this.isr &= ~(1 << n);
          if (v >> 5 === 5) this.lowest = n;
        }
        break;
      }
      case 3: // specific EOI
        this.isr &= ~(1 << level);
        break;
      case 7: // rotate on specific EOI
        this.isr &= ~(1 << level);
        this.lowest = level;
        break;
      case 6: // set priority
        this.lowest = level;
        break;
      default: // 2: no operation
        break;
    }
  }

  private ocw3(v: number): void {
    if (v & 0x40) this.specialMask = (v & 0x20) !== 0;
    if (v & 0x04) this.poll = true;
    if (v & 0x02) this.readIsr = (v & 0x01) !== 0;
  }

  save(): PicChipState {
    return {
      irr: this.irr,
      isr: this.isr,
      imr: this.imr,
      elcr: this.elcr,
      lines: this.lines,
      vectorBase: this.vectorBase,
      lowest: this.lowest,
      initStep: this.initStep,
      icw4Needed: this.icw4Needed,
      single: this.single,
      icw3: this.icw3,
      autoEoi: this.autoEoi,
      rotateOnAeoi: this.rotateOnAeoi,
      sfnm: this.sfnm,
      readIsr: this.readIsr,
      poll: this.poll,
      specialMask: this.specialMask,
      ready: this.ready,
    };
  }

  load(s: PicChipState): void {
    this.irr = s.irr & 0xff;
    this.isr = s.isr & 0xff;
    this.imr = s.imr & 0xff;
    this.elcr = s.elcr & ELCR_MASK[this.isMaster ? 0 : 1];
    this.lines = s.lines & 0xff;
    this.vectorBase = s.vectorBase & 0xf8;
    this.lowest = s.lowest & 7;
    this.initStep = [0, 2, 3, 4].includes(s.initStep) ? s.initStep : 0;
    this.icw4Needed = !!s.icw4Needed;
    this.single = !!s.single;
    this.icw3 = s.icw3 & 0xff;
    this.autoEoi = !!s.autoEoi;
    this.rotateOnAeoi = !!s.rotateOnAeoi;
    this.sfnm = !!s.sfnm;
    this.readIsr = !!s.readIsr;
    this.poll = !!s.poll;
    this.specialMask = !!s.specialMask;
    this.ready = s.ready ?? true;
  }
}

/** the master/slave pair as the PC wires it; serves as the CPU's interrupt controller */
export class Pic8259 implements Device, IrqSink, InterruptController {
  readonly name = 'pic';
  private readonly master = new PicChip(true);
  private readonly slave = new PicChip(false);
  private out = false;
  /**
   * The master's INT output: the platform connects it to cpu.setIntr, or to the local APIC's LINT0
   * (ExtINT) when one exists. Called whenever the level changes.
   */
  onOutput: (level: boolean) => void;

  constructor(machine: { readonly io: IoBus }, onOutput: (level: boolean) => void = () => {}) {
    this.onOutput = onOutput;
    const chip = (p: number): PicChip => (p & 0x80 ? this.slave : this.master);
    const handler = {
      read8: (p: number) => this.readPort(chip(p), p & 1),
      write8: (p: number, v: number) => {
        chip(p).write(p & 1, v);
        this.update();
      },
    };
    machine.io.register('pic-master', PIC_MASTER_PORT, 2, handler);
    machine.io.register('pic-slave', PIC_SLAVE_PORT, 2, handler);
    machine.io.register('elcr', ELCR_PORT, 2, {
      read8: (p) => (p & 1 ? this.slave : this.master).elcr,
      write8: (p, v) => {
        (p & 1 ? this.slave : this.master).writeElcr(v);
        this.update();
      },
    });
  }

  // ---------------------------------------------------------------------------------------------
  // inputs and output
  // ---------------------------------------------------------------------------------------------

  /** IrqSink: the level of ISA IRQ n (0–15) changed; other lines are not wired to the 8259s */
  setIrq(n: number, level: boolean): void {
    if (n < 0 || n > 15 || n === CASCADE_IRQ) return;
    if (n < 8) this.master.setInput(n, level);
    else this.slave.setInput(n - 8, level);
    this.update();
  }

  /** the current level of the INT output */
  get output(): boolean {
    return this.out;
  }

  /** true if an unmasked request would be delivered by the next acknowledge() */
  get pending(): boolean {
    return this.master.request() >= 0;
  }

  private cascaded(): boolean {
    return !this.master.single;
  }

  /** recomputes the slave → master cascade and the master's INT output */
  private update(): void {
    if (this.cascaded()) {
      const s = this.slave.request() >= 0;
      // the cascade input follows the slave's INT as a level
      this.master.lines = s ? this.master.lines | (1 << CASCADE_IRQ) : this.master.lines & ~(1 << CASCADE_IRQ);
      if (s) this.master.irr |= 1 << CASCADE_IRQ;
      else this.master.irr &= ~(1 << CASCADE_IRQ);
    }
    const level = this.master.request() >= 0;
    if (level !== this.out) {
      this.out = level;
      this.onOutput(level);
    }
  }

  /** The INTA cycle: returns the vector of the highest-priority request and moves it into service. */
  acknowledge(): number {
    const m = this.master;
    const n = m.request();
    let vec: number;
    if (n < 0) {
      vec = m.vectorBase + 7; // spurious IRQ7
    } else if (n === CASCADE_IRQ && this.cascaded()) {
      m.ack(n);
      const s = this.slave.request();
      if (s < 0) {
        vec = this.slave.vectorBase + 7; // spurious IRQ15 (IR2 stays in service on the master)
      } else {
        this.slave.ack(s);
        vec = this.slave.vectorBase + s;
      }
    } else {
      m.ack(n);
      vec = m.vectorBase + n;
    }
    this.update();
    return vec;
  }

  // ---------------------------------------------------------------------------------------------
  // registers
  // ---------------------------------------------------------------------------------------------

  private readPort(c: PicChip, a0: number): number {
    if (c.poll) {
      // poll command: the read acts as an INTA and returns 0x80 | level, or 0 when nothing is pending
      c.poll = false;
      let v = 0;
      if (c === this.master) {
        const n = c.request();
        if (n >= 0) {
          c.ack(n);
          v = 0x80 | n;
        }
      } else {
        if (this.cascaded()) this.update();
        const n = c.request();
        if (n >= 0) {
          c.ack(n);
          v = 0x80 | n;
          // the slave's request was taken over the data bus; the master's IR2 drops with it
        }
      }
      this.update();
      return v;
    }
    if (a0) return c.imr;
    return c.readIsr ? c.isr : c.irr;
  }

  // ---------------------------------------------------------------------------------------------
  // Device
  // ---------------------------------------------------------------------------------------------

  reset(): void {
    const ml = this.master.lines, sl = this.slave.lines;
    this.master.powerOn();
    this.slave.powerOn();
    // input lines keep their levels through a reset (the devices driving them reset themselves)
    this.master.lines = ml & ~(1 << CASCADE_IRQ);
    this.slave.lines = sl;
    this.update();
  }

  saveState(): PicState {
    return { chips: [this.master.save(), this.slave.save()], output: this.out };
  }

  loadState(state: unknown): void {
    const s = state as PicState;
    this.master.load(s.chips[0]);
    this.slave.load(s.chips[1]);
    this.out = !!s.output;
    this.onOutput(this.out);
    this.update();
  }
}
