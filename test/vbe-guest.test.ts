/**
 * Linux draws its console on the VBE framebuffer, with two stock drivers, and a PNG screenshot shows it;
 * first, the VGA BIOS's VBE services work on our dispi registers exactly as on QEMU:
 *
 * (0) a boot-sector probe (nasm) asks SeaBIOS's vgabios-stdvga.bin for its VBE information and every mode's
 *     (the mode list depends on the dispi limits and the video memory), sets a 24 bpp mode, widens the line,
 *     draws through the banked window and moves the display start; its report on port 0xE9 must equal
 *     QEMU's byte for byte, and the screenshot must show the drawing from the display start.
 * (a) vesafb: the default guest's kernel (CONFIG_FB_VESA, fbcon) booted from the ISOLINUX CD
 *     (images/build-bootiso.sh with BOOT_APPEND adding `vga=0x314`) through SeaBIOS and Debian's
 *     vgabios-stdvga.bin: the kernel's real-mode setup asks the VGA BIOS for VESA mode 0x114 (800x600,
 *     16 bpp), the BIOS programs the dispi registers and reports the linear framebuffer at PCI BAR0, and
 *     vesafb + fbcon take the console (100x37 cells of 8x16).
 * (b) bochs-drm: Debian's stock 686 kernel (images/build-stock-guest.sh) with its own bochs DRM module and
 *     the modules it needs (drm, drm_kms_helper, ttm, …, taken from the same pinned .deb and appended to the
 *     initramfs as a second cpio archive), loaded with insmod from the serial shell. The driver reads the
 *     card's EDID from the MMIO BAR, sets the preferred 1280x800 at 32 bpp through the dispi registers
 *     and fbcon takes the console (160x50).
 *
 * Each guest is booted by the CLI (dist/x86vm.mjs, --screenshot) and by qemu-system-i386 -vga std (the
 * oracle: same images, same console session, a screendump through its monitor). In the guest, the serial
 * shell silences console messages, switches to VT 2 (no shell draws there) and writes a known screen to it
 * with escape codes: cleared, cursor hidden, text in the 16 colours, reverse-video blocks, a line of every
 * printable ASCII character, text in the last cells of the last row. Then:
 * - the guest's dmesg and /sys/class/graphics/fb0 name the driver and the expected mode, as on QEMU;
 * - the screenshot is read back cell by cell on the 8x16 grid: every pixel of every cell is the cell's
 *   expected foreground or background colour (Linux's VT palette, at the framebuffer's colour depth), and
 *   the foreground pixels spell the expected character in the kernel's 8x16 font (extracted from the
 *   bzImage; checked against the VGA BIOS's own font, from which it descends). Pixels outside the grid are
 *   black. A wrong glyph, colour, cell position, stride or offset fails with the screen read back as text;
 * - our screenshot equals QEMU's screendump pixel for pixel, at the framebuffer's depth (QEMU widens 5/6-bit
 *   channels by shifting, x86vm by replicating the top bits, so 16 bpp is compared on the 5:6:5 values).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import { decode } from 'fast-png';
import { nasm } from './helpers/asm';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '..');
const BIN = join(ROOT, 'dist', 'x86vm.mjs');
const BIOS = '/usr/share/seabios/bios.bin';
const VGABIOS = '/usr/share/seabios/vgabios-stdvga.bin';
const KERNEL = join(ROOT, 'images', 'default', 'bzImage');
const STOCK_SCRIPT = join(ROOT, 'images', 'build-stock-guest.sh');
const PROMPT = 'x86vm:/# ';
/** a default-guest boot through SeaBIOS takes 60–250 s of wall time here; the stock kernel 4–7 min */
const ISO_TIMEOUT_S = 900;
const STOCK_TIMEOUT_S = 1200;

let dir = '';

beforeAll(() => {
  for (const f of [BIOS, VGABIOS, KERNEL, join(ROOT, 'images/default/initramfs.cpio.gz')]) {
    expect(existsSync(f), `${f} is missing`).toBe(true);
  }
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT });
  dir = mkdtempSync(join(tmpdir(), 'x86vm-vbe-'));
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------
// fonts: the kernel's 8x16 console font, and the VGA BIOS's

/** glyph 1 of the IBM PC character set (the smiley), as every VGA-derived 8x16 font draws it */
const SMILEY = [0x00, 0x00, 0x7e, 0x81, 0xa5, 0x81, 0x81, 0xbd, 0x99, 0x81, 0x81, 0x7e, 0x00, 0x00, 0x00, 0x00];

/** offsets where 16 zero bytes (glyph 0) are followed by the smiley: candidate 8x16 font tables */
function fontTables(image: Uint8Array): number[] {
  const found: number[] = [];
  for (let i = 16; i + 4096 <= image.length; i++) {
    if (image[i] !== SMILEY[0] || image[i + 2] !== 0x7e || image[i + 3] !== 0x81) continue;
    let ok = true;
    for (let k = 0; k < 16 && ok; k++) ok = image[i + k] === SMILEY[k] && image[i - 16 + k] === 0;
    if (ok) found.push(i - 16);
  }
  return found;
}

/**
 * The 8x16 font fbcon draws with: Linux's font_8x16 (lib/fonts), found in the bzImage's gzip payload as
 * `struct font_data` (four header words 0, 0, 4096, 0, then 256 glyphs of 16 bytes).
 */
function kernelFont(bzImage: Uint8Array): Uint8Array {
  const dv = new DataView(bzImage.buffer, bzImage.byteOffset, bzImage.byteLength);
  expect(dv.getUint32(0x202, true), 'bzImage setup header signature').toBe(0x53726448); // "HdrS"
  const setupSects = bzImage[0x1f1] || 4;
  const payloadAt = (setupSects + 1) * 512 + dv.getUint32(0x248, true);
  const payload = bzImage.subarray(payloadAt, payloadAt + dv.getUint32(0x24c, true));
  expect([payload[0], payload[1]], 'the kernel payload is gzip').toEqual([0x1f, 0x8b]);
  const vmlinux = new Uint8Array(gunzipSync(payload));
  const hits = fontTables(vmlinux).filter((at) => {
    const h = new DataView(vmlinux.buffer, vmlinux.byteOffset + at - 16, 16);
    return h.getUint32(0, true) === 0 && h.getUint32(4, true) === 0 && h.getUint32(8, true) === 4096 && h.getUint32(12, true) === 0;
  });
  expect(hits.length, 'exactly one font_data of 4096 bytes starting with the smiley in vmlinux').toBe(1);
  return vmlinux.slice(hits[0], hits[0] + 4096);
}

