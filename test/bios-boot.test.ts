/**
 * Booting through SeaBIOS (Debian's /usr/share/seabios/bios.bin): the bootable CD from
 * images/build-bootiso.sh (ISOLINUX) and the partitioned hard disk from images/build-bootdisk.sh
 * (SYSLINUX, a dynamic VHD), both holding the default guest.
 *
 * (a) Both images are built once per run into a temporary directory (and a second time, to check that
 *     the builds are bit-reproducible).
 * (b) qemu-system-i386 boots them first, as the oracle: the loader's banner on COM1 (isolinux.cfg's
 *     `serial` directive), Linux up, a command answered; with both attached, the default order ("cad")
 *     boots the disk and -boot d the CD.
 * (c) x86vm boots the same images the same way: the PIIX3 IDE controller with the CD on the secondary
 *     master and the disk on the primary master, the VGA with Debian's vgabios-stdvga.bin (the ISOLINUX
 *     banner must be on the VGA text screen too), and the boot order applied as QEMU applies -boot.
 *     All through the CLI's own flags (--bios, --cdrom, --hda, --boot, --snapshot).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { VmControl } from '../node/run';
import { Vga } from '../devices/vga';
import { removeDir, tempDir } from './helpers/diskimg';
import { INITRD, KERNEL, PROMPT, ROOT, runInProcess, scriptArgs } from './helpers/guest';

const run = promisify(execFile);
const BIOS = '/usr/share/seabios/bios.bin';
const VGABIOS = '/usr/share/seabios/vgabios-stdvga.bin';
const ISOLINUX_BANNER = /ISOLINUX 6\.04 \d+ .*Copyright \(C\) 1994-2015 H\. Peter Anvin et al/;
const SYSLINUX_BANNER = /SYSLINUX 6\.04 (?:EDD )?\d+ .*Copyright \(C\) 1994-2015 H\. Peter Anvin et al/;

let dir = '';
let iso = '';
let vhd = '';
let raw = '';
/** the sizes Linux must report for the boot devices (512-byte sectors), from the files and qemu-img */
let isoSectors = 0;
let vhdSectors = 0;

async function build(script: string, out: string, ...extra: string[]): Promise<void> {
  await run(join(ROOT, 'images', script), [...extra, out], { cwd: ROOT, maxBuffer: 1 << 24 });
}

beforeAll(async () => {
  for (const f of [BIOS, VGABIOS, KERNEL, INITRD]) {
    expect(existsSync(f), `${f} is missing`).toBe(true);
  }
  dir = tempDir('x86vm-bios-boot-');
  await build('build-bootiso.sh', join(dir, 'a'));
  await build('build-bootdisk.sh', join(dir, 'a'), '--raw');
  iso = join(dir, 'a', 'boot.iso');
  vhd = join(dir, 'a', 'boot.vhd');
  raw = join(dir, 'a', 'boot.img');
  isoSectors = readFileSync(iso).length / 512;
  const info = JSON.parse((await run('qemu-img', ['info', '--output=json', '-f', 'vpc', vhd])).stdout);
  vhdSectors = info['virtual-size'] / 512;
  expect(vhdSectors).toBe(65552);
}, 300_000);

afterAll(() => {
  if (dir) removeDir(dir);
});

// ---------------------------------------------------------------------------------------------------
// (a) the images

