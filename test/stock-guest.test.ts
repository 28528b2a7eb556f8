/**
 * The real-world compatibility guest: Debian's stock linux-image-6.1.0-*-686 kernel (built by Debian, not
 * by us) with the default busybox initramfs, built on demand by images/build-stock-guest.sh (apt-get
 * download of a pinned, sha256-checked .deb). Boots to a shell on the serial console, answers `uname -a`,
 * and `poweroff -f` ends the run with exit status 0.
 *
 * Not skipped when the prerequisites are missing (no dpkg/apt-get, no network, the pinned version gone
 * from the mirror): the build step fails with the script's own message instead.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..');
const BIN = join(ROOT, 'dist', 'x86vm.mjs');
const SCRIPT = join(ROOT, 'images', 'build-stock-guest.sh');
const PROMPT = 'x86vm:/# ';
/** the boot takes about 3.5 min of wall time on 2 busy cores (xz decompression, then ~17 s of guest time) */
const BOOT_TIMEOUT_S = 840;

let dir = '';

beforeAll(() => {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT });
  dir = mkdtempSync(join(tmpdir(), 'x86vm-stock-'));
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
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the stock Debian kernel guest', () => {
  it('boots Debian\'s linux-image-6.1.0-*-686 to the busybox shell, runs uname -a, powers off with status 0', async () => {
    const args = [
      BIN, 'run',
      '--kernel', join(dir, 'vmlinuz'),
      '--initrd', join(dir, 'initramfs.cpio.gz'),
      '--append', 'console=ttyS0 cryptomgr.notests',
      '--timeout', String(BOOT_TIMEOUT_S),
      '--serial', 'stdio',
      '--expect', PROMPT, '--send', 'echo @@UNAME; uname -a; echo @@END\\n',
      '--expect', PROMPT, '--send', 'poweroff -f\\n',
    ];
    const started = Date.now();
    const r = await new Promise<{ status: number | null; out: string; err: string }>((done) => {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('latin1').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('close', (status) => done({ status, out, err }));
    });
    const seconds = (Date.now() - started) / 1000;
    const tail = `\n--- last serial output (${seconds.toFixed(0)} s) ---\n${r.out.slice(-3000)}\n--- stderr ---\n${r.err}`;
    const m = /@@UNAME\r?\n([\s\S]*?)@@END\r?\n/.exec(r.out);
    if (!m) throw new Error(`no uname -a output${tail}`);
    expect(m[1], tail).toMatch(/^Linux x86vm 6\.1\.0-\d+-686 #1 SMP .*Debian 6\.1\.\d+.* i686 GNU\/Linux/);
    expect(r.status, `poweroff -f should end the run with status 0${tail}`).toBe(0);
    expect(r.err).toBe('');
  }, (BOOT_TIMEOUT_S + 60) * 1000);
});