let fontCache: Uint8Array | null = null;
function consoleFont(): Uint8Array {
  if (fontCache) return fontCache;
  const font = kernelFont(readFileSync(KERNEL));
  // it descends from the VGA BIOS font: most glyphs identical (Linux redrew a few: '0', 'M', 'W', …)
  const rom = readFileSync(VGABIOS);
  const tables = fontTables(rom);
  expect(tables.length, 'the 8x16 font in vgabios-stdvga.bin').toBeGreaterThanOrEqual(1);
  const romFont = rom.subarray(tables[0], tables[0] + 4096);
  let same = 0;
  for (let c = 0; c < 256; c++) if (Buffer.compare(font.subarray(c * 16, c * 16 + 16), romFont.subarray(c * 16, c * 16 + 16)) === 0) same++;
  expect(same, 'glyphs the kernel font shares with the VGA BIOS font').toBeGreaterThanOrEqual(200);
  for (const ch of 'ABCDEFGHIJKLOPQRSabcdeghijklnopqrstuyz123456789') {
    const c = ch.charCodeAt(0);
    expect(Array.from(font.subarray(c * 16, c * 16 + 16)), `glyph '${ch}'`).toEqual(Array.from(romFont.subarray(c * 16, c * 16 + 16)));
  }
  fontCache = font;
  return font;
}

// ---------------------------------------------------------------------------------------------------
// the screen the guest draws

/** Linux's default VT palette (drivers/tty/vt/vt.c), in ANSI colour order: the 8 colours, then bright */
const VT_RGB: [number, number, number][] = [
  [0x00, 0x00, 0x00], [0xaa, 0x00, 0x00], [0x00, 0xaa, 0x00], [0xaa, 0x55, 0x00],
  [0x00, 0x00, 0xaa], [0xaa, 0x00, 0xaa], [0x00, 0xaa, 0xaa], [0xaa, 0xaa, 0xaa],
  [0x55, 0x55, 0x55], [0xff, 0x55, 0x55], [0x55, 0xff, 0x55], [0xff, 0xff, 0x55],
  [0x55, 0x55, 0xff], [0xff, 0x55, 0xff], [0x55, 0xff, 0xff], [0xff, 0xff, 0xff],
];

interface Write {
  row: number;
  col: number;
  text: string;
  /** ANSI colours: foreground 0–15 (8–15 through bold), background 0–7 */
  fg: number;
  bg: number;
  /** drawn with SGR 7: the cells show fg and bg swapped */
  reverse?: boolean;
}

/** printable ASCII without the characters the shell's single quotes and printf's format would change */
const ASCII_LINE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i))
  .filter((c) => c !== "'" && c !== '%' && c !== '\\')
  .join('');

/** what the guest writes on a cols x rows console */
function pattern(cols: number, rows: number, title: string): Write[] {
  const w: Write[] = [
    { row: 0, col: 0, text: `x86vm ${title}`, fg: 7, bg: 0 },
    { row: 1, col: 0, text: ASCII_LINE, fg: 7, bg: 0 },
    { row: 3, col: 2, text: 'REVERSE', fg: 7, bg: 0, reverse: true },
    { row: 3, col: 12, text: '      ', fg: 7, bg: 0, reverse: true },
    { row: 3, col: 20, text: 'blue on cyan', fg: 4, bg: 6 },
    { row: Math.floor(rows / 2), col: Math.floor(cols / 2) - 8, text: 'The middle row.', fg: 15, bg: 1 },
    { row: rows - 1, col: cols - 6, text: 'CORNER', fg: 10, bg: 0 },
    { row: rows - 1, col: 0, text: 'last row', fg: 7, bg: 0 },
  ];
  for (let i = 0; i < 8; i++) w.push({ row: 5, col: 2 + 5 * i, text: ` ${i}  `, fg: 15, bg: i });
  for (let i = 0; i < 16; i++) w.push({ row: 6, col: 2 + 5 * i, text: `#${i.toString(16)}#`, fg: i, bg: i === 0 ? 7 : 0 });
  return w;
}

/** the shell commands that draw the pattern on /dev/tty2 (printf escapes, split into short commands) */
function drawCommands(writes: Write[]): string[] {
  const seqs = ['\\033[?25l\\033[0m\\033[2J\\033[H'];
  for (const w of writes) {
    const sgr = ['0'];
    if (w.fg >= 8) sgr.push('1');
    sgr.push(String(30 + (w.fg & 7)), String(40 + w.bg));
    if (w.reverse) sgr.push('7');
    seqs.push(`\\033[${w.row + 1};${w.col + 1}H\\033[${sgr.join(';')}m${w.text}\\033[0m`);
  }
  const cmds: string[] = [];
  let cur = '';
  for (const s of seqs) {
    if (cur && cur.length + s.length > 160) {
      cmds.push(`printf '${cur}' > /dev/tty2`);
      cur = '';
    }
    cur += s;
  }
  cmds.push(`printf '${cur}' > /dev/tty2`);
  return cmds;
}

interface Cell {
  ch: number;
  fg: number;
  bg: number;
}

function expectedGrid(cols: number, rows: number, writes: Write[]): Cell[] {
  const grid: Cell[] = Array.from({ length: cols * rows }, () => ({ ch: 32, fg: 7, bg: 0 }));
  for (const w of writes) {
    for (let i = 0; i < w.text.length; i++) {
      grid[w.row * cols + w.col + i] = { ch: w.text.charCodeAt(i), fg: w.reverse ? w.bg : w.fg, bg: w.reverse ? w.fg : w.bg };
    }
  }
  return grid;
}

/** the colour as the framebuffer stores it (bits per channel), widened back to a comparable number */
function quantize(r: number, g: number, b: number, bits: [number, number, number]): number {
  return ((r >> (8 - bits[0])) << 16) | ((g >> (8 - bits[1])) << 8) | (b >> (8 - bits[2]));
}

