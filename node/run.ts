/**
 * The Node host's run loop: builds the Machine and its devices from RunOptions, loads the firmware or
 * kernel, and runs the CPU in slices, yielding to the event loop between slices (setImmediate) so that
 * stdin, timers and signals are served; while the guest waits in HLT it sleeps until the next timer or
 * host input instead of spinning. Usable from tests: runVm() resolves with the exit status and never
 * calls process.exit or touches the terminal (main.ts does that).
 */
import { createPc, type Pc, type PcDeviceFactory } from '../core/pc';
import { attachDrives, closeDrives, openDrives, type OpenDrive } from './attach-drives';
import { textDump, writeScreenshot } from './screenshot';
import { attachNics, type AttachedNics } from './nics';
import type { SnapshotRom } from '../core/snapshot';
import {
  interactiveSnapshotName,
  latin1,
  restoreRun,
  saveRunSnapshot,
  scriptForRun,
  saveScript,
  SnapshotFileError,
  staleDiskNote,
  type RestoredRun,
  type SaveResult,
} from './snapshot';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { Machine, type StopReason } from '../core/machine';
import { CS } from '../core/defs';
import { BufferSink, NULL_SINK, type SerialSink } from '../core/host';
import { loadBios, checkBiosSize } from '../core/loader/bios';
import { loadMultiboot, MultibootError } from '../core/loader/multiboot';
import { isLinuxKernel, loadLinux, LinuxBootError } from '../core/loader/linux';
import { Uart16550 } from '../devices/uart';
import { UsageError, type RunOptions } from './options';

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
  /** the snapshot --save-state wrote */
  snapshot?: SaveResult;
  /** --restore: milliseconds to read, check and load the snapshot */
  restoreMs?: number;
}

/** what the host (main.ts, tests) can do with a running VM */
export interface VmControl {
  readonly machine: Machine;
  readonly uart: Uart16550;
  /** bytes typed or piped in, for the guest's COM1 */
  input(bytes: ArrayLike<number>): void;
  /** ends the run from the host side with this exit status */
  stop(exitCode: number, message?: string): void;
  /** saves a snapshot at the next slice boundary and goes on (Ctrl-A S); hooks.notice reports the file */
  saveSnapshot(): void;
  /** pauses or resumes the guest (Ctrl-A P); guest time stands still while paused. Returns true if now paused */
  togglePause(): boolean;
  /** writes a PNG of the VGA screen (Ctrl-A G) to x86vm-DATE-TIME.png; hooks.notice reports the file */
  screenshot(): void;
}

export interface RunHooks {
  /** receives COM1 output when the serial option is stdio (default: process.stdout) */
  stdout?: (bytes: Uint8Array) => void;
  /** called after the machine is built and loaded, before it runs */
  onReady?: (vm: VmControl) => void;
  /** extra devices for the PC (tests and tools plug controllers in here) */
  devices?: PcDeviceFactory[];
  /** one-line reports while the VM runs (a Ctrl-A S snapshot was saved, paused, resumed) */
  notice?: (text: string) => void;
  /** where Ctrl-A S snapshots go (default: the current directory) */
  snapshotDir?: string;
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
  const drives: OpenDrive[] = [];
  const notes: string[] = [];
  let r = await runVmWithDrives(options, hooks, drives, notes);
  // flush and close the disk images (and release their locks) whatever happened
  const problems = await closeDrives(drives);
  if (problems.length) r = { ...r, exitCode: r.exitCode || 1 };
  notes.push(...problems.map((p) => `x86vm: while closing ${p}`));
  if (notes.length) {
    const note = notes.join('\n');
    r = { ...r, message: r.message ? `${r.message}\n${note}` : note };
  }
  return r;
}

/** where Debian's seabios package puts the VGA BIOS for QEMU's standard VGA */
export const DEFAULT_VGA_BIOS = '/usr/share/seabios/vgabios-stdvga.bin';

