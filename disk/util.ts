/**
 * Small helpers shared by the image formats: request checks, an async mutex, zero tests, big-endian
 * 64-bit fields, UUIDs, UTF-16 strings and path arithmetic on names (no Node or DOM APIs: names are
 * plain strings, POSIX or Windows style).
 */
import { DiskError, SECTOR_SIZE, type BlockDevice } from './block';

/** throws a DiskError unless [sector, sector + length/512) is a whole-sector range inside the device */
export function checkRequest(dev: BlockDevice, sector: number, length: number): void {
  if (!Number.isSafeInteger(sector) || sector < 0 || length % SECTOR_SIZE !== 0) {
    throw new DiskError(dev.name, `bad request: sector ${sector}, ${length} bytes (whole sectors only)`);
  }
  const count = length / SECTOR_SIZE;
  if (sector + count > dev.sectors) {
    throw new DiskError(
      dev.name,
      `request past the end of the disk: sectors ${sector}..${sector + count - 1} of ${dev.sectors}`,
    );
  }
}

/** serialises async critical sections (metadata updates of an image); FIFO */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  /** runs `fn` after every earlier call's `fn` has settled */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** settles once everything queued so far has run */
  idle(): Promise<void> {
    return this.tail;
  }
}

/** whether every byte of `buf` is zero (word at a time where the view is aligned) */
export function isZero(buf: Uint8Array): boolean {
  const len = buf.length;
  let i = 0;
  const head = (4 - (buf.byteOffset & 3)) & 3;
  for (; i < head && i < len; i++) if (buf[i] !== 0) return false;
  const words = (len - i) >>> 2;
  if (words > 0) {
    const w = new Int32Array(buf.buffer, buf.byteOffset + i, words);
    for (let k = 0; k < words; k++) if (w[k] !== 0) return false;
    i += words * 4;
  }
  for (; i < len; i++) if (buf[i] !== 0) return false;
  return true;
}

/** a big-endian unsigned 64-bit field as a number; NaN when it is above 2^53 (not a usable offset) */
export function getU64(view: DataView, offset: number): number {
  const hi = view.getUint32(offset, false);
  const lo = view.getUint32(offset + 4, false);
  if (hi >= 0x200000) return hi === 0xffffffff && lo === 0xffffffff ? -1 : NaN;
  return hi * 0x100000000 + lo;
}

/** writes a big-endian unsigned 64-bit field; -1 stands for all ones */
export function setU64(view: DataView, offset: number, value: number): void {
  if (value === -1) {
    view.setUint32(offset, 0xffffffff, false);
    view.setUint32(offset + 4, 0xffffffff, false);
    return;
  }
  view.setUint32(offset, Math.floor(value / 0x100000000), false);
  view.setUint32(offset + 4, value >>> 0, false);
}

export function ascii(buf: Uint8Array, offset: number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode(buf[offset + i]);
  return s;
}

export function putAscii(buf: Uint8Array, offset: number, text: string): void {
  for (let i = 0; i < text.length; i++) buf[offset + i] = text.charCodeAt(i) & 0xff;
}

/** 16 random bytes shaped as a version-4 UUID */
export function randomUuid(): Uint8Array {
  const id = new Uint8Array(16);
  globalThis.crypto.getRandomValues(id);
  id[6] = (id[6] & 0x0f) | 0x40;
  id[8] = (id[8] & 0x3f) | 0x80;
  return id;
}

/** the usual 8-4-4-4-12 text of 16 bytes, in byte order */
export function uuidText(id: Uint8Array): string {
  let hex = '';
  for (let i = 0; i < 16; i++) hex += id[i].toString(16).padStart(2, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** decodes UTF-16 (little- or big-endian) up to the first NUL */
export function decodeUtf16(buf: Uint8Array, littleEndian: boolean): string {
  let s = '';
  for (let i = 0; i + 1 < buf.length; i += 2) {
    const c = littleEndian ? buf[i] | (buf[i + 1] << 8) : (buf[i] << 8) | buf[i + 1];
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

export function encodeUtf16(text: string, littleEndian: boolean): Uint8Array {
  const out = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    out[2 * i + (littleEndian ? 0 : 1)] = c & 0xff;
    out[2 * i + (littleEndian ? 1 : 0)] = c >>> 8;
  }
  return out;
}

// ---- names as paths (pure string arithmetic; both '/' and '\' separate components) ----

/** a Windows absolute path: "C:\dir\file", "C:/dir/file" or a UNC "\\server\share\file" */
export function isWindowsAbsolute(p: string): boolean {
  return /^[A-Za-z]:[\\/]/.test(p) || /^\\\\/.test(p);
}

export function isAbsolutePath(p: string): boolean {
  return p.startsWith('/') || isWindowsAbsolute(p);
}

/** the last component of a path */
export function baseName(p: string): string {
  const parts = p.split(/[\\/]/).filter((c) => c !== '');
  return parts.length ? parts[parts.length - 1] : '';
}

/** the directory part of a path ('.' for a bare name) */
export function dirName(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  if (i < 0) return '.';
  if (i === 0) return p[0];
  return p.slice(0, i);
}

function components(p: string): { root: string; parts: string[] } {
  let root = '';
  const m = /^([A-Za-z]:)?[\\/]/.exec(p);
  if (m) root = m[0].replace(/\\/g, '/');
  const parts: string[] = [];
  for (const c of p.slice(m ? m[0].length : 0).split(/[\\/]/)) {
    if (c === '' || c === '.') continue;
    if (c === '..' && parts.length && parts[parts.length - 1] !== '..') parts.pop();
    else parts.push(c);
  }
  return { root, parts };
}

/**
 * The path of `to` relative to the directory `fromDir`, with '/' separators; undefined when there is
 * none (different roots, or one absolute and the other not).
 */
export function relativePath(fromDir: string, to: string): string | undefined {
  const a = components(fromDir);
  const b = components(to);
  if (a.root.toLowerCase() !== b.root.toLowerCase()) return undefined;
  let i = 0;
  while (i < a.parts.length && i < b.parts.length && a.parts[i] === b.parts[i]) i++;
  if (a.parts.slice(i).includes('..')) return undefined;
  const up = a.parts.slice(i).map(() => '..');
  const rest = b.parts.slice(i);
  if (rest.length === 0) return undefined;
  return [...up, ...rest].join('/');
}

/** a byte count for messages: "10 MiB (10485760 bytes)" */
export function sizeText(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${bytes} bytes`;
  const shown = Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
  return `${shown} ${units[u]} (${bytes} bytes)`;
}