interface Picture {
  width: number;
  height: number;
  /** RGB(A) bytes */
  data: Uint8Array;
  channels: number;
}

function pixel(p: Picture, x: number, y: number, bits: [number, number, number]): number {
  const i = (y * p.width + x) * p.channels;
  return quantize(p.data[i], p.data[i + 1], p.data[i + 2], bits);
}

/**
 * Reads the picture back on the 8x16 cell grid against the expected cells: returns the screen as text
 * (each cell's glyph looked up in the font; '?' for a bitmap that is no glyph) and the cells whose pixels
 * are not all the expected foreground or background colour.
 */
function readBack(p: Picture, cols: number, rows: number, grid: Cell[], bits: [number, number, number], font: Uint8Array): { text: string[]; badColour: string[]; border: number } {
  const byBitmap = new Map<string, number>();
  for (let c = 255; c >= 0; c--) byBitmap.set(Buffer.from(font.subarray(c * 16, c * 16 + 16)).toString('hex'), c);
  // prefer printable ASCII for bitmaps several codes share (space, 0 and 255 are all blank)
  for (let c = 126; c >= 32; c--) byBitmap.set(Buffer.from(font.subarray(c * 16, c * 16 + 16)).toString('hex'), c);
  const pal = VT_RGB.map(([r, g, b]) => quantize(r, g, b, bits));
  const text: string[] = [];
  const badColour: string[] = [];
  const bitmap = new Uint8Array(16);
  for (let row = 0; row < rows; row++) {
    let line = '';
    for (let col = 0; col < cols; col++) {
      const cell = grid[row * cols + col];
      const fg = pal[cell.fg];
      const bg = pal[cell.bg];
      let stray = 0;
      for (let y = 0; y < 16; y++) {
        let bits8 = 0;
        for (let x = 0; x < 8; x++) {
          const v = pixel(p, col * 8 + x, row * 16 + y, bits);
          if (v === fg && fg !== bg) bits8 |= 0x80 >> x;
          else if (v !== bg) stray++;
        }
        bitmap[y] = bits8;
      }
      if (stray) badColour.push(`row ${row} col ${col}: ${stray} pixels neither fg ${cell.fg} nor bg ${cell.bg}`);
      const expectedGlyph = font.subarray(cell.ch * 16, cell.ch * 16 + 16);
      const hex = Buffer.from(bitmap).toString('hex');
      const ch = hex === Buffer.from(expectedGlyph).toString('hex') ? cell.ch : byBitmap.get(hex) ?? 0x3f;
      line += String.fromCharCode(ch);
    }
    text.push(line.replace(/ +$/, ''));
  }
  // everything outside the grid (the bottom margin when the height is not a multiple of 16) is black
  let border = 0;
  for (let y = rows * 16; y < p.height; y++) for (let x = 0; x < p.width; x++) if (pixel(p, x, y, bits) !== pal[0]) border++;
  for (let y = 0; y < rows * 16; y++) for (let x = cols * 8; x < p.width; x++) if (pixel(p, x, y, bits) !== pal[0]) border++;
  return { text, badColour, border };
}

function gridText(cols: number, rows: number, grid: Cell[]): string[] {
  const out: string[] = [];
  for (let row = 0; row < rows; row++) {
    let line = '';
    for (let col = 0; col < cols; col++) line += String.fromCharCode(grid[row * cols + col].ch);
    out.push(line.replace(/ +$/, ''));
  }
  return out;
}

function readPng(path: string): Picture {
  const png = decode(readFileSync(path));
  expect(png.depth).toBe(8);
  return { width: png.width, height: png.height, data: png.data as Uint8Array, channels: png.channels };
}

function readPpm(path: string): Picture {
  const b = readFileSync(path);
  const m = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(b.toString('latin1', 0, 64));
  if (!m) throw new Error(`${path}: not a binary PPM with 8-bit channels`);
  const w = Number(m[1]);
  const h = Number(m[2]);
  return { width: w, height: h, data: b.subarray(m[0].length, m[0].length + w * h * 3), channels: 3 };
}

/** pixels that differ between two pictures at the given depth (after checking the sizes agree) */
function differing(a: Picture, b: Picture, bits: [number, number, number]): number {
  expect([a.width, a.height]).toEqual([b.width, b.height]);
  let n = 0;
  for (let y = 0; y < a.height; y++) for (let x = 0; x < a.width; x++) if (pixel(a, x, y, bits) !== pixel(b, x, y, bits)) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------------
// the console session, on x86vm (CLI) and on QEMU

/**
 * `echo @@NAME`, typed so that the command line the shell echoes never contains the marker itself (the
 * shell's line editor wraps long lines, which could put it at the start of a line)
 */
const mark = (name: string) => `echo @@${name.slice(0, 1)}''${name.slice(1)}`;

const INFO =
  `echo 0 > /proc/sys/kernel/printk; chvt 2; ${mark('FB')}; dmesg | grep -E 'vesafb|bochs|\\[drm\\]|Console: switching|fb0'; ` +
  `cd /sys/class/graphics/fb0 && cat name virtual_size bits_per_pixel stride; cd /; ${mark('END')}`;

/** the commands typed at the serial shell's prompts (the last one prints @@DRAWN) */
function session(setup: string[], writes: Write[], settle: string): string[] {
  return [...setup, INFO, ...drawCommands(writes), `${settle}${mark('DRAWN')}`];
}

interface Result {
  status: number | null;
  out: string;
  err: string;
  seconds: number;
}

/** x86vm run (the CLI bundle) with a console script: each command after a prompt, then poweroff -f */
function x86vm(flags: string[], commands: string[], timeoutS: number): Promise<Result> {
  const args = [BIN, 'run', ...flags, '--deterministic', '--no-reboot', '--serial', 'stdio', '--timeout', String(timeoutS)];
  const cli = (s: string) => s.replace(/\\/g, '\\\\');
  for (const c of commands) args.push('--expect', PROMPT, '--send', `${cli(c)}\\n`);
  args.push('--expect', '^@@DRAWN', '--send', 'poweroff -f\\n');
  const started = Date.now();
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('latin1').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('close', (status) => done({ status, out, err, seconds: (Date.now() - started) / 1000 }));
  });
}

