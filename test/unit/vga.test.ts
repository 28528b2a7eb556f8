/**
 * The VGA (devices/vga.ts, devices/vga-render.ts): programmed through its I/O ports and written through
 * physical memory as a driver would, then checked through memory reads, the rendered frame and the text
 * dump. A real IoBus and Memory; the clock is a number the test sets.
 */
import { describe, it, expect, beforeEach } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { IoBus } from '../../core/iobus';
import { Memory, PageKind } from '../../core/memory';
import { CP437, Frame } from '../../core/screen';
import {
  Vga,
  VgaPci,
  VBE_DISPI_INDEX_BPP,
  VBE_DISPI_INDEX_ENABLE,
  VBE_DISPI_INDEX_XRES,
  VBE_DISPI_INDEX_YRES,
  VBE_DISPI_INDEX_BANK,
  VBE_DISPI_INDEX_ID,
  VBE_DISPI_INDEX_VIRT_WIDTH,
  VBE_DISPI_INDEX_VIRT_HEIGHT,
  VBE_DISPI_INDEX_X_OFFSET,
  VBE_DISPI_INDEX_Y_OFFSET,
  VBE_DISPI_INDEX_VIDEO_MEMORY_64K,
  VBE_DISPI_ENABLED,
  VBE_DISPI_GETCAPS,
  VBE_DISPI_LFB_ENABLED,
  VBE_DISPI_NOCLEARMEM,
  VBE_DISPI_8BIT_DAC,
  addVga,
} from '../../devices/vga';
import { createPciHost, devfn, PCI_COMMAND, PCI_ROM_ADDRESS } from '../../devices/pci';
import { createPc } from '../../core/pc';
import { writeScreenshot, textDump, encodePng } from '../../node/screenshot';
import { MODE_03H, MODE_12H, MODE_13H, MODE_X, testFont, testGlyphRow, ega, c6, type ModeTable } from '../conformance/vga/modes';

class Rig {
  io = new IoBus();
  mem = new Memory(2 << 20);
  t = 0;
  clock = { now: () => this.t };
  vga: Vga;
  constructor(opts: ConstructorParameters<typeof Vga>[1] = {}) {
    this.vga = new Vga(this, opts);
  }
  out(p: number, v: number): void {
    this.io.out8(p, v);
  }
  in(p: number): number {
    return this.io.in8(p);
  }
  seq(i: number, v: number): void {
    this.out(0x3c4, i);
    this.out(0x3c5, v);
  }
  gc(i: number, v: number): void {
    this.out(0x3ce, i);
    this.out(0x3cf, v);
  }
  crtc(i: number, v: number): void {
    this.out(0x3d4, i);
    this.out(0x3d5, v);
  }
  crtcRead(i: number): number {
    this.out(0x3d4, i);
    return this.in(0x3d5);
  }
  ar(i: number, v: number): void {
    this.in(0x3da);
    this.out(0x3c0, i);
    this.out(0x3c0, v);
    this.out(0x3c0, 0x20);
  }
  dac(i: number, r: number, g: number, b: number): void {
    this.out(0x3c8, i);
    this.out(0x3c9, r);
    this.out(0x3c9, g);
    this.out(0x3c9, b);
  }
  /** a mode set as a BIOS does it: sequencer in reset, all tables, CR0–7 unprotected first */
  setMode(t: ModeTable): void {
    this.out(0x3c2, t.misc);
    this.seq(0, 0x01);
    for (let i = 1; i < 5; i++) this.seq(i, t.seq[i]);
    this.seq(0, 0x03);
    this.crtc(0x11, t.crtc[0x11] & 0x7f);
    t.crtc.forEach((v, i) => this.crtc(i, v));
    t.gc.forEach((v, i) => this.gc(i, v));
    this.in(0x3da);
    t.ar.forEach((v, i) => {
      this.out(0x3c0, i);
      this.out(0x3c0, v);
    });
    this.out(0x3c0, 0x20);
  }
  dispi(i: number, v: number): void {
    this.io.out16(0x1ce, i);
    this.io.out16(0x1cf, v);
  }
  dispiRead(i: number): number {
    this.io.out16(0x1ce, i);
    return this.io.in16(0x1cf);
  }
}

const rgb = (f: Frame, x: number, y: number) => f.rgb(x, y);

