/**
 * Register tables and small constant tables of the VGA (devices/vga.ts): which bits of each register
 * exist, the register values of 80x25 colour text (mode 3), the EGA palette the DAC holds for 16-colour
 * modes, and bit-expansion tables for the planar data paths.
 *
 * The mode-3 values are the standard IBM VGA parameters for that mode (IBM VGA Technical Reference,
 * "video mode parameter table"): 720x400 at 70 Hz, 9-dot characters, 16 scan lines a row.
 */

/** writable bits of sequencer registers 0–7 (SR0 reset, SR1 clocking, SR2 map mask, SR3 char map, SR4 memory mode) */
export const SR_MASK = new Uint8Array([0x03, 0x3d, 0x0f, 0x3f, 0x0e, 0x00, 0x00, 0x00]);

/** writable bits of graphics controller registers 0–15 (GR0–GR8 exist) */
export const GR_MASK = new Uint8Array([0x0f, 0x0f, 0x0f, 0x1f, 0x03, 0x7b, 0x0f, 0x0f, 0xff, 0, 0, 0, 0, 0, 0, 0]);

/** number of attribute controller registers (palette 0–15, mode, overscan, plane enable, panning, colour select) */
export const AR_COUNT = 0x15;

/** writable bits of attribute controller registers 0x00–0x14 */
export const AR_MASK = new Uint8Array([
  0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f,
  0xef, 0xff, 0x3f, 0x0f, 0x0f,
]);

/** number of CRTC registers that exist (0x00–0x18) */
export const CRTC_COUNT = 0x19;

/** mode 3 (80x25 colour text): miscellaneous output */
export const MODE3_MISC = 0x67;
/** mode 3: sequencer registers 0–4 */
export const MODE3_SEQ = [0x03, 0x00, 0x03, 0x00, 0x02];
/** mode 3: CRTC registers 0x00–0x18 */
export const MODE3_CRTC = [
  0x5f, 0x4f, 0x50, 0x82, 0x55, 0x81, 0xbf, 0x1f, 0x00, 0x4f, 0x0d, 0x0e, 0x00, 0x00, 0x00, 0x00,
  0x9c, 0x8e, 0x8f, 0x28, 0x1f, 0x96, 0xb9, 0xa3, 0xff,
];
/** mode 3: attribute controller registers 0x00–0x14 */
export const MODE3_AR = [
  0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f,
  0x0c, 0x00, 0x0f, 0x08, 0x00,
];
/** mode 3: graphics controller registers 0–8 */
export const MODE3_GR = [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0e, 0x00, 0xff];

/**
 * The 64-colour EGA palette as 6-bit DAC triplets: index bits 0–2 are blue, green, red at 2/3 intensity,
 * bits 3–5 the same at 1/3 (rgbRGB). The 16 text colours of mode 3 are entries 0–7, 0x14 (brown) and
 * 0x38–0x3F, which is what the mode's attribute palette selects.
 */
export function egaPalette(): Uint8Array {
  const out = new Uint8Array(64 * 3);
  for (let i = 0; i < 64; i++) {
    const r = ((i >> 2) & 1) * 0x2a + ((i >> 5) & 1) * 0x15;
    const g = ((i >> 1) & 1) * 0x2a + ((i >> 4) & 1) * 0x15;
    const b = (i & 1) * 0x2a + ((i >> 3) & 1) * 0x15;
    out[i * 3] = r;
    out[i * 3 + 1] = g;
    out[i * 3 + 2] = b;
  }
  return out;
}

/**
 * Bit p of a 4-bit value → byte p of a 32-bit word all ones (0xFF). VRAM holds the four planes of one
 * address as the four bytes of a word (plane 0 in the low byte), so this turns a plane mask or a set/reset
 * colour into a word mask.
 */
export const EXPAND4 = new Int32Array(16);
for (let v = 0; v < 16; v++) {
  let w = 0;
  for (let p = 0; p < 4; p++) if (v & (1 << p)) w |= 0xff << (8 * p);
  EXPAND4[v] = w;
}

/**
 * Planar-to-packed: the 8 bits of one plane byte (bit 7 = leftmost pixel) spread to bit 0 of 8 nibbles
 * (nibble 0 = leftmost pixel). OR-ing PLANE_NIBBLES[p0] | [p1] << 1 | [p2] << 2 | [p3] << 3 gives the 4-bit
 * colour of each of the 8 pixels in one word.
 */
