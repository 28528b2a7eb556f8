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
