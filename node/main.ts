/**
 * The x86vm command-line entry point (bundled into dist/x86vm.mjs). Owns everything process-level:
 * argument errors, the terminal's raw mode, stdin, signals, and the exit status. The VM itself runs
 * in runVm() (node/run.ts).
 */
import { parseCommandLine, UsageError, VERSION, type Command } from './options';
import { runVm, EXIT_USAGE, EXIT_INTERNAL, type VmControl } from './run';
import { EscapeFilter, ESCAPE_HELP } from './console';
import { diskMain } from './disk-cli';
import { snapshotMain } from './snapshot';
import { switchMain } from './switch-cli';
import { createMain } from './create-cli';

function writeStderr(text: string): Promise<void> {
  return new Promise((resolve) => process.stderr.write(text, () => resolve()));
}

function drain(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (!stream.writable) return resolve();
    stream.write('', () => resolve());
  });
}

async function exit(code: number): Promise<never> {
  await drain(process.stdout);
  await drain(process.stderr);
  process.exit(code);
}

async function main(argv: string[]): Promise<never> {
  if (argv[0] === 'disk') return exit(await diskMain(argv.slice(1)));
  if (argv[0] === 'snapshot') return exit(await snapshotMain(argv.slice(1)));
  if (argv[0] === 'switch') return exit(await switchMain(argv.slice(1)));
  if (argv[0] === 'create') return exit(await createMain(argv.slice(1)));
  let cmd: Command;
  try {
    cmd = parseCommandLine(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      await writeStderr(`x86vm: ${e.message}\n`);
      return exit(EXIT_USAGE);
    }
    throw e;
  }
  if (cmd.command === 'help') {
    process.stdout.write(cmd.text);
    return exit(0);
  }
  if (cmd.command === 'version') {
    process.stdout.write(`x86vm ${VERSION}\n`);
    return exit(0);
  }

  const options = cmd.options;
  const stdin = process.stdin;
  const interactive = options.serial.kind === 'stdio' && stdin.isTTY === true;
  let rawMode = false;
  const restoreTty = (): void => {
    if (rawMode) {
      try {
        stdin.setRawMode(false);
      } catch {
        // the terminal went away
      }
      rawMode = false;
    }
  };
  process.on('exit', restoreTty);

  const onReady = (vm: VmControl): void => {
    const onSignal = (code: number, name: string) => () => vm.stop(code, `x86vm: stopped by ${name}`);
    process.on('SIGINT', onSignal(130, 'SIGINT'));
    process.on('SIGTERM', onSignal(143, 'SIGTERM'));
    process.on('SIGHUP', onSignal(129, 'SIGHUP'));
    // the reader of our stdout went away (e.g. `x86vm run … | head`): end like a SIGPIPE would
    process.stdout.on('error', () => vm.stop(141));
    if (options.serial.kind !== 'stdio') return;
    if (interactive) {
      stdin.setRawMode(true);
      rawMode = true;
      const filter = new EscapeFilter();
      stdin.on('data', (chunk: Buffer) => {
        const { input, actions } = filter.feed(chunk);
        if (input.length) vm.input(input);
        for (const a of actions) {
          if (a.kind === 'help') process.stderr.write(ESCAPE_HELP);
          else if (a.kind === 'snapshot') vm.saveSnapshot();
          else if (a.kind === 'screenshot') vm.screenshot();
          else if (a.kind === 'pause') process.stderr.write(vm.togglePause() ? '\r\nx86vm: paused (C-a p resumes)\r\n' : '\r\nx86vm: resumed\r\n');
          else vm.stop(0);
        }
      });
    } else {
      stdin.on('data', (chunk: Buffer) => vm.input(chunk));
    }
    stdin.on('error', () => {
      // stdin closed or unreadable: the guest just gets no more input
    });
    stdin.resume();
  };

  const notice = (text: string): void => void process.stderr.write(interactive ? `\r\n${text}\r\n` : `${text}\n`);
  const res = await runVm(options, { onReady, notice });
  restoreTty();
  stdin.pause();
  if (res.message) {
    await writeStderr(`${res.message}\n`);
  }
  if (res.detail && res.exitCode === EXIT_INTERNAL && process.env.X86VM_DEBUG) {
    await writeStderr(`${res.detail}\n`);
  }
  return exit(res.exitCode);
}

main(process.argv.slice(2)).catch(async (e: unknown) => {
  const err = e instanceof Error ? e : new Error(String(e));
  await writeStderr(`x86vm: internal error: ${err.message}\n`);
  if (process.env.X86VM_DEBUG) await writeStderr(`${err.stack}\n`);
  process.exit(EXIT_INTERNAL);
});