describe('VGA registers', () => {
  let r: Rig;
  beforeEach(() => {
    r = new Rig();
  });

  it('powers on in 80x25 colour text mode with the EGA palette, as a VGA BIOS leaves it', () => {
    expect(r.in(0x3cc)).toBe(0x67);
    expect(r.crtcRead(0x01)).toBe(0x4f);
    expect(r.crtcRead(0x09)).toBe(0x4f);
    r.out(0x3c7, 0x3f);
    expect([r.in(0x3c9), r.in(0x3c9), r.in(0x3c9)]).toEqual([0x3f, 0x3f, 0x3f]);
    r.out(0x3c7, 0x14);
    expect([r.in(0x3c9), r.in(0x3c9), r.in(0x3c9)]).toEqual([0x2a, 0x15, 0x00]); // brown
    const u = r.vga.render();
    expect([u.frame.width, u.frame.height]).toEqual([720, 400]);
    expect(r.vga.text()).toHaveLength(25);
    const off = new Rig({ powerOn: 'off' });
    expect(off.in(0x3cc)).toBe(0);
    expect(off.vga.text()).toBeNull(); // no picture described
    expect(off.vga.render().frame.width).toBe(640);
  });

  it('sequencer, graphics controller and CRTC keep only their defined bits; CR0–7 protection spares CR7 bit 4', () => {
    r.seq(4, 0xff);
    r.out(0x3c4, 4);
    expect(r.in(0x3c5)).toBe(0x0e);
    r.gc(5, 0xff);
    r.out(0x3ce, 5);
    expect(r.in(0x3cf)).toBe(0x7b);
    r.crtc(0x11, 0x80); // protect
    r.crtc(0x01, 0x12);
    expect(r.crtcRead(0x01)).toBe(0x4f);
    r.crtc(0x07, 0x00);
    expect(r.crtcRead(0x07)).toBe(0x0f); // 0x1f with bit 4 cleared
    r.crtc(0x07, 0x10);
    expect(r.crtcRead(0x07)).toBe(0x1f);
    r.crtc(0x11, 0x00);
    r.crtc(0x01, 0x12);
    expect(r.crtcRead(0x01)).toBe(0x12);
  });

  it('decodes the CRTC at 0x3Dx or 0x3Bx as misc bit 0 selects', () => {
    r.out(0x3b4, 0x0e);
    expect(r.in(0x3b5)).toBe(0xff); // colour: mono ports float
    r.out(0x3c2, 0x66); // mono
    r.out(0x3b4, 0x0c);
    r.out(0x3b5, 0x12);
    expect(r.vga.crtc[0x0c]).toBe(0x12);
    expect(r.in(0x3d5)).toBe(0xff);
  });

  it('attribute controller: index/data flip-flop, reset by reading input status 1, index read back with PAS', () => {
    r.in(0x3da);
    r.out(0x3c0, 0x01);
    r.out(0x3c0, 0x2a);
    expect(r.vga.ar[1]).toBe(0x2a);
    r.out(0x3c0, 0x22); // index 2 with PAS set (flip-flop back at index)
    expect(r.in(0x3c0)).toBe(0x22);
    r.out(0x3c0, 0x15);
    expect(r.vga.ar[2]).toBe(0x15);
    r.out(0x3c0, 0x03); // index
    r.in(0x3da); // reset: the next write is an index again
    r.out(0x3c0, 0x24);
    r.out(0x3c0, 0x3f);
    expect(r.vga.ar[3]).toBe(0x03);
    expect(r.vga.ar[4]).toBe(0x3f);
    expect(r.in(0x3c1)).toBe(0x3f);
  });

  it('DAC: write and read indexes auto-increment over triplets, reads give 6 bits, pixel mask and state', () => {
    r.out(0x3c8, 0xfe);
    for (const v of [1, 2, 3, 4, 5, 0xff]) r.out(0x3c9, v);
    expect(r.in(0x3c8)).toBe(0x00); // wrapped after two entries
    expect(r.in(0x3c7)).toBe(0);
    r.out(0x3c7, 0xfe);
    expect(r.in(0x3c7)).toBe(3);
    expect([1, 2, 3, 4, 5, 6].map(() => r.in(0x3c9))).toEqual([1, 2, 3, 4, 5, 0x3f]);
    r.out(0x3c6, 0x0f);
    expect(r.in(0x3c6)).toBe(0x0f);
  });

  it('input status 1 shows vertical retrace and display-disable at the frame rate the CRTC describes', () => {
    // mode 3: 28.322 MHz, 9-dot chars, 100 chars a line, 449 lines: 70.09 Hz, retrace from line 412
    const lineNs = (100 * 9 * 1e9) / 28_322_000;
    const frameNs = lineNs * 449;
    expect(1e9 / r.vga.frameTimeNs).toBeCloseTo(70.09, 1);
    r.t = lineNs * 10 + lineNs * 0.2; // active display
    expect(r.in(0x3da) & 0x09).toBe(0);
    r.t = lineNs * 10 + lineNs * 0.9; // horizontal blank
    expect(r.in(0x3da) & 0x09).toBe(0x01);
    r.t = lineNs * 405; // vertical blank, before retrace
    expect(r.in(0x3da) & 0x09).toBe(0x01);
    r.t = frameNs * 3 + lineNs * 413; // in vertical retrace, three frames later
    expect(r.in(0x3da) & 0x09).toBe(0x09);
    r.t = frameNs * 3 + lineNs * 415; // retrace ends at line 414 (CR11 low bits 0xE)
    expect(r.in(0x3da) & 0x08).toBe(0);
    // mode 13h runs at 25.175 MHz, 8-dot: 70.08 Hz as well, retrace at line 412
    r.setMode(MODE_13H);
    expect(1e9 / r.vga.frameTimeNs).toBeCloseTo(70.08, 1);
  });
});

