/**
 * A Machine owns one CPU, its physical memory, the I/O bus, the clock and the devices. Hosts (node/, web/)
 * create it, load firmware or a kernel into it, and call run() in slices, yielding to their event loop in
 * between. Devices end the run by calling stop() (isa-debug-exit, ACPI power-off, a triple fault in
 * no-reboot mode).
 */
import { Clock, type ClockState } from './clock';
import { Cpu } from './cpu';
import './ops/index';
import { IoBus } from './iobus';
import { Memory } from './memory';

export interface MachineOptions {
  /** RAM size in bytes */
  memSize: number;
  /** time follows the instruction count (reproducible runs) */
  deterministic?: boolean;
  /** a guest reset (triple fault, keyboard-controller reset, ACPI reset) ends the run instead */
  noReboot?: boolean;
}

export type StopReason =
  | { kind: 'exit'; code: number; message?: string }
  | { kind: 'poweroff' }
  | { kind: 'halted'; message: string }
  | { kind: 'triple-fault'; message: string }
  | { kind: 'reset'; message: string }
  | { kind: 'instruction-limit' }
  | { kind: 'error'; message: string };

/** A device plugged into the machine: it registers its ports / MMIO in its constructor or attach(). */
export interface Device {
  readonly name: string;
  reset?(): void;
  saveState?(): unknown;
  loadState?(state: unknown): void;
}

/** Machine.saveState(): what the machine itself holds besides the CPU, RAM and the devices */
export interface MachineState {
  clock: ClockState;
  /** the A20 gate is open */
  a20: boolean;
  /** measured speed (real-time mode) */
  instructionsPerMs: number;
}

/** real-time mode: instructions run between timer checks, at least and at most */
const MIN_QUANTUM = 2000;
const MAX_QUANTUM = 200_000;

export class Machine {
  readonly mem: Memory;
  readonly io: IoBus;
  readonly cpu: Cpu;
  readonly clock: Clock;
  readonly devices: Device[] = [];
  readonly options: MachineOptions;
  stopReason: StopReason | null = null;
  /** measured speed (real-time mode), used to size the quanta between timer checks */
  instructionsPerMs = 20_000;
  /**
   * Host work the guest must wait for before it may run on (deterministic mode: an I/O completion fell
   * due before the host finished it). run() returns at once while it is set; the host awaits it.
   */
  hostWait: Promise<void> | null = null;
  /** deterministic mode: the guest time at which the CPU's current budget ends (-Infinity between runs) */
  private runEndNs = -Infinity;
  /** inside cpu.run() */
  private cpuRunning = false;
  /** host I/O operations not yet settled (see trackIo) */
  private readonly inflight = new Set<Promise<unknown>>();
  /**
   * Called whenever a tracked host I/O operation settles: a host that idles while the guest is halted
   * wakes up here, so an I/O completion raising an interrupt is seen at once.
   */
  onIoSettled: (() => void) | null = null;

  constructor(options: MachineOptions) {
    this.options = options;
    this.mem = new Memory(options.memSize);
    this.io = new IoBus();
    this.clock = new Clock(!!options.deterministic);
    this.cpu = new Cpu(this.mem, this.io);
    this.clock.instructions = () => this.cpu.instructionCount;
    this.clock.idle = () => this.cpu.halted;
    // real-time mode: a timer falling due while the CPU runs ends its slice. Only then: a request left
    // over from the budget computation between slices would end the next slice before its first
    // instruction, and a halted CPU behind the host clock would never get to take its interrupts
    this.clock.onDue = () => {
      if (this.cpuRunning) this.cpu.requestExit();
    };
    // deterministic mode: a timer armed while the CPU runs (a guest register write) and due before the
    // CPU's budget ends stops the CPU at once, so the timer fires at its deadline, not at the slice's end
    this.clock.onArm = (deadline) => {
      if (deadline < this.runEndNs) this.cpu.requestExit();
    };
    this.cpu.onShutdown = (why) => this.guestReset(`triple fault: ${why}`, true);
  }

  /**
   * Stops the CPU until `p` settles (core/blockio.ts): run() returns early and hostWait is set until
   * then. Guest time does not advance meanwhile.
   */
  waitForHost(p: Promise<unknown>): void {
    const prev = this.hostWait;
    const w: Promise<void> = Promise.all([prev, p]).then(
      () => {
        if (this.hostWait === w) this.hostWait = null;
      },
      () => {
        if (this.hostWait === w) this.hostWait = null;
      },
    );
    this.hostWait = w;
    this.cpu.requestExit();
  }

