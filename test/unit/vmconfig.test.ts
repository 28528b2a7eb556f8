/**
 * vm.json: validation with one-line errors naming the file and the field, paths relative to the file,
 * and the mapping to run settings (memory, firmware, disks, CD-ROM, boot order, serial).
 */
import { describe, expect, it } from 'vitest';
import { parseVmConfig } from '../../node/vmconfig';

const FILE = '/vms/demo/vm.json';
const parse = (o: unknown) => parseVmConfig(JSON.stringify(o), FILE);

describe('vm.json', () => {
  it('maps a full description to run settings, with paths relative to the file', () => {
    const s = parse({
      version: 1,
      name: 'demo',
      memory: '256M',
      cpu: { apic: false },
      deterministic: true,
      noReboot: true,
      firmware: { kernel: 'bzImage', initrd: '../shared/initrd.gz', append: 'console=ttyS0 quiet' },
      disks: [
        { file: 'disk.vhd', interface: 'virtio-scsi', slot: 2 },
        { file: '/abs/data.vdi', interface: 'virtio-blk', readOnly: true, format: 'vdi' },
      ],
      cdrom: 'cd.iso',
      boot: 'dc',
      serial: 'file:console.log',
    });
    expect(s).toMatchObject({
      name: 'demo',
      memSize: 256 << 20,
      apic: false,
      deterministic: true,
      noReboot: true,
      kernel: '/vms/demo/bzImage',
      initrd: '/vms/shared/initrd.gz',
      append: 'console=ttyS0 quiet',
      bootOrder: 'dc',
      serial: { kind: 'file', path: '/vms/demo/console.log' },
    });
    expect(s.drives.map((d) => [d.file, d.interface, d.media, d.index, d.readOnly, d.format])).toEqual([
      ['/vms/demo/disk.vhd', 'virtio-scsi', 'disk', 2, false, undefined],
      ['/abs/data.vdi', 'virtio-blk', 'disk', undefined, true, 'vdi'],
      ['/vms/demo/cd.iso', 'ide', 'cdrom', 2, true, undefined],
    ]);
    expect(parse({ version: 1 })).toMatchObject({ defaultGuest: true, name: 'demo', drives: [] });
    expect(parse({ version: 1, firmware: 'seabios' }).bios).toBe('/usr/share/seabios/bios.bin');
    expect(parse({ version: 1, memory: 64 }).memSize).toBe(64 << 20);
  });

  it('names the file, the field and what was expected for every wrong field', () => {
    const cases: [unknown, RegExp][] = [
      [{}, /field 'version': expected 1$/],
      [{ version: 2 }, /version 2 is newer than this x86vm understands \(1\)/],
      [{ version: 1, memory: 'lots' }, /field 'memory': expected a RAM size like "128M" or a number of MiB \(not a size\), got "lots"/],
      [{ version: 1, memory: true }, /field 'memory': expected a size like "128M" or a number of MiB, got true/],
      [{ version: 1, memory: '3000M' }, /field 'memory': expected .*\(RAM must be between 1 MiB and 1984 MiB\), got "3000M"/],
      [{ version: 1, cpu: { apic: 'yes' } }, /field 'cpu.apic': expected true or false, got "yes"/],
      [{ version: 1, cpu: { cores: 2 } }, /unknown field 'cpu.cores' \(known here: apic\)/],
      [{ version: 1, disk: [] }, /unknown field 'disk'/],
      [{ version: 1, firmware: 'uefi' }, /field 'firmware': expected "seabios", "default-guest"/],
      [{ version: 1, firmware: { kernel: '' } }, /field 'firmware.kernel': expected a non-empty string/],
      [{ version: 1, disks: {} }, /field 'disks': expected an array/],
      [{ version: 1, disks: [{ file: 'a', interface: 'scsi' }] }, /field 'disks\[0\].interface': expected one of ide, virtio-blk, virtio-scsi, got "scsi"/],
      [{ version: 1, disks: [{ file: 'a', slot: 4 }] }, /field 'disks\[0\].slot': expected a whole number from 0 to 3, got 4/],
      [{ version: 1, disks: [{ file: 'a', interface: 'virtio-blk', media: 'cdrom' }] }, /field 'disks\[0\].media'/],
      [{ version: 1, disks: [{ file: 'a', format: 'qcow2' }] }, /field 'disks\[0\].format': expected one of raw, vhd, vdi, iso/],
      [{ version: 1, disks: [{ path: 'a' }] }, /unknown field 'disks\[0\].path'/],
      [{ version: 1, boot: 'x' }, /field 'boot': expected boot order letters/],
      [{ version: 1, serial: 'tcp:1234' }, /field 'serial': expected "stdio", "none" or "file:PATH", got "tcp:1234"/],
    ];
    for (const [o, re] of cases) {
      expect(() => parse(o), JSON.stringify(o)).toThrow(re);
      expect(() => parse(o), JSON.stringify(o)).toThrow(/^\/vms\/demo\/vm\.json: /);
    }
    expect(() => parseVmConfig('{ "version": 1, ', FILE)).toThrow(/^\/vms\/demo\/vm\.json: not valid JSON/);
  });
});
