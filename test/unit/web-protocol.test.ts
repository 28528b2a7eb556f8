/**
 * The browser host's Worker protocol without a browser: web/vm-api.ts (the object web/worker.ts exposes
 * through comlink) driven directly in Node. It boots the default guest from its files (the kernel as a
 * Blob, as a picked file is; the initrd by URL from `npm run web`'s static server; a raw disk image by
 * URL through HTTP range requests), talks to the shell over the serial protocol, pauses and resumes,
 * powers off and power-cycles; and every kind of bad input gets its plain-words error. Also the pieces
 * the page relies on: the URL query and vm.json parsing, the Blob store, and the server's
 * MIME types and byte ranges.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openAsBlob, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { VmApi, snapshotName } from '../../web/vm-api';
import type { BootConfig, FrameUpdate, VmListener, VmStatus } from '../../web/protocol';
import { parseMemMiB, sizeText } from '../../web/protocol';
import { parseQuery, parseVmJson, configFromFolder, seabios, DEFAULT_APPEND } from '../../web/config';
import { BlobStore, WebOpener, loadWhole, openDiskStore } from '../../web/sources';
import { nasm } from '../helpers/asm';
import { diskInterfaces } from '../../web/disks';

const ROOT = resolve(__dirname, '..', '..');
const DEFAULT = join(ROOT, 'images', 'default');
const PROMPT = /x86vm:\/# /;
const SEABIOS_DIR = '/usr/share/seabios';

let server: ChildProcess;
let base = '';
let dir = '';

/** a sector-0 marker in the test disk, read back by the guest */
const DISK_MARK = 'X86VM-WEB-DISK-MARK';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'x86vm-web-'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title>\n');
  writeFileSync(join(dir, 'notakernel.bin'), 'this is a text file, not a kernel\n'.repeat(40));
  const qcow = new Uint8Array(1024 * 1024);
  qcow.set([0x51, 0x46, 0x49, 0xfb]); // "QFI\xfb"
  writeFileSync(join(dir, 'disk.qcow2'), qcow);
  const raw = new Uint8Array(4 * 1024 * 1024);
  raw.set(new TextEncoder().encode(DISK_MARK));
  writeFileSync(join(dir, 'disk.img'), raw);
  server = spawn(process.execPath, [join(ROOT, 'scripts', 'web.mjs'), '--no-build', '--out', dir, '--files', DEFAULT, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  base = await new Promise<string>((resolvePromise, reject) => {
    let out = '';
    server.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /http:\/\/127\.0\.0\.1:\d+\//.exec(out);
      if (m) resolvePromise(m[0]);
    });
    server.stderr!.on('data', (d: Buffer) => reject(new Error(`server: ${d}`)));
    server.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
});

