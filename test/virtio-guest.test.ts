/**
 * The default Linux guest (images/default) with its own drivers (virtio_pci, virtio_blk, virtio_scsi +
 * sd) on our virtio devices: it mounts an ext2 file system made on the host with mke2fs, reads a file the
 * host put there, writes a file, syncs, unmounts and powers off; the host then reads the guest's file back
 * with debugfs and checks the file system with e2fsck. Once through virtio-blk (/dev/vda), once through
 * virtio-scsi with a ScsiDisk at target 0 (/dev/sda). The VM runs in-process through runVm with the
 * device plugged in by hooks.devices, the console driven by --expect/--send as a CI user would.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { FileStore } from '../node/file-store';
import { RawImage } from '../disk/raw';
import { addVirtioBlk, type VirtioBlk } from '../devices/virtio-blk';
import { addVirtioScsi, type VirtioScsi } from '../devices/virtio-scsi';
import { ScsiDisk } from '../devices/scsi';
import type { PcDeviceFactory } from '../core/pc';
import { fsckExt, makeFsImage, readExtFile, removeDir, tempDir, writeTree } from './helpers/diskimg';
import { expectDefaultGuest, guestInProcess, INITRD, KERNEL, marked, section } from './helpers/guest';

const HOST_TEXT = 'written by the host with mke2fs -d';

let work = '';

// Linux places the virtio BAR inside the PCI host bridge's windows (the DSDT's \_SB.PCI0._CRS)
const APPEND = 'console=ttyS0 quiet';

beforeAll(() => {
  expectDefaultGuest();
  work = tempDir('x86vm-virtio-');
});

afterAll(() => {
  if (work) removeDir(work);
});

/** an 8 MiB ext2 image holding /hello.txt */
function makeImage(name: string): string {
  const dir = join(work, `${name}.d`);
  writeTree(dir, { 'hello.txt': `${HOST_TEXT}\n` });
  const img = join(work, `${name}.raw`);
  makeFsImage(img, dir, { sizeMiB: 8 });
  return img;
}

/** boots the default guest with `device` plugged in, runs `commands` one per prompt, then powers off */
const session = (device: PcDeviceFactory, commands: string[]) =>
  guestInProcess(['--kernel', KERNEL, '--initrd', INITRD, '--append', APPEND], commands, { timeout: 400, devices: [device] });

/** the guest side: mount, read the host's file, write one, sync, unmount */
function guestCommands(dev: string, tag: string, extra: string[]): string[] {
  return [
    ...extra,
    marked('MOUNT', `mount -t ext2 /dev/${dev} /mnt && echo mounted`),
    marked('READ', 'cat /mnt/hello.txt'),
    marked('WRITE', `echo "${tag} written by the guest" > /mnt/guest.txt && dd if=/dev/zero of=/mnt/zeros bs=4096 count=256 2>/dev/null && sync && echo synced`),
    marked('LS', 'ls -l /mnt'),
    marked('UMOUNT', 'umount /mnt && echo unmounted'),
  ];
}

describe('the default guest on virtio', () => {
  it('mounts, reads and writes an ext2 file system on virtio-blk (/dev/vda)', async () => {
    const img = makeImage('blk');
    const store = FileStore.open(img);
    const disk = new RawImage(store);
    let blk: VirtioBlk | null = null;
    const r = await session(
      (pc) => {
        blk = addVirtioBlk(pc, disk);
      },
      guestCommands('vda', 'virtio-blk', [
        marked('DEV', 'cat /sys/block/vda/size; cat /sys/block/vda/serial; echo; cat /sys/block/vda/queue/logical_block_size'),
        marked('DRIVER', 'ls /sys/bus/virtio/drivers/virtio_blk | grep virtio; cat /proc/interrupts | grep -i virtio'),
      ]),
    );
    await store.close();
    expect(r.message).toBe(undefined);
    expect(r.exitCode).toBe(0);
    expect(blk).not.toBe(null);
    const dev = section(r, 'DEV').trim().split('\n');
    expect(dev[0]).toBe(String((8 << 20) / 512));
    expect(dev[1]).toBe('x86vm-4');
    expect(dev[2]).toBe('512');
    // bound by the guest's virtio_blk driver, interrupts through the IOAPIC (INTx, level-triggered)
    expect(section(r, 'DRIVER')).toMatch(/^virtio\d+$/m);
    expect(section(r, 'DRIVER')).toMatch(/^\s*\d+:\s+[1-9]\d*\s+IO-APIC\s+\d+-fasteoi\s+virtio\d+$/m);
    expect(section(r, 'MOUNT').trim()).toBe('mounted');
    expect(section(r, 'READ').trim()).toBe(HOST_TEXT);
    expect(section(r, 'WRITE').trim()).toBe('synced');
    expect(section(r, 'UMOUNT').trim()).toBe('unmounted');
    expect(readExtFile(img, '/guest.txt')).toBe('virtio-blk written by the guest\n');
    expect(readExtFile(img, '/hello.txt')).toBe(`${HOST_TEXT}\n`);
    expect(fsckExt(img)).toBe(0);
    console.log(`virtio-blk guest session: ${r.seconds.toFixed(1)} s`);
  });

  it('mounts, reads and writes an ext2 file system on a virtio-scsi disk (/dev/sda)', async () => {
    const img = makeImage('scsi');
    const store = FileStore.open(img);
    const disk = new RawImage(store);
    let hba: VirtioScsi | null = null;
    const r = await session(
      (pc) => {
        hba = addVirtioScsi(pc);
        hba.attach(0, 0, new ScsiDisk(disk));
      },
      guestCommands('sda', 'virtio-scsi', [
        marked('DEV', 'cat /sys/block/sda/size; cat /sys/block/sda/device/type; ls /sys/bus/scsi/devices | grep -c "^[0-9]"'),
        marked('HOST', 'cat /sys/class/scsi_host/host*/proc_name'),
      ]),
    );
    await store.close();
    expect(r.message).toBe(undefined);
    expect(r.exitCode).toBe(0);
    expect(hba).not.toBe(null);
    const dev = section(r, 'DEV').trim().split('\n');
    expect(dev[0]).toBe(String((8 << 20) / 512));
    expect(dev[1]).toBe('0'); // direct-access block device
    expect(dev[2]).toBe('1'); // one SCSI device found by the scan (target 0 LUN 0), no phantom LUNs
    expect(section(r, 'HOST')).toMatch(/virtio_scsi/);
    expect(section(r, 'MOUNT').trim()).toBe('mounted');
    expect(section(r, 'READ').trim()).toBe(HOST_TEXT);
    expect(section(r, 'WRITE').trim()).toBe('synced');
    expect(section(r, 'UMOUNT').trim()).toBe('unmounted');
    expect(readExtFile(img, '/guest.txt')).toBe('virtio-scsi written by the guest\n');
    expect(fsckExt(img)).toBe(0);
    console.log(`virtio-scsi guest session: ${r.seconds.toFixed(1)} s`);
  });
});
