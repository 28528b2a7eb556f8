/**
 * Running VMs with network cards outside the main CLI: the same `x86vm run` options plus `--nic TEXT`
 * (node/nics.ts), in this process, in a worker thread whose NIC is a MessagePort (workerMain), or as a
 * command-line entry (hostMain: `run …` and `switch …`). Tests and tools bundle hostMain/workerMain as
 * entries; the CLI gets the same behaviour once node/options.ts and node/run.ts carry --nic.
 */
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { parseCommandLine, UsageError } from './options';
import { runVm, EXIT_USAGE, type RunHooks, type RunResult, type VmControl } from './run';
import { attachNics, parseNicOption, type AttachedNics, type NicSpec } from './nics';
import { messagePortNet } from './net-worker';
import { switchMain } from './switch-cli';
import { parseMac } from '../core/net';

/** splits `--nic TEXT` pairs out of x86vm run arguments */
export function takeNicArgs(argv: string[]): { rest: string[]; nics: NicSpec[] } {
  const rest: string[] = [];
  const nics: NicSpec[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--nic') {
      if (i + 1 >= argv.length) throw new UsageError('--nic needs a value');
      nics.push(parseNicOption(argv[++i]));
    } else if (a.startsWith('--nic=')) nics.push(parseNicOption(a.slice(6)));
    else rest.push(a);
  }
  return { rest, nics };
}

/**
 * Runs a VM from `x86vm run` arguments (`run` first) with the cards of `nics`; waits for the backends
 * before the guest starts, and closes them at the end.
 */
export async function runWithNics(
  argv: string[],
  nics: NicSpec[],
  hooks: RunHooks = {},
  onAttached?: (nics: AttachedNics) => void,
): Promise<RunResult> {
  const cmd = parseCommandLine(argv);
  if (cmd.command !== 'run') throw new UsageError('expected `run`');
  let attached: AttachedNics | null = null;
  let vmRef: VmControl | null = null;
  let failed: string | null = null;
  const result = await runVm(cmd.options, {
    ...hooks,
    devices: [
      ...(hooks.devices ?? []),
      (pc) => {
        attached = attachNics(pc, nics);
        onAttached?.(attached);
      },
    ],
    onReady: (vm) => {
      vmRef = vm;
      const a = attached as AttachedNics | null;
      a?.setWake(() => vm.input(new Uint8Array(0)));
      a?.ready.catch((e: Error) => {
        failed = e.message;
        vmRef?.stop(EXIT_USAGE, `x86vm: ${e.message}`);
      });
      hooks.onReady?.(vm);
    },
  });
  await (attached as AttachedNics | null)?.close();
  if (failed && result.exitCode === EXIT_USAGE) return { ...result, message: `x86vm: ${failed}` };
  return result;
}

/** command-line entry: `run [x86vm run options] [--nic TEXT]…` or `switch …`; returns the exit status */
export async function hostMain(argv: string[]): Promise<number> {
  if (argv[0] === 'switch') return switchMain(argv.slice(1));
  let split: { rest: string[]; nics: NicSpec[] };
  try {
    split = takeNicArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`x86vm: ${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
  let r: RunResult;
  try {
    r = await runWithNics(split.rest, split.nics, {
      onReady: (vm) => {
        process.stdin.on('data', (d: Buffer) => vm.input(d));
        process.stdin.on('error', () => {});
        process.stdin.resume();
        for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => vm.stop(130, `x86vm: stopped by ${s}`));
      },
    });
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`x86vm: ${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
  process.stdin.pause();
  if (r.message) process.stderr.write(`${r.message}\n`);
  return r.exitCode;
}

/** what a worker VM gets in workerData */
export interface WorkerVmData {
  /** x86vm run arguments, `run` first (no --nic) */
  argv: string[];
  /** one card plugged into this MessagePort (transferred) */
  port: MessagePort;
  model: 'ne2k' | 'virtio';
  mac?: string;
}

/** messages between the worker VM and its parent */
export type WorkerVmMessage =
  | { type: 'out'; data: Uint8Array }
  | { type: 'exit'; code: number; message?: string; counters?: unknown }
  | { type: 'input'; data: string }
  /** asks for (and answers with) a diagnostic dump of the card, the interrupt controller and the CPU */
  | { type: 'debug'; state?: unknown };

/** the cards' registers (packet memory left out), their INTx and IOAPIC entries, and where the CPU is */
export function debugDump(a: AttachedNics | null, vm: VmControl): unknown {
  if (!a) return null;
  const ioapic = a.pc.ioapic;
  return {
    instructions: vm.machine.cpu.instructionCount,
    halted: vm.machine.cpu.halted,
    now: vm.machine.clock.now(),
    nextTimer: vm.machine.clock.nextDeadline(),
    cards: a.cards.map((c) => {
      const d = c as unknown as { saveState(): { extra?: Record<string, unknown> }; irqLevel: boolean; counters: unknown; backlogLength: number };
      const st = d.saveState();
      const extra = { ...(st.extra ?? {}) };
      delete extra.mem;
      return { name: c.name, irq: d.irqLevel, counters: d.counters, backlog: d.backlogLength, regs: extra };
    }),
    ioapic: ioapic ? Array.from({ length: 24 }, (_, n) => ioapic.entryLow(n).toString(16)) : null,
  };
}

/** worker-thread entry: runs the VM of workerData, console over parentPort */
export async function workerMain(): Promise<void> {
  if (isMainThread || !parentPort) throw new Error('workerMain runs in a worker thread');
  const data = workerData as WorkerVmData;
  const parent = parentPort;
  const spec: NicSpec = {
    model: data.model,
    mac: data.mac ? parseMac(data.mac) : undefined,
    backend: { kind: 'port', port: messagePortNet(data.port) },
    link: true,
    source: `--nic model=${data.model} (worker port)`,
  };
  let r: RunResult;
  let cards: AttachedNics | null = null;
  try {
    r = await runWithNics(data.argv, [spec], {
      stdout: (bytes) => parent.postMessage({ type: 'out', data: bytes } satisfies WorkerVmMessage),
      onReady: (vm) => {
        parent.on('message', (m: WorkerVmMessage) => {
          if (m.type === 'input') vm.input(new TextEncoder().encode(m.data));
          else if (m.type === 'debug') parent.postMessage({ type: 'debug', state: debugDump(cards, vm) } satisfies WorkerVmMessage);
        });
      },
    }, (a) => (cards = a));
  } catch (e) {
    parent.postMessage({ type: 'exit', code: 70, message: (e as Error).message } satisfies WorkerVmMessage);
    return;
  }
  const counters = (cards as AttachedNics | null)?.cards.map((c) => (c as unknown as { counters?: unknown }).counters);
  parent.postMessage({ type: 'exit', code: r.exitCode, message: r.message, counters } satisfies WorkerVmMessage);
  parent.close();
}
