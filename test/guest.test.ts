/**
 * The main job: the default Linux guest (images/default: our kernel and busybox initramfs, built from
 * Debian packages) boots on `x86vm run` to a shell on the serial console, answers commands and powers
 * off. Driven through the CLI's console script (--expect/--send), as a CI user would drive it.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import { buildCli, expectDefaultGuest, guestSession, marked, section, type CliRun } from './helpers/guest';

beforeAll(() => {
  buildCli();
  expectDefaultGuest();
});

describe('the default guest', () => {
  it('boots to a shell, answers commands with the APIC and IOAPIC in use, keeps the TSC, powers off', async () => {
    const r = await guestSession(
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
      { timeout: 400, poweroff: 'poweroff' },
    );
    expect(r.err).toBe('');
    expect(r.status).toBe(0); // poweroff ends the run with exit status 0
    expect(section(r, 'UNAME')).toMatch(/^Linux x86vm 6\.1\.\d+ .* i686 GNU\/Linux/);
    const cpuinfo = section(r, 'CPUINFO');
    expect(cpuinfo).toMatch(/vendor_id\s*: GenuineIntel/);
    expect(cpuinfo).toMatch(/cpu family\s*: 6/);
    expect(cpuinfo).toMatch(/flags\s*:.*\bfpu\b.*\btsc\b.*\bapic\b.*\bsep\b.*\bpge\b.*\bcmov\b/);
    expect(section(r, 'MATH').trim()).toBe('42');
    // the kernel keeps the TSC as its clocksource (it is not marked unstable against the PIT/PM timer)
    expect(section(r, 'CLOCK').trim()).toBe('tsc');
    expect(section(r, 'DMESG').trim()).toBe('0');
    // sleep 5 takes 5 s of guest time
    expect(Number(section(r, 'SLEEP').trim())).toBeGreaterThanOrEqual(5);
    expect(Number(section(r, 'SLEEP').trim())).toBeLessThanOrEqual(6);
    const wall = (r.markers.get('WALL1') ?? NaN) - (r.markers.get('WALL0') ?? NaN);
    expect(wall, 'sleep 5 should take about 5 s of wall time in real-time mode').toBeGreaterThanOrEqual(4500);
    expect(wall, 'sleep 5 should take about 5 s of wall time in real-time mode').toBeLessThanOrEqual(6500);
    expect(Number(section(r, 'DATE').trim())).toBeGreaterThanOrEqual(2026);
    const irq = section(r, 'IRQ');
    expect(irq).toMatch(/^\s*0:\s+\d+\s+IO-APIC\s+2-edge\s+timer/m);
    expect(irq).toMatch(/ttyS0/);
    expect(Number(/^LOC:\s+(\d+)/m.exec(irq)?.[1])).toBeGreaterThan(0);
    expect(r.out).toMatch(/reboot: Power down/);
  });

  it('boots with the 8259 PIC only (noapic nolapic) and with 32 MiB and 512 MiB of RAM', async () => {
    const [pic, small, big] = await Promise.all([
      guestSession(['--append', 'console=ttyS0 noapic nolapic'], [marked('IRQ', 'cat /proc/interrupts')]),
      guestSession(['--mem', '32M'], [marked('MEM', 'grep MemTotal /proc/meminfo')]),
      guestSession(['--mem', '512M'], [marked('MEM', 'grep MemTotal /proc/meminfo')]),
    ]);
    for (const r of [pic, small, big]) {
      expect(r.err).toBe('');
      expect(r.status).toBe(0);
    }
    const irq = section(pic, 'IRQ');
    expect(irq).toMatch(/^\s*0:\s+\d+\s+XT-PIC\s+timer/m);
    expect(irq).not.toMatch(/IO-APIC/);
    const kib = (r: CliRun) => Number(/MemTotal:\s+(\d+) kB/.exec(section(r, 'MEM'))?.[1]);
    expect(kib(small)).toBeGreaterThan(20 * 1024);
    expect(kib(small)).toBeLessThan(32 * 1024);
    expect(kib(big)).toBeGreaterThan(480 * 1024);
    expect(kib(big)).toBeLessThan(512 * 1024);
  });

  it('gives byte-identical serial output in two --deterministic runs', async () => {
    const cmds = [marked('X', 'uname -a; cat /proc/uptime; date')];
    const [a, b] = await Promise.all([guestSession(['--deterministic'], cmds), guestSession(['--deterministic'], cmds)]);
    expect(a.status).toBe(0);
    expect(b.status).toBe(0);
    expect(a.out.length).toBeGreaterThan(1000);
    expect(a.out).toBe(b.out);
  });
});