describe('VGA memory: planar paths', () => {
  let r: Rig;
  beforeEach(() => {
    r = new Rig();
    r.setMode(MODE_12H);
  });
  const planeByte = (pa: number, p: number) => r.vga.vram[pa * 4 + p];

  it('write mode 0 with the map mask writes the byte to the enabled planes only', () => {
    r.seq(2, 0x05);
    r.mem.write8(0xa0010, 0x5a);
    expect([0, 1, 2, 3].map((p) => planeByte(0x10, p))).toEqual([0x5a, 0, 0x5a, 0]);
  });

  it('set/reset, bit mask, rotate and the ALU functions combine with the latches', () => {
    // fill address 0 with 0xF0 in all planes, latch it, then write through set/reset + bit mask
    r.mem.write8(0xa0000, 0xf0);
    r.gc(0, 0x05); // set/reset colour 0101
    r.gc(1, 0x03); // enabled for planes 0 and 1
    r.gc(8, 0x3c); // bit mask
    r.mem.read8(0xa0000); // load latches
    r.mem.write8(0xa0000, 0x0f);
    // plane 0: set/reset 1 → 0xFF, plane 1: 0, planes 2/3: data 0x0F; masked with 0x3C over latch 0xF0
    expect([0, 1, 2, 3].map((p) => planeByte(0, p))).toEqual([0xfc, 0xc0, 0xcc, 0xcc]);
    r.gc(1, 0);
    r.gc(8, 0xff);
    r.gc(3, 0x08 | 4); // AND, rotate right by 4
    r.mem.read8(0xa0000);
    r.mem.write8(0xa0000, 0x3c); // rotated: 0xC3
    expect([0, 1, 2, 3].map((p) => planeByte(0, p))).toEqual([0xc0, 0xc0, 0xc0, 0xc0]);
    r.gc(3, 0x18); // XOR
    r.mem.read8(0xa0000);
    r.mem.write8(0xa0000, 0xff);
    expect(planeByte(0, 0)).toBe(0x3f);
    r.gc(3, 0x10); // OR
    r.mem.read8(0xa0000);
    r.mem.write8(0xa0000, 0x80);
    expect(planeByte(0, 3)).toBe(0xbf);
  });

  it('write mode 1 copies the latches (a VRAM-to-VRAM copy of all four planes)', () => {
    for (let p = 0; p < 4; p++) r.vga.vram[0x100 * 4 + p] = 0x11 * (p + 1);
    r.gc(5, 0x01);
    r.mem.read8(0xa0100);
    r.mem.write8(0xa0200, 0x00);
    expect([0, 1, 2, 3].map((p) => planeByte(0x200, p))).toEqual([0x11, 0x22, 0x33, 0x44]);
  });

  it('write mode 2 spreads the colour to the planes under the bit mask; write mode 3 masks with the rotated data', () => {
    r.gc(5, 0x02);
    r.gc(8, 0x81);
    r.mem.read8(0xa0020);
    r.mem.write8(0xa0020, 0x0a); // colour 1010 on pixels 0 and 7
    expect([0, 1, 2, 3].map((p) => planeByte(0x20, p))).toEqual([0, 0x81, 0, 0x81]);
    r.gc(5, 0x03);
    r.gc(0, 0x0c); // set/reset colour 1100
    r.gc(8, 0xf0);
    r.mem.read8(0xa0020);
    r.mem.write8(0xa0020, 0x3c); // effective mask 0x30
    expect([0, 1, 2, 3].map((p) => planeByte(0x20, p))).toEqual([0, 0x81, 0x30, 0xb1]);
  });

  it('read mode 0 returns the selected plane; read mode 1 compares colours with don’t-care', () => {
    const colours = [3, 3, 5, 7, 3, 0, 3, 11]; // pixel colours at address 0x30
    for (let p = 0; p < 4; p++) {
      let b = 0;
      colours.forEach((c, i) => (b |= ((c >> p) & 1) << (7 - i)));
      r.vga.vram[0x30 * 4 + p] = b;
    }
    r.gc(4, 2);
    expect(r.mem.read8(0xa0030)).toBe(r.vga.vram[0x30 * 4 + 2]);
    r.gc(5, 0x08);
    r.gc(2, 3);
    r.gc(7, 0x0f);
    expect(r.mem.read8(0xa0030)).toBe(0b11001010);
    r.gc(7, 0x03); // only planes 0–1 matter: 7 and 11 match 3 as well
    expect(r.mem.read8(0xa0030)).toBe(0b11011011);
  });

  it('chain-4 maps address A to plane A&3 at A&~3; unchained addressing then sees the planes', () => {
    r.setMode(MODE_13H);
    for (let i = 0; i < 8; i++) r.mem.write8(0xa0000 + i, 0x10 + i);
    expect(r.mem.read8(0xa0005)).toBe(0x15);
    expect([0, 1, 2, 3].map((p) => planeByte(4, p))).toEqual([0x14, 0x15, 0x16, 0x17]);
    expect(planeByte(1, 1)).toBe(0); // nothing at the other plane addresses
    r.seq(4, 0x06); // chain-4 off
    r.gc(4, 1);
    expect(r.mem.read8(0xa0004)).toBe(0x15);
    r.gc(4, 3);
    expect(r.mem.read8(0xa0000)).toBe(0x13);
    // 16- and 32-bit stores go byte by byte through the planes
    r.seq(4, 0x0e);
    r.mem.write32(0xa0100, 0x44332211);
    expect([0, 1, 2, 3].map((p) => planeByte(0x100, p))).toEqual([0x11, 0x22, 0x33, 0x44]);
    expect(r.mem.read32(0xa0100) >>> 0).toBe(0x44332211);
  });

  it('odd/even (text) addressing: even bytes to plane 0, odd to plane 1, at address A&~1', () => {
    r.setMode(MODE_03H);
    r.mem.write16(0xb8010, 0x1f41);
    expect(planeByte(0x10, 0)).toBe(0x41);
    expect(planeByte(0x10, 1)).toBe(0x1f);
    expect(r.mem.read16(0xb8010)).toBe(0x1f41);
    expect(r.mem.read8(0xa0000)).toBe(0xff); // outside the B8000 window
    r.mem.write8(0xa0000, 1);
    expect(planeByte(0, 0)).toBe(0);
  });

  it('GR6 selects the window: B0000 32K, A0000 64K, A0000 128K', () => {
    r.gc(6, 0x09); // B0000, graphics
    r.mem.write8(0xb0004, 0x77);
    expect(planeByte(4, 0)).toBe(0x77);
    r.mem.write8(0xb8004, 0x11);
    expect(planeByte(4, 0)).toBe(0x77);
    r.gc(6, 0x01); // A0000–BFFFF
    r.mem.write8(0xb0008, 0x66); // offset 0x10008 wraps in the 64K planes
    expect(planeByte(8, 0)).toBe(0x66);
  });
});

