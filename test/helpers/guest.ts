/**
 * Scaffolding for the guest-level tests: a guest (by default images/default, our kernel and busybox
 * initramfs) booted by `x86vm run` and driven by a console script, as a CI user drives it: each command
 * is typed after a shell prompt, then a power-off command ends the run.
 *
 * - `guestSession` runs the CLI bundle (dist/x86vm.mjs, built by `buildCli`) as a child process and
 *   gives its exit status, serial output and stderr; `x86vm` runs one short CLI command synchronously.
 * - `guestInProcess` runs the same session in this process through runVm, for tests that plug devices
 *   into the PC or watch the machine while it runs.
 * - `marked(NAME, cmd)` wraps a command so its output stands between `@@NAME` and `@@END` lines, and
 *   `section(run, NAME)` cuts that output back out of the serial text (carriage returns removed).
 *
 * Commands are plain shell text: the helpers escape them for the CLI's --send (see node/expect.ts).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseCommandLine } from '../../node/options';
import { runVm, type RunHooks } from '../../node/run';

export const ROOT = resolve(__dirname, '..', '..');
/** the CLI bundle the child-process sessions run (X86VM_CLI may point at another build of it) */
export const BIN = process.env.X86VM_CLI ?? join(ROOT, 'dist', 'x86vm.mjs');
/** the default guest (images/build-kernel.sh, images/build-initramfs.sh) */
export const KERNEL = join(ROOT, 'images', 'default', 'bzImage');
export const INITRD = join(ROOT, 'images', 'default', 'initramfs.cpio.gz');
/** the default guest's shell prompt on the serial console (also a valid --expect regex) */
export const PROMPT = 'x86vm:/# ';

/** how long past its own --timeout a CLI child may run before the helper kills it (a hung CLI) */
const KILL_GRACE_S = 30;

/** throws (naming the build script) unless the default guest's kernel and initramfs are built; call it in beforeAll */
export function expectDefaultGuest(): void {
  for (const [file, script] of [[KERNEL, 'images/build-kernel.sh'], [INITRD, 'images/build-initramfs.sh']]) {
    if (!existsSync(file)) throw new Error(`the default guest is not built: ${file} is missing (${script} makes it)`);
  }
}

/** bundles the CLI into dist/x86vm.mjs (node scripts/build.mjs), unless X86VM_CLI names another build; call it in beforeAll */
export function buildCli(): void {
  if (process.env.X86VM_CLI) return;
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT });
}

