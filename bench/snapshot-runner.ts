// The x86vm side of the snapshot benchmark (bench/snapshot.mjs bundles this file with esbuild and runs
// it with node). In one process: boots the guest in real-time mode until its shell prompt, saves a
// snapshot there (`--save-on PROMPT --save-state FILE`, as a user would), then restores it
// (`--restore FILE`) and types `poweroff -f` to show that the restored machine runs on. Reports on
// stdout, one JSON object per line:
//   {"type":"saved","t":ms,"bytes":n,"saveMs":ms,"instructions":n}
//   {"type":"restored","t":ms,"restoreMs":ms,"powerDownMs":ms}   powerDownMs: from the restore's start
//   {"type":"exit","t":ms,"reason":"ok"|"…"}
//
// Usage: node snapshot-runner.mjs --kernel K --initrd I --append A --mem MiB --file F --timeout S
import { runVm } from '../node/run';
import { parseCommandLine } from '../node/options';

const t0 = performance.now();
const now = (): number => Math.round((performance.now() - t0) * 1000) / 1000;
const emit = (obj: Record<string, unknown>): void => void process.stdout.write(JSON.stringify({ ...obj, t: now() }) + '\n');
const PROMPT = 'x86vm:/# ';
const POWER_DOWN = 'reboot: Power down';

function args(): Record<string, string> {
  const a = process.argv.slice(2);
  const o: Record<string, string> = {};
  for (let i = 0; i < a.length; i += 2) o[a[i].replace(/^--/, '')] = a[i + 1];
  for (const k of ['kernel', 'initrd', 'append', 'mem', 'file', 'timeout']) if (o[k] === undefined) throw new Error(`--${k} is required`);
  return o;
}

function runOptions(argv: string[]) {
  const cmd = parseCommandLine(['run', ...argv]);
  if (cmd.command !== 'run') throw new Error('not a run command');
  return cmd.options;
}

async function main(): Promise<void> {
  const o = args();
  const save = await runVm(
    runOptions(['--kernel', o.kernel, '--initrd', o.initrd, '--append', o.append, '--mem', `${o.mem}M`, '--timeout', o.timeout,
      '--save-state', o.file, '--save-on', PROMPT.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')]),
    { stdout: () => {} },
  );
  if (!save.snapshot) {
    emit({ type: 'exit', reason: `no snapshot: ${save.message ?? `exit ${save.exitCode}`}` });
    return;
  }
  emit({ type: 'saved', bytes: save.snapshot.bytes, saveMs: save.snapshot.ms, instructions: save.snapshot.instructions });

  const started = performance.now();
  let out = '';
  let powerDownMs: number | null = null;
  const restored = await runVm(runOptions(['--restore', o.file, '--timeout', o.timeout, '--send', 'poweroff -f\\n']), {
    stdout: (b) => {
      out = (out + String.fromCharCode(...b)).slice(-4096);
      if (powerDownMs === null && out.includes(POWER_DOWN)) powerDownMs = performance.now() - started;
    },
  });
  emit({ type: 'restored', restoreMs: restored.restoreMs ?? null, powerDownMs });
  emit({ type: 'exit', reason: restored.exitCode === 0 && powerDownMs !== null ? 'ok' : `restored run: ${restored.message ?? `exit ${restored.exitCode}`}` });
}

main().catch((e: unknown) => {
  emit({ type: 'exit', reason: `error: ${(e as Error)?.stack ?? e}` });
  process.exitCode = 1;
});
