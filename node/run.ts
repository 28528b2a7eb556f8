/**
 * The Node host's run loop: builds the Machine and its devices from RunOptions, loads the firmware or
 * kernel, and runs the CPU in slices, yielding to the event loop between slices (setImmediate) so that
 * stdin, timers and signals are served; while the guest waits in HLT it sleeps until the next timer or
 * host input instead of spinning. Usable from tests: runVm() resolves with the exit status and never
 * calls process.exit or touches the terminal (main.ts does that).
 */
import { createPc, type PcDeviceFactory } from '../core/pc';
import { fileURLToPath } from 'node:url';
import { ConsoleScript } from './expect';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { Machine, type StopReason } from '../core/machine';
import { CS } from '../core/defs';
import { BufferSink, NULL_SINK, type SerialSink } from '../core/host';
import { loadBios, checkBiosSize } from '../core/loader/bios';
import { loadMultiboot, MultibootError } from '../core/loader/multiboot';
import { isLinuxKernel, loadLinux, LinuxBootError } from '../core/loader/linux';
import { Uart16550 } from '../devices/uart';
import type { RunOptions } from './options';

export const EXIT_OK = 0;
export const EXIT_USAGE = 2;
export const EXIT_HALTED = 3;
export const EXIT_TRIPLE_FAULT = 4;
export const EXIT_INTERNAL = 70;
export const EXIT_TIMEOUT = 124;

/** instructions per slice between trips through the event loop */
export const SLICE = 1_000_000;

/** the default guest's kernel command line */
export const DEFAULT_GUEST_APPEND = 'console=ttyS0';

export interface RunResult {
  exitCode: number;
  /** a one-line explanation for stderr (already prefixed with "x86vm: "), if any */
  message?: string;
  /** extra detail for debugging (the stack of an internal error) */
  detail?: string;
  stopReason: StopReason | null;
  instructions: number;
  wallSeconds: number;
}

/** what the host (main.ts, tests) can do with a running VM */
export interface VmControl {
  readonly machine: Machine;
  readonly uart: Uart16550;
  /** bytes typed or piped in, for the guest's COM1 */
  input(bytes: ArrayLike<number>): void;
  /** ends the run from the host side with this exit status */
  stop(exitCode: number, message?: string): void;
}

export interface RunHooks {
  /** receives COM1 output when the serial option is stdio (default: process.stdout) */
  stdout?: (bytes: Uint8Array) => void;
  /** called after the machine is built and loaded, before it runs */
  onReady?: (vm: VmControl) => void;
  /** extra devices for the PC (tests and tools plug controllers in here) */
  devices?: PcDeviceFactory[];
}

class UserError extends Error {}

/** an output file written in batches (flushed between slices and at the end) */
class FileSink implements SerialSink {
  private readonly buf = new BufferSink();
  private fd: number;
  readonly path: string;

  constructor(path: string, what: string) {
    this.path = path;
    try {
      this.fd = openSync(path, 'w');
    } catch (e) {
      throw new UserError(`cannot open ${what} file '${path}': ${describeFsError(e)}`);
    }
  }

  write(byte: number): void {
    this.buf.write(byte);
  }

  flush(): void {
    if (this.fd < 0 || this.buf.length === 0) return;
    const bytes = this.buf.take();
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
  }

  close(): void {
    if (this.fd < 0) return;
    this.flush();
    closeSync(this.fd);
    this.fd = -1;
  }
}

/** a sink that collects bytes and hands them to a callback in batches */
class BatchSink implements SerialSink {
  private readonly buf = new BufferSink();
  constructor(private readonly out: (bytes: Uint8Array) => void) {}
  write(byte: number): void {
    this.buf.write(byte);
  }
  flush(): void {
    if (this.buf.length) this.out(this.buf.take());
  }
  close(): void {
    this.flush();
  }
}

function describeFsError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    default:
      return err?.message ?? String(e);
  }
}

function readInput(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new UserError(`cannot read ${what} '${path}': ${describeFsError(e)}`);
  }
}

function hex(n: number, width: number): string {
  return (n >>> 0).toString(16).padStart(width, '0');
}

function where(machine: Machine): string {
  const cpu = machine.cpu;
  return `CS:EIP=${hex(cpu.segSel[CS], 4)}:${hex(cpu.instrStart, 8)}`;
}

