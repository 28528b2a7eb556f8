/**
 * Snapshots at the core level (core/snapshot.ts, the CPU/FPU/clock/machine state methods) and the Node
 * host pieces (node/snapshot.ts): the file format and its checks, and exactness — a machine restored
 * from a snapshot taken at instruction N continues exactly as the uninterrupted machine did.
 *
 * The guest is a 64 KiB BIOS image (below) that exercises what a snapshot must carry: protected mode
 * with paging and a deliberately stale TLB entry (the guest changes a PTE without INVLPG: hardware and
 * x86vm keep using the old translation, so a restore that dropped the TLB would print 'B' instead of
 * 'A'), the 8259 and PIT, the local APIC's periodic timer, the UART with its FIFO, and x87 registers
 * holding a NaN with a payload, -0 and +infinity. It ends through isa-debug-exit.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nasm } from '../helpers/asm';
import { createPc, type Pc } from '../../core/pc';
import { BufferSink } from '../../core/host';
import { loadBios } from '../../core/loader/bios';
import {
  captureSnapshot,
  checkDiskRefs,
  compressionStreamCompressor,
  crc32,
  createPcFromSnapshot,
  decodeJson,
  encodeJson,
  encodeSnapshot,
  parseSnapshot,
  restoreMachine,
  saveSnapshot,
  SnapshotError,
  HEADER_SIZE,
  type Compressor,
  type DiskRef,
  joinParts,
} from '../../core/snapshot';
import { Clock } from '../../core/clock';
import { nodeCompressor, readSnapshotFile, SnapshotFileError, writeFileAtomic, formatSnapshotInfo, interactiveSnapshotName } from '../../node/snapshot';
import { runVm, type VmControl } from '../../node/run';
import { parseCommandLine, type RunOptions } from '../../node/options';
import { EscapeFilter } from '../../node/console';

const GUEST_ASM = String.raw`
%define ROM 0xF0000
bits 16
org 0
start16:
  cli
  o32 lgdt [cs:gdt_desc]
  mov eax, cr0
  or al, 1
  mov cr0, eax
  jmp dword 0x08:(ROM + pm32)
bits 32
pm32:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov fs, ax
  mov gs, ax
  mov esp, 0x90000
  ; page tables: PD 0x100000; PT0 0x101000 identity-maps 0-4 MiB; PT1 0x102000 maps 0x400000;
  ; PT2 0x103000 maps the local APIC page
  mov edi, 0x101000
  mov eax, 3
  mov ecx, 1024
.fill:
  mov [edi], eax
  add eax, 4096
  add edi, 4
  loop .fill
  mov dword [0x100000], 0x101003
  mov dword [0x100004], 0x102003
  mov dword [0x100000 + 1019*4], 0x103003
  mov dword [0x102000], 0x200003
  mov dword [0x103000 + 0x200*4], 0xFEE00013
  mov byte [0x200000], 'A'
  mov byte [0x201000], 'B'
  mov eax, 0x100000
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  ; fill the TLB entry, then point the PTE elsewhere without INVLPG: reads keep seeing 'A'
  mov al, [0x400000]
  mov dword [0x102000], 0x201003
  ; IDT at 0x3000: vector 0x20 (PIT through the 8259), 0x30 (local APIC timer)
  mov eax, ROM + irq0
  mov word [0x3000 + 0x20*8], ax
  mov word [0x3000 + 0x20*8 + 2], 0x08
  mov word [0x3000 + 0x20*8 + 4], 0x8E00
  shr eax, 16
  mov word [0x3000 + 0x20*8 + 6], ax
  mov eax, ROM + apic_irq
  mov word [0x3000 + 0x30*8], ax
  mov word [0x3000 + 0x30*8 + 2], 0x08
  mov word [0x3000 + 0x30*8 + 4], 0x8E00
  shr eax, 16
  mov word [0x3000 + 0x30*8 + 6], ax
  lidt [ROM + idt_desc]
  mov al, 0x11
  out 0x20, al
  out 0xA0, al
  mov al, 0x20
  out 0x21, al
  mov al, 0x28
  out 0xA1, al
  mov al, 4
  out 0x21, al
  mov al, 2
  out 0xA1, al
  mov al, 1
  out 0x21, al
  out 0xA1, al
  mov al, 0xFE
  out 0x21, al
  mov al, 0xFF
  out 0xA1, al
  ; PIT channel 0: mode 2, count 500
  mov al, 0x34
  out 0x43, al
  mov ax, 500
  out 0x40, al
  mov al, ah
  out 0x40, al
  ; local APIC on, LINT0 = ExtINT, periodic timer on vector 0x30
  mov dword [0xFEE000F0], 0x1FF
  mov dword [0xFEE00350], 0x700
  mov dword [0xFEE003E0], 0xB
  mov dword [0xFEE00320], 0x20030
  mov dword [0xFEE00380], 77777
  ; COM1: 8N1, FIFOs on
  mov dx, 0x3FB
  mov al, 3
  out dx, al
  mov dx, 0x3FA
  mov al, 0xC7
  out dx, al
  ; x87: a NaN with a payload, -0 and +inf stay on the stack
  finit
  fld qword [ROM + nanp]
  fldz
  fchs
  fld1
  fldz
  fdivp st1, st0
  sti
  ; busy for a while: the timers armed above fall due while the CPU runs, not while it waits
  mov ecx, 600000
.spin:
  loop .spin
main:
  fild dword [0x5000]
  fsqrt
  fstp qword [0x6000]
  mov eax, [0x5000]
  add eax, [0x5004]
  mov ecx, 64
  mov edi, 0x300000
  movzx ebx, al
  shl ebx, 2
.touch:
  mov [edi + ebx], eax
  add edi, 4096
  loop .touch
  mov al, [0x400000]
  mov dx, 0x3F8
  out dx, al
  hlt
  cmp dword [0x5000], 3000
  jb main
  fstp qword [0x6100]
  fstp qword [0x6108]
  fstp qword [0x6110]
  mov al, 0x21
  out 0xF4, al
  hlt
irq0:
  push eax
  push edx
  inc dword [0x5000]
  mov eax, [0x5000]
  and eax, 7
  add al, '0'
  mov dx, 0x3F8
  out dx, al
  mov al, 0x20
  out 0x20, al
  pop edx
  pop eax
  iretd
apic_irq:
  push eax
  inc dword [0x5004]
  mov al, '*'
  push edx
  mov dx, 0x3F8
  out dx, al
  pop edx
  mov dword [0xFEE000B0], 0
  pop eax
  iretd
align 8
nanp: dq 0x7FF8DEADBEEF1234
gdt:
  dq 0
  dq 0x00CF9A000000FFFF
  dq 0x00CF92000000FFFF
gdt_desc:
  dw 23
  dd ROM + gdt
idt_desc:
  dw 0x3FF
  dd 0x3000
times 0xFFF0 - ($ - $$) db 0
bits 16
  jmp 0xF000:start16
times 0x10000 - ($ - $$) db 0
`;

const BIOS = nasm(GUEST_ASM);
const BIOS_BASE = 0x100000000 - BIOS.length;
const MEM = 8 << 20;
const zlib = nodeCompressor();

interface Guest {
  pc: Pc;
  serial: BufferSink;
}

function boot(deterministic = true): Guest {
  const serial = new BufferSink();
  const pc = createPc({ memSize: MEM, deterministic, serial });
  loadBios(pc.mem, BIOS);
  // host input the guest never reads: the UART's character-timeout timer is armed early on
  pc.com1.receive([0x31, 0x32, 0x33]);
  return { pc, serial };
}

/** runs until the machine stops, or until instruction `until`, in uneven slices */
function runTo(pc: Pc, until = Infinity): void {
  const m = pc.machine;
  const t0 = performance.now();
  while (!m.stopReason && m.cpu.instructionCount < until) {
    if (performance.now() - t0 > 60_000) throw new Error('the guest does not finish');
    m.run(Math.min(7919, until - m.cpu.instructionCount));
  }
}