describe('VGA rendering', () => {
  it('text mode: glyphs from plane 2 (9 dots, line-graphics column), attributes, cursor, blink, text dump', () => {
    const r = new Rig({ font: testFont(16) });
    const v = r.vga;
    const put = (row: number, col: number, ch: number, attr: number) => r.mem.write16(0xb8000 + (row * 80 + col) * 2, ch | (attr << 8));
    'Hello, VGA'.split('').forEach((c, i) => put(0, i, c.charCodeAt(0), 0x1e));
    put(3, 5, 0xc4, 0x07); // ─ line graphics: 9th column repeats the 8th
    put(3, 6, 0x41, 0x87); // blinking
    put(24, 79, 0xdb, 0x4f);
    r.crtc(0x0e, 0);
    r.crtc(0x0f, 2 * 80 + 3); // cursor at row 2, column 3
    r.t = 0; // cursor and blink both in their visible phase
    const f = v.render().frame;
    const fg = [0xff, 0xff, 0x55]; // yellow (attribute 0x1E: 14 on 1)
    const bg = [0, 0, 0xaa];
    for (let y = 0; y < 16; y++) {
      const g = testGlyphRow('H'.charCodeAt(0), y);
      for (let x = 0; x < 8; x++) expect(rgb(f, x, y)).toEqual(g & (0x80 >> x) ? fg : bg);
      expect(rgb(f, 8, y)).toEqual(bg); // 9th column of a letter: background
    }
    const gl = testGlyphRow(0xc4, 7);
    expect(rgb(f, 5 * 9 + 8, 3 * 16 + 7)).toEqual(gl & 1 ? [0xaa, 0xaa, 0xaa] : [0, 0, 0]);
    // cursor: scan lines 13–14 of the cell, in the cell's foreground (attribute 0 there: black on black)
    put(2, 3, 0x20, 0x0a);
    const f2 = v.render().frame;
    expect(rgb(f2, 3 * 9 + 4, 2 * 16 + 13)).toEqual([0x55, 0xff, 0x55]);
    expect(rgb(f2, 3 * 9 + 4, 2 * 16 + 12)).toEqual(testGlyphRow(0x20, 12) & 0x08 ? [0x55, 0xff, 0x55] : [0, 0, 0]);
    // blink: in the off phase the blinking character shows its background only; the cursor is off too
    r.t = v.frameTimeNs * 48; // frame 48: cursor phase (frame & 16) off, blink phase (frame & 32) off
    const f3 = v.render().frame;
    for (let y = 0; y < 16; y++) for (let x = 0; x < 9; x++) expect(rgb(f3, 6 * 9 + x, 3 * 16 + y)).toEqual([0, 0, 0]);
    expect(rgb(f3, 3 * 9 + 4, 2 * 16 + 13)).toEqual(testGlyphRow(0x20, 13) & 0x08 ? [0x55, 0xff, 0x55] : [0, 0, 0]);
    expect(rgb(f3, 3 * 9 + 8, 2 * 16 + 13)).toEqual([0, 0, 0]); // 9th column: only the cursor would light it
    const text = v.text()!;
    expect(text[0]).toBe('Hello, VGA');
    expect(text[3]).toBe('     ─A');
    expect(text[24]).toBe(' '.repeat(79) + '█');
    expect(v.textCursor()).toEqual({ row: 2, col: 3 });
    expect(textDump(v)!.split('\n')[0]).toBe('Hello, VGA');
    // one character changed: the update covers just its cell
    r.t = 0;
    v.render();
    put(10, 20, 0x42, 0x07);
    expect(v.render().rects).toEqual([{ x: 20 * 9, y: 10 * 16, w: 9, h: 16 }]);
    expect(v.render().rects).toEqual([]);
    // the cursor moving redraws the old and the new cell only
    r.crtc(0x0f, 2 * 80 + 4);
    expect(v.render().rects).toEqual([{ x: 3 * 9, y: 2 * 16, w: 18, h: 16 }]);
    // a font change redraws everything
    r.seq(2, 0x04);
    r.seq(4, 0x06);
    r.gc(4, 2);
    r.gc(5, 0);
    r.gc(6, 0x04);
    r.mem.write8(0xa0000 + 0x41 * 32, 0xff);
    expect(v.render().rects).toEqual([{ x: 0, y: 0, w: 720, h: 400 }]);
  });

  it('text mode follows the start address (hardware scrolling) and renders 80x50 with an 8-line font', () => {
    const r = new Rig();
    r.vga.loadFont(testFont(8));
    for (let row = 0; row < 60; row++) {
      const s = `row ${row}`;
      for (let i = 0; i < s.length; i++) r.mem.write16(0xb8000 + (row * 80 + i) * 2, s.charCodeAt(i) | 0x0700);
    }
    r.crtc(0x0c, (80 * 5) >> 8);
    r.crtc(0x0d, (80 * 5) & 0xff);
    expect(r.vga.text()![0]).toBe('row 5');
    r.crtc(0x09, (r.crtcRead(0x09) & ~0x1f) | 7); // 8 scan lines a row: 50 rows
    const t = r.vga.text()!;
    expect(t).toHaveLength(50);
    expect(t[49]).toBe('row 54');
    const f = r.vga.render().frame;
    expect([f.width, f.height]).toEqual([720, 400]);
    const g = testGlyphRow('r'.charCodeAt(0), 3); // row 49 on screen = "row 54", glyph line 3
    for (let x = 0; x < 8; x++) expect(rgb(f, x, 49 * 8 + 3)).toEqual(g & (0x80 >> x) ? [0xaa, 0xaa, 0xaa] : [0, 0, 0]);
  });

  it('mode 13h: 320x200, chained bytes through the DAC, pixel mask; dirty rectangles cover only changed lines', () => {
    const r = new Rig();
    r.setMode(MODE_13H);
    r.dac(1, 63, 0, 0);
    r.dac(2, 0, 63, 0);
    r.dac(3, 0, 0, 63);
    r.dac(0x83, 10, 20, 30);
    for (let x = 0; x < 320; x++) r.mem.write8(0xa0000 + 50 * 320 + x, (x % 3) + 1);
    r.mem.write8(0xa0000 + 199 * 320 + 319, 0x83);
    let u = r.vga.render();
    expect([u.frame.width, u.frame.height]).toEqual([320, 200]);
    expect(u.rects).toEqual([{ x: 0, y: 0, w: 320, h: 200 }]);
    expect(rgb(u.frame, 0, 50)).toEqual([255, 0, 0]);
    expect(rgb(u.frame, 1, 50)).toEqual([0, 255, 0]);
    expect(rgb(u.frame, 2, 50)).toEqual([0, 0, 255]);
    expect(rgb(u.frame, 319, 199)).toEqual([c6(10), c6(20), c6(30)]);
    expect(rgb(u.frame, 5, 49)).toEqual([0, 0, 0]);
    u = r.vga.render();
    expect(u.rects).toEqual([]);
    r.mem.write8(0xa0000 + 120 * 320 + 7, 2);
    u = r.vga.render();
    // one 4 KiB page of plane memory holds 1024 plane addresses = 4096 pixels: the lines that read it
    expect(u.rects.length).toBe(1);
    const rc = u.rects[0];
    expect(rc.x).toBe(0);
    expect(rc.w).toBe(320);
    expect(rc.y).toBeLessThanOrEqual(120);
    expect(rc.y + rc.h).toBeGreaterThan(120);
    expect(rc.h).toBeLessThanOrEqual(14);
    expect(rgb(u.frame, 7, 120)).toEqual([0, 255, 0]);
    r.out(0x3c6, 0x03); // pixel mask: 0x83 → 3
    u = r.vga.render();
    expect(u.rects).toEqual([{ x: 0, y: 0, w: 320, h: 200 }]);
    expect(rgb(u.frame, 319, 199)).toEqual([0, 0, 255]);
  });

  it('mode 12h: 640x480 planar through the attribute palette; line compare splits the screen; panning', () => {
    const r = new Rig();
    r.setMode(MODE_12H);
    // pixel x of line 0 gets colour x & 15 (write mode 2, one pixel at a time through the bit mask)
    r.gc(5, 0x02);
    for (let x = 0; x < 32; x++) {
      r.gc(8, 0x80 >> (x & 7));
      r.mem.read8(0xa0000 + (x >> 3));
      r.mem.write8(0xa0000 + (x >> 3), x & 15);
    }
    // line 1 (address 80): colour 9 everywhere
    r.gc(8, 0xff);
    for (let i = 0; i < 80; i++) r.mem.write8(0xa0000 + 80 + i, 9);
    let f = r.vga.render().frame;
    expect([f.width, f.height]).toEqual([640, 480]);
    for (let x = 0; x < 32; x++) expect(rgb(f, x, 0)).toEqual(ega(MODE_12H.ar[x & 15]).map(c6));
    expect(rgb(f, 300, 1)).toEqual([0x55, 0x55, 0xff]);
    // colour plane enable masks bit 3: colour 9 shows as 1
    r.ar(0x12, 0x07);
    f = r.vga.render().frame;
    expect(rgb(f, 300, 1)).toEqual([0, 0, 0xaa]);
    r.ar(0x12, 0x0f);
    // start address 80 (line 1 on top), line compare 239: lines from 240 show address 0 again
    r.crtc(0x0c, 0);
    r.crtc(0x0d, 80);
    r.crtc(0x07, r.crtcRead(0x07) & ~0x10); // line compare bit 8
    r.crtc(0x09, r.crtcRead(0x09) & ~0x40); // line compare bit 9
    r.crtc(0x18, 239);
    f = r.vga.render().frame;
    expect(rgb(f, 300, 0)).toEqual([0x55, 0x55, 0xff]);
    expect(rgb(f, 5, 240)).toEqual(ega(MODE_12H.ar[5]).map(c6));
    expect(rgb(f, 300, 241)).toEqual([0x55, 0x55, 0xff]);
    // horizontal pixel panning by 3: pixel 0 shows what was pixel 3
    r.crtc(0x0d, 0);
    r.crtc(0x18, 0xff);
    r.ar(0x13, 3);
    f = r.vga.render().frame;
    expect(rgb(f, 0, 0)).toEqual(ega(MODE_12H.ar[3]).map(c6));
    // double scan (CR9 bit 7): every memory line shown twice, the frame is 640x240
    r.ar(0x13, 0);
    r.crtc(0x09, 0x80);
    f = r.vga.render().frame;
    expect([f.width, f.height]).toEqual([640, 240]);
    expect(rgb(f, 300, 1)).toEqual([0x55, 0x55, 0xff]);
    expect(rgb(f, 5, 0)).toEqual(ega(MODE_12H.ar[5]).map(c6));
  });

  it('Mode X: unchained 256 colours, 320x240, four pixels per address from the four planes', () => {
    const r = new Rig();
    r.setMode(MODE_X);
    for (let i = 0; i < 16; i++) r.dac(i, i * 4, 0, 63 - i * 4);
    // pixel (x, y) at plane x & 3, address y * 80 + (x >> 2)
    const put = (x: number, y: number, c: number) => {
      r.seq(2, 1 << (x & 3));
      r.mem.write8(0xa0000 + y * 80 + (x >> 2), c);
    };
    for (let x = 0; x < 16; x++) put(x, 239, x);
    put(319, 0, 7);
    const f = r.vga.render().frame;
    expect([f.width, f.height]).toEqual([320, 240]);
    for (let x = 0; x < 16; x++) expect(rgb(f, x, 239)).toEqual([c6(x * 4), 0, c6(63 - x * 4)]);
    expect(rgb(f, 319, 0)).toEqual([c6(28), 0, c6(35)]);
    // the bit mask and latches copy four pixels in one byte write (write mode 1)
    r.seq(2, 0x0f);
    r.gc(5, 0x41);
    r.mem.read8(0xa0000 + 239 * 80);
    r.mem.write8(0xa0000 + 100 * 80 + 10, 0);
    const f2 = r.vga.render().frame;
    for (let x = 0; x < 4; x++) expect(rgb(f2, 40 + x, 100)).toEqual([c6(x * 4), 0, c6(63 - x * 4)]);
  });

  it('a blanked display (screen off, or palette address source clear) renders black at the mode size', () => {
    const r = new Rig();
    r.setMode(MODE_13H);
    r.dac(1, 63, 63, 63);
    r.mem.write8(0xa0000, 1);
    expect(rgb(r.vga.render().frame, 0, 0)).toEqual([255, 255, 255]);
    r.seq(1, 0x21);
    const u = r.vga.render();
    expect([u.frame.width, u.frame.height]).toEqual([320, 200]);
    expect(rgb(u.frame, 0, 0)).toEqual([0, 0, 0]);
    r.seq(1, 0x01);
    expect(rgb(r.vga.render().frame, 0, 0)).toEqual([255, 255, 255]);
    r.in(0x3da);
    r.out(0x3c0, 0x00); // PAS = 0
    expect(rgb(r.vga.render().frame, 0, 0)).toEqual([0, 0, 0]);
  });
});

