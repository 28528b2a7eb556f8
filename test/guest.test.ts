/**
 * The main job: the default Linux guest (images/default: our kernel and busybox initramfs, built from
 * Debian packages) boots on `x86vm run` to a shell on the serial console, answers commands and powers
 * off. Driven through the CLI's console script (--expect/--send), as a CI user would drive it.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..');
const BIN = join(ROOT, 'dist', 'x86vm.mjs');
const PROMPT = 'x86vm:/# ';

beforeAll(() => {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT });
  expect(existsSync(join(ROOT, 'images', 'default', 'bzImage'))).toBe(true);
  expect(existsSync(join(ROOT, 'images', 'default', 'initramfs.cpio.gz'))).toBe(true);
});

interface Run {
  status: number | null;
  out: string;
  err: string;
  seconds: number;
  /** host wall-clock time (ms) at which each `@@NAME` marker line first reached us */
  seen: Map<string, number>;
}

/**
 * runs x86vm with the given flags and a session: each command is sent after a prompt, then `poweroff`
 * (the guest's init turns it into an ACPI power-off: the run ends with status 0)
 */
function session(flags: string[], commands: string[], timeout = 400, poweroff = 'poweroff -f'): Promise<Run> {
  const args = ['run', ...flags, '--timeout', String(timeout), '--serial', 'stdio'];
  for (const c of commands) args.push('--expect', PROMPT, '--send', `${c}\\n`);
  args.push('--expect', PROMPT, '--send', `${poweroff}\\n`);
  const started = Date.now();
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const seen = new Map<string, number>();
    child.stdout.setEncoding('latin1').on('data', (d: string) => {
      const from = Math.max(0, out.length - 64);
      out += d;
      const now = Date.now();
      for (const m of out.slice(from).matchAll(/^@@(\w+)\r?$/gm)) if (!seen.has(m[1])) seen.set(m[1], now);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('close', (status) => resolvePromise({ status, out, err, seconds: (Date.now() - started) / 1000, seen }));
  });
}

/** the text a command printed between `echo @@NAME` markers */
function between(out: string, name: string): string {
  const m = new RegExp(`@@${name}\\r?\\n([\\s\\S]*?)@@END\\r?\\n`).exec(out);
  if (!m) throw new Error(`no output section ${name} in:\n${out.slice(-3000)}`);
  return m[1];
}

const marked = (name: string, cmd: string) => `echo @@${name}; ${cmd}; echo @@END`;

describe('the default guest', () => {
  it('boots to a shell, answers commands with the APIC and IOAPIC in use, keeps the TSC, powers off', async () => {
    const r = await session(
      [],
      [
        // sleep 5 in real-time mode: about 5 s of host wall time between the two markers
        'echo @@WALL0; sleep 5; echo @@WALL1',
        marked('UNAME', 'uname -a'),
        marked('CPUINFO', 'cat /proc/cpuinfo'),
        marked('MATH', 'echo $((6*7))'),
        marked('CLOCK', 'cat /sys/devices/system/clocksource/clocksource0/current_clocksource'),
        marked('SLEEP', 'a=$(date +%s); sleep 5; b=$(date +%s); echo $((b-a))'),
        marked('DATE', 'date -u +%Y'),
        marked('IRQ', 'cat /proc/interrupts'),
        marked('DMESG', 'dmesg | grep -ci unstable'),
      ],
      400,
      'poweroff',
    );
    expect(r.err).toBe('');
    expect(r.status).toBe(0); // poweroff ends the run with exit status 0
    expect(between(r.out, 'UNAME')).toMatch(/^Linux x86vm 6\.1\.\d+ .* i686 GNU\/Linux/);
    const cpuinfo = between(r.out, 'CPUINFO');
    expect(cpuinfo).toMatch(/vendor_id\s*: GenuineIntel/);
    expect(cpuinfo).toMatch(/cpu family\s*: 6/);
    expect(cpuinfo).toMatch(/flags\s*:.*\bfpu\b.*\btsc\b.*\bapic\b.*\bsep\b.*\bpge\b.*\bcmov\b/);
    expect(between(r.out, 'MATH').trim()).toBe('42');
    // the kernel keeps the TSC as its clocksource (it is not marked unstable against the PIT/PM timer)
    expect(between(r.out, 'CLOCK').trim()).toBe('tsc');
    expect(between(r.out, 'DMESG').trim()).toBe('0');
    // sleep 5 takes 5 s of guest time
    expect(Number(between(r.out, 'SLEEP').trim())).toBeGreaterThanOrEqual(5);
    expect(Number(between(r.out, 'SLEEP').trim())).toBeLessThanOrEqual(6);
    const wall = (r.seen.get('WALL1') ?? NaN) - (r.seen.get('WALL0') ?? NaN);
    expect(wall, 'sleep 5 should take about 5 s of wall time in real-time mode').toBeGreaterThanOrEqual(4500);
    expect(wall, 'sleep 5 should take about 5 s of wall time in real-time mode').toBeLessThanOrEqual(6500);
    expect(Number(between(r.out, 'DATE').trim())).toBeGreaterThanOrEqual(2026);
    const irq = between(r.out, 'IRQ');
    expect(irq).toMatch(/^\s*0:\s+\d+\s+IO-APIC\s+2-edge\s+timer/m);
    expect(irq).toMatch(/ttyS0/);
    expect(Number(/^LOC:\s+(\d+)/m.exec(irq)?.[1])).toBeGreaterThan(0);
    expect(r.out).toMatch(/reboot: Power down/);
  });

  it('boots with the 8259 PIC only (noapic nolapic) and with 32 MiB and 512 MiB of RAM', async () => {
    const [pic, small, big] = await Promise.all([
      session(['--append', 'console=ttyS0 noapic nolapic'], [marked('IRQ', 'cat /proc/interrupts')]),
      session(['--mem', '32M'], [marked('MEM', 'grep MemTotal /proc/meminfo')]),
      session(['--mem', '512M'], [marked('MEM', 'grep MemTotal /proc/meminfo')]),
    ]);
    for (const r of [pic, small, big]) {
      expect(r.err).toBe('');
      expect(r.status).toBe(0);
    }
    const irq = between(pic.out, 'IRQ');
    expect(irq).toMatch(/^\s*0:\s+\d+\s+XT-PIC\s+timer/m);
    expect(irq).not.toMatch(/IO-APIC/);
    const kib = (r: Run) => Number(/MemTotal:\s+(\d+) kB/.exec(between(r.out, 'MEM'))?.[1]);
    expect(kib(small)).toBeGreaterThan(20 * 1024);
    expect(kib(small)).toBeLessThan(32 * 1024);
    expect(kib(big)).toBeGreaterThan(480 * 1024);
    expect(kib(big)).toBeLessThan(512 * 1024);
  });

  it('gives byte-identical serial output in two --deterministic runs', async () => {
    const cmds = [marked('X', 'uname -a; cat /proc/uptime; date')];
    const [a, b] = await Promise.all([session(['--deterministic'], cmds), session(['--deterministic'], cmds)]);
    expect(a.status).toBe(0);
    expect(b.status).toBe(0);
    expect(a.out.length).toBeGreaterThan(1000);
    expect(a.out).toBe(b.out);
  });
});
