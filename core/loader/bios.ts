/**
 * Maps a firmware image the way `qemu-system-i386 -bios FILE` does: the whole image ends at 4 GiB
 * (0xFFFFFFFF), and its last 128 KiB (or all of it, if smaller) also ends at 1 MiB (the ISA BIOS window
 * at 0xE0000/0xF0000), read-only. The CPU starts at the reset vector F000:FFF0 (linear 0xFFFFFFF0),
 * which is what cpu.reset() sets up.
 *
 * Size rules: QEMU accepts any non-zero multiple of 64 KiB; x86vm accepts 64, 128, 192 or 256 KiB.
 */
import type { Memory } from '../memory';

export const BIOS_MIN_SIZE = 64 * 1024;
export const BIOS_MAX_SIZE = 256 * 1024;
export const BIOS_GRANULE = 64 * 1024;
/** the most of the image mirrored below 1 MiB */
export const ISA_BIOS_MAX = 128 * 1024;

/** the error text for an unusable image size, or null when the size is fine */
export function checkBiosSize(size: number): string | null {
  if (size < BIOS_MIN_SIZE || size > BIOS_MAX_SIZE || size % BIOS_GRANULE !== 0) {
    return `a BIOS image must be 64, 128, 192 or 256 KiB (a multiple of 64 KiB, as QEMU requires); this one is ${size} bytes`;
  }
  return null;
}

export interface BiosLayout {
  /** physical address of the image's first byte in the high mapping (4 GiB − size) */
  highBase: number;
  /** physical address of the mirrored tail below 1 MiB */
  isaBase: number;
  /** bytes mirrored below 1 MiB */
  isaSize: number;
}

/** Maps the image. Throws an Error with a clear message if the size is not acceptable. */
export function loadBios(mem: Pick<Memory, 'mapRom'>, image: Uint8Array): BiosLayout {
  const problem = checkBiosSize(image.length);
  if (problem) throw new Error(problem);
  const size = image.length;
  const highBase = 0x100000000 - size;
  mem.mapRom(highBase, image, 'bios');
  const isaSize = Math.min(size, ISA_BIOS_MAX);
  const isaBase = 0x100000 - isaSize;
  mem.mapRom(isaBase, image.subarray(size - isaSize), 'isa-bios');
  return { highBase, isaBase, isaSize };
}