afterAll(() => {
  server?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** a listener that keeps everything the worker reports */
class Recorder implements VmListener {
  serial = '';
  statuses: VmStatus[] = [];
  onSerial(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) this.serial += String.fromCharCode(bytes[i]);
  }
  onStatus(s: VmStatus): void {
    this.statuses.push(s);
  }
  /** resolves when the serial output after `from` matches `re` */
  async waitSerial(re: RegExp, from = 0, timeoutMs = 300_000): Promise<RegExpExecArray> {
    const t0 = Date.now();
    for (;;) {
      const m = re.exec(this.serial.slice(from));
      if (m) return m;
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${re}; output ends with:\n${this.serial.slice(-2000)}`);
      await sleep(100);
    }
  }
  async waitState(api: VmApi, state: VmStatus['state'], timeoutMs = 60_000): Promise<VmStatus> {
    const t0 = Date.now();
    for (;;) {
      const s = api.status();
      if (s.state === state) return s;
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for state ${state}; it is ${s.state}: ${s.message}`);
      await sleep(50);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const enc = (s: string) => new TextEncoder().encode(s);

/** a Multiboot (a.out kludge) kernel loaded at 1 MiB whose code is `code` */
function multiboot(code: number[], data: number[] = [], flags = 0x00010000): Uint8Array {
  const img = new Uint8Array(64 + data.length);
  const dv = new DataView(img.buffer);
  const magic = 0x1badb002;
  dv.setUint32(0, magic, true);
  dv.setUint32(4, flags, true);
  dv.setUint32(8, (-(magic + flags)) >>> 0, true);
  dv.setUint32(12, 0x100000, true); // header_addr
  dv.setUint32(16, 0x100000, true); // load_addr
  dv.setUint32(20, 0, true); // load_end_addr: the whole file
  dv.setUint32(24, 0, true); // bss_end_addr
  dv.setUint32(28, 0x100020, true); // entry
  img.set(code, 32);
  img.set(data, 64);
  return img;
}

/** lidt [a zero-limit IDT]; int3 → #GP → #DF → triple fault */
const TRIPLE_FAULT = multiboot([0x0f, 0x01, 0x1d, 0x40, 0x00, 0x10, 0x00, 0xcc, 0xeb, 0xfe], [0, 0, 0, 0, 0, 0]);
/** jmp $ (runs for ever) */
const SPIN = multiboot([0xeb, 0xfe]);

/** writes "HELLO VGA" (white on blue) to the text screen, then copies keyboard bytes from the i8042 to COM1 */
const VGA_KBD_SRC = `
bits 32
org 0x100000
header:
  dd 0x1BADB002, 0x00010000, -(0x1BADB002 + 0x00010000)
  dd header, header, 0, 0, start
start:
  mov edi, 0xb8000
  mov esi, msg
.c:
  lodsb
  test al, al
  jz .kbd
  mov ah, 0x1f
  stosw
  jmp .c
.kbd:
  in al, 0x64
  test al, 1
  jz .kbd
  in al, 0x60
  mov dx, 0x3f8
  out dx, al
  jmp .kbd
msg: db 'HELLO VGA', 0
`;
const VGA_KBD = nasm(VGA_KBD_SRC);

/** reads the TSC in a loop: each RDTSC asks the machine clock for the time */
const TSC_LOOP = multiboot([0x0f, 0x31, 0xeb, 0xfc]);

/** a Multiboot kernel that echoes COM1 input upper-cased, counting the bytes in a word at 0x200000 */
const ECHO = nasm(`
bits 32
org 0x100000
header:
  dd 0x1BADB002, 0x00010000, -(0x1BADB002 + 0x00010000)
  dd header, header, 0, 0, start
start:
  mov dx, 0x3fd
.wait:
  in al, dx
  test al, 1
  jz .wait
  mov dx, 0x3f8
  in al, dx
  inc dword [0x200000]
  cmp al, 'a'
  jb .out
  cmp al, 'z'
  ja .out
  sub al, 32
.out:
  mov bl, al
  mov dx, 0x3fd
.tx:
  in al, dx
  test al, 0x20
  jz .tx
  mov al, bl
  mov dx, 0x3f8
  out dx, al
  mov dx, 0x3fd
  jmp .wait
`);

describe('web: the worker API boots the default guest', () => {
  it('boots from a Blob and a URL, answers on the serial console, reads disks by URL (virtio-blk, IDE), pauses, resumes, powers off, power-cycles', async () => {
    const api = new VmApi();
    const rec = new Recorder();
    api.setListener(rec);
    try {
      const kernel = await openAsBlob(join(DEFAULT, 'bzImage'));
      const config: BootConfig = {
        label: 'default guest',
        kernel: { blob: kernel, name: 'bzImage' },
        initrd: { url: 'files/initramfs.cpio.gz' },
        append: DEFAULT_APPEND,
        // the same image twice: on virtio-blk, and on the default controller (IDE: /dev/sda)
        disks: [{ source: { url: 'disk.img' }, interface: 'virtio-blk' }, { source: { url: 'disk.img' } }],
      };
      const booted = await api.boot(config, base);
      expect(booted.state).toBe('running');
      expect(booted.label).toBe('default guest');
      expect(booted.memMiB).toBe(128);
      await rec.waitSerial(/Linux version 6\.1/);
      await rec.waitSerial(PROMPT);
      // output arrives in batches, not byte by byte
      expect(rec.serial.length).toBeGreaterThan(2000);

      // the disk given by URL: sector 0 holds the marker; a write goes to the overlay and reads back
      let from = rec.serial.length;
      api.serialInput(enc('for d in vda sda; do dd if=/dev/$d bs=512 count=1 2>/dev/null | head -c 19; echo " on $d"; done; echo DONE1\n'));
      await rec.waitSerial(/DONE1\r?\n[\s\S]*x86vm:\/# /, from);
      expect(rec.serial.slice(from)).toContain(`${DISK_MARK} on vda\r\n`);
      expect(rec.serial.slice(from)).toContain(`${DISK_MARK} on sda\r\n`);
      from = rec.serial.length;
      api.serialInput(enc('echo written-by-guest | dd of=/dev/vda bs=512 seek=8 conv=sync 2>/dev/null; sync; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -c 16; echo; echo DONE2\n'));
      await rec.waitSerial(/DONE2\r?\n[\s\S]*x86vm:\/# /, from);
      expect(rec.serial.slice(from)).toContain('written-by-guest\r\n');
      // a machine with disks cannot be saved yet (the snapshot would lack the disks' changes): said, and it runs on
      await expect(api.saveSnapshot()).rejects.toThrow(/^snapshots of a machine with disks are not supported yet/);
      expect(api.status().state).toBe('running');
      // the image on the server is untouched
      const onServer = new Uint8Array(await (await fetch(`${base}disk.img`, { headers: { range: 'bytes=4096-4111' } })).arrayBuffer());
      expect([...onServer]).toEqual(new Array(16).fill(0));

      // pause: the CPU and guest time stand still, input waits
      const paused = await api.pause();
      expect(paused.state).toBe('paused');
      expect(paused.mips).toBe(0);
      const s1 = api.status();
      from = rec.serial.length;
      api.serialInput(enc('echo $((6*7))\n'));
      await sleep(400);
      const s2 = api.status();
      expect(s2.instructions).toBe(s1.instructions);
      expect(s2.guestSeconds).toBe(s1.guestSeconds);
      expect(rec.serial.length).toBe(from);

      // resume: the typed command runs
      const resumed = await api.resume();
      expect(resumed.state).toBe('running');
      await rec.waitSerial(/\r\n42\r\n/, from);
      expect(api.status().instructions).toBeGreaterThan(s1.instructions);
      expect(api.status().guestSeconds).toBeGreaterThan(s1.guestSeconds);

      // power off
      api.serialInput(enc('poweroff -f\n'));
      const off = await rec.waitState(api, 'stopped');
      expect(off.message).toBe('The guest powered off.');
      expect(rec.statuses.some((s) => s.state === 'running' && s.mips > 0)).toBe(true);

      // Reset power-cycles: the same files boot again (the kernel banner appears a second time)
      from = rec.serial.length;
      const again = await api.reset();
      expect(again.state).toBe('running');
      expect(again.instructions).toBeLessThan(s1.instructions);
      await rec.waitSerial(/Linux version 6\.1/, from);
    } finally {
      await api.dispose();
    }
    expect(api.status().state).toBe('idle');
  });
});

describe('web: the screen and the PS/2 keyboard', () => {
  it('sends the VGA frame as changed rectangles of RGBA pixels, and keys to the i8042', async () => {
    const api = new VmApi();
    const frames: FrameUpdate[] = [];
    const rec = new Recorder();
    api.setListener({ onFrame: (f) => frames.push(f), onSerial: (b) => rec.onSerial(b) });
    try {
      const s = await api.boot({ kernel: { bytes: VGA_KBD, name: 'vga.bin' }, memMiB: 8, vga: true });
      expect(s.display).toBe(true);
      const lit = (): number => {
        let n = 0;
        for (const f of frames) {
          for (const r of f.rects) {
            expect(r.pixels.length).toBe(r.w * r.h * 4);
            for (let i = 0; i < r.pixels.length; i += 4) if (r.pixels[i + 2] > 100 && r.pixels[i] < 50) n++;
          }
        }
        return n;
      };
      for (let i = 0; i < 100 && lit() === 0; i++) await sleep(50);
      // blue background behind the nine characters, on a text screen
      expect(lit()).toBeGreaterThan(9 * 8 * 8);
      const last = frames.at(-1)!;
      expect(last.width).toBeGreaterThanOrEqual(640);
      expect(last.height).toBe(400);
      // the same screen as text
      const text = api.screenText()!;
      expect(text).toHaveLength(25);
      expect(text[0]).toBe('HELLO VGA');
      expect(text.slice(1).every((row) => row === '')).toBe(true);
      api.key('KeyA', true);
      api.key('KeyA', false);
      await rec.waitSerial(/\x1e\x9e/, 0, 20_000);
      // a page that attaches again gets the whole screen
      const again: FrameUpdate[] = [];
      api.setListener({ onFrame: (f) => again.push(f) });
      expect(again.length).toBe(1);
      expect(again[0].rects.reduce((n, r) => n + r.w * r.h, 0)).toBe(again[0].width * again[0].height);
      // no display: no frames
      const plain = await api.boot({ kernel: { bytes: SPIN, name: 'spin.bin' }, memMiB: 8 });
      expect(plain.display).toBe(false);
      expect(api.screenText()).toBeNull();
      await api.shutdown();
      expect(api.screenText()).toBeNull();
    } finally {
      await api.dispose();
    }
  });
});

describe('web: booting through SeaBIOS', () => {
  const bios = new Uint8Array(readFileSync(join(SEABIOS_DIR, 'bios.bin')));
  const vgaBios = new Uint8Array(readFileSync(join(SEABIOS_DIR, 'vgabios-stdvga.bin')));
  /** a disk and a CD-ROM that SeaBIOS finds but cannot boot (blank) */
  const blanks = (): BootConfig['disks'] => [
    { source: { bytes: new Uint8Array(1 << 20), name: 'blank.img' }, format: 'raw', interface: 'ide' },
    { source: { bytes: new Uint8Array(1 << 20), name: 'blank.cd' }, format: 'raw', interface: 'ide', media: 'cdrom', readOnly: true },
  ];

  async function waitScreen(api: VmApi, re: RegExp, timeoutMs = 120_000): Promise<string> {
    const t0 = Date.now();
    for (;;) {
      const text = (api.screenText() ?? []).join('\n');
      if (re.test(text)) return text;
      if (Date.now() - t0 > timeoutMs) throw new Error(`the screen never showed ${re}; it shows:\n${text}`);
      await sleep(50);
    }
  }

  it('the VGA BIOS draws SeaBIOS\'s screen (without it the screen stays blank); the boot order decides which drive is tried first', async () => {
    const api = new VmApi();
    try {
      // QEMU's default order "cad": the hard disk, then the CD
      const s = await api.boot({ bios: { bytes: bios, name: 'bios.bin' }, vgaBios: { bytes: vgaBios, name: 'vgabios-stdvga.bin' }, memMiB: 16, deterministic: true, disks: blanks() });
      expect(s.display).toBe(true);
      const banner = await waitScreen(api, /SeaBIOS \(version /);
      const bannerAt = api.status().instructions;
      expect(banner.split('\n')[0]).toMatch(/^SeaBIOS \(version 1\.16/);
      const byDefault = await waitScreen(api, /No bootable device\./);
      expect(byDefault).toMatch(/Booting from Hard Disk\.\.\.\nBoot failed: not a bootable disk\n\nBooting from DVD\/CD\.\.\.\nBoot failed: Could not read from CDROM/);

      // "dc": the CD first (letters checked and lower-cased as QEMU does)
      await api.boot({ bios: { bytes: bios, name: 'bios.bin' }, vgaBios: { bytes: vgaBios, name: 'v' }, bootOrder: 'DC', memMiB: 16, deterministic: true, disks: blanks() });
      const cdFirst = await waitScreen(api, /No bootable device\./);
      expect(cdFirst).toMatch(/Booting from DVD\/CD\.\.\.\nBoot failed: Could not read from CDROM \(code \d+\)\nBooting from Hard Disk\.\.\.\nBoot failed: not a bootable disk/);

      // no VGA BIOS: the VGA is there, but nothing draws on it
      const bare = await api.boot({ bios: { bytes: bios, name: 'bios.bin' }, memMiB: 16, deterministic: true, disks: blanks() });
      expect(bare.display).toBe(true);
      for (let i = 0; i < 1200 && api.status().instructions < 3 * bannerAt; i++) await sleep(50);
      expect(api.status().instructions).toBeGreaterThanOrEqual(3 * bannerAt);
      expect((api.screenText() ?? []).join('')).toBe('');
    } finally {
      await api.dispose();
    }
  });

  it('explains bad firmware input: a VGA BIOS that is not an option ROM, a bad boot order, SeaBIOS not served', async () => {
    const api = new VmApi();
    try {
      const fw = { bytes: bios, name: 'bios.bin' };
      await expect(api.boot({ bios: fw, vgaBios: { bytes: new Uint8Array(4096), name: 'zero.rom' } })).rejects.toThrow(
        "VGA BIOS 'zero.rom': not an option ROM (it does not start with the bytes 55 AA)",
      );
      const huge = new Uint8Array(300 * 1024);
      huge.set([0x55, 0xaa]);
      await expect(api.boot({ bios: fw, vgaBios: { bytes: huge, name: 'huge.rom' } })).rejects.toThrow(/^VGA BIOS 'huge\.rom': an option ROM is 512 bytes to 256 KiB; this file is 307200 bytes$/);
      await expect(api.boot({ bios: fw, vgaBios: { bytes: vgaBios, name: 'v.rom' }, vga: false })).rejects.toThrow(/a VGA BIOS \('v\.rom'\) needs the VGA display/);
      await expect(api.boot({ bios: fw, bootOrder: 'cx' })).rejects.toThrow(/^boot order 'cx': Invalid boot device 'x'/);
      await expect(api.boot({ bios: fw, bootOrder: 'cdc' })).rejects.toThrow(/^boot order 'cdc': Boot device 'c' was given twice$/);
      // the page's SeaBIOS, from a server that was built without Debian's seabios package
      await expect(api.boot({ ...seabios() }, base)).rejects.toThrow(
        /^could not download firmware http:\/\/127\.0\.0\.1:\d+\/bios\.bin: not found \(HTTP 404\); SeaBIOS is served with the page only when .*apt-get install seabios/,
      );
      expect(api.status().state).toBe('error');
    } finally {
      await api.dispose();
    }
  });
});

describe('web: time in a browser', () => {
  it("keeps guest time moving with a browser's coarse clock (performance.now in 100 µs steps, as Chromium gives a page)", async () => {
    const real = performance.now.bind(performance);
    const spy = vi.spyOn(performance, 'now').mockImplementation(() => Math.floor(real() * 10) / 10);
    const api = new VmApi();
    try {
      await api.boot({ kernel: { bytes: TSC_LOOP, name: 'tsc.bin' }, memMiB: 8 });
      const t0 = real();
      await sleep(1500);
      const s = await api.pause();
      const wall = (real() - t0) / 1000;
      // guest time runs at most 20 ns an instruction while the CPU is busy, and never faster than the
      // host's clock; with a coarse host clock it must still follow the host, not stall
      const bound = Math.min(wall, (s.instructions * 20) / 1e9);
      expect(s.guestSeconds).toBeGreaterThan(bound * 0.5);
    } finally {
      await api.dispose();
      spy.mockRestore();
    }
  });
});

describe('web: the worker API explains bad input in plain words', () => {
  async function bootError(config: BootConfig, re: RegExp): Promise<VmStatus> {
    const api = new VmApi();
    const rec = new Recorder();
    api.setListener(rec);
    try {
      await expect(api.boot(config, base)).rejects.toThrow(re);
      const s = api.status();
      expect(s.state).toBe('error');
      expect(s.message).toMatch(re);
      return s;
    } finally {
      await api.dispose();
    }
  }

  it('a kernel URL that is not there (HTTP 404), or a server that cannot be reached', async () => {
    await bootError({ kernel: { url: 'missing/bzImage' } }, /^could not download kernel http:\/\/127\.0\.0\.1:\d+\/missing\/bzImage: not found \(HTTP 404\)$/);
    await bootError({ kernel: { url: 'http://127.0.0.1:1/bzImage' } }, /could not download kernel http:\/\/127\.0\.0\.1:1\/bzImage: the server could not be reached/);
    await bootError({ kernel: { url: 'files/bzImage' }, initrd: { url: 'nope.gz' } }, /^could not download initrd http:\/\/127\.0\.0\.1:\d+\/nope\.gz: not found \(HTTP 404\)$/);
  });

  it('a file that is not a kernel, an empty file, an initrd for a non-Linux kernel', async () => {
    await bootError({ kernel: { url: 'notakernel.bin' } }, /^'notakernel\.bin' is not a kernel this machine can boot: it is neither a Linux bzImage nor a Multiboot kernel$/);
    const blob = await openAsBlob(join(dir, 'notakernel.bin'));
    await bootError({ kernel: { blob, name: 'picked.bin' } }, /^'picked\.bin' is not a kernel this machine can boot/);
    await bootError({ kernel: { bytes: new Uint8Array(0), name: 'empty' } }, /^kernel 'empty' is an empty file$/);
    await bootError({ kernel: { bytes: SPIN, name: 'spin.elf' }, initrd: { bytes: new Uint8Array(16), name: 'i' } }, /'spin\.elf' is not a Linux kernel, and only a Linux kernel takes an initrd/);
    // a Multiboot kernel asking for something the loader does not provide (header flag bit 7)
    await bootError({ kernel: { bytes: multiboot([0xeb, 0xfe], [], 0x00010080), name: 'odd' } }, /^kernel 'odd': the kernel requires Multiboot features/);
  });

  it('nothing to boot, an initrd alone, an impossible memory size, a firmware image of the wrong size', async () => {
    await bootError({}, /^nothing to boot: give a kernel/);
    await bootError({ initrd: { url: 'files/initramfs.cpio.gz' }, bios: { bytes: new Uint8Array(65536), name: 'b' } }, /an initrd needs a kernel/);
    await bootError({ kernel: { bytes: SPIN, name: 'k' }, memMiB: 4096 }, /^memory size 4096 MiB is not possible: give a whole number of MiB from 1 to 1984$/);
    await bootError({ kernel: { bytes: SPIN, name: 'k' }, memMiB: 0 }, /memory size 0 MiB is not possible/);
    await bootError({ bios: { bytes: new Uint8Array(1000), name: 'bios.bin' } }, /^firmware 'bios\.bin': a BIOS image must be 64, 128, 192 or 256 KiB/);
  });

  it('disk images: a format x86vm does not read, an unknown format, a missing URL', async () => {
    const kernel = { bytes: SPIN, name: 'k' };
    await bootError({ kernel, disks: [{ source: { url: 'disk.qcow2' } }] }, /^disk image .*disk\.qcow2: this is a qcow image, which x86vm does not read/);
    await bootError({ kernel, disks: [{ source: { url: 'disk.img' }, format: 'qcow2' }] }, /unknown image format 'qcow2'/);
    await bootError({ kernel, disks: [{ source: { url: 'gone.vhd' } }] }, /^could not open disk image http:\/\/127\.0\.0\.1:\d+\/gone\.vhd: .*404/);
    const five = Array.from({ length: 5 }, () => ({ source: { url: 'disk.img' }, interface: 'ide' as const }));
    await bootError({ kernel, disks: five }, /^disk '.*disk\.img': all four IDE slots are taken$/);
    expect(diskInterfaces().sort()).toEqual(['ide', 'virtio-blk', 'virtio-scsi']);
  });

  it('a corrupt snapshot, a snapshot that cannot be fetched', async () => {
    const api = new VmApi();
    const rec = new Recorder();
    api.setListener(rec);
    try {
      await api.boot({ kernel: { bytes: ECHO, name: 'echo.bin' }, memMiB: 8 });
      api.serialInput(enc('abc'));
      await rec.waitSerial(/ABC/);
      const file = await api.saveSnapshot();
      expect(api.status().state).toBe('running');
      const corrupt = file.bytes.slice();
      corrupt[corrupt.length - 100] ^= 0x55;
      await expect(api.restoreSnapshot({ bytes: corrupt, name: 'bad.snap' })).rejects.toThrow(/^cannot restore snapshot 'bad\.snap': section '.*': checksum mismatch \(the file is corrupted\)$/);
      const n = file.bytes.length;
      await expect(api.restoreSnapshot({ bytes: file.bytes.subarray(0, n - 10), name: 'short.snap' })).rejects.toThrow(
        new RegExp(`^cannot restore snapshot 'short\\.snap': truncated: ${n - 10} bytes of ${n} bytes$`),
      );
      // the machine that ran keeps running
      expect(api.status()).toMatchObject({ state: 'running', label: 'echo.bin' });
    } finally {
      await api.dispose();
    }
  });

  it('saves a snapshot and restores it in another worker: the guest goes on where it was', async () => {
    const api = new VmApi();
    const rec = new Recorder();
    api.setListener(rec);
    let file: { name: string; bytes: Uint8Array };
    let savedAt: number;
    try {
      await api.boot({ kernel: { bytes: ECHO, name: 'echo.bin' }, memMiB: 8 });
      api.serialInput(enc('hello'));
      await rec.waitSerial(/HELLO/);
      await api.pause();
      savedAt = api.status().instructions;
      file = await api.saveSnapshot();
      expect(file.name).toMatch(/^x86vm-\d{8}-\d{6}\.snap$/);
      expect(api.status().state).toBe('paused');
      expect(api.status().instructions).toBe(savedAt);
    } finally {
      await api.dispose();
    }
    const other = new VmApi();
    const rec2 = new Recorder();
    other.setListener(rec2);
    try {
      const s = await other.restoreSnapshot({ bytes: file.bytes, name: file.name });
      expect(s).toMatchObject({ state: 'running', label: `snapshot ${file.name}`, memMiB: 8 });
      expect(s.instructions).toBeGreaterThanOrEqual(savedAt);
      other.serialInput(enc('again'));
      await rec2.waitSerial(/AGAIN/);
      expect(rec2.serial).toBe('AGAIN');
      // the guest's byte counter went on from the snapshot: 5 + 5, saved again and restored again
      const again = await other.saveSnapshot();
      const third = new VmApi();
      try {
        await third.restoreSnapshot({ bytes: again.bytes, name: again.name });
        await third.pause();
        const pc = (third as unknown as { vm: { pc: { mem: { mem32: Int32Array } } } }).vm.pc;
        expect(pc.mem.mem32[0x200000 / 4]).toBe(10);
        const { parseSnapshot } = await import('../../core/snapshot');
        expect(parseSnapshot(again.bytes).meta.origin).toMatchObject({ label: 'echo.bin', kernel: 'echo.bin' });
      } finally {
        await third.dispose();
      }
      // Reset has nothing to boot on a machine that came from a snapshot in a fresh worker
      await expect(other.reset()).rejects.toThrow(/restored from a snapshot/);
    } finally {
      await other.dispose();
    }
  });

  it('snapshot input errors: garbage, a missing URL, nothing to save or reset', async () => {
    const api = new VmApi();
    try {
      await expect(api.restoreSnapshot({ bytes: enc('not a snapshot at all'), name: 'junk.snap' })).rejects.toThrow(
        /^cannot restore snapshot 'junk\.snap': not an x86vm snapshot \(wrong magic number\)$/,
      );
      expect(api.status().state).toBe('error');
      await expect(api.restoreSnapshot({ url: 'missing.snap' }, base)).rejects.toThrow(
        /^cannot restore snapshot 'missing\.snap': could not download snapshot .*not found \(HTTP 404\)/,
      );
      await expect(api.saveSnapshot()).rejects.toThrow(/there is no machine to save/);
      await expect(api.reset()).rejects.toThrow(/nothing has been booted yet/);
    } finally {
      await api.dispose();
    }
  });

  it('a guest triple fault stops with a message; Reset boots it again; a failed boot leaves the running machine alone', async () => {
    const api = new VmApi();
    const rec = new Recorder();
    api.setListener(rec);
    try {
      await api.boot({ kernel: { bytes: TRIPLE_FAULT, name: 'crash.bin' } });
      const s = await rec.waitState(api, 'error', 20_000);
      expect(s.message).toMatch(/^The guest crashed \(triple fault: .*, at CS:EIP=[0-9a-f]{4}:[0-9a-f]{8}\)\. Press Reset to boot it again\.$/);
      expect(rec.statuses.at(-1)?.state).toBe('error');
      await api.reset();
      await rec.waitState(api, 'error', 20_000);

      const spinning = await api.boot({ kernel: { bytes: SPIN, name: 'spin.bin' } });
      expect(spinning.state).toBe('running');
      await expect(api.boot({ kernel: { url: 'missing/bzImage' } }, base)).rejects.toThrow(/not found \(HTTP 404\)/);
      const after = api.status();
      expect(after.state).toBe('running');
      expect(after.label).toBe('spin.bin');
      const n = after.instructions;
      await sleep(200);
      expect(api.status().instructions).toBeGreaterThan(n);
    } finally {
      await api.dispose();
    }
  });
});

describe('web: page configuration', () => {
  it('reads the URL query: default guest, kernel + initrd + append + mem, disks, snapshot, errors', () => {
    const d = parseQuery('');
    expect(d.autostart).toBe(true);
    expect(d.snapshot).toBeNull();
    expect(d.boot).toEqual({ label: 'default guest', kernel: { url: 'bzImage' }, initrd: { url: 'initramfs.cpio.gz' }, append: 'console=ttyS0' });
    expect(parseQuery('?append=console%3DttyS0+quiet').boot?.append).toBe('console=ttyS0 quiet');

    const k = parseQuery('?kernel=https://h/k/vmlinuz%201&initrd=i.gz&append=root%3D/dev/vda&mem=1G&disk=a.vhd&disk=b.vdi&cdrom=c.iso&if=virtio-blk&boot=0');
    expect(k.autostart).toBe(false);
    expect(k.boot).toEqual({
      label: 'vmlinuz 1',
      kernel: { url: 'https://h/k/vmlinuz 1', name: 'vmlinuz 1' },
      initrd: { url: 'i.gz', name: 'i.gz' },
      append: 'root=/dev/vda',
      memMiB: 1024,
      disks: [
        { source: { url: 'a.vhd' }, interface: 'virtio-blk', format: undefined },
        { source: { url: 'b.vdi' }, interface: 'virtio-blk', format: undefined },
        { source: { url: 'c.iso' }, interface: 'virtio-blk', media: 'cdrom', readOnly: true },
      ],
    });
    expect(parseQuery('?snapshot=s.snap')).toEqual({ boot: null, snapshot: { url: 's.snap' }, autostart: true });
    expect(parseQuery('?deterministic=1&mem=64').boot).toMatchObject({ deterministic: true, memMiB: 64, label: 'default guest' });

    expect(() => parseQuery('?kernal=x')).toThrow("unknown parameter 'kernal' in the page's address");
    expect(() => parseQuery('?mem=lots')).toThrow("parameter 'mem': 'lots' is not a memory size (write e.g. 128, 128M or 1G)");
    expect(() => parseQuery('?mem=1&mem=2')).toThrow("parameter 'mem' is given 2 times");
    expect(() => parseQuery('?initrd=x')).toThrow("parameter 'initrd' needs a 'kernel'");
    expect(() => parseQuery('?if=scsi')).toThrow("parameter 'if=scsi' should be one of virtio-blk, ide, virtio-scsi");
    expect(() => parseQuery('?snapshot=s&kernel=k')).toThrow("give either 'snapshot' or 'kernel'/'bios'");
    expect(() => parseQuery('?boot=maybe')).toThrow("parameter 'boot=maybe' should be 1 or 0");
  });

  it('reads the URL query for a firmware boot: bios=1 (SeaBIOS beside the page), bios=URL, vgabios, bootorder', () => {
    const cd = parseQuery('?bios=1&cdrom=boot.iso');
    expect(cd.boot).toMatchObject({
      label: 'SeaBIOS: boot.iso',
      bios: { url: 'bios.bin', name: 'SeaBIOS' },
      vgaBios: { url: 'vgabios-stdvga.bin' },
      append: '',
      disks: [{ source: { url: 'boot.iso' }, media: 'cdrom', readOnly: true }],
    });
    expect(cd.boot!.kernel).toBeUndefined();
    expect(cd.boot!.bios).toEqual(seabios().bios);
    expect(parseQuery('?bios=seabios').boot).toMatchObject({ label: 'SeaBIOS', bios: { url: 'bios.bin' } });
    expect(parseQuery('?bios=1&disk=d.vhd&cdrom=c.iso&bootorder=dc').boot).toMatchObject({ label: 'SeaBIOS: d.vhd', bootOrder: 'dc' });
    const own = parseQuery('?bios=fw/my.bin&vgabios=fw/vga.rom&bootorder=D');
    expect(own.boot).toEqual({ label: 'my.bin', bios: { url: 'fw/my.bin', name: 'my.bin' }, vgaBios: { url: 'fw/vga.rom', name: 'vga.rom' }, bootOrder: 'd', append: '' });

    expect(() => parseQuery('?bios=')).toThrow("parameter 'bios' needs an address, or 1 for SeaBIOS");
    expect(() => parseQuery('?vgabios=v.rom')).toThrow("parameter 'vgabios' needs a 'bios'");
    expect(() => parseQuery('?bios=1&vgabios=v.rom')).toThrow("parameter 'vgabios' goes with 'bios=URL'");
    expect(() => parseQuery('?bootorder=d')).toThrow("parameter 'bootorder' needs a 'bios'");
    expect(() => parseQuery('?bios=1&bootorder=x')).toThrow(/^parameter 'bootorder=x': Invalid boot device 'x'/);
    expect(() => parseQuery('?bios=1&bootorder=cdc')).toThrow("parameter 'bootorder=cdc': Boot device 'c' was given twice");
    expect(() => parseQuery('?bios=1&snapshot=s.snap')).toThrow("give either 'snapshot' or 'kernel'/'bios'");
  });

  it('parses memory sizes and prints byte counts', () => {
    expect(parseMemMiB('128')).toBe(128);
    expect(parseMemMiB('256M')).toBe(256);
    expect(parseMemMiB('1G')).toBe(1024);
    expect(parseMemMiB('512MiB')).toBe(512);
    expect(parseMemMiB('1.5')).toMatch(/not a whole number/);
    expect(parseMemMiB('12 parsecs')).toMatch(/not a memory size/);
    expect(sizeText(512)).toBe('512 B');
    expect(sizeText(3 * 1024 * 1024 + 300 * 1024)).toBe('3.3 MiB');
    expect(sizeText(200 * 1024 * 1024)).toBe('200 MiB');
    expect(snapshotName(new Date(2025, 0, 2, 3, 4, 5))).toBe('x86vm-20250102-030405.snap');
  });

  it('reads a VM folder: vm.json with kernel, disks and CD-ROM, paths relative to it; names the field at fault', async () => {
    const b = (s: string) => new Blob([s]);
    const files = [
      { path: 'myvm/vm.json', blob: b(JSON.stringify({ version: 1, name: 'demo', memory: '256M', cpu: { apic: false }, firmware: { kernel: 'boot/vmlinuz', initrd: 'boot/initrd', append: 'quiet' }, disks: [{ file: 'disk.vhd', interface: 'virtio-blk' }, { file: 'ro.img', readOnly: true }], cdrom: 'cd.iso' })) },
      { path: 'myvm/boot/vmlinuz', blob: b('k') },
      { path: 'myvm/boot/initrd', blob: b('i') },
      { path: 'myvm/disk.vhd', blob: b('d') },
      { path: 'myvm/ro.img', blob: b('r') },
      { path: 'myvm/cd.iso', blob: b('c') },
    ];
    const cfg = await configFromFolder(files);
    expect(cfg.label).toBe('demo');
    expect(cfg.memMiB).toBe(256);
    expect(cfg.apic).toBe(false);
    expect(cfg.append).toBe('quiet');
    expect(cfg.kernel).toMatchObject({ name: 'boot/vmlinuz' });
    expect(await (cfg.kernel as { blob: Blob }).blob.text()).toBe('k');
    expect(cfg.disks?.map((d) => [(d.source as { name: string }).name, d.interface, d.media, d.readOnly])).toEqual([
      ['disk.vhd', 'virtio-blk', undefined, undefined],
      ['ro.img', undefined, undefined, true],
      ['cd.iso', undefined, 'cdrom', true],
    ]);
    expect([...cfg.files!.keys()].sort()).toEqual(['boot/initrd', 'boot/vmlinuz', 'cd.iso', 'disk.vhd', 'ro.img', 'vm.json']);

    const m = new Map<string, Blob>();
    expect(parseVmJson('{"version":1}', 'vm.json', m)).toMatchObject({ label: 'default guest', kernel: { url: 'bzImage' } });
    expect(() => parseVmJson('{"version":1,"memroy":"1G"}', 'x/vm.json', m)).toThrow("x/vm.json: field 'memroy': unknown field");
    expect(() => parseVmJson('{"version":2}', 'vm.json', m)).toThrow("vm.json: field 'version': expected 1");
    expect(() => parseVmJson('{"version":1,"firmware":{"kernel":"nope"}}', 'vm.json', m)).toThrow("vm.json: field 'firmware.kernel': 'nope' is not in the folder picked");
    expect(() => parseVmJson('{"version":1,"disks":[{"file":"a","interface":"scsi"}]}', 'vm.json', new Map([['a', b('')]]))).toThrow(
      "vm.json: field 'disks[0].interface': expected one of virtio-blk, ide, virtio-scsi",
    );
    expect(() => parseVmJson('{"version":1,', 'vm.json', m)).toThrow(/^vm\.json: not valid JSON/);
    await expect(configFromFolder([{ path: 'a/b.txt', blob: b('') }])).rejects.toThrow('the folder picked holds no vm.json');
  });
});

describe('web: sources and the static server', () => {
  it('BlobStore reads ranges lazily, zero-fills past the end, refuses writes; WebOpener finds parents', async () => {
    const bytes = new Uint8Array(3000).map((_, i) => i & 0xff);
    const store = new BlobStore('disk.img', new Blob([bytes]));
    expect(store.size()).toBe(3000);
    const buf = new Uint8Array(1024);
    await store.read(2500, buf);
    expect([...buf.subarray(0, 500)]).toEqual([...bytes.subarray(2500)]);
    expect(buf.subarray(500).every((b) => b === 0)).toBe(true);
    await expect(store.write()).rejects.toThrow('disk.img: the file is read-only');

    const opener = new WebOpener(new Map([['vm/base.vhd', new Blob([bytes])]]), 'http://h/p/');
    expect(opener.resolve('base.vhd', 'vm/child.vhd')).toBe('vm/base.vhd');
    expect(opener.resolve('..\\x\\base.vhd', 'vm/child.vhd')).toBe('x/base.vhd');
    expect(opener.resolve('base.vhd', 'http://h/img/child.vhd')).toBe('http://h/img/base.vhd');
    expect(await opener.exists('base.vhd', 'vm/child.vhd')).toBe(true);
    expect(await opener.exists('C:\\Users\\me\\base.vhd', 'vm/child.vhd')).toBe(false);
    expect((await opener.open('base.vhd', { readOnly: true, relativeTo: 'vm/child.vhd' })).size()).toBe(3000);
    await expect(opener.open('other.vhd', { readOnly: true, relativeTo: 'vm/c.vhd' })).rejects.toThrow(/vm\/other\.vhd: no such file among the files picked/);
    await expect(opener.open('base.vhd', { readOnly: false, relativeTo: 'vm/c.vhd' })).rejects.toThrow(/cannot write to an image file/);

    expect(await loadWhole({ blob: new Blob([bytes]), name: 'b' }, 'kernel')).toEqual(bytes);
  });

  it("reads disks by URL with a browser's fetch, which must not be called as a method of another object", async () => {
    const real = globalThis.fetch;
    // a browser's fetch called with `this` other than the global object throws (Chromium: "Illegal invocation")
    const strict = function (this: unknown, input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
      if (this !== undefined && this !== globalThis) throw new TypeError("Failed to execute 'fetch' on 'WorkerGlobalScope': Illegal invocation");
      return real(input, init);
    };
    expect(() => strict.call({}, `${base}disk.img`)).toThrow(/Illegal invocation/);
    vi.stubGlobal('fetch', strict);
    try {
      const store = await openDiskStore({ url: 'disk.img' }, base);
      const buf = new Uint8Array(512);
      await store.read(0, buf);
      expect(new TextDecoder().decode(buf.subarray(0, DISK_MARK.length))).toBe(DISK_MARK);
      await store.close();
      const parent = await new WebOpener(new Map(), base).open('disk.img', { readOnly: true, relativeTo: `${base}child.vhd` });
      await parent.read(0, buf);
      expect(new TextDecoder().decode(buf.subarray(0, DISK_MARK.length))).toBe(DISK_MARK);
      await parent.close();
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it("npm run web puts Debian's SeaBIOS beside the page, or says plainly that the package is missing", () => {
    const out = mkdtempSync(join(tmpdir(), 'x86vm-web-seabios-'));
    try {
      const missing = spawnSync(process.execPath, [join(ROOT, 'scripts', 'web.mjs'), '--build-only', '--out', join(out, 'a'), '--seabios', join(out, 'nowhere')], { encoding: 'utf8' });
      expect(missing.status).toBe(0);
      expect(missing.stderr).toMatch(/^web: SeaBIOS is not installed \(.*nowhere\/bios\.bin, .*nowhere\/vgabios-stdvga\.bin missing; on Debian: sudo apt-get install seabios\): the page cannot boot through a BIOS \(\?bios=1\) until it is$/m);
      expect(existsSync(join(out, 'a', 'bios.bin'))).toBe(false);
      expect(existsSync(join(out, 'a', 'index.html'))).toBe(true);

      const ok = spawnSync(process.execPath, [join(ROOT, 'scripts', 'web.mjs'), '--build-only', '--out', join(out, 'b')], { encoding: 'utf8' });
      expect(ok.status, ok.stderr).toBe(0);
      expect(ok.stderr).not.toMatch(/SeaBIOS/);
      for (const f of ['bios.bin', 'vgabios-stdvga.bin']) {
        expect(readFileSync(join(out, 'b', f)).equals(readFileSync(join(SEABIOS_DIR, f))), f).toBe(true);
      }
      const bad = spawnSync(process.execPath, [join(ROOT, 'scripts', 'web.mjs'), '--build-only', '--out', join(out, 'c'), '--seabios'], { encoding: 'utf8' });
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/^web: --seabios needs a value$/m);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('serves files with MIME types, byte ranges (206, 416), HEAD, ETag, and nothing outside its folders', async () => {
    const page = await fetch(base);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await page.text()).toContain('<title>t</title>');

    const r = await fetch(`${base}disk.img`, { headers: { range: 'bytes=0-18' } });
    expect(r.status).toBe(206);
    expect(r.headers.get('content-range')).toBe(`bytes 0-18/${4 * 1024 * 1024}`);
    expect(r.headers.get('accept-ranges')).toBe('bytes');
    expect(await r.text()).toBe(DISK_MARK);
    const tail = await fetch(`${base}disk.img`, { headers: { range: 'bytes=-10' } });
    expect(tail.headers.get('content-range')).toBe(`bytes ${4 * 1024 * 1024 - 10}-${4 * 1024 * 1024 - 1}/${4 * 1024 * 1024}`);
    expect((await tail.arrayBuffer()).byteLength).toBe(10);
    const bad = await fetch(`${base}disk.img`, { headers: { range: `bytes=${4 * 1024 * 1024}-` } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get('content-range')).toBe(`bytes */${4 * 1024 * 1024}`);

    const head = await fetch(`${base}files/bzImage`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBe(readFileSync(join(DEFAULT, 'bzImage')).length);
    const etag = head.headers.get('etag')!;
    expect(etag).toMatch(/^".+"$/);
    expect((await fetch(`${base}files/bzImage`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    expect((await fetch(`${base}files/initramfs.cpio.gz`, { method: 'HEAD' })).headers.get('content-type')).toBe('application/gzip');
    expect((await fetch(`${base}nothing-here`)).status).toBe(404);
    expect((await fetch(`${base}files/..%2f..%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${base}%2e%2e/%2e%2e/package.json`)).status).toBe(404);
    expect((await fetch(base, { method: 'POST' })).status).toBe(405);
  });
});
