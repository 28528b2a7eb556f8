/**
 * The VGA's picture (devices/vga.ts): renders the card's registers and video memory into an RGBA frame
 * (core/screen.ts) on demand, redrawing only what changed, and reads a text-mode screen as text.
 *
 * What it models, per scan line, like the CRTC does: the memory address counter starts at the start
 * address (plus byte panning) with the preset row scan, advances by 2 × offset (CR13) at the end of each
 * character row (max scan line + 1 row scans, each doubled with double scan), and restarts at 0 after the
 * line compare line (split screen). The counter becomes a plane address in byte, word or doubleword mode,
 * with row-scan bits 0/1 replacing address bits 13/14 unless CR17 says otherwise (CGA/Hercules banks).
 * The four plane bytes at that address then become pixels:
 * - text: plane 0 character, plane 1 attribute, glyphs from plane 2 (character maps A/B from SR3, 32-byte
 *   slots), 8 or 9 dots (line-graphics 9th column for C0–DF), cursor (start/end/skew, blinking every 16
 *   frames), blink attribute (every 32 frames), underline;
 * - planar 16 colours (4 bits a pixel, one from each plane), CGA-style 2 bits a pixel (GR5 bit 5), or 256
 *   colours (GR5 bit 6: four pixels per address, one byte from each plane);
 * - colours through the colour plane enable, the attribute palette, colour select and the DAC with its
 *   pixel mask; horizontal pixel panning.
 * VBE modes (dispi enabled) read the linear memory at 8 (palette), 15, 16, 24 and 32 bpp, or 4 bpp planar;
 * they too are blank (black at XRES x YRES) while the palette address source is clear.
 *
 * Frame size is the picture's logical resolution: 720x400 for 80x25 text, 320x200 for mode 13h, 640x480
 * for mode 12h (scan lines that repeat the same memory — double scan, or graphics rows taller than one
 * scan line — are drawn once; dot-clock halving is not widened). With the display blanked (SR1 screen off,
 * or the attribute controller's palette address source bit clear) the frame is black at the mode's size;
 * with registers that describe no picture it is 640x480 black.
 *
 * Change tracking: video memory writes mark 4 KiB pages dirty (devices/vga.ts); a graphics line is drawn
 * when a page it reads is dirty. Text mode keeps the last drawn character, attribute, cursor and blink state
 * of every cell and redraws cells that differ; writes to the font plane redraw everything. Any change of a
 * display register or of the DAC redraws the whole frame.
 */
import { DirtyRects, Frame, cp437Line, rgbaPixel, type Rect, type ScreenUpdate } from '../core/screen';
import { PLANE_NIBBLES, PAIR_NIBBLES, AR_COUNT, charMapOffset } from './vga-tables';
import type { Vga } from './vga';

const enum Kind {
  Invalid = 0,
  Blank = 1,
  Text = 2,
  Planar = 3,
  Cga = 4,
  Color256 = 5,
  Vbe = 6,
  Vbe4 = 7,
}

const KEY_LENGTH = 80;
const BLACK = rgbaPixel(0, 0, 0);
/** the frame shown when the registers describe no picture */
const FALLBACK_W = 640;
const FALLBACK_H = 480;
/** the largest frame (core/screen.ts Frame) in pixels */
const MAX_FRAME_PIXELS = 1 << 26;

/** the CRTC's view of the display, decoded from the registers */
interface Crtc {
  hdisp: number;
  vde: number;
  msl: number;
  doubleScan: boolean;
  lineCompare: number;
  start: number;
  presetRow: number;
  /** memory address advance per character row */
  stride: number;
  /** 0 byte, 1 word, 2 doubleword addressing */
  addrMode: number;
  /** the address counter advances every 2^maShift character clocks (count by 2 / by 4) */
  maShift: number;
  /** CR17 bits 0–1 (0 = row-scan bit replaces address bit 13 / 14) */
  cr17: number;
  /** CR17 bit 5: word mode takes bit 15 (else 13) into address bit 0 */
  wrap15: boolean;
}

