/**
 * VMs as folders, through the CLI as users run it: `x86vm create DIR` writes a vm.json, new disk images
 * (which qemu-img opens) and copies of the default guest's kernel and initrd; the folder is moved to
 * another directory and `x86vm run` boots it from a third one (paths relative to the vm.json, whatever
 * the current directory); the guest sees both disks at the sizes asked for, and what it writes lands in
 * the moved folder's image. Bad vm.json fields and bad create arguments end with status 2 and one line
 * naming the file and the field (or the option), and leave nothing behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tempDir } from './helpers/diskimg';
import { qemuImg, qemuInfo } from './helpers/qemu-img';

const ROOT = resolve(__dirname, '..');
const BIN = join(ROOT, 'dist', 'x86vm.mjs');
const KERNEL = join(ROOT, 'images', 'default', 'bzImage');
const INITRD = join(ROOT, 'images', 'default', 'initramfs.cpio.gz');
const PROMPT = 'x86vm:/# ';
const BOOT_TIMEOUT_S = 600;

let work = '';

beforeAll(() => {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT });
  work = tempDir('x86vm-vmcli-');
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function x86vm(args: string[], cwd = work): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000, cwd });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectUsageError(r: { status: number | null; stderr: string }, pattern: RegExp): void {
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/^x86vm: /);
  expect(r.stderr.trim()).toMatch(pattern);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

interface Session {
  status: number | null;
  out: string;
  err: string;
}

function session(args: string[], commands: string[], cwd: string): Promise<Session> {
  const argv = [BIN, 'run', ...args, '--timeout', String(BOOT_TIMEOUT_S)];
  for (const c of commands) argv.push('--expect', PROMPT, '--send', `${c}\\n`);
  argv.push('--expect', PROMPT, '--send', 'poweroff\\n');
  return new Promise((done) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
    let out = '';
    let err = '';
    child.stdout.setEncoding('latin1').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('close', (status) => done({ status, out, err }));
  });
}

function between(s: Session, name: string): string {
  const m = new RegExp(`@@${name}\\r?\\n([\\s\\S]*?)@@END\\r?\\n`).exec(s.out);
  if (!m) throw new Error(`no output section ${name}:\n${s.out.slice(-4000)}\n--- stderr ---\n${s.err}`);
  return m[1].replace(/\r/g, '');
}

describe('x86vm create and x86vm run VM', () => {
  it('creates a VM folder that still boots after a move, run from another directory; the guest sees and writes its disks', async () => {
    const made = join(work, 'a');
    mkdirSync(made);
    const c = x86vm(
      ['create', 'vm', '--disk', '64M', '--disk', 'size=32M,format=vdi,interface=virtio-blk', '--kernel', KERNEL, '--initrd', INITRD,
        '--append', 'console=ttyS0 quiet', '--memory', '96M'],
      made,
    );
    expect(c.stderr).toBe('');
    expect(c.status).toBe(0);
    expect(c.stdout).toMatch(/^created .*\/a\/vm: vm\.json, disk0\.vhd, disk1\.vdi, bzImage, initramfs\.cpio\.gz\n/);
    const dir = join(made, 'vm');
    expect(readdirSync(dir).sort()).toEqual(['bzImage', 'disk0.vhd', 'disk1.vdi', 'initramfs.cpio.gz', 'vm.json']);
    expect(readFileSync(join(dir, 'bzImage')).equals(readFileSync(KERNEL))).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'vm.json'), 'utf8'))).toEqual({
      version: 1,
      name: 'vm',
      memory: '96M',
      firmware: { kernel: 'bzImage', initrd: 'initramfs.cpio.gz', append: 'console=ttyS0 quiet' },
      disks: [
        { file: 'disk0.vhd', interface: 'ide', format: 'vhd' },
        { file: 'disk1.vdi', interface: 'virtio-blk', format: 'vdi' },
      ],
    });

    // qemu-img opens the new images: a dynamic VHD (QEMU's vpc) rounded up to a CHS geometry, a VDI exactly
    const vhd = qemuInfo(join(dir, 'disk0.vhd'));
    expect(vhd.format).toBe('vpc');
    expect(vhd['virtual-size']).toBeGreaterThanOrEqual(64 << 20);
    expect(vhd['virtual-size']).toBeLessThan(65 << 20);
    const vdi = qemuInfo(join(dir, 'disk1.vdi'));
    expect(vdi.format).toBe('vdi');
    expect(vdi['virtual-size']).toBe(32 << 20);
    qemuImg(['check', '-f', 'vdi', join(dir, 'disk1.vdi')]);

    // move the folder, then run it from an unrelated directory by a relative path
    mkdirSync(join(work, 'b'));
    const moved = join(work, 'b', 'moved-vm');
    renameSync(dir, moved);
    const cwd = join(work, 'c');
    mkdirSync(cwd);
    const s = await session(
      ['../b/moved-vm'],
      [
        'echo @@SIZES; cat /sys/block/sda/size /sys/block/vda/size; echo @@END',
        "printf 'VMJSON-IDE-MARK' | dd of=/dev/sda bs=512 seek=100 conv=sync 2>/dev/null; printf 'VMJSON-BLK-MARK' | dd of=/dev/vda bs=512 seek=7 conv=sync 2>/dev/null; sync; echo @@WROTE; echo @@END",
      ],
      cwd,
    );
    expect(s.err).toBe('');
    expect(s.status).toBe(0);
    const sizes = between(s, 'SIZES').trim().split('\n').map(Number);
    expect(sizes).toEqual([vhd['virtual-size'] / 512, (32 << 20) / 512]);
    between(s, 'WROTE');

    // what the guest wrote is in the moved folder's images (read back by qemu-img)
    const ideRaw = join(work, 'ide.raw');
    const blkRaw = join(work, 'blk.raw');
    qemuImg(['convert', '-f', 'vpc', '-O', 'raw', join(moved, 'disk0.vhd'), ideRaw]);
    qemuImg(['convert', '-f', 'vdi', '-O', 'raw', join(moved, 'disk1.vdi'), blkRaw]);
    expect(readFileSync(ideRaw).subarray(100 * 512, 100 * 512 + 15).toString('latin1')).toBe('VMJSON-IDE-MARK');
    expect(readFileSync(blkRaw).subarray(7 * 512, 7 * 512 + 15).toString('latin1')).toBe('VMJSON-BLK-MARK');
    expect(readdirSync(join(work, 'b'))).toEqual(['moved-vm']);
  }, (BOOT_TIMEOUT_S + 60) * 1000);

  it('ends a bad vm.json with status 2 and one line naming the file and the field', () => {
    const dir = join(work, 'bad');
    mkdirSync(dir);
    const file = join(dir, 'vm.json');
    const cases: [unknown, RegExp][] = [
      [{ version: 1, memory: 'lots' }, /field 'memory': expected a RAM size like "128M" or a number of MiB \(not a size\), got "lots"$/],
      [{ version: 1, memroy: '1G' }, /field 'memroy': unknown field \(known here: /],
      [{ version: 1, disks: [{ file: 'd.vhd', interface: 'scsi' }] }, /field 'disks\[0\]\.interface': expected one of virtio-blk, ide, virtio-scsi, got "scsi"$/],
      [{ version: 1, nics: [{ model: 'virtio', mac: '52:54:00:zz:00:01' }] }, /field 'nics\[0\]\.mac': expected a MAC address like "52:54:00:12:34:56", got "52:54:00:zz:00:01"$/],
      [{ version: 1, boot: 'cdx' }, /field 'boot': expected boot order letters/],
      [{ version: 3 }, /field 'version': expected 1 \(version 3 is newer than this x86vm understands; upgrade x86vm\)$/],
    ];
    for (const [o, re] of cases) {
      writeFileSync(file, JSON.stringify(o));
      const r = x86vm(['run', 'bad']);
      expectUsageError(r, re);
      expect(r.stderr.startsWith('x86vm: bad/vm.json: ')).toBe(true); // named as given (run from its parent)
    }
    writeFileSync(file, '{ "version": 1,');
    expectUsageError(x86vm(['run', file]), /vm\.json: not valid JSON/);
    // a disk the file names but the folder lacks: named with the file's folder, not the current directory
    writeFileSync(file, JSON.stringify({ version: 1, disks: [{ file: 'gone.vhd' }] }));
    expectUsageError(x86vm(['run', dir], ROOT), new RegExp(`${dir}/gone\\.vhd`));
    expectUsageError(x86vm(['run', join(work, 'nothing-here')]), /cannot read VM '.*nothing-here': no such file or folder/);
  });

  it('refuses bad create arguments and an existing non-empty folder, leaving nothing behind', () => {
    const where = join(work, 'd');
    mkdirSync(where);
    expectUsageError(x86vm(['create', 'x', '--disk', 'size=1M,format=qcow2'], where), /--disk size=1M,format=qcow2: format=qcow2 is not one of/);
    expectUsageError(x86vm(['create', 'x', '--kernel', 'missing-kernel'], where), /--kernel 'missing-kernel': no such file/);
    expectUsageError(x86vm(['create', 'x', '--nic', 'model=virtio,mac=ff:ff:ff:ff:ff:ff'], where), /multicast/);
    expect(readdirSync(where)).toEqual([]);
    expect(x86vm(['create', 'x', '--disk', '1M'], where).status).toBe(0);
    const before = readFileSync(join(where, 'x', 'vm.json'), 'utf8');
    expectUsageError(x86vm(['create', 'x', '--disk', '2M'], where), /create: '.*\/d\/x' exists and is not empty/);
    expect(readFileSync(join(where, 'x', 'vm.json'), 'utf8')).toBe(before);
    expect(readdirSync(where)).toEqual(['x']);
    expect(existsSync(join(where, 'x', 'disk0.vhd'))).toBe(true);
  });
});
