/**
 * The VM behind the page: the object web/worker.ts exposes through comlink, and what the protocol's unit
 * tests drive directly in Node. It fetches what to boot, builds the PC (core/pc.ts createPc), loads the
 * kernel or firmware exactly as the CLI does, and runs the CPU in slices of about SLICE_MS of wall time,
 * yielding to the worker's event loop between slices (a MessageChannel message, not setTimeout, which
 * browsers clamp to 4 ms) so that keystrokes, pause and snapshot requests are served at once. While the
 * guest waits in HLT the loop sleeps until the next timer or host input instead of spinning. Guest time
 * runs in real time by default (the machine paces it: core/clock.ts); the clock stops while paused.
 *
 * Control operations (boot, pause, resume, reset, snapshots) are serialised; input goes straight through.
 * The machine is built with noReboot, so a guest reboot and a triple fault come back here as stop reasons:
 * a reboot power-cycles (boots the same files again, disks keep their contents), a triple fault stops
 * with a message. Every failure the user can cause comes back as an Error with a plain-words message
 * (and, with no machine running, as the 'error' state).
 */
import { createPc, type Pc, type PcOptions } from '../core/pc';
import { BufferSink, type SerialSink } from '../core/host';
import type { StopReason } from '../core/machine';
import { CS } from '../core/defs';
import { MAX_RAM } from '../core/memory';
import { checkBiosSize, loadBios } from '../core/loader/bios';
import { isLinuxKernel, loadLinux, LinuxBootError } from '../core/loader/linux';
import { loadMultiboot, MultibootError } from '../core/loader/multiboot';
import type { BootConfig, Source, SnapshotFile, VmApiContract, VmListener, VmState, VmStatus } from './protocol';
import { sourceName } from './protocol';
import { SourceError, loadWhole } from './sources';
import { attachDisks, closeDisks, openDisks, type OpenDisk } from './disks';
import { screenDisplay, type Display } from './display';
import { BootOrderError, checkBootOrder } from '../core/bootorder';
import type { Screen } from '../core/screen';
import type { SnapshotRom } from '../core/snapshot';
import * as snapshots from './snapshots';

export const DEFAULT_MEM_MIB = 128;
/** wall time the CPU runs between two trips through the event loop */
export const SLICE_MS = 12;
/** how often the status (speed, guest time) is reported while running */
export const STATUS_INTERVAL_MS = 500;
/** how often the screen is polled for changes */
export const FRAME_INTERVAL_MS = 33;
/** the longest sleep while the CPU is halted (host input wakes it sooner) */
const MAX_IDLE_MS = 50;

/** a boot configuration with its files loaded, kept for power cycles */
interface Prepared {
  config: BootConfig;
  label: string;
  memMiB: number;
  deterministic: boolean;
  kernel?: { name: string; bytes: Uint8Array };
  initrd?: { name: string; bytes: Uint8Array };
  bios?: { name: string; bytes: Uint8Array };
  vgaBios?: { name: string; bytes: Uint8Array };
  bootOrder?: string;
  append: string;
  disks: OpenDisk[];
}

/** a machine that runs (or ran) here */
interface Running {
  pc: Pc;
  display: Display | null;
  /** the display adapter's screen (text dumps) */
  screen: Screen | null;
  /** what a power cycle boots again (null: restored from a snapshot with no boot of its own here) */
  boot: Prepared | null;
  label: string;
  memMiB: number;
  /** ROMs mapped outside RAM (the firmware), for snapshots */
  roms: SnapshotRom[];
  /** disks attached to this machine */
  disks: number;
  /** what it was booted from, recorded in snapshots */
  origin: Record<string, string>;
}