describe('Bochs VBE (dispi)', () => {
  it('identifies itself, reports memory and capabilities, and fixes up register values', () => {
    const r = new Rig();
    expect(r.dispiRead(VBE_DISPI_INDEX_ID)).toBe(0xb0c5);
    r.dispi(VBE_DISPI_INDEX_ID, 0xb0c0);
    expect(r.dispiRead(VBE_DISPI_INDEX_ID)).toBe(0xb0c0);
    r.dispi(VBE_DISPI_INDEX_ID, 0x1234);
    expect(r.dispiRead(VBE_DISPI_INDEX_ID)).toBe(0xb0c0);
    expect(r.dispiRead(VBE_DISPI_INDEX_VIDEO_MEMORY_64K)).toBe(256);
    r.dispi(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_GETCAPS);
    // QEMU's limits (hw/display/bochs-vbe.h), which decide the VGA BIOS's mode list
    expect([r.dispiRead(VBE_DISPI_INDEX_XRES), r.dispiRead(VBE_DISPI_INDEX_YRES), r.dispiRead(VBE_DISPI_INDEX_BPP)]).toEqual([16000, 12000, 32]);
    r.dispi(VBE_DISPI_INDEX_ENABLE, 0);
    r.dispi(VBE_DISPI_INDEX_XRES, 1027); // rounded down to a multiple of 8
    r.dispi(VBE_DISPI_INDEX_YRES, 768);
    r.dispi(VBE_DISPI_INDEX_BPP, 17); // invalid: becomes 8 on enable
    r.dispi(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED);
    expect(r.dispiRead(VBE_DISPI_INDEX_XRES)).toBe(1024);
    expect(r.dispiRead(VBE_DISPI_INDEX_BPP)).toBe(8);
    expect(r.dispiRead(VBE_DISPI_INDEX_VIRT_WIDTH)).toBe(1024);
    expect(r.dispiRead(VBE_DISPI_INDEX_VIRT_HEIGHT)).toBe(16384); // 16 MiB / 1024
    r.dispi(VBE_DISPI_INDEX_Y_OFFSET, 16000); // clamped to the largest y resolution
    expect(r.dispiRead(VBE_DISPI_INDEX_Y_OFFSET)).toBe(12000);
    r.dispi(VBE_DISPI_INDEX_BPP, 32);
    r.dispi(VBE_DISPI_INDEX_VIRT_WIDTH, 2560);
    r.dispi(VBE_DISPI_INDEX_YRES, 1600);
    expect(r.dispiRead(VBE_DISPI_INDEX_VIRT_HEIGHT)).toBe(1638);
    r.dispi(VBE_DISPI_INDEX_Y_OFFSET, 100); // the picture would run past the memory: back to 0
    expect(r.dispiRead(VBE_DISPI_INDEX_Y_OFFSET)).toBe(0);
    r.dispi(VBE_DISPI_INDEX_Y_OFFSET, 38);
    expect(r.dispiRead(VBE_DISPI_INDEX_Y_OFFSET)).toBe(38);
    // the VGA registers read back as a graphics mode with the 64K window
    expect(r.vga.gc[6] & 0x0d).toBe(0x05);
    expect(r.crtcRead(0x01)).toBe(127);
    expect(r.vga.text()).toBeNull();
  });

  it('32, 24, 16, 15 and 8 bpp through the banked window at A0000; enabling clears memory unless told not to', () => {
    const r = new Rig();
    const mode = (w: number, h: number, bpp: number, flags = 0) => {
      r.dispi(VBE_DISPI_INDEX_ENABLE, 0);
      r.dispi(VBE_DISPI_INDEX_XRES, w);
      r.dispi(VBE_DISPI_INDEX_YRES, h);
      r.dispi(VBE_DISPI_INDEX_BPP, bpp);
      r.dispi(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | flags);
    };
    mode(640, 480, 32);
    // pixel (100, 30) = offset 30*2560 + 400 = 77200: bank 1, offset 11664
    r.dispi(VBE_DISPI_INDEX_BANK, 1);
    r.mem.write32(0xa0000 + 11664, 0x00123456);
    let f = r.vga.render().frame;
    expect([f.width, f.height]).toEqual([640, 480]);
    expect(rgb(f, 100, 30)).toEqual([0x12, 0x34, 0x56]);
    expect(r.mem.read32(0xa0000 + 11664)).toBe(0x00123456);
    mode(640, 480, 32, VBE_DISPI_NOCLEARMEM);
    expect(rgb(r.vga.render().frame, 100, 30)).toEqual([0x12, 0x34, 0x56]);
    mode(640, 480, 32);
    expect(rgb(r.vga.render().frame, 100, 30)).toEqual([0, 0, 0]);
    mode(320, 200, 24);
    r.dispi(VBE_DISPI_INDEX_BANK, 0);
    [0x30, 0x20, 0x10].forEach((b, i) => r.mem.write8(0xa0000 + 3 * 5 + i, b));
    expect(rgb(r.vga.render().frame, 5, 0)).toEqual([0x10, 0x20, 0x30]);
    mode(320, 200, 16);
    r.mem.write16(0xa0000 + 2 * 7, (31 << 11) | (32 << 5) | 0);
    expect(rgb(r.vga.render().frame, 7, 0)).toEqual([255, 130, 0]);
    mode(320, 200, 15);
    r.mem.write16(0xa0000 + 2 * 7, (0 << 10) | (31 << 5) | 16);
    expect(rgb(r.vga.render().frame, 7, 0)).toEqual([0, 255, 132]);
    mode(320, 200, 8);
    r.dac(9, 63, 32, 0);
    r.mem.write8(0xa0000 + 320 + 1, 9);
    expect(rgb(r.vga.render().frame, 1, 1)).toEqual([255, c6(32), 0]);
    // the 8-bit DAC: values are used as written
    r.dispi(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_8BIT_DAC | VBE_DISPI_NOCLEARMEM);
    r.dac(9, 200, 100, 50);
    r.out(0x3c7, 9);
    expect(r.in(0x3c9)).toBe(200);
    expect(rgb(r.vga.render().frame, 1, 1)).toEqual([200, 100, 50]);
  });

  it('display start (x/y offset) and virtual width pan the picture', () => {
    const r = new Rig();
    r.dispi(VBE_DISPI_INDEX_XRES, 64);
    r.dispi(VBE_DISPI_INDEX_YRES, 32);
    r.dispi(VBE_DISPI_INDEX_BPP, 32);
    r.dispi(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED);
    r.dispi(VBE_DISPI_INDEX_VIRT_WIDTH, 128);
    r.mem.write32(0xa0000 + (10 * 128 + 70) * 4, 0x00ff0000);
    r.dispi(VBE_DISPI_INDEX_X_OFFSET, 64);
    r.dispi(VBE_DISPI_INDEX_Y_OFFSET, 8);
    expect(rgb(r.vga.render().frame, 6, 2)).toEqual([255, 0, 0]);
  });

  it('4 bpp VBE modes are planar with the bank selecting 64K plane addresses', () => {
    const r = new Rig();
    r.setMode(MODE_12H);
    r.dispi(VBE_DISPI_INDEX_XRES, 800);
    r.dispi(VBE_DISPI_INDEX_YRES, 600);
    r.dispi(VBE_DISPI_INDEX_BPP, 4);
    r.dispi(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED);
    // line 599 starts at plane address 599 * 100 = 59900; pixel 800*599+... use bank 1 for line 700? no: 600 lines fit
    r.seq(2, 0x0f);
    r.gc(5, 0x02);
    r.gc(8, 0xff);
    r.mem.write8(0xa0000 + 599 * 100 + 99, 12);
    const f = r.vga.render().frame;
    expect([f.width, f.height]).toEqual([800, 600]);
    expect(rgb(f, 799, 599)).toEqual(ega(MODE_12H.ar[12]).map(c6));
    r.dispi(VBE_DISPI_INDEX_BANK, 1);
    r.mem.write8(0xa0000 + 5, 7);
    expect(r.vga.vram[(0x10000 + 5) * 4 + 1]).toBe(0xff);
  });
});