export class VgaRenderer {
  readonly frame = new Frame();
  private readonly vga: Vga;
  private full = true;
  private readonly key = new Int32Array(KEY_LENGTH);
  private readonly lastKey = new Int32Array(KEY_LENGTH).fill(-1);
  private readonly palette32 = new Uint32Array(256);
  private paletteVersion = -1;
  private paletteDac8 = false;
  /** the colour of each 4-bit attribute value (after plane enable, attribute palette, colour select, DAC) */
  private readonly attr16 = new Uint32Array(16);
  /** text mode: the key of each cell as last drawn */
  private cells = new Int32Array(0);
  private cellCols = 0;
  private readonly rowDirty = new Uint8Array(256);
  private readonly rects = new DirtyRects();
  private pa = new Int32Array(264);
  private line = new Uint32Array(264 * 8);
  private readonly crtc: Crtc = {
    hdisp: 0,
    vde: 0,
    msl: 0,
    doubleScan: false,
    lineCompare: 0,
    start: 0,
    presetRow: 0,
    stride: 0,
    addrMode: 0,
    maShift: 0,
    cr17: 3,
    wrap15: false,
  };

  constructor(vga: Vga) {
    this.vga = vga;
  }

  invalidate(): void {
    this.full = true;
  }

  // ---------------------------------------------------------------------------------------------
  // decoding the registers
  // ---------------------------------------------------------------------------------------------

  private decodeCrtc(): Crtc {
    const c = this.vga.crtc;
    const t = this.crtc;
    const ov = c[7];
    t.hdisp = c[1] + 1;
    t.vde = (c[0x12] | ((ov & 2) << 7) | ((ov & 0x40) << 3)) + 1;
    t.msl = c[9] & 0x1f;
    t.doubleScan = (c[9] & 0x80) !== 0;
    t.lineCompare = c[0x18] | ((ov & 0x10) << 4) | ((c[9] & 0x40) << 3);
    t.start = ((c[0x0c] << 8) | c[0x0d]) + ((c[8] >> 5) & 3);
    t.presetRow = c[8] & 0x1f;
    t.stride = c[0x13] * 2;
    t.addrMode = c[0x14] & 0x40 ? 2 : c[0x17] & 0x40 ? 0 : 1;
    t.maShift = c[0x14] & 0x20 ? 2 : c[0x17] & 0x08 ? 1 : 0;
    t.cr17 = c[0x17] & 3;
    t.wrap15 = (c[0x17] & 0x20) !== 0;
    return t;
  }

  /** the plane address the CRTC reads for memory address ma on row scan rs */
  private planeAddress(t: Crtc, ma: number, rs: number): number {
    let a: number;
    if (t.addrMode === 2) a = ma << 2;
    else if (t.addrMode === 1) a = (ma << 1) | ((t.wrap15 ? ma >> 15 : ma >> 13) & 1);
    else a = ma;
    if (!(t.cr17 & 1)) a = (a & ~0x2000) | ((rs & 1) << 13);
    if (!(t.cr17 & 2)) a = (a & ~0x4000) | ((rs & 2) << 13);
    return a & 0xffff;
  }

  private kind(): Kind {
    const v = this.vga;
    // VBE: blank while the palette address source is clear (QEMU's rule, which Linux's bochs DRM uses)
    if (v.vbeEnabled) return !(v.arIndex & 0x20) ? Kind.Blank : v.dispi[3] === 4 ? Kind.Vbe4 : Kind.Vbe;
    const t = this.decodeCrtc();
    if (t.hdisp < 1 || t.vde < 2 || t.hdisp > 256) return Kind.Invalid;
    if (!(v.arIndex & 0x20) || v.seq[1] & 0x20) return Kind.Blank;
    if (!(v.gc[6] & 1)) return Kind.Text;
    if (v.gc[5] & 0x40) return Kind.Color256;
    if (v.gc[5] & 0x20) return Kind.Cga;
    return Kind.Planar;
  }