async function snapshotOf(pc: Pc, compressor: Compressor = zlib): Promise<Uint8Array> {
  return saveSnapshot({ pc, roms: [{ name: 'bios', base: BIOS_BASE, data: BIOS }], created: new Date(0), creator: 'test' }, compressor);
}

async function restore(bytes: Uint8Array, compressor: Compressor = zlib): Promise<Guest> {
  const serial = new BufferSink();
  const pc = await createPcFromSnapshot(parseSnapshot(bytes), { serial }, compressor);
  return { pc, serial };
}

function digest(pc: Pc): string {
  // CPU state and a hash of RAM: equal machines, equal digests (without the two flags that only say
  // how the host's last slice ended)
  const { attn: _a, exitRequested: _e, ...state } = pc.cpu.saveState();
  const cpu = JSON.stringify(state);
  return `${cpu.length}:${crc32(new TextEncoder().encode(cpu)).toString(16)}:${crc32(pc.mem.mem8).toString(16)}`;
}

/** the uninterrupted reference run */
const reference = (() => {
  const g = boot();
  runTo(g.pc);
  return { out: g.serial.text(), stop: g.pc.machine.stopReason, instructions: g.pc.cpu.instructionCount, digest: digest(g.pc), ram: g.pc.mem.mem8.slice() };
})();

