/**
 * The Multiboot v1 loader: ELF32 and a.out-kludge images built here byte by byte, the memory and CPU
 * state after loading, the information structure, the error cases, and (when the CPU executes) small
 * nasm-built kernels that check the hand-off from the inside.
 */
import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine } from '../../core/machine';
import { BufferSink } from '../../core/host';
import { CS, DS, ES, FS, GS, SS, EAX, EBX, F_IF } from '../../core/defs';
import {
  loadMultiboot,
  findMultibootHeader,
  pcMemoryMap,
  MultibootError,
  MBI,
  MBI_FLAG_MEMORY,
  MBI_FLAG_CMDLINE,
  MBI_FLAG_MMAP,
  MBI_FLAG_LOADER_NAME,
} from '../../core/loader/multiboot';
import { DebugCon } from '../../devices/debugcon';
import { DebugExit } from '../../devices/debugexit';
import { loadBios, checkBiosSize } from '../../core/loader/bios';

const MAGIC = 0x1badb002;
const MB = 1024 * 1024;

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

function mbHeader(flags: number, extra: number[] = []): Uint8Array {
  const words = [MAGIC, flags, (-(MAGIC + flags)) >>> 0, ...extra];
  return new Uint8Array(words.flatMap(le32));
}

interface ElfSeg {
  vaddr: number;
  paddr: number;
  data: Uint8Array;
  memsz: number;
  flags?: number;
}

/** an ELF32 i386 executable with the Multiboot header at file offset 0x80 (outside the segments) */
function makeElf(entry: number, segs: ElfSeg[], o: { headerFlags?: number; machine?: number; cls?: number } = {}): Uint8Array {
  const dataStart = 0x1000;
  let size = dataStart;
  const offsets: number[] = [];
  for (const s of segs) {
    offsets.push(size);
    size += (s.data.length + 0xfff) & ~0xfff;
  }
  const f = new Uint8Array(size);
  const dv = new DataView(f.buffer);
  f.set([0x7f, 0x45, 0x4c, 0x46, o.cls ?? 1, 1, 1], 0);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, o.machine ?? 3, true);
  dv.setUint32(20, 1, true);
  dv.setUint32(24, entry, true);
  dv.setUint32(28, 52, true); // phoff
  dv.setUint16(40, 52, true);
  dv.setUint16(42, 32, true);
  dv.setUint16(44, segs.length, true);
  segs.forEach((s, i) => {
    const ph = 52 + i * 32;
    dv.setUint32(ph, 1, true); // PT_LOAD
    dv.setUint32(ph + 4, offsets[i], true);
    dv.setUint32(ph + 8, s.vaddr, true);
    dv.setUint32(ph + 12, s.paddr, true);
    dv.setUint32(ph + 16, s.data.length, true);
    dv.setUint32(ph + 20, s.memsz, true);
    dv.setUint32(ph + 24, s.flags ?? 7, true);
    dv.setUint32(ph + 28, 0x1000, true);
    f.set(s.data, offsets[i]);
  });
  f.set(mbHeader(o.headerFlags ?? 0x3), 0x80);
  return f;
}

/** an a.out-kludge image: [32-byte header][body], loaded at loadAddr */
function makeAout(loadAddr: number, body: Uint8Array, bssSize: number, entryOff = 32): Uint8Array {
  const total = 32 + body.length;
  const hdr = mbHeader(0x10003, [loadAddr, loadAddr, loadAddr + total, loadAddr + total + bssSize, loadAddr + entryOff]);
  const f = new Uint8Array(total);
  f.set(hdr, 0);
  f.set(body, 32);
  return f;
}

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

function cstring(m: Machine, addr: number): string {
  let s = '';
  for (let a = addr; m.mem.mem8[a] !== 0; a++) s += String.fromCharCode(m.mem.mem8[a]);
  return s;
}

function u32(m: Machine, addr: number): number {
  return new DataView(m.mem.mem8.buffer).getUint32(addr, true);
}

function u64(m: Machine, addr: number): number {
  return Number(new DataView(m.mem.mem8.buffer).getBigUint64(addr, true));
}