  /** fills this.key with everything that affects the whole picture; returns true if it changed */
  private updateKey(kind: Kind): boolean {
    const v = this.vga;
    const k = this.key;
    let i = 0;
    k[i++] = kind;
    k[i++] = v.misc;
    k[i++] = v.seq[1];
    k[i++] = v.seq[3];
    k[i++] = v.gc[5] & 0x60;
    k[i++] = v.gc[6] & 1;
    k[i++] = v.arIndex & 0x20;
    k[i++] = v.pelMask;
    k[i++] = v.dacVersion;
    k[i++] = v.dac8bit ? 1 : 0;
    for (let r = 0; r < 0x19; r++) k[i++] = r === 0x0e || r === 0x0f ? 0 : v.crtc[r];
    for (let r = 0; r < AR_COUNT; r++) k[i++] = v.ar[r];
    for (let r = 0; r < 11; r++) k[i++] = v.dispi[r];
    k[i++] = v.vbeStart;
    k[i++] = v.vbeLineLength;
    let changed = false;
    for (let j = 0; j < i; j++) {
      if (k[j] !== this.lastKey[j]) {
        changed = true;
        this.lastKey[j] = k[j];
      }
    }
    return changed;
  }

  private updatePalette(): void {
    const v = this.vga;
    const dac8 = v.dac8bit;
    if (this.paletteVersion === v.dacVersion && this.paletteDac8 === dac8) return;
    this.paletteVersion = v.dacVersion;
    this.paletteDac8 = dac8;
    const d = v.dac;
    for (let i = 0; i < 256; i++) {
      let r = d[i * 3];
      let g = d[i * 3 + 1];
      let b = d[i * 3 + 2];
      if (!dac8) {
        r = ((r & 0x3f) << 2) | ((r & 0x3f) >> 4);
        g = ((g & 0x3f) << 2) | ((g & 0x3f) >> 4);
        b = ((b & 0x3f) << 2) | ((b & 0x3f) >> 4);
      }
      this.palette32[i] = rgbaPixel(r, g, b);
    }
  }

  private updateAttr16(): void {
    const v = this.vga;
    const ar = v.ar;
    const enable = ar[0x12] & 0x0f;
    const p54 = (ar[0x10] & 0x80) !== 0;
    for (let c = 0; c < 16; c++) {
      const p = ar[c & enable];
      const idx = p54 ? ((ar[0x14] & 0x0f) << 4) | (p & 0x0f) : ((ar[0x14] & 0x0c) << 4) | (p & 0x3f);
      this.attr16[c] = this.palette32[idx & v.pelMask];
    }
  }

  // ---------------------------------------------------------------------------------------------
  // render
  // ---------------------------------------------------------------------------------------------

  render(nowNs: number): ScreenUpdate {
    const v = this.vga;
    let kind = this.kind();
    // a VBE mode larger than a frame can be (16000 x 12000 fits the dispi limits with 256 MiB of memory)
    if (v.vbeEnabled && v.dispi[1] * v.dispi[2] > MAX_FRAME_PIXELS) kind = Kind.Invalid;
    let full = this.updateKey(kind) || this.full;
    this.full = false;
    this.updatePalette();
    this.updateAttr16();
    const t = this.crtc;
    let w: number;
    let h: number;
    switch (v.vbeEnabled && kind !== Kind.Invalid ? Kind.Vbe : kind) {
      case Kind.Vbe:
        w = v.dispi[1];
        h = v.dispi[2];
        break;
      case Kind.Invalid:
        w = FALLBACK_W;
        h = FALLBACK_H;
        break;
      default: {
        const g = this.graphicsSize(kind === Kind.Blank ? (v.gc[6] & 1 ? this.graphicsKind() : Kind.Text) : kind);
        w = g[0];
        h = g[1];
        if (w <= 0 || h <= 0 || w > 4096 || h > 4096) {
          w = FALLBACK_W;
          h = FALLBACK_H;
        }
      }
    }
    const resized = this.frame.resize(w, h);
    if (resized) full = true;
    const frame = this.frame;
    switch (kind) {
      case Kind.Invalid:
      case Kind.Blank:
        if (full) {
          frame.pixels.fill(BLACK);
          this.rects.add(0, 0, w, h);
        }
        break;
      case Kind.Text:
        this.renderText(t, nowNs, full || (v.planeWrites & 4) !== 0);
        break;
      case Kind.Planar:
      case Kind.Cga:
      case Kind.Color256:
        this.renderGraphics(t, kind, full);
        break;
      case Kind.Vbe:
        this.renderVbe(full);
        break;
      case Kind.Vbe4:
        this.renderVbe4(full);
        break;
    }
    v.dirtyPages.fill(0);
    v.planeWrites = 0;
    let rects: Rect[] = this.rects.take();
    if (full) rects = [{ x: 0, y: 0, w, h }];
    return { frame, rects, resized };
  }