  /** records a host I/O operation in flight, so that quiesce() can wait for it */
  trackIo(p: Promise<unknown>): void {
    this.inflight.add(p);
    const drop = (): void => {
      this.inflight.delete(p);
      this.onIoSettled?.();
    };
    p.then(drop, drop);
  }

  /** resolves once every host I/O operation started so far has settled (before a snapshot, on close) */
  async quiesce(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
    if (this.hostWait) await this.hostWait;
  }

  /**
   * The machine's own state (the clock's time base, the A20 gate). core/snapshot.ts saves the CPU, RAM
   * and devices with it; call quiesce() first, and stop a real-time clock so every part sees one instant.
   */
  saveState(): MachineState {
    return { clock: this.clock.saveState(), a20: this.mem.a20Enabled, instructionsPerMs: this.instructionsPerMs };
  }

  /** Loads saveState(): after the CPU (deterministic time needs its instruction count), before the devices. */
  loadState(state: unknown): void {
    const s = state as MachineState;
    this.clock.loadState(s.clock);
    this.mem.setA20(!!s.a20);
    if (s.instructionsPerMs > 0) this.instructionsPerMs = s.instructionsPerMs;
    this.stopReason = null;
  }

  addDevice<T extends Device>(dev: T): T {
    this.devices.push(dev);
    return dev;
  }

  /** Ends the run (the host's loop sees stopReason and stops calling run). The first reason wins. */
  stop(reason: StopReason): void {
    if (!this.stopReason) this.stopReason = reason;
    this.cpu.requestExit();
  }

  /** A guest-initiated reset (triple fault, port 0x64/0xCF9, ACPI): resets, or stops with --no-reboot. */
  guestReset(message: string, tripleFault = false): void {
    if (this.options.noReboot) {
      this.stop(tripleFault ? { kind: 'triple-fault', message } : { kind: 'reset', message });
      return;
    }
    this.reset();
  }

  reset(): void {
    this.cpu.reset();
    this.mem.setA20(true);
    for (const d of this.devices) d.reset?.();
  }

  /**
   * Runs at most `maxInstructions` instructions, firing due timers along the way. Returns the number
   * retired. Returns early when the machine stops, or when the CPU halts and no timer is due before
   * the slice's end (the host then waits for a timer or input).
   */
  run(maxInstructions: number): number {
    let done = 0;
    const clock = this.clock;
    while (done < maxInstructions && !this.stopReason && !this.hostWait) {
      clock.runDue();
      if (this.stopReason || this.hostWait) break;
      let budget = maxInstructions - done;
      const next = clock.nextDeadline();
      if (!clock.deterministic) budget = Math.min(budget, MAX_QUANTUM);
      if (next !== Infinity) {
        if (clock.deterministic) {
          const until = Math.ceil((next - clock.now()) / clock.nsPerInstruction);
          budget = Math.max(1, Math.min(budget, until));
        } else {
          // real time: run about as many instructions as fit before the next timer at the measured
          // speed, in short quanta, so timers fire on time instead of once per host slice
          const until = Math.ceil(((next - clock.now()) / 1e6) * this.instructionsPerMs);
          budget = Math.max(MIN_QUANTUM, Math.min(budget, until, MAX_QUANTUM));
        }
      }
      const t0 = clock.deterministic ? 0 : performance.now();
      if (clock.deterministic) this.runEndNs = clock.now() + budget * clock.nsPerInstruction;
      let n: number;
      this.cpuRunning = true;
      try {
        n = this.cpu.run(budget);
      } finally {
        this.cpuRunning = false;
        this.runEndNs = -Infinity;
      }
      done += n;
      if (!clock.deterministic && n >= MIN_QUANTUM) {
        const dt = performance.now() - t0;
        if (dt > 0) this.instructionsPerMs = this.instructionsPerMs * 0.75 + (n / dt) * 0.25;
      }
      if (this.cpu.halted) {
        if (!this.cpu.canWake()) {
          // HLT with IF=0: timers raise only maskable interrupts, so nothing can wake it
          this.stop({ kind: 'halted', message: 'the CPU halted with interrupts disabled' });
          break;
        }
        if (clock.deterministic) {
          // time jumps to the next timer while halted
          const next = clock.nextDeadline();
          if (next === Infinity) break;
          clock.advance(next - clock.now());
        } else {
          break;
        }
      }
    }
    return done;
  }
}
