/**
 * vm.json: the one validator (core/vmconfig.ts) with one-line errors naming the file and the field; the
 * Node side (node/vmconfig.ts): paths relative to the file, the mapping to run settings and the merge with
 * the command line (`x86vm run VM [options]`); and `x86vm create` (node/create-cli.ts): the plan it checks
 * before writing, the folder it writes, and that a failure leaves nothing behind.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateVmConfig, VmConfigError, parseRamSize, ramSizeText } from '../../core/vmconfig';
import { parseVmConfig } from '../../node/vmconfig';
import { parseCommandLine, UsageError, type RunOptions } from '../../node/options';
import { createMain, planCreate, parseDiskOption, nicConfigFromOption } from '../../node/create-cli';
import { FileStore, NodeOpener } from '../../node/file-store';
import { openImage } from '../../disk/detect';
import { SECTOR_SIZE } from '../../disk/block';
import { tempDir } from '../helpers/diskimg';
import { parseVmJson } from '../../web/config';

const FILE = '/vms/demo/vm.json';
const parse = (o: unknown) => parseVmConfig(JSON.stringify(o), FILE);

const work = tempDir('x86vm-vmconfig-');
afterAll(() => rmSync(work, { recursive: true, force: true }));

function runOptions(argv: string[]): RunOptions {
  const c = parseCommandLine(['run', ...argv]);
  if (c.command !== 'run') throw new Error('not a run');
  return c.options;
}

describe('vm.json: the validator (core)', () => {
  it('returns a typed description with the paths as written and the defaults left open', () => {
    const c = validateVmConfig(
      JSON.stringify({
        version: 1,
        memory: '1536K',
        firmware: { kernel: 'boot/bzImage', append: '' },
        disks: [{ file: '../shared/base.vhd', interface: 'virtio-scsi', slot: 7, snapshot: true }, { file: 'cd.iso', media: 'cdrom' }],
        nics: [{ model: 'virtio', mac: '52:54:00:AB:CD:EF', link: 'down', user: { allow: ['8080'] } }, { model: 'ne2k', switch: 'unix:sw.sock', slot: 9 }],
        boot: 'DC',
        serial: 'none',
      }),
      'x/vm.json',
    );
    expect(c).toMatchObject({
      file: 'x/vm.json',
      version: 1,
      memory: 1536 * 1024,
      cpu: {},
      firmware: { kind: 'kernel', kernel: 'boot/bzImage', append: '' },
      disks: [{ file: '../shared/base.vhd', interface: 'virtio-scsi', slot: 7, snapshot: true }, { file: 'cd.iso', media: 'cdrom' }],
      nics: [{ model: 'virtio', mac: '52:54:00:ab:cd:ef', link: 'down', user: { allow: ['8080'] } }, { model: 'ne2k', switch: 'unix:sw.sock', slot: 9 }],
      boot: 'dc',
      serial: { kind: 'none' },
    });
    expect(c.disks[1].interface).toBeUndefined();
    expect(c.disks[1].readOnly).toBeUndefined();
    expect(validateVmConfig('{"version":1}', 'vm.json')).toEqual({ file: 'vm.json', version: 1, cpu: {}, firmware: { kind: 'default-guest' }, disks: [], nics: [] });
    expect(validateVmConfig('{"version":1,"firmware":"seabios"}', 'vm.json').firmware).toEqual({ kind: 'seabios' });
    expect(() => validateVmConfig('[]', 'a.json')).toThrow(VmConfigError);
    expect(() => validateVmConfig('[]', 'a.json')).toThrow(/^a\.json: expected a JSON object/);
  });

  it('parses RAM sizes as --mem does and writes them back', () => {
    expect(parseRamSize('128M')).toBe(128 << 20);
    expect(parseRamSize('1G')).toBe(1 << 30);
    expect(parseRamSize('64')).toBe(64 << 20);
    expect(parseRamSize('2097152B')).toBe(2 << 20);
    expect(parseRamSize('1.5M')).toBe(1.5 * 1048576);
    expect(parseRamSize('1.0001M')).toBe('not a whole number of bytes');
    expect(parseRamSize('3000M')).toMatch(/between 1 MiB and 1984 MiB/);
    expect(parseRamSize('1025K')).toBe('RAM must be a multiple of 4 KiB');
    expect(parseRamSize('lots')).toBe('not a size');
    expect([ramSizeText(1 << 30), ramSizeText(96 << 20), ramSizeText(1540 * 1024)]).toEqual(['1G', '96M', '1540K']);
  });
});

describe('vm.json on the Node host', () => {
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
    expect(parse({ version: 1 })).toMatchObject({ defaultGuest: true, name: 'demo', drives: [], nics: [] });
    expect(parse({ version: 1, firmware: 'seabios' }).bios).toBe('/usr/share/seabios/bios.bin');
    expect(parse({ version: 1, firmware: { bios: 'fw/bios.bin' } }).bios).toBe('/vms/demo/fw/bios.bin');
    expect(parse({ version: 1, memory: 64 }).memSize).toBe(64 << 20);
  });

  it('turns "nics" into the cards --nic makes: model, MAC, link, switch or user-mode NAT, capture file', () => {
    const s = parse({
      version: 1,
      nics: [
        { model: 'virtio', mac: '52:54:00:00:00:09', switch: 'unix:../sw.sock', pcap: 'cap/net.pcap' },
        { model: 'ne2k', link: 'down', user: { allow: ['8080', 'udp:53'], hostfwd: ['tcp::2222-:22'], dns: ['web:10.0.2.2'] } },
        { model: 'ne2k', slot: 12 },
        { model: 'virtio', switch: 'tcp:127.0.0.1:4000' },
      ],
    });
    const [a, b, c, d] = s.nics;
    expect([...a.mac!]).toEqual([0x52, 0x54, 0, 0, 0, 9]);
    expect(a).toMatchObject({ model: 'virtio', link: true, pcap: '/vms/demo/cap/net.pcap', backend: { kind: 'switch', address: { kind: 'unix', path: '/vms/sw.sock' } } });
    expect(a.source).toBe('/vms/demo/vm.json nics[0]');
    expect(b).toMatchObject({ model: 'ne2k', link: false, backend: { kind: 'user' } });
    expect(b.mac).toBeUndefined();
    const user = b.backend.kind === 'user' ? b.backend.options : null;
    expect(user?.allow).toHaveLength(2);
    expect(user?.hostfwd).toEqual([expect.objectContaining({ hostPort: 2222, guestPort: 22 })]);
    expect(Object.keys(user?.names ?? {})).toEqual(['web']);
    expect(c).toMatchObject({ model: 'ne2k', slot: 12, backend: { kind: 'none' } });
    expect(d.backend).toMatchObject({ kind: 'switch', address: { kind: 'tcp', host: '127.0.0.1', port: 4000 } });
  });

  it('names the file, the field and what was expected for every wrong field', () => {
    const cases: [unknown, RegExp][] = [
      [{}, /field 'version': expected 1$/],
      [{ version: 2 }, /field 'version': expected 1 \(version 2 is newer than this x86vm understands; upgrade x86vm\)/],
      [{ version: '1' }, /field 'version': expected 1, got "1"/],
      [{ version: 1, memory: 'lots' }, /field 'memory': expected a RAM size like "128M" or a number of MiB \(not a size\), got "lots"/],
      [{ version: 1, memory: true }, /field 'memory': expected a size like "128M" or a number of MiB, got true/],
      [{ version: 1, memory: 1.5 }, /field 'memory': expected a size like "128M" or a whole number of MiB, got 1.5/],
      [{ version: 1, memory: '3000M' }, /field 'memory': expected .*\(RAM must be between 1 MiB and 1984 MiB\), got "3000M"/],
      [{ version: 1, name: 7 }, /field 'name': expected a non-empty string, got 7/],
      [{ version: 1, cpu: { apic: 'yes' } }, /field 'cpu.apic': expected true or false, got "yes"/],
      [{ version: 1, cpu: { cores: 2 } }, /field 'cpu.cores': unknown field \(known here: apic\)/],
      [{ version: 1, disk: [] }, /field 'disk': unknown field \(known here: .*disks/],
      [{ version: 1, deterministic: 'yes' }, /field 'deterministic': expected true or false/],
      [{ version: 1, firmware: 'uefi' }, /field 'firmware': expected "default-guest", "seabios", \{ "bios": FILE \}/],
      [{ version: 1, firmware: { kernel: '' } }, /field 'firmware.kernel': expected a file name \(relative to vm.json, or absolute\), got ""/],
      [{ version: 1, firmware: { kernel: 'k', cmdline: 'x' } }, /field 'firmware.cmdline': unknown field \(known here: kernel, initrd, append\)/],
      [{ version: 1, firmware: { kernel: 'k', append: 3 } }, /field 'firmware.append': expected a string/],
      [{ version: 1, firmware: { bios: 'b', kernel: 'k' } }, /field 'firmware.kernel': unknown field \(known here: bios\)/],
      [{ version: 1, disks: {} }, /field 'disks': expected a list of disks/],
      [{ version: 1, disks: [{}] }, /field 'disks\[0\].file': expected a file name/],
      [{ version: 1, disks: ['a.vhd'] }, /field 'disks\[0\]': expected an object, got "a.vhd"/],
      [{ version: 1, disks: [{ file: 'a', interface: 'scsi' }] }, /field 'disks\[0\].interface': expected one of virtio-blk, ide, virtio-scsi, got "scsi"/],
      [{ version: 1, disks: [{ file: 'a', slot: 4 }] }, /field 'disks\[0\].slot': expected a whole number from 0 to 3, got 4/],
      [{ version: 1, disks: [{ file: 'a', interface: 'virtio-blk', slot: 0 }] }, /field 'disks\[0\].slot': expected no slot for interface virtio-blk/],
      [{ version: 1, disks: [{ file: 'a', interface: 'virtio-blk', media: 'cdrom' }] }, /field 'disks\[0\].media'/],
      [{ version: 1, disks: [{ file: 'a', format: 'qcow2' }] }, /field 'disks\[0\].format': expected one of raw, vhd, vdi, iso/],
      [{ version: 1, disks: [{ path: 'a' }] }, /field 'disks\[0\].path': unknown field/],
      [{ version: 1, disks: [{ file: 'a', readOnly: 1 }] }, /field 'disks\[0\].readOnly': expected true or false, got 1/],
      [{ version: 1, cdrom: '' }, /field 'cdrom': expected a file name/],
      [{ version: 1, boot: 'x' }, /field 'boot': expected boot order letters .*, got "x"/],
      [{ version: 1, boot: 'cdn a' }, /field 'boot': expected boot order letters/],
      [{ version: 1, boot: 'cdna' }, /field 'boot': expected boot order letters \(.*at most 3/],
      [{ version: 1, boot: 'cc' }, /field 'boot': expected boot order letters \(.*none twice\), got "cc"/],
      [{ version: 1, serial: 'tcp:1234' }, /field 'serial': expected "stdio", "none" or "file:PATH", got "tcp:1234"/],
      [{ version: 1, nics: {} }, /field 'nics': expected a list of network cards/],
      [{ version: 1, nics: ['model=virtio'] }, /field 'nics\[0\]': expected an object, got "model=virtio"/],
      [{ version: 1, nics: [{}] }, /field 'nics\[0\].model': expected one of ne2k, virtio$/],
      [{ version: 1, nics: [{ model: 'e1000' }] }, /field 'nics\[0\].model': expected one of ne2k, virtio, got "e1000"/],
      [{ version: 1, nics: [{ model: 'ne2k', colour: 'red' }] }, /field 'nics\[0\].colour': unknown field \(known here: model, mac, link, pcap, slot, switch, user\)/],
      [{ version: 1, nics: [{ model: 'ne2k', mac: '52:54:00:12:34' }] }, /field 'nics\[0\].mac': expected a MAC address like "52:54:00:12:34:56", got "52:54:00:12:34"/],
      [{ version: 1, nics: [{ model: 'ne2k', mac: '01:00:5e:00:00:01' }] }, /field 'nics\[0\].mac': expected a unicast MAC address \(the first byte even\)/],
      [{ version: 1, nics: [{ model: 'ne2k', mac: 525400123456 }] }, /field 'nics\[0\].mac': expected a MAC address/],
      [{ version: 1, nics: [{ model: 'ne2k', link: 'off' }] }, /field 'nics\[0\].link': expected one of up, down, got "off"/],
      [{ version: 1, nics: [{ model: 'ne2k', slot: 1 }] }, /field 'nics\[0\].slot': expected a whole number from 2 to 31, got 1/],
      [{ version: 1, nics: [{ model: 'ne2k', switch: 'sw.sock' }] }, /field 'nics\[0\].switch': expected an x86vm switch address/],
      [{ version: 1, nics: [{ model: 'ne2k', switch: 'unix:s', user: true }] }, /field 'nics\[0\].user': expected no "user" beside "switch"/],
      [{ version: 1, nics: [{ model: 'ne2k', user: 'yes' }] }, /field 'nics\[0\].user': expected an object, got "yes"/],
      [{ version: 1, nics: [{ model: 'ne2k', user: { allow: '80' } }] }, /field 'nics\[0\].user.allow': expected a list of rules/],
      [{ version: 1, nics: [{ model: 'ne2k', user: { allow: ['80,81'] } }] }, /field 'nics\[0\].user.allow\[0\]'/],
      [{ version: 1, nics: [{ model: 'ne2k', user: { dns: ['web'] } }] }, /field 'nics\[0\].user.dns\[0\]': expected NAME:A.B.C.D, got "web"/],
      [{ version: 1, nics: [{ model: 'ne2k', user: { forward: [] } }] }, /field 'nics\[0\].user.forward': unknown field/],
      // checked by the Node host (the user-mode NAT's own rules), still naming the file and the card
      [{ version: 1, nics: [{ model: 'ne2k', user: { hostfwd: ['udp::53-:53'] } }] }, /field 'nics\[0\]': hostfwd=udp::53-:53: expected tcp:/],
      [{ version: 1, nics: [{ model: 'ne2k', switch: 'tcp:10.0.0.1:4000' }] }, /field 'nics\[0\]': .*only loopback addresses/],
    ];
    for (const [o, re] of cases) {
      let err: unknown;
      try {
        parse(o);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(o)).toBeInstanceOf(UsageError);
      const msg = (err as Error).message;
      expect(msg, JSON.stringify(o)).toMatch(re);
      expect(msg, JSON.stringify(o)).toMatch(/^\/vms\/demo\/vm\.json: /);
      expect(msg, JSON.stringify(o)).not.toContain('\n');
    }
    expect(() => parseVmConfig('{ "version": 1, ', FILE)).toThrow(/^\/vms\/demo\/vm\.json: not valid JSON/);
  });
});

describe('vm.json on the page (web/config.ts)', () => {
  it('uses the same validator: the same text gets the same message in Node and on the page', () => {
    const bad = [
      { version: 1, memory: '3000M' },
      { version: 1, disks: [{ file: 'a', slot: 9 }] },
      { version: 1, nics: [{ model: 'virtio', mac: 'xx' }] },
      { version: 1, boot: 'q' },
      { version: 1, serial: 'tcp:1' },
      { version: 4 },
    ];
    for (const o of bad) {
      const text = JSON.stringify(o);
      let node = '';
      let web = '';
      try {
        parseVmConfig(text, 'f/vm.json');
      } catch (e) {
        node = (e as Error).message;
      }
      try {
        parseVmJson(text, 'f/vm.json', new Map());
      } catch (e) {
        web = (e as Error).message;
      }
      expect(node, text).toMatch(/^f\/vm\.json: field '/);
      expect(web, text).toBe(node);
    }
  });

  it('maps paths to the picked files (normalised, never outside the folder), SeaBIOS, the boot order and the memory', () => {
    const b = (s: string) => new Blob([s]);
    const files = new Map([['boot/k', b('k')], ['d.vdi', b('d')]]);
    const cfg = parseVmJson(
      JSON.stringify({ version: 1, memory: '1G', firmware: { kernel: './x/../boot/k' }, disks: [{ file: 'd.vdi', interface: 'virtio-scsi', slot: 3, snapshot: true }], nics: [{ model: 'ne2k' }], boot: 'DC', noReboot: true }),
      'vm.json',
      files,
    );
    expect(cfg).toMatchObject({ memMiB: 1024, append: '', bootOrder: 'dc', label: 'boot/k', kernel: { name: 'boot/k' } });
    expect(cfg.disks).toEqual([{ source: { blob: files.get('d.vdi'), name: 'd.vdi' }, interface: 'virtio-scsi' }]);
    expect(() => parseVmJson('{"version":1,"cdrom":"../d.vdi"}', 'vm.json', files)).toThrow("vm.json: field 'cdrom': '../d.vdi' is not in the folder picked");
    expect(() => parseVmJson('{"version":1,"cdrom":"/d.vdi"}', 'vm.json', files)).toThrow("field 'cdrom': '/d.vdi' is not in the folder picked");
    const sea = parseVmJson('{"version":1,"firmware":"seabios","name":"sea"}', 'vm.json', files);
    expect(sea).toMatchObject({ label: 'sea', bios: { url: 'bios.bin' }, vgaBios: { url: 'vgabios-stdvga.bin' } });
    expect(sea.kernel).toBeUndefined();
  });
});

describe('x86vm run VM: the file under the command line', () => {
  const vmDir = join(work, 'runvm');
  mkdirSync(join(vmDir, 'boot'), { recursive: true });
  const json = {
    version: 1,
    name: 'merge',
    memory: '64M',
    cpu: { apic: false },
    firmware: { kernel: 'boot/bzImage', initrd: 'boot/initrd', append: 'console=ttyS0 quiet' },
    disks: [{ file: 'disk0.vhd' }, { file: 'data.vdi', interface: 'virtio-blk' }],
    cdrom: 'cd.iso',
    nics: [{ model: 'virtio', user: true }],
    boot: 'dc',
    serial: 'file:console.log',
  };
  writeFileSync(join(vmDir, 'vm.json'), JSON.stringify(json));

  it('runs the file (or the folder holding it) with paths relative to the file, whatever the current directory', () => {
    const cwd = process.cwd();
    try {
      process.chdir(work);
      for (const arg of ['runvm/vm.json', 'runvm', `${vmDir}/`]) {
        const o = runOptions([arg]);
        expect(o).toMatchObject({
          memSize: 64 << 20,
          apic: false,
          kernel: join(vmDir, 'boot/bzImage'),
          initrd: join(vmDir, 'boot/initrd'),
          append: 'console=ttyS0 quiet',
          boot: { order: 'dc' },
          serial: { kind: 'file', path: join(vmDir, 'console.log') },
          vmName: 'merge',
        });
        expect(o.defaultGuest).toBeUndefined();
        expect(o.drives.map((d) => [d.file, d.interface, d.media])).toEqual([
          [join(vmDir, 'disk0.vhd'), 'ide', 'disk'],
          [join(vmDir, 'data.vdi'), 'virtio-blk', 'disk'],
          [join(vmDir, 'cd.iso'), 'ide', 'cdrom'],
        ]);
        expect(o.nics?.map((n) => [n.model, n.backend.kind])).toEqual([['virtio', 'user']]);
      }
    } finally {
      process.chdir(cwd);
    }
  });

  it('lets options override the file (--mem, --serial, --boot, firmware, --cdrom) or add to it (disks, cards, flags)', () => {
    const o = runOptions([vmDir, '--mem', '96M', '--serial', 'none', '--boot', 'c', '--append', 'quiet', '--cdrom', '/other.iso', '--hdb', '/x.img', '--nic', 'model=ne2k', '--deterministic', '--no-reboot']);
    expect(o).toMatchObject({ memSize: 96 << 20, serial: { kind: 'none' }, boot: { order: 'c' }, append: 'quiet', initrd: join(vmDir, 'boot/initrd'), deterministic: true, noReboot: true });
    expect(o.drives.map((d) => d.file)).toEqual([join(vmDir, 'disk0.vhd'), join(vmDir, 'data.vdi'), '/other.iso', '/x.img']);
    expect(o.nics?.map((n) => n.model)).toEqual(['virtio', 'ne2k']);
    // --kernel replaces the file's whole firmware (its initrd and command line too); so does --bios
    const k = runOptions([vmDir, '--kernel', '/k']);
    expect([k.kernel, k.initrd, k.append]).toEqual(['/k', undefined, undefined]);
    const b = runOptions([vmDir, '--bios', '/b.bin']);
    expect([b.bios, b.kernel, b.initrd]).toEqual(['/b.bin', undefined, undefined]);
    // a slot both want is an error naming both, at run time (placeDrives); the command line's --hda takes 0
    expect(runOptions([vmDir, '--hda', '/y.img']).drives.map((d) => d.source)).toContain('--hda /y.img');
  });

  it('keeps the snapshot\'s machine with --restore, and refuses a missing file or a folder without vm.json', () => {
    const o = runOptions([vmDir, '--restore', '/s.snap']);
    expect(o.memSize).toBe(128 << 20);
    expect([o.kernel, o.apic, o.defaultGuest]).toEqual([undefined, undefined, undefined]);
    expect(o.drives).toHaveLength(3);
    expect(() => runOptions([join(work, 'nope.json')])).toThrow(/^cannot read VM '.*nope\.json': no such file or folder$/);
    mkdirSync(join(work, 'empty'), { recursive: true });
    expect(() => runOptions([join(work, 'empty')])).toThrow(/is a folder without a vm\.json \(x86vm create DIR makes a VM folder\)/);
    expect(() => runOptions([vmDir, vmDir])).toThrow(/^one VM at a time/);
    writeFileSync(join(work, 'bzImage'), new Uint8Array([0x4d, 0x5a, 0x90, 0]));
    expect(() => runOptions([join(work, 'bzImage')])).toThrow(/bzImage: not valid JSON \(.*\); x86vm run VM takes a vm\.json \(or its folder\): a kernel goes after --kernel$/);
    const bad = join(work, 'bad');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'vm.json'), '{"version":1,"memory":"1T"}');
    expect(() => runOptions([bad])).toThrow(new RegExp(`^${bad}/vm\\.json: field 'memory': expected`));
    // a vm.json with SeaBIOS: --append needs a kernel
    writeFileSync(join(bad, 'vm.json'), '{"version":1,"firmware":"seabios"}');
    expect(() => runOptions([bad, '--append', 'x'])).toThrow('--append needs --kernel');
    expect(runOptions([bad]).bios).toBe('/usr/share/seabios/bios.bin');
  });
});

describe('x86vm create', () => {
  const kernel = join(work, 'vmlinuz');
  const initrd = join(work, 'initrd.img');
  writeFileSync(kernel, 'kernel bytes');
  writeFileSync(initrd, 'initrd bytes');
  const quiet = { out: () => {}, err: (l: string) => errs.push(l) };
  const errs: string[] = [];

  it('reads --disk, --nic and the rest into a plan, checking everything first', () => {
    expect(parseDiskOption('2G', 0)).toMatchObject({ file: 'disk0.vhd', format: 'vhd-dynamic', bytes: 2 * 1024 ** 3, interface: 'ide' });
    expect(parseDiskOption('size=64M,format=vdi,if=virtio-blk', 1)).toMatchObject({ file: 'disk1.vdi', format: 'vdi-dynamic', interface: 'virtio-blk' });
    expect(parseDiskOption('size=1M,format=raw,interface=virtio-scsi,slot=5,file=data.img', 2)).toMatchObject({ file: 'data.img', format: 'raw', slot: 5 });
    expect(() => parseDiskOption('size=1M,format=qcow2', 0)).toThrow(/^--disk size=1M,format=qcow2: format=qcow2 is not one of raw, vhd/);
    expect(() => parseDiskOption('size=lots', 0)).toThrow(/^--disk size=lots: bad size 'lots'/);
    expect(() => parseDiskOption('format=vhd', 0)).toThrow(/size= is needed/);
    expect(() => parseDiskOption('size=1M,file=../x.vhd', 0)).toThrow(/is not a plain file name/);
    expect(() => parseDiskOption('size=1M,interface=virtio-blk,slot=1', 0)).toThrow(/slot= applies to interface=ide and interface=virtio-scsi/);
    expect(() => parseDiskOption('size=1M,colour=red', 0)).toThrow(/unknown key 'colour'/);
    expect(() => parseDiskOption('parent=/nonexistent.vhd', 0)).toThrow(/parent '\/nonexistent\.vhd': no such file/);

    const fixed = () => 0.5;
    expect(nicConfigFromOption('model=virtio,user,allow=8080,hostfwd=tcp::2222-:22', fixed)).toEqual({
      model: 'virtio',
      mac: '52:54:00:80:80:80',
      user: { allow: ['8080'], hostfwd: ['tcp::2222-:22'] },
    });
    expect(nicConfigFromOption('model=ne2k_pci,mac=52:54:00:00:00:01,link=down,switch=unix:sw.sock')).toEqual({
      model: 'ne2k',
      mac: '52:54:00:00:00:01',
      link: 'down',
      switch: `unix:${join(process.cwd(), 'sw.sock')}`,
    });
    expect(() => nicConfigFromOption('model=e1000')).toThrow(/model=e1000 is not ne2k or virtio/);

    const plan = planCreate([join(work, 'p1'), '--disk', '1G', '--disk', 'size=8M,format=raw,if=virtio-blk', '--kernel', kernel, '--initrd', initrd, '--append', 'console=ttyS0', '--memory', '256', '--nic', 'model=virtio,user', '--boot', 'cd'])!;
    expect(plan.json).toMatchObject({
      version: 1,
      name: 'p1',
      memory: '256M',
      firmware: { kernel: 'vmlinuz', initrd: 'initrd.img', append: 'console=ttyS0' },
      disks: [
        { file: 'disk0.vhd', interface: 'ide', format: 'vhd' },
        { file: 'disk1.raw', interface: 'virtio-blk', format: 'raw' },
      ],
      nics: [{ model: 'virtio', user: true }],
      boot: 'cd',
    });
    expect(plan.json.nics![0].mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(planCreate([join(work, 'p2')])!.json).toEqual({ version: 1, name: 'p2', memory: '128M', firmware: 'default-guest' });
    expect(planCreate([join(work, 'p3'), '--bios', 'seabios', '--cdrom', kernel])!.json).toMatchObject({ firmware: 'seabios', cdrom: kernel });
    expect(planCreate([join(work, 'p3'), '--cdrom', kernel, '--copy-cdrom'])!.json.cdrom).toBe('vmlinuz');
    // the same base name twice: the second copy gets another name
    expect(planCreate([join(work, 'p4'), '--kernel', kernel, '--initrd', kernel])!.json.firmware).toEqual({ kernel: 'vmlinuz', initrd: 'vmlinuz-2' });
    expect(planCreate(['--help'])).toBeNull();

    const bad: [string[], RegExp][] = [
      [[], /^create: expected one folder, got nothing/],
      [['a', 'b'], /^create: expected one folder, got 'a' 'b'/],
      [[join(work, 'q'), '--colour'], /^create: unknown option '--colour'/],
      [[join(work, 'q'), '--memory', '3G'], /^--memory: RAM must be between 1 MiB and 1984 MiB/],
      [[join(work, 'q'), '--kernel', join(work, 'missing')], /^--kernel '.*missing': no such file$/],
      [[join(work, 'q'), '--kernel', work], /^--kernel '.*': not a regular file$/],
      [[join(work, 'q'), '--initrd', initrd], /^--initrd needs --kernel$/],
      [[join(work, 'q'), '--kernel', kernel, '--bios', 'seabios'], /--kernel or --bios, not both/],
      [[join(work, 'q'), '--bios', kernel], /^--bios '.*vmlinuz': a BIOS image must be 64, 128, 192 or 256 KiB/],
      [[join(work, 'q'), '--copy-cdrom'], /^--copy-cdrom needs --cdrom FILE$/],
      [[join(work, 'q'), '--boot', 'x'], /^--boot: Invalid boot device 'x'/],
      [[join(work, 'q'), '--nic', 'model=virtio,mac=01:02:03:04:05:06'], /multicast/],
      [[join(work, 'q'), '--disk', '1M', '--disk', 'size=1M,file=disk0.vhd'], /the folder already gets a file named disk0\.vhd/],
      [[join(work, 'q'), '--disk', '1M', '--disk', '1M', '--disk', '1M', '--disk', '1M', '--cdrom', kernel], /^--cdrom .*: that slot is already taken by --disk 1M|no free ide slot/],
      [[join(work, 'q'), '--disk', 'size=1M,slot=1', '--disk', 'size=1M,slot=1'], /that slot is already taken by --disk size=1M,slot=1/],
      [[join(work, 'no/such/dir')], /^create: the folder '.*no\/such' \(where 'dir' would go\) does not exist/],
      [[kernel], /^create: '.*vmlinuz' exists and is not a folder/],
      [[work], /^create: '.*' exists and is not empty/],
    ];
    for (const [argv, re] of bad) expect(() => planCreate(argv), argv.join(' ')).toThrow(re);
  });

  it('writes the folder: vm.json that run reads, images the disk code opens at their sizes, copies of the kernel and initrd', async () => {
    const dir = join(work, 'made');
    mkdirSync(dir); // an existing empty folder is fine
    const parent = join(work, 'base.raw');
    writeFileSync(parent, new Uint8Array(4 << 20).fill(7));
    const status = await createMain(
      [dir, '--disk', '100M', '--disk', 'size=16M,format=vdi,interface=virtio-blk', '--disk', 'size=3M,format=raw', '--disk', 'size=10M,format=vhd-fixed,interface=virtio-scsi',
        '--disk', `parent=${parent},interface=virtio-scsi,file=child.vhd`, '--kernel', kernel, '--initrd', initrd, '--nic', 'model=ne2k', '--name', 'made vm'],
      quiet,
    );
    expect(errs).toEqual([]);
    expect(status).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['child.vhd', 'disk0.vhd', 'disk1.vdi', 'disk2.raw', 'disk3.vhd', 'initrd.img', 'vm.json', 'vmlinuz']);
    expect(readdirSync(work).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(readFileSync(join(dir, 'vmlinuz'), 'utf8')).toBe('kernel bytes');
    const text = readFileSync(join(dir, 'vm.json'), 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    const s = parseVmConfig(text, join(dir, 'vm.json'));
    expect(s).toMatchObject({ name: 'made vm', memSize: 128 << 20, kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.img') });
    expect(s.drives.map((d) => [d.file.slice(dir.length + 1), d.interface, d.format])).toEqual([
      ['disk0.vhd', 'ide', 'vhd'],
      ['disk1.vdi', 'virtio-blk', 'vdi'],
      ['disk2.raw', 'ide', 'raw'],
      ['disk3.vhd', 'virtio-scsi', 'vhd'],
      ['child.vhd', 'virtio-scsi', 'vhd'],
    ]);
    expect(s.nics).toHaveLength(1);
    const sizes: [string, string, number][] = [];
    for (const name of ['disk0.vhd', 'disk1.vdi', 'disk2.raw', 'disk3.vhd', 'child.vhd']) {
      const dev = await openImage(FileStore.open(join(dir, name), { readOnly: true }), new NodeOpener(), { readOnly: true });
      sizes.push([name, dev.format, dev.sectors * SECTOR_SIZE]);
      if (name === 'child.vhd') {
        const buf = new Uint8Array(512);
        await dev.read(100, buf);
        expect(buf.every((b) => b === 7)).toBe(true); // reads through to the parent
      }
      await dev.close();
    }
    expect(sizes[0][2]).toBeGreaterThanOrEqual(100 << 20); // a VHD rounds up to a CHS geometry
    expect(sizes[0][2]).toBeLessThan(101 << 20);
    expect(sizes.slice(1)).toEqual([
      ['disk1.vdi', 'vdi-dynamic', 16 << 20],
      ['disk2.raw', 'raw', 3 << 20],
      ['disk3.vhd', 'vhd-fixed', sizes[3][2]],
      ['child.vhd', 'vhd-differencing', 4 << 20],
    ]);
    expect(sizes[3][2]).toBeGreaterThanOrEqual(10 << 20);
    expect(statSync(join(dir, 'disk3.vhd')).size).toBeGreaterThan(10 << 20); // fixed: allocated in full
    expect(statSync(join(dir, 'disk0.vhd')).size).toBeLessThan(1 << 20); // dynamic: grows as written

    // a second create into the now non-empty folder is refused and changes nothing
    errs.length = 0;
    expect(await createMain([dir, '--disk', '1M'], quiet)).toBe(2);
    expect(errs).toEqual([expect.stringMatching(/^x86vm: create: '.*made' exists and is not empty/)]);
    expect(readFileSync(join(dir, 'vm.json'), 'utf8')).toBe(text);
  });

  it('leaves nothing behind when writing fails half-way', async () => {
    // a damaged VHD as a parent: found only when the folder is being written, after the first disk
    const broken = join(work, 'broken.vhd');
    const mk = await createMain([join(work, 'tmpvm'), '--disk', 'size=4M,file=x.vhd'], quiet);
    expect(mk).toBe(0);
    writeFileSync(broken, readFileSync(join(work, 'tmpvm', 'x.vhd')));
    truncateSync(broken, 1000);
    errs.length = 0;
    const dir = join(work, 'halfway');
    const status = await createMain([dir, '--disk', '8M', '--disk', `parent=${broken}`, '--kernel', kernel], quiet);
    expect(status).toBe(2);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/^x86vm: .*broken\.vhd: /);
    expect(existsSync(dir)).toBe(false);
    expect(readdirSync(work).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});
