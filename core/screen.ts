/**
 * The host-facing picture of a display device: an RGBA frame plus the rectangles that changed since the
 * host last looked, and (for text modes) the screen as text. Nothing here depends on Node or the DOM;
 * node/screenshot.ts turns a frame into a PNG, the browser page copies the changed rectangles onto a
 * canvas (`new ImageData(frame.data, …)` / putImageData with a dirty rectangle).
 *
 * Pixel format: `frame.data` is RGBA, 4 bytes a pixel, rows top to bottom, no padding (the layout of a
 * canvas ImageData). `frame.pixels` views the same bytes as one 32-bit word a pixel; `rgbaPixel()`
 * builds such a word for the host's byte order, so renderers can store whole pixels.
 */

/** a rectangle of the frame, in pixels */
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** true when the host stores the low byte of a word first (every platform Node and browsers run on today) */
export const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** the 32-bit word that stores opaque colour (r, g, b) (0–255 each) in `Frame.pixels` */
export function rgbaPixel(r: number, g: number, b: number): number {
  return LITTLE_ENDIAN
    ? ((0xff << 24) | ((b & 0xff) << 16) | ((g & 0xff) << 8) | (r & 0xff)) >>> 0
    : (((r & 0xff) << 24) | ((g & 0xff) << 16) | ((b & 0xff) << 8) | 0xff) >>> 0;
}

/** an RGBA picture; reallocated when its size changes */
export class Frame {
  width = 0;
  height = 0;
  /** RGBA bytes, width * height * 4 */
  data = new Uint8ClampedArray(0);
  /** the same bytes, one word a pixel (see rgbaPixel) */
  pixels = new Uint32Array(0);

  /** changes the size (contents become black); returns false when the size was already that */
  resize(width: number, height: number): boolean {
    if (width === this.width && height === this.height) return false;
    if (!(width >= 0 && height >= 0 && width * height <= 1 << 26)) throw new RangeError(`bad frame size ${width}x${height}`);
    this.width = width;
    this.height = height;
    const buf = new ArrayBuffer(width * height * 4);
    this.data = new Uint8ClampedArray(buf);
    this.pixels = new Uint32Array(buf);
    this.pixels.fill(rgbaPixel(0, 0, 0));
    return true;
  }

  /** the colour of one pixel as [r, g, b] (tests, tools) */
  rgb(x: number, y: number): [number, number, number] {
    const i = (y * this.width + x) * 4;
    return [this.data[i], this.data[i + 1], this.data[i + 2]];
  }

  /** a copy of a rectangle's RGBA bytes (hosts that ship changed parts to another thread) */
  copyRect(r: Rect): Uint8ClampedArray {
    const out = new Uint8ClampedArray(r.w * r.h * 4);
    for (let y = 0; y < r.h; y++) {
      const from = ((r.y + y) * this.width + r.x) * 4;
      out.set(this.data.subarray(from, from + r.w * 4), y * r.w * 4);
    }
    return out;
  }
}

/** what one render() call produced */
export interface ScreenUpdate {
  frame: Frame;
  /** the parts of the frame that changed since the previous render (the whole frame after a resize) */
  rects: Rect[];
  /** the frame's size changed (hosts resize their canvas) */
  resized: boolean;
}

/** a display device as hosts see it */
export interface Screen {
  /** brings the frame up to date with the device and reports what changed */
  render(): ScreenUpdate;
  /** the text-mode screen, one string a row with trailing spaces trimmed; null in graphics modes */
  text(): string[] | null;
  /** the next render() reports the whole frame as changed (a host that lost its copy) */
  invalidate(): void;
}

/**
 * Collects changed spans row by row and merges them into rectangles: consecutive rows with the same
 * horizontal extent become one rectangle.
 */
export class DirtyRects {
  readonly rects: Rect[] = [];
  private cur: Rect | null = null;

  /** marks rows [y, y + h) from x to x + w - 1 as changed */
  add(x: number, y: number, w: number, h: number): void {
    if (w <= 0 || h <= 0) return;
    const c = this.cur;
    if (c && c.x === x && c.w === w && c.y + c.h === y) {
      c.h += h;
      return;
    }
    this.cur = { x, y, w, h };
    this.rects.push(this.cur);
  }

  /** the rectangles collected so far, and starts afresh */
  take(): Rect[] {
    const out = this.rects.slice();
    this.rects.length = 0;
    this.cur = null;
    return out;
  }
}

/**
 * Code page 437 (the VGA's built-in character set) as Unicode, one character per byte value. Byte 0 and
 * 255 (blank glyphs) map to spaces so that text dumps trim cleanly.
 */
export const CP437 =
  ' ☺☻♥♦♣♠•◘○◙♂♀♪♫☼►◄↕‼¶§▬↨↑↓→←∟↔▲▼' +
  ' !"#$%&\'()*+,-./0123456789:;<=>?' +
  '@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_' +
  '`abcdefghijklmnopqrstuvwxyz{|}~⌂' +
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒ' +
  'áíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐' +
  '└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀' +
  'αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■ ';

/** one row of character codes as text (CP437), trailing spaces removed */
export function cp437Line(codes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < codes.length; i++) s += CP437[codes[i] & 0xff];
  return s.replace(/ +$/, '');
}
