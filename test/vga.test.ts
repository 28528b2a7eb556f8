/**
 * The VGA driven by guest code: nasm programs (test/conformance/vga/) run in real mode without a BIOS on
 * a bare machine with the VGA attached (powered on with all registers zero), program the registers the
 * way a mode-set routine does, draw known patterns through the A0000/B8000 windows, and halt. The
 * rendered frame must then match the pattern pixel for pixel; text mode is also checked through the text
 * dump and a PNG screenshot.
 *
 * Then on the whole PC: SeaBIOS runs Debian's vgabios-stdvga.bin from the VGA's PCI expansion ROM and its
 * messages appear in the text dump (drawn with the font the VGA BIOS loaded); and the default Linux guest,
 * booted directly (the VGA powered on in text mode), writes its console to B8000 through vgacon.
 */
import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { decode } from 'fast-png';
import { runReal } from './helpers/asm';
import { Vga, addVga } from '../devices/vga';
import { runVm } from '../node/run';
import { parseCommandLine, type RunOptions } from '../node/options';
import { CP437, type Frame } from '../core/screen';
import { textDump, writeScreenshot } from '../node/screenshot';
import { MODE_03H, MODE_12H, MODE_13H, modeTableAsm, testFont, testGlyphRow, ega, c6 } from './conformance/vga/modes';

const DIR = resolve(__dirname, 'conformance', 'vga');
const src = (name: string) => readFileSync(join(DIR, name), 'utf8');

/** runs a program from test/conformance/vga with the library and `data` appended; returns the VGA */
function runVgaProgram(name: string, data: string): Vga {
  let vga: Vga | null = null;
  runReal(`${src(name)}\n${src('lib.asm')}\n${data}`, {
    max: 5_000_000,
    setup: (m) => {
      vga = new Vga({ io: m.io, mem: m.mem, clock: { now: () => 0 } }, { powerOn: 'off' });
      m.addDevice(vga);
    },
  });
  return vga!;
}

/** counts pixels that differ from expect(x, y) (reports the first few) */
function mismatches(f: Frame, expectRgb: (x: number, y: number) => [number, number, number]): string[] {
  const bad: string[] = [];
  for (let y = 0; y < f.height; y++) {
    for (let x = 0; x < f.width; x++) {
      const want = expectRgb(x, y);
      const got = f.rgb(x, y);
      if (got[0] !== want[0] || got[1] !== want[1] || got[2] !== want[2]) {
        if (bad.length < 5) bad.push(`(${x},${y}) ${got} != ${want}`);
        else if (bad.length === 5) bad.push('…');
      }
    }
  }
  return bad;
}

describe('VGA programmed by guest code', () => {
  it('mode 13h: registers from the mode table, a palette, a pattern, 16- and 32-bit stores', () => {
    const vga = runVgaProgram('mode13.asm', modeTableAsm('mode13', MODE_13H));
    const f = vga.render().frame;
    expect([f.width, f.height]).toEqual([320, 200]);
    const pal = (i: number): [number, number, number] => [c6(i & 63), c6(i >> 2), c6(63 - (i & 63))];
    const line198 = [0x11, 0x22, 0x33, 0x44];
    const line199 = [0x34, 0x12];
    const bad = mismatches(f, (x, y) => {
      if (y === 198) return pal(line198[x & 3]);
      if (y === 199) return pal(line199[x & 1]);
      return pal((x + 3 * y) & 0xff);
    });
    expect(bad).toEqual([]);
  });

  it('mode 12h: write mode 2 fill, XOR over the latches, a diagonal through the bit mask', () => {
    const vga = runVgaProgram('mode12.asm', modeTableAsm('mode12', MODE_12H));
    const f = vga.render().frame;
    expect([f.width, f.height]).toEqual([640, 480]);
    const colour = (c: number) => ega(MODE_12H.ar[c]).map(c6) as [number, number, number];
    const bad = mismatches(f, (x, y) => {
      if (x === y) return colour(15);
      let c = ((x >> 3) + (y >> 4)) & 15;
      if (y < 16 && x >= 512) c ^= 15;
      return colour(c);
    });
    expect(bad).toEqual([]);
  });

  it('80x25 text: a font loaded into plane 2, attributes, the 9th column, cursor; text dump and PNG', async () => {
    const font = testFont(16);
    let fontAsm = 'font:\n';
    for (let i = 0; i < font.length; i += 16) fontAsm += `  db ${Array.from(font.subarray(i, i + 16)).join(',')}\n`;
    const vga = runVgaProgram('text.asm', modeTableAsm('mode03', MODE_03H) + fontAsm);
    const f = vga.render().frame;
    expect([f.width, f.height]).toEqual([720, 400]);
    const text = vga.text()!;
    expect(text[0]).toBe('VGA text OK');
    expect(text[1]).toBe('');
    // all 256 codes from row 2, as CP437 (codes 0 and 255 are blank glyphs: spaces)
    for (let row = 2; row < 6; row++) {
      let want = '';
      for (let c = (row - 2) * 80; c < Math.min(256, (row - 1) * 80); c++) want += CP437[c];
      expect(text[row]).toBe(want.replace(/ +$/, ''));
    }
    expect(text[2].slice(0, 4)).toBe(' ☺☻♥');
    expect(text[4].slice(0, 3)).toBe('áíó'); // codes 0xA0–0xA2
    expect(vga.textCursor()).toEqual({ row: 24, col: 10 });
    expect(textDump(vga)!.split('\n')[0]).toBe('VGA text OK');
    // every pixel: glyph bits in the cell's colours; 9-dot cells, line graphics C0–DF repeat bit 0
    const rgbOf = (c: number) => ega(MODE_03H.ar[c]).map(c6) as [number, number, number];
    const cells = new Map<number, [number, number]>();
    'VGA text OK'.split('').forEach((ch, i) => cells.set(i, [ch.charCodeAt(0), 0x1e]));
    for (let c = 0; c < 256; c++) cells.set(160 + c, [c, 0x07]);
    const bad = mismatches(f, (x, y) => {
      const col = Math.floor(x / 9);
      const row = y >> 4;
      const [ch, attr] = cells.get(row * 80 + col) ?? [0, 0];
      const line = y & 15;
      const dx = x % 9;
      const fg = rgbOf(attr & 15);
      const bg = rgbOf(attr >> 4);
      if (row === 24 && col === 10 && (line === 13 || line === 14)) return fg; // cursor (visible phase)
      const g = testGlyphRow(ch, line);
      if (dx === 8) return ch >= 0xc0 && ch <= 0xdf && g & 1 ? fg : bg;
      return g & (0x80 >> dx) ? fg : bg;
    });
    expect(bad).toEqual([]);
    const dir = mkdtempSync(join(tmpdir(), 'x86vm-vga-'));
    await writeScreenshot(vga, join(dir, 'text.png'));
    const png = decode(readFileSync(join(dir, 'text.png')));
    expect([png.width, png.height]).toEqual([720, 400]);
    expect(Buffer.from(png.data as Uint8Array).equals(Buffer.from(f.data))).toBe(true);
  });
});

