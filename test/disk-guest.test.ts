/**
 * Disks as a user attaches them: `x86vm run --hda/--cdrom/--drive` with images in the formats users bring
 * (dynamic VHD, dynamic VDI made by qemu-img, a differencing VHD over a raw parent, an ISO), on the three
 * controllers (IDE, virtio-blk, virtio-scsi), driven by the default guest's own Linux drivers. One boot
 * mounts them all, reads the host's files, writes the guest's, syncs and powers off; the host then reads
 * the guest's files out of each image (converted to raw by `x86vm disk convert` or qemu-img, read with
 * debugfs), checks the differencing parent is unchanged and that `x86vm disk commit` merges the child,
 * and that a `snapshot=on` drive kept its image untouched. A second boot runs Linux with its root file
 * system on a partitioned VHD (root=/dev/sda1, no initramfs). Damaged images and locked files are refused
 * before the guest starts, with one line naming the file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeFsImage, readExtFile, removeDir, tempDir, unpackCpio, writeTree } from './helpers/diskimg';
import { buildCli, guestSession, INITRD, KERNEL, marked, runReport, section, x86vm } from './helpers/guest';
import { qemuImg } from './helpers/qemu-img';
import { FileStore } from '../node/file-store';

const BOOT_TIMEOUT_S = 600;

let work = '';

beforeAll(() => {
  buildCli();
  work = tempDir('x86vm-diskguest-');
});

afterAll(() => {
  if (work) removeDir(work);
});

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** boots the default guest with `flags`, types `commands` one per prompt, then `poweroff` */
const session = (flags: string[], commands: string[]) => guestSession(flags, commands, { timeout: BOOT_TIMEOUT_S, poweroff: 'poweroff' });

/** an ext2 image (raw) of `mib` MiB with a label and one file holding `text` */
function ext2(name: string, label: string, text: string, mib = 8): string {
  const tree = join(work, `${name}-tree`);
  writeTree(tree, { 'hello.txt': `${text}\n` });
  const raw = join(work, `${name}.raw`);
  makeFsImage(raw, tree, { sizeMiB: mib, label });
  return raw;
}

/** a mounted-by-label read + write + unmount in the guest, printing the device and its sysfs path */
const useDisk = (label: string, written: string) =>
  marked(
    label.toUpperCase(),
    `d=$(findfs LABEL=${label}); echo dev=$d; readlink -f /sys/class/block/\${d#/dev/}/device; ` +
      `mkdir -p /m/${label} && mount $d /m/${label} && cat /m/${label}/hello.txt && ` +
      `echo ${written} > /m/${label}/guest.txt && sync && umount /m/${label} && echo done-${label}`,
  );

