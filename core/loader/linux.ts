/**
 * Linux/x86 boot protocol loader (Documentation/arch/x86/boot.rst, protocol 2.02 and later), using the
 * 32-bit entry: the protected-mode kernel of a bzImage is copied to code32_start (normally 1 MiB), a
 * "zero page" (struct boot_params) is built in low memory, and the CPU is left as the 32-bit boot
 * protocol requires:
 *   32-bit protected mode, paging off, interrupts off; a GDT holding flat 4 GiB descriptors for
 *   __BOOT_CS (0x10, execute/read) and __BOOT_DS (0x18, read/write); CS = __BOOT_CS, DS/ES/SS (and FS/GS)
 *   = __BOOT_DS; ESI = address of boot_params; EBP = EDI = EBX = 0; EIP = code32_start.
 * The real-mode setup code is not run (it would call the BIOS), so the loader fills in what it would
 * have collected: the e820 memory map, the VGA text-mode screen_info and the memory-size fields.
 *
 * No host APIs: the caller passes the image and initrd as bytes and the command line as a string.
 *
 * Low-memory layout (all below the EBDA at 0x9FC00, none of it needed by the kernel once it has copied
 * boot_params and the command line, which it does first thing):
 *   0x10000  boot_params (4 KiB, zeroed, setup header copied from the image); the initial ESP points here
 *   0x11000  the GDT (null, null, __BOOT_CS, __BOOT_DS)
 *   0x20000  the command line (NUL-terminated, at most cmdline_size bytes before the NUL)
 * The initrd goes as high as it can: at the top of the highest RAM region of the memory map that lies
 * below initrd_addr_max, 4 KiB aligned, above everything the kernel needs while it decompresses itself.
 */
import type { Cpu } from '../cpu';
import type { Memory } from '../memory';
import { CS, DS, ES, FS, GS, SS, ESI, ESP, CR0_ET, CR0_PE } from '../defs';
import { pcMemoryMap, type MemoryRegion } from './multiboot';

export { pcMemoryMap, type MemoryRegion };

/** "HdrS" at 0x202, little-endian */
export const LINUX_HEADER_MAGIC = 0x53726448;
export const LINUX_MIN_PROTOCOL = 0x0202;

/** offsets in the image's first sector and in boot_params (the setup header sits at the same place in both) */
export const BP = {
  // screen_info (struct screen_info at 0x000)
  origX: 0x00,
  origY: 0x01,
  extMemK: 0x02,
  origVideoPage: 0x04,
  origVideoMode: 0x06,
  origVideoCols: 0x07,
  origVideoEgaBx: 0x0a,
  origVideoLines: 0x0e,
  origVideoIsVGA: 0x0f,
  origVideoPoints: 0x10,
  altMemK: 0x1e0,
  e820Entries: 0x1e8,
  sentinel: 0x1ef,
  // the setup header (struct setup_header at 0x1F1)
  setupSects: 0x1f1,
  syssize: 0x1f4,
  vidMode: 0x1fa,
  bootFlag: 0x1fe,
  jump: 0x200,
  header: 0x202,
  version: 0x206,
  typeOfLoader: 0x210,
  loadflags: 0x211,
  code32Start: 0x214,
  ramdiskImage: 0x218,
  ramdiskSize: 0x21c,
  heapEndPtr: 0x224,
  cmdLinePtr: 0x228,
  initrdAddrMax: 0x22c,
  kernelAlignment: 0x230,
  relocatableKernel: 0x234,
  cmdlineSize: 0x238,
  hardwareSubarch: 0x23c,
  setupData: 0x250,
  prefAddress: 0x258,
  initSize: 0x260,
  e820Table: 0x2d0,
  size: 0x1000,
} as const;

/** loadflags bits */
export const LOADED_HIGH = 0x01;
export const KEEP_SEGMENTS = 0x40;
export const CAN_USE_HEAP = 0x80;

/** the selectors the 32-bit boot protocol requires */
export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;

/** at most this many e820 entries fit in boot_params */
export const E820_MAX_ZEROPAGE = 128;

export const LINUX_BOOT_PARAMS_ADDR = 0x10000;
export const LINUX_GDT_ADDR = 0x11000;
export const LINUX_CMDLINE_ADDR = 0x20000;
/** heap_end_ptr as a loader that put the setup code at a 64 KiB segment would give it (0x10000 - 0x200) */
const HEAP_END_PTR = 0xfe00;
const LOW_MEMORY_END = 0x9fc00;

export type LinuxVideo = 'vga-text' | 'none';

export interface LinuxOptions {
  /** the kernel command line (default: empty) */
  cmdline?: string;
  /** the initial ramdisk, if any */
  initrd?: Uint8Array;
  /** the e820 memory map given to the kernel (default pcMemoryMap(RAM size)); type 1 = RAM */
  memoryMap?: MemoryRegion[];
  /** what screen_info describes: an 80x25 VGA colour text screen (default), or no display */
  video?: LinuxVideo;
}

