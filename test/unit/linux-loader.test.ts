/**
 * The Linux boot protocol loader: synthetic bzImages built here (a setup header with "HdrS" and a small
 * nasm-assembled 32-bit "kernel" that checks the hand-off from the inside and reports through ports
 * 0xE9/0xF4), the zero page and CPU state after loading, initrd placement, and the error cases.
 * If images/default/bzImage exists, its real header is parsed and loaded too.
 */
import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { Machine } from '../../core/machine';
import { BufferSink } from '../../core/host';
import { CS, DS, ES, FS, GS, SS, EBP, EBX, EDI, ESI, F_IF } from '../../core/defs';
import {
  loadLinux,
  parseLinuxHeader,
  isLinuxKernel,
  pcMemoryMap,
  LinuxBootError,
  BP,
  CAN_USE_HEAP,
  KEEP_SEGMENTS,
  LOADED_HIGH,
  LINUX_BOOT_PARAMS_ADDR,
  type MemoryRegion,
} from '../../core/loader/linux';
import { DebugCon } from '../../devices/debugcon';
import { DebugExit } from '../../devices/debugexit';
import { nasm } from '../helpers/asm';

const MB = 1024 * 1024;

interface FakeKernel {
  version?: number;
  setupSects?: number;
  loadflags?: number;
  code32Start?: number;
  initrdAddrMax?: number;
  cmdlineSize?: number;
  relocatable?: boolean;
  kernelAlignment?: number;
  prefAddress?: number;
  initSize?: number;
  /** write syssize (16-byte units) for the payload */
  syssize?: boolean;
  magic?: string;
  payload?: Uint8Array;
}

/** A bzImage: boot sector + setup sectors (with the setup header of protocol 2.15) + protected-mode payload. */
function makeBzImage(k: FakeKernel = {}): Uint8Array {
  const setupSects = k.setupSects ?? 4;
  const payload = k.payload ?? new Uint8Array([0xf4]);
  const setupBytes = ((setupSects || 4) + 1) * 512;
  const img = new Uint8Array(setupBytes + payload.length);
  const dv = new DataView(img.buffer);
  img.fill(0x90, 0, setupBytes); // the real-mode code we never run: not zero, so copying too much shows
  dv.setUint8(BP.setupSects, setupSects);
  dv.setUint16(BP.bootFlag, 0xaa55, true);
  dv.setUint8(BP.jump, 0xeb);
  dv.setUint8(BP.jump + 1, 0x6a); // header ends at 0x26C, as in 6.1
  img.set(new TextEncoder().encode(k.magic ?? 'HdrS'), BP.header);
  dv.setUint16(BP.version, k.version ?? 0x020f, true);
  dv.setUint8(BP.typeOfLoader, 0);
  dv.setUint8(BP.loadflags, k.loadflags ?? LOADED_HIGH | KEEP_SEGMENTS);
  dv.setUint32(BP.code32Start, k.code32Start ?? 0x100000, true);
  dv.setUint32(BP.ramdiskImage, 0, true);
  dv.setUint32(BP.ramdiskSize, 0, true);
  dv.setUint16(BP.heapEndPtr, 0, true);
  dv.setUint32(BP.cmdLinePtr, 0, true);
  dv.setUint32(BP.initrdAddrMax, k.initrdAddrMax ?? 0x7fffffff, true);
  dv.setUint32(BP.kernelAlignment, k.kernelAlignment ?? 0x1000, true);
  dv.setUint8(BP.relocatableKernel, k.relocatable ? 1 : 0);
  dv.setUint32(BP.cmdlineSize, k.cmdlineSize ?? 2047, true);
  dv.setUint32(BP.hardwareSubarch, 0, true);
  dv.setUint32(0x248, 0x1234, true); // payload_offset: an arbitrary header field that must be copied
  dv.setBigUint64(BP.prefAddress, BigInt(k.prefAddress ?? 0x100000), true);
  dv.setUint32(BP.initSize, k.initSize ?? 0, true);
  dv.setUint32(BP.syssize, k.syssize ? Math.ceil(payload.length / 16) : 0, true);
  img.fill(0x90, 0x26c, setupBytes);
  img.set(payload, setupBytes);
  return img;
}

