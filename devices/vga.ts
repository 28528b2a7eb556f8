/**
 * The VGA: a standard IBM VGA with the Bochs/QEMU "dispi" VBE extensions, as QEMU's `-vga std` presents
 * it (PCI 1234:1111, class 0x0300), so SeaBIOS's vgabios-stdvga.bin, Linux's vgacon, vesafb and bochs DRM
 * drive it.
 *
 * Written from the IBM VGA Technical Reference and the FreeVGA register descriptions, and for the dispi
 * interface from the Bochs VBE register definitions (checked against the behaviour of QEMU's stdvga and
 * the way SeaBIOS's vgasrc/bochsvga.c and Linux's bochs DRM driver program it).
 *
 * Video memory: `vramSize` bytes (16 MiB by default), BAR0 of the PCI function. The VGA's 256 KiB (4 planes
 * of 64 KiB) is its first 256 KiB, interleaved: byte p of the 32-bit word at plane address a (vram32[a])
 * is plane p. The graphics controller's latches, set/reset, ALU and bit mask then work on whole words.
 * VBE modes see the same memory as a linear framebuffer.
 *
 * CPU addressing of the planes follows the hardware:
 * - chain-4 (SR4 bit 3): address A selects plane A & 3 at plane address A & ~3 (mode 13h);
 * - odd/even (SR4 bit 2 clear for writes, GR5 bit 4 for reads): A & 1 selects plane 0/1 (2/3), plane
 *   address A & ~1 (text modes);
 * - otherwise all planes enabled by the map mask at plane address A.
 * The CRTC reads plane address MA (byte mode), MA << 1 (word mode) or MA << 2 (doubleword mode), so
 * text, mode 13h, mode 12h and Mode X all find their data where the CPU put it, as on real cards.
 *
 * Windows: A0000–BFFFF as GR6 selects (128K at A0000, 64K at A0000, 32K at B0000 or B8000). While VBE is
 * enabled at 8–32 bpp the 64K window at A0000 is a bank (dispi BANK × 64 KiB) of the linear memory; at
 * 4 bpp the banked window is planar, the bank selecting 64 KiB of plane addresses.
 *
 * The linear framebuffer (BAR0) is page-mapped MMIO served straight from the VRAM typed arrays: x86vm's
 * CPU can only take its RAM fast path on the one guest-RAM buffer, so a device buffer at 0xFDxxxxxx cannot
 * be RAM-like without a second fast path in the CPU; aligned 32-bit accesses are one typed-array store.
 * BAR2 (4 KiB MMIO, as QEMU's stdvga) holds the monitor's EDID at 0x000–0x3FF (devices/vga-tables.ts
 * makeEdid: 1280x800 preferred unless `edid` says otherwise; Linux's bochs DRM reads it and picks that
 * mode, as on QEMU), and mirrors the VGA ports at 0x400–0x41F and the dispi registers at 0x500–0x515
 * (16-bit, index × 2). The expansion ROM BAR carries the VGA BIOS given as `romImage`.
 *
 * VBE display: the picture is dispi XRES x YRES at BPP from the display start (X/Y offset, virtual width)
 * in the linear memory, and, as on QEMU, blank while the attribute controller's palette address source
 * bit (0x3C0 index bit 5) is clear: Linux's bochs DRM blanks and unblanks the screen through it.
 *
 * Rendering (on demand, into an RGBA frame with dirty rectangles) is in devices/vga-render.ts; the screen
 * as text in text(). Writes mark 4 KiB pages of VRAM dirty; the renderer redraws only lines that read
 * dirty pages, unless a register or the palette changed.
 *
 * Power-on: x86vm boots kernels without a BIOS, so the card powers on in the state a VGA BIOS leaves for
 * mode 3 (80x25 colour text, EGA palette in the DAC); `font` loads a character set into plane 2 as the
 * BIOS would. `powerOn: 'off'` starts with all registers zero instead (as QEMU's card before its BIOS).
 *
 * Input status 1 (0x3DA) derives its vertical-retrace and display-enable bits from the machine clock and
 * the CRTC timing registers (dot clock from the misc register, 8/9-dot characters, horizontal and vertical
 * totals), so programs that wait for retrace see it at the frame rate the registers describe.
 * Not emulated: the vertical retrace interrupt, light pen, the misc register's RAM enable and page bit
 * (QEMU ignores them too), overscan colour in the frame (the frame is the active display only).
 */
import type { IoBus } from '../core/iobus';
import type { Memory, MmioHandler } from '../core/memory';
import { PageKind } from '../core/memory';
import type { Device } from '../core/machine';
import type { Pc } from '../core/pc';
import { LITTLE_ENDIAN, type Screen, type ScreenUpdate } from '../core/screen';
import { PciDevice, devfn, PCI_COMMAND, PCI_COMMAND_MEMORY, PCI_ROM_ADDRESS, type BarHandler } from './pci';
import {
  SR_MASK,
  GR_MASK,
  AR_MASK,
  AR_COUNT,
  CRTC_COUNT,
  MODE3_MISC,
  MODE3_SEQ,
  MODE3_CRTC,
  MODE3_AR,
  MODE3_GR,
  EXPAND4,
  egaPalette,
  charMapOffset,
  makeEdid,
} from './vga-tables';

export { charMapOffset };
import { VgaRenderer } from './vga-render';

export const VGA_VENDOR_ID = 0x1234;
export const VGA_DEVICE_ID = 0x1111;
export const VGA_CLASS = 0x030000;
/** default PCI slot (QEMU's PC puts its VGA there too) */
export const VGA_PCI_SLOT = 2;
export const DEFAULT_VRAM_SIZE = 16 << 20;

export const VGA_WINDOW_BASE = 0xa0000;
export const VGA_WINDOW_SIZE = 0x20000;

// ---- Bochs VBE "dispi" interface ----
export const VBE_DISPI_IOPORT_INDEX = 0x1ce;
export const VBE_DISPI_IOPORT_DATA = 0x1cf;
export const VBE_DISPI_INDEX_ID = 0x0;
export const VBE_DISPI_INDEX_XRES = 0x1;
export const VBE_DISPI_INDEX_YRES = 0x2;
export const VBE_DISPI_INDEX_BPP = 0x3;
export const VBE_DISPI_INDEX_ENABLE = 0x4;
export const VBE_DISPI_INDEX_BANK = 0x5;
export const VBE_DISPI_INDEX_VIRT_WIDTH = 0x6;
export const VBE_DISPI_INDEX_VIRT_HEIGHT = 0x7;
export const VBE_DISPI_INDEX_X_OFFSET = 0x8;
export const VBE_DISPI_INDEX_Y_OFFSET = 0x9;
export const VBE_DISPI_INDEX_VIDEO_MEMORY_64K = 0xa;
export const VBE_DISPI_INDEX_COUNT = 0xa;
export const VBE_DISPI_ID0 = 0xb0c0;
export const VBE_DISPI_ID5 = 0xb0c5;
export const VBE_DISPI_ENABLED = 0x01;
export const VBE_DISPI_GETCAPS = 0x02;
export const VBE_DISPI_8BIT_DAC = 0x20;
export const VBE_DISPI_LFB_ENABLED = 0x40;
export const VBE_DISPI_NOCLEARMEM = 0x80;
/** the largest mode GETCAPS reports: QEMU's limits (Bochs itself says 2560x1600); SeaBIOS's VGA BIOS lists the
 * modes that fit these and the video memory, so this decides its mode list */