function hex(n: number, width: number): string {
  return (n >>> 0).toString(16).padStart(width, '0');
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Yields to the event loop without the 4 ms clamp of nested setTimeout(0): a MessageChannel message in
 * browsers (a task, queued behind the page's messages), setImmediate in Node (where a MessagePort drains
 * its queue in one go and would starve timers and I/O).
 */
function makeYield(): { yield: () => Promise<void>; close: () => void } {
  const g = globalThis as { setImmediate?: (cb: () => void) => unknown };
  if (typeof g.setImmediate === 'function') {
    const immediate = g.setImmediate;
    return { yield: () => new Promise((r) => immediate(r)), close: () => {} };
  }
  if (typeof MessageChannel === 'undefined') {
    return { yield: () => new Promise((r) => setTimeout(r, 0)), close: () => {} };
  }
  const ch = new MessageChannel();
  const waiting: (() => void)[] = [];
  ch.port1.onmessage = () => waiting.shift()?.();
  return {
    yield: () =>
      new Promise<void>((resolve) => {
        waiting.push(resolve);
        ch.port2.postMessage(0);
      }),
    close: () => {
      ch.port1.close();
      ch.port2.close();
      for (const w of waiting.splice(0)) w();
    },
  };
}

export class VmApi implements VmApiContract {
  private listener: VmListener | null = null;
  private vm: Running | null = null;
  private state: VmState = 'idle';
  private message = 'Nothing is running.';
  private label = '';
  /** run-loop generation: a loop whose generation is not current ends at its next step */
  private gen = 0;
  private wake: (() => void) | null = null;
  private readonly serialBuf = new BufferSink();
  private readonly serialSink: SerialSink = { write: (b) => this.serialBuf.write(b) };
  private chain: Promise<unknown> = Promise.resolve();
  private readonly yielder = makeYield();
  private mips = 0;
  private statusAt = 0;
  private statusInstr = 0;
  private frameAt = 0;

  // ---------------------------------------------------------------------------------------------
  // the contract

  setListener(listener: VmListener | null): void {
    this.listener = listener;
    this.emitStatus();
    const full = this.vm?.display?.full();
    if (full) this.call(() => this.listener?.onFrame?.(full));
  }

  boot(config: BootConfig, base?: string): Promise<VmStatus> {
    return this.serialize(async () => {
      const hadMachine = this.vm !== null;
      if (!hadMachine) this.setState('loading', 'Loading…');
      else this.message = 'Loading…';
      this.emitStatus();
      let prepared: Prepared;
      let built: Running;
      try {
        prepared = await this.prepare(config, base);
        try {
          built = this.build(prepared);
        } catch (e) {
          await closeDisks(prepared.disks);
          throw e;
        }
      } catch (e) {
        const text = errorText(e);
        if (!hadMachine) this.setState('error', text);
        else this.message = '';
        this.emitStatus();
        throw new Error(text);
      }
      await this.replace(built);
      this.start('');
      return this.status();
    });
  }

  pause(): Promise<VmStatus> {
    return this.serialize(async () => {
      if (this.state === 'running') {
        this.stopLoop();
        this.setState('paused', 'Paused.');
      }
      return this.status();
    });
  }

  resume(): Promise<VmStatus> {
    return this.serialize(async () => {
      if (this.state === 'paused' && this.vm) this.start('');
      return this.status();
    });
  }

  reset(): Promise<VmStatus> {
    return this.serialize(() => this.powerCycle(''));
  }

  shutdown(): Promise<VmStatus> {
    return this.serialize(async () => {
      await this.replace(null);
      this.setState('idle', 'Nothing is running.');
      this.label = '';
      return this.status();
    });
  }

  serialInput(bytes: Uint8Array): void {
    if (!this.vm) return;
    this.vm.pc.com1.receive(bytes);
    this.wakeUp();
  }

  key(code: string, down: boolean): void {
    if (!this.vm) return;
    if (down) this.vm.pc.kbc.keyDown(code);
    else this.vm.pc.kbc.keyUp(code);
    this.wakeUp();
  }

  mouse(dx: number, dy: number, buttons: number, dz: number): void {
    if (!this.vm) return;
    this.vm.pc.kbc.mouseMove(dx, dy, buttons, dz);
    this.wakeUp();
  }

  screenText(): string[] | null {
    return this.vm?.screen?.text() ?? null;
  }

  status(): VmStatus {
    const pc = this.vm?.pc;
    return {
      state: this.state,
      message: this.message,
      label: this.label,
      instructions: pc ? pc.cpu.instructionCount : 0,
      mips: this.state === 'running' ? this.mips : 0,
      guestSeconds: pc ? pc.clock.now() / 1e9 : 0,
      memMiB: this.vm?.memMiB ?? 0,
      display: !!this.vm?.display,
      snapshots: snapshots.available,
    };
  }

  saveSnapshot(): Promise<SnapshotFile> {
    return this.serialize(async () => {
      const vm = this.vm;
      if (!vm) throw new Error('there is no machine to save: boot one first');
      const wasRunning = this.state === 'running';
      this.stopLoop();
      try {
        await vm.pc.machine.quiesce();
        const bytes = await snapshots.saveMachine(vm.pc, { roms: vm.roms, disks: vm.disks, origin: vm.origin });
        return { name: snapshotName(new Date()), bytes };
      } finally {
        if (wasRunning && this.vm === vm) this.start(this.message);
      }
    });
  }

  restoreSnapshot(source: Source, base?: string): Promise<VmStatus> {
    return this.serialize(async () => {
      const name = sourceName(source);
      const hadMachine = this.vm !== null;
      if (!hadMachine) this.setState('loading', `Restoring ${name}…`);
      this.emitStatus();
      let built: Running;
      try {
        const bytes = await loadWhole(source, 'snapshot', base);
        const restored = await snapshots.restoreMachine(bytes, this.serialSink);
        this.wakeOnHostIo(restored.pc.machine);
        // a guest reset comes back here as a stop reason, whatever the saving host did with it
        (restored.pc.machine.options as { noReboot?: boolean }).noReboot = true;
        built = {
          pc: restored.pc,
          display: restored.screen ? screenDisplay(restored.screen) : null,
          screen: restored.screen,
          boot: this.vm?.boot ?? null,
          label: `snapshot ${name}`,
          memMiB: restored.memSize / (1024 * 1024),
          roms: restored.roms,
          disks: 0,
          origin: { ...(restored.origin ?? {}), restoredFrom: name },
        };
      } catch (e) {
        const text = `cannot restore snapshot '${name}': ${errorText(e)}`;
        if (!hadMachine) this.setState('error', text);
        this.emitStatus();
        throw new Error(text);
      }
      await this.replace(built);
      this.start('');
      return this.status();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // building machines

  /** fetches the files of a configuration and checks what can be checked before building */
  private async prepare(config: BootConfig, base?: string): Promise<Prepared> {
    const memMiB = config.memMiB ?? DEFAULT_MEM_MIB;
    const maxMiB = Math.floor(MAX_RAM / (1024 * 1024));
    if (!Number.isInteger(memMiB) || memMiB < 1 || memMiB > maxMiB) {
      throw new SourceError(`memory size ${memMiB} MiB is not possible: give a whole number of MiB from 1 to ${maxMiB}`);
    }
    if (!config.kernel && !config.bios) throw new SourceError('nothing to boot: give a kernel (or a firmware image)');
    if (config.initrd && !config.kernel) throw new SourceError('an initrd needs a kernel to go with it');
    const load = async (s: Source | undefined, what: string) => (s ? { name: sourceName(s), bytes: await loadWhole(s, what, base) } : undefined);
    let bootOrder: string | undefined;
    if (config.bootOrder !== undefined) {
      try {
        bootOrder = checkBootOrder(config.bootOrder);
      } catch (e) {
        if (e instanceof BootOrderError) throw new SourceError(`boot order '${config.bootOrder}': ${e.message}`);
        throw e;
      }
    }
    const [kernel, initrd, bios, vgaBios] = await Promise.all([
      load(config.kernel, 'kernel'),
      load(config.initrd, 'initrd'),
      load(config.bios, 'firmware'),
      load(config.vgaBios, 'VGA BIOS'),
    ]);
    if (kernel && kernel.bytes.length === 0) throw new SourceError(`kernel '${kernel.name}' is an empty file`);
    if (bios) {
      const problem = checkBiosSize(bios.bytes.length);
      if (problem) throw new SourceError(`firmware '${bios.name}': ${problem}`);
    }
    if (vgaBios) {
      const problem = checkOptionRom(vgaBios.bytes);
      if (problem) throw new SourceError(`VGA BIOS '${vgaBios.name}': ${problem}`);
    }
    const disks = await openDisks(config.disks ?? [], base, config.files);
    return {
      config,
      label: config.label ?? (kernel ? kernel.name : bios!.name),
      memMiB,
      deterministic: !!config.deterministic,
      kernel,
      initrd,
      bios,
      vgaBios,
      bootOrder,
      append: config.append ?? '',
      disks,
    };
  }

  /**
   * Wakes the run loop when a host I/O operation of `machine` settles. In real-time mode a disk read the
   * host finishes after its guest deadline completes from the promise (core/blockio.ts), raising the
   * controller's interrupt; a CPU halted in HLT waiting for that interrupt (SeaBIOS and ISOLINUX reading
   * the CD sector by sector) must run at once, not at the end of an idle sleep of up to MAX_IDLE_MS:
   * without this, loading the default guest from the ISO took a minute instead of seconds.
   */
  private wakeOnHostIo(machine: Pc['machine']): void {
    machine.onIoSettled = () => this.wakeUp();
  }

  /** a PC wired to this host (serial console, reboot handling) */
  private makePc(options: PcOptions): Pc {
    try {
      return createPc({ ...options, noReboot: true, serial: this.serialSink });
    } catch (e) {
      if (e instanceof RangeError) {
        throw new SourceError(`cannot give the guest ${Math.round(options.memSize / 1048576)} MiB of RAM in this tab (${e.message}); try less memory`);
      }
      throw e;
    }
  }

  /** builds and loads a machine for prepared files */
  private build(p: Prepared): Running {
    const vga = p.config.vga ?? (!!p.bios || !!p.vgaBios);
    if (p.vgaBios && !vga) throw new SourceError(`a VGA BIOS ('${p.vgaBios.name}') needs the VGA display: do not turn it off`);
    const pc = this.makePc({
      memSize: p.memMiB * 1024 * 1024,
      deterministic: p.deterministic,
      apic: p.config.apic,
      // the VGA as the CLI builds it (PcOptions.vga), so a snapshot rebuilds the same machine
      vga: vga ? { romImage: p.vgaBios?.bytes } : undefined,
      boot: p.bootOrder ? { order: p.bootOrder } : undefined,
    });
    const screen: Screen | null = pc.vga;
    this.wakeOnHostIo(pc.machine);
    attachDisks(pc, p.disks);
    const roms: SnapshotRom[] = [];
    if (p.bios) roms.push({ name: 'bios', base: loadBios(pc.mem, p.bios.bytes).highBase, data: p.bios.bytes });
    if (p.kernel) {
      const { name, bytes } = p.kernel;
      if (isLinuxKernel(bytes)) {
        try {
          pc.prepareDirectBoot();
          loadLinux(pc, bytes, { cmdline: p.append, initrd: p.initrd?.bytes, memoryMap: pc.memoryMap() });
        } catch (e) {
          if (e instanceof LinuxBootError) throw new SourceError(`kernel '${name}': ${e.message}`);
          throw e;
        }
      } else {
        if (p.initrd) throw new SourceError(`'${name}' is not a Linux kernel, and only a Linux kernel takes an initrd`);
        try {
          loadMultiboot(pc.machine, bytes, { cmdline: `${name} ${p.append}`.trim() });
        } catch (e) {
          if (e instanceof MultibootError) {
            if (e.notMultiboot) throw new SourceError(`'${name}' is not a kernel this machine can boot: it is neither a Linux bzImage nor a Multiboot kernel`);
            throw new SourceError(`kernel '${name}': ${e.message}`);
          }
          throw e;
        }
      }
    }
    const origin: Record<string, string> = { host: 'x86vm web', label: p.label };
    if (p.kernel) origin.kernel = p.kernel.name;
    if (p.initrd) origin.initrd = p.initrd.name;
    if (p.bios) origin.bios = p.bios.name;
    if (p.vgaBios) origin.vgaBios = p.vgaBios.name;
    if (p.bootOrder) origin.bootOrder = p.bootOrder;
    if (p.kernel) origin.append = p.append;
    return {
      pc,
      display: screen ? screenDisplay(screen) : null,
      screen,
      boot: p,
      label: p.label,
      memMiB: p.memMiB,
      roms,
      disks: p.disks.length,
      origin,
    };
  }

  /** stops the current machine and puts `next` in its place (disks `next` still uses stay open) */
  private async replace(next: Running | null): Promise<void> {
    const old = this.vm;
    this.stopLoop();
    if (old) {
      await old.pc.machine.quiesce().catch(() => undefined);
      const stillUsed = new Set(next?.boot?.disks ?? []);
      if (old.boot) await closeDisks(old.boot.disks.filter((d) => !stillUsed.has(d)));
    }
    this.serialBuf.take();
    this.vm = next;
    this.label = next?.label ?? '';
    this.mips = 0;
    const full = next?.display?.full();
    if (full) this.call(() => this.listener?.onFrame?.(full));
  }

  /** boots the last configuration again on a fresh machine (the disks keep what the guest wrote) */
  private async powerCycle(note: string): Promise<VmStatus> {
    const boot = this.vm?.boot;
    if (!boot) {
      const text = this.vm
        ? 'this machine was restored from a snapshot and there is nothing booted here to power-cycle into: choose what to boot'
        : 'nothing has been booted yet';
      throw new Error(text);
    }
    let built: Running;
    try {
      built = this.build(boot);
    } catch (e) {
      const text = errorText(e);
      this.stopLoop();
      this.setState('error', text);
      throw new Error(text);
    }
    await this.replace(built);
    this.start(note);
    return this.status();
  }

  // ---------------------------------------------------------------------------------------------
  // the run loop

  private start(message: string): void {
    const vm = this.vm!;
    const gen = ++this.gen;
    this.setState('running', message);
    this.statusAt = performance.now();
    this.statusInstr = vm.pc.cpu.instructionCount;
    this.frameAt = 0;
    vm.pc.machine.clock.setRunning(true);
    void this.loop(vm, gen);
  }

  private stopLoop(): void {
    this.gen++;
    this.vm?.pc.machine.clock.setRunning(false);
    this.flushSerial();
    this.wakeUp();
  }

  private async loop(vm: Running, gen: number): Promise<void> {
    const machine = vm.pc.machine;
    const cpu = machine.cpu;
    const clock = machine.clock;
    try {
      while (this.gen === gen) {
        const slice = Math.max(50_000, Math.min(5_000_000, Math.round(machine.instructionsPerMs * SLICE_MS)));
        machine.run(slice);
        this.flushSerial();
        if (machine.stopReason) {
          this.stopped(vm, gen, machine.stopReason);
          return;
        }
        if (machine.hostWait) {
          // deterministic mode: a disk completion fell due before the host finished it
          await machine.hostWait;
          continue;
        }
        this.tick(vm);
        if (cpu.halted) {
          let ms = MAX_IDLE_MS;
          if (!clock.deterministic) {
            const next = clock.nextDeadline();
            if (next !== Infinity) ms = Math.min(ms, Math.max(0, (next - clock.now()) / 1e6));
          }
          await this.sleep(ms);
        } else {
          await this.yielder.yield();
        }
      }
    } catch (e) {
      if (this.gen !== gen) return;
      this.flushSerial();
      this.gen++;
      clock.setRunning(false);
      this.setState('error', `the emulator failed: ${errorText(e)} (at ${where(vm.pc)}); press Reset to boot again`);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** status and screen updates, when due */
  private tick(vm: Running): void {
    const now = performance.now();
    if (vm.display && now - this.frameAt >= FRAME_INTERVAL_MS) {
      this.frameAt = now;
      const update = vm.display.poll();
      if (update) this.call(() => this.listener?.onFrame?.(update));
    }
    const dt = now - this.statusAt;
    if (dt >= STATUS_INTERVAL_MS) {
      const instr = vm.pc.cpu.instructionCount;
      this.mips = (instr - this.statusInstr) / (dt * 1000);
      this.statusAt = now;
      this.statusInstr = instr;
      this.emitStatus();
    }
  }

  /** the machine stopped by itself */
  private stopped(vm: Running, gen: number, reason: StopReason): void {
    if (this.gen !== gen) return;
    this.gen++;
    vm.pc.machine.clock.setRunning(false);
    switch (reason.kind) {
      case 'poweroff':
        this.setState('stopped', 'The guest powered off.');
        return;
      case 'reset':
        if (vm.boot) {
          void this.serialize(() => this.powerCycle('The guest rebooted.')).catch(() => undefined);
        } else {
          this.setState('stopped', 'The guest rebooted; this machine came from a snapshot, so there is nothing to boot again: choose what to boot.');
        }
        return;
      case 'triple-fault':
        this.setState('error', `The guest crashed (${reason.message}, at ${where(vm.pc)}). Press Reset to boot it again.`);
        return;
      case 'halted':
        this.setState('stopped', `The guest stopped: ${reason.message} (at ${where(vm.pc)}), and nothing can wake it. Press Reset to boot it again.`);
        return;
      case 'exit':
        this.setState('stopped', `The guest ended the run with exit code ${reason.code} (isa-debug-exit)${reason.message ? ': ' + reason.message : ''}.`);
        return;
      case 'instruction-limit':
        this.setState('stopped', 'The instruction limit was reached.');
        return;
      case 'error':
        this.setState('error', `the emulator failed: ${reason.message} (at ${where(vm.pc)}); press Reset to boot again`);
        return;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // plumbing

  private setState(state: VmState, message: string): void {
    this.state = state;
    this.message = message;
    if (state !== 'running') this.mips = 0;
    this.emitStatus();
  }

  private emitStatus(): void {
    const s = this.status();
    this.call(() => this.listener?.onStatus?.(s));
  }

  private flushSerial(): void {
    if (this.serialBuf.length === 0) return;
    const bytes = this.serialBuf.take();
    this.call(() => this.listener?.onSerial?.(bytes));
  }

  /** calls the listener; a listener that fails (a closed page) must not stop the machine */
  private call(fn: () => unknown): void {
    try {
      const r = fn() as { catch?: (f: () => void) => void } | undefined;
      r?.catch?.(() => undefined);
    } catch {
      // ignore
    }
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** for tests: frees the machine and the event-loop helper */
  async dispose(): Promise<void> {
    await this.shutdown();
    this.yielder.close();
  }
}

/** what is wrong with an option ROM image, or null: 512 bytes to 256 KiB, starting with 55 AA */
export function checkOptionRom(rom: Uint8Array): string | null {
  if (rom.length < 512 || rom.length > 256 * 1024) return `an option ROM is 512 bytes to 256 KiB; this file is ${rom.length} bytes`;
  if (rom[0] !== 0x55 || rom[1] !== 0xaa) return 'not an option ROM (it does not start with the bytes 55 AA)';
  return null;
}

function where(pc: Pc): string {
  return `CS:EIP=${hex(pc.cpu.segSel[CS], 4)}:${hex(pc.cpu.instrStart, 8)}`;
}

/** x86vm-YYYYMMDD-HHMMSS.snap, as the CLI names its snapshots */
export function snapshotName(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `x86vm-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}.snap`;
}
