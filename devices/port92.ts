/**
 * System Control Port A (0x92, "fast A20 and reset"), as on the PS/2 and the PIIX:
 * - bit 0: writing 1 resets the CPU (the platform maps the callback to machine.guestReset); reads back as
 *   the last value written, cleared by the reset itself;
 * - bit 1: the A20 gate (reads back the gate's actual state, which the keyboard controller can change too:
 *   as in QEMU, the last writer wins);
 * - bits 2–7 (security lock, disk-activity LEDs…) are stored and read back.
 */
import type { IoBus } from '../core/iobus';
import type { Device } from '../core/machine';

/** the A20 gate (core/memory's Memory satisfies this) */
export interface A20Gate {
  setA20(enabled: boolean): void;
  readonly a20Enabled: boolean;
}

export interface Port92Host {
  readonly io: IoBus;
  readonly mem: A20Gate;
}

export interface Port92State {
  value: number;
}

export class Port92 implements Device {
  readonly name = 'port92';
  private readonly mem: A20Gate;
  private readonly onReset: () => void;
  /** bits 0 and 2–7 as last written */
  private value = 0;

  constructor(host: Port92Host, onReset: () => void) {
    this.mem = host.mem;
    this.onReset = onReset;
    host.io.register(this.name, 0x92, 1, {
      read8: () => (this.value & ~0x02) | (this.mem.a20Enabled ? 0x02 : 0),
      write8: (_p, v) => this.write(v),
    });
  }

  private write(v: number): void {
    const old = this.value;
    this.value = v & ~0x02;
    this.mem.setA20((v & 0x02) !== 0);
    if (v & 0x01 && !(old & 0x01)) this.onReset();
  }

  reset(): void {
    this.value = 0;
  }

  saveState(): Port92State {
    return { value: this.value };
  }

  loadState(state: unknown): void {
    this.value = (state as Port92State).value & 0xfd;
  }
}