export const VBE_DISPI_MAX_XRES = 16000;
export const VBE_DISPI_MAX_YRES = 12000;
export const VBE_DISPI_MAX_BPP = 32;

/** QEMU stdvga's MMIO BAR layout: the EDID blob (0x000–0x3FF), the VGA ports, the dispi registers */
export const MMIO_EDID = 0x000;
export const MMIO_EDID_SIZE = 0x400;
export const MMIO_VGA_PORTS = 0x400;
export const MMIO_DISPI = 0x500;

const PCI_ROM_ENABLE = 1;

/** what the VGA needs from the machine */
export interface VgaHost {
  readonly io: IoBus;
  readonly mem: Memory;
  readonly clock: { now(): number };
}

export interface VgaOptions {
  /** video memory in bytes: a power of two from 1 MiB to 256 MiB (default 16 MiB); BAR0's size */
  vramSize?: number;
  /** a VGA BIOS (e.g. /usr/share/seabios/vgabios-stdvga.bin): the PCI expansion ROM, or at C0000 without PCI */
  romImage?: Uint8Array;
  /** a character set for the power-on text mode: 256 glyphs of `font.length / 256` bytes (1–32) each */
  font?: Uint8Array;
  /** 'text' (default): power on as a VGA BIOS leaves mode 3; 'off': all registers zero */
  powerOn?: 'text' | 'off';
  /** PCI slot (default 2) */
  slot?: number;
  /**
   * the EDID in the MMIO BAR (offsets 0–0x3FF, as QEMU's stdvga with edid=on): the monitor's preferred
   * mode (default 1280x800, QEMU's default), or false for none (then Linux's bochs DRM falls back to 1024x768)
   */
  edid?: { width: number; height: number } | false;
}

/** the VGA's saved state (plain JSON) */
export interface VgaState {
  misc: number;
  fcr: number;
  seqIndex: number;
  seq: number[];
  crtcIndex: number;
  crtc: number[];
  gcIndex: number;
  gc: number[];
  arIndex: number;
  arFlip: number;
  ar: number[];
  dac: number[];
  dacReadIndex: number;
  dacWriteIndex: number;
  dacSub: number;
  dacState: number;
  dacCache: number[];
  pelMask: number;
  latch: number;
  dispiIndex: number;
  dispi: number[];
  vramSize: number;
  /** the non-zero 4 KiB pages of video memory: [page index, base64 bytes] */
  vram: [number, string][];
}

export class Vga implements Device, Screen {
  readonly name = 'vga';
  readonly vramSize: number;
  /** video memory */
  readonly vram: Uint8Array;
  /** the same memory as words: vram32[a] holds planes 0–3 of VGA plane address a */
  readonly vram32: Int32Array;
  /** one byte per 4 KiB page of vram: written since the last render */
  readonly dirtyPages: Uint8Array;
  /** planes written since the last render (bit 2: the font plane) */
  planeWrites = 0;

  // ---- registers (public for the renderer and tests; the guest changes them through the ports) ----
  misc = 0;
  fcr = 0;
  seqIndex = 0;
  readonly seq = new Uint8Array(8);
  crtcIndex = 0;
  readonly crtc = new Uint8Array(256);
  gcIndex = 0;
  readonly gc = new Uint8Array(16);
  arIndex = 0;
  arFlip = 0;
  readonly ar = new Uint8Array(32);
  /** the DAC's 256 colour triplets as stored (6 significant bits unless the 8-bit DAC is on) */
  readonly dac = new Uint8Array(768);
  dacReadIndex = 0;
  dacWriteIndex = 0;
  dacSub = 0;
  dacState = 0;
  readonly dacCache = new Uint8Array(3);
  pelMask = 0xff;
  /** bumped on every DAC colour change (the renderer rebuilds its palette) */
  dacVersion = 0;
  /** the graphics controller's four latches, plane p in byte p */
  latch = 0;
  dispiIndex = 0;
  readonly dispi = new Uint16Array(16);

  // ---- derived from the registers by updateAccess() (the per-access paths read only these) ----
  private winBase = 0;
  private winSize = VGA_WINDOW_SIZE;
  /** VBE at 8–32 bpp: the window is a bank of linear memory */
  private linear = false;
  private bankBase = 0;
  private chain4 = false;
  private oddEvenWrite = false;
  private oddEvenRead = false;
  private mapMask = 0xf;
  private writeMode = 0;
  private readMode1 = false;
  private rotate = 0;
  private func = 0;
  private setReset32 = 0;
  private setResetEnable32 = 0;
  private bitMask = 0xff;
  private readPlane = 0;
  private ccCompare32 = 0;
  private ccCare32 = 0;
  /** write mode 0, no rotation, no ALU, no set/reset, bit mask all ones: the byte goes straight to the planes */
  private simpleWrite = true;
  /** plane-address mask: 64K planes, or the whole memory in VBE 4 bpp modes */
  private paMask = 0xffff;
  private planeBank = 0;
  /** VBE: line length in bytes and display start offset (as fixed up) */
  vbeLineLength = 0;
  vbeStart = 0;

  // ---- timing for input status 1 ----
  private timingValid = false;
  private frameNs = 1e9 / 70;
  private lineNs = 1e9 / 70 / 449;
  private tHtotal = 100;
  private tHdisp = 80;
  private tVde = 400;
  private tVrs = 412;
  private tVrLen = 2;

  private readonly host: VgaHost;
  private readonly options: VgaOptions;
  private readonly renderer: VgaRenderer;
  /** the PCI function, when on PCI */
  pci: VgaPci | null = null;
  /** the EDID the MMIO BAR shows (128 bytes), or null */
  readonly edid: Uint8Array | null;