describe('disks attached on the command line', () => {
  it('mounts a dynamic VHD on IDE, a VDI on virtio-blk, a differencing VHD on virtio-scsi and an ISO on the CD; the guest\'s writes land in the images', async () => {
    // IDE primary master: a dynamic VHD written by our own convert
    const vhdRaw = ext2('vhd', 'idevhd', 'host text in the VHD');
    const vhd = join(work, 'ide.vhd');
    expect(x86vm(['disk', 'convert', '--format', 'vhd-dynamic', vhdRaw, vhd]).status).toBe(0);
    // virtio-blk: a dynamic VDI made by qemu-img
    const vdiRaw = ext2('vdi', 'blkvdi', 'host text in the VDI');
    const vdi = join(work, 'blk.vdi');
    qemuImg(['convert', '-f', 'raw', '-O', 'vdi', vdiRaw, vdi]);
    // virtio-scsi: a differencing VHD over a raw parent
    const parent = ext2('parent', 'scsidiff', 'host text in the parent');
    const child = join(work, 'child.vhd');
    expect(x86vm(['disk', 'create', '--parent', parent, child]).status).toBe(0);
    const parentSha = sha(parent);
    // IDE primary slave with snapshot=on: writes stay in memory
    const snapRaw = ext2('snap', 'snapraw', 'host text in the snapshot disk');
    const snapSha = sha(snapRaw);
    // the CD: an ISO made by genisoimage
    const isoTree = join(work, 'iso-tree');
    writeTree(isoTree, { 'readme.txt': 'on the CD\n' });
    const iso = join(work, 'cd.iso');
    execFileSync('genisoimage', ['-quiet', '-R', '-V', 'X86VMCD', '-o', iso, isoTree]);

    const s = await session(
      [
        '--append', 'console=ttyS0 quiet',
        '--hda', vhd,
        '--drive', `file=${snapRaw},if=ide,index=1,snapshot=on`,
        '--drive', `file=${vdi},if=virtio-blk`,
        '--drive', `file=${child},if=virtio-scsi`,
        '--cdrom', iso,
      ],
      [
        useDisk('idevhd', 'guest-wrote-ide'),
        useDisk('blkvdi', 'guest-wrote-virtio-blk'),
        useDisk('scsidiff', 'guest-wrote-virtio-scsi'),
        useDisk('snapraw', 'guest-wrote-snapshot'),
        marked('CD', 'mkdir -p /cd && mount -t iso9660 /dev/sr0 /cd && cat /cd/readme.txt && umount /cd'),
      ],
    );
    const tail = runReport(s);
    expect(s.status, tail).toBe(0);
    expect(s.err).toBe('');

    const ide = section(s, 'IDEVHD');
    expect(ide).toMatch(/dev=\/dev\/sd[a-z]\n.*\/ata\d+\/.*\nhost text in the VHD\ndone-idevhd/);
    const blk = section(s, 'BLKVDI');
    expect(blk).toMatch(/dev=\/dev\/vda\n.*\/virtio\d+.*\nhost text in the VDI\ndone-blkvdi/);
    const scsi = section(s, 'SCSIDIFF');
    expect(scsi).toMatch(/dev=\/dev\/sd[a-z]\n.*\/virtio\d+\/host\d+\/.*\nhost text in the parent\ndone-scsidiff/);
    expect(section(s, 'SNAPRAW')).toMatch(/\/ata\d+\/[\s\S]*done-snapraw/);
    expect(section(s, 'CD')).toBe('on the CD\n');

    // the guest's files, read from the images on the host
    const ideOut = join(work, 'ide-out.raw');
    expect(x86vm(['disk', 'convert', '--format', 'raw', vhd, ideOut]).status).toBe(0);
    expect(readExtFile(ideOut, '/guest.txt')).toBe('guest-wrote-ide\n');
    expect(x86vm(['disk', 'check', vhd]).status).toBe(0);
    const vdiOut = join(work, 'vdi-out.raw');
    qemuImg(['convert', '-f', 'vdi', '-O', 'raw', vdi, vdiOut]);
    expect(readExtFile(vdiOut, '/guest.txt')).toBe('guest-wrote-virtio-blk\n');
    expect(qemuImg(['check', '-f', 'vdi', vdi]).status).toBe(0);
    // differencing: the parent is untouched, the child holds the change, commit merges it
    expect(sha(parent)).toBe(parentSha);
    expect(readExtFile(parent, '/guest.txt')).toBeNull();
    const childOut = join(work, 'child-out.raw');
    expect(x86vm(['disk', 'convert', '--format', 'raw', child, childOut]).status).toBe(0);
    expect(readExtFile(childOut, '/guest.txt')).toBe('guest-wrote-virtio-scsi\n');
    expect(x86vm(['disk', 'commit', child]).status).toBe(0);
    expect(readExtFile(parent, '/guest.txt')).toBe('guest-wrote-virtio-scsi\n');
    // snapshot=on: the image file never changed
    expect(sha(snapRaw)).toBe(snapSha);
  }, (BOOT_TIMEOUT_S + 120) * 1000);

  it('boots Linux with its root file system on a partitioned VHD (root=/dev/sda1, no initramfs)', async () => {
    const tree = join(work, 'rootfs');
    mkdirSync(tree, { recursive: true });
    unpackCpio(INITRD, tree);
    const raw = join(work, 'root.raw');
    makeFsImage(raw, tree, { sizeMiB: 24, partitioned: true, label: 'x86vmroot' });
    const vhd = join(work, 'root.vhd');
    expect(x86vm(['disk', 'convert', '--format', 'vhd-dynamic', raw, vhd]).status).toBe(0);
    const s = await session(
      ['--kernel', KERNEL, '--append', 'console=ttyS0 quiet root=/dev/sda1 rw init=/init', '--hda', vhd],
      [marked('ROOT', 'grep " / " /proc/mounts; stat -c %t:%T /dev/sda1; stat -c %d /; echo on-the-root-disk > /written.txt; sync')],
    );
    const tail = runReport(s);
    expect(s.status, tail).toBe(0);
    // the root is mounted read-write from /dev/sda1 (its device number is the root's); the ext4 driver serves ext2
    const [mounts, node, rootDev] = section(s, 'ROOT').trim().split('\n');
    expect(mounts).toMatch(/^\/dev\/root \/ ext[24] rw/);
    const [major, minor] = node.split(':').map((h) => parseInt(h, 16));
    expect(Number(rootDev)).toBe(major * 256 + minor);
    expect(major).toBe(8); // sd
    const out = join(work, 'root-out.raw');
    expect(x86vm(['disk', 'convert', '--format', 'raw', vhd, out]).status).toBe(0);
    expect(readExtFile(out, '/written.txt', 1024 * 1024)).toBe('on-the-root-disk\n');
  }, (BOOT_TIMEOUT_S + 120) * 1000);

  it('refuses damaged images and files in use with one line naming the file, and writes nothing', async () => {
    const good = ext2('dmg', 'dmg', 'x', 4);
    const vhd = join(work, 'dmg.vhd');
    expect(x86vm(['disk', 'convert', '--format', 'vhd-dynamic', good, vhd]).status).toBe(0);

    const truncated = join(work, 'truncated.vhd');
    writeFileSync(truncated, readFileSync(vhd).subarray(0, 1536));
    const badSum = join(work, 'badsum.vhd');
    const b = Buffer.from(readFileSync(vhd));
    b[b.length - 512 + 64] ^= 0xff; // a byte of the footer's checksum
    b[64] ^= 0xff; // and of its copy at the start
    writeFileSync(badSum, b);
    const missingParent = join(work, 'orphan.vhd');
    const doomed = ext2('doomed', 'doomed', 'x', 4);
    expect(x86vm(['disk', 'create', '--parent', doomed, missingParent]).status).toBe(0);
    rmSync(doomed);

    for (const [file, fault] of [
      [truncated, /truncat|too short|past the end|footer/i],
      [badSum, /checksum/i],
      [missingParent, /parent/i],
      [join(work, 'absent.vhd'), /no such file|not found|ENOENT|cannot open/i],
    ] as [string, RegExp][]) {
      const before = existsSync(file) ? sha(file) : null;
      const r = x86vm(['run', '--hda', file, '--timeout', '60']);
      expect(r.status, `${file}: ${r.stderr}`).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^x86vm: --hda /);
      expect(lines[0]).toContain(file);
      expect(lines[0]).toMatch(fault);
      if (before) expect(sha(file)).toBe(before);
    }

    // a file another x86vm (here: this process) has open read-write is refused, naming the holder
    const store = await FileStore.open(vhd, { readOnly: false });
    try {
      const r = x86vm(['run', '--hda', vhd, '--timeout', '60']);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^x86vm: --hda .*${vhd.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*${process.pid}`));
    } finally {
      await store.close();
    }
  });
});