describe('the snapshot format', () => {
  it('has CRC32 (IEEE) and JSON that keeps -0, infinities and NaN', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    const v = decodeJson(encodeJson({ a: [-0, Infinity, -Infinity, NaN, 1.5, 0], b: 'x' })) as { a: number[]; b: string };
    expect(Object.is(v.a[0], -0)).toBe(true);
    expect(v.a.slice(1, 3)).toEqual([Infinity, -Infinity]);
    expect(Number.isNaN(v.a[3])).toBe(true);
    expect(Object.is(v.a[5], 0)).toBe(true);
    expect(v.b).toBe('x');
  });

  it('skips zero pages: a fresh machine stores only what was loaded', async () => {
    const g = boot();
    const bytes = await snapshotOf(g.pc);
    const snap = parseSnapshot(bytes);
    // the BIOS copy below 1 MiB is 16 non-zero pages (its tail is zeros but for the reset vector)
    const nonZero = snap.meta.ram.nonZeroPages;
    let expected = 0;
    for (let p = 0; p < MEM / 4096; p++) if (g.pc.mem.mem8.subarray(p * 4096, p * 4096 + 4096).some((b) => b !== 0)) expected++;
    expect(nonZero).toBe(expected);
    expect(snap.meta.ram.pages).toBe(MEM / 4096);
    expect(bytes.length).toBeLessThan(64 * 1024);
    expect(snap.meta.mode).toBe('deterministic');
    expect(snap.meta.config.devices).toEqual(g.pc.machine.devices.map((d) => d.name));
    expect(snap.sections.map((s) => s.name)).toEqual(['meta', 'cpu', 'machine', 'devices', 'memmap', 'ram', 'rom:bios']);
  });

  it('writes the same bytes for the same machine state', async () => {
    const a = boot();
    const b = boot();
    runTo(a.pc, 40_000);
    runTo(b.pc, 40_000);
    const sa = await snapshotOf(a.pc);
    expect(await snapshotOf(b.pc)).toEqual(sa);
    // and a snapshot does not disturb the machine it was taken from
    expect(await snapshotOf(a.pc)).toEqual(sa);
  });
});

