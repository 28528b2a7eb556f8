/**
 * CPU unit tests: small nasm programs run on a bare machine, checking registers, flags and memory.
 * (The conformance suites compare whole programs against qemu-system-i386; these pin down basics fast.)
 */
import { describe, expect, it } from 'vitest';
import { runFlat32, runReal } from '../helpers/asm';
import { EAX, EBX, ECX, EDX, ESI, EDI, ESP, F_CF, F_ZF, F_SF, F_OF, F_PF, F_AF } from '../../core/defs';

const u = (v: number) => v >>> 0;

describe('real mode basics', () => {
  it('moves, adds and halts', () => {
    const { m } = runReal(`
      mov ax, 0x1234
      mov bx, 0x0101
      add ax, bx
      mov cl, 0xff
      inc cl
      hlt`);
    const c = m.cpu;
    expect(c.r16[EAX * 2]).toBe(0x1335);
    expect(c.r8[4]).toBe(0); // CL
    expect(c.getFlags() & F_ZF).toBe(F_ZF);
  });

  it('computes flags of ADD/SUB/ADC/SBB like the SDM', () => {
    const { m } = runReal(`
      mov al, 0x7f
      add al, 1        ; OF SF AF, no CF
      pushf
      mov al, 0
      sub al, 1        ; CF SF AF PF
      pushf
      stc
      mov ax, 0xffff
      adc ax, 0        ; CF ZF AF PF
      pushf
      stc
      mov eax, 0
      sbb eax, 0       ; CF SF AF PF
      pushf
      hlt`);
    const c = m.cpu;
    const sp = c.r16[ESP * 2];
    const f = (i: number) => c.mem.read16(sp + i * 2) & (F_CF | F_ZF | F_SF | F_OF | F_PF | F_AF);
    expect(f(3)).toBe(F_OF | F_SF | F_AF);
    expect(f(2)).toBe(F_CF | F_SF | F_AF | F_PF);
    expect(f(1)).toBe(F_CF | F_ZF | F_AF | F_PF);
    expect(f(0)).toBe(F_CF | F_SF | F_AF | F_PF);
  });

  it('calls, returns, loops and uses the stack', () => {
    const { m } = runReal(`
      xor ax, ax
      mov cx, 10
    again:
      call addone
      loop again
      hlt
    addone:
      push bx
      mov bx, 1
      add ax, bx
      pop bx
      ret`);
    expect(m.cpu.r16[0]).toBe(10);
    expect(m.cpu.r16[ESP * 2]).toBe(0x7000);
  });

  it('delivers INT n through the IVT and IRETs back', () => {
    const { m } = runReal(`
      mov word [0x80*4], handler
      mov word [0x80*4+2], 0
      mov ax, 1
      int 0x80
      add ax, 0x100
      hlt
    handler:
      add ax, 0x10
      iret`);
    expect(m.cpu.r16[0]).toBe(0x111);
  });

  it('divides and raises #DE on overflow', () => {
    const { m } = runReal(`
      mov word [0], de_handler
      mov word [2], 0
      mov dx, 0
      mov ax, 100
      mov bx, 7
      div bx            ; ax=14 dx=2
      mov si, ax
      mov di, dx
      mov dx, 1
      mov ax, 0
      mov bx, 1
      div bx            ; quotient 0x10000 → #DE
      hlt
    de_handler:
      mov cx, 0xdead
      hlt`);
    expect(m.cpu.r16[ESI * 2]).toBe(14);
    expect(m.cpu.r16[EDI * 2]).toBe(2);
    expect(m.cpu.r16[ECX * 2]).toBe(0xdead);
  });

  it('runs REP MOVSB/STOSW and REPE CMPSB', () => {
    const { m } = runReal(`
      cld
      mov di, 0x1000
      mov ax, 0x4142
      mov cx, 8
      rep stosw
      mov si, 0x1000
      mov di, 0x2000
      mov cx, 16
      rep movsb
      mov byte [0x2005], 0
      mov si, 0x1000
      mov di, 0x2000
      mov cx, 16
      repe cmpsb
      hlt`);
    const c = m.cpu;
    expect(c.mem.read8(0x1000)).toBe(0x42);
    expect(c.mem.read8(0x200f)).toBe(0x41);
    expect(c.r16[ECX * 2]).toBe(10); // stopped after the 6th byte
    expect(c.r16[ESI * 2]).toBe(0x1006);
  });
});