export interface LinuxSetupHeader {
  /** boot protocol version, e.g. 0x020f */
  version: number;
  /** number of 512-byte setup sectors after the boot sector (0 in the image means 4) */
  setupSects: number;
  loadflags: number;
  code32Start: number;
  initrdAddrMax: number;
  /** longest command line the kernel accepts, without the NUL */
  cmdlineSize: number;
  relocatable: boolean;
  kernelAlignment: number;
  /** where the kernel prefers to run (protocol 2.10+; LOAD_PHYSICAL_ADDR), else 1 MiB */
  prefAddress: number;
  /** bytes the kernel needs from its run address while it decompresses and starts (2.10+), else 0 */
  initSize: number;
  /** file offset and length of the protected-mode kernel */
  kernelOffset: number;
  kernelSize: number;
  /** end (exclusive) of the setup header in the image */
  headerEnd: number;
}

export interface LinuxResult {
  header: LinuxSetupHeader;
  bootParamsAddr: number;
  gdtAddr: number;
  cmdlineAddr: number;
  entry: number;
  /** the protected-mode kernel's load address and its highest need (load/decompression) */
  kernelStart: number;
  kernelEnd: number;
  initrdAddr: number;
  initrdSize: number;
  memoryMap: MemoryRegion[];
}

/** what the loader touches on the machine */
export interface LinuxTarget {
  readonly mem: Memory;
  readonly cpu: Cpu;
}

export class LinuxBootError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LinuxBootError';
  }
}

function u8(b: Uint8Array, off: number): number {
  return off < b.length ? b[off] : 0;
}

function u16(b: Uint8Array, off: number): number {
  return u8(b, off) | (u8(b, off + 1) << 8);
}

function u32(b: Uint8Array, off: number): number {
  return (u16(b, off) | (u16(b, off + 2) << 16)) >>> 0;
}

function hex(n: number): string {
  return '0x' + n.toString(16);
}

function mib(n: number): string {
  const v = n / (1024 * 1024);
  return `${Number.isInteger(v) ? v : v.toFixed(1)} MiB`;
}

/** true if the bytes carry a Linux/x86 setup header (the "HdrS" signature at 0x202) */
export function isLinuxKernel(image: Uint8Array): boolean {
  return image.length >= 0x206 && u32(image, BP.header) === LINUX_HEADER_MAGIC;
}