describe('the boot images', () => {
  it('rebuild bit for bit', async () => {
    // a second build a moment later, into another directory: every date is pinned
    await new Promise((r) => setTimeout(r, 1100));
    await build('build-bootiso.sh', join(dir, 'b'));
    await build('build-bootdisk.sh', join(dir, 'b'), '--raw');
    for (const f of ['boot.iso', 'boot.vhd', 'boot.img']) {
      const a = readFileSync(join(dir, 'a', f));
      const b = readFileSync(join(dir, 'b', f));
      expect(a.length, f).toBeGreaterThan(1 << 20);
      expect(a.equals(b), `${f} differs between two builds`).toBe(true);
    }
  }, 300_000);

  it('are an El Torito CD and an MBR disk with an active FAT16 partition, as a dynamic VHD of the raw disk', async () => {
    const cd = readFileSync(iso);
    // the boot record volume descriptor (sector 17) points at the catalog; its default entry is bootable,
    // no emulation, 4 sectors, and loads isolinux.bin (whose boot info table genisoimage filled in)
    const brvd = cd.subarray(17 * 2048, 18 * 2048);
    expect(brvd[0]).toBe(0);
    expect(brvd.toString('latin1', 7, 30)).toBe('EL TORITO SPECIFICATION');
    const catalog = cd.readUInt32LE(17 * 2048 + 0x47) * 2048;
    expect(cd[catalog]).toBe(1);
    expect([cd[catalog + 0x1e], cd[catalog + 0x1f]]).toEqual([0x55, 0xaa]);
    const entry = catalog + 32;
    expect(cd[entry]).toBe(0x88);
    expect(cd[entry + 1]).toBe(0); // no emulation
    expect(cd.readUInt16LE(entry + 6)).toBe(4);
    const image = cd.readUInt32LE(entry + 8);
    expect(cd.readUInt32LE(image * 2048 + 8)).toBe(16); // boot info table: the primary volume descriptor's LBA
    expect(cd.readUInt32LE(image * 2048 + 12)).toBe(image);

    // the files, read back through Rock Ridge and through Joliet (the date rewriting kept both intact)
    const isoinfo = async (...args: string[]) =>
      (await run('isoinfo', ['-i', iso, ...args], { encoding: 'buffer', maxBuffer: 1 << 24 })).stdout as Buffer;
    const kernel = readFileSync(KERNEL);
    const initrd = readFileSync(INITRD);
    for (const ext of ['-R', '-J']) {
      expect((await isoinfo(ext, '-x', '/boot/bzImage')).equals(kernel), `bzImage via ${ext}`).toBe(true);
      expect((await isoinfo(ext, '-x', '/boot/initramfs.cpio.gz')).equals(initrd), `initramfs via ${ext}`).toBe(true);
    }
    const cfg = (await isoinfo('-R', '-x', '/isolinux/isolinux.cfg')).toString('latin1');
    expect(cfg).toMatch(/^serial 0 115200$/m);
    expect(cfg).toMatch(/^\s*append console=ttyS0 console=tty0$/m);
    const listing = (await isoinfo('-R', '-l')).toString('latin1');
    expect(listing).toMatch(/isolinux\.bin/);
    expect(listing).not.toMatch(/ (?!Jan  1 2026)[A-Z][a-z]{2} [ \d]\d \d{4} /); // every date is SOURCE_DATE_EPOCH

    const disk = readFileSync(raw);
    expect(disk.length).toBe(65520 * 512);
    expect([disk[510], disk[511]]).toEqual([0x55, 0xaa]);
    const p = 446;
    expect(disk[p]).toBe(0x80);
    expect(disk[p + 4]).toBe(0x0e);
    expect(disk.readUInt32LE(p + 8)).toBe(2048);
    expect(disk.readUInt32LE(p + 12)).toBe(65520 - 2048);
    // CHS of the first and last sector, for 16 heads and 63 sectors per track
    expect([disk[p + 1], disk[p + 2], disk[p + 3]]).toEqual([0, 33, 2]);
    expect([disk[p + 5], disk[p + 6], disk[p + 7]]).toEqual([15, 63, 64]);
    const bpb = 2048 * 512;
    expect(disk.toString('latin1', bpb + 54, bpb + 62)).toBe('FAT16   ');
    expect(disk.readUInt32LE(bpb + 28)).toBe(2048); // hidden sectors = the partition's start
    expect(disk.toString('latin1', bpb + 3, bpb + 11)).toBe('SYSLINUX');
    // qemu-img reads the VHD as the raw disk (plus the zeros that round it up to a whole CHS geometry)
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', '-f', 'vpc', vhd])).stdout);
    expect(info['format-specific']?.data?.['subformat'] ?? 'dynamic').toBe('dynamic');
    const cmp = await run('qemu-img', ['compare', '-f', 'vpc', '-F', 'raw', vhd, raw]);
    expect(cmp.stdout).toMatch(/Images are identical/);
  });
});

// ---------------------------------------------------------------------------------------------------
// (b) the oracle: qemu-system-i386

interface Session {
  code: number | null;
  out: string;
}

/**
 * Runs qemu-system-i386 with COM1 on stdio and a console script: each [regex, text] waits for the
 * regex in the output (after the previous match) and types the text; `stop` ends the run when it matches.
 */
function qemuSession(args: string[], steps: [RegExp, string][], stop: RegExp | null, timeoutMs: number): Promise<Session> {
  const all = ['-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot', '-m', '128', '-accel', 'tcg', ...args];
  return new Promise((resolvePromise, reject) => {
    const p = spawn('qemu-system-i386', all, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let from = 0;
    let step = 0;
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.stdout.setEncoding('latin1').on('data', (d: string) => {
      out += d;
      while (step < steps.length) {
        const re = new RegExp(steps[step][0].source, steps[step][0].flags.replace('g', '') + 'g');
        re.lastIndex = from;
        const m = re.exec(out);
        if (!m) break;
        from = m.index + m[0].length;
        p.stdin.write(steps[step][1]);
        step++;
      }
      if (stop && stop.test(out)) p.kill('SIGKILL');
    });
    p.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, out });
    });
  });
}