/** `text` as a --send argument: the CLI reads C-style escapes, so backslashes are doubled and newlines become \n */
export function sendArg(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** --expect/--send arguments: for each [regex, text], wait until the serial output matches regex, then type text */
export function scriptArgs(steps: [expect: string, send: string][]): string[] {
  const args: string[] = [];
  for (const [re, text] of steps) args.push('--expect', re, '--send', sendArg(text));
  return args;
}

export interface SessionOptions {
  /** the run's --timeout in seconds (default 400) */
  timeout?: number;
  /** the command typed at the last prompt (default 'poweroff -f'; the guest's init turns either form into an ACPI power-off) */
  poweroff?: string;
  /** pass --serial stdio (default true; false leaves the serial setting to a vm.json) */
  serial?: boolean;
}

/** the arguments of `x86vm run FLAGS --timeout T --serial stdio` typing `commands` one per prompt, then the power-off */
export function sessionArgs(flags: string[], commands: string[], opts: SessionOptions = {}): string[] {
  const args = ['run', ...flags, '--timeout', String(opts.timeout ?? 400)];
  if (opts.serial ?? true) args.push('--serial', 'stdio');
  const steps: [string, string][] = commands.map((c) => [PROMPT, `${c}\n`]);
  steps.push([PROMPT, `${opts.poweroff ?? 'poweroff -f'}\n`]);
  return [...args, ...scriptArgs(steps)];
}

/** a finished CLI child process */
export interface CliRun {
  /** exit status (null if it was killed) */
  status: number | null;
  /** stdout: the serial console (latin1) */
  out: string;
  err: string;
  /** host wall-clock seconds from start to exit */
  seconds: number;
  /** host wall-clock time (ms, Date.now()) at which each `@@NAME` marker line first reached us */
  markers: Map<string, number>;
}

/**
 * Runs the CLI bundle with `args` (stdin closed, stdout and stderr captured). With `timeoutS`, a child
 * still running that many seconds (plus a grace) later is killed: status null and a line on err.
 */
export function runCli(args: string[], opts: { cwd?: string; timeoutS?: number } = {}): Promise<CliRun> {
  const started = Date.now();
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
    let out = '';
    let err = '';
    const markers = new Map<string, number>();
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    if (opts.timeoutS !== undefined) {
      const limit = opts.timeoutS + KILL_GRACE_S;
      watchdog = setTimeout(() => {
        err += `test helper: x86vm still running after ${limit} s (--timeout ${opts.timeoutS}), killed\n`;
        child.kill('SIGKILL');
      }, limit * 1000);
    }
    child.stdout.setEncoding('latin1').on('data', (d: string) => {
      // a marker line may arrive split across chunks: look again at the end of what came before
      const from = Math.max(0, out.length - 64);
      out += d;
      const now = Date.now();
      for (const m of out.slice(from).matchAll(/^@@(\w+)\r?$/gm)) if (!markers.has(m[1])) markers.set(m[1], now);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('close', (status) => {
      clearTimeout(watchdog);
      done({ status, out, err, seconds: (Date.now() - started) / 1000, markers });
    });
  });
}

/** boots `x86vm run FLAGS` as a child process, types `commands` one per prompt, then powers off */
export function guestSession(flags: string[], commands: string[], opts: SessionOptions & { cwd?: string } = {}): Promise<CliRun> {
  return runCli(sessionArgs(flags, commands, opts), { cwd: opts.cwd, timeoutS: opts.timeout ?? 400 });
}

/** one short CLI command (disk tools, create, a run refused at once), waited for (at most 120 s) */
export function x86vm(args: string[], cwd?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000, cwd });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** a run in this process (runVm) */
export interface VmRun {
  exitCode: number;
  /** runVm's message (undefined on a clean power-off) */
  message?: string;
  /** the serial output (latin1) */
  out: string;
  /** runVm's wall-clock seconds */
  seconds: number;
}

export interface InProcessHooks {
  /** extra devices for the PC */
  devices?: RunHooks['devices'];
  onReady?: RunHooks['onReady'];
  /** called after each chunk of serial output with all the output so far */
  onOutput?: (out: string) => void;
}

/** runs `x86vm run ARGS` in this process through runVm (args without the leading 'run') */
export async function runInProcess(args: string[], hooks: InProcessHooks = {}): Promise<VmRun> {
  const cmd = parseCommandLine(['run', ...args]);
  if (cmd.command !== 'run') throw new Error('expected a run command');
  let out = '';
  const r = await runVm(cmd.options, {
    stdout: (bytes) => {
      out += Buffer.from(bytes).toString('latin1');
      hooks.onOutput?.(out);
    },
    devices: hooks.devices,
    onReady: hooks.onReady,
  });
  return { exitCode: r.exitCode, message: r.message, out, seconds: r.wallSeconds };
}

/** the session of guestSession, in this process through runVm */
export function guestInProcess(flags: string[], commands: string[], opts: SessionOptions & InProcessHooks = {}): Promise<VmRun> {
  return runInProcess(sessionArgs(flags, commands, opts).slice(1), opts);
}

/** `cmd` with its output between a `@@NAME` line and an `@@END` line (NAME: letters, digits, _) */
export const marked = (name: string, cmd: string): string => `echo @@${name}; ${cmd}; echo @@END`;

/** the last serial output and stderr of a run, for failure messages */
export function runReport(run: { out: string; err?: string; seconds?: number }): string {
  const time = run.seconds === undefined ? '' : ` (${run.seconds.toFixed(0)} s)`;
  const err = run.err === undefined ? '' : `\n--- stderr ---\n${run.err}`;
  return `\n--- last serial output${time} ---\n${run.out.slice(-3000)}${err}`;
}

/** what a `marked(NAME, …)` command printed, carriage returns removed; throws (with the run's tail) if absent */
export function section(run: { out: string; err?: string; seconds?: number }, name: string): string {
  const m = new RegExp(`@@${name}\\r?\\n([\\s\\S]*?)@@END\\r?\\n`).exec(run.out);
  if (!m) throw new Error(`no output section ${name}${runReport(run)}`);
  return m[1].replace(/\r/g, '');
}
