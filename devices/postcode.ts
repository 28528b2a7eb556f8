/**
 * POST-code ports: 0x80 (the classic PC diagnostic port) and 0x190 (a second POST port some firmware
 * uses). Every byte written to either port goes to the sink, one byte per write, in order. A wider OUT
 * delivers its low byte (the bus splits it; the neighbouring ports are not decoded). Reads return 0xFF.
 */
import type { SerialSink } from '../core/host';
import type { IoBus } from '../core/iobus';
import type { Device } from '../core/machine';

export const POST_PORTS: readonly number[] = [0x80, 0x190];

export class PostCodes implements Device {
  readonly name = 'post-codes';
  sink: SerialSink;
  /** the last code written (-1: none since reset) */
  last = -1;

  constructor(machine: { readonly io: IoBus }, sink: SerialSink, ports: readonly number[] = POST_PORTS) {
    this.sink = sink;
    for (const port of ports) {
      machine.io.register(`${this.name}@0x${port.toString(16)}`, port, 1, {
        read8: () => 0xff,
        write8: (_p, v) => {
          this.last = v & 0xff;
          this.sink.write(v & 0xff);
        },
      });
    }
  }

  reset(): void {
    this.last = -1;
  }

  saveState(): { last: number } {
    return { last: this.last };
  }

  loadState(state: unknown): void {
    const s = state as { last?: number };
    this.last = typeof s?.last === 'number' ? s.last : -1;
  }
}
