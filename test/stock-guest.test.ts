/**
 * The real-world compatibility guest: Debian's stock linux-image-6.1.0-*-686 kernel (built by Debian, not
 * by us) with the default busybox initramfs, built on demand by images/build-stock-guest.sh (apt-get
 * download of a pinned, sha256-checked .deb). Boots to a shell on the serial console, answers uname,
 * /proc/cpuinfo, /proc/interrupts (APIC + IOAPIC in use), arithmetic and date, keeps the TSC clocksource,
 * and `poweroff` ends the run with exit status 0.
 *
 * Not skipped when the prerequisites are missing (no dpkg/apt-get, no network, the pinned version gone
 * from the mirror): the build step fails with the script's own message instead.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildCli, guestSession, marked, ROOT, runReport, section } from './helpers/guest';
import { removeDir, tempDir } from './helpers/diskimg';

const SCRIPT = join(ROOT, 'images', 'build-stock-guest.sh');
/** the boot takes about 3.5 min of wall time on 2 busy cores (xz decompression, then ~17 s of guest time) */
const BOOT_TIMEOUT_S = 840;

let dir = '';

beforeAll(() => {
  buildCli();
  dir = tempDir('x86vm-stock-');
  try {
    execFileSync('bash', [SCRIPT, dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(
      `images/build-stock-guest.sh could not build the stock Debian kernel guest ` +
        `(it needs dpkg and apt-get with Debian's mirror, and root to add the i386 architecture):\n` +
        `${(err.stderr ?? '').trim().split('\n').slice(-15).join('\n') || err.message}`,
    );
  }
  for (const f of ['vmlinuz', 'initramfs.cpio.gz']) {
    if (!existsSync(join(dir, f))) throw new Error(`images/build-stock-guest.sh did not write ${f} into ${dir}`);
  }
}, 600_000);

afterAll(() => {
  if (dir) removeDir(dir);
});

describe('the stock Debian kernel guest', () => {
  it('boots Debian\'s linux-image-6.1.0-*-686 to the busybox shell, answers commands, keeps the TSC, powers off with status 0', async () => {
    const commands = [
      marked('UNAME', 'uname -a'),
      marked('CPUINFO', 'cat /proc/cpuinfo'),
      marked('IRQ', 'cat /proc/interrupts'),
      marked('MATH', 'echo $((6*7))'),
      marked('DATE', 'date -u +%Y'),
      marked('CLOCK', 'cat /sys/devices/system/clocksource/clocksource0/current_clocksource; dmesg | grep -ci unstable'),
      marked('SLEEP', 'a=$(date +%s); sleep 5; b=$(date +%s); echo $((b-a))'),
    ];
    const r = await guestSession(
      ['--kernel', join(dir, 'vmlinuz'), '--initrd', join(dir, 'initramfs.cpio.gz'), '--append', 'console=ttyS0 cryptomgr.notests'],
      commands,
      { timeout: BOOT_TIMEOUT_S, poweroff: 'poweroff' },
    );
    const tail = runReport(r);
    expect(section(r, 'UNAME'), tail).toMatch(/^Linux x86vm 6\.1\.0-\d+-686 #1 SMP .*Debian 6\.1\.\d+.* i686 GNU\/Linux/);
    const cpuinfo = section(r, 'CPUINFO');
    expect(cpuinfo).toMatch(/vendor_id\s*: GenuineIntel/);
    expect(cpuinfo).toMatch(/flags\s*:.*\bfpu\b.*\btsc\b.*\bcx8\b.*\bapic\b.*\bcmov\b/);
    const irq = section(r, 'IRQ');
    // the APIC and IOAPIC are in use: the PIT arrives on IOAPIC pin 2, the local APIC timer counts
    expect(irq).toMatch(/^\s*0:\s+\d+\s+IO-APIC\s+2-edge\s+timer/m);
    expect(irq).toMatch(/^\s*4:\s+\d+\s+IO-APIC\s+4-edge\s+ttyS0/m);
    expect(Number(/^LOC:\s+(\d+)/m.exec(irq)?.[1])).toBeGreaterThan(0);
    expect(section(r, 'MATH').trim()).toBe('42');
    expect(Number(section(r, 'DATE').trim())).toBeGreaterThanOrEqual(2026);
    // the TSC stays the clocksource, never marked unstable against the other clocks
    expect(section(r, 'CLOCK').trim().split(/\s+/)).toEqual(['tsc', '0']);
    const slept = Number(section(r, 'SLEEP').trim());
    expect(slept).toBeGreaterThanOrEqual(5);
    expect(slept).toBeLessThanOrEqual(6);
    expect(r.out).toMatch(/reboot: Power down/);
    expect(r.status, `poweroff should end the run with status 0${tail}`).toBe(0);
    expect(r.err).toBe('');
  }, (BOOT_TIMEOUT_S + 60) * 1000);
});