describe('Multiboot header search', () => {
  it('finds a 32-bit aligned header in the first 8 KiB', () => {
    const img = new Uint8Array(16384);
    img.set(mbHeader(0x10000), 8192 - 12);
    expect(findMultibootHeader(img)).toEqual({ offset: 8192 - 12, flags: 0x10000 });
  });

  it('ignores headers past 8 KiB or unaligned', () => {
    const img = new Uint8Array(16384);
    img.set(mbHeader(0), 8192);
    img.set(mbHeader(0), 102);
    expect(findMultibootHeader(img)).toBeNull();
  });

  it('rejects a bad checksum', () => {
    const img = new Uint8Array(4096);
    img.set(mbHeader(0), 64);
    img[72] ^= 1;
    expect(() => findMultibootHeader(img)).toThrow(/checksum/);
  });
});

describe('loading an ELF32 Multiboot kernel', () => {
  const text = bytes(0x1234, 1);
  const data = bytes(0x300, 7);

  function load(mem = 16 * MB, cmdline = 'kernel.elf console=ttyS0 x=1') {
    const m = new Machine({ memSize: mem });
    m.mem.mem8.fill(0xaa, 0x100000, 0x200000); // proves BSS is zeroed
    m.mem.setA20(false);
    const img = makeElf(0x100010, [
      { vaddr: 0x100000, paddr: 0x100000, data: text, memsz: text.length, flags: 5 },
      { vaddr: 0x102000, paddr: 0x102000, data, memsz: 0x2000, flags: 6 },
    ]);
    const res = loadMultiboot(m, img, { cmdline });
    return { m, res };
  }

  it('copies the PT_LOAD segments to their physical addresses and zeroes BSS', () => {
    const { m, res } = load();
    expect(res.format).toBe('elf');
    expect(m.mem.mem8.subarray(0x100000, 0x100000 + text.length)).toEqual(text);
    expect(m.mem.mem8.subarray(0x102000, 0x102000 + data.length)).toEqual(data);
    expect(m.mem.mem8.subarray(0x102000 + data.length, 0x104000).every((b) => b === 0)).toBe(true);
    expect(m.mem.mem8[0x104000]).toBe(0xaa); // past the segment: untouched
    expect(res.kernelStart).toBe(0x100000);
    expect(res.kernelEnd).toBe(0x104000);
  });

  it('leaves the CPU in 32-bit protected mode with flat segments, as the specification says', () => {
    const { m, res } = load();
    const cpu = m.cpu;
    expect(cpu.regs[EAX] >>> 0).toBe(0x2badb002);
    expect(cpu.regs[EBX] >>> 0).toBe(res.infoAddr);
    expect(cpu.eip).toBe(0x100010);
    expect(cpu.cr0 & 1).toBe(1);
    expect(cpu.cr0 & 0x80000000).toBe(0);
    expect(cpu.protectedMode).toBe(true);
    expect(cpu.code32).toBe(true);
    expect(cpu.stack32).toBe(true);
    expect(cpu.cpl).toBe(0);
    expect(cpu.getFlags()).toBe(2);
    expect(cpu.getFlags() & F_IF).toBe(0);
    expect(cpu.segSel[CS]).toBe(0x10);
    for (const s of [DS, ES, FS, GS, SS]) {
      expect(cpu.segSel[s]).toBe(0x18);
      expect(cpu.segBase[s]).toBe(0);
      expect(cpu.segLimit[s]).toBe(0xffffffff);
    }
    expect(cpu.segBase[CS]).toBe(0);
    expect(cpu.segLimit[CS]).toBe(0xffffffff);
    expect(m.mem.a20Enabled).toBe(true);
    // the GDT in memory matches the cached descriptors
    expect(cpu.gdtLimit).toBe(31);
    const gdt = Array.from(m.mem.mem8.subarray(cpu.gdtBase, cpu.gdtBase + 32));
    expect(gdt.slice(0, 16).every((b) => b === 0)).toBe(true);
    expect(gdt.slice(16, 24)).toEqual([0xff, 0xff, 0, 0, 0, 0x9b, 0xcf, 0]);
    expect(gdt.slice(24, 32)).toEqual([0xff, 0xff, 0, 0, 0, 0x93, 0xcf, 0]);
  });

  it('builds the information structure: memory, command line, loader name, memory map', () => {
    const mem = 48 * MB;
    const { m, res } = load(mem);
    const info = res.infoAddr;
    expect(info + MBI.size).toBeLessThanOrEqual(0x9fc00);
    const flags = u32(m, info + MBI.flags);
    expect(flags).toBe(MBI_FLAG_MEMORY | MBI_FLAG_CMDLINE | MBI_FLAG_MMAP | MBI_FLAG_LOADER_NAME | 0x2 | 0x8);
    expect(flags).toBe(0x24f); // what QEMU's loader sets
    expect(u32(m, info + MBI.bootDevice)).toBe(0x8000ffff);
    expect(u32(m, info + MBI.modsCount)).toBe(0);
    expect(u32(m, info + MBI.memLower)).toBe(639);
    expect(u32(m, info + MBI.memUpper)).toBe((mem - MB) / 1024);
    expect(cstring(m, u32(m, info + MBI.cmdline))).toBe('kernel.elf console=ttyS0 x=1');
    expect(cstring(m, u32(m, info + MBI.bootLoaderName))).toBe('x86vm');
    const mmapAddr = u32(m, info + MBI.mmapAddr);
    const mmapLen = u32(m, info + MBI.mmapLength);
    const entries: { base: number; length: number; type: number }[] = [];
    for (let e = mmapAddr; e < mmapAddr + mmapLen; e += u32(m, e) + 4) {
      expect(u32(m, e)).toBe(20);
      entries.push({ base: u64(m, e + 4), length: u64(m, e + 12), type: u32(m, e + 20) });
    }
    expect(entries).toEqual([
      { base: 0, length: 0x9fc00, type: 1 },
      { base: 0x9fc00, length: 0x400, type: 2 },
      { base: 0xf0000, length: 0x10000, type: 2 },
      { base: 0x100000, length: mem - MB, type: 1 },
    ]);
    expect(entries).toEqual(pcMemoryMap(mem));
  });

  it('translates a higher-half entry point to its physical address', () => {
    const m = new Machine({ memSize: 8 * MB });
    const img = makeElf(0xc0100020, [{ vaddr: 0xc0100000, paddr: 0x100000, data: text, memsz: text.length, flags: 5 }]);
    const res = loadMultiboot(m, img);
    expect(res.entry).toBe(0x100020);
    expect(m.cpu.eip).toBe(0x100020);
    expect(m.mem.mem8.subarray(0x100000, 0x100000 + text.length)).toEqual(text);
  });

  it('places the information structure where the kernel is not', () => {
    const m = new Machine({ memSize: 8 * MB });
    const img = makeElf(0x8000, [{ vaddr: 0x8000, paddr: 0x8000, data: bytes(0x100, 3), memsz: 0x4000, flags: 7 }]);
    const res = loadMultiboot(m, img, { cmdline: 'low' });
    expect(res.infoAddr >= 0xc000 || res.gdtAddr + 0x200 <= 0x8000).toBe(true);
    expect(cstring(m, u32(m, res.infoAddr + MBI.cmdline))).toBe('low');
  });

  it('rejects bad kernels with clear messages', () => {
    const m = new Machine({ memSize: 4 * MB });
    const seg = (paddr: number, n = 0x100, memsz = n): ElfSeg => ({ vaddr: paddr, paddr, data: bytes(n, 0), memsz });
    expect(() => loadMultiboot(m, new Uint8Array(10000))).toThrow(/not a Multiboot kernel/);
    try {
      loadMultiboot(m, new Uint8Array(100));
    } catch (e) {
      expect(e).toBeInstanceOf(MultibootError);
      expect((e as MultibootError).notMultiboot).toBe(true);
    }
    expect(() => loadMultiboot(m, makeElf(0x100000, [seg(0x3ff000, 0x100, 0x2000)]))).toThrow(/outside RAM/);
    expect(() => loadMultiboot(m, makeElf(0x100000, [seg(0x100000)], { cls: 2, machine: 62 }))).toThrow(/64-bit/);
    expect(() => loadMultiboot(m, makeElf(0x100000, [seg(0x100000)], { machine: 40 }))).toThrow(/not i386/);
    expect(() => loadMultiboot(m, makeElf(0x100000, [seg(0x100000)]).subarray(0, 0x1080))).toThrow(/truncated/);
    // a requirement bit we do not know
    expect(() => loadMultiboot(m, makeElf(0x100000, [seg(0x100000)], { headerFlags: 0x8 }))).toThrow(/features/);
    // no ELF and no address fields
    const plain = new Uint8Array(4096);
    plain.set(mbHeader(0x3), 0);
    expect(() => loadMultiboot(m, plain)).toThrow(/neither ELF/);
  });
});

