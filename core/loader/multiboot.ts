/**
 * Multiboot v1 loader (the Multiboot Specification 0.6.96): loads an ELF32 or "a.out kludge" kernel
 * image into RAM, builds the Multiboot information structure in low memory and leaves the CPU in the
 * state the specification prescribes (32-bit protected mode, flat segments, paging off, IF clear,
 * EAX = 0x2BADB002, EBX = address of the information structure, A20 enabled).
 *
 * No host APIs: the caller passes the image bytes and the command line as a string.
 *
 * Choices, following QEMU's `-kernel` Multiboot support where the specification leaves room:
 * - flag bit 16 (address fields valid) wins over the ELF headers; without it the image must be ELF32;
 * - ELF segments load at their physical addresses (p_paddr); an entry point inside an executable
 *   segment whose virtual and physical addresses differ is translated to its physical address;
 * - the video-mode request (flag bit 2) is ignored (there is no framebuffer information to give);
 * - CS = 0x10 and DS/ES/FS/GS/SS = 0x18, backed by a small GDT written next to the information
 *   structure, so a kernel that reloads its segment registers before installing its own GDT still works.
 * - the information structure has the fields QEMU fills (flags 0x24F: memory, boot device 0x8000FFFF,
 *   command line, zero modules, memory map, boot loader name).
 * The command line is passed verbatim (QEMU passes "<kernel file> <append>"; the CLI builds that).
 */
import type { Cpu } from '../cpu';
import type { Memory } from '../memory';
import { CS, DS, ES, FS, GS, SS, EAX, EBX, ESP, CR0_ET, CR0_PE } from '../defs';

export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** the header must lie entirely within the first 8 KiB of the image, 32-bit aligned */
export const MULTIBOOT_SEARCH = 8192;

// header flags
const MBH_PAGE_ALIGN = 1 << 0;
const MBH_MEMORY_INFO = 1 << 1;
const MBH_VIDEO_MODE = 1 << 2;
const MBH_AOUT_KLUDGE = 1 << 16;
const MBH_SUPPORTED_REQUIREMENTS = MBH_PAGE_ALIGN | MBH_MEMORY_INFO | MBH_VIDEO_MODE;

// information structure flags
export const MBI_FLAG_MEMORY = 1 << 0;
export const MBI_FLAG_BOOT_DEVICE = 1 << 1;
export const MBI_FLAG_CMDLINE = 1 << 2;
export const MBI_FLAG_MODS = 1 << 3;
export const MBI_FLAG_MMAP = 1 << 6;
export const MBI_FLAG_LOADER_NAME = 1 << 9;

/** information structure field offsets */
export const MBI = {
  flags: 0,
  memLower: 4,
  memUpper: 8,
  bootDevice: 12,
  cmdline: 16,
  modsCount: 20,
  modsAddr: 24,
  mmapLength: 44,
  mmapAddr: 48,
  bootLoaderName: 64,
  size: 88,
} as const;

/** the flat code and data selectors the kernel starts with (as QEMU's Multiboot loader uses) */
export const MB_CODE_SEL = 0x10;
export const MB_DATA_SEL = 0x18;

/** a memory-map entry as reported to the kernel (type 1 = available, 2 = reserved) */
export interface MemoryRegion {
  base: number;
  length: number;
  type: number;
}

export interface MultibootHeader {
  /** offset of the header in the image */
  offset: number;
  flags: number;
}

export interface MultibootOptions {
  /** the kernel command line (default: empty) */
  cmdline?: string;
  /** default "x86vm" */
  bootLoaderName?: string;
}

export interface MultibootResult {
  format: 'elf' | 'aout';
  entry: number;
  /** physical address of the Multiboot information structure (also in EBX) */
  infoAddr: number;
  /** address of the GDT the loader wrote */
  gdtAddr: number;
  /** lowest and highest+1 physical addresses occupied by the kernel (including BSS) */
  kernelStart: number;
  kernelEnd: number;
  memoryMap: MemoryRegion[];
}

/** what the loader touches on the machine */
export interface MultibootTarget {
  readonly mem: Memory;
  readonly cpu: Cpu;
}

/** the loader's errors; `notMultiboot` is set when the image simply has no Multiboot header */
export class MultibootError extends Error {
  readonly notMultiboot: boolean;
  constructor(message: string, notMultiboot = false) {
    super(message);
    this.name = 'MultibootError';
    this.notMultiboot = notMultiboot;
  }
}