async function runVmWithDrives(options: RunOptions, hooks: RunHooks, drives: OpenDrive[], notes: string[]): Promise<RunResult> {
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
  let pcRef: Pc | null = null;
  let nics: AttachedNics | null = null;
  let restored: RestoredRun | null = null;
  /** ROMs outside RAM (the BIOS), which a snapshot must carry */
  const roms: SnapshotRom[] = [];
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
    if (!bios && !kernel && options.restore === undefined) throw new UserError('nothing to boot: give --kernel FILE or --bios FILE');

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
    let firmwareLogSink: FileSink | undefined;
    if (options.firmwareLog !== undefined) {
      firmwareLogSink = new FileSink(options.firmwareLog, 'firmware log');
      sinks.push(firmwareLogSink);
    }
    let postSink: FileSink | undefined;
    if (options.postLog !== undefined) {
      postSink = new FileSink(options.postLog, 'POST log');
      sinks.push(postSink);
    }

    if (options.script.length || options.saveOn || options.restore !== undefined) {
      // the console script (and --save-on; a restored run may continue a saved script) watches the serial output too
      const inner = serialSink;
      teeSerial = {
        write(byte: number): void {
          inner.write(byte);
          scriptOut.push(byte);
        },
      };
      serialSink = teeSerial;
    }

    try {
      drives.push(...(await openDrives(options.drives ?? [], !!options.snapshot)));
    } catch (e) {
      if (e instanceof UsageError) throw new UserError(e.message);
      throw e;
    }
    // the screen: by default a VGA for firmware boots (SeaBIOS shows its messages there), none for a
    // direct kernel boot with its serial console; --vga, --screenshot and --vga-text ask for one
    const wantVga = options.vga !== undefined ? options.vga === 'std' : options.bios !== undefined || options.screenshot !== undefined || !!options.vgaText;
    let vgaRom: Uint8Array | undefined;
    if (wantVga) {
      const romPath = options.vgaBios ?? (options.bios !== undefined && existsSync(DEFAULT_VGA_BIOS) ? DEFAULT_VGA_BIOS : undefined);
      if (romPath !== undefined) vgaRom = readInput(romPath, 'VGA BIOS');
    }
    const devices: PcDeviceFactory[] = [...(hooks.devices ?? [])];
    // the drives given now, or (--restore) the snapshot's, which restoreRun opens into `drives` first
    devices.push((p: Pc) => {
      if (drives.length) attachDrives(p, drives);
    });
    if (options.nics?.length) {
      devices.push((p: Pc) => {
        nics = attachNics(p, options.nics!);
      });
    }

    const pc = options.restore !== undefined
      ? (restored = await restoreRun(options, { serial: serialSink, debugcon: debugconSink, firmwareLog: firmwareLogSink, post: postSink, devices }, drives)).pc
      : createPc({
      memSize: options.memSize,
      deterministic: options.deterministic,
      noReboot: options.noReboot,
      apic: options.apic,
      serial: serialSink,
      debugcon: debugconSink,
      firmwareLog: firmwareLogSink,
      post: postSink,
      devices,
      vga: wantVga ? { romImage: vgaRom } : undefined,
      boot: options.boot,
    });
    machine = pc.machine;
    uart = pc.com1;
    pcRef = pc;
    if (nics) {
      const attached: AttachedNics = nics;
      await attached.ready.catch((e: Error) => {
        throw new UserError(e.message);
      });
    }
    if (restored) roms.push(...restored.roms);

    if (bios) roms.push({ name: 'bios', base: loadBios(machine.mem, bios).highBase, data: bios });
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
    await (nics as AttachedNics | null)?.close();
    if (e instanceof UserError || e instanceof SnapshotFileError) return result(EXIT_USAGE, `x86vm: ${e.message}`);
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
  let saveRequested = false;
  let paused = false;
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
    saveSnapshot() {
      saveRequested = true;
      wakeUp();
    },
    screenshot() {
      const screen = pcRef?.vga;
      if (!screen) {
        hooks.notice?.('x86vm: no screen to take a picture of (no VGA: --vga std)');
        return;
      }
      const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
      const path = join(hooks.snapshotDir ?? '.', `x86vm-${stamp}.png`);
      writeScreenshot(screen, path).then(
        () => hooks.notice?.(`x86vm: screenshot written to ${path}`),
        (e: unknown) => hooks.notice?.(`x86vm: cannot write screenshot '${path}': ${e instanceof Error ? e.message : String(e)}`),
      );
    },
    togglePause() {
      paused = !paused;
      machine.clock.setRunning(!paused);
      wakeUp();
      return paused;
    },
  };
  (nics as AttachedNics | null)?.setWake(wakeUp);
  hooks.onReady?.(vm);

  // a restored run continues the saved console script (or starts the one given now) where it was
  const { script, unfed } = scriptForRun(options, restored?.host ?? null, (bytes) => uart.receive(bytes));
  scriptOut.push(...unfed);
  if (options.saveAt !== undefined && options.saveAt <= machine.cpu.instructionCount) {
    closeAll();
    return result(EXIT_USAGE, `x86vm: --save-at ${options.saveAt}: the restored machine is already at instruction ${machine.cpu.instructionCount}`);
  }

  const flushAll = (): void => {
    for (const s of sinks) s.flush();
  };
  const deadline = options.timeout !== undefined ? started + options.timeout * 1000 : Infinity;
  const limit = options.maxInstructions ?? Infinity;
  let total = 0;
  let timedOut = false;
  let limitHit = false;
  let internal: Error | null = null;
  // ---- snapshots: --save-at / --save-on save and stop, Ctrl-A S saves and goes on ----
  let saved: SaveResult | undefined;
  let saveOnText = '';
  const origin: Record<string, string> = restored?.origin ?? {};
  if (!restored) {
    for (const [k, v] of [['kernel', options.kernel], ['initrd', options.initrd], ['append', options.append], ['bios', options.bios]]) {
      if (v !== undefined) origin[k!] = v;
    }
  }
  /** `goOn`: the guest runs on after the save (Ctrl-A S): its next write to a directly-written disk is reported */
  const save = async (path: string, goOn = false): Promise<SaveResult> => {
    // guest time stands still while saving (real-time mode)
    machine.clock.setRunning(false);
    try {
      // the script's progress and the output it has not seen yet travel with the snapshot
      return await saveRunSnapshot(path, pcRef!, {
        roms,
        host: { script: saveScript(script), unfed: latin1(scriptOut) },
        origin,
        drives,
        onStale: goOn ? (text) => hooks.notice?.(text) : undefined,
      });
    } finally {
      if (!paused) machine.clock.setRunning(true);
    }
  };
  /** shows the console script (and --save-on) the output so far; true when --save-on matched */
  const feed = (): boolean => {
    if (!scriptOut.length) return false;
    const bytes = Uint8Array.from(scriptOut);
    scriptOut.length = 0;
    script?.output(bytes);
    if (!options.saveOn) return false;
    saveOnText += latin1(bytes);
    if (saveOnText.length > 256 * 1024) saveOnText = saveOnText.slice(-128 * 1024);
    return options.saveOn.re.test(saveOnText);
  };
  /**
   * Would the loop of an uninterrupted run also have come back here (so its console script saw the
   * output at this instruction)? Yes at the slice boundaries (multiples of SLICE from power-on) and where
   * Machine.run() returns early by itself: halted with no timer to wait for, or waiting for host I/O.
   */
  const naturalStop = (): boolean =>
    machine.cpu.instructionCount % SLICE === 0 ||
    machine.hostWait !== null ||
    (machine.cpu.halted && machine.clock.nextDeadline() === Infinity);

  machine.clock.setRunning(!paused);
  try {
    while (!machine.stopReason) {
      if (saveRequested) {
        saveRequested = false;
        const dir = hooks.snapshotDir;
        const name = interactiveSnapshotName((n) => existsSync(dir ? join(dir, n) : n));
        const path = dir ? join(dir, name) : name;
        try {
          const r = await save(path, true);
          hooks.notice?.(`x86vm: snapshot saved to ${path} (instruction ${r.instructions}, ${(r.bytes / 1048576).toFixed(1)} MiB)${staleDiskNote(r)}`);
        } catch (e) {
          if (!(e instanceof SnapshotFileError)) throw e;
          hooks.notice?.(`x86vm: ${e.message}`);
        }
        continue;
      }
      if (paused) {
        // guest time stands still; wait for Ctrl-A P, a snapshot request, a stop, or the wall-clock limit
        const waitMs = deadline - performance.now();
        if (waitMs <= 0) {
          timedOut = true;
          break;
        }
        await new Promise<void>((resolve) => {
          const t = Number.isFinite(waitMs) ? setTimeout(() => ((wake = null), resolve()), waitMs) : null;
          wake = () => {
            if (t) clearTimeout(t);
            resolve();
          };
        });
        continue;
      }
      // slices end at multiples of SLICE counted from power-on, not from this process's start: a run
      // restored from a snapshot then shows its console script the output at the same instructions
      const at = machine.cpu.instructionCount;
      let slice = Math.min(SLICE - (at % SLICE), limit - total);
      if (slice <= 0) {
        limitHit = true;
        break;
      }
      if (options.saveAt !== undefined) slice = Math.min(slice, options.saveAt - at);
      try {
        total += machine.run(slice);
      } catch (e) {
        internal = e instanceof Error ? e : new Error(String(e));
        break;
      }
      flushAll();
      const saveAtNow = options.saveAt !== undefined && machine.cpu.instructionCount >= options.saveAt && !machine.stopReason;
      // at --save-at the output waits for the restored run unless an uninterrupted run would show it here
      const saveOnHit = !saveAtNow || naturalStop() ? feed() : false;
      if (machine.stopReason) break;
      if ((saveAtNow || saveOnHit) && options.saveState !== undefined) {
        try {
          saved = await save(options.saveState);
          host.stop = {
            code: EXIT_OK,
            message: `x86vm: snapshot saved to '${saved.path}' at instruction ${saved.instructions} (${(saved.bytes / 1048576).toFixed(1)} MiB)`,
          };
        } catch (e) {
          if (!(e instanceof SnapshotFileError)) throw e;
          host.stop = { code: EXIT_USAGE, message: `x86vm: ${e.message}` };
        }
        break;
      }
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

  await (nics as AttachedNics | null)?.close();

  // the screen at the end of the run
  const screen = pcRef?.vga ?? null;
  if (screen && options.vgaText) {
    const text = textDump(screen);
    if (text === null) notes.push('x86vm: --vga-text: the screen is in a graphics mode');
    else (hooks.stdout ?? ((b: Uint8Array) => void process.stdout.write(b)))(new TextEncoder().encode(`${text}\n`));
  }
  if (screen && options.screenshot !== undefined) {
    try {
      await writeScreenshot(screen, options.screenshot);
    } catch (e) {
      notes.push(`x86vm: cannot write screenshot '${options.screenshot}': ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  const base = {
    stopReason: machine.stopReason,
    instructions: total,
    wallSeconds: (performance.now() - started) / 1000,
    snapshot: saved,
    restoreMs: restored?.ms,
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
  let waitingNote = waiting !== undefined ? `; the console script was still waiting for --expect '${waiting}'` : '';
  if (options.saveState !== undefined && !saved) {
    const when = options.saveAt !== undefined ? `--save-at ${options.saveAt}` : `--save-on '${options.saveOn?.source}' matched`;
    waitingNote += `; no snapshot was written (the run ended at instruction ${machine.cpu.instructionCount}, before ${when})`;
  }
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
  const stopped = describeStop(machine, machine.stopReason);
  if (waitingNote && options.saveState !== undefined && !saved) stopped.message = `${stopped.message ?? 'x86vm: the guest stopped'}${waitingNote}`;
  return { ...base, ...stopped };
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
