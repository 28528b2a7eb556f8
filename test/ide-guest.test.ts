/**
 * The default Linux guest (images/default) on the PIIX3 IDE controller with its own drivers (ata_piix,
 * sd, sr): an ext2 disk made on the host with mke2fs on the primary master (/dev/sda) and an ISO 9660 CD
 * made with genisoimage on the ATAPI secondary master (/dev/sr0). In one boot the guest mounts the disk,
 * reads the host's files back (cat, md5sum), writes a file, syncs and unmounts; mounts the CD and reads
 * its files back; shows that ata_piix runs both devices in a DMA mode (MWDMA2: the PIIX3 has no Ultra DMA)
 * and that IRQ 14 and 15 count interrupts. The host then finds the guest's file with debugfs and checks
 * the file system with e2fsck. The VM runs in-process through runVm with the controller plugged in by
 * hooks.devices, the console driven by --expect/--send as a CI user would.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileStore } from '../node/file-store';
import { RawImage } from '../disk/raw';
import { addIde, type IdeController } from '../devices/ide';
import { fsckExt, makeFsImage, readExtBytes, readExtFile, removeDir, tempDir, writeTree } from './helpers/diskimg';
import { expectDefaultGuest, guestInProcess, INITRD, KERNEL, marked, runReport, section } from './helpers/guest';

const HOST_TEXT = 'written by the host with mke2fs -d';
const CD_TEXT = 'on the CD, made by genisoimage';

let work = '';

const APPEND = 'console=ttyS0 quiet';

beforeAll(() => {
  expectDefaultGuest();
  work = tempDir('x86vm-ide-');
});

afterAll(() => {
  if (work) removeDir(work);
});

const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

/** the count column of an IRQ line of /proc/interrupts */
function irqCount(interrupts: string, n: number): number {
  const m = new RegExp(`^\\s*${n}:\\s+(\\d+)\\s+.*ata_piix`, 'm').exec(interrupts);
  if (!m) throw new Error(`no ata_piix line for IRQ ${n} in:\n${interrupts}`);
  return Number(m[1]);
}