describe('exactness', () => {
  it('the reference run does what the test relies on', () => {
    expect(reference.stop).toMatchObject({ kind: 'exit', code: 0x43 });
    expect(reference.out).toContain('*'); // the APIC timer
    expect(reference.out).toMatch(/A[0-7]/); // the PIT
    expect(reference.out).not.toContain('B'); // the stale TLB entry was used all along
    expect(reference.instructions).toBeGreaterThan(50_000);
  });

  it('slicing by the host does not change a deterministic run (timers armed mid-slice fire on time)', () => {
    for (const slice of [1, 1000, 1_000_000]) {
      const g = boot();
      while (!g.pc.machine.stopReason) g.pc.machine.run(slice);
      expect(g.serial.text(), `slices of ${slice}`).toBe(reference.out);
      expect(digest(g.pc), `slices of ${slice}`).toBe(reference.digest);
    }
  });

  it('restoring at any instruction continues exactly as the uninterrupted run', async () => {
    const points = [1, 2, 3, 17, 500, 4111, 4112, 5000, 9999];
    for (let i = 1; i <= 12; i++) points.push(Math.floor((reference.instructions * i) / 13) + i);
    // and three instructions that are a HLT: the CPU waits there for a timer
    const h = boot();
    for (const at of [20_000, 50_000, 90_000]) {
      runTo(h.pc, at);
      while (!h.pc.cpu.halted) h.pc.machine.run(1);
      points.push(h.pc.cpu.instructionCount);
    }
    let haltedSeen = 0;
    for (const n of points) {
      const a = boot();
      runTo(a.pc, n);
      expect(a.pc.cpu.instructionCount).toBe(n);
      if (a.pc.cpu.halted) haltedSeen++;
      const before = a.serial.text();
      const b = await restore(await snapshotOf(a.pc));
      expect(b.pc.cpu.instructionCount).toBe(n);
      runTo(b.pc);
      expect(before + b.serial.text(), `restored at ${n}`).toBe(reference.out);
      expect(b.pc.machine.stopReason, `restored at ${n}`).toEqual(reference.stop);
      expect(digest(b.pc), `restored at ${n}`).toBe(reference.digest);
    }
    expect(haltedSeen).toBeGreaterThan(0); // some points fall on the halted CPU waiting for a timer
  });

  it('carries the TLB: with it flushed after the restore the guest would see the new mapping', async () => {
    const a = boot();
    runTo(a.pc, Math.floor(reference.instructions / 2));
    const b = await restore(await snapshotOf(a.pc));
    b.pc.cpu.flushTlb(true);
    runTo(b.pc);
    expect(b.serial.text()).toContain('B');
  });

  it('keeps the x87 registers bit for bit (NaN payload, -0, infinity)', async () => {
    const a = boot();
    runTo(a.pc, Math.floor(reference.instructions / 3));
    const b = await restore(await snapshotOf(a.pc));
    expect(b.pc.cpu.fpu.saveState()).toEqual(a.pc.cpu.fpu.saveState());
    runTo(b.pc);
    const v = new DataView(b.pc.mem.mem8.buffer, 0x6100, 24);
    expect(v.getFloat64(0, true)).toBe(Infinity);
    expect(Object.is(v.getFloat64(8, true), -0)).toBe(true);
    expect(v.getUint32(16, true).toString(16)).toBe('beef1234'); // the NaN's payload
    expect(v.getUint32(20, true).toString(16)).toBe('7ff8dead');
  });

  it('restores a snapshot twice to the same continuation', async () => {
    const a = boot();
    runTo(a.pc, 33_333);
    const bytes = await snapshotOf(a.pc);
    const b = await restore(bytes);
    const c = await restore(bytes);
    runTo(b.pc);
    runTo(c.pc);
    expect(b.serial.text()).toBe(c.serial.text());
    expect(digest(b.pc)).toBe(digest(c.pc));
  });

  it('reads the same bytes with the Compression Streams API (the browser host) as with zlib', async () => {
    const a = boot();
    runTo(a.pc, 50_000);
    const before = a.serial.text();
    const web = compressionStreamCompressor();
    const b = await restore(await snapshotOf(a.pc, zlib), web);
    const c = await restore(await snapshotOf(a.pc, web), zlib);
    runTo(b.pc);
    runTo(c.pc);
    expect(before + b.serial.text()).toBe(reference.out);
    expect(before + c.serial.text()).toBe(reference.out);
  });

  it('carries the timers in flight (PIT, APIC timer, UART timeout) and the clock', async () => {
    const a = boot();
    // once the guest turns the FIFOs on, the unread host input arms the UART's character timeout
    const uartIn = (pc: Pc): number => (pc.com1.saveState() as { timeoutIn: number }).timeoutIn;
    while (uartIn(a.pc) < 0 && !a.pc.machine.stopReason) a.pc.machine.run(100);
    const s1 = (await restore(await snapshotOf(a.pc))).pc;
    expect(uartIn(s1)).toBeGreaterThan(0);
    expect(uartIn(s1)).toBe(uartIn(a.pc));
    runTo(a.pc, reference.instructions - 20_000);
    const b = (await restore(await snapshotOf(a.pc))).pc;
    const apic = b.apic!.saveState() as { timerDueIn: number; timerRunning: boolean };
    expect(apic.timerRunning).toBe(true);
    expect(apic.timerDueIn).toBe((a.pc.apic!.saveState() as { timerDueIn: number }).timerDueIn);
    expect(b.clock.now()).toBe(a.pc.clock.now());
    expect(b.clock.nextDeadline()).toBe(a.pc.clock.nextDeadline());
    expect(b.clock.now()).toBeGreaterThan(b.cpu.instructionCount); // time skipped while halted is kept
  });

  it('a real-time snapshot restores in real-time mode with its guest time', async () => {
    const a = boot(false);
    a.pc.clock.setRunning(true);
    runTo(a.pc, 30_000);
    a.pc.clock.setRunning(false);
    const t = a.pc.clock.now();
    const bytes = await snapshotOf(a.pc);
    expect(parseSnapshot(bytes).meta.mode).toBe('real-time');
    const b = await restore(bytes);
    expect(b.pc.clock.deterministic).toBe(false);
    expect(b.pc.clock.now()).toBe(t);
    b.pc.clock.setRunning(true);
    runTo(b.pc);
    expect(b.pc.machine.stopReason).toMatchObject({ kind: 'exit', code: 0x43 });
  });
});