/**
 * qemu-system-i386 -vga std with COM1 on stdio and the same session; once @@DRAWN is printed, a
 * screendump through the monitor (a Unix socket) into `ppm`, then quit.
 */
function qemu(args: string[], commands: string[], ppm: string, timeoutS: number): Promise<Result> {
  return qemuUntil(args, /^@@DRAWN\r?$/m, ppm, timeoutS, commands);
}

/**
 * qemu-system-i386 -vga std with COM1 on stdio: types each of `commands` after a shell prompt; once the
 * output after the last one matches `done`, a screendump through the monitor (a Unix socket) into `ppm`,
 * then quit.
 */
function qemuUntil(args: string[], done: RegExp, ppm: string, timeoutS: number, commands: string[] = []): Promise<Result> {
  const sock = join(dir, `qemu-${Date.now()}.sock`);
  const all = ['-display', 'none', '-vga', 'std', '-serial', 'stdio', '-monitor', `unix:${sock},server=on,wait=off`, '-no-reboot', '-m', '128', '-accel', 'tcg', ...args];
  const started = Date.now();
  return new Promise((finish, fail) => {
    const p = spawn('qemu-system-i386', all, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let step = 0;
    let from = 0;
    let dumping = false;
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutS * 1000);
    p.stdout.setEncoding('latin1').on('data', (d: string) => {
      out += d;
      while (step < commands.length) {
        const at = out.indexOf(PROMPT, from);
        if (at < 0) break;
        from = at + PROMPT.length;
        p.stdin.write(`${commands[step++]}\n`);
      }
      if (step === commands.length && !dumping && done.test(out.slice(from))) {
        dumping = true;
        monitor(sock, [`screendump ${ppm}`, 'quit']).catch((e: Error) => {
          err += `monitor: ${e.message}\n`;
          p.kill('SIGKILL');
        });
      }
    });
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('error', fail);
    p.on('close', (status) => {
      clearTimeout(timer);
      finish({ status, out, err, seconds: (Date.now() - started) / 1000 });
    });
  });
}

/** types each command at QEMU's HMP monitor, waiting for the "(qemu)" prompt before each and after the last but `quit` */
function monitor(sock: string, commands: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const c = connect(sock);
    let buf = '';
    let i = 0;
    c.setEncoding('latin1');
    c.on('data', (d: string) => {
      buf += d;
      while (buf.includes('(qemu)')) {
        buf = buf.slice(buf.indexOf('(qemu)') + 6);
        if (i < commands.length) c.write(`${commands[i++]}\n`);
      }
    });
    c.on('error', fail);
    c.on('close', () => done());
  });
}

/** the lines between `echo @@NAME` and `echo @@END` */
function section(out: string, name: string): string[] {
  const m = new RegExp(`^@@${name}\\r?\\n([\\s\\S]*?)^@@END\\r?$`, 'm').exec(out);
  if (!m) throw new Error(`no @@${name} section in the output:\n${out.slice(-3000)}`);
  return m[1].split(/\r?\n/).map((l) => l.replace(/^\[\s*\d+\.\d+\] /, '').trimEnd()).filter((l) => l !== '');
}

/** the driver's lines, with what differs between machines by design (the mapping address) masked */
function driverLines(lines: string[]): string[] {
  return lines.map((l) => l.replace(/mapped to 0x\S+,/, 'mapped to 0x…,'));
}

/** everything the screen checks say about one screenshot */
function checkScreen(label: string, p: Picture, mode: { width: number; height: number; bits: [number, number, number] }, writes: Write[]): void {
  expect([p.width, p.height], `${label}: screen size`).toEqual([mode.width, mode.height]);
  const cols = mode.width / 8;
  const rows = Math.floor(mode.height / 16);
  const grid = expectedGrid(cols, rows, writes);
  const font = consoleFont();
  const got = readBack(p, cols, rows, grid, mode.bits, font);
  expect(got.text.join('\n'), `${label}: the screen read back through the font`).toBe(gridText(cols, rows, grid).join('\n'));
  expect(got.badColour.slice(0, 10), `${label}: cells with pixels of the wrong colour`).toEqual([]);
  expect(got.border, `${label}: non-black pixels outside the cell grid`).toBe(0);
}

// ---------------------------------------------------------------------------------------------------
// (0) the VGA BIOS's VBE services on our dispi registers

/**
 * A disk boot sector (plus 16 sectors it loads) that SeaBIOS boots: it asks the VGA BIOS (INT 10h) for its
 * VBE controller information (4F00: version, memory, strings, the mode list) and every listed mode's
 * information (4F01), sets mode 0x115 (800x600, 24 bpp) without the linear framebuffer (4F02), reads it back
 * (4F03), widens the logical line to 1024 pixels (4F06), asks for the 8-bit DAC (4F08), draws 608 lines of
 * 1024 pixels through the 64K window, switching banks with 4F05 (pixels straddle the bank boundaries), with
 * B = x, G = y, R = x / 4 + 2y, then sets the display start to (17, 8) (4F07). It prints every answer and
 * the dispi registers as it goes on port 0xE9, says DONE on COM1, waits for a byte there and ends the run
 * through isa-debug-exit (port 0xF4).
 */