export const PLANE_NIBBLES = new Int32Array(256);
for (let b = 0; b < 256; b++) {
  let w = 0;
  for (let i = 0; i < 8; i++) if (b & (0x80 >> i)) w |= 1 << (4 * i);
  PLANE_NIBBLES[b] = w;
}

/**
 * CGA-compatible 2-bit packing (graphics controller mode bit 5, "shift register interleave"): one plane byte
 * holds four 2-bit pixels, leftmost in bits 7–6; this spreads them to 4 nibbles (low 2 bits of each).
 */
export const PAIR_NIBBLES = new Int32Array(256);
for (let b = 0; b < 256; b++) {
  let w = 0;
  for (let i = 0; i < 4; i++) w |= ((b >> (6 - 2 * i)) & 3) << (4 * i);
  PAIR_NIBBLES[b] = w;
}

/** plane-2 offset of character map n (0–7) as SR3 encodes it: 0K, 16K, 32K, 48K, 8K, 24K, 40K, 56K */
export function charMapOffset(n: number): number {
  return (((n & 3) << 1) | ((n >> 2) & 1)) * 0x2000;
}

// ---------------------------------------------------------------------------------------------------
// EDID

/** the preferred (native) mode the card's EDID reports unless told otherwise: QEMU's stdvga default */
export const EDID_DEFAULT_WIDTH = 1280;
export const EDID_DEFAULT_HEIGHT = 800;
/** the monitor name in the EDID's display product name descriptor */
export const EDID_MONITOR_NAME = 'x86vm';

/**
 * A VESA E-EDID 1.4 base block (128 bytes) for a 96 dpi monitor whose preferred (native) mode is
 * width x height at 60 Hz, as QEMU's stdvga offers one in its MMIO BAR so that Linux's bochs DRM driver
 * (and anything else that reads it) picks that mode. Written from the VESA E-EDID standard, release A2:
 *
 * - header, manufacturer "XVM", product 1, manufactured week 1 of 2026, version 1.4;
 * - digital input, 8 bits per colour, RGB 4:4:4, sRGB default colour space, the preferred timing is native;
 * - sRGB chromaticity (red 0.640/0.330, green 0.300/0.600, blue 0.150/0.060, white D65 0.3127/0.3290);
 * - established timings 640x480, 800x600, 1024x768 at 60 Hz; standard timings 1280x1024, 1600x1200,
 *   1920x1080 at 60 Hz;
 * - descriptor 1: the detailed timing of the preferred mode, with CVT reduced-blanking timings (what a
 *   flat panel runs: 160 pixels of horizontal blanking, at least 460 µs of vertical blanking);
 * - descriptor 2: range limits (50–125 Hz, 25–160 kHz, 340 MHz); 3: the monitor name; 4: dummy.
 */