function u32(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

function u16(b: Uint8Array, off: number): number {
  return b[off] | (b[off + 1] << 8);
}

function hex(n: number): string {
  return '0x' + (n >>> 0).toString(16);
}

/**
 * Finds the Multiboot header. Returns null if there is none; throws if a header's checksum is wrong
 * and no valid header exists.
 */
export function findMultibootHeader(image: Uint8Array): MultibootHeader | null {
  const end = Math.min(image.length, MULTIBOOT_SEARCH) - 12;
  let badChecksumAt = -1;
  for (let off = 0; off <= end; off += 4) {
    if (u32(image, off) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = u32(image, off + 4);
    const checksum = u32(image, off + 8);
    if (((MULTIBOOT_HEADER_MAGIC + flags + checksum) >>> 0) === 0) return { offset: off, flags };
    if (badChecksumAt < 0) badChecksumAt = off;
  }
  if (badChecksumAt >= 0) {
    throw new MultibootError(`the Multiboot header at offset ${hex(badChecksumAt)} has a bad checksum`);
  }
  return null;
}

/** true if the image looks like a Linux kernel (the boot protocol's "HdrS" signature) */
export function looksLikeLinuxKernel(image: Uint8Array): boolean {
  return image.length > 0x206 && u32(image, 0x202) === 0x53726448 && u16(image, 0x1fe) === 0xaa55;
}

/** the PC memory map reported to the kernel for a given RAM size */
export function pcMemoryMap(ramSize: number): MemoryRegion[] {
  const map: MemoryRegion[] = [
    { base: 0, length: 0x9fc00, type: 1 },
    { base: 0x9fc00, length: 0x400, type: 2 },
    { base: 0xf0000, length: 0x10000, type: 2 },
  ];
  if (ramSize > 0x100000) map.push({ base: 0x100000, length: ramSize - 0x100000, type: 1 });
  return map;
}

interface Segment {
  /** physical load address */
  addr: number;
  /** bytes copied from the file */
  data: Uint8Array;
  /** total size in memory (the rest is zeroed) */
  memSize: number;
}

interface Parsed {
  format: 'elf' | 'aout';
  entry: number;
  segments: Segment[];
}

function parseAout(image: Uint8Array, h: MultibootHeader): Parsed {
  const i = h.offset;
  if (i + 32 > image.length) throw new MultibootError('the Multiboot header is truncated (address fields missing)');
  const headerAddr = u32(image, i + 12);
  const loadAddr = u32(image, i + 16);
  const loadEndAddr = u32(image, i + 20);
  const bssEndAddr = u32(image, i + 24);
  const entry = u32(image, i + 28);
  if (headerAddr < loadAddr) {
    throw new MultibootError(`invalid Multiboot header: header_addr ${hex(headerAddr)} is below load_addr ${hex(loadAddr)}`);
  }
  const textOffset = i - (headerAddr - loadAddr);
  if (textOffset < 0) {
    throw new MultibootError(`invalid Multiboot header: load_addr ${hex(loadAddr)} lies before the start of the file`);
  }
  let loadSize: number;
  if (loadEndAddr !== 0) {
    if (loadEndAddr < loadAddr) {
      throw new MultibootError(`invalid Multiboot header: load_end_addr ${hex(loadEndAddr)} is below load_addr ${hex(loadAddr)}`);
    }
    loadSize = loadEndAddr - loadAddr;
  } else {
    loadSize = image.length - textOffset;
  }
  if (textOffset + loadSize > image.length) {
    throw new MultibootError(`the kernel image is truncated: ${loadSize} bytes to load from offset ${hex(textOffset)}, but the file has ${image.length} bytes`);
  }
  let memSize = loadSize;
  if (bssEndAddr !== 0) {
    if (bssEndAddr < loadAddr + loadSize) {
      throw new MultibootError(`invalid Multiboot header: bss_end_addr ${hex(bssEndAddr)} is below the end of the loaded data ${hex(loadAddr + loadSize)}`);
    }
    memSize = bssEndAddr - loadAddr;
  }
  return {
    format: 'aout',
    entry,
    segments: [{ addr: loadAddr, data: image.subarray(textOffset, textOffset + loadSize), memSize }],
  };
}

function parseElf(image: Uint8Array): Parsed {
  if (image.length < 4 || u32(image, 0) !== 0x464c457f) {
    throw new MultibootError('the kernel is neither ELF nor does its Multiboot header give load addresses (flag bit 16)');
  }
  if (image.length < 52) throw new MultibootError('the ELF header is truncated');
  const machine = u16(image, 18);
  if (image[4] === 2 || machine === 62) {
    throw new MultibootError('this is a 64-bit ELF kernel; x86vm boots 32-bit (ELF32, i386) Multiboot kernels');
  }
  if (image[4] !== 1) throw new MultibootError(`unsupported ELF class ${image[4]} (expected ELF32)`);
  if (image[5] !== 1) throw new MultibootError('unsupported ELF byte order (expected little-endian)');
  if (machine !== 3) throw new MultibootError(`the ELF kernel is for machine type ${machine}, not i386 (3)`);
  const type = u16(image, 16);
  if (type !== 2) throw new MultibootError(`the ELF file is not an executable (e_type ${type})`);
  const entry = u32(image, 24);
  const phoff = u32(image, 28);
  const phentsize = u16(image, 42);
  const phnum = u16(image, 44);
  if (phnum === 0) throw new MultibootError('the ELF kernel has no program headers');
  if (phentsize < 32) throw new MultibootError(`bad ELF program header size ${phentsize}`);
  if (phoff + phnum * phentsize > image.length) throw new MultibootError('the ELF program headers are truncated');
  const segments: Segment[] = [];
  let physEntry = entry;
  for (let n = 0; n < phnum; n++) {
    const ph = phoff + n * phentsize;
    const pType = u32(image, ph);
    if (pType !== 1) continue; // PT_LOAD only
    const offset = u32(image, ph + 4);
    const vaddr = u32(image, ph + 8);
    const paddr = u32(image, ph + 12);
    const filesz = u32(image, ph + 16);
    const memsz = u32(image, ph + 20);
    const pflags = u32(image, ph + 24);
    if (memsz === 0) continue;
    if (filesz > memsz) {
      throw new MultibootError(`ELF segment ${n} has a file size (${filesz}) larger than its memory size (${memsz})`);
    }
    if (offset + filesz > image.length) {
      throw new MultibootError(`the kernel image is truncated: segment ${n} needs bytes up to ${hex(offset + filesz)}, the file has ${image.length}`);
    }
    segments.push({ addr: paddr, data: image.subarray(offset, offset + filesz), memSize: memsz });
    if (pflags & 1 && vaddr !== paddr && entry >= vaddr && entry < vaddr + filesz) {
      physEntry = (entry - vaddr + paddr) >>> 0;
    }
  }
  if (!segments.length) throw new MultibootError('the ELF kernel has no loadable segments');
  return { format: 'elf', entry: physEntry, segments };
}

function overlaps(a0: number, a1: number, ranges: [number, number][]): boolean {
  for (const [b0, b1] of ranges) if (a0 < b1 && b0 < a1) return true;
  return false;
}

/** writes an 8-byte flat (base 0, limit 4 GiB, 32-bit, page-granular) descriptor */
function writeFlatDescriptor(m: Uint8Array, at: number, access: number): void {
  m.set([0xff, 0xff, 0x00, 0x00, 0x00, access, 0xcf, 0x00], at);
}

/** Loads a Multiboot kernel and prepares the CPU to enter it. Throws MultibootError on bad input. */
export function loadMultiboot(target: MultibootTarget, image: Uint8Array, options: MultibootOptions = {}): MultibootResult {
  const { mem, cpu } = target;
  const header = findMultibootHeader(image);
  if (!header) {
    throw new MultibootError('not a Multiboot kernel (no Multiboot header in the first 8 KiB)', true);
  }
  const unsupported = header.flags & 0xffff & ~MBH_SUPPORTED_REQUIREMENTS;
  if (unsupported) {
    throw new MultibootError(`the kernel requires Multiboot features x86vm does not provide (header flags ${hex(header.flags)})`);
  }
  const parsed = header.flags & MBH_AOUT_KLUDGE ? parseAout(image, header) : parseElf(image);

  const ramSize = mem.ramSize;
  const used: [number, number][] = [];
  for (const s of parsed.segments) {
    const end = s.addr + s.memSize;
    if (end > ramSize) {
      throw new MultibootError(
        `a kernel segment (${hex(s.addr)}–${hex(end - 1)}) lies outside RAM (${ramSize >>> 20} MiB); give the machine more memory with --mem`,
      );
    }
    used.push([s.addr, end]);
  }

  // ---- where the GDT, the information structure, the memory map and the strings go ----
  const enc = new TextEncoder();
  const cmdline = enc.encode(options.cmdline ?? '');
  const name = enc.encode(options.bootLoaderName ?? 'x86vm');
  const memoryMap = pcMemoryMap(ramSize);
  const GDT_SIZE = 32;
  const offInfo = GDT_SIZE;
  const offMmap = offInfo + MBI.size;
  const mmapLength = memoryMap.length * 24;
  const offName = offMmap + mmapLength;
  const offCmdline = offName + name.length + 1;
  const blockSize = offCmdline + cmdline.length + 1;

  const fits = (base: number, limit: number): boolean =>
    base + blockSize <= limit && !overlaps(base, base + blockSize, used);
  let base = -1;
  const lowLimit = Math.min(0x9fc00, ramSize);
  if (fits(0x9000, lowLimit)) base = 0x9000;
  for (let b = 0x1000; base < 0 && b < lowLimit; b += 0x1000) if (fits(b, lowLimit)) base = b;
  if (base < 0) {
    const kernelEnd = Math.max(...used.map((r) => r[1]));
    const b = (kernelEnd + 0xfff) & ~0xfff;
    if (fits(b, ramSize)) base = b;
  }
  if (base < 0) throw new MultibootError('no room in RAM for the Multiboot information structure; give the machine more memory with --mem');

  // ---- load the kernel ----
  const m = mem.mem8;
  for (const s of parsed.segments) {
    m.set(s.data, s.addr);
    m.fill(0, s.addr + s.data.length, s.addr + s.memSize);
  }

  // ---- GDT: null, null, flat code at 0x10, flat data at 0x18 ----
  m.fill(0, base, base + blockSize);
  writeFlatDescriptor(m, base + MB_CODE_SEL, 0x9b);
  writeFlatDescriptor(m, base + MB_DATA_SEL, 0x93);

  // ---- the information structure ----
  const info = base + offInfo;
  const dv = new DataView(m.buffer, m.byteOffset, m.byteLength);
  const put = (off: number, v: number): void => dv.setUint32(off, v >>> 0, true);
  // the same set of fields as QEMU's loader gives, so kernels see the same flags on both
  put(
    info + MBI.flags,
    MBI_FLAG_MEMORY | MBI_FLAG_BOOT_DEVICE | MBI_FLAG_CMDLINE | MBI_FLAG_MODS | MBI_FLAG_MMAP | MBI_FLAG_LOADER_NAME,
  );
  put(info + MBI.bootDevice, 0x8000ffff); // BIOS drive 0x80, no partition (QEMU's value)
  put(info + MBI.modsCount, 0);
  put(info + MBI.modsAddr, info + MBI.size);
  put(info + MBI.memLower, 0x9fc00 >>> 10);
  put(info + MBI.memUpper, Math.max(0, ramSize - 0x100000) >>> 10);
  put(info + MBI.cmdline, base + offCmdline);
  put(info + MBI.mmapLength, mmapLength);
  put(info + MBI.mmapAddr, base + offMmap);
  put(info + MBI.bootLoaderName, base + offName);
  memoryMap.forEach((r, i) => {
    const e = base + offMmap + i * 24;
    put(e, 20); // size of the entry, not counting this field
    dv.setBigUint64(e + 4, BigInt(r.base), true);
    dv.setBigUint64(e + 12, BigInt(r.length), true);
    put(e + 20, r.type);
  });
  m.set(name, base + offName);
  m.set(cmdline, base + offCmdline);

  // ---- the CPU: 32-bit protected mode, flat segments, paging off, interrupts off ----
  cpu.cr0 = CR0_ET | CR0_PE;
  cpu.cr4 = 0;
  cpu.setCpl(0);
  cpu.updateMode();
  cpu.gdtBase = base;
  cpu.gdtLimit = GDT_SIZE - 1;
  cpu.setSegCache(CS, MB_CODE_SEL, 0, 0xffffffff, 0xc09b);
  for (const s of [DS, ES, FS, GS, SS]) cpu.setSegCache(s, MB_DATA_SEL, 0, 0xffffffff, 0xc093);
  cpu.regs.fill(0);
  cpu.regs[EAX] = MULTIBOOT_BOOTLOADER_MAGIC | 0;
  cpu.regs[EBX] = info;
  // the specification leaves ESP undefined; point it below the information block when that is free
  const stackFree = base >= 0x2000 && !overlaps(base - 0x1000, base, used);
  cpu.regs[ESP] = stackFree ? base : 0;
  cpu.lazyMask = 0;
  cpu.flags = 2;
  cpu.eip = parsed.entry;
  cpu.instrStart = parsed.entry;
  cpu.halted = false;
  cpu.updateMode();
  cpu.rederiveSegments();
  cpu.flushTlb(true);
  cpu.attn = true;
  mem.setA20(true);

  return {
    format: parsed.format,
    entry: parsed.entry,
    infoAddr: info,
    gdtAddr: base,
    kernelStart: Math.min(...used.map((r) => r[0])),
    kernelEnd: Math.max(...used.map((r) => r[1])),
    memoryMap,
  };
}