describe('VGA on PCI', () => {
  it('is 1234:1111 class 0300 with a 16 MiB prefetchable BAR0 framebuffer that renders what is written', () => {
    const pc = createPc({ memSize: 32 << 20, apic: false });
    const vga = addVga(pc);
    const bus = pc.pci!.bus;
    const df = devfn(2);
    expect(bus.configRead(df, 0, 4)).toBe(0x11111234);
    expect(bus.configRead(df, 8, 4) >>> 8).toBe(0x030000);
    bus.configWrite(df, 0x10, 0xffffffff, 4);
    expect(bus.configRead(df, 0x10, 4)).toBe(0xff000008);
    bus.configWrite(df, 0x10, 0xfd000000, 4);
    bus.configWrite(df, 0x18, 0xfebf0000, 4);
    bus.configWrite(df, PCI_COMMAND, 0x0003, 2);
    expect(vga.pci!.lfbAddress).toBe(0xfd000000);
    // what Linux's bochs DRM does: mode through the MMIO BAR's dispi registers, pixels through BAR0
    pc.mem.write16(0xfebf0500 + 2 * VBE_DISPI_INDEX_XRES, 800);
    pc.mem.write16(0xfebf0500 + 2 * VBE_DISPI_INDEX_YRES, 600);
    pc.mem.write16(0xfebf0500 + 2 * VBE_DISPI_INDEX_BPP, 32);
    pc.mem.write16(0xfebf0500 + 2 * VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED);
    expect(pc.mem.read16(0xfebf0500 + 2 * VBE_DISPI_INDEX_VIDEO_MEMORY_64K)).toBe(256);
    pc.mem.write8(0xfebf0400, 0x20); // the attribute index through the VGA port window
    expect(vga.arIndex).toBe(0x20);
    for (let x = 0; x < 800; x++) pc.mem.write32(0xfd000000 + (599 * 800 + x) * 4, 0x0000ff00);
    pc.mem.write32(0xfd000000 + 4 * 3 + 1, 0x11223344); // unaligned
    const f = vga.render().frame;
    expect([f.width, f.height]).toEqual([800, 600]);
    expect(rgb(f, 0, 599)).toEqual([0, 255, 0]);
    expect(rgb(f, 799, 599)).toEqual([0, 255, 0]);
    expect(pc.mem.read32(0xfd000000 + 4 * 3 + 1)).toBe(0x11223344);
    // moving the BAR moves the framebuffer
    bus.configWrite(df, 0x10, 0xe0000000, 4);
    expect(pc.mem.pageKind[0xfd000]).toBe(PageKind.None);
    expect(pc.mem.read32(0xe0000000 + 599 * 800 * 4)).toBe(0x0000ff00);
  });

  it('carries a VGA BIOS in its expansion ROM BAR, mapped while enabled and memory decode is on', () => {
    const pc = createPc({ memSize: 32 << 20, apic: false });
    const rom = new Uint8Array(39936);
    rom[0] = 0x55;
    rom[1] = 0xaa;
    rom[2] = 39936 / 512;
    rom[39935] = 0x77;
    const vga = addVga(pc, { romImage: rom });
    const bus = pc.pci!.bus;
    const df = devfn(2);
    bus.configWrite(df, PCI_ROM_ADDRESS, 0xfffffffe, 4);
    expect(bus.configRead(df, PCI_ROM_ADDRESS, 4)).toBe(0xffff0000); // 64 KiB
    bus.configWrite(df, PCI_ROM_ADDRESS, 0xfeb00000, 4);
    bus.configWrite(df, PCI_COMMAND, 0x0002, 2);
    expect(vga.pci!.romAddress).toBe(-1);
    bus.configWrite(df, PCI_ROM_ADDRESS, 0xfeb00001, 4);
    expect(vga.pci!.romAddress).toBe(0xfeb00000);
    expect(pc.mem.read16(0xfeb00000)).toBe(0xaa55);
    expect(pc.mem.read8(0xfeb00000 + 39935)).toBe(0x77);
    bus.configWrite(df, PCI_COMMAND, 0x0000, 2);
    expect(pc.mem.read8(0xfeb00000)).toBe(0xff);
    // without an image the ROM BAR reads as absent
    const pc2 = createPc({ memSize: 32 << 20, apic: false });
    addVga(pc2);
    pc2.pci!.bus.configWrite(df, PCI_ROM_ADDRESS, 0xfffffffe, 4);
    expect(pc2.pci!.bus.configRead(df, PCI_ROM_ADDRESS, 4)).toBe(0);
  });

  it('survives a PCI reset and a bus state round trip with its mappings', () => {
    const io = new IoBus();
    const mem = new Memory(4 << 20);
    const { bus } = createPciHost({ io, mem }, undefined);
    const vga = new Vga({ io, mem, clock: { now: () => 0 } });
    const fn = bus.add(new VgaPci(vga, mem), devfn(2));
    bus.configWrite(devfn(2), 0x10, 0xfc000000, 4);
    bus.configWrite(devfn(2), PCI_COMMAND, 2, 2);
    expect(fn.lfbAddress).toBe(0xfc000000);
    const saved = bus.saveState();
    bus.reset();
    expect(fn.lfbAddress).toBe(-1);
    bus.loadState(JSON.parse(JSON.stringify(saved)));
    expect(fn.lfbAddress).toBe(0xfc000000);
  });
});