  constructor(host: VgaHost, options: VgaOptions = {}) {
    if (!LITTLE_ENDIAN) throw new Error('the VGA needs a little-endian host');
    const size = options.vramSize ?? DEFAULT_VRAM_SIZE;
    if (!(size >= 1 << 20 && size <= 256 << 20 && (size & (size - 1)) === 0)) {
      throw new RangeError(`VGA memory size ${size} must be a power of two from 1 MiB to 256 MiB`);
    }
    if (options.font && (options.font.length % 256 !== 0 || options.font.length < 256 || options.font.length > 256 * 32)) {
      throw new RangeError(`VGA font: ${options.font.length} bytes is not 256 glyphs of 1–32 bytes`);
    }
    this.host = host;
    this.options = options;
    this.vramSize = size;
    const edid = options.edid;
    this.edid = edid === false ? null : edid ? makeEdid(edid.width, edid.height) : makeEdid();
    const buf = new ArrayBuffer(size);
    this.vram = new Uint8Array(buf);
    this.vram32 = new Int32Array(buf);
    this.dirtyPages = new Uint8Array(size >>> 12);
    this.renderer = new VgaRenderer(this);

    host.io.register('vga', 0x3b0, 0x30, {
      read8: (p) => this.ioRead(p),
      write8: (p, v) => this.ioWrite(p, v),
    });
    host.io.register('vga-dispi', VBE_DISPI_IOPORT_INDEX, 2, {
      read8: (p) => (p === VBE_DISPI_IOPORT_INDEX ? this.dispiIndex & 0xff : this.dispiRead() & 0xff),
      write8: (p, v) => (p === VBE_DISPI_IOPORT_INDEX ? (this.dispiIndex = v) : this.dispiWrite(v)),
      read16: (p) => (p === VBE_DISPI_IOPORT_INDEX ? this.dispiIndex : this.dispiRead()),
      write16: (p, v) => (p === VBE_DISPI_IOPORT_INDEX ? (this.dispiIndex = v) : this.dispiWrite(v)),
    });
    const win: MmioHandler = {
      name: 'vga-window',
      read8: (a) => this.windowRead(a),
      write8: (a, v) => this.windowWrite(a, v),
      read16: (a) => this.windowRead(a) | (this.windowRead(a + 1) << 8),
      write16: (a, v) => {
        this.windowWrite(a, v & 0xff);
        this.windowWrite(a + 1, (v >> 8) & 0xff);
      },
      read32: (a) => this.windowRead32(a),
      write32: (a, v) => this.windowWrite32(a, v),
    };
    host.mem.mapMmio(VGA_WINDOW_BASE, VGA_WINDOW_SIZE, win);
    this.powerOn();
  }

  // ---------------------------------------------------------------------------------------------
  // reset
  // ---------------------------------------------------------------------------------------------

  private powerOn(): void {
    this.seq.fill(0);
    this.crtc.fill(0);
    this.gc.fill(0);
    this.ar.fill(0);
    this.dac.fill(0);
    this.dispi.fill(0);
    this.dispi[VBE_DISPI_INDEX_ID] = VBE_DISPI_ID5;
    this.misc = 0;
    this.fcr = 0;
    this.seqIndex = this.crtcIndex = this.gcIndex = this.arIndex = this.arFlip = 0;
    this.dacReadIndex = this.dacWriteIndex = this.dacSub = this.dacState = 0;
    this.dacCache.fill(0);
    this.pelMask = 0xff;
    this.latch = 0;
    this.dispiIndex = 0;
    this.vbeLineLength = 0;
    this.vbeStart = 0;
    if ((this.options.powerOn ?? 'text') === 'text') {
      this.misc = MODE3_MISC;
      this.seq.set(MODE3_SEQ);
      this.crtc.set(MODE3_CRTC);
      this.gc.set(MODE3_GR);
      this.ar.set(MODE3_AR);
      this.arIndex = 0x20; // palette address source: the display runs
      this.dac.set(egaPalette());
      if (this.options.font) this.loadFont(this.options.font);
    }
    this.dacVersion++;
    this.timingValid = false;
    this.updateAccess();
    this.renderer.invalidate();
  }

  /**
   * Writes a character set into plane 2 at character map 0 (32-byte glyph slots), as a VGA BIOS does;
   * `font` holds 256 glyphs of font.length / 256 bytes.
   */
  loadFont(font: Uint8Array, map = 0): void {
    const h = font.length >>> 8;
    const base = charMapOffset(map);
    for (let c = 0; c < 256; c++) {
      for (let y = 0; y < 32; y++) {
        const pa = base + c * 32 + y;
        this.vram[pa * 4 + 2] = y < h ? font[c * h + y] : 0;
        this.dirtyPages[pa >>> 10] = 1;
      }
    }
    this.planeWrites |= 4;
  }

  reset(): void {
    this.powerOn();
  }

  // ---------------------------------------------------------------------------------------------
  // I/O ports 0x3B0–0x3DF
  // ---------------------------------------------------------------------------------------------

  /** the port is one of the mono (0x3Bx) or colour (0x3Dx) CRTC/status ports not selected by misc bit 0 */
  private inactive(port: number): boolean {
    return this.misc & 1 ? port < 0x3c0 : port >= 0x3d0;
  }

  ioRead(port: number): number {
    if (this.inactive(port)) return 0xff;
    switch (port) {
      case 0x3c0:
        return this.arIndex;
      case 0x3c1: {
        const i = this.arIndex & 0x1f;
        return i < AR_COUNT ? this.ar[i] : 0;
      }
      case 0x3c2:
        return 0; // input status 0: no retrace interrupt, switch sense 0
      case 0x3c3:
        return 1; // VGA enable
      case 0x3c4:
        return this.seqIndex;
      case 0x3c5:
        return this.seq[this.seqIndex];
      case 0x3c6:
        return this.pelMask;
      case 0x3c7:
        return this.dacState;
      case 0x3c8:
        return this.dacWriteIndex;
      case 0x3c9: {
        const v = this.dac[this.dacReadIndex * 3 + this.dacSub];
        if (++this.dacSub === 3) {
          this.dacSub = 0;
          this.dacReadIndex = (this.dacReadIndex + 1) & 0xff;
        }
        return this.dac8bit ? v : v & 0x3f;
      }
      case 0x3ca:
        return this.fcr;
      case 0x3cc:
        return this.misc;
      case 0x3ce:
        return this.gcIndex;
      case 0x3cf:
        return this.gc[this.gcIndex];
      case 0x3b4:
      case 0x3d4:
        return this.crtcIndex;
      case 0x3b5:
      case 0x3d5:
        return this.crtc[this.crtcIndex];
      case 0x3ba:
      case 0x3da:
        this.arFlip = 0;
        return this.inputStatus1();
      default:
        return 0xff;
    }
  }