describe('loading an a.out-kludge Multiboot kernel', () => {
  it('loads from the header addresses, zeroes BSS and enters at entry_addr', () => {
    const m = new Machine({ memSize: 8 * MB });
    m.mem.mem8.fill(0xaa, 0x200000, 0x210000);
    const body = bytes(0x500, 9);
    const img = makeAout(0x200000, body, 0x3000, 0x40);
    const res = loadMultiboot(m, img, { cmdline: 'k' });
    expect(res.format).toBe('aout');
    expect(m.mem.mem8.subarray(0x200000, 0x200000 + img.length)).toEqual(img);
    const bssStart = 0x200000 + img.length;
    expect(m.mem.mem8.subarray(bssStart, bssStart + 0x3000).every((b) => b === 0)).toBe(true);
    expect(m.mem.mem8[bssStart + 0x3000]).toBe(0xaa);
    expect(m.cpu.eip).toBe(0x200040);
    expect(m.cpu.regs[EAX] >>> 0).toBe(0x2badb002);
  });

  it('uses the address fields even when the file is also ELF (flag bit 16 wins)', () => {
    const m = new Machine({ memSize: 8 * MB });
    const img = makeElf(0x100000, [{ vaddr: 0x100000, paddr: 0x100000, data: bytes(0x10, 1), memsz: 0x10 }], {
      headerFlags: 0x10000,
    });
    // the header at 0x80 says: header_addr = 0x300080, load_addr = 0x300000, load to end of file
    img.set(mbHeader(0x10000, [0x300080, 0x300000, 0, 0, 0x300100]), 0x80);
    const res = loadMultiboot(m, img);
    expect(res.format).toBe('aout');
    expect(m.mem.mem8.subarray(0x300000, 0x300000 + img.length)).toEqual(img);
    expect(m.cpu.eip).toBe(0x300100);
  });

  it('rejects inconsistent address fields and truncated images', () => {
    const m = new Machine({ memSize: 8 * MB });
    const bad = new Uint8Array(4096);
    bad.set(mbHeader(0x10000, [0x100000, 0x100010, 0, 0, 0x100020]), 0);
    expect(() => loadMultiboot(m, bad)).toThrow(/header_addr/);
    const trunc = new Uint8Array(4096);
    trunc.set(mbHeader(0x10000, [0x100000, 0x100000, 0x102000, 0, 0x100020]), 0);
    expect(() => loadMultiboot(m, trunc)).toThrow(/truncated/);
    const big = new Uint8Array(4096);
    big.set(mbHeader(0x10000, [0x7ff000, 0x7ff000, 0, 0x900000, 0x7ff020]), 0);
    expect(() => loadMultiboot(m, big)).toThrow(/outside RAM/);
  });
});

