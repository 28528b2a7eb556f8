/**
 * Screenshots and text dumps of a display (core/screen.ts Screen, e.g. devices/vga.ts) for the CLI
 * (`--screenshot FILE`, `--vga-text`, the console escape) and tests.
 *
 * writeScreenshot renders the current picture and writes it as an RGBA PNG (fast-png), atomically: into a
 * temporary file next to the target, then renamed over it, so a crash never leaves half a PNG.
 */
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { encode } from 'fast-png';
import type { Frame, Screen } from '../core/screen';

/** the frame as PNG bytes (8-bit RGBA) */
export function encodePng(frame: Frame): Uint8Array {
  return encode({ width: frame.width, height: frame.height, data: frame.data, channels: 4, depth: 8 });
}

/** renders `screen` and writes the picture to `path` as a PNG; errors name the file */
export async function writeScreenshot(screen: Screen, path: string): Promise<void> {
  const { frame } = screen.render();
  const png = encodePng(frame);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(png);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT' ? 'no such directory' : err.code === 'EACCES' || err.code === 'EPERM' ? 'permission denied' : err.code === 'EISDIR' ? 'it is a directory' : err.message;
    throw new Error(`cannot write screenshot '${path}': ${why}`);
  }
}

/** the text-mode screen as text (one line a row, trailing spaces trimmed, ending in a newline), or null in graphics modes */
export function textDump(screen: Screen): string | null {
  const lines = screen.text();
  return lines ? lines.join('\n') + '\n' : null;
}