  ioWrite(port: number, v: number): void {
    if (this.inactive(port)) return;
    v &= 0xff;
    switch (port) {
      case 0x3c0:
        if (this.arFlip === 0) {
          this.arIndex = v & 0x3f;
        } else {
          const i = this.arIndex & 0x1f;
          if (i < AR_COUNT) this.ar[i] = v & AR_MASK[i];
        }
        this.arFlip ^= 1;
        return;
      case 0x3c2:
        this.misc = v;
        this.timingValid = false;
        return;
      case 0x3c4:
        this.seqIndex = v & 7;
        return;
      case 0x3c5:
        this.seq[this.seqIndex] = v & SR_MASK[this.seqIndex];
        if (this.seqIndex === 1) this.timingValid = false;
        this.updateAccess();
        return;
      case 0x3c6:
        this.pelMask = v;
        return;
      case 0x3c7:
        this.dacReadIndex = v;
        this.dacSub = 0;
        this.dacState = 3;
        return;
      case 0x3c8:
        this.dacWriteIndex = v;
        this.dacSub = 0;
        this.dacState = 0;
        return;
      case 0x3c9:
        this.dacCache[this.dacSub] = v;
        if (++this.dacSub === 3) {
          this.dac.set(this.dacCache, this.dacWriteIndex * 3);
          this.dacSub = 0;
          this.dacWriteIndex = (this.dacWriteIndex + 1) & 0xff;
          this.dacVersion++;
        }
        return;
      case 0x3ce:
        this.gcIndex = v & 0x0f;
        return;
      case 0x3cf:
        this.gc[this.gcIndex] = v & GR_MASK[this.gcIndex];
        this.updateAccess();
        return;
      case 0x3b4:
      case 0x3d4:
        this.crtcIndex = v;
        return;
      case 0x3b5:
      case 0x3d5: {
        const i = this.crtcIndex;
        // CR11 bit 7 write-protects CR0–CR7, except the line compare bit 8 in CR7
        if (this.crtc[0x11] & 0x80 && i <= 7) {
          if (i === 7) this.crtc[7] = (this.crtc[7] & ~0x10) | (v & 0x10);
          return;
        }
        this.crtc[i] = v;
        if (i < CRTC_COUNT) this.timingValid = false;
        return;
      }
      case 0x3ba:
      case 0x3da:
        this.fcr = v & 0x0b;
        return;
      default:
        return;
    }
  }