describe('the default guest on PIIX3 IDE', () => {
  it('mounts an ext2 disk (/dev/sda) and an ISO 9660 CD (/dev/sr0) with DMA, reads and writes, syncs, powers off', async () => {
    // the disk: 8 MiB ext2 with a text file and 300 KiB of random bytes
    const diskDir = join(work, 'disk.d');
    const blob = randomBytes(300 * 1024);
    writeTree(diskDir, { 'hello.txt': `${HOST_TEXT}\n`, 'blob.bin': blob });
    const img = join(work, 'disk.raw');
    makeFsImage(img, diskDir, { sizeMiB: 8 });
    // the CD: a Rock Ridge ISO with a text file and 1 MiB of random bytes
    const cdDir = join(work, 'cd.d');
    const cdBlob = randomBytes(1024 * 1024);
    writeTree(cdDir, { 'readme.txt': `${CD_TEXT}\n`, 'data.bin': cdBlob });
    const iso = join(work, 'cd.iso');
    execFileSync('genisoimage', ['-quiet', '-R', '-V', 'X86VMTEST', '-o', iso, cdDir], { stdio: 'pipe' });

    const diskStore = FileStore.open(img);
    const cdStore = FileStore.open(iso, { readOnly: true });
    const disk = new RawImage(diskStore);
    const cd = new RawImage(cdStore, true);
    let ide: IdeController | null = null;
    const commands = [
      marked('IRQ0', 'cat /proc/interrupts'),
      marked('DMESG', 'dmesg'),
      marked('MODE', 'cat /sys/class/ata_device/dev1.0/xfer_mode /sys/class/ata_device/dev2.0/xfer_mode'),
      marked('SIZE', 'cat /sys/block/sda/size /sys/block/sr0/size'),
      marked('MOUNT', 'mount -t ext2 /dev/sda /mnt && echo mounted'),
      marked('READ', 'cat /mnt/hello.txt; md5sum /mnt/blob.bin'),
      marked(
        'WRITE',
        'echo "IDE written by the guest" > /mnt/guest.txt && dd if=/dev/urandom of=/mnt/rand.bin bs=4096 count=200 2>/dev/null && md5sum /mnt/rand.bin && sync && echo synced',
      ),
      marked('UMOUNT', 'umount /mnt && echo unmounted'),
      marked('CDMOUNT', 'mkdir -p /cdrom && mount -t iso9660 -o ro /dev/sr0 /cdrom && echo mounted'),
      marked('CDREAD', 'cat /cdrom/readme.txt; md5sum /cdrom/data.bin; ls -1 /cdrom'),
      marked('CDUMOUNT', 'umount /cdrom && echo unmounted'),
      marked('IRQ1', 'cat /proc/interrupts'),
    ];
    const warnings: string[] = [];
    const r = await guestInProcess(['--kernel', KERNEL, '--initrd', INITRD, '--append', APPEND], commands, {
      timeout: 600,
      devices: [
        (pc) => {
          ide = addIde(pc, { onWarning: (m) => warnings.push(m) });
          ide.attach(0, 0, { kind: 'disk', dev: disk });
          ide.attach(1, 0, { kind: 'cdrom', dev: cd });
        },
      ],
    });
    await diskStore.close();
    await cdStore.close();
    // X86VM_IDE_GUEST_LOG=FILE keeps the guest's console output for debugging
    if (process.env.X86VM_IDE_GUEST_LOG) writeFileSync(process.env.X86VM_IDE_GUEST_LOG, r.out);
    expect(r.message, runReport(r)).toBe(undefined);
    expect(r.exitCode).toBe(0);
    expect(ide).not.toBe(null);
    expect(warnings).toEqual([]);

    // ata_piix found the disk and the CD and runs both in multiword DMA mode 2, with bus mastering
    const dmesg = section(r, 'DMESG')
      .split('\n')
      .filter((l) => /^(\[[ \d.]+\] )?(ata\d|scsi|sd |sr )/.test(l))
      .join('\n');
    expect(dmesg).toMatch(/ata1: PATA max MWDMA2 cmd 0x1f0 ctl 0x3f6 bmdma 0x[1-9a-f][0-9a-f]* irq 14/);
    expect(dmesg).toMatch(/ata2: PATA max MWDMA2 cmd 0x170 ctl 0x376 bmdma 0x[1-9a-f][0-9a-f]* irq 15/);
    expect(dmesg).toMatch(/ata1\.00: ATA-7: x86vm HARDDISK/);
    expect(dmesg).toMatch(/ata1\.00: 16384 sectors, multi 16: LBA48/);
    expect(dmesg).toMatch(/ata2\.00: ATAPI: x86vm DVD-ROM/);
    expect(section(r, 'MODE').trim().split('\n')).toEqual(['XFER_MW_DMA_2', 'XFER_MW_DMA_2']);
    expect(dmesg).not.toMatch(/ata\d\.01/); // no phantom slaves
    expect(dmesg).not.toMatch(/(failed|timeout|error|exception)/i);
    expect(dmesg).toMatch(/sd 0:0:0:0: \[sda\] 16384 512-byte logical blocks/);
    expect(dmesg).toMatch(/sr 1:0:0:0: \[sr0\]/);
    const [sdaSize, srSize] = section(r, 'SIZE').trim().split('\n').map(Number);
    expect(sdaSize).toBe(16384);
    expect(srSize * 512).toBe(existsSync(iso) ? Number(execFileSync('stat', ['-c', '%s', iso]).toString()) : -1);

    expect(section(r, 'MOUNT').trim()).toBe('mounted');
    const read = section(r, 'READ').trim().split('\n');
    expect(read[0]).toBe(HOST_TEXT);
    expect(read[1]).toBe(`${md5(blob)}  /mnt/blob.bin`);
    const write = section(r, 'WRITE').trim().split('\n');
    expect(write[1]).toBe('synced');
    const guestRandMd5 = write[0].split(/\s+/)[0];
    expect(section(r, 'UMOUNT').trim()).toBe('unmounted');

    expect(section(r, 'CDMOUNT').trim()).toBe('mounted');
    const cdRead = section(r, 'CDREAD').trim().split('\n');
    expect(cdRead[0]).toBe(CD_TEXT);
    expect(cdRead[1]).toBe(`${md5(cdBlob)}  /cdrom/data.bin`);
    expect(cdRead.slice(2).sort()).toEqual(['data.bin', 'readme.txt']);
    expect(section(r, 'CDUMOUNT').trim()).toBe('unmounted');

    // interrupts 14 and 15 were delivered, and 14 kept counting through the disk I/O
    const irq0 = section(r, 'IRQ0');
    const irq1 = section(r, 'IRQ1');
    expect(irqCount(irq0, 14)).toBeGreaterThan(0);
    expect(irqCount(irq1, 14)).toBeGreaterThan(irqCount(irq0, 14) + 5);
    expect(irqCount(irq1, 15)).toBeGreaterThan(irqCount(irq0, 15) + 5);

    // the data moved by bus master DMA: at least the files read and written; PIO only for small commands
    const stats = (ide as IdeController | null)!.stats;
    expect(stats.dmaBytes).toBeGreaterThan(blob.length + cdBlob.length + 200 * 4096);
    expect(stats.pioBytes).toBeLessThan(64 * 1024);
    console.log(`IDE guest: ${stats.dmaBytes} bytes by DMA, ${stats.pioBytes} by PIO`);

    // the host sees what the guest wrote
    expect(readExtFile(img, '/guest.txt')).toBe('IDE written by the guest\n');
    const rand = readExtBytes(img, '/rand.bin');
    expect(rand).not.toBeNull();
    expect(md5(rand!)).toBe(guestRandMd5);
    expect(readExtFile(img, '/hello.txt')).toBe(`${HOST_TEXT}\n`);
    expect(fsckExt(img)).toBe(0);
    console.log(`IDE guest session: ${r.seconds.toFixed(1)} s`);
  }, 620_000);
});