const VBE_PROBE = `bits 16
org 0x7c00
VBEINFO  equ 0x1000
MODEINFO equ 0x1400
start:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7c00
    sti
    cld
    mov ax, 0x0210              ; read 16 sectors: the rest of the program
    mov cx, 0x0002
    xor dh, dh
    mov bx, 0x7e00
    int 0x13
    jc fail
    jmp main
fail:
    mov al, '!'
    out 0xe9, al
    mov al, 1
    out 0xf4, al
    hlt
    times 510-($-$$) db 0
    dw 0xaa55

main:
    mov si, s_4f00
    call puts
    mov di, VBEINFO
    mov dword [di], 'VBE2'
    mov ax, 0x4f00
    int 0x10
    call putax
    call space
    mov si, VBEINFO
    mov cx, 34
    call hexdump
    call newline
    mov bx, VBEINFO + 6         ; OEM string
    call farstring
    mov bx, VBEINFO + 22        ; vendor, product, revision (VBE 2.0)
    call farstring
    mov bx, VBEINFO + 26
    call farstring
    mov bx, VBEINFO + 30
    call farstring
    lfs si, [VBEINFO + 14]      ; the mode list
.mode:
    mov ax, [fs:si]
    cmp ax, 0xffff
    je .modes_done
    push si
    push fs
    mov cx, ax
    call putax
    call space
    mov di, MODEINFO
    mov ax, 0x4f01
    int 0x10
    call putax
    call space
    mov si, MODEINFO
    mov cx, 66
    call hexdump
    call newline
    pop fs
    pop si
    add si, 2
    jmp .mode
.modes_done:
    ; ---- 800x600x24 through the window ----
    mov si, s_4f02
    call puts
    mov ax, 0x4f02
    mov bx, 0x0115
    int 0x10
    call putax
    call newline
    call dispi
    mov si, s_4f03
    call puts
    mov ax, 0x4f03
    int 0x10
    call putax
    call space
    mov ax, bx
    call putax
    call newline
    mov si, s_4f06
    call puts
    mov ax, 0x4f06              ; logical scan line: 1024 pixels
    xor bl, bl
    mov cx, 1024
    int 0x10
    call regs
    mov ax, 0x4f06
    mov bl, 1
    int 0x10
    call regs
    call dispi
    mov si, s_4f08
    call puts
    mov ax, 0x4f08              ; DAC: 8 bits per primary
    mov bx, 0x0800
    int 0x10
    call regs
    mov ax, 0x4f08
    mov bl, 1
    int 0x10
    call regs
    call draw
    mov si, s_4f07
    call puts
    mov ax, 0x4f07              ; display start (17, 8)
    xor bx, bx
    mov cx, 17
    mov dx, 8
    int 0x10
    call regs
    mov ax, 0x4f07
    mov bx, 1
    int 0x10
    call regs
    call dispi
    mov si, s_done
    call puts
    mov si, s_done
.serial:
    lodsb
    test al, al
    jz .wait
    mov dx, 0x3f8
    out dx, al
    jmp .serial
.wait:
    mov dx, 0x3fd
    in al, dx
    test al, 1
    jz .wait
    xor al, al
    out 0xf4, al
    hlt

; the picture: 608 lines of 1024 pixels, 3 bytes each (B, G, R), stride 3072: B = x, G = y, R = x / 4 + 2y
draw:
    xor bp, bp
    call setbank
    push word 0xa000
    pop es
    xor di, di
    xor dx, dx
.row:
    xor cx, cx
.px:
    mov al, cl
    call putpix
    mov al, dl
    call putpix
    mov ax, cx
    shr ax, 2
    add al, dl
    add al, dl
    call putpix
    inc cx
    cmp cx, 1024
    jb .px
    inc dx
    cmp dx, 608
    jb .row
    push word 0
    pop es
    ret
putpix:
    stosb
    test di, di
    jnz .ok
    inc bp
    call setbank
.ok:
    ret
setbank:
    pusha
    mov ax, 0x4f05
    xor bx, bx
    mov dx, bp
    int 0x10
    popa
    ret

; the dispi registers 0-10 as the card shows them
dispi:
    pusha
    mov si, s_dispi
    call puts
    xor bx, bx
.r:
    mov dx, 0x1ce
    mov ax, bx
    out dx, ax
    inc dx
    in ax, dx
    call putax
    call space
    inc bx
    cmp bx, 11
    jb .r
    call newline
    popa
    ret

; AX BX CX DX
regs:
    pusha
    push dx
    push cx
    push bx
    call putax
    call space
    pop ax
    call putax
    call space
    pop ax
    call putax
    call space
    pop ax
    call putax
    call newline
    popa
    ret

puts:                           ; DS:SI, zero-terminated
    pusha
.l:
    lodsb
    test al, al
    jz .e
    out 0xe9, al
    jmp .l
.e:
    popa
    ret
farstring:                      ; the string at the far pointer at [BX], then a newline
    push fs
    push si
    lfs si, [bx]
    call putsfar
    call newline
    pop si
    pop fs
    ret
putsfar:                        ; FS:SI, at most 80 characters
    pusha
    mov cx, 80
.l:
    mov al, [fs:si]
    test al, al
    jz .e
    out 0xe9, al
    inc si
    loop .l
.e:
    popa
    ret
hexdump:                        ; CX bytes at DS:SI
    pusha
.l:
    lodsb
    call puthex8
    loop .l
    popa
    ret
putax:
    push ax
    mov al, ah
    call puthex8
    pop ax
    push ax
    call puthex8
    pop ax
    ret
puthex8:
    push ax
    shr al, 4
    call nib
    pop ax
    push ax
    and al, 15
    call nib
    pop ax
    ret
nib:
    add al, '0'
    cmp al, '9'
    jbe .o
    add al, 7
.o:
    out 0xe9, al
    ret
space:
    push ax
    mov al, ' '
    out 0xe9, al
    pop ax
    ret
newline:
    push ax
    mov al, 10
    out 0xe9, al
    pop ax
    ret

s_4f00: db '4F00 ', 0
s_4f02: db '4F02 0115 ', 0
s_4f03: db '4F03 ', 0
s_4f06: db '4F06', 10, 0
s_4f07: db '4F07', 10, 0
s_4f08: db '4F08', 10, 0
s_dispi: db 'dispi ', 0
s_done: db 'DONE', 13, 10, 0
    times 17*512-($-$$) db 0
`;