export function makeEdid(width = EDID_DEFAULT_WIDTH, height = EDID_DEFAULT_HEIGHT): Uint8Array {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width % 8 === 0 && width >= 640 && height >= 480 && width <= 2560 && height <= 1600)) {
    throw new RangeError(`EDID preferred mode ${width}x${height}: the width must be a multiple of 8 from 640 to 2560, the height 480 to 1600`);
  }
  const e = new Uint8Array(128);
  e.set([0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00], 0);
  // manufacturer: three letters, 5 bits each ('A' = 1), big-endian
  const letter = (c: string) => c.charCodeAt(0) - 64;
  const mfg = (letter('X') << 10) | (letter('V') << 5) | letter('M');
  e[8] = mfg >> 8;
  e[9] = mfg & 0xff;
  e[10] = 1; // product code (little-endian)
  e[16] = 1; // week of manufacture
  e[17] = 2026 - 1990;
  e[18] = 1; // EDID version 1.4
  e[19] = 4;
  e[20] = 0x80 | (2 << 4); // digital, 8 bits per primary colour, interface not defined
  // screen size in cm at 96 dpi
  e[21] = Math.max(1, Math.round((width / 96) * 2.54));
  e[22] = Math.max(1, Math.round((height / 96) * 2.54));
  e[23] = 220 - 100; // gamma 2.2
  e[24] = 0x04 | 0x02; // sRGB default, preferred timing mode is native; RGB 4:4:4
  // chromaticity: 10-bit binary fractions, the low two bits packed into bytes 25/26
  const chroma = [0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329].map((v) => Math.round(v * 1024));
  e[25] = ((chroma[0] & 3) << 6) | ((chroma[1] & 3) << 4) | ((chroma[2] & 3) << 2) | (chroma[3] & 3);
  e[26] = ((chroma[4] & 3) << 6) | ((chroma[5] & 3) << 4) | ((chroma[6] & 3) << 2) | (chroma[7] & 3);
  for (let i = 0; i < 8; i++) e[27 + i] = chroma[i] >> 2;
  e[35] = 0x21; // 640x480@60, 800x600@60
  e[36] = 0x08; // 1024x768@60
  e[37] = 0x00;
  // standard timings: (width / 8 - 31), aspect ratio (bits 7-6: 00 16:10, 01 4:3, 10 5:4, 11 16:9) | (Hz - 60)
  const std = [
    [1280, 0b10],
    [1600, 0b01],
    [1920, 0b11],
  ];
  for (let i = 0; i < 8; i++) {
    const s = std[i];
    e[38 + 2 * i] = s ? s[0] / 8 - 31 : 0x01;
    e[39 + 2 * i] = s ? s[1] << 6 : 0x01;
  }
  detailedTiming(e, 54, width, height);
  // range limits: vertical 50–125 Hz, horizontal 25–160 kHz, pixel clock up to 340 MHz, no timing formula
  e.set([0, 0, 0, 0xfd, 0, 50, 125, 25, 160, 34, 0x01, 0x0a, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20], 72);
  // display product name: up to 13 characters, ended by a line feed and padded with spaces
  e.set([0, 0, 0, 0xfc, 0], 90);
  for (let i = 0; i < 13; i++) {
    e[95 + i] = i < EDID_MONITOR_NAME.length ? EDID_MONITOR_NAME.charCodeAt(i) : i === EDID_MONITOR_NAME.length ? 0x0a : 0x20;
  }
  e.set([0, 0, 0, 0x10, 0], 108); // dummy descriptor (zeros)
  e[126] = 0; // no extension blocks
  let sum = 0;
  for (let i = 0; i < 127; i++) sum += e[i];
  e[127] = (256 - (sum & 0xff)) & 0xff;
  return e;
}

/** an 18-byte detailed timing descriptor at `at`: width x height at 60 Hz with CVT reduced blanking (v1) */
function detailedTiming(e: Uint8Array, at: number, width: number, height: number): void {
  const hActive = width;
  const hBlank = 160;
  const hFront = 48;
  const hSync = 32;
  const vFront = 3;
  const ratio = width / height;
  const near = (r: number) => Math.abs(ratio - r) < 0.01;
  // the vertical sync width encodes the aspect ratio in CVT
  const vSync = near(4 / 3) ? 4 : near(16 / 9) ? 5 : near(16 / 10) ? 6 : near(5 / 4) || near(15 / 9) ? 7 : 10;
  // vertical blanking: at least 460 µs, and at least front porch + sync + 6 lines of back porch
  const hPeriodUs = (1e6 / 60 - 460) / height;
  const vBlank = Math.max(Math.floor(460 / hPeriodUs) + 1, vFront + vSync + 6);
  const hTotal = hActive + hBlank;
  const vTotal = height + vBlank;
  // pixel clock in units of 10 kHz, rounded down to the 0.25 MHz steps CVT uses
  const clock = Math.floor((60 * hTotal * vTotal) / 250_000) * 25;
  const hMm = Math.round((hActive / 96) * 25.4);
  const vMm = Math.round((height / 96) * 25.4);
  e[at] = clock & 0xff;
  e[at + 1] = clock >> 8;
  e[at + 2] = hActive & 0xff;
  e[at + 3] = hBlank & 0xff;
  e[at + 4] = ((hActive >> 8) << 4) | (hBlank >> 8);
  e[at + 5] = height & 0xff;
  e[at + 6] = vBlank & 0xff;
  e[at + 7] = ((height >> 8) << 4) | (vBlank >> 8);
  e[at + 8] = hFront & 0xff;
  e[at + 9] = hSync & 0xff;
  e[at + 10] = ((vFront & 0x0f) << 4) | (vSync & 0x0f);
  e[at + 11] = ((hFront >> 8) << 6) | ((hSync >> 8) << 4) | ((vFront >> 4) << 2) | (vSync >> 4);
  e[at + 12] = hMm & 0xff;
  e[at + 13] = vMm & 0xff;
  e[at + 14] = ((hMm >> 8) << 4) | (vMm >> 8);
  e[at + 15] = 0; // no border
  e[at + 16] = 0;
  e[at + 17] = 0x18 | 0x02; // digital separate sync, horizontal sync positive, vertical sync negative
}