function u8(m: Machine, a: number): number {
  return m.mem.mem8[a];
}
function u16(m: Machine, a: number): number {
  return new DataView(m.mem.mem8.buffer).getUint16(a, true);
}
function u32(m: Machine, a: number): number {
  return new DataView(m.mem.mem8.buffer).getUint32(a, true);
}
function u64(m: Machine, a: number): number {
  return Number(new DataView(m.mem.mem8.buffer).getBigUint64(a, true));
}
function cstring(m: Machine, addr: number): string {
  let s = '';
  for (let a = addr; m.mem.mem8[a] !== 0; a++) s += String.fromCharCode(m.mem.mem8[a]);
  return s;
}

describe('recognising a bzImage', () => {
  it('isLinuxKernel looks for "HdrS" at 0x202', () => {
    expect(isLinuxKernel(makeBzImage())).toBe(true);
    expect(isLinuxKernel(makeBzImage({ magic: 'HdrX' }))).toBe(false);
    expect(isLinuxKernel(new Uint8Array(0x205))).toBe(false);
    expect(isLinuxKernel(new Uint8Array(0))).toBe(false);
  });

  it('parses the setup header', () => {
    const h = parseLinuxHeader(makeBzImage({ setupSects: 0, payload: new Uint8Array(100) }));
    expect(h.setupSects).toBe(4); // 0 means 4
    expect(h.kernelOffset).toBe(5 * 512);
    expect(h.kernelSize).toBe(100); // no syssize: the rest of the file
    const img = makeBzImage({ setupSects: 2, payload: new Uint8Array(96), syssize: true });
    const padded = new Uint8Array(img.length + 50);
    padded.set(img);
    expect(parseLinuxHeader(padded).kernelSize).toBe(96); // syssize wins over trailing bytes
  });

  it('defaults for old protocol versions: initrd_addr_max 0x37FFFFFF, cmdline_size 255', () => {
    const h = parseLinuxHeader(makeBzImage({ version: 0x0202, initrdAddrMax: 0x1234, cmdlineSize: 9 }));
    expect(h.initrdAddrMax).toBe(0x37ffffff);
    expect(h.cmdlineSize).toBe(255);
    expect(h.prefAddress).toBe(0x100000);
    expect(h.initSize).toBe(0);
  });
});