  private graphicsKind(): Kind {
    const gc5 = this.vga.gc[5];
    return gc5 & 0x40 ? Kind.Color256 : gc5 & 0x20 ? Kind.Cga : Kind.Planar;
  }

  /** vertical repeat: physical scan lines per drawn line in a graphics mode */
  private repeat(t: Crtc): number {
    let r = t.doubleScan ? 2 : 1;
    if (t.cr17 === 3) r *= t.msl + 1;
    return r;
  }

  private graphicsSize(kind: Kind): [number, number] {
    const v = this.vga;
    const t = this.crtc;
    if (kind === Kind.Text) {
      const cw = v.seq[1] & 1 ? 8 : 9;
      return [t.hdisp * cw, t.doubleScan ? t.vde >> 1 : t.vde];
    }
    const w = kind === Kind.Color256 ? t.hdisp * 4 : t.hdisp * 8;
    return [w, Math.floor(t.vde / this.repeat(t))];
  }

  // ---- text ----

  private renderText(t: Crtc, nowNs: number, full: boolean): void {
    const v = this.vga;
    const vram = v.vram;
    const frame = this.frame;
    const px = frame.pixels;
    const fw = frame.width;
    const cw = v.seq[1] & 1 ? 8 : 9;
    const cols = t.hdisp;
    const height = frame.height;
    const c = v.crtc;
    const ar10 = v.ar[0x10];
    const lineGraphics = (ar10 & 4) !== 0;
    const blinkEnabled = (ar10 & 8) !== 0;
    const frameNs = v.frameTimeNs;
    const frameNo = Math.floor(nowNs / frameNs);
    const cursorPhase = (frameNo & 16) === 0;
    const blinkPhase = (frameNo & 32) === 0;
    const curStart = c[0x0a] & 0x1f;
    const curEnd = c[0x0b] & 0x1f;
    const cursorOn = !(c[0x0a] & 0x20) && curStart <= curEnd && cursorPhase;
    const cursorAt = ((c[0x0e] << 8) | c[0x0f]) + ((c[0x0b] >> 5) & 3);
    const underline = c[0x14] & 0x1f;
    const sr3 = v.seq[3];
    const fontA = charMapOffset(((sr3 >> 2) & 3) | ((sr3 >> 3) & 4));
    const fontB = charMapOffset((sr3 & 3) | ((sr3 >> 2) & 4));
    const attr16 = this.attr16;
    const maxRows = height + 1;
    if (this.cellCols !== cols || this.cells.length < maxRows * cols) {
      this.cells = new Int32Array(maxRows * cols).fill(-1);
      this.cellCols = cols;
      full = true;
    }
    if (full) this.cells.fill(-1);
    const cells = this.cells;
    const rowDirty = this.rowDirty;

    let maRow = t.start;
    let rs = t.presetRow;
    let row = 0;
    let rowStartY = 0;
    let x0 = -1;
    let x1 = -1;
    const flushRow = (yEnd: number): void => {
      if (x0 >= 0) this.rects.add(x0 * cw, rowStartY, Math.min((x1 - x0 + 1) * cw, fw - x0 * cw), yEnd - rowStartY);
    };
    let newRow = true;
    for (let y = 0; y < height; y++) {
      if (newRow) {
        // a character row starts: find the cells that differ from what was drawn
        newRow = false;
        x0 = x1 = -1;
        const base = row * cols;
        for (let col = 0; col < cols; col++) {
          const ma = maRow + (col >> t.maShift);
          const a = this.planeAddress(t, ma, 0) * 4;
          const ch = vram[a];
          const attr = vram[a + 1];
          let key = ch | (attr << 8);
          if (cursorOn && ma === cursorAt) key |= 1 << 16;
          if (blinkEnabled && attr & 0x80 && !blinkPhase) key |= 1 << 17;
          if (cells[base + col] !== key) {
            cells[base + col] = key;
            rowDirty[col] = 1;
            if (x0 < 0) x0 = col;
            x1 = col;
          } else {
            rowDirty[col] = 0;
          }
        }
      }
      if (x0 >= 0) {
        let o = y * fw + x0 * cw;
        for (let col = x0; col <= x1; col++, o += cw) {
          if (!rowDirty[col]) continue;
          const ma = maRow + (col >> t.maShift);
          const a = this.planeAddress(t, ma, rs) * 4;
          const ch = vram[a];
          const attr = vram[a + 1];
          let fg = attr & 0x0f;
          let bg = attr >> 4;
          if (blinkEnabled) {
            bg &= 7;
            if (attr & 0x80 && !blinkPhase) fg = bg;
          }
          const font = attr & 8 ? fontA : fontB;
          let glyph = vram[(font + ch * 32 + rs) * 4 + 2];
          let ninth = cw === 9 && lineGraphics && ch >= 0xc0 && ch <= 0xdf ? glyph & 1 : 0;
          if ((attr & 0x77) === 0x01 && rs === underline) {
            glyph = 0xff;
            ninth = 1;
          }
          if (cursorOn && ma === cursorAt && rs >= curStart && rs <= curEnd) {
            glyph = 0xff;
            ninth = 1;
            fg = attr & 0x0f;
          }
          const f = attr16[fg];
          const b = attr16[bg];
          px[o] = glyph & 0x80 ? f : b;
          px[o + 1] = glyph & 0x40 ? f : b;
          px[o + 2] = glyph & 0x20 ? f : b;
          px[o + 3] = glyph & 0x10 ? f : b;
          px[o + 4] = glyph & 0x08 ? f : b;
          px[o + 5] = glyph & 0x04 ? f : b;
          px[o + 6] = glyph & 0x02 ? f : b;
          px[o + 7] = glyph & 0x01 ? f : b;
          if (cw === 9) px[o + 8] = ninth ? f : b;
        }
      }
      // advance the row scan; line compare restarts the address at 0 with a new row
      const physical = t.doubleScan ? y * 2 : y;
      if (t.lineCompare === physical || (t.doubleScan && t.lineCompare === physical + 1)) {
        flushRow(y + 1);
        maRow = 0;
        rs = 0;
        row++;
        rowStartY = y + 1;
        newRow = true;
        if (row >= maxRows) break;
        continue;
      }
      if (rs >= t.msl) {
        flushRow(y + 1);
        rs = 0;
        maRow += t.stride;
        row++;
        rowStartY = y + 1;
        newRow = true;
        if (row >= maxRows) break;
      } else {
        rs++;
      }
    }
    if (!newRow) flushRow(height);
  }