// ---- kernels that run: they need the CPU's instruction set (the lead's core/ops) ----

function nasm(source: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'x86vm-mb-'));
  writeFileSync(join(dir, 'k.asm'), source);
  execFileSync('nasm', ['-f', 'bin', '-o', join(dir, 'k.bin'), join(dir, 'k.asm')]);
  return new Uint8Array(readFileSync(join(dir, 'k.bin')));
}

/** an a.out-kludge kernel: checks the magic, prints the command line to 0xE9, reloads the segment
 * registers from the loader's GDT, writes its BSS, and exits through isa-debug-exit */
const KERNEL_ASM = `
bits 32
org 0x100000
hdr:
  dd 0x1BADB002, 0x00010003, -(0x1BADB002 + 0x00010003)
  dd hdr, hdr, end, end + 0x1000, start
start:
  cmp eax, 0x2BADB002
  jne fail
  test dword [ebx], 4          ; cmdline present
  jz fail
  mov esi, [ebx + 16]
.print:
  lodsb
  test al, al
  jz .printed
  out 0xE9, al
  jmp .print
.printed:
  mov al, '|'
  out 0xE9, al
  mov eax, [ebx + 8]           ; mem_upper in KiB
  cmp eax, (8 * 1024) - 1024
  jne fail
  mov ax, 0x18
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov esp, end + 0x1000
  jmp 0x10:.reloaded
.reloaded:
  cmp dword [end + 16], 0      ; BSS is zero
  jne fail
  push dword 0x600DF00D
  pop ecx
  cmp ecx, 0x600DF00D
  jne fail
  mov al, 'k'
  out 0xE9, al
  mov al, 0x10
  out 0xF4, al                 ; exit status 0x21
  hlt
fail:
  mov al, 0x7e
  out 0xF4, al
  hlt
end:
`;

