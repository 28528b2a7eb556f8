/**
 * QEMU/Bochs debug console at I/O port 0xE9: every byte the guest writes goes to the sink, as written.
 * Reads return 0xE9 (QEMU's "readback" value, which lets a guest detect the port). Like QEMU, the device
 * decodes one port: a 16/32-bit OUT to 0xE9 delivers its low byte here and the rest to the ports above.
 */
import type { SerialSink } from '../core/host';
import type { IoBus } from '../core/iobus';
import type { Device } from '../core/machine';

export const DEBUGCON_PORT = 0xe9;

/** the port SeaBIOS writes its debug log to (QEMU's -chardev …,id=seabios -device isa-debugcon,iobase=0x402) */
export const FIRMWARE_LOG_PORT = 0x402;

export class DebugCon implements Device {
  readonly name: string;
  readonly port: number;
  sink: SerialSink;
  /** bytes written since power-on (diagnostics) */
  count = 0;

  constructor(machine: { readonly io: IoBus }, sink: SerialSink, port = DEBUGCON_PORT, name = 'debugcon') {
    this.sink = sink;
    this.port = port;
    this.name = name;
    machine.io.register(this.name, port, 1, {
      read8: () => 0xe9,
      write8: (_p, v) => {
        this.count++;
        this.sink.write(v & 0xff);
      },
    });
  }

  reset(): void {}

  saveState(): { count: number } {
    return { count: this.count };
  }

  loadState(state: unknown): void {
    const s = state as { count?: number };
    this.count = typeof s?.count === 'number' ? s.count : 0;
  }
}