  // ---- VGA graphics ----

  private renderGraphics(t: Crtc, kind: Kind, full: boolean): void {
    const v = this.vga;
    const vram32 = v.vram32;
    const dirty = v.dirtyPages;
    const frame = this.frame;
    const px = frame.pixels;
    const fw = frame.width;
    const height = frame.height;
    const r = this.repeat(t);
    const panReg = v.ar[0x13];
    const pan0 = kind === Kind.Color256 ? (panReg >> 1) & 3 : panReg & 7;
    const panReset = (v.ar[0x10] & 0x20) !== 0;
    const clocks = t.hdisp + (pan0 ? 1 : 0);
    if (this.pa.length < clocks) this.pa = new Int32Array(clocks);
    if (this.line.length < clocks * 8) this.line = new Uint32Array(clocks * 8);
    const paArr = this.pa;
    const attr16 = this.attr16;
    const pal = this.palette32;
    const pelMask = v.pelMask;
    let maRow = t.start;
    let rs = t.presetRow;
    let pan = pan0;
    for (let L = 0; L < t.vde; L++) {
      const y = L / r;
      if (y === (y | 0) && y < height) {
        // the plane addresses this line reads; draw it if any of their pages changed
        let changed = full;
        for (let k = 0; k < clocks; k++) {
          const a = this.planeAddress(t, maRow + (k >> t.maShift), rs);
          paArr[k] = a;
          if (dirty[a >>> 10]) changed = true;
        }
        if (changed) {
          const out = pan ? this.line : px;
          let o = pan ? 0 : y * fw;
          const n = pan ? clocks : t.hdisp;
          if (kind === Kind.Color256) {
            for (let k = 0; k < n; k++, o += 4) {
              const w = vram32[paArr[k]];
              out[o] = pal[w & pelMask];
              out[o + 1] = pal[(w >>> 8) & pelMask];
              out[o + 2] = pal[(w >>> 16) & pelMask];
              out[o + 3] = pal[(w >>> 24) & pelMask];
            }
          } else {
            const tab = kind === Kind.Cga ? PAIR_NIBBLES : PLANE_NIBBLES;
            for (let k = 0; k < n; k++, o += 8) {
              const w = vram32[paArr[k]];
              let nib: number;
              if (kind === Kind.Cga) {
                // planes 0/1 carry pixels 0–3 / 4–7 two bits each; planes 2/3 add bits 2–3
                const lo = tab[w & 0xff] | (tab[(w >>> 16) & 0xff] << 2);
                const hi = tab[(w >>> 8) & 0xff] | (tab[(w >>> 24) & 0xff] << 2);
                nib = lo | (hi << 16);
              } else {
                nib = tab[w & 0xff] | (tab[(w >>> 8) & 0xff] << 1) | (tab[(w >>> 16) & 0xff] << 2) | (tab[(w >>> 24) & 0xff] << 3);
              }
              out[o] = attr16[nib & 15];
              out[o + 1] = attr16[(nib >>> 4) & 15];
              out[o + 2] = attr16[(nib >>> 8) & 15];
              out[o + 3] = attr16[(nib >>> 12) & 15];
              out[o + 4] = attr16[(nib >>> 16) & 15];
              out[o + 5] = attr16[(nib >>> 20) & 15];
              out[o + 6] = attr16[(nib >>> 24) & 15];
              out[o + 7] = attr16[(nib >>> 28) & 15];
            }
          }
          if (pan) px.set(this.line.subarray(pan, pan + fw), y * fw);
          this.rects.add(0, y, fw, 1);
        }
      }
      if (L === t.lineCompare) {
        maRow = 0;
        rs = 0;
        if (panReset) pan = 0;
        continue;
      }
      if (!t.doubleScan || L & 1) {
        if (rs >= t.msl) {
          rs = 0;
          maRow += t.stride;
        } else {
          rs++;
        }
      }
    }
  }