describe('bad snapshots', () => {
  let good: Uint8Array;
  const load = async (): Promise<Uint8Array> => (good ??= await snapshotOf(boot().pc));
  const problem = (bytes: Uint8Array): string => {
    try {
      parseSnapshot(bytes);
    } catch (e) {
      expect(e).toBeInstanceOf(SnapshotError);
      return (e as Error).message;
    }
    return 'no error';
  };
  /** the header with a new version field and a matching header checksum */
  const withVersion = (bytes: Uint8Array, v: number): Uint8Array => {
    const b = bytes.slice();
    const dv = new DataView(b.buffer);
    dv.setUint32(8, v, true);
    dv.setUint32(24, crc32(b.subarray(0, 24)), true);
    return b;
  };

  it('names the problem in one line', async () => {
    const b = await load();
    expect(problem(b)).toBe('no error');
    expect(problem(new TextEncoder().encode('hello world, not a snapshot at all'))).toMatch(/^not an x86vm snapshot \(wrong magic number\)$/);
    expect(problem(b.subarray(0, 5))).toMatch(/^truncated: 5 bytes/);
    expect(problem(b.subarray(0, 20))).toMatch(/^truncated: 20 bytes/);
    expect(problem(b.subarray(0, b.length - 1))).toMatch(new RegExp(`^truncated: ${b.length - 1} bytes of ${b.length} bytes$`));
    expect(problem(b.subarray(0, 1000))).toMatch(/^truncated/);
    const longer = new Uint8Array(b.length + 3);
    longer.set(b);
    expect(problem(longer)).toMatch(/^3 bytes of unexpected data after the end/);
    expect(problem(withVersion(b, 2))).toMatch(/^snapshot format version 2 is newer than this x86vm reads \(version 1\)/);
    expect(problem(withVersion(b, 0))).toMatch(/^unknown snapshot format version 0/);
    const snap = parseSnapshot(b);
    for (const s of snap.sections) {
      const bad = b.slice();
      bad[s.offset + (s.storedLength >> 1)] ^= 0x40;
      expect(problem(bad)).toBe(`section '${s.name}': checksum mismatch (the file is corrupted)`);
    }
    const badHeader = b.slice();
    badHeader[13] ^= 1;
    expect(problem(badHeader)).toBe('header checksum mismatch (the file is corrupted)');
    for (const msg of [problem(b.subarray(0, 7)), problem(withVersion(b, 9))]) expect(msg).not.toContain('\n');
  });

  it('refuses unknown sections unless they are optional, and disk overlays that belong to no disk', async () => {
    const pc = boot().pc;
    const make = async (name: string, optional: boolean): Promise<Uint8Array> => {
      const cap = captureSnapshot({ pc, extra: [{ name, data: new Uint8Array([1, 2, 3]), optional }] });
      const { parts, size } = await encodeSnapshot(cap, zlib);
      return joinParts(parts, size);
    };
    expect(problem(await make('future-thing', false))).toBe("unknown section 'future-thing' (written by a newer x86vm?)");
    expect(problem(await make('future-thing', true))).toBe('no error');
    expect(problem(await make('disk:ide0', false))).toBe("section 'disk:ide0' belongs to no disk of the snapshot (corrupted)");
  });

  it('refuses to load into a different machine and leaves nothing half-loaded before its checks', async () => {
    const snap = parseSnapshot(await load());
    const other = createPc({ memSize: MEM * 2, deterministic: true });
    await expect(restoreMachine(snap, other.machine, zlib)).rejects.toThrow(/taken with 8 MiB of RAM, this machine has 16 MiB/);
    const rt = createPc({ memSize: MEM, deterministic: false });
    await expect(restoreMachine(snap, rt.machine, zlib)).rejects.toThrow(/taken in deterministic mode, this machine runs in real-time mode/);
    const noApic = createPc({ memSize: MEM, deterministic: true, apic: false });
    await expect(restoreMachine(snap, noApic.machine, zlib)).rejects.toThrow(/taken with the devices \[.*lapic.*\], this machine has/);
    expect(noApic.cpu.instructionCount).toBe(0);
  });

  it('disk references: a missing or changed image or parent is named (more in snapshot-disk.test.ts)', async () => {
    const sha = (c: string): string => c.repeat(64);
    const refs: DiskRef[] = [
      {
        id: 'ide0', controller: 'ide', media: 'disk', index: 0, file: 'disk.vhd', format: 'vhd-differencing', readOnly: false,
        overlay: false, sectors: 2, overlaySectors: 0,
        files: [{ path: '/vm/disk.vhd', size: 1000, sha256: sha('a') }, { path: '/vm/base.raw', size: 1024, sha256: sha('b') }],
      },
    ];
    const same = (r: DiskRef, i: number) => ({ size: r.files[i].size, sha256: r.files[i].sha256 });
    expect(await checkDiskRefs(refs, same)).toBeNull();
    expect(await checkDiskRefs(refs, (r, i) => (i === 0 ? null : same(r, i)))).toBe("disk ide0: its image 'disk.vhd' is missing");
    expect(await checkDiskRefs(refs, (r, i) => (i === 0 ? { size: 999, sha256: sha('a') } : same(r, i)))).toBe('disk ide0 (disk.vhd) has changed since the snapshot was taken (999 bytes, was 1000)');
    expect(await checkDiskRefs(refs, (r, i) => (i === 0 ? { size: 1000, sha256: sha('c') } : same(r, i)))).toBe('disk ide0 (disk.vhd) has changed since the snapshot was taken');
    expect(await checkDiskRefs(refs, async (r, i) => (i === 1 ? { size: 1024, sha256: sha('c') } : same(r, i)))).toBe(
      "disk ide0 (disk.vhd): its parent image '/vm/base.raw' has changed since the snapshot was taken",
    );
  });
});