describe('the VGA BIOS\'s VBE services (SeaBIOS vgabios-stdvga.bin) on the dispi registers', () => {
  let disk = '';
  let oracleRun: Promise<{ result: Result; log: string; ppm: string }> | null = null;
  const oracle = () =>
    (oracleRun ??= (async () => {
      const log = join(dir, 'probe-qemu.txt');
      const ppm = join(dir, 'probe-qemu.ppm');
      const args = ['-drive', `file=${disk},format=raw,if=ide,snapshot=on`, '-debugcon', `file:${log}`, '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04'];
      const result = await qemuUntil(args, /DONE/, ppm, 120);
      return { result, log, ppm };
    })());

  beforeAll(() => {
    const code = nasm(VBE_PROBE);
    expect(code.length).toBe(17 * 512);
    disk = join(dir, 'probe.img');
    const img = new Uint8Array(1 << 20);
    img.set(code);
    writeFileSync(disk, img);
  });

  it('on qemu-system-i386 (the oracle): the mode list, a banked 24 bpp picture and the display start', async () => {
    const { result: r, log, ppm } = await oracle();
    expect(r.status, r.err).toBe(0);
    expectProbe(readFileSync(log, 'latin1'));
    expectProbePicture(readPpm(ppm));
  }, 180_000);

  it('on x86vm: the VGA BIOS answers every call as on QEMU, and the screenshot shows the picture from (17, 8)', async () => {
    const log = join(dir, 'probe-x86vm.txt');
    const png = join(dir, 'probe-x86vm.png');
    const args = [BIN, 'run', '--bios', BIOS, '--hda', disk, '--snapshot', '--mem', '128M', '--deterministic', '--no-reboot', '--timeout', '300',
      '--serial', 'stdio', '--debugcon', log, '--screenshot', png, '--expect', 'DONE', '--send', 'x'];
    const r = await new Promise<Result>((done) => {
      const started = Date.now();
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('latin1').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('close', (status) => done({ status, out, err, seconds: (Date.now() - started) / 1000 }));
    });
    // the probe writes 0 to isa-debug-exit: status (0 << 1) | 1
    expect(r.status, `${r.out.slice(-2000)}\n${r.err}`).toBe(1);
    const ours = readFileSync(log, 'latin1');
    expectProbe(ours);
    const shot = readPng(png);
    expectProbePicture(shot);
    const q = await oracle();
    expect(q.result.status, q.result.err).toBe(0);
    expect(ours).toBe(readFileSync(q.log, 'latin1'));
    expect(differing(shot, readPpm(q.ppm), [8, 8, 8]), 'pixels that differ from QEMU').toBe(0);
  }, 360_000);
});

interface ModeInfo {
  mode: number;
  status: number;
  attributes: number;
  bytesPerLine: number;
  width: number;
  height: number;
  bpp: number;
  model: number;
  /** red, green, blue: [mask size, position] */
  masks: number[];
  physBase: number;
}

/** what the probe printed, checked against the VBE 3.0 specification and SeaBIOS's bochsvga mode table */
function expectProbe(log: string): void {
  const lines = log.split(/\r?\n/);
  const info = /^4F00 004F ([0-9A-F]{68})$/.exec(lines[0]);
  expect(info, lines[0]).not.toBeNull();
  const vib = Buffer.from(info![1], 'hex');
  expect(vib.toString('latin1', 0, 4)).toBe('VESA');
  expect(vib.readUInt16LE(4)).toBe(0x0300); // VBE 3.0
  expect(vib.readUInt16LE(18)).toBe(256); // 16 MiB in 64 KiB blocks
  expect(lines.slice(1, 5)).toEqual(['SeaBIOS VBE(C) 2011', 'SeaBIOS Developers', 'SeaBIOS VBE Adapter', 'Rev. 1']);
  const modes: ModeInfo[] = [];
  for (const l of lines.slice(5)) {
    const m = /^([0-9A-F]{4}) ([0-9A-F]{4}) ([0-9A-F]{132})$/.exec(l);
    if (!m) break;
    const b = Buffer.from(m[3], 'hex');
    modes.push({
      mode: parseInt(m[1], 16),
      status: parseInt(m[2], 16),
      attributes: b.readUInt16LE(0),
      bytesPerLine: b.readUInt16LE(16),
      width: b.readUInt16LE(18),
      height: b.readUInt16LE(20),
      bpp: b[25],
      model: b[27],
      masks: [b[31], b[32], b[33], b[34], b[35], b[36]],
      physBase: b.readUInt32LE(40),
    });
  }
  expect(modes.length).toBeGreaterThan(50);
  expect(modes.every((m) => m.status === 0x004f)).toBe(true);
  const mode = (n: number) => modes.find((m) => m.mode === n);
  // the VESA-defined modes Linux's vga= takes (0x200 + mode), with the linear framebuffer at BAR0
  const lfb = 0x80;
  expect(mode(0x114)).toMatchObject({ width: 800, height: 600, bpp: 16, model: 6, bytesPerLine: 1600, masks: [5, 11, 6, 5, 5, 0], physBase: 0xfd000000 });
  expect(mode(0x114)!.attributes & lfb).toBe(lfb);
  expect(mode(0x115)).toMatchObject({ width: 800, height: 600, bpp: 24, model: 6, bytesPerLine: 2400, masks: [8, 16, 8, 8, 8, 0] });
  expect(mode(0x103)).toMatchObject({ width: 800, height: 600, bpp: 8, model: 4 });
  expect(mode(0x118)).toMatchObject({ width: 1024, height: 768, bpp: 24 });
  // modes as large as the dispi limits and 16 MiB allow: 3840x2160 at 16 bpp fits, at 32 bpp it does not
  expect(modes.some((m) => m.width === 3840 && m.height === 2160 && m.bpp === 16), 'a 3840x2160x16 mode (the dispi limits are QEMU\'s 16000x12000)').toBe(true);
  expect(modes.some((m) => m.width * m.height * Math.ceil(m.bpp / 8) > 16 << 20)).toBe(false);
  const rest = lines.slice(5 + modes.length);
  const dispi = rest.filter((l) => l.startsWith('dispi ')).map((l) => l.slice(6).trim().split(' ').map((h) => parseInt(h, 16)));
  expect(rest[0]).toBe('4F02 0115 004F');
  // after 4F02: 800x600x24 enabled without the LFB bit
  expect(dispi[0].slice(0, 5)).toEqual([0xb0c5, 800, 600, 24, 0x01]);
  // 4F06 answered 3072 bytes = 1024 pixels a line, 5461 lines; the card has virtual width 1024
  expect(rest).toContain('004F 0C00 0400 1555');
  expect(dispi[1][6]).toBe(1024);
  // 4F07: the display start (17, 8) in the x/y offset registers
  expect(rest).toContain('004F 0001 0011 0008');
  expect(dispi[2].slice(8, 10)).toEqual([17, 8]);
  expect(rest).toContain('DONE');
}