  // ---- VBE ----

  private renderVbe(full: boolean): void {
    const v = this.vga;
    const vram = v.vram;
    const dirty = v.dirtyPages;
    const frame = this.frame;
    const px = frame.pixels;
    const w = frame.width;
    const bpp = v.dispi[3];
    const bytes = bpp === 15 ? 2 : bpp >>> 3;
    const stride = v.vbeLineLength;
    const pal = this.palette32;
    for (let y = 0; y < frame.height; y++) {
      const src = v.vbeStart + y * stride;
      const end = src + w * bytes;
      if (end > v.vramSize) {
        if (full) px.fill(BLACK, y * w, (y + 1) * w);
        continue;
      }
      let changed = full;
      if (!changed) {
        for (let p = src >>> 12; p <= (end - 1) >>> 12; p++) {
          if (dirty[p]) {
            changed = true;
            break;
          }
        }
      }
      if (!changed) continue;
      let o = y * w;
      switch (bpp) {
        case 8:
          for (let x = 0; x < w; x++) px[o++] = pal[vram[src + x]];
          break;
        case 15:
          for (let x = 0, s = src; x < w; x++, s += 2) {
            const p = vram[s] | (vram[s + 1] << 8);
            const r = (p >> 10) & 31;
            const g = (p >> 5) & 31;
            const b = p & 31;
            px[o++] = rgbaPixel((r << 3) | (r >> 2), (g << 3) | (g >> 2), (b << 3) | (b >> 2));
          }
          break;
        case 16:
          for (let x = 0, s = src; x < w; x++, s += 2) {
            const p = vram[s] | (vram[s + 1] << 8);
            const r = p >> 11;
            const g = (p >> 5) & 63;
            const b = p & 31;
            px[o++] = rgbaPixel((r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2));
          }
          break;
        case 24:
          for (let x = 0, s = src; x < w; x++, s += 3) px[o++] = rgbaPixel(vram[s + 2], vram[s + 1], vram[s]);
          break;
        default:
          if ((src & 3) === 0) {
            const v32 = v.vram32;
            for (let x = 0, s = src >>> 2; x < w; x++, s++) {
              const p = v32[s];
              // memory holds B, G, R, X; the frame wants R, G, B, A (little-endian words)
              px[o++] = (0xff000000 | ((p & 0xff) << 16) | (p & 0xff00) | ((p >>> 16) & 0xff)) >>> 0;
            }
          } else {
            for (let x = 0, s = src; x < w; x++, s += 4) px[o++] = rgbaPixel(vram[s + 2], vram[s + 1], vram[s]);
          }
      }
      this.rects.add(0, y, w, 1);
    }
  }