describe('VGA state, screenshots and text dumps', () => {
  it('saveState/loadState restores registers and video memory: the picture and access paths are identical', () => {
    const a = new Rig();
    a.setMode(MODE_13H);
    for (let i = 0; i < 256; i++) a.dac(i, i & 63, (i >> 2) & 63, 63 - (i & 63));
    for (let i = 0; i < 64000; i += 7) a.mem.write8(0xa0000 + i, i & 0xff);
    a.gc(3, 0x18); // leave XOR selected
    a.mem.read8(0xa0010);
    const state = JSON.parse(JSON.stringify(a.vga.saveState()));
    expect(state.vram.length).toBeLessThan(70); // only the pages that hold something
    const b = new Rig();
    b.vga.loadState(state);
    const fa = a.vga.render().frame;
    const fb = b.vga.render().frame;
    expect(fb.width).toBe(320);
    expect(Buffer.from(fb.data).equals(Buffer.from(fa.data))).toBe(true);
    a.mem.write8(0xa0020, 0xff);
    b.mem.write8(0xa0020, 0xff);
    expect(b.mem.read8(0xa0020)).toBe(a.mem.read8(0xa0020));
    expect(() => new Rig({ vramSize: 4 << 20 }).vga.loadState(state)).toThrow(/video memory/);
  });

  it('writes a PNG screenshot atomically whose pixels equal the frame; textDump gives the text screen', async () => {
    const r = new Rig();
    r.setMode(MODE_13H);
    r.dac(4, 63, 0, 63);
    for (let y = 0; y < 200; y += 2) r.mem.write8(0xa0000 + y * 320 + y, 4);
    const dir = mkdtempSync(join(tmpdir(), 'x86vm-vga-'));
    const path = join(dir, 'shot.png');
    await writeScreenshot(r.vga, path);
    expect(readdirSync(dir)).toEqual(['shot.png']);
    const png = decode(readFileSync(path));
    expect([png.width, png.height, png.channels]).toEqual([320, 200, 4]);
    const f = r.vga.render().frame;
    expect(Buffer.from(png.data as Uint8Array).equals(Buffer.from(f.data))).toBe(true);
    expect(Array.from(png.data.slice((100 * 320 + 100) * 4, (100 * 320 + 100) * 4 + 3))).toEqual([255, 0, 255]);
    expect(textDump(r.vga)).toBeNull();
    expect(encodePng(f).length).toBeGreaterThan(50);
    await expect(writeScreenshot(r.vga, join(dir, 'no', 'such', 'dir.png'))).rejects.toThrow(/dir\.png/);
  });

  it('CP437 maps all 256 codes', () => {
    expect(CP437.length).toBe(256);
    expect(CP437[0x41]).toBe('A');
    expect(CP437[0xc4]).toBe('─');
    expect(CP437[0xdb]).toBe('█');
    expect(CP437[0xe1]).toBe('ß');
    expect(CP437[0xfe]).toBe('■');
  });
});