describe('CPU, FPU and clock state', () => {
  it('round-trips every CPU field through JSON', async () => {
    const a = boot();
    runTo(a.pc, reference.instructions - 20_000);
    const s = JSON.parse(JSON.stringify(a.pc.cpu.saveState()));
    const b = boot();
    b.pc.cpu.loadState(s);
    expect(b.pc.cpu.saveState()).toEqual(a.pc.cpu.saveState());
    expect((s.tlb as number[]).length).toBeGreaterThan(2 * 64); // the 64 pages the guest touches, and more
  });

  it('a clock refuses a state from the other mode', () => {
    const det = new Clock(true);
    const rt = new Clock(false);
    expect(() => rt.loadState(det.saveState())).toThrow(/saved in deterministic mode/);
  });
});

describe('the Node host side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'x86vm-snap-'));

  it('writes atomically and reports unwritable places in one line', async () => {
    const path = join(dir, 'a.snap');
    writeFileSync(path, 'old');
    await writeFileAtomic(path, [new Uint8Array([1, 2]), new Uint8Array([3])]);
    expect([...readFileSync(path)]).toEqual([1, 2, 3]);
    await expect(writeFileAtomic(join(dir, 'no', 'such', 'x.snap'), [new Uint8Array(1)])).rejects.toThrow(
      /^cannot write snapshot '.*x\.snap': no such file or directory$/,
    );
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('reads a file with errors naming it, and describes it', async () => {
    const path = join(dir, 'g.snap');
    writeFileSync(path, await snapshotOf(boot().pc));
    const snap = await readSnapshotFile(path);
    const info = formatSnapshotInfo(path, snap);
    expect(info).toMatch(/^format: +x86vm snapshot, version 1$/m);
    expect(info).toMatch(/^mode: +deterministic$/m);
    expect(info).toMatch(/^memory: +8 MiB/m);
    expect(info).toMatch(/^ {2}ram +[\d.]+ (?:B|KiB) +8\.0 MiB {2}[0-9a-f]{8}/m);
    expect(info).toMatch(/^ {2}rom:bios /m);
    const bad = join(dir, 'bad.snap');
    const bytes = readFileSync(path);
    writeFileSync(bad, bytes.subarray(0, bytes.length - 10));
    await expect(readSnapshotFile(bad)).rejects.toThrow(new RegExp(`^snapshot '${bad}': truncated: `));
    await expect(readSnapshotFile(join(dir, 'missing.snap'))).rejects.toThrow(SnapshotFileError);
    expect(interactiveSnapshotName(() => false, new Date(2026, 0, 2, 3, 4, 5))).toBe('x86vm-20260102-030405.snap');
    expect(interactiveSnapshotName((n) => n === 'x86vm-20260102-030405.snap', new Date(2026, 0, 2, 3, 4, 5))).toBe('x86vm-20260102-030405-2.snap');
  });

  it('Ctrl-A S and Ctrl-A P are console escapes', () => {
    const f = new EscapeFilter();
    expect(f.feed([1, 0x73, 0x41, 1, 0x50])).toEqual({ input: [0x41], actions: [{ kind: 'snapshot' }, { kind: 'pause' }] });
  });

  const biosFile = join(dir, 'guest.bin');
  writeFileSync(biosFile, BIOS);
  const opts = (extra: string[]): RunOptions => {
    const cmd = parseCommandLine(['run', '--bios', biosFile, '--mem', '8M', '--serial', 'stdio', ...extra]);
    if (cmd.command !== 'run') throw new Error('not a run');
    return cmd.options;
  };
  const decode = (chunks: Uint8Array[]): string => chunks.map((c) => String.fromCharCode(...c)).join('');

  it('runVm: --save-at saves and stops, --restore (BIOS ROM from the snapshot) finishes the run', async () => {
    const snapPath = join(dir, 'run.snap');
    const out1: Uint8Array[] = [];
    const r1 = await runVm(opts(['--deterministic', '--save-state', snapPath, '--save-at', '54321']), { stdout: (b) => out1.push(b) });
    expect(r1.exitCode).toBe(0);
    expect(r1.message).toMatch(/snapshot saved to '.*run\.snap' at instruction 54321/);
    expect(r1.snapshot?.instructions).toBe(54321);
    const cmd = parseCommandLine(['run', '--restore', snapPath, '--serial', 'stdio']);
    if (cmd.command !== 'run') throw new Error('not a run');
    const out2: Uint8Array[] = [];
    const r2 = await runVm(cmd.options, { stdout: (b) => out2.push(b) });
    expect(r2.exitCode).toBe(0x43);
    expect(decode(out1) + decode(out2)).toBe(reference.out);
    // --mem that disagrees with the snapshot
    const bad = parseCommandLine(['run', '--restore', snapPath, '--mem', '16M']);
    if (bad.command !== 'run') throw new Error('not a run');
    const r3 = await runVm(bad.options, { stdout: () => {} });
    expect(r3.exitCode).toBe(2);
    expect(r3.message).toBe(`x86vm: --mem 16 MiB conflicts with snapshot '${snapPath}', taken with 8 MiB of RAM (leave --mem out)`);
  });

  it('runVm: --save-on saves when the output matches', async () => {
    const snapPath = join(dir, 'on.snap');
    const r = await runVm(opts(['--deterministic', '--save-state', snapPath, '--save-on', 'A7A\\*']), { stdout: () => {} });
    expect(r.exitCode).toBe(0);
    const snap = await readSnapshotFile(snapPath);
    expect(snap.meta.instructions).toBe(r.snapshot?.instructions);
    expect(snap.meta.instructions).toBeLessThan(reference.instructions);
  });

  it('runVm: a snapshot requested while running (Ctrl-A S) is saved and the run goes on unchanged', async () => {
    const notices: string[] = [];
    const out: Uint8Array[] = [];
    let atSave = '';
    let control: VmControl | null = null;
    const r = await runVm(opts(['--deterministic']), {
      snapshotDir: dir,
      notice: (t) => {
        notices.push(t);
        atSave = decode(out);
      },
      stdout: (b) => {
        // ask (as Ctrl-A S does) once some output has appeared, after the first slice
        if (!out.length) control!.saveSnapshot();
        out.push(b);
      },
      onReady: (vm) => {
        control = vm;
      },
    });
    expect(atSave.length).toBeGreaterThan(100);
    expect(r.exitCode).toBe(0x43);
    expect(decode(out)).toBe(reference.out);
    expect(notices).toHaveLength(1);
    const m = /^x86vm: snapshot saved to (.*x86vm-\d{8}-\d{6}(?:-\d+)?\.snap) \(instruction \d+/.exec(notices[0]);
    expect(m, notices[0]).not.toBeNull();
    expect(existsSync(m![1])).toBe(true);
    const cmd = parseCommandLine(['run', '--restore', m![1], '--serial', 'stdio']);
    if (cmd.command !== 'run') throw new Error('not a run');
    const rest: Uint8Array[] = [];
    await runVm(cmd.options, { stdout: (b) => rest.push(b) });
    expect(atSave + decode(rest)).toBe(reference.out);
  });

  it("runVm: Ctrl-A P stops guest time until resumed", { timeout: 20_000 }, async () => {
    const seen: { now: number; count: number }[] = [];
    const r = await runVm(opts([]), {
      stdout: () => {},
      onReady: (vm) => {
        const look = (): void => {
          seen.push({ now: vm.machine.clock.now(), count: vm.machine.cpu.instructionCount });
        };
        // run a little, pause, look twice, resume, look again, stop
        setTimeout(() => {
          expect(vm.togglePause()).toBe(true);
          look();
        }, 100);
        setTimeout(look, 400);
        setTimeout(() => expect(vm.togglePause()).toBe(false), 450);
        setTimeout(() => {
          look();
          vm.stop(5);
        }, 650);
      },
    });
    expect(r.exitCode).toBe(5);
    expect(seen).toHaveLength(3);
    expect(seen[0].count).toBeGreaterThan(0);
    expect(seen[1]).toEqual(seen[0]); // paused: neither guest time nor instructions moved in 300 ms
    expect(seen[2].now).toBeGreaterThan(seen[1].now);
  });
});
