/**
 * QEMU's isa-debug-exit, as configured by `-device isa-debug-exit,iobase=0xf4,iosize=4`: a write of v
 * (byte, word or dword, to any of ports 0xF4–0xF7) ends the run with exit status (v << 1) | 1.
 * QEMU passes (v << 1) | 1 to exit(), so the process status the host sees is its low 8 bits; we report
 * exactly that status (a 32-bit write of 0x1234 gives 0x69 = 105 on both QEMU and x86vm). Reads return 0.
 */
import type { Machine, Device } from '../core/machine';

/** what the device needs from the machine */
export type DebugExitHost = Pick<Machine, 'io' | 'stop'>;

export const DEBUG_EXIT_PORT = 0xf4;
export const DEBUG_EXIT_SIZE = 4;

/** the exit status QEMU's isa-debug-exit produces for a guest write of v */
export function debugExitStatus(v: number): number {
  return ((v << 1) | 1) & 0xff;
}

export class DebugExit implements Device {
  readonly name = 'isa-debug-exit';
  private readonly machine: DebugExitHost;

  constructor(machine: DebugExitHost, port = DEBUG_EXIT_PORT, size = DEBUG_EXIT_SIZE) {
    this.machine = machine;
    const exit = (v: number, bits: number): void => this.exit(v, bits);
    machine.io.register(this.name, port, size, {
      read8: () => 0,
      read16: () => 0,
      read32: () => 0,
      write8: (_p, v) => exit(v & 0xff, 8),
      write16: (_p, v) => exit(v & 0xffff, 16),
      write32: (_p, v) => exit(v >>> 0, 32),
    });
  }

  private exit(v: number, bits: number): void {
    const hex = v.toString(16).padStart(bits / 4, '0');
    this.machine.stop({
      kind: 'exit',
      code: debugExitStatus(v),
      message: `the guest wrote 0x${hex} to isa-debug-exit`,
    });
  }

  reset(): void {}

  saveState(): Record<string, never> {
    return {};
  }

  loadState(_state: unknown): void {}
}