describe('the errors', () => {
  const m = (): Machine => new Machine({ memSize: 8 * MB });

  it('rejects a file that is not a bzImage', () => {
    expect(() => loadLinux(m(), new Uint8Array(4096))).toThrow(/not a Linux bzImage.*HdrS/);
    expect(() => loadLinux(m(), makeBzImage({ magic: 'Hdr!' }))).toThrow(LinuxBootError);
  });

  it('rejects protocol versions before 2.02', () => {
    expect(() => loadLinux(m(), makeBzImage({ version: 0x0201 }))).toThrow(/protocol 2\.01 is too old.*2\.02/);
    expect(() => loadLinux(m(), makeBzImage({ version: 0x0202 }))).not.toThrow();
  });

  it('rejects a zImage and a truncated image', () => {
    expect(() => loadLinux(m(), makeBzImage({ loadflags: 0 }))).toThrow(/zImage/);
    const img = makeBzImage({ setupSects: 8 });
    expect(() => loadLinux(m(), img.subarray(0, 9 * 512))).toThrow(/truncated/);
    const declared = makeBzImage({ payload: new Uint8Array(4096), syssize: true });
    expect(() => loadLinux(m(), declared.subarray(0, declared.length - 32))).toThrow(/truncated/);
  });

  it('rejects a kernel too large for RAM', () => {
    expect(() => loadLinux(new Machine({ memSize: 4 * MB }), makeBzImage({ payload: new Uint8Array(3 * MB + 1) }))).toThrow(
      /kernel needs RAM up to 0x400001.*RAM above 1 MiB ends at 0x400000.*--mem/,
    );
    expect(() => loadLinux(new Machine({ memSize: 4 * MB }), makeBzImage({ payload: new Uint8Array(3 * MB) }))).not.toThrow();
  });

  it('counts the room the kernel needs to decompress (pref_address + init_size)', () => {
    const img = makeBzImage({ prefAddress: 16 * MB, initSize: 8 * MB });
    expect(() => loadLinux(new Machine({ memSize: 16 * MB }), img)).toThrow(/needs RAM up to 0x1800000 \(24 MiB\)/);
    const r = loadLinux(new Machine({ memSize: 32 * MB }), img);
    expect(r.kernelEnd).toBe(24 * MB);
  });

  it('rejects an initrd that does not fit in RAM', () => {
    const img = makeBzImage();
    expect(() => loadLinux(new Machine({ memSize: 4 * MB }), img, { initrd: new Uint8Array(3 * MB + 4096) })).toThrow(
      /initrd \(3149824 bytes.*does not fit.*end of RAM.*--mem/,
    );
  });

  it('rejects an initrd that does not fit below initrd_addr_max', () => {
    const img = makeBzImage({ initrdAddrMax: 0x1fffff });
    expect(() => loadLinux(m(), img, { initrd: new Uint8Array(0x180000) })).toThrow(/initrd.*initrd_addr_max 0x1fffff/);
    const r = loadLinux(m(), img, { initrd: new Uint8Array(0x80000) });
    expect(r.initrdAddr).toBe(0x180000); // ends exactly at initrd_addr_max + 1
  });

  it('rejects a command line longer than cmdline_size', () => {
    const img = makeBzImage({ cmdlineSize: 16 });
    expect(() => loadLinux(m(), img, { cmdline: 'x'.repeat(17) })).toThrow(/command line is 17 bytes.*at most 16/);
    expect(() => loadLinux(m(), img, { cmdline: 'x'.repeat(16) })).not.toThrow();
    expect(() => loadLinux(m(), makeBzImage({ version: 0x0205 }), { cmdline: 'y'.repeat(256) })).toThrow(/at most 255/);
  });

  it('rejects a memory map with more entries than boot_params holds', () => {
    const map: MemoryRegion[] = Array.from({ length: 129 }, (_, i) => ({ base: i * 4096, length: 4096, type: 2 }));
    expect(() => loadLinux(m(), makeBzImage(), { memoryMap: map })).toThrow(/129 entries.*128/);
  });
});

describe('the zero page and the machine after loading', () => {
  const payload = new Uint8Array(0x3000).map((_, i) => (i * 7 + 3) & 0xff);

  function load(mem = 64 * MB, opts: Parameters<typeof loadLinux>[2] = {}) {
    const m = new Machine({ memSize: mem });
    m.mem.mem8.fill(0xcc, 0x10000, 0x30000); // stale low memory: the zero page must be zeroed
    m.mem.setA20(false);
    const img = makeBzImage({ payload });
    const res = loadLinux(m, img, { cmdline: 'console=ttyS0 root=/dev/ram0', ...opts });
    return { m, res, img };
  }

  it('copies the protected-mode kernel to code32_start', () => {
    const { m, res } = load();
    expect(res.entry).toBe(0x100000);
    expect(m.mem.mem8.subarray(0x100000, 0x100000 + payload.length)).toEqual(payload);
  });

  it('copies the setup header and fills in the loader fields', () => {
    const { m, res, img } = load();
    const bp = res.bootParamsAddr;
    expect(bp).toBe(LINUX_BOOT_PARAMS_ADDR);
    expect(u32(m, bp + BP.header)).toBe(0x53726448);
    expect(u16(m, bp + BP.version)).toBe(0x020f);
    expect(u16(m, bp + BP.bootFlag)).toBe(0xaa55);
    expect(u32(m, bp + 0x248)).toBe(0x1234); // copied verbatim
    expect(u8(m, bp + BP.typeOfLoader)).toBe(0xff);
    const lf = u8(m, bp + BP.loadflags);
    expect(lf & CAN_USE_HEAP).toBe(CAN_USE_HEAP);
    expect(lf & KEEP_SEGMENTS).toBe(0);
    expect(lf & LOADED_HIGH).toBe(LOADED_HIGH);
    expect(u16(m, bp + BP.heapEndPtr)).toBe(0xfe00);
    expect(u32(m, bp + BP.code32Start)).toBe(0x100000);
    expect(cstring(m, u32(m, bp + BP.cmdLinePtr))).toBe('console=ttyS0 root=/dev/ram0');
    expect(u32(m, bp + BP.ramdiskImage)).toBe(0);
    expect(u32(m, bp + BP.ramdiskSize)).toBe(0);
    // outside the header (and the fields the loader fills), the page is zero
    expect(u8(m, bp + BP.sentinel)).toBe(0);
    expect(m.mem.mem8.subarray(bp + 0x26c, bp + BP.e820Table).every((b) => b === 0)).toBe(true);
    expect(m.mem.mem8.subarray(bp + 0x40, bp + BP.altMemK).every((b) => b === 0)).toBe(true);
    expect(m.mem.mem8.subarray(bp + BP.e820Table + 4 * 20, bp + 0x1000).every((b) => b === 0)).toBe(true);
    // the real-mode code itself is not copied
    expect(img[0x100]).toBe(0x90);
    expect(u8(m, bp + 0x100)).toBe(0);
  });

  it('writes the e820 map: low RAM, EBDA, BIOS area, RAM above 1 MiB', () => {
    const { m, res } = load(64 * MB);
    const bp = res.bootParamsAddr;
    expect(u8(m, bp + BP.e820Entries)).toBe(4);
    const entries = [0, 1, 2, 3].map((i) => {
      const e = bp + BP.e820Table + i * 20;
      return [u64(m, e), u64(m, e + 8), u32(m, e + 16)];
    });
    expect(entries).toEqual([
      [0, 0x9fc00, 1],
      [0x9fc00, 0x400, 2],
      [0xf0000, 0x10000, 2],
      [0x100000, 63 * MB, 1],
    ]);
  });

  it('takes the memory map from the caller (e.g. with an ACPI area at the top)', () => {
    const map = [...pcMemoryMap(32 * MB - 0x10000), { base: 32 * MB - 0x10000, length: 0x10000, type: 3 }];
    const { m, res } = load(32 * MB, { memoryMap: map, initrd: new Uint8Array(5000).fill(7) });
    const bp = res.bootParamsAddr;
    expect(u8(m, bp + BP.e820Entries)).toBe(5);
    const last = bp + BP.e820Table + 4 * 20;
    expect([u64(m, last), u64(m, last + 8), u32(m, last + 16)]).toEqual([32 * MB - 0x10000, 0x10000, 3]);
    // the initrd stays out of the ACPI area
    expect(res.initrdAddr).toBe(32 * MB - 0x10000 - 0x2000);
    // alt_mem_k counts RAM above 1 MiB up to the ACPI area
    expect(u32(m, bp + BP.altMemK)).toBe((31 * MB - 0x10000) / 1024);
  });

  it('describes an 80x25 VGA text screen, or none', () => {
    let { m, res } = load();
    let bp = res.bootParamsAddr;
    expect(u8(m, bp + BP.origVideoMode)).toBe(3);
    expect(u8(m, bp + BP.origVideoCols)).toBe(80);
    expect(u8(m, bp + BP.origVideoLines)).toBe(25);
    expect(u8(m, bp + BP.origVideoIsVGA)).toBe(1);
    expect(u16(m, bp + BP.origVideoPoints)).toBe(16);
    ({ m, res } = load(64 * MB, { video: 'none' }));
    bp = res.bootParamsAddr;
    expect(m.mem.mem8.subarray(bp + 4, bp + 0x40).every((b) => b === 0)).toBe(true);
  });

  it('reports the memory size in ext_mem_k and alt_mem_k', () => {
    let { m, res } = load(32 * MB);
    expect(u16(m, res.bootParamsAddr + BP.extMemK)).toBe(31 * 1024);
    expect(u32(m, res.bootParamsAddr + BP.altMemK)).toBe(31 * 1024);
    ({ m, res } = load(512 * MB));
    expect(u16(m, res.bootParamsAddr + BP.extMemK)).toBe(0xfc00);
    expect(u32(m, res.bootParamsAddr + BP.altMemK)).toBe(511 * 1024);
  });

  it('places the initrd high, 4 KiB aligned, below the end of RAM', () => {
    const initrd = new Uint8Array(300000).map((_, i) => i & 0xff);
    const { m, res } = load(64 * MB, { initrd });
    expect(res.initrdAddr % 4096).toBe(0);
    expect(res.initrdAddr + initrd.length).toBeLessThanOrEqual(64 * MB);
    expect(64 * MB - (res.initrdAddr + initrd.length)).toBeLessThan(4096);
    expect(u32(m, res.bootParamsAddr + BP.ramdiskImage)).toBe(res.initrdAddr);
    expect(u32(m, res.bootParamsAddr + BP.ramdiskSize)).toBe(initrd.length);
    expect(Buffer.compare(m.mem.mem8.subarray(res.initrdAddr, res.initrdAddr + initrd.length), initrd)).toBe(0);
  });

  it('leaves the CPU as the 32-bit boot protocol requires', () => {
    const { m, res } = load();
    const cpu = m.cpu;
    expect(cpu.eip).toBe(0x100000);
    expect(cpu.regs[ESI] >>> 0).toBe(res.bootParamsAddr);
    for (const r of [EBP, EDI, EBX]) expect(cpu.regs[r]).toBe(0);
    expect(cpu.cr0 & 1).toBe(1);
    expect(cpu.cr0 & 0x80000000).toBe(0);
    expect(cpu.protectedMode).toBe(true);
    expect(cpu.code32).toBe(true);
    expect(cpu.stack32).toBe(true);
    expect(cpu.cpl).toBe(0);
    expect(cpu.getFlags() & F_IF).toBe(0);
    expect(cpu.segSel[CS]).toBe(0x10);
    for (const s of [DS, ES, FS, GS, SS]) {
      expect(cpu.segSel[s]).toBe(0x18);
      expect(cpu.segBase[s]).toBe(0);
      expect(cpu.segLimit[s]).toBe(0xffffffff);
    }
    expect(m.mem.a20Enabled).toBe(true);
    const gdt = Array.from(m.mem.mem8.subarray(cpu.gdtBase, cpu.gdtBase + cpu.gdtLimit + 1));
    expect(gdt.slice(0x10, 0x18)).toEqual([0xff, 0xff, 0, 0, 0, 0x9b, 0xcf, 0]);
    expect(gdt.slice(0x18, 0x20)).toEqual([0xff, 0xff, 0, 0, 0, 0x93, 0xcf, 0]);
  });
});

// ---- a kernel that checks the hand-off from the inside ----

const CHECKER_ASM = `
bits 32
org 0x100000
%macro expect 3            ; operand, value, failure code
  cmp %1, %2
  je %%ok
  mov al, %3
  jmp fail
%%ok:
%endmacro
start:
  expect ebp, 0, 1
  expect edi, 0, 2
  expect ebx, 0, 3
  mov eax, cs
  expect ax, 0x10, 4
  mov eax, ds
  expect ax, 0x18, 5
  mov eax, es
  expect ax, 0x18, 6
  mov eax, ss
  expect ax, 0x18, 7
  mov esp, 0x9f000
  pushfd
  pop eax
  test eax, 0x200            ; IF clear
  jz .if_ok
  mov al, 8
  jmp fail
.if_ok:
  mov eax, cr0
  and eax, 0x80000001
  expect eax, 1, 9           ; PE on, paging off
  expect dword [esi + 0x202], 'HdrS', 10
  expect byte [esi + 0x210], 0xff, 11
  mov al, [esi + 0x211]
  and al, 0xc1
  expect al, 0x81, 12        ; LOADED_HIGH | CAN_USE_HEAP, KEEP_SEGMENTS clear
  expect byte [esi + 0x1e8], 4, 13
  expect dword [esi + 0x2d0 + 3 * 20], 0x100000, 14
  expect dword [esi + 0x214], 0x100000, 15
  mov edx, [esi + 0x218]     ; the initrd starts with "INRD" and is ramdisk_size long
  expect dword [edx], 'INRD', 16
  mov ecx, [esi + 0x21c]
  expect byte [edx + ecx - 1], 0x5a, 17
  expect byte [esi + 0x0f], 1, 18   ; orig_video_isVGA
  ; reload the segment registers from the loader's GDT
  mov ax, 0x18
  mov ds, ax
  mov es, ax
  mov ss, ax
  jmp 0x10:.reloaded
.reloaded:
  mov ebx, [esi + 0x228]     ; print the command line
.print:
  mov al, [ebx]
  test al, al
  jz .printed
  out 0xe9, al
  inc ebx
  jmp .print
.printed:
  mov al, '|'
  out 0xe9, al
  mov al, 'k'
  out 0xe9, al
  mov al, 0x10
  out 0xf4, al               ; exit status 0x21
  hlt
fail:
  out 0xf4, al               ; exit status (code << 1) | 1
  hlt
`;

describe('running a synthetic bzImage', () => {
  it('hands over as the boot protocol says (checked by the kernel itself)', () => {
    const m = new Machine({ memSize: 32 * MB });
    const out = new BufferSink();
    m.addDevice(new DebugCon(m, out));
    m.addDevice(new DebugExit(m));
    const initrd = new Uint8Array(12345);
    initrd.set([0x49, 0x4e, 0x52, 0x44]); // "INRD"
    initrd[initrd.length - 1] = 0x5a;
    loadLinux(m, makeBzImage({ payload: nasm(CHECKER_ASM) }), { cmdline: 'console=ttyS0 quiet', initrd });
    m.run(100_000);
    expect(m.stopReason).toEqual({ kind: 'exit', code: 0x21, message: 'the guest wrote 0x10 to isa-debug-exit' });
    expect(out.text()).toBe('console=ttyS0 quiet|k');
  });

  it('the checker notices a wrong hand-off (EBX not zero)', () => {
    const m = new Machine({ memSize: 32 * MB });
    m.addDevice(new DebugExit(m));
    loadLinux(m, makeBzImage({ payload: nasm(CHECKER_ASM) }), { initrd: new Uint8Array(8) });
    m.cpu.regs[EBX] = 1;
    m.run(100_000);
    expect(m.stopReason).toMatchObject({ kind: 'exit', code: (3 << 1) | 1 });
  });
});

const REAL = new URL('../../images/default/bzImage', import.meta.url);

describe.skipIf(!existsSync(REAL))('the default guest kernel (images/default/bzImage)', () => {
  it('has a header the loader accepts, and loads with its initrd into 32 MiB', () => {
    const img = new Uint8Array(readFileSync(REAL));
    expect(isLinuxKernel(img)).toBe(true);
    const h = parseLinuxHeader(img);
    expect(h.version).toBeGreaterThanOrEqual(0x020f);
    expect(h.code32Start).toBe(0x100000);
    expect(h.cmdlineSize).toBeGreaterThanOrEqual(2047);
    const m = new Machine({ memSize: 32 * MB });
    const initrdUrl = new URL('../../images/default/initramfs.cpio.gz', import.meta.url);
    const initrd = existsSync(initrdUrl) ? new Uint8Array(readFileSync(initrdUrl)) : undefined;
    const r = loadLinux(m, img, { cmdline: 'console=ttyS0', initrd });
    expect(r.kernelEnd).toBeLessThanOrEqual(r.initrdAddr || 32 * MB);
    expect(m.mem.mem8.subarray(0x100000, 0x100000 + 64)).toEqual(img.subarray(h.kernelOffset, h.kernelOffset + 64));
  });
});
