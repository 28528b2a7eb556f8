/**
 * Guest-to-guest throughput for `npm run bench`: an `x86vm switch` and two default guests as processes
 * (`x86vm run --nic model=…,switch=unix:…`), static addresses, then `nc` moves MIB MiB from /dev/zero
 * on one guest to `nc -l` on the other. The figure is host wall time from the sender's command to its
 * completion marker (nc's start-up included), as MiB/s, once per NIC model.
 *
 * `cli` is how to start x86vm (e.g. [process.execPath, 'dist/x86vm.mjs']); the kernel and initrd are the
 * default guest's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PROMPT = /x86vm:[^#\n]*# /;

class Console {
  out = '';
  private mark = 0;
  constructor(private readonly p: ChildProcess) {
    p.stdout!.setEncoding('latin1').on('data', (d: string) => (this.out += d));
  }
  async expect(re: RegExp, ms: number): Promise<RegExpExecArray> {
    const end = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.out.slice(this.mark));
      if (m) {
        this.mark += m.index + m[0].length;
        return m;
      }
      if (Date.now() > end) throw new Error(`net bench: timed out waiting for ${re}; console tail:\n${this.out.slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  async run(cmd: string, ms = 300_000): Promise<string> {
    const tag = Math.random().toString(36).slice(2, 8);
    this.p.stdin!.write(`echo @@B""${tag}; ${cmd}; echo @@E""${tag}\n`);
    const m = await this.expect(new RegExp(`@@B${tag}\\r?\\n([\\s\\S]*?)@@E${tag}\\r?\\n`), ms);
    await this.expect(PROMPT, 30_000);
    return m[1];
  }
}

export interface NetBenchResult {
  model: 'ne2k' | 'virtio';
  mib: number;
  seconds: number;
  mibPerSecond: number;
}

export async function netBench(cli: string[], model: 'ne2k' | 'virtio', mib = 4, kernel?: string, initrd?: string): Promise<NetBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'x86vm-netbench-'));
  const sock = join(dir, 'sw.sock');
  const procs: ChildProcess[] = [];
  try {
    const sw = spawn(cli[0], [...cli.slice(1), 'switch', '--listen', `unix:${sock}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(sw);
    let swErr = '';
    sw.stderr!.setEncoding('utf8').on('data', (d: string) => (swErr += d));
    for (let i = 0; i < 200 && !swErr.includes('listening'); i++) await new Promise((r) => setTimeout(r, 50));
    if (!swErr.includes('listening')) throw new Error(`net bench: the switch did not start: ${swErr.trim()}`);
    const boot = kernel ? ['--kernel', kernel, ...(initrd ? ['--initrd', initrd] : [])] : [];
    const consoles = [0, 1].map(() => {
      const p = spawn(cli[0], [...cli.slice(1), 'run', ...boot, '--append', 'console=ttyS0 quiet pci=nocrs', '--serial', 'stdio', '--nic', `model=${model},switch=unix:${sock}`], {
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      procs.push(p);
      return new Console(p);
    });
    const [a, b] = consoles;
    await Promise.all(consoles.map((c) => c.expect(PROMPT, 300_000)));
    await Promise.all([
      a.run('ip link set eth0 up && ip addr add 10.0.9.1/24 dev eth0'),
      b.run('ip link set eth0 up && ip addr add 10.0.9.2/24 dev eth0'),
    ]);
    await a.run('ping -c 2 -W 5 10.0.9.2 >/dev/null');
    await b.run('(sleep 900 | nc -l -p 5000 > /dev/null &) ; sleep 1');
    const t0 = performance.now();
    await a.run(`dd if=/dev/zero bs=65536 count=${mib * 16} 2>/dev/null | nc 10.0.9.2 5000`, 600_000);
    const seconds = (performance.now() - t0) / 1000;
    for (const c of consoles) void c.run('poweroff -f', 10_000).catch(() => {});
    return { model, mib, seconds, mibPerSecond: mib / seconds };
  } finally {
    await new Promise((r) => setTimeout(r, 500));
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}