  /** VBE 4 bpp: planar memory, 8 pixels per plane address, lines virt_width / 8 addresses apart */
  private renderVbe4(full: boolean): void {
    const v = this.vga;
    const vram32 = v.vram32;
    const dirty = v.dirtyPages;
    const frame = this.frame;
    const px = frame.pixels;
    const w = frame.width;
    const perLine = w >>> 3;
    const stride = v.dispi[6] >>> 3;
    const start = v.vbeStart >>> 2;
    const limit = v.vramSize >>> 2;
    const attr16 = this.attr16;
    for (let y = 0; y < frame.height; y++) {
      const pa0 = start + y * stride;
      if (pa0 + perLine > limit) continue;
      let changed = full;
      for (let p = pa0 >>> 10; !changed && p <= (pa0 + perLine - 1) >>> 10; p++) if (dirty[p]) changed = true;
      if (!changed) continue;
      let o = y * w;
      for (let k = 0; k < perLine; k++, o += 8) {
        const wd = vram32[pa0 + k];
        const nib =
          PLANE_NIBBLES[wd & 0xff] |
          (PLANE_NIBBLES[(wd >>> 8) & 0xff] << 1) |
          (PLANE_NIBBLES[(wd >>> 16) & 0xff] << 2) |
          (PLANE_NIBBLES[(wd >>> 24) & 0xff] << 3);
        for (let i = 0; i < 8; i++) px[o + i] = attr16[(nib >>> (4 * i)) & 15];
      }
      this.rects.add(0, y, w, 1);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // the screen as text
  // ---------------------------------------------------------------------------------------------

  /** rows and columns of a text mode, or null when not in one */
  private textGeometry(): { rows: number; cols: number; t: Crtc } | null {
    const v = this.vga;
    if (v.vbeEnabled || v.gc[6] & 1) return null;
    const t = this.decodeCrtc();
    if (t.hdisp < 1 || t.hdisp > 256 || t.vde < 2) return null;
    const lines = t.doubleScan ? t.vde >> 1 : t.vde;
    const rows = Math.floor(lines / (t.msl + 1));
    if (rows < 1) return null;
    return { rows, cols: t.hdisp, t };
  }

  text(): string[] | null {
    const g = this.textGeometry();
    if (!g) return null;
    const { rows, cols, t } = g;
    const codes = new Uint8Array(cols);
    const out: string[] = [];
    const vram = this.vga.vram;
    for (let row = 0; row < rows; row++) {
      const maRow = t.start + row * t.stride;
      for (let col = 0; col < cols; col++) codes[col] = vram[this.planeAddress(t, maRow + (col >> t.maShift), 0) * 4];
      out.push(cp437Line(codes));
    }
    return out;
  }

  textCursor(): { row: number; col: number } | null {
    const g = this.textGeometry();
    if (!g) return null;
    const c = this.vga.crtc;
    if (c[0x0a] & 0x20 || g.t.stride === 0) return null;
    const d = ((c[0x0e] << 8) | c[0x0f]) - g.t.start;
    if (d < 0) return null;
    const row = Math.floor(d / g.t.stride);
    const col = d - row * g.t.stride;
    if (row >= g.rows || col >= g.cols) return null;
    return { row, col };
  }
}