/** Reads and checks the setup header of a bzImage. Throws LinuxBootError on anything unbootable. */
export function parseLinuxHeader(image: Uint8Array): LinuxSetupHeader {
  if (!isLinuxKernel(image)) {
    throw new LinuxBootError('not a Linux bzImage (no "HdrS" boot protocol signature at offset 0x202)');
  }
  const version = u16(image, BP.version);
  if (version < LINUX_MIN_PROTOCOL) {
    const v = `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
    throw new LinuxBootError(`Linux boot protocol ${v} is too old (x86vm needs 2.02 or later)`);
  }
  const loadflags = u8(image, BP.loadflags);
  if (!(loadflags & LOADED_HIGH)) {
    throw new LinuxBootError('this is a zImage (the kernel loads below 1 MiB); only bzImage kernels are supported');
  }
  const setupSects = u8(image, BP.setupSects) || 4;
  const kernelOffset = (setupSects + 1) * 512;
  if (image.length <= kernelOffset) {
    throw new LinuxBootError(`the bzImage is truncated: ${image.length} bytes, but its setup code alone takes ${kernelOffset}`);
  }
  let kernelSize = image.length - kernelOffset;
  const syssize = u32(image, BP.syssize);
  if (version >= 0x0204 && syssize !== 0) {
    const declared = syssize * 16;
    if (declared > kernelSize) {
      throw new LinuxBootError(`the bzImage is truncated: its header declares ${declared} bytes of kernel, the file has ${kernelSize}`);
    }
    kernelSize = declared;
  }
  const code32Start = u32(image, BP.code32Start) || 0x100000;
  const headerEnd = Math.min(BP.header + u8(image, BP.jump + 1), BP.e820Table);
  return {
    version,
    setupSects,
    loadflags,
    code32Start,
    initrdAddrMax: version >= 0x0203 ? u32(image, BP.initrdAddrMax) : 0x37ffffff,
    cmdlineSize: version >= 0x0206 ? u32(image, BP.cmdlineSize) : 255,
    relocatable: version >= 0x0205 && u8(image, BP.relocatableKernel) !== 0,
    kernelAlignment: version >= 0x0205 ? u32(image, BP.kernelAlignment) : 0,
    prefAddress: version >= 0x020a ? u32(image, BP.prefAddress) : 0x100000,
    initSize: version >= 0x020a ? u32(image, BP.initSize) : 0,
    kernelOffset,
    kernelSize,
    headerEnd,
  };
}

/** writes an 8-byte flat (base 0, limit 4 GiB, 32-bit, page-granular) descriptor */
function writeFlatDescriptor(m: Uint8Array, at: number, access: number): void {
  m.set([0xff, 0xff, 0x00, 0x00, 0x00, access, 0xcf, 0x00], at);
}

/** the end of the RAM region of the map that starts at or below `addr` and contains it, or 0 */
function ramEndFrom(map: MemoryRegion[], addr: number): number {
  let end = 0;
  let grew = true;
  // regions may be split (e.g. RAM, RAM) — follow contiguous RAM upwards
  let at = addr;
  while (grew) {
    grew = false;
    for (const r of map) {
      if (r.type === 1 && r.base <= at && r.base + r.length > at) {
        end = r.base + r.length;
        at = end;
        grew = true;
      }
    }
  }
  return end;
}

/**
 * Loads a bzImage (and initrd) and prepares the CPU to enter the kernel's 32-bit entry point.
 * Throws LinuxBootError with a message naming the problem.
 */
export function loadLinux(target: LinuxTarget, image: Uint8Array, options: LinuxOptions = {}): LinuxResult {
  const { mem, cpu } = target;
  const hdr = parseLinuxHeader(image);
  const ramSize = mem.ramSize;
  const memoryMap = (options.memoryMap ?? pcMemoryMap(ramSize)).map((r) => ({ ...r }));
  if (memoryMap.length > E820_MAX_ZEROPAGE) {
    throw new LinuxBootError(`the memory map has ${memoryMap.length} entries; boot_params holds at most ${E820_MAX_ZEROPAGE}`);
  }

  // ---- the kernel: loaded at code32_start; while it decompresses it needs init_size bytes from its run address ----
  const load = hdr.code32Start;
  if (load < 0x100000) {
    throw new LinuxBootError(`the kernel's code32_start ${hex(load)} is below 1 MiB`);
  }
  const ramEnd = Math.min(ramEndFrom(memoryMap, 0x100000), ramSize);
  let runAddr = load;
  if (hdr.relocatable && hdr.kernelAlignment > 0) {
    runAddr = Math.ceil(load / hdr.kernelAlignment) * hdr.kernelAlignment;
  }
  runAddr = Math.max(runAddr, hdr.prefAddress);
  const kernelEnd = Math.max(load + hdr.kernelSize, runAddr + hdr.initSize);
  if (kernelEnd > ramEnd) {
    throw new LinuxBootError(
      `the kernel needs RAM up to ${hex(kernelEnd)} (${mib(kernelEnd)}) to load and decompress, ` +
        `but RAM above 1 MiB ends at ${hex(ramEnd)} (${mib(ramEnd)}); give the machine more memory with --mem`,
    );
  }

  // ---- the command line ----
  const cmdline = new TextEncoder().encode(options.cmdline ?? '');
  const cmdlineMax = Math.min(hdr.cmdlineSize, LOW_MEMORY_END - LINUX_CMDLINE_ADDR - 1);
  if (cmdline.length > cmdlineMax) {
    throw new LinuxBootError(`the kernel command line is ${cmdline.length} bytes long; this kernel accepts at most ${cmdlineMax}`);
  }
  if (cmdline.includes(0)) throw new LinuxBootError('the kernel command line contains a NUL byte');

  // ---- the initrd: as high as possible below initrd_addr_max and the end of RAM, above the kernel ----
  let initrdAddr = 0;
  const initrd = options.initrd;
  const initrdSize = initrd?.length ?? 0;
  if (initrd && initrdSize > 0) {
    const limit = hdr.initrdAddrMax + 1; // the initrd's last byte may be at initrd_addr_max
    let best = -1;
    for (const r of memoryMap) {
      if (r.type !== 1) continue;
      const top = Math.min(r.base + r.length, limit, ramSize);
      const addr = Math.floor((top - initrdSize) / 4096) * 4096;
      const lowest = Math.max(r.base, kernelEnd);
      if (addr >= lowest && addr > best) best = addr;
    }
    if (best < 0) {
      const room = Math.max(0, Math.min(ramEnd, limit) - ((kernelEnd + 4095) & ~4095));
      throw new LinuxBootError(
        `the initrd (${initrdSize} bytes, ${mib(initrdSize)}) does not fit: ` +
          `${mib(room)} of RAM is free between the kernel (ending at ${hex(kernelEnd)}) and ` +
          (limit < ramEnd ? `the kernel's initrd_addr_max ${hex(hdr.initrdAddrMax)}` : `the end of RAM (${mib(ramEnd)})`) +
          '; give the machine more memory with --mem',
      );
    }
    initrdAddr = best;
  }

  // ---- write everything ----
  const m = mem.mem8;
  m.set(image.subarray(hdr.kernelOffset, hdr.kernelOffset + hdr.kernelSize), load);
  if (initrd && initrdSize > 0) m.set(initrd, initrdAddr);

  const bp = LINUX_BOOT_PARAMS_ADDR;
  m.fill(0, bp, bp + BP.size);
  m.set(image.subarray(BP.setupSects, hdr.headerEnd), bp + BP.setupSects);
  const dv = new DataView(m.buffer, m.byteOffset, m.byteLength);
  const put8 = (off: number, v: number): void => dv.setUint8(bp + off, v);
  const put16 = (off: number, v: number): void => dv.setUint16(bp + off, v, true);
  const put32 = (off: number, v: number): void => dv.setUint32(bp + off, v >>> 0, true);

  // the setup header, as a boot loader fills it
  put8(BP.typeOfLoader, 0xff); // undefined / unregistered loader
  put8(BP.loadflags, (hdr.loadflags | CAN_USE_HEAP) & ~KEEP_SEGMENTS);
  put16(BP.heapEndPtr, HEAP_END_PTR);
  put32(BP.code32Start, load);
  put32(BP.cmdLinePtr, LINUX_CMDLINE_ADDR);
  put32(BP.ramdiskImage, initrdAddr);
  put32(BP.ramdiskSize, initrdSize);

  // what the real-mode setup code would have found out from the BIOS
  const extKiB = Math.max(0, ramEnd - 0x100000) >>> 10;
  put16(BP.extMemK, Math.min(extKiB, 0xfc00)); // INT 15h AX=E801-era cap (just under 64 MiB)
  put32(BP.altMemK, extKiB);
  if ((options.video ?? 'vga-text') === 'vga-text') {
    put8(BP.origX, 0);
    put8(BP.origY, 0);
    put16(BP.origVideoPage, 0);
    put8(BP.origVideoMode, 3); // 80x25 colour text
    put8(BP.origVideoCols, 80);
    put8(BP.origVideoLines, 25);
    put16(BP.origVideoEgaBx, 0x0003); // INT 10h AH=12h BL=10h: colour, 256 KiB
    put8(BP.origVideoIsVGA, 1); // VIDEO_TYPE_VGAC
    put16(BP.origVideoPoints, 16); // character height
  }
  put8(BP.e820Entries, memoryMap.length);
  memoryMap.forEach((r, i) => {
    const e = bp + BP.e820Table + i * 20;
    dv.setBigUint64(e, BigInt(r.base), true);
    dv.setBigUint64(e + 8, BigInt(r.length), true);
    dv.setUint32(e + 16, r.type, true);
  });

  m.fill(0, LINUX_CMDLINE_ADDR, LINUX_CMDLINE_ADDR + cmdline.length + 1);
  m.set(cmdline, LINUX_CMDLINE_ADDR);

  const gdt = LINUX_GDT_ADDR;
  m.fill(0, gdt, gdt + 32);
  writeFlatDescriptor(m, gdt + BOOT_CS, 0x9b);
  writeFlatDescriptor(m, gdt + BOOT_DS, 0x93);

  // ---- the CPU: 32-bit protected mode, flat segments, paging off, interrupts off ----
  cpu.cr0 = CR0_ET | CR0_PE;
  cpu.cr4 = 0;
  cpu.setCpl(0);
  cpu.updateMode();
  cpu.gdtBase = gdt;
  cpu.gdtLimit = 31;
  cpu.setSegCache(CS, BOOT_CS, 0, 0xffffffff, 0xc09b);
  for (const s of [DS, ES, FS, GS, SS]) cpu.setSegCache(s, BOOT_DS, 0, 0xffffffff, 0xc093);
  cpu.regs.fill(0); // EBP, EDI, EBX (and the rest) = 0
  cpu.regs[ESI] = bp;
  cpu.regs[ESP] = bp; // not required by the protocol; the kernel sets its own stack at once
  cpu.lazyMask = 0;
  cpu.flags = 2;
  cpu.eip = load;
  cpu.instrStart = load;
  cpu.halted = false;
  cpu.updateMode();
  cpu.rederiveSegments();
  cpu.flushTlb(true);
  cpu.attn = true;
  mem.setA20(true);

  return {
    header: hdr,
    bootParamsAddr: bp,
    gdtAddr: gdt,
    cmdlineAddr: LINUX_CMDLINE_ADDR,
    entry: load,
    kernelStart: load,
    kernelEnd,
    initrdAddr,
    initrdSize,
    memoryMap,
  };
}