describe('running a Multiboot kernel', () => {
  it('hands over as the specification says (checked by the kernel itself)', () => {
    const m = new Machine({ memSize: 8 * MB });
    const out = new BufferSink();
    m.addDevice(new DebugCon(m, out));
    m.addDevice(new DebugExit(m));
    loadMultiboot(m, nasm(KERNEL_ASM), { cmdline: 'kern.bin quiet' });
    m.run(100_000);
    expect(out.text()).toBe('kern.bin quiet|k');
    expect(m.stopReason).toEqual({ kind: 'exit', code: 0x21, message: 'the guest wrote 0x10 to isa-debug-exit' });
  });
});

describe('BIOS images (--bios)', () => {
  it('maps the image to end at 4 GiB and its last 128 KiB to end at 1 MiB, read-only', () => {
    const m = new Machine({ memSize: 4 * MB });
    const img = bytes(256 * 1024, 5);
    const layout = loadBios(m.mem, img);
    expect(layout).toEqual({ highBase: 0xfffc0000, isaBase: 0xe0000, isaSize: 0x20000 });
    for (const off of [0, 1, 0x1234, 0x20000, 0x3fff0, 0x3ffff]) {
      expect(m.mem.read8((0xfffc0000 + off) | 0)).toBe(img[off]);
    }
    for (const off of [0, 0x10000, 0x1fff0, 0x1ffff]) {
      expect(m.mem.read8(0xe0000 + off)).toBe(img[0x20000 + off]);
    }
    m.mem.write8(0xffff0, img[0x3fff0] ^ 0xff);
    m.mem.write8(0xfffffff0 | 0, img[0x3fff0] ^ 0xff);
    expect(m.mem.read8(0xffff0)).toBe(img[0x3fff0]);
    expect(m.mem.read8(0xfffffff0 | 0)).toBe(img[0x3fff0]);
    expect(m.mem.read8(0xdffff)).toBe(0); // below the window: RAM
  });

  it('mirrors a 64 KiB image whole at 0xF0000', () => {
    const m = new Machine({ memSize: 2 * MB });
    const img = bytes(64 * 1024, 2);
    expect(loadBios(m.mem, img)).toEqual({ highBase: 0xffff0000, isaBase: 0xf0000, isaSize: 0x10000 });
    expect(m.mem.read8(0xf0000)).toBe(img[0]);
    expect(m.mem.read8(0xffff0000 | 0)).toBe(img[0]);
  });

  it('accepts 64–256 KiB in 64 KiB steps (QEMU requires multiples of 64 KiB)', () => {
    for (const kib of [64, 128, 192, 256]) expect(checkBiosSize(kib * 1024)).toBeNull();
    for (const size of [0, 4096, 60 * 1024, 100000, 320 * 1024, 512 * 1024]) {
      expect(checkBiosSize(size)).toMatch(/64, 128, 192 or 256 KiB/);
      expect(() => loadBios(new Machine({ memSize: MB }).mem, new Uint8Array(size))).toThrow(/BIOS/);
    }
  });
});