function runOptions(args: string[]): RunOptions {
  const cmd = parseCommandLine(['run', ...args]);
  if (cmd.command !== 'run') throw new Error('not a run command');
  return cmd.options;
}

const BIOS = '/usr/share/seabios/bios.bin';
const VGABIOS = '/usr/share/seabios/vgabios-stdvga.bin';

describe('VGA on the PC', () => {
  it('SeaBIOS runs vgabios-stdvga.bin from the expansion ROM: its messages are in the text dump and on screen', async () => {
    expect(existsSync(BIOS) && existsSync(VGABIOS)).toBe(true);
    let vga: Vga | null = null;
    // --bios brings the VGA with vgabios-stdvga.bin as its expansion ROM
    const r = await runVm(runOptions(['--bios', BIOS, '--vga-bios', VGABIOS, '--serial', 'none', '--timeout', '120']), {
      onReady: (vm) => {
        vga = (vm.machine.devices.find((d) => d instanceof Vga) as Vga | undefined) ?? null;
        const poll = setInterval(() => {
          if (vga?.text()?.some((l) => l.startsWith('No bootable device'))) {
            clearInterval(poll);
            vm.stop(0);
          }
        }, 50);
      },
    });
    expect(r.exitCode).toBe(0);
    const v = vga!;
    const text = v.text()!;
    expect(text[0]).toMatch(/^SeaBIOS \(version [^)]+\)$/);
    expect(text).toContain('No bootable device.');
    // the screen shows those characters with the font the VGA BIOS put in plane 2 (map 0, 16 lines)
    const f = v.render().frame;
    expect([f.width, f.height]).toEqual([720, 400]);
    const S = 'S'.charCodeAt(0);
    let lit = 0;
    for (let y = 0; y < 16; y++) {
      const g = v.vram[(S * 32 + y) * 4 + 2];
      for (let x = 0; x < 8; x++) {
        const on = (g & (0x80 >> x)) !== 0;
        if (on) lit++;
        expect(f.rgb(x, y)).toEqual(on ? [0xaa, 0xaa, 0xaa] : [0, 0, 0]);
      }
    }
    expect(lit).toBeGreaterThan(20); // a real glyph, not an empty font
  });

  it("the default guest's vgacon writes its console into the VGA text screen", async () => {
    let vga: Vga | null = null;
    const out: number[] = [];
    const r = await runVm(
      runOptions([
        '--append', 'console=tty0 console=ttyS0',
        '--serial', 'stdio',
        '--timeout', '400',
        '--expect', 'x86vm:/# ',
        '--send', 'echo VGA-MARKER-$((6*7)) > /dev/tty0; poweroff -f\\n',
      ]),
      { devices: [(pc) => void (vga = addVga(pc))], stdout: (b) => out.push(...b) },
    );
    expect(r.exitCode).toBe(0);
    const serial = Buffer.from(out).toString('latin1');
    expect(serial).toContain('Run /init as init process');
    const text = vga!.text()!;
    expect(text).toHaveLength(25);
    // the marker follows the prompt if the shell also wrote there, else it has its own line
    expect(text.join('\n')).toMatch(/^(x86vm:\/# )?VGA-MARKER-42$/m);
    expect(text.some((l) => l.startsWith('Run /init as init process'))).toBe(true);
  });
});