describe('32-bit protected mode', () => {
  it('multiplies and divides 64-bit values', () => {
    const { m } = runFlat32(`
      mov eax, 0xdeadbeef
      mov ecx, 0x12345678
      mul ecx               ; edx:eax = 0x0fd5bdeee5cf3b62? computed below
      mov esi, eax
      mov edi, edx
      mov ecx, 0x12345678
      div ecx               ; back to 0xdeadbeef, remainder 0
      mov ebx, eax
      mov eax, -7
      cdq
      mov ecx, 2
      idiv ecx              ; -3 rem -1
      hlt`);
    const c = m.cpu;
    const prod = BigInt(0xdeadbeef) * BigInt(0x12345678);
    expect(u(c.regs[ESI])).toBe(Number(prod & 0xffffffffn));
    expect(u(c.regs[EDI])).toBe(Number(prod >> 32n));
    expect(u(c.regs[EBX])).toBe(0xdeadbeef);
    expect(c.regs[EAX]).toBe(-3);
    expect(c.regs[EDX]).toBe(-1);
  });

  it('shifts, rotates and bit scans', () => {
    const { m } = runFlat32(`
      mov eax, 0x80000001
      rol eax, 1          ; 3, CF=1
      mov ebx, eax
      mov ecx, 0xf0
      bsf edx, ecx        ; 4
      bsr esi, ecx        ; 7
      mov edi, 0x12345678
      bswap edi
      shld edi, ebx, 4    ; 0x87654321 ... shifted
      hlt`);
    const c = m.cpu;
    expect(c.regs[EBX]).toBe(3);
    expect(c.regs[EDX]).toBe(4);
    expect(c.regs[ESI]).toBe(7);
    expect(u(c.regs[EDI])).toBe(u((0x78563412 << 4) | (3 >>> 28)));
  });

  it('enables paging and takes a page fault with the right CR2 and error code', () => {
    const { m } = runFlat32(`
      ; page directory at 0x100000, one page table at 0x101000 identity-mapping 0-4 MiB
      mov edi, 0x101000
      mov eax, 0x007       ; present, writable, user
      mov ecx, 1024
    fill:
      mov [edi], eax
      add eax, 0x1000
      add edi, 4
      loop fill
      mov dword [0x101000 + 0x200*4], 0x200005   ; page 0x200000 read-only (user)
      mov dword [0x101000 + 0x300*4], 0           ; page 0x300000 not present
      mov dword [0x100000], 0x101007
      ; IDT at 0x2000 with a #PF handler
      mov eax, pf_handler
      mov word [0x2000 + 14*8], ax
      mov word [0x2000 + 14*8 + 2], 0x08
      mov word [0x2000 + 14*8 + 4], 0x8e00
      shr eax, 16
      mov word [0x2000 + 14*8 + 6], ax
      lidt [idtr]
      mov eax, 0x100000
      mov cr3, eax
      mov eax, cr0
      or eax, 0x80010000   ; PG | WP
      mov cr0, eax
      mov ebx, [0x300010]  ; not present → #PF, error 0
      hlt
    pf_handler:
      pop esi              ; error code
      mov edi, cr2
      hlt
    idtr:
      dw 256*8-1
      dd 0x2000`);
    const c = m.cpu;
    expect(c.regs[ESI]).toBe(0);
    expect(u(c.regs[EDI])).toBe(0x300010);
    // the PDE's accessed bit is set (the walk used it for the code and data accesses)
    expect(c.mem.read32(0x100000) & 0x20).toBe(0x20);
  });
});

describe('model-specific registers', () => {
  it('reads IA32_PLATFORM_ID (0x17) as 0, as Linux\'s microcode driver does on family 6', () => {
    const { m } = runFlat32(`
      mov eax, 0xffffffff
      mov edx, 0xffffffff
      mov ecx, 0x17
      rdmsr
      mov ebx, 0x5a5a
      hlt`);
    const c = m.cpu;
    expect(m.stopReason).toBeFalsy();
    expect(c.regs[EBX]).toBe(0x5a5a);
    expect(c.regs[EAX]).toBe(0);
    expect(c.regs[EDX]).toBe(0);
  });
});
