/**
 * The VGA's Bochs VBE side as Linux's bochs DRM driver and SeaBIOS's VGA BIOS use it (devices/vga.ts,
 * devices/vga-tables.ts makeEdid): the EDID in the MMIO BAR, blanking through the attribute controller's
 * palette address source, the VGA registers following the dispi mode, the display start in 4-byte units,
 * and modes too large to draw. The guest-level checks (vesafb and bochs-drm under Linux, the VGA BIOS's
 * VBE calls, all against QEMU) are in test/vbe-guest.test.ts.
 */
import { describe, it, expect } from 'vitest';
import { IoBus } from '../../core/iobus';
import { Memory } from '../../core/memory';
import { createPc } from '../../core/pc';
import { devfn, PCI_COMMAND } from '../../devices/pci';
import {
  Vga,
  addVga,
  MMIO_DISPI,
  MMIO_VGA_PORTS,
  VBE_DISPI_ENABLED,
  VBE_DISPI_GETCAPS,
  VBE_DISPI_LFB_ENABLED,
  VBE_DISPI_INDEX_BPP,
  VBE_DISPI_INDEX_ENABLE,
  VBE_DISPI_INDEX_VIRT_WIDTH,
  VBE_DISPI_INDEX_X_OFFSET,
  VBE_DISPI_INDEX_XRES,
  VBE_DISPI_INDEX_Y_OFFSET,
  VBE_DISPI_INDEX_YRES,
  VBE_DISPI_INDEX_ID,
} from '../../devices/vga';
import { makeEdid, EDID_MONITOR_NAME } from '../../devices/vga-tables';

/** the fields of an EDID base block a driver reads, decoded by the E-EDID 1.4 layout */
function parseEdid(e: Uint8Array) {
  const sum = e.subarray(0, 128).reduce((a, b) => a + b, 0) & 0xff;
  const mfg = (e[8] << 8) | e[9];
  const letters = [10, 5, 0].map((s) => String.fromCharCode(64 + ((mfg >> s) & 31))).join('');
  const d = 54;
  const hActive = e[d + 2] | ((e[d + 4] >> 4) << 8);
  const hBlank = e[d + 3] | ((e[d + 4] & 15) << 8);
  const vActive = e[d + 5] | ((e[d + 7] >> 4) << 8);
  const vBlank = e[d + 6] | ((e[d + 7] & 15) << 8);
  const descriptors = [72, 90, 108].map((at) => ({ tag: e[at + 3], body: e.subarray(at + 5, at + 18) }));
  return {
    header: Array.from(e.subarray(0, 8)),
    sum,
    manufacturer: letters,
    version: [e[18], e[19]],
    extensions: e[126],
    clockKHz: (e[d] | (e[d + 1] << 8)) * 10,
    hActive,
    hTotal: hActive + hBlank,
    hFront: e[d + 8] | (((e[d + 11] >> 6) & 3) << 8),
    hSync: e[d + 9] | (((e[d + 11] >> 4) & 3) << 8),
    vActive,
    vTotal: vActive + vBlank,
    vFront: e[d + 10] >> 4,
    vSync: e[d + 10] & 15,
    flags: e[d + 17],
    preferredIsNative: (e[24] & 2) !== 0,
    descriptors,
  };
}

