/**
 * The small interfaces through which core/ and devices/ talk to the host (node/ or web/). Nothing here
 * depends on Node or the DOM. Hosts implement them; devices receive them in their constructors.
 */

/** Where a character device's output goes (serial console, debug console, POST-code log). */
export interface SerialSink {
  /** one byte (0–255) sent by the guest */
  write(byte: number): void;
}

/**
 * An interrupt request output of a device: called with the line's new level whenever it changes
 * (true = asserted). The interrupt controller (PIC/APIC) provides these; unconnected lines are null.
 */
export type IrqLine = (level: boolean) => void;

/** A SerialSink that discards everything (e.g. `--serial none`). */
export const NULL_SINK: SerialSink = { write() {} };

/** A SerialSink that keeps every byte in memory (tests, and hosts that flush in batches). */
export class BufferSink implements SerialSink {
  private buf = new Uint8Array(256);
  private len = 0;

  write(byte: number): void {
    if (this.len === this.buf.length) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.len++] = byte;
  }

  /** number of bytes held */
  get length(): number {
    return this.len;
  }

  /** the bytes written since the last take() (a copy), and forgets them */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.len);
    this.len = 0;
    return out;
  }

  /** the bytes held, without forgetting them */
  peek(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  /** the bytes held decoded as Latin-1 text (handy in tests) */
  text(): string {
    let s = '';
    for (let i = 0; i < this.len; i++) s += String.fromCharCode(this.buf[i]);
    return s;
  }
}