/** Runs a VM to completion. Never throws for user errors: they come back as exit status 2. */
export async function runVm(options: RunOptions, hooks: RunHooks = {}): Promise<RunResult> {
  const started = performance.now();
  const sinks: { flush(): void; close(): void }[] = [];
  const closeAll = (): void => {
    for (const s of sinks) {
      try {
        s.close();
      } catch {
        // a full disk while closing must not hide the run's result
      }
    }
  };
  const result = (exitCode: number, message?: string, extra: Partial<RunResult> = {}): RunResult => ({
    exitCode,
    message,
    stopReason: null,
    instructions: 0,
    wallSeconds: (performance.now() - started) / 1000,
    ...extra,
  });

  // ---- build and load ----
  const scriptOut: number[] = [];
  let machine: Machine;
  let uart: Uart16550;
  try {
    if (options.defaultGuest) {
      const dir = new URL('../images/default/', import.meta.url);
      const kernelPath = fileURLToPath(new URL('bzImage', dir));
      const initrdPath = fileURLToPath(new URL('initramfs.cpio.gz', dir));
      for (const p of [kernelPath, initrdPath]) {
        if (!existsSync(p)) {
          throw new UserError(`the default guest is not built: '${p}' is missing (see images/README.md), or give --kernel FILE`);
        }
      }
      options = { ...options, kernel: kernelPath, initrd: initrdPath, append: options.append ?? DEFAULT_GUEST_APPEND };
    }
    const bios = options.bios !== undefined ? readInput(options.bios, 'BIOS image') : undefined;
    const kernel = options.kernel !== undefined ? readInput(options.kernel, 'kernel') : undefined;
    if (bios && options.bios !== undefined) {
      const problem = checkBiosSize(bios.length);
      if (problem) throw new UserError(`BIOS image '${options.bios}': ${problem}`);
    }
    if (!bios && !kernel) throw new UserError('nothing to boot: give --kernel FILE or --bios FILE');

    let serialSink: SerialSink = NULL_SINK;
    let teeSerial: SerialSink | null = null;
    if (options.serial.kind === 'stdio') {
      const out = hooks.stdout ?? ((bytes: Uint8Array) => void process.stdout.write(bytes));
      const s = new BatchSink(out);
      sinks.push(s);
      serialSink = s;
    } else if (options.serial.kind === 'file') {
      const s = new FileSink(options.serial.path, 'serial output');
      sinks.push(s);
      serialSink = s;
    }
    let debugconSink: FileSink | undefined;
    if (options.debugcon !== undefined) {
      debugconSink = new FileSink(options.debugcon, 'debugcon');
      sinks.push(debugconSink);
    }
    let postSink: FileSink | undefined;
    if (options.postLog !== undefined) {
      postSink = new FileSink(options.postLog, 'POST log');
      sinks.push(postSink);
    }

    if (options.script.length) {
      // the console script watches the serial output too
      const inner = serialSink;
      teeSerial = {
        write(byte: number): void {
          inner.write(byte);
          scriptOut.push(byte);
        },
      };
      serialSink = teeSerial;
    }

    const pc = createPc({
      memSize: options.memSize,
      deterministic: options.deterministic,
      noReboot: options.noReboot,
      serial: serialSink,
      debugcon: debugconSink,
      post: postSink,
      devices: hooks.devices,
    });
    machine = pc.machine;
    uart = pc.com1;

    if (bios) loadBios(machine.mem, bios);
    if (kernel && options.kernel !== undefined) {
      const file = options.kernel;
      if (isLinuxKernel(kernel)) {
        const initrd = options.initrd !== undefined ? readInput(options.initrd, 'initrd') : undefined;
        try {
          pc.prepareDirectBoot();
          loadLinux(pc, kernel, { cmdline: options.append ?? '', initrd, memoryMap: pc.memoryMap() });
        } catch (e) {
          if (e instanceof LinuxBootError) throw new UserError(`kernel '${file}': ${e.message}`);
          throw e;
        }
      } else {
        if (options.initrd !== undefined) {
          throw new UserError(`--initrd '${options.initrd}': kernel '${file}' is not a Linux kernel (an initrd needs one)`);
        }
        try {
          loadMultiboot(machine, kernel, { cmdline: `${file} ${options.append ?? ''}` });
        } catch (e) {
          if (e instanceof MultibootError) {
            if (e.notMultiboot) throw new UserError(`kernel '${file}' is neither a Linux bzImage nor a Multiboot kernel`);
            throw new UserError(`kernel '${file}': ${e.message}`);
          }
          throw e;
        }
      }
    }
  } catch (e) {
    closeAll();
    if (e instanceof UserError) return result(EXIT_USAGE, `x86vm: ${e.message}`);
    const err = e instanceof Error ? e : new Error(String(e));
    return result(EXIT_INTERNAL, `x86vm: internal error while setting up the machine: ${err.message}`, { detail: err.stack });
  }

  // ---- run ----
  const host: { stop: { code: number; message?: string } | null } = { stop: null };
  let wake: (() => void) | null = null;
  const wakeUp = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  const vm: VmControl = {
    machine,
    uart,
    input(bytes) {
      uart.receive(bytes);
      wakeUp();
    },
    stop(code, message) {
      if (!host.stop) host.stop = { code, message };
      machine.stop({ kind: 'exit', code, message });
      wakeUp();
    },
  };
  hooks.onReady?.(vm);

  const script = options.script.length ? new ConsoleScript(options.script, (bytes) => uart.receive(bytes)) : null;
  script?.start();

  const flushAll = (): void => {
    for (const s of sinks) s.flush();
  };
  const deadline = options.timeout !== undefined ? started + options.timeout * 1000 : Infinity;
  const limit = options.maxInstructions ?? Infinity;
  let total = 0;
  let timedOut = false;
  let limitHit = false;
  let internal: Error | null = null;
  machine.clock.setRunning(true);
  try {
    while (!machine.stopReason) {
      const slice = Math.min(SLICE, limit - total);
      if (slice <= 0) {
        limitHit = true;
        break;
      }
      try {
        total += machine.run(slice);
      } catch (e) {
        internal = e instanceof Error ? e : new Error(String(e));
        break;
      }
      flushAll();
      if (script && scriptOut.length) {
        script.output(Uint8Array.from(scriptOut));
        scriptOut.length = 0;
      }
      if (machine.stopReason) break;
      if (machine.hostWait) {
        // deterministic mode: a disk completion fell due before the host finished it
        await machine.hostWait;
        continue;
      }
      if (total >= limit) {
        limitHit = true;
        break;
      }
      const now = performance.now();
      if (now >= deadline) {
        timedOut = true;
        break;
      }
      if (machine.cpu.halted) {
        // sleep until the next timer, host input, or the wall-clock limit
        const clock = machine.clock;
        let ms = 20;
        if (!clock.deterministic) {
          const next = clock.nextDeadline();
          if (next !== Infinity) ms = Math.min(ms, Math.max(0, (next - clock.now()) / 1e6));
        }
        ms = Math.min(ms, Math.max(0, deadline - now));
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            wake = null;
            resolve();
          }, ms);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      } else {
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  } finally {
    machine.clock.setRunning(false);
    try {
      flushAll();
    } finally {
      closeAll();
    }
  }

  const base = {
    stopReason: machine.stopReason,
    instructions: total,
    wallSeconds: (performance.now() - started) / 1000,
  };
  if (internal) {
    return {
      ...base,
      exitCode: EXIT_INTERNAL,
      message: `x86vm: internal error: ${internal.message} (at ${where(machine)})`,
      detail: internal.stack,
    };
  }
  if (host.stop) return { ...base, exitCode: host.stop.code, message: host.stop.message };
  const waiting = script?.pending;
  const waitingNote = waiting !== undefined ? `; the console script was still waiting for --expect '${waiting}'` : '';
  if (timedOut) {
    return {
      ...base,
      exitCode: EXIT_TIMEOUT,
      message: `x86vm: timed out after ${options.timeout} s (--timeout), at ${where(machine)}${waitingNote}`,
    };
  }
  if (limitHit) {
    return {
      ...base,
      exitCode: EXIT_TIMEOUT,
      message: `x86vm: stopped after ${total} instructions (--max-instructions), at ${where(machine)}${waitingNote}`,
    };
  }
  return { ...base, ...describeStop(machine, machine.stopReason) };
}

/** maps how the machine stopped to an exit status and a message */
export function describeStop(machine: Machine, reason: StopReason | null): { exitCode: number; message?: string } {
  if (!reason) return { exitCode: EXIT_INTERNAL, message: 'x86vm: internal error: the run ended without a reason' };
  switch (reason.kind) {
    case 'exit':
      return { exitCode: reason.code & 0xff };
    case 'poweroff':
      return { exitCode: EXIT_OK };
    case 'reset':
      return { exitCode: EXIT_OK };
    case 'halted':
      return {
        exitCode: EXIT_HALTED,
        message: `x86vm: ${reason.message}: nothing can wake it (HLT with IF=0 at ${where(machine)})`,
      };
    case 'triple-fault':
      return { exitCode: EXIT_TRIPLE_FAULT, message: `x86vm: ${reason.message}; stopping (--no-reboot), at ${where(machine)}` };
    case 'instruction-limit':
      return { exitCode: EXIT_TIMEOUT, message: 'x86vm: instruction limit reached' };
    case 'error':
      return { exitCode: EXIT_INTERNAL, message: `x86vm: internal error: ${reason.message} (at ${where(machine)})` };
  }
}