  get dac8bit(): boolean {
    return (this.dispi[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_8BIT_DAC) !== 0;
  }

  /** VBE (dispi) display is on */
  get vbeEnabled(): boolean {
    return (this.dispi[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_ENABLED) !== 0;
  }

  // ---- input status 1: retrace from the clock ----

  private computeTiming(): void {
    const c = this.crtc;
    const dotHz = (this.misc & 0x0c) === 0x04 ? 28_322_000 : 25_175_000;
    const charDots = (this.seq[1] & 1 ? 8 : 9) * (this.seq[1] & 8 ? 2 : 1);
    const ov = c[7];
    const htotal = c[0] + 5;
    const hdisp = c[1] + 1;
    const vtotal = (c[6] | ((ov & 1) << 8) | ((ov & 0x20) << 4)) + 2;
    const vde = (c[0x12] | ((ov & 2) << 7) | ((ov & 0x40) << 3)) + 1;
    const vrs = c[0x10] | ((ov & 4) << 6) | ((ov & 0x80) << 2);
    let vrLen = ((c[0x11] & 0x0f) - (vrs & 0x0f)) & 0x0f;
    if (vrLen === 0) vrLen = 16;
    this.timingValid = true;
    if (hdisp >= htotal || vde >= vtotal || vrs >= vtotal || vtotal < 100) {
      // registers that describe no sensible picture: a 70 Hz frame with a short retrace
      this.frameNs = 1e9 / 70;
      this.lineNs = this.frameNs / 449;
      this.tHtotal = 100;
      this.tHdisp = 80;
      this.tVde = 400;
      this.tVrs = 412;
      this.tVrLen = 2;
      return;
    }
    this.lineNs = (htotal * charDots * 1e9) / dotHz;
    this.frameNs = this.lineNs * vtotal;
    this.tHtotal = htotal;
    this.tHdisp = hdisp;
    this.tVde = vde;
    this.tVrs = vrs;
    this.tVrLen = vrLen;
  }

  /** the length of one frame in guest ns (from the CRTC timing) */
  get frameTimeNs(): number {
    if (!this.timingValid) this.computeTiming();
    return this.frameNs;
  }

  private inputStatus1(): number {
    if (!this.timingValid) this.computeTiming();
    const t = this.host.clock.now() % this.frameNs;
    const line = Math.floor(t / this.lineNs);
    const hpos = ((t - line * this.lineNs) / this.lineNs) * this.tHtotal;
    let v = 0;
    if (line >= this.tVrs && line < this.tVrs + this.tVrLen) v |= 0x08;
    if (line >= this.tVde || hpos >= this.tHdisp) v |= 0x01;
    return v;
  }

  // ---------------------------------------------------------------------------------------------
  // dispi (Bochs VBE) registers
  // ---------------------------------------------------------------------------------------------

  dispiRead(): number {
    const i = this.dispiIndex;
    const r = this.dispi;
    if (i < VBE_DISPI_INDEX_COUNT) {
      if (r[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_GETCAPS) {
        if (i === VBE_DISPI_INDEX_XRES) return VBE_DISPI_MAX_XRES;
        if (i === VBE_DISPI_INDEX_YRES) return VBE_DISPI_MAX_YRES;
        if (i === VBE_DISPI_INDEX_BPP) return VBE_DISPI_MAX_BPP;
      }
      return r[i];
    }
    if (i === VBE_DISPI_INDEX_VIDEO_MEMORY_64K) return this.vramSize >>> 16;
    return 0;
  }

  dispiWrite(v: number): void {
    v &= 0xffff;
    const r = this.dispi;
    switch (this.dispiIndex) {
      case VBE_DISPI_INDEX_ID:
        if (v >= VBE_DISPI_ID0 && v <= VBE_DISPI_ID5) r[0] = v;
        return;
      case VBE_DISPI_INDEX_XRES:
      case VBE_DISPI_INDEX_YRES:
      case VBE_DISPI_INDEX_BPP:
      case VBE_DISPI_INDEX_VIRT_WIDTH:
      case VBE_DISPI_INDEX_X_OFFSET:
      case VBE_DISPI_INDEX_Y_OFFSET:
        r[this.dispiIndex] = v;
        this.dispiFixup();
        if (this.vbeEnabled) this.vgaCompatForVbe();
        this.updateAccess();
        return;
      case VBE_DISPI_INDEX_BANK: {
        const banks = this.vramSize >>> 16;
        r[VBE_DISPI_INDEX_BANK] = v & ((r[VBE_DISPI_INDEX_BPP] === 4 ? banks >>> 2 : banks) - 1);
        this.updateAccess();
        return;
      }
      case VBE_DISPI_INDEX_ENABLE: {
        const was = r[VBE_DISPI_INDEX_ENABLE];
        if (v & VBE_DISPI_ENABLED && !(was & VBE_DISPI_ENABLED)) {
          r[VBE_DISPI_INDEX_VIRT_WIDTH] = 0;
          r[VBE_DISPI_INDEX_X_OFFSET] = 0;
          r[VBE_DISPI_INDEX_Y_OFFSET] = 0;
          r[VBE_DISPI_INDEX_ENABLE] = was | VBE_DISPI_ENABLED;
          this.dispiFixup();
          if (!(v & VBE_DISPI_NOCLEARMEM)) {
            const n = Math.min(this.vramSize, r[VBE_DISPI_INDEX_YRES] * this.vbeLineLength);
            this.vram.fill(0, 0, n);
            this.dirtyPages.fill(1, 0, (n + 4095) >>> 12);
          }
          this.vgaCompatForVbe();
        }
        r[VBE_DISPI_INDEX_ENABLE] = v;
        this.dacVersion++; // the DAC width may have changed
        this.updateAccess();
        return;
      }
      default:
        return;
    }
  }

  /** keeps the dispi registers consistent (what the Bochs/QEMU card does after each write) */
  private dispiFixup(): void {
    const r = this.dispi;
    if (!(r[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_ENABLED)) return;
    let bits: number;
    switch (r[VBE_DISPI_INDEX_BPP]) {
      case 4:
      case 8:
      case 16:
      case 24:
      case 32:
        bits = r[VBE_DISPI_INDEX_BPP];
        break;
      case 15:
        bits = 16;
        break;
      default:
        bits = r[VBE_DISPI_INDEX_BPP] = 8;
    }
    r[VBE_DISPI_INDEX_XRES] &= ~7;
    if (r[VBE_DISPI_INDEX_XRES] === 0) r[VBE_DISPI_INDEX_XRES] = 8;
    if (r[VBE_DISPI_INDEX_XRES] > VBE_DISPI_MAX_XRES) r[VBE_DISPI_INDEX_XRES] = VBE_DISPI_MAX_XRES;
    r[VBE_DISPI_INDEX_VIRT_WIDTH] &= ~7;
    if (r[VBE_DISPI_INDEX_VIRT_WIDTH] > VBE_DISPI_MAX_XRES) r[VBE_DISPI_INDEX_VIRT_WIDTH] = VBE_DISPI_MAX_XRES;
    if (r[VBE_DISPI_INDEX_VIRT_WIDTH] < r[VBE_DISPI_INDEX_XRES]) r[VBE_DISPI_INDEX_VIRT_WIDTH] = r[VBE_DISPI_INDEX_XRES];
    const lineLength = (r[VBE_DISPI_INDEX_VIRT_WIDTH] * bits) >>> 3;
    const maxY = Math.floor(this.vramSize / lineLength);
    if (r[VBE_DISPI_INDEX_YRES] === 0) r[VBE_DISPI_INDEX_YRES] = 1;
    if (r[VBE_DISPI_INDEX_YRES] > VBE_DISPI_MAX_YRES) r[VBE_DISPI_INDEX_YRES] = VBE_DISPI_MAX_YRES;
    if (r[VBE_DISPI_INDEX_YRES] > maxY) r[VBE_DISPI_INDEX_YRES] = maxY;
    if (r[VBE_DISPI_INDEX_X_OFFSET] > VBE_DISPI_MAX_XRES) r[VBE_DISPI_INDEX_X_OFFSET] = VBE_DISPI_MAX_XRES;
    if (r[VBE_DISPI_INDEX_Y_OFFSET] > VBE_DISPI_MAX_YRES) r[VBE_DISPI_INDEX_Y_OFFSET] = VBE_DISPI_MAX_YRES;
    let offset = ((r[VBE_DISPI_INDEX_X_OFFSET] * bits) >>> 3) + r[VBE_DISPI_INDEX_Y_OFFSET] * lineLength;
    if (offset + r[VBE_DISPI_INDEX_YRES] * lineLength > this.vramSize) {
      // the picture would run past the memory: both offsets back to 0 (QEMU)
      r[VBE_DISPI_INDEX_X_OFFSET] = 0;
      r[VBE_DISPI_INDEX_Y_OFFSET] = 0;
      offset = 0;
    }
    r[VBE_DISPI_INDEX_VIRT_HEIGHT] = Math.min(maxY, 0xffff);
    this.vbeLineLength = lineLength;
    // the display starts at a doubleword (the CRTC start address counts 4-byte units, as on QEMU): an x offset
    // that is not a multiple of 4 bytes (odd pixels at 8/24 bpp) starts the picture a little to the left
    this.vbeStart = offset & ~3;
  }

  /**
   * while VBE is enabled (after each mode register write, as QEMU does): the VGA registers a guest reading
   * them back expects (graphics, 64K window, chain-4, the CRTC's width, height and offset)
   */
  private vgaCompatForVbe(): void {
    const r = this.dispi;
    const c = this.crtc;
    this.gc[6] = (this.gc[6] & ~0x0c) | 0x05;
    c[0x17] |= 3;
    c[0x13] = (this.vbeLineLength >>> 3) & 0xff;
    c[0x01] = ((r[VBE_DISPI_INDEX_XRES] >>> 3) - 1) & 0xff;
    const h = r[VBE_DISPI_INDEX_YRES] - 1;
    c[0x12] = h & 0xff;
    c[0x07] = (c[0x07] & ~0x42) | ((h >> 7) & 0x02) | ((h >> 3) & 0x40) | 0x10;
    c[0x18] = 0xff;
    c[0x09] = (c[0x09] | 0x40) & ~0x9f;
    let shift = 2;
    if (r[VBE_DISPI_INDEX_BPP] === 4) {
      shift = 0;
      this.seq[1] &= ~8;
    } else {
      this.seq[4] |= 0x08;
      this.seq[2] |= 0x0f;
    }
    this.gc[5] = (this.gc[5] & ~0x60) | (shift << 5);
    this.timingValid = false;
  }

  // ---------------------------------------------------------------------------------------------
  // memory: the A0000–BFFFF window
  // ---------------------------------------------------------------------------------------------

  /** recomputes what the memory paths use from the registers */
  updateAccess(): void {
    const gc = this.gc;
    const map = (gc[6] >> 2) & 3;
    this.winBase = map === 2 ? 0x10000 : map === 3 ? 0x18000 : 0;
    this.winSize = map === 0 ? 0x20000 : map === 1 ? 0x10000 : 0x8000;
    const vbe = this.vbeEnabled;
    const vbe4 = vbe && this.dispi[VBE_DISPI_INDEX_BPP] === 4;
    this.linear = vbe && !vbe4;
    this.bankBase = this.dispi[VBE_DISPI_INDEX_BANK] * 0x10000;
    this.paMask = vbe4 ? (this.vramSize >>> 2) - 1 : 0xffff;
    this.planeBank = vbe4 ? this.dispi[VBE_DISPI_INDEX_BANK] * 0x10000 : 0;
    this.chain4 = (this.seq[4] & 0x08) !== 0;
    this.oddEvenWrite = (this.seq[4] & 0x04) === 0;
    this.oddEvenRead = (gc[5] & 0x10) !== 0;
    this.mapMask = this.seq[2] & 0x0f;
    this.writeMode = gc[5] & 3;
    this.readMode1 = (gc[5] & 0x08) !== 0;
    this.rotate = gc[3] & 7;
    this.func = (gc[3] >> 3) & 3;
    this.setReset32 = EXPAND4[gc[0] & 0x0f];
    this.setResetEnable32 = EXPAND4[gc[1] & 0x0f];
    this.bitMask = gc[8];
    this.readPlane = gc[4] & 3;
    this.ccCompare32 = EXPAND4[gc[2] & 0x0f];
    this.ccCare32 = EXPAND4[gc[7] & 0x0f];
    this.simpleWrite = this.writeMode === 0 && this.rotate === 0 && this.func === 0 && (gc[1] & 0x0f) === 0 && gc[8] === 0xff;
  }

  windowRead(addr: number): number {
    let off = addr - VGA_WINDOW_BASE - this.winBase;
    if (off < 0 || off >= this.winSize) return 0xff;
    if (this.linear) {
      off += this.bankBase;
      return off < this.vramSize ? this.vram[off] : 0xff;
    }
    let pa: number;
    let plane: number;
    if (this.chain4) {
      pa = off & ~3;
      plane = off & 3;
    } else if (this.oddEvenRead) {
      pa = off & ~1;
      plane = (this.readPlane & 2) | (off & 1);
    } else {
      pa = off;
      plane = this.readPlane;
    }
    pa = (pa + this.planeBank) & this.paMask;
    const latch = this.vram32[pa];
    this.latch = latch;
    if (this.readMode1) {
      // colour compare: a 1 for each pixel whose (cared-for) plane bits equal the compare colour
      let x = (latch ^ this.ccCompare32) & this.ccCare32;
      x |= x >>> 16;
      x |= x >>> 8;
      return ~x & 0xff;
    }
    return (latch >>> (plane << 3)) & 0xff;
  }

  windowWrite(addr: number, v: number): void {
    let off = addr - VGA_WINDOW_BASE - this.winBase;
    if (off < 0 || off >= this.winSize) return;
    if (this.linear) {
      off += this.bankBase;
      if (off < this.vramSize) {
        this.vram[off] = v;
        this.dirtyPages[off >>> 12] = 1;
      }
      return;
    }
    let pa: number;
    let pm: number;
    if (this.chain4) {
      pa = off & ~3;
      pm = this.mapMask & (1 << (off & 3));
    } else if (this.oddEvenWrite) {
      pa = off & ~1;
      pm = this.mapMask & (off & 1 ? 0x0a : 0x05);
    } else {
      pa = off;
      pm = this.mapMask;
    }
    if (pm === 0) return;
    pa = (pa + this.planeBank) & this.paMask;
    this.planeWrites |= pm;
    this.dirtyPages[pa >>> 10] = 1;
    const data = this.simpleWrite ? (v * 0x01010101) | 0 : this.gcData(v & 0xff);
    const m = EXPAND4[pm];
    this.vram32[pa] = (this.vram32[pa] & ~m) | (data & m);
  }

  /** the graphics controller's write pipeline: the four plane bytes a CPU write of v produces */
  private gcData(v: number): number {
    const latch = this.latch;
    let data: number;
    let mask = this.bitMask;
    switch (this.writeMode) {
      case 1:
        return latch;
      case 2:
        data = EXPAND4[v & 0x0f];
        break;
      case 3: {
        const r = ((v >> this.rotate) | (v << (8 - this.rotate))) & 0xff;
        mask &= r;
        data = this.setReset32;
        break;
      }
      default: {
        const r = ((v >> this.rotate) | (v << (8 - this.rotate))) & 0xff;
        data = (r * 0x01010101) | 0;
        data = (data & ~this.setResetEnable32) | (this.setReset32 & this.setResetEnable32);
      }
    }
    switch (this.func) {
      case 1:
        data &= latch;
        break;
      case 2:
        data |= latch;
        break;
      case 3:
        data ^= latch;
        break;
    }
    const m32 = (mask * 0x01010101) | 0;
    return (data & m32) | (latch & ~m32);
  }

  private windowRead32(addr: number): number {
    if (this.chain4 && !this.linear && !this.readMode1) {
      // chain-4: the four bytes are planes 0–3 of one plane address (the latches end up holding it)
      const off = addr - VGA_WINDOW_BASE - this.winBase;
      if ((off & 3) === 0 && off >= 0 && off < this.winSize) {
        const w = this.vram32[(off + this.planeBank) & this.paMask];
        this.latch = w;
        return w;
      }
    }
    if (this.linear) {
      const off = addr - VGA_WINDOW_BASE - this.winBase;
      if (off >= 0 && off + 3 < this.winSize) {
        const o = off + this.bankBase;
        if ((o & 3) === 0 && o + 3 < this.vramSize) return this.vram32[o >>> 2];
      }
    }
    return (this.windowRead(addr) | (this.windowRead(addr + 1) << 8) | (this.windowRead(addr + 2) << 16) | (this.windowRead(addr + 3) << 24)) | 0;
  }

  private windowWrite32(addr: number, v: number): void {
    if (this.chain4 && this.simpleWrite && this.mapMask === 0x0f && !this.linear) {
      const off = addr - VGA_WINDOW_BASE - this.winBase;
      if ((off & 3) === 0 && off >= 0 && off < this.winSize) {
        const pa = (off + this.planeBank) & this.paMask;
        this.vram32[pa] = v;
        this.dirtyPages[pa >>> 10] = 1;
        this.planeWrites |= 0x0f;
        return;
      }
    }
    if (this.linear) {
      const off = addr - VGA_WINDOW_BASE - this.winBase;
      if (off >= 0 && off + 3 < this.winSize) {
        const o = off + this.bankBase;
        if ((o & 3) === 0 && o + 3 < this.vramSize) {
          this.vram32[o >>> 2] = v;
          this.dirtyPages[o >>> 12] = 1;
          return;
        }
      }
    }
    this.windowWrite(addr, v & 0xff);
    this.windowWrite(addr + 1, (v >>> 8) & 0xff);
    this.windowWrite(addr + 2, (v >>> 16) & 0xff);
    this.windowWrite(addr + 3, (v >>> 24) & 0xff);
  }

  // ---------------------------------------------------------------------------------------------
  // the linear framebuffer (BAR0): offsets into vram
  // ---------------------------------------------------------------------------------------------

  lfbRead8(off: number): number {
    return this.vram[off];
  }

  lfbWrite8(off: number, v: number): void {
    this.vram[off] = v;
    this.dirtyPages[off >>> 12] = 1;
    if (off < 0x40000) this.planeWrites = 0x0f; // the VGA planes (the font, in text mode)
  }

  lfbRead16(off: number): number {
    return this.vram[off] | (this.vram[off + 1] << 8);
  }

  lfbWrite16(off: number, v: number): void {
    this.vram[off] = v;
    this.vram[off + 1] = v >> 8;
    this.dirtyPages[off >>> 12] = 1;
    if (off < 0x40000) this.planeWrites = 0x0f;
  }

  lfbRead32(off: number): number {
    if ((off & 3) === 0) return this.vram32[off >>> 2];
    const m = this.vram;
    return m[off] | (m[off + 1] << 8) | (m[off + 2] << 16) | (m[off + 3] << 24);
  }

  lfbWrite32(off: number, v: number): void {
    if ((off & 3) === 0) {
      this.vram32[off >>> 2] = v;
    } else {
      const m = this.vram;
      m[off] = v;
      m[off + 1] = v >> 8;
      m[off + 2] = v >> 16;
      m[off + 3] = v >> 24;
    }
    this.dirtyPages[off >>> 12] = 1;
    if (off < 0x40000) this.planeWrites = 0x0f;
  }

  // ---------------------------------------------------------------------------------------------
  // the screen (devices/vga-render.ts)
  // ---------------------------------------------------------------------------------------------

  render(): ScreenUpdate {
    return this.renderer.render(this.host.clock.now());
  }

  text(): string[] | null {
    return this.renderer.text();
  }

  /** the text cursor's row and column, or null (graphics mode, cursor off or off screen) */
  textCursor(): { row: number; col: number } | null {
    return this.renderer.textCursor();
  }

  invalidate(): void {
    this.renderer.invalidate();
  }

  // ---------------------------------------------------------------------------------------------
  // state
  // ---------------------------------------------------------------------------------------------

  saveState(): VgaState {
    const pages: [number, string][] = [];
    const words = this.vram32;
    for (let p = 0; p < this.vramSize >>> 12; p++) {
      const from = p << 10;
      let any = false;
      for (let i = from; i < from + 1024; i++) {
        if (words[i] !== 0) {
          any = true;
          break;
        }
      }
      if (any) pages.push([p, bytesToBase64(this.vram.subarray(p << 12, (p + 1) << 12))]);
    }
    return {
      misc: this.misc,
      fcr: this.fcr,
      seqIndex: this.seqIndex,
      seq: Array.from(this.seq),
      crtcIndex: this.crtcIndex,
      crtc: Array.from(this.crtc),
      gcIndex: this.gcIndex,
      gc: Array.from(this.gc),
      arIndex: this.arIndex,
      arFlip: this.arFlip,
      ar: Array.from(this.ar),
      dac: Array.from(this.dac),
      dacReadIndex: this.dacReadIndex,
      dacWriteIndex: this.dacWriteIndex,
      dacSub: this.dacSub,
      dacState: this.dacState,
      dacCache: Array.from(this.dacCache),
      pelMask: this.pelMask,
      latch: this.latch,
      dispiIndex: this.dispiIndex,
      dispi: Array.from(this.dispi),
      vramSize: this.vramSize,
      vram: pages,
    };
  }

  loadState(state: unknown): void {
    const s = state as VgaState;
    if (s.vramSize !== this.vramSize) {
      throw new Error(`VGA state: ${s.vramSize} bytes of video memory saved, this VGA has ${this.vramSize}`);
    }
    this.misc = s.misc & 0xff;
    this.fcr = s.fcr & 0xff;
    this.seqIndex = s.seqIndex & 7;
    this.seq.set(s.seq.slice(0, 8));
    this.crtcIndex = s.crtcIndex & 0xff;
    this.crtc.set(s.crtc.slice(0, 256));
    this.gcIndex = s.gcIndex & 0x0f;
    this.gc.set(s.gc.slice(0, 16));
    this.arIndex = s.arIndex & 0x3f;
    this.arFlip = s.arFlip & 1;
    this.ar.set(s.ar.slice(0, 32));
    this.dac.set(s.dac.slice(0, 768));
    this.dacReadIndex = s.dacReadIndex & 0xff;
    this.dacWriteIndex = s.dacWriteIndex & 0xff;
    this.dacSub = s.dacSub % 3;
    this.dacState = s.dacState & 3;
    this.dacCache.set(s.dacCache.slice(0, 3));
    this.pelMask = s.pelMask & 0xff;
    this.latch = s.latch | 0;
    this.dispiIndex = s.dispiIndex & 0xffff;
    this.dispi.set(s.dispi.slice(0, 16));
    this.vram.fill(0);
    for (const [p, b64] of s.vram) {
      const bytes = base64ToBytes(b64);
      if (p < 0 || (p + 1) << 12 > this.vramSize || bytes.length !== 4096) throw new Error(`VGA state: bad video memory page ${p}`);
      this.vram.set(bytes, p << 12);
    }
    this.dispiFixup();
    this.dacVersion++;
    this.timingValid = false;
    this.updateAccess();
    this.renderer.invalidate();
  }
}

// ---------------------------------------------------------------------------------------------------
// the PCI function

/** the VGA as PCI function 1234:1111: BAR0 framebuffer, BAR2 MMIO registers, expansion ROM */
export class VgaPci extends PciDevice {
  private readonly vga: Vga;
  private readonly mem: Memory;
  private readonly rom: Uint8Array | null;
  private readonly romSize: number;
  private lfbAt = -1;
  private romAt = -1;
  private readonly lfbHandler: MmioHandler;

  constructor(vga: Vga, mem: Memory, romImage?: Uint8Array) {
    const mmio: BarHandler = {
      read8: (o) => mmioRead(vga, o, 1),
      write8: (o, v) => mmioWrite(vga, o, v, 1),
      read16: (o) => mmioRead(vga, o, 2),
      write16: (o, v) => mmioWrite(vga, o, v, 2),
      read32: (o) => mmioRead(vga, o, 2) | (mmioRead(vga, o + 2, 2) << 16),
      write32: (o, v) => {
        mmioWrite(vga, o, v & 0xffff, 2);
        mmioWrite(vga, o + 2, (v >>> 16) & 0xffff, 2);
      },
    };
    super({
      name: 'vga',
      vendorId: VGA_VENDOR_ID,
      deviceId: VGA_DEVICE_ID,
      classCode: VGA_CLASS,
      revision: 2,
      bars: [{ size: vga.vramSize, kind: 'mem', prefetchable: true }, null, { size: 4096, kind: 'mem', handler: mmio }],
    });
    this.vga = vga;
    this.mem = mem;
    if (romImage && romImage.length > 0) {
      if (romImage.length > 16 << 20) throw new RangeError(`VGA BIOS image of ${romImage.length} bytes is too large`);
      let size = 4096;
      while (size < romImage.length) size *= 2;
      this.romSize = size;
      this.rom = new Uint8Array(size);
      this.rom.set(romImage);
    } else {
      this.rom = null;
      this.romSize = 0;
    }
    this.lfbHandler = {
      name: 'vga BAR0',
      read8: (a) => vga.lfbRead8(a - this.lfbAt),
      write8: (a, v) => vga.lfbWrite8(a - this.lfbAt, v),
      read16: (a) => vga.lfbRead16(a - this.lfbAt),
      write16: (a, v) => vga.lfbWrite16(a - this.lfbAt, v),
      read32: (a) => vga.lfbRead32(a - this.lfbAt),
      write32: (a, v) => vga.lfbWrite32(a - this.lfbAt, v),
    };
    this.captureResetState();
  }

  /** where the linear framebuffer is mapped now (-1: not mapped) */
  get lfbAddress(): number {
    return this.lfbAt;
  }

  /** where the expansion ROM is mapped now (-1: not mapped) */
  get romAddress(): number {
    return this.romAt;
  }

  override barMapped(index: number, base: number): void {
    if (index !== 0) return;
    if (this.lfbAt >= 0) {
      this.mem.unmapMmio(this.lfbAt, this.vga.vramSize);
      this.lfbAt = -1;
    }
    if (base >= 0) {
      this.lfbAt = base;
      this.mem.mapMmio(base, this.vga.vramSize, this.lfbHandler);
    }
  }

  // ---- the expansion ROM BAR (0x30): address bits above the size, bit 0 enable ----

  override writeConfig(offset: number, value: number, size: number): void {
    if (offset + size <= PCI_ROM_ADDRESS || offset >= PCI_ROM_ADDRESS + 4) {
      super.writeConfig(offset, value, size);
      return;
    }
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      if (o < PCI_ROM_ADDRESS || o >= PCI_ROM_ADDRESS + 4) continue;
      const shift = 8 * (o - PCI_ROM_ADDRESS);
      const writable = this.rom ? ((~(this.romSize - 1) | PCI_ROM_ENABLE) >>> shift) & 0xff : 0;
      const b = (value >>> (8 * i)) & 0xff;
      this.config[o] = (this.config[o] & ~writable) | (b & writable);
    }
    this.updateRom();
  }

  override configWritten(offset: number, size: number): void {
    if (offset <= PCI_COMMAND && offset + size > PCI_COMMAND) this.updateRom();
  }

  private updateRom(): void {
    let want = -1;
    if (this.rom) {
      const raw = this.get32(PCI_ROM_ADDRESS);
      const base = (raw & ~(this.romSize - 1) & ~0x7ff) >>> 0;
      if (raw & PCI_ROM_ENABLE && this.get16(PCI_COMMAND) & PCI_COMMAND_MEMORY && base !== 0 && base + this.romSize <= 0x100000000) {
        want = base;
      }
    }
    if (want === this.romAt) return;
    if (this.romAt >= 0) {
      this.mem.unmapMmio(this.romAt, this.romSize);
      this.romAt = -1;
    }
    if (want >= 0 && this.rom) {
      for (let p = want >>> 12; p < (want + this.romSize) / 4096; p++) if (this.mem.pageKind[p] === PageKind.Mmio) return;
      const rom = this.rom;
      const base = want;
      this.mem.mapMmio(want, this.romSize, {
        name: 'vga ROM',
        read8: (a) => rom[a - base],
        write8: () => {},
      });
      this.romAt = want;
    }
  }

  override reset(): void {
    super.reset();
    this.updateRom();
  }

  override loadState(state: unknown): void {
    super.loadState(state);
    this.updateRom();
  }
}

/** BAR2: the EDID at 0x000, the VGA ports at 0x400 (0x3C0–0x3DF), the dispi registers at 0x500 (16-bit, index × 2) */
function mmioRead(vga: Vga, off: number, size: number): number {
  if (off < MMIO_EDID + MMIO_EDID_SIZE) {
    // the EDID blob, read-only; zeros past its end (and everywhere without one)
    const e = vga.edid;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const o = off + i - MMIO_EDID;
      v = (v << 8) | (e && o < e.length ? e[o] : 0);
    }
    return v;
  }
  if (off >= MMIO_VGA_PORTS && off < MMIO_VGA_PORTS + 0x20) {
    const port = 0x3c0 + off - MMIO_VGA_PORTS;
    if (size === 1) return vga.ioRead(port);
    return vga.ioRead(port) | (vga.ioRead(port + 1) << 8);
  }
  if (off >= MMIO_DISPI && off < MMIO_DISPI + 0x20) {
    const saved = vga.dispiIndex;
    vga.dispiIndex = (off - MMIO_DISPI) >> 1;
    let v = vga.dispiRead();
    vga.dispiIndex = saved;
    if (size === 1) v = off & 1 ? v >> 8 : v & 0xff;
    return v;
  }
  return size === 1 ? 0 : 0;
}

function mmioWrite(vga: Vga, off: number, v: number, size: number): void {
  if (off >= MMIO_VGA_PORTS && off < MMIO_VGA_PORTS + 0x20) {
    const port = 0x3c0 + off - MMIO_VGA_PORTS;
    vga.ioWrite(port, v & 0xff);
    if (size === 2) vga.ioWrite(port + 1, (v >> 8) & 0xff);
    return;
  }
  if (off >= MMIO_DISPI && off < MMIO_DISPI + 0x20 && size === 2 && (off & 1) === 0) {
    const saved = vga.dispiIndex;
    vga.dispiIndex = (off - MMIO_DISPI) >> 1;
    vga.dispiWrite(v);
    vga.dispiIndex = saved;
  }
}

// ---------------------------------------------------------------------------------------------------
// plugging it into the PC

/**
 * Adds the VGA to a PC: the legacy ports and window, and (with PCI) the PCI function in slot 2 with its
 * framebuffer, MMIO and ROM BARs; without PCI a `romImage` is placed at C0000 like an ISA card's BIOS.
 * The Vga is added to the machine's devices (its state goes into snapshots; the PCI function's through
 * the PCI bus).
 */
export function addVga(pc: Pc, options: VgaOptions = {}): Vga {
  const vga = new Vga(pc.machine, options);
  pc.machine.addDevice(vga);
  if (pc.pci) {
    vga.pci = pc.pci.bus.add(new VgaPci(vga, pc.mem, options.romImage), devfn(options.slot ?? VGA_PCI_SLOT, 0));
  } else if (options.romImage) {
    pc.mem.mapRom(0xc0000, options.romImage, 'vgabios');
  }
  return vga;
}

// ---- base64 for the saved video memory (no Node or DOM APIs in devices/) ----

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUE[B64.charCodeAt(i)] = i;

function bytesToBase64(b: Uint8Array): string {
  const parts: string[] = [];
  let i = 0;
  for (; i + 3 <= b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    parts.push(B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63]);
  }
  if (i < b.length) {
    const n = (b[i] << 16) | (i + 1 < b.length ? b[i + 1] << 8 : 0);
    parts.push(B64[n >> 18] + B64[(n >> 12) & 63] + (i + 1 < b.length ? B64[(n >> 6) & 63] : '=') + '=');
  }
  return parts.join('');
}

function base64ToBytes(s: string): Uint8Array {
  const clean = s.replace(/=+$/, '');
  const out = new Uint8Array((clean.length * 3) >> 2);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < clean.length; i++) {
    const c = clean.charCodeAt(i);
    const v = c < 128 ? B64_VALUE[c] : -1;
    if (v < 0) throw new Error('VGA state: bad base64');
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, o);
}
