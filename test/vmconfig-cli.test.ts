/**
 * VMs as folders, through the CLI as users run it: `x86vm create DIR` writes a vm.json, new disk images
 * (which qemu-img opens) and copies of the default guest's kernel and initrd; the folder is moved to
 * another directory and `x86vm run` boots it from a third one (paths relative to the vm.json, whatever
 * the current directory); the guest sees both disks at the sizes asked for, and what it writes lands in
 * the moved folder's image. Bad vm.json fields and bad create arguments end with status 2 and one line
 * naming the file and the field (or the option), and leave nothing behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from './helpers/diskimg';
import { buildCli, guestSession, INITRD, KERNEL, marked, ROOT, section, x86vm as cli } from './helpers/guest';
import { qemuImg, qemuInfo } from './helpers/qemu-img';

const BOOT_TIMEOUT_S = 600;

let work = '';

beforeAll(() => {
  buildCli();
  work = tempDir('x86vm-vmcli-');
});

afterAll(() => {
  if (work) removeDir(work);
});

/** x86vm ARGS, run in `cwd` (default: the test's work directory) */
const x86vm = (args: string[], cwd = work) => cli(args, cwd);

function expectUsageError(r: { status: number | null; stderr: string }, pattern: RegExp): void {
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/^x86vm: /);
  expect(r.stderr.trim()).toMatch(pattern);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
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
    // no --serial: the VM folder's settings decide (its vm.json has none, so stdio)
    const s = await guestSession(
      ['../b/moved-vm'],
      [
        marked('SIZES', 'cat /sys/block/sda/size /sys/block/vda/size'),
        "printf 'VMJSON-IDE-MARK' | dd of=/dev/sda bs=512 seek=100 conv=sync 2>/dev/null; printf 'VMJSON-BLK-MARK' | dd of=/dev/vda bs=512 seek=7 conv=sync 2>/dev/null; sync; echo @@WROTE; echo @@END",
      ],
      { timeout: BOOT_TIMEOUT_S, poweroff: 'poweroff', serial: false, cwd },
    );
    expect(s.err).toBe('');
    expect(s.status).toBe(0);
    const sizes = section(s, 'SIZES').trim().split('\n').map(Number);
    expect(sizes).toEqual([vhd['virtual-size'] / 512, (32 << 20) / 512]);
    section(s, 'WROTE');

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