describe('the EDID (makeEdid)', () => {
  it('is a valid E-EDID 1.4 base block whose preferred mode is 1280x800 with the VESA reduced-blanking timing', () => {
    const p = parseEdid(makeEdid());
    expect(p.header).toEqual([0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    expect(p.sum).toBe(0);
    expect(p.manufacturer).toBe('XVM');
    expect(p.version).toEqual([1, 4]);
    expect(p.extensions).toBe(0);
    expect(p.preferredIsNative).toBe(true);
    // VESA DMT 1280x800 @ 60 Hz reduced blanking: 71.00 MHz, 1440 x 823, +hsync -vsync
    expect(p).toMatchObject({ clockKHz: 71000, hActive: 1280, hTotal: 1440, hFront: 48, hSync: 32, vActive: 800, vTotal: 823, vFront: 3, vSync: 6 });
    expect(p.flags & 0x1e).toBe(0x1a);
    // range limits, then the monitor name (ended by a line feed, padded with spaces), then a dummy descriptor
    expect(p.descriptors.map((d) => d.tag)).toEqual([0xfd, 0xfc, 0x10]);
    const name = Buffer.from(p.descriptors[1].body).toString('latin1');
    expect(name).toBe(`${EDID_MONITOR_NAME}\n`.padEnd(13, ' '));
    const [vMin, vMax, hMin, hMax, clock10] = p.descriptors[0].body;
    const hKHz = p.clockKHz / p.hTotal;
    const vHz = (hKHz * 1000) / p.vTotal;
    expect(vHz).toBeGreaterThanOrEqual(vMin);
    expect(vHz).toBeLessThanOrEqual(vMax);
    expect(hKHz).toBeGreaterThanOrEqual(hMin);
    expect(hKHz).toBeLessThanOrEqual(hMax);
    expect(p.clockKHz).toBeLessThanOrEqual(clock10 * 10_000);
  });

  it('gives other preferred modes their CVT reduced-blanking timings (the published VESA figures)', () => {
    const cases: [number, number, number, number, number, number][] = [
      // width, height, kHz, h total, v total, v sync (the aspect ratio code)
      [1024, 768, 56000, 1184, 790, 4],
      [1920, 1080, 138500, 2080, 1111, 5],
      [1440, 900, 88750, 1600, 926, 6],
      [2560, 1600, 268500, 2720, 1646, 6],
    ];
    for (const [w, h, khz, ht, vt, vs] of cases) {
      const p = parseEdid(makeEdid(w, h));
      expect(p.sum, `${w}x${h}`).toBe(0);
      expect([p.hActive, p.vActive, p.clockKHz, p.hTotal, p.vTotal, p.vSync], `${w}x${h}`).toEqual([w, h, khz, ht, vt, vs]);
    }
    expect(() => makeEdid(1366, 768)).toThrow(/multiple of 8/);
    expect(() => makeEdid(320, 200)).toThrow(RangeError);
    expect(() => makeEdid(4096, 2160)).toThrow(RangeError);
  });
});

/** a PC with the VGA on PCI, its BARs placed where SeaBIOS puts them on QEMU */
function pciVga(options: Parameters<typeof addVga>[1] = {}) {
  const pc = createPc({ memSize: 32 << 20, apic: false });
  const vga = addVga(pc, options);
  const bus = pc.pci!.bus;
  const df = devfn(2);
  bus.configWrite(df, 0x10, 0xfd000000, 4);
  bus.configWrite(df, 0x18, 0xfebf0000, 4);
  bus.configWrite(df, PCI_COMMAND, 0x0003, 2);
  const mmio = 0xfebf0000;
  const dispi = (i: number, v: number) => pc.mem.write16(mmio + MMIO_DISPI + 2 * i, v);
  const dispiRead = (i: number) => pc.mem.read16(mmio + MMIO_DISPI + 2 * i);
  return { pc, vga, mmio, dispi, dispiRead };
}

describe('the MMIO BAR as the bochs DRM driver uses it', () => {
  it('shows the EDID at offsets 0–0x3FF to byte, word and dword reads; writes do nothing', () => {
    const { pc, mmio } = pciVga();
    const edid = makeEdid();
    for (let i = 0; i < 128; i++) expect(pc.mem.read8(mmio + i)).toBe(edid[i]);
    expect(pc.mem.read16(mmio + 8)).toBe(edid[8] | (edid[9] << 8));
    expect(pc.mem.read32(mmio + 54) >>> 0).toBe((edid[54] | (edid[55] << 8) | (edid[56] << 16) | (edid[57] << 24)) >>> 0);
    for (const off of [128, 200, 0x3fc]) expect(pc.mem.read32(mmio + off)).toBe(0);
    pc.mem.write8(mmio + 1, 0x12);
    pc.mem.write32(mmio + 4, 0);
    expect(pc.mem.read8(mmio + 1)).toBe(0xff);
    expect(pc.mem.read8(mmio + 4)).toBe(0xff);
  });

  it('carries the preferred mode it is given, or no EDID at all (the header reads as zeros)', () => {
    const a = pciVga({ edid: { width: 1024, height: 768 } });
    const bytes = Uint8Array.from({ length: 128 }, (_, i) => a.pc.mem.read8(a.mmio + i));
    expect(parseEdid(bytes)).toMatchObject({ hActive: 1024, vActive: 768, sum: 0 });
    const b = pciVga({ edid: false });
    for (let i = 0; i < 8; i++) expect(b.pc.mem.read8(b.mmio + i)).toBe(0);
    expect(b.vga.edid).toBeNull();
    expect(() => pciVga({ edid: { width: 100, height: 100 } })).toThrow(/EDID preferred mode 100x100/);
  });

  it('sets a 32 bpp mode, flips pages with the y offset, and blanks through the attribute index (bochs_hw_blank)', () => {
    const { pc, vga, mmio, dispi, dispiRead } = pciVga();
    expect(dispiRead(VBE_DISPI_INDEX_ID)).toBe(0xb0c5);
    // bochs_hw_setmode's order
    dispi(VBE_DISPI_INDEX_ENABLE, 0);
    dispi(VBE_DISPI_INDEX_BPP, 32);
    dispi(VBE_DISPI_INDEX_XRES, 1280);
    dispi(VBE_DISPI_INDEX_YRES, 800);
    dispi(VBE_DISPI_INDEX_VIRT_WIDTH, 1280);
    dispi(VBE_DISPI_INDEX_X_OFFSET, 0);
    dispi(VBE_DISPI_INDEX_Y_OFFSET, 0);
    dispi(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED);
    const lfb = 0xfd000000;
    const page = 1280 * 800 * 4;
    pc.mem.write32(lfb + (10 * 1280 + 20) * 4, 0x00ff0000); // page 0: red at (20, 10)
    pc.mem.write32(lfb + page + (10 * 1280 + 20) * 4, 0x000000ff); // page 1: blue there
    let f = vga.render().frame;
    expect([f.width, f.height]).toEqual([1280, 800]);
    expect(f.rgb(20, 10)).toEqual([255, 0, 0]);
    dispi(VBE_DISPI_INDEX_Y_OFFSET, 800); // bochs_hw_setbase for a buffer one page in
    expect(vga.render().frame.rgb(20, 10)).toEqual([0, 0, 255]);
    // blank: reset the flip-flop through 0x3DA, write index 0 to 0x3C0 (both through the MMIO window)
    pc.mem.read8(mmio + MMIO_VGA_PORTS + 0x1a);
    pc.mem.write8(mmio + MMIO_VGA_PORTS + 0x00, 0x00);
    f = vga.render().frame;
    expect([f.width, f.height]).toEqual([1280, 800]);
    expect(f.rgb(20, 10)).toEqual([0, 0, 0]);
    pc.mem.read8(mmio + MMIO_VGA_PORTS + 0x1a);
    pc.mem.write8(mmio + MMIO_VGA_PORTS + 0x00, 0x20);
    expect(vga.render().frame.rgb(20, 10)).toEqual([0, 0, 255]);
  });
});

/** a bare VGA on an I/O bus (no PCI) */
class Rig {
  io = new IoBus();
  mem = new Memory(2 << 20);
  clock = { now: () => 0 };
  vga: Vga;
  constructor(opts: ConstructorParameters<typeof Vga>[1] = {}) {
    this.vga = new Vga(this, opts);
  }
  dispi(i: number, v: number): void {
    this.io.out16(0x1ce, i);
    this.io.out16(0x1cf, v);
  }
  dispiRead(i: number): number {
    this.io.out16(0x1ce, i);
    return this.io.in16(0x1cf);
  }
  crtc(i: number): number {
    this.io.out8(0x3d4, i);
    return this.io.in8(0x3d5);
  }
  mode(w: number, h: number, bpp: number): void {
    this.dispi(VBE_DISPI_INDEX_ENABLE, 0);
    this.dispi(VBE_DISPI_INDEX_XRES, w);
    this.dispi(VBE_DISPI_INDEX_YRES, h);
    this.dispi(VBE_DISPI_INDEX_BPP, bpp);
    this.dispi(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED);
  }
}

describe('dispi registers, as QEMU keeps them', () => {
  it('reports QEMU\'s 16000x12000 limits, clamping to them and to the memory', () => {
    const r = new Rig();
    r.dispi(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_GETCAPS);
    expect([r.dispiRead(VBE_DISPI_INDEX_XRES), r.dispiRead(VBE_DISPI_INDEX_YRES), r.dispiRead(VBE_DISPI_INDEX_BPP)]).toEqual([16000, 12000, 32]);
    r.mode(20000, 600, 8);
    expect(r.dispiRead(VBE_DISPI_INDEX_XRES)).toBe(16000);
    expect(r.dispiRead(VBE_DISPI_INDEX_YRES)).toBe(600);
    r.mode(3840, 12000, 32); // 16 MiB hold 1092 lines of 3840 x 4 bytes
    expect(r.dispiRead(VBE_DISPI_INDEX_YRES)).toBe(1092);
  });

  it('keeps the VGA registers in step with the mode while enabled: width, height, offset, graphics, chain-4', () => {
    const r = new Rig();
    r.mode(640, 480, 32);
    expect(r.crtc(0x01)).toBe(79);
    expect(r.crtc(0x13)).toBe((640 * 4) >> 3 & 0xff);
    r.dispi(VBE_DISPI_INDEX_XRES, 1024);
    r.dispi(VBE_DISPI_INDEX_YRES, 768);
    expect(r.crtc(0x01)).toBe(127);
    const vde = r.crtc(0x12) | ((r.crtc(0x07) & 2) << 7) | ((r.crtc(0x07) & 0x40) << 3);
    expect(vde).toBe(767);
    r.dispi(VBE_DISPI_INDEX_VIRT_WIDTH, 1280);
    expect(r.crtc(0x13)).toBe(((1280 * 4) >> 3) & 0xff);
    expect(r.vga.gc[6] & 0x0d).toBe(0x05);
    expect(r.vga.seq[4] & 0x08).toBe(0x08);
    // disabled: the VGA registers are left alone
    r.dispi(VBE_DISPI_INDEX_ENABLE, 0);
    r.dispi(VBE_DISPI_INDEX_XRES, 640);
    expect(r.crtc(0x01)).toBe(127);
  });

  it('starts the display at a multiple of 4 bytes, and a start past the memory resets both offsets', () => {
    const r = new Rig();
    r.mode(64, 16, 24);
    r.dispi(VBE_DISPI_INDEX_VIRT_WIDTH, 128);
    // line 2 starts at byte 2 * 384; pixels 4, 5 and 6 of it hold (B, G, R) = (1, 2, 3), (4, 5, 6), (7, 8, 9)
    const line = 2 * 384;
    r.vga.vram.set([1, 2, 3, 4, 5, 6, 7, 8, 9], line + 12);
    r.dispi(VBE_DISPI_INDEX_X_OFFSET, 4); // byte 12: exact
    expect(r.vga.render().frame.rgb(0, 2)).toEqual([3, 2, 1]);
    r.dispi(VBE_DISPI_INDEX_X_OFFSET, 5); // byte 15, rounded down to 12: still pixel 4
    expect(r.vga.render().frame.rgb(0, 2)).toEqual([3, 2, 1]);
    r.dispi(VBE_DISPI_INDEX_X_OFFSET, 6); // byte 18, rounded down to 16: between pixels, as QEMU shows it
    expect(r.vga.render().frame.rgb(0, 2)).toEqual([7, 6, 5]);
    // 16000 pixels of 3 bytes a line: 16 MiB hold 349 lines
    r.dispi(VBE_DISPI_INDEX_VIRT_WIDTH, 16000);
    r.dispi(VBE_DISPI_INDEX_X_OFFSET, 8);
    r.dispi(VBE_DISPI_INDEX_Y_OFFSET, 300);
    expect([r.dispiRead(VBE_DISPI_INDEX_X_OFFSET), r.dispiRead(VBE_DISPI_INDEX_Y_OFFSET)]).toEqual([8, 300]);
    r.dispi(VBE_DISPI_INDEX_Y_OFFSET, 340); // 340 + 16 lines > 349: both back to 0
    expect([r.dispiRead(VBE_DISPI_INDEX_X_OFFSET), r.dispiRead(VBE_DISPI_INDEX_Y_OFFSET)]).toEqual([0, 0]);
  });

  it('draws a mode too large for a frame as a 640x480 black picture instead of failing', () => {
    const r = new Rig({ vramSize: 128 << 20 });
    r.mode(16000, 12000, 8); // 128 MiB hold 8388 lines: 134 M pixels
    expect(r.dispiRead(VBE_DISPI_INDEX_YRES)).toBe(8388);
    const f = r.vga.render().frame;
    expect([f.width, f.height]).toEqual([640, 480]);
    r.mode(1024, 768, 8);
    expect([r.vga.render().frame.width, r.vga.render().frame.height]).toEqual([1024, 768]);
  });
});
