/**
 * Interrupt request lines of the PC: ISA IRQ 0–15 plus IOAPIC-only inputs 16–23. Each device gets its
 * own IrqLine from line(n); a line's level is the wired OR of every source connected to it (PCI INTx
 * lines are shared). Level changes go to every attached controller (the 8259 pair, the IOAPIC).
 */
import type { IrqLine } from './host';

export const IRQ_LINES = 24;

/** an interrupt controller input side: told the new level of input n whenever it changes */
export interface IrqSink {
  setIrq(n: number, level: boolean): void;
}

export class IrqRouter {
  private readonly sinks: IrqSink[] = [];
  /** per line, one bit per source that currently asserts it */
  private readonly asserted = new Uint32Array(IRQ_LINES);
  private readonly sources = new Uint8Array(IRQ_LINES);

  attach(sink: IrqSink): void {
    this.sinks.push(sink);
    for (let n = 0; n < IRQ_LINES; n++) if (this.asserted[n]) sink.setIrq(n, true);
  }

  /** a new source on line n (up to 32 per line) */
  line(n: number): IrqLine {
    if (n < 0 || n >= IRQ_LINES) throw new RangeError(`no IRQ line ${n}`);
    const id = this.sources[n]++;
    if (id >= 32) throw new RangeError(`too many sources on IRQ ${n}`);
    const bit = 1 << id;
    return (level: boolean) => {
      const before = this.asserted[n];
      const after = level ? before | bit : before & ~bit;
      if (after === before) return;
      this.asserted[n] = after;
      if ((before === 0) !== (after === 0)) for (const s of this.sinks) s.setIrq(n, after !== 0);
    };
  }

  /** the current level of line n */
  level(n: number): boolean {
    return this.asserted[n] !== 0;
  }

  saveState(): number[] {
    return Array.from(this.asserted);
  }

  loadState(s: number[]): void {
    for (let n = 0; n < IRQ_LINES; n++) this.asserted[n] = s[n] >>> 0;
  }
}