/** the probe's picture: pixel (x, y) of the screen is pixel (16 + x, 8 + y) of what it drew */
function expectProbePicture(p: Picture): void {
  expect([p.width, p.height]).toEqual([800, 600]);
  // the display start counts 4-byte units (QEMU's CRTC start address): x = 17 at 3 bytes a pixel is byte 51,
  // rounded down to 48, which is pixel 16
  let wrong = 0;
  let first = '';
  for (let y = 0; y < p.height; y++) {
    for (let x = 0; x < p.width; x++) {
      const X = x + 16;
      const Y = y + 8;
      const i = (y * p.width + x) * p.channels;
      const want = [((X >> 2) + 2 * Y) & 255, Y & 255, X & 255];
      if (p.data[i] !== want[0] || p.data[i + 1] !== want[1] || p.data[i + 2] !== want[2]) {
        if (!wrong) first = `(${x}, ${y}) is ${Array.from(p.data.subarray(i, i + 3))}, not ${want}`;
        wrong++;
      }
    }
  }
  expect(wrong, `pixels unlike the drawing, first ${first}`).toBe(0);
}

// ---------------------------------------------------------------------------------------------------
// (a) vesafb through SeaBIOS and the VGA BIOS

describe('vesafb: the default kernel with vga=0x314 from the ISOLINUX CD', () => {
  const MODE = { width: 800, height: 600, bits: [5, 6, 5] as [number, number, number] };
  const writes = pattern(100, 37, 'vesafb 800x600x16');
  const commands = session([], writes, '');
  let iso = '';
  // QEMU's run, once, for whichever test asks first
  let oracleRun: Promise<{ result: Result; ppm: string }> | null = null;
  const oracle = () =>
    (oracleRun ??= (async () => {
      const ppm = join(dir, 'qemu-vesafb.ppm');
      const result = await qemu(['-cdrom', iso], commands, ppm, 300);
      return { result, ppm };
    })());

  beforeAll(async () => {
    await run(join(ROOT, 'images', 'build-bootiso.sh'), [join(dir, 'iso')], {
      cwd: ROOT,
      env: { ...process.env, BOOT_APPEND: 'console=ttyS0 console=tty0 vga=0x314' },
      maxBuffer: 1 << 24,
    });
    iso = join(dir, 'iso', 'boot.iso');
    expect(existsSync(iso)).toBe(true);
  }, 300_000);

  it('on qemu-system-i386 (the oracle): vesafb 800x600x16 and the screen the checks expect', async () => {
    const { result: r, ppm } = await oracle();
    const tail = `\n${r.out.slice(-3000)}\n${r.err}`;
    expect(r.status, tail).toBe(0);
    expect(existsSync(ppm), `no screendump${tail}`).toBe(true);
    checkScreen('QEMU', readPpm(ppm), MODE, writes);
  }, 360_000);

  it('on x86vm: the same mode from the VGA BIOS, the same dmesg, and a PNG screenshot of the text', async () => {
    const png = join(dir, 'x86vm-vesafb.png');
    const r = await x86vm(['--bios', BIOS, '--cdrom', iso, '--mem', '128M', '--snapshot', '--screenshot', png], commands, ISO_TIMEOUT_S);
    const tail = `\n--- serial (${r.seconds.toFixed(0)} s) ---\n${r.out.slice(-3000)}\n--- stderr ---\n${r.err}`;
    expect(r.status, tail).toBe(0);
    const fb = section(r.out, 'FB');
    expect(fb, tail).toContain('vesafb: mode is 800x600x16, linelength=1600, pages=16');
    expect(fb).toContain('vesafb: Truecolor: size=0:5:6:5, shift=0:11:5:0');
    expect(fb.some((l) => /^vesafb: framebuffer at 0xfd000000, mapped to 0x\S+, using 1875k, total 16384k$/.test(l)), fb.join('\n')).toBe(true);
    expect(fb).toContain('Console: switching to colour frame buffer device 100x37');
    expect(fb).toContain('fb0: VESA VGA frame buffer device');
    expect(fb.slice(-4)).toEqual(['VESA VGA', '800,600', '16', '1600']);
    const shot = readPng(png);
    checkScreen('x86vm', shot, MODE, writes);

    // QEMU's kernel said the same (the LFB address is SeaBIOS's BAR0 placement on both), and drew the same
    const q = await oracle();
    expect(q.result.status, q.result.err).toBe(0);
    expect(driverLines(fb)).toEqual(driverLines(section(q.result.out, 'FB')));
    expect(differing(shot, readPpm(q.ppm), MODE.bits), 'pixels that differ from QEMU at 5:6:5').toBe(0);
  }, (ISO_TIMEOUT_S + 60) * 1000);
});

// ---------------------------------------------------------------------------------------------------
// (b) Debian's stock kernel with its bochs DRM module

/** the modules bochs-drm needs, in load order (their `depends=` fields), under drivers/ */
const DRM_MODULES = [
  'video/fbdev/core/fb_sys_fops',
  'video/fbdev/core/sysimgblt',
  'video/fbdev/core/sysfillrect',
  'video/fbdev/core/syscopyarea',
  'gpu/drm/drm',
  'gpu/drm/drm_kms_helper',
  'gpu/drm/ttm/ttm',
  'gpu/drm/drm_ttm_helper',
  'gpu/drm/drm_vram_helper',
  'gpu/drm/tiny/bochs',
];

/** an uncompressed newc cpio archive of directories and files (name → bytes; null = directory) */
function cpio(entries: [string, Uint8Array | null][]): Uint8Array {
  const parts: Uint8Array[] = [];
  let size = 0;
  const push = (b: Uint8Array) => {
    parts.push(b);
    size += b.length;
    const pad = (4 - (size & 3)) & 3;
    if (pad) {
      parts.push(new Uint8Array(pad));
      size += pad;
    }
  };
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  let ino = 1;
  const entry = (name: string, mode: number, data: Uint8Array) => {
    const fields = [ino++, mode, 0, 0, mode & 0o040000 ? 2 : 1, 1767225600, data.length, 0, 0, 0, 0, name.length + 1, 0];
    push(Buffer.concat([Buffer.from(`070701${fields.map(hex).join('')}${name}\0`, 'latin1')]));
    if (data.length) push(data);
  };
  for (const [name, data] of entries) entry(name, data ? 0o100644 : 0o040755, data ?? new Uint8Array(0));
  entry('TRAILER!!!', 0, new Uint8Array(0));
  return Buffer.concat(parts);
}