const PROMPT_RE = PROMPT.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * The session on the guest's serial console, as [regex, text to type] pairs: at the prompt, the kernel
 * version, the command line the loader passed, and the size of the boot device as Linux's ata_piix
 * driver found it (/sys/block/DEV/size: sr0 for the CD, sda for the disk); then power off.
 */
function session(dev: 'sr0' | 'sda', sectors: number): [string, string][] {
  return [
    [PROMPT_RE, `uname -a; cat /proc/cmdline; cat /sys/block/${dev}/size\n`],
    [`^${sectors}\r?$`, 'poweroff -f\n'],
  ];
}

const commands = (dev: 'sr0' | 'sda', sectors: number): [RegExp, string][] =>
  session(dev, sectors).map(([re, send]) => [new RegExp(re, 'm'), send]);

/** what the session printed: the kernel, the append line both loaders pass, the device size */
function expectSession(out: string, dev: 'sr0' | 'sda', sectors: number): void {
  expect(out).toMatch(/Linux x86vm 6\.1\.192 #1 .* i686 GNU\/Linux/);
  expect(out).toMatch(/^BOOT_IMAGE=\/boot\/bzImage console=ttyS0 console=tty0 initrd=\/boot\/initramfs\.cpio\.gz\r?$/m);
  expect(out).toMatch(new RegExp(`cat /sys/block/${dev}/size\\r?\\n([^\\n]*\\n)*?${sectors}\\r?$`, 'm'));
}

describe('qemu-system-i386 (the oracle)', () => {
  it('boots the CD through ISOLINUX to a shell', async () => {
    const r = await qemuSession(['-cdrom', iso], commands('sr0', isoSectors), null, 180_000);
    expect(r.out).toMatch(ISOLINUX_BANNER);
    expect(r.out).toMatch(/Loading \/boot\/bzImage\.\.\. ?ok/);
    expect(r.out).toMatch(/Linux version 6\.1\.192/);
    expectSession(r.out, 'sr0', isoSectors);
    expect(r.code, r.out.slice(-2000)).toBe(0);
  }, 240_000);

  it('boots the disk through SYSLINUX to a shell', async () => {
    const r = await qemuSession(['-drive', `file=${vhd},format=vpc,snapshot=on`], commands('sda', vhdSectors), null, 180_000);
    expect(r.out).toMatch(SYSLINUX_BANNER);
    expect(r.out).not.toMatch(ISOLINUX_BANNER);
    expectSession(r.out, 'sda', vhdSectors);
    expect(r.code, r.out.slice(-2000)).toBe(0);
  }, 240_000);

  it('with both: boots the disk by default and the CD with -boot d', async () => {
    const both = ['-drive', `file=${vhd},format=vpc,snapshot=on`, '-cdrom', iso];
    const seen = /(ISO|SYS)LINUX 6\.04[\s\S]*Loading \/boot\/bzImage/;
    const byDefault = await qemuSession(both, [], seen, 120_000);
    expect(byDefault.out).toMatch(SYSLINUX_BANNER);
    expect(byDefault.out).not.toMatch(ISOLINUX_BANNER);
    const cdFirst = await qemuSession([...both, '-boot', 'd'], [], seen, 120_000);
    expect(cdFirst.out).toMatch(ISOLINUX_BANNER);
    expect(cdFirst.out).not.toMatch(SYSLINUX_BANNER);
  }, 300_000);
});

// ---------------------------------------------------------------------------------------------------
// (c) x86vm

interface X86Run {
  exitCode: number;
  message?: string;
  serial: string;
  /** the VGA text screen when the loader started loading the kernel */
  screenAtLoad: string[] | null;
  /** the VGA text screen at the end */
  screenAtEnd: string[] | null;
}

/**
 * x86vm run --bios bios.bin [--cdrom ISO] [--hda VHD] [--boot ORDER] with the VGA and a console script
 * ([regex, text to type] pairs), in deterministic mode. `stop` ends the run (status 0) once the serial
 * output matches it.
 */
async function x86vmSession(o: { cdrom?: string; hda?: string; boot?: string; script: [string, string][]; stop?: RegExp; timeout: number }): Promise<X86Run> {
  const args = ['--bios', BIOS, '--mem', '128M', '--deterministic', '--no-reboot', '--timeout', String(o.timeout)];
  // --bios brings the VGA with Debian's vgabios-stdvga.bin as its option ROM
  // the guest's writes stay in memory (--snapshot): the images are shared by the tests
  args.push('--snapshot');
  if (o.hda) args.push('--hda', o.hda);
  if (o.cdrom) args.push('--cdrom', o.cdrom);
  if (o.boot) args.push('--boot', o.boot);
  args.push(...scriptArgs(o.script));
  let vga: Vga | null = null;
  let vm: VmControl | null = null;
  let screenAtLoad: string[] | null = null;
  const r = await runInProcess(args, {
    onOutput: (serial) => {
      if (!screenAtLoad && /Loading \/boot\/bzImage/.test(serial)) screenAtLoad = vga?.text() ?? null;
      if (o.stop && o.stop.test(serial)) vm?.stop(0, 'seen what the test waits for');
    },
    onReady: (v) => {
      vm = v;
      vga = (v.machine.devices.find((d) => d instanceof Vga) as Vga | undefined) ?? null;
    },
  });
  const end = (vga as Vga | null)?.text() ?? null;
  return { exitCode: r.exitCode, message: r.message, serial: r.out, screenAtLoad, screenAtEnd: end };
}

function screen(lines: string[] | null): string {
  return (lines ?? []).join('\n');
}

describe('x86vm with SeaBIOS', () => {
  it('boots the CD through ISOLINUX: the banner on COM1 and on the VGA screen, Linux up, a command answered', async () => {
    const r = await x86vmSession({ cdrom: iso, script: session('sr0', isoSectors), timeout: 1500 });
    const tail = r.serial.slice(-3000);
    expect(r.serial, tail).toMatch(ISOLINUX_BANNER);
    expect(r.serial).toMatch(/Loading \/boot\/bzImage\.\.\. ?ok/);
    expect(r.serial).toMatch(/Linux version 6\.1\.192/);
    expect(r.exitCode, `${r.message}\n${tail}`).toBe(0);
    expectSession(r.serial, 'sr0', isoSectors);
    // SeaBIOS and ISOLINUX wrote the text screen through the VGA BIOS: SeaBIOS's banner, the boot
    // device, ISOLINUX's banner and its `say` line
    const s = screen(r.screenAtLoad);
    expect(s).toMatch(/SeaBIOS \(version 1\.16/);
    expect(s).toMatch(/Booting from DVD\/CD/);
    expect(s).toMatch(ISOLINUX_BANNER);
    expect(s).toMatch(/x86vm CD boot: loading \/boot\/bzImage/);
    // Linux's VGA console (console=tty0) took the screen over: the shell on tty1 shows its prompt
    expect(screen(r.screenAtEnd)).toMatch(/x86vm:\/#/);
  }, 1_600_000);

  it('boots the disk from IDE through SYSLINUX: banner, Linux up, a command answered', async () => {
    const r = await x86vmSession({ hda: vhd, script: session('sda', vhdSectors), timeout: 1500 });
    const tail = r.serial.slice(-3000);
    expect(r.serial, tail).toMatch(SYSLINUX_BANNER);
    expect(r.serial).not.toMatch(ISOLINUX_BANNER);
    expect(r.exitCode, `${r.message}\n${tail}`).toBe(0);
    expectSession(r.serial, 'sda', vhdSectors);
    const s = screen(r.screenAtLoad);
    expect(s).toMatch(/Booting from Hard Disk/);
    expect(s).toMatch(SYSLINUX_BANNER);
    expect(s).toMatch(/x86vm disk boot: loading \/boot\/bzImage/);
  }, 1_600_000);

  it('with both: boots the disk by default ("cad") and the CD with --boot d, as QEMU does', async () => {
    const loading = /(ISO|SYS)LINUX 6\.04[\s\S]*Loading \/boot\/bzImage/;
    const byDefault = await x86vmSession({ hda: vhd, cdrom: iso, script: [], stop: loading, timeout: 600 });
    expect(byDefault.exitCode, byDefault.message).toBe(0);
    expect(byDefault.serial).toMatch(SYSLINUX_BANNER);
    expect(byDefault.serial).not.toMatch(ISOLINUX_BANNER);
    expect(screen(byDefault.screenAtLoad)).toMatch(/Booting from Hard Disk/);
    const cdFirst = await x86vmSession({ hda: vhd, cdrom: iso, boot: 'd', script: [], stop: loading, timeout: 600 });
    expect(cdFirst.exitCode, cdFirst.message).toBe(0);
    expect(cdFirst.serial).toMatch(ISOLINUX_BANNER);
    expect(cdFirst.serial).not.toMatch(SYSLINUX_BANNER);
    expect(screen(cdFirst.screenAtLoad)).toMatch(/Booting from DVD\/CD/);
  }, 1_300_000);
});