describe('bochs-drm: Debian\'s stock 686 kernel loads its bochs DRM module', () => {
  const MODE = { width: 1280, height: 800, bits: [8, 8, 8] as [number, number, number] };
  const writes = pattern(160, 50, 'bochs-drm 1280x800x32');
  const insmod = `for m in ${DRM_MODULES.map((m) => m.split('/').pop()).join(' ')}; do insmod /lib/modules/drm/$m.ko || echo insmod-failed-$m; done`;
  // the DRM fbdev emulation draws into a shadow buffer that a worker copies to VRAM: give it a moment
  const commands = session([insmod], writes, 'sleep 1; ');
  let stock = '';
  let oracleRun: Promise<{ result: Result; ppm: string }> | null = null;
  const oracle = () =>
    (oracleRun ??= (async () => {
      const ppm = join(dir, 'qemu-drm.ppm');
      const result = await qemu(['-kernel', join(stock, 'vmlinuz'), '-initrd', join(stock, 'initrd-drm'), '-append', 'console=ttyS0 cryptomgr.notests'], commands, ppm, 400);
      return { result, ppm };
    })());

  beforeAll(async () => {
    stock = join(dir, 'stock');
    try {
      await run('bash', [STOCK_SCRIPT, stock], { cwd: ROOT, maxBuffer: 1 << 24 });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`images/build-stock-guest.sh failed (it needs dpkg/apt-get and Debian's mirror):\n${(err.stderr ?? err.message).trim().split('\n').slice(-10).join('\n')}`);
    }
    // the modules come from the same pinned, checked .deb the script downloaded into its cache
    const script = readFileSync(STOCK_SCRIPT, 'utf8');
    const pinned = (name: string) => {
      const m = new RegExp(`^${name}=(\\S+)$`, 'm').exec(script);
      if (!m) throw new Error(`images/build-stock-guest.sh has no ${name}= line`);
      return m[1];
    };
    const pkg = pinned('KERNEL_PKG');
    const deb = join(process.env.DEB_CACHE ?? join(process.env.TMPDIR ?? '/tmp', 'x86vm-debs'), `${pkg}_${pinned('KERNEL_VERSION')}_${pinned('KERNEL_ARCH')}.deb`);
    expect(existsSync(deb), `${deb} (the stock kernel package, in the script's cache)`).toBe(true);
    expect(createHash('sha256').update(readFileSync(deb)).digest('hex'), `${deb}: sha256`).toBe(pinned('KERNEL_DEB_SHA256'));
    const krel = pkg.replace(/^linux-image-/, '');
    const x = join(dir, 'deb');
    mkdirSync(x);
    const paths = DRM_MODULES.map((m) => `./lib/modules/${krel}/kernel/drivers/${m}.ko`);
    await run('bash', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" "${@:3}"', 'extract', deb, x, ...paths], { maxBuffer: 1 << 24 });
    const entries: [string, Uint8Array | null][] = [['lib', null], ['lib/modules', null], ['lib/modules/drm', null]];
    for (const p of paths) entries.push([`lib/modules/drm/${p.split('/').pop()}`, readFileSync(join(x, p))]);
    // the initramfs, then (4-byte aligned, as the kernel's unpacker wants) the modules as a second archive
    const base = readFileSync(join(stock, 'initramfs.cpio.gz'));
    writeFileSync(join(stock, 'initrd-drm'), Buffer.concat([base, new Uint8Array((4 - (base.length & 3)) & 3), cpio(entries)]));
  }, 600_000);

  function expectDriver(out: string, tail: string): void {
    expect(out, tail).not.toMatch(/insmod-failed-[a-z]|can't insert/);
    const fb = section(out, 'FB');
    expect(fb, tail).toContain('[drm] Found bochs VGA, ID 0xb0c5.');
    expect(fb).toContain('[drm] Found EDID data blob.');
    expect(fb.some((l) => /^\[drm\] Framebuffer size 16384 kB @ 0x[0-9a-f]+, mmio @ 0x[0-9a-f]+\.$/.test(l)), fb.join('\n')).toBe(true);
    expect(fb).toContain('Console: switching to colour frame buffer device 160x50');
    expect(fb).toContain('bochs-drm 0000:00:02.0: [drm] fb0: bochs-drmdrmfb frame buffer device');
    expect(fb.slice(-4)).toEqual(['bochs-drmdrmfb', '1280,800', '32', '5120']);
  }

  it('on qemu-system-i386 (the oracle): bochs-drm at the EDID\'s 1280x800, 32 bpp', async () => {
    const { result: r, ppm } = await oracle();
    const tail = `\n${r.out.slice(-3000)}\n${r.err}`;
    expect(r.status, tail).toBe(0);
    expectDriver(r.out, tail);
    checkScreen('QEMU', readPpm(ppm), MODE, writes);
  }, 460_000);

  it('on x86vm: the driver finds the card and its EDID, sets the mode, and the screenshot shows the text', async () => {
    const png = join(dir, 'x86vm-drm.png');
    const flags = ['--kernel', join(stock, 'vmlinuz'), '--initrd', join(stock, 'initrd-drm'), '--append', 'console=ttyS0 cryptomgr.notests', '--mem', '128M', '--vga', 'std', '--screenshot', png];
    const r = await x86vm(flags, commands, STOCK_TIMEOUT_S);
    const tail = `\n--- serial (${r.seconds.toFixed(0)} s) ---\n${r.out.slice(-3000)}\n--- stderr ---\n${r.err}`;
    expect(r.status, tail).toBe(0);
    expectDriver(r.out, tail);
    const shot = readPng(png);
    checkScreen('x86vm', shot, MODE, writes);
    const q = await oracle();
    expect(q.result.status, q.result.err).toBe(0);
    expect(differing(shot, readPpm(q.ppm), MODE.bits), 'pixels that differ from QEMU').toBe(0);
  }, (STOCK_TIMEOUT_S + 60) * 1000);
});
