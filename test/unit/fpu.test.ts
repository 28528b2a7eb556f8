/**
 * x87 FPU unit tests: the 80-bit conversion helpers directly, then small nasm programs on a bare machine
 * (loads/stores round-trips, rounding control, BCD, FXAM classes, environment layouts, exceptions).
 */
import { describe, expect, it } from 'vitest';
import { runFlat32, runReal } from '../helpers/asm';
import { EAX, F_CF, F_PF, F_ZF } from '../../core/defs';
import { X80, doubleToX80, x80ToDouble, roundX80, classifyX80, CLS_DENORMAL, CLS_NORMAL, CLS_UNSUPPORTED, CLS_SNAN, RC_NEAREST, RC_ZERO } from '../../core/fpu';
import type { Machine } from '../../core/machine';

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

function bitsOf(d: number): [number, number] {
  f64[0] = d;
  return [u32[1], u32[0]];
}

/** bytes of memory as a hex string (little-endian order as stored) */
function hex(m: Machine, addr: number, len: number): string {
  let s = '';
  for (let i = 0; i < len; i++) s += m.mem.read8(addr + i).toString(16).padStart(2, '0');
  return s;
}

/** a 10-byte extended real as nasm `dq mantissa` + `dw se` */
function ext(se: number, mant: string): string {
  return `dq 0x${mant}\n dw 0x${se.toString(16)}`;
}

describe('80-bit conversion helpers', () => {
  it('converts doubles to 80-bit and back exactly, including denormals, infinities and NaN payloads', () => {
    const values = [
      0, -0, 1, -1, 0.1, Math.PI, 1e308, -1.7976931348623157e308, 2.2250738585072014e-308, 5e-324, -5e-324,
      1.5e-315, Infinity, -Infinity, 123456789.123, 2 ** 52 + 1,
    ];
    for (const v of values) {
      doubleToX80(v);
      const back = x80ToDouble(X80[2], X80[1], X80[0]);
      expect(Object.is(back, v)).toBe(true);
    }
    doubleToX80(1);
    expect([X80[2], X80[1], X80[0]]).toEqual([0x3fff, 0x80000000, 0]);
    doubleToX80(5e-324); // 2^-1074
    expect([X80[2], X80[1], X80[0]]).toEqual([16383 - 1074, 0x80000000, 0]);
    // NaN payload: 0x7FF4_0000_0000_0001 (signalling, payload bit 0)
    u32[1] = 0x7ff40000;
    u32[0] = 1;
    doubleToX80(f64[0]);
    expect(X80[2]).toBe(0x7fff);
    expect(X80[1] >>> 0).toBe(0xa0000000);
    expect(X80[0]).toBe(0x800);
    expect(classifyX80(X80[2], X80[1], X80[0])).toBe(CLS_SNAN);
  });

  it('rounds 64-bit significands to doubles to nearest-even and per RC', () => {
    // 1 + 2^-53 (exactly half an ulp): ties to even → 1
    expect(x80ToDouble(0x3fff, 0x80000000, 0x400)).toBe(1);
    // 1 + 2^-53 + 2^-63: above half → 1 + 2^-52
    expect(x80ToDouble(0x3fff, 0x80000000, 0x401)).toBe(1 + 2 ** -52);
    // 1 + 3·2^-53: tie, odd → rounds up to 1 + 2^-51
    expect(x80ToDouble(0x3fff, 0x80000000, 0xc00)).toBe(1 + 2 ** -51);
    expect(roundX80(0x3fff, 0x80000000, 0x401, 53, -1022, 1023, RC_ZERO)).toBe(1);
    // huge exponents overflow, tiny ones become double denormals / zero
    expect(x80ToDouble(0x7ffe, 0x80000000, 0)).toBe(Infinity);
    expect(x80ToDouble(16383 - 1074, 0x80000000, 0)).toBe(5e-324);
    expect(x80ToDouble(16383 - 1076, 0x80000000, 0)).toBe(0);
    // classes
    expect(classifyX80(0, 0x1, 0)).toBe(CLS_DENORMAL);
    expect(classifyX80(0x3fff, 0x40000000, 0)).toBe(CLS_UNSUPPORTED); // unnormal
    expect(classifyX80(0x3fff, 0x80000000, 0)).toBe(CLS_NORMAL);
    expect(roundX80(0x3fff, 0xffffffff, 0xffffffff, 24, -126, 127, RC_NEAREST)).toBe(2);
  });
});

describe('x87 loads and stores', () => {
  it('round-trips 80-bit values exactly through FLD/FSTP m80, FLD ST(i), FXCH, FCHS, FSAVE/FRSTOR and FXSAVE/FXRSTOR', () => {
    const vals = [
      [0x3fff, 'ffffffffffffffff'], // 2 − 2^-63: not a double
      [0x7ffe, '8000000000000001'], // beyond double range
      [0x0000, '0000000000000123'], // 80-bit denormal
      [0x0000, '8000000000000000'], // pseudo-denormal
      [0x3fff, '4000000000000000'], // unnormal
      [0x7fff, '8000000000000123'], // SNaN with payload
      [0xffff, 'c000000000000456'], // negative QNaN with payload
      [0x8001, '8000000000000000'], // smallest negative normal
    ] as const;
    const data = vals.map(([se, m]) => ext(se, m)).join('\n');
    const { m } = runFlat32(`
      finit
      mov esi, src
      mov edi, 0x20000
      mov ecx, 8
    l1:
      fld tword [esi]
      fld st0
      fxch st1
      fstp st1
      fchs
      fchs
      fstp tword [edi]
      add esi, 10
      add edi, 10
      loop l1
      ; through FSAVE/FRSTOR and FXSAVE/FXRSTOR
      mov esi, src
      mov ecx, 8
    l2:
      fld tword [esi]
      add esi, 10
      loop l2
      fsave [0x21000]
      frstor [0x21000]
      fxsave [0x22000]
      fninit
      fxrstor [0x22000]
      mov edi, 0x20100
      mov ecx, 8
    l3:
      fstp tword [edi]
      add edi, 10
      loop l3
      hlt
    align 16
    src:
      ${data}`);
    const expected = vals.map(([se, mant]) => {
      let s = '';
      for (let i = 7; i >= 0; i--) s += mant.slice(i * 2, i * 2 + 2);
      return s + (se & 0xff).toString(16).padStart(2, '0') + (se >> 8).toString(16).padStart(2, '0');
    });
    for (let i = 0; i < 8; i++) expect(hex(m, 0x20000 + i * 10, 10)).toBe(expected[i]);
    // loaded in order 0..7 → popped in reverse
    for (let i = 0; i < 8; i++) expect(hex(m, 0x20100 + i * 10, 10)).toBe(expected[7 - i]);
  });

  it('loads and stores integers exactly, including 64-bit values beyond 2^53', () => {
    const { m } = runFlat32(`
      finit
      fild qword [a]
      fistp qword [0x20000]
      fild qword [b]
      fistp qword [0x20008]
      fild qword [c]
      fistp qword [0x20010]
      fild word [d]
      fistp dword [0x20018]
      fild dword [e]
      fistp word [0x2001c]
      hlt
    a: dq 0x7fffffffffffffff
    b: dq 0x8000000000000000
    c: dq -1234567890123456789
    d: dw -32768
    e: dd 32768`);
    expect(hex(m, 0x20000, 8)).toBe('ffffffffffffff7f');
    expect(hex(m, 0x20008, 8)).toBe('0000000000000080');
    const big = m.mem.read32(0x20010) >>> 0;
    const bigHi = m.mem.read32(0x20014) >>> 0;
    // −1234567890123456789 = 0xEEDDEF0B82167EEB
    expect([bigHi, big]).toEqual([0xeeddef0b, 0x82167eeb]);
    expect(m.mem.read32(0x20018) | 0).toBe(-32768);
    // 32768 does not fit in m16: integer indefinite, IE set
    expect(m.mem.read16(0x2001c)).toBe(0x8000);
    expect(m.cpu.fpu.status() & 1).toBe(1);
  });

  it('honours rounding control in FIST, FRNDINT and stores to m32/m64', () => {
    const { m } = runFlat32(`
      finit
      mov edi, 0x20000
      xor ebx, ebx
    nextrc:
      mov ax, bx
      shl ax, 10
      or ax, 0x037f
      mov [cw], ax
      fldcw [cw]
      mov esi, vals
      mov ecx, 6
    nextv:
      fld qword [esi]
      fist dword [edi]
      frndint
      fistp dword [edi + 4]
      add edi, 8
      add esi, 8
      loop nextv
      fld1
      fld qword [third]
      fdivp st1, st0        ; 1/3 (inexact)
      fst dword [edi]
      fstp qword [edi + 4]
      add edi, 12
      inc ebx
      cmp ebx, 4
      jne nextrc
      hlt
    cw: dw 0
    align 8
    vals: dq 2.5, -2.5, 1.5, -0.4, 7.7, -7.7
    third: dq 3.0`);
    const exp = [
      [2, -2, 2, 0, 8, -8], // nearest even
      [2, -3, 1, -1, 7, -8], // down
      [3, -2, 2, 0, 8, -7], // up
      [2, -2, 1, 0, 7, -7], // zero
    ];
    let a = 0x20000;
    for (let rc = 0; rc < 4; rc++) {
      for (let i = 0; i < 6; i++) {
        expect(m.mem.read32(a)).toBe(exp[rc][i]);
        expect(m.mem.read32(a + 4)).toBe(exp[rc][i]);
        a += 8;
      }
      f64[0] = 1 / 3;
      const [h, l] = [u32[1], u32[0]];
      const f = m.mem.read32(a) >>> 0;
      // float(1/3) = 0x3EAAAAAB nearest/up, 0x3EAAAAAA down/zero
      expect(f).toBe(rc === 0 || rc === 2 ? 0x3eaaaaab : 0x3eaaaaaa);
      // double(1/3) = 0x3FD5555555555555 nearest/down/zero, ...56 up
      expect(m.mem.read32(a + 8) >>> 0).toBe(h);
      expect(m.mem.read32(a + 4) >>> 0).toBe(rc === 2 ? l + 1 : l);
      a += 12;
    }
  });

  it('stores m32 with overflow/underflow/precision flags and masked responses', () => {
    const { m } = runFlat32(`
      finit
      fld qword [big]
      fst dword [0x20000]      ; overflow → +inf, OE PE
      fnstsw [0x20010]
      fnclex
      fld qword [tiny]
      fst dword [0x20004]      ; tiny, inexact → UE PE, denormal result
      fnstsw [0x20012]
      fnclex
      fld1
      fst dword [0x20008]      ; exact: no flags
      fnstsw [0x20014]
      hlt
    big: dq 1e39
    tiny: dq 1.0e-40`);
    expect(m.mem.read32(0x20000) >>> 0).toBe(0x7f800000);
    expect(m.mem.read16(0x20010) & 0x3f).toBe(0x28);
    f64[0] = 0;
    const f32 = new Float32Array(1);
    f32[0] = 1e-40;
    expect(m.mem.read32(0x20004) >>> 0).toBe(new Uint32Array(f32.buffer)[0]);
    expect(m.mem.read16(0x20012) & 0x3f).toBe(0x30);
    expect(m.mem.read32(0x20008) >>> 0).toBe(0x3f800000);
    expect(m.mem.read16(0x20014) & 0x3f).toBe(0);
  });

  it('loads the constants exactly and rounds them per RC', () => {
    const { m } = runFlat32(`
      finit
      fldpi
      fstp tword [0x20000]
      fldl2t
      fstp tword [0x20010]
      fldln2
      fstp tword [0x20020]
      fldcw [down]
      fldpi
      fstp tword [0x20030]
      hlt
    down: dw 0x077f`);
    expect(hex(m, 0x20000, 10)).toBe('35c26821a2da0fc90040');
    expect(hex(m, 0x20010, 10)).toBe('fe8a1bcd4b789ad40040');
    expect(hex(m, 0x20020, 10)).toBe('ac79cfd1f71772b1fe3f');
    expect(hex(m, 0x20030, 10)).toBe('34c26821a2da0fc90040');
  });
});

describe('x87 BCD', () => {
  it('round-trips 18-digit BCD exactly and rounds FBSTP per RC', () => {
    const { m } = runFlat32(`
      finit
      fbld [bcd1]
      fbstp [0x20000]
      fbld [bcd2]
      fbstp [0x20010]
      fld qword [v]
      fbstp [0x20020]        ; 1234.5 → 1234 (nearest even)
      fld qword [huge]
      fbstp [0x20030]        ; ≥ 10^18 → BCD indefinite
      fld qword [negsmall]
      fbstp [0x20040]        ; −0.25 → −0
      hlt
    bcd1: db 0x99, 0x99, 0x99, 0x99, 0x99, 0x99, 0x99, 0x99, 0x99, 0x00
    bcd2: db 0x21, 0x43, 0x65, 0x87, 0x09, 0x21, 0x43, 0x65, 0x87, 0x80
    v: dq 1234.5
    huge: dq 1e18
    negsmall: dq -0.25`);
    expect(hex(m, 0x20000, 10)).toBe('99999999999999999900');
    expect(hex(m, 0x20010, 10)).toBe('21436587092143658780');
    expect(hex(m, 0x20020, 10)).toBe('34120000000000000000');
    expect(hex(m, 0x20030, 10)).toBe('00000000000000c0ffff');
    expect(hex(m, 0x20040, 10)).toBe('00000000000000000080');
  });

  it('loads BCD as the right value', () => {
    const { m } = runFlat32(`
      finit
      fbld [b]
      hlt
    b: db 0x21, 0x43, 0x65, 0x87, 0x09, 0, 0, 0, 0, 0x80`);
    expect(m.cpu.fpu.getST(0)).toBe(-987654321);
  });
});

describe('x87 classification and comparisons', () => {
  it('FXAM reports every class', () => {
    const { m } = runFlat32(`
      finit
      mov esi, vals
      mov edi, 0x20000
      mov ecx, 7
    l:
      fld tword [esi]
      fxam
      fnstsw [edi]
      fstp st0
      add esi, 10
      add edi, 2
      loop l
      fxam                       ; empty
      fnstsw [edi]
      hlt
    vals:
      ${ext(0x3fff, '4000000000000000')}
      ${ext(0x7fff, 'c000000000000000')}
      ${ext(0xbfff, '8000000000000000')}
      ${ext(0x7fff, '8000000000000000')}
      ${ext(0x8000, '0000000000000000')}
      ${ext(0x0000, '0000000000000001')}
      ${ext(0x7ffe, 'ffffffffffffffff')}`);
    const cc = (i: number) => m.mem.read16(0x20000 + i * 2) & 0x4700;
    expect(cc(0)).toBe(0x0000); // unsupported
    expect(cc(1)).toBe(0x0100); // NaN
    expect(cc(2)).toBe(0x0600); // negative normal (C2, C1)
    expect(cc(3)).toBe(0x0500); // infinity
    expect(cc(4)).toBe(0x4200); // negative zero
    expect(cc(5)).toBe(0x4400); // denormal
    expect(cc(6)).toBe(0x0400); // largest normal
    expect(cc(7) & 0x4500).toBe(0x4100); // empty
  });

  it('FCOM sets C3/C2/C0, FCOMI sets ZF/PF/CF, FUCOM is quiet on QNaN', () => {
    const { m } = runFlat32(`
      finit
      fld1
      fldz
      fcom st1                   ; 0 < 1 → C0
      fnstsw [0x20000]
      fcomi st0, st1
      pushfd
      pop dword [0x20004]
      fxch
      fcomi st0, st1             ; 1 > 0
      pushfd
      pop dword [0x20008]
      fld st0
      fucomip st0, st1           ; equal
      pushfd
      pop dword [0x2000c]
      fld tword [qnan]
      fucom st1
      fnstsw [0x20010]           ; unordered, no IE
      fcom st1
      fnstsw [0x20012]           ; unordered, IE
      hlt
    qnan: ${ext(0x7fff, 'c000000000000000')}`);
    expect(m.mem.read16(0x20000) & 0x4500).toBe(0x0100);
    expect(m.mem.read32(0x20004) & (F_ZF | F_PF | F_CF)).toBe(F_CF);
    expect(m.mem.read32(0x20008) & (F_ZF | F_PF | F_CF)).toBe(0);
    expect(m.mem.read32(0x2000c) & (F_ZF | F_PF | F_CF)).toBe(F_ZF);
    expect(m.mem.read16(0x20010) & 0x4501).toBe(0x4500);
    expect(m.mem.read16(0x20012) & 0x4501).toBe(0x4501);
  });

  it('reports stack overflow and underflow with SF and C1, and pushes the indefinite when masked', () => {
    const { m } = runFlat32(`
      finit
      fstp st0                   ; underflow (pop of an empty register)
      fnstsw [0x20000]
      fninit
      mov ecx, 9
    l:
      fld1
      loop l                     ; the ninth push overflows
      fnstsw [0x20002]
      fstp qword [0x20008]
      hlt`);
    expect(m.mem.read16(0x20000) & 0x0241).toBe(0x0041);
    expect(m.mem.read16(0x20002) & 0x0241).toBe(0x0241);
    expect(m.mem.read32(0x2000c) >>> 0).toBe(0xfff80000);
  });
});

describe('x87 arithmetic', () => {
  it('computes basic arithmetic and sets PE/C1 like the hardware', () => {
    const { m } = runFlat32(`
      finit
      fld qword [a]
      fadd qword [b]             ; 0.1 + 0.2
      fstp qword [0x20000]
      fnstsw [0x20040]
      fld1
      fidiv dword [three]
      fstp qword [0x20008]
      fld qword [a]
      fmul st0, st0
      fsqrt
      fstp qword [0x20010]
      fild dword [three]
      fisubr word [ten]          ; 10 − 3
      fistp dword [0x20018]
      fnclex
      fld1
      fldz
      fdivp st1, st0             ; 1/0 masked → +inf, ZE
      fstp qword [0x20020]
      fnstsw [0x20042]
      hlt
    a: dq 0.1
    b: dq 0.2
    three: dd 3
    ten: dw 10`);
    const rd = (a: number) => {
      u32[0] = m.mem.read32(a);
      u32[1] = m.mem.read32(a + 4);
      return f64[0];
    };
    expect(rd(0x20000)).toBe(0.1 + 0.2);
    expect(m.mem.read16(0x20040) & 0x20).toBe(0x20);
    expect(rd(0x20008)).toBe(1 / 3);
    expect(rd(0x20010)).toBe(Math.sqrt(0.1 * 0.1));
    expect(m.mem.read32(0x20018)).toBe(7);
    expect(rd(0x20020)).toBe(Infinity);
    expect(m.mem.read16(0x20042) & 0x3f).toBe(0x04);
  });

  it('computes transcendental functions, FPREM quotient bits, FSCALE and FXTRACT', () => {
    const { m } = runFlat32(`
      finit
      fld qword [x]
      fsin
      fstp qword [0x20000]
      fld qword [x]
      fptan
      fstp qword [0x20008]       ; 1.0
      fstp qword [0x20010]       ; tan
      fld qword [x]
      fld qword [y]
      fpatan
      fstp qword [0x20018]
      fld qword [three]
      fld qword [big]
      fprem                      ; 23 mod 3 = 2, q = 7
      fnstsw [0x20040]
      fstp qword [0x20020]
      fstp st0
      fld qword [three]
      fld qword [x]
      fscale                     ; 0.5 · 2^3
      fstp qword [0x20028]
      fstp st0
      fld qword [big]
      fxtract
      fstp qword [0x20030]       ; significand 1.4375
      fstp qword [0x20038]       ; exponent 4
      hlt
    x: dq 0.5
    y: dq 2.0
    three: dq 3.0
    big: dq 23.0`);
    const rd = (a: number) => {
      u32[0] = m.mem.read32(a);
      u32[1] = m.mem.read32(a + 4);
      return f64[0];
    };
    expect(rd(0x20000)).toBe(Math.sin(0.5));
    expect(rd(0x20008)).toBe(1);
    expect(rd(0x20010)).toBe(Math.tan(0.5));
    expect(rd(0x20018)).toBe(Math.atan2(0.5, 2)); // atan(ST1 / ST0)
    expect(rd(0x20020)).toBe(2);
    // q = 7: C0 = 1 (q2), C3 = 1 (q1), C1 = 1 (q0), C2 = 0 (complete)
    expect(m.mem.read16(0x20040) & 0x4700).toBe(0x4300);
    expect(rd(0x20028)).toBe(4);
    expect(rd(0x20030)).toBe(1.4375);
    expect(rd(0x20038)).toBe(4);
    expect(bitsOf(rd(0x20000))[0]).toBe(bitsOf(Math.sin(0.5))[0]);
  });
});

describe('x87 environment and exceptions', () => {
  it('stores the 32-bit protected-mode environment with FIP, FCS, FOP, FDP and FDS', () => {
    const { m } = runFlat32(`
      finit
      fld qword [val]
    here:
      fadd qword [val]
      fnstenv [0x20000]
      fnstcw [0x20020]
      hlt
    val: dq 1.0`);
    const r32 = (o: number) => m.mem.read32(0x20000 + o) >>> 0;
    expect(r32(0) & 0xffff).toBe(0x037f);
    expect(r32(4) & 0xffff).toBe(7 << 11); // TOP = 7
    expect(r32(8) & 0xffff).toBe(0x3fff); // ST0 valid, the rest empty
    const fadd = r32(12);
    expect(m.mem.read8(fadd)).toBe(0xdc); // FIP points at FADD m64
    expect(r32(16) & 0xffff).toBe(0x08); // FCS
    expect(r32(16) >>> 16).toBe(0x405); // FOP: DC 05 → (4 << 8) | 0x05
    expect(r32(20)).toBe(m.mem.read32(fadd + 2) >>> 0); // FDP = the displacement
    expect(r32(24) & 0xffff).toBe(0x10); // FDS
    // FNSTENV masks all exceptions
    expect(m.mem.read16(0x20020)).toBe(0x037f);
  });

  it('stores the 16-bit real-mode environment with linear pointers, and FLDENV/FRSTOR read it back', () => {
    const { m } = runReal(`
      mov ax, 0x0100
      mov ds, ax
      fninit
      fld qword [val - 0x1000]
      fnstenv [0x10]
      fnsave [0x40]
      frstor [0x40]
      fnsave [0x100]
      fldenv [0x10]
      fnstenv [0x200]
      hlt
    val: dq 2.0`);
    const base = 0x1000;
    const w = (o: number) => m.mem.read16(base + o);
    expect(w(0x10)).toBe(0x037f);
    expect(w(0x12) & 0x3800).toBe(0x3800);
    expect(w(0x14)).toBe(0x3fff);
    const ip = w(0x16) | ((w(0x18) >> 12) << 16); // linear FIP
    expect(m.mem.read8(ip)).toBe(0xdd); // FLD m64
    expect(w(0x18) & 0x7ff).toBe(0x506); // DD 06
    const dp = w(0x1a) | ((w(0x1c) >> 12) << 16);
    expect(dp).toBe(0x1000 + m.mem.read16(ip + 2)); // DS·16 + displacement
    // FSAVE → FRSTOR → FSAVE gives the same image; FLDENV → FNSTENV too
    expect(hex(m, base + 0x40, 94)).toBe(hex(m, base + 0x100, 94));
    expect(hex(m, base + 0x10, 14)).toBe(hex(m, base + 0x200, 14));
    // the register image: 2.0 = 4000 8000000000000000
    expect(hex(m, base + 0x40 + 14, 10)).toBe('00000000000000800040');
  });

  it('raises #MF at the next waiting instruction when CR0.NE=1 and leaves the destination unchanged', () => {
    const { m } = runReal(`
      xor ax, ax
      mov ds, ax
      mov word [16*4], handler
      mov word [16*4+2], 0
      mov eax, cr0
      or eax, 0x20
      mov cr0, eax
      fninit
      fldcw [cw]                 ; unmask ZE
      fld1
      fldz
      fdivp st1, st0             ; unmasked ZE: ST1 unchanged, no pop, ES set
      fnstsw [0x600]
      mov byte [0x602], 1
      fwait                      ; #MF here
      mov byte [0x603], 1
      hlt
    handler:
      mov byte [0x604], 1
      fnstsw [0x606]
      fnclex
      fstp qword [0x608]         ; 0.0 still on top
      fstp qword [0x610]         ; 1.0 unchanged
      hlt
    cw: dw 0x037b`);
    const mm = m.mem;
    expect(mm.read16(0x600) & 0x80ff).toBe(0x8084); // B, ES, ZE
    expect(mm.read8(0x602)).toBe(1);
    expect(mm.read8(0x603)).toBe(0);
    expect(mm.read8(0x604)).toBe(1);
    expect(mm.read32(0x60c) >>> 0).toBe(0);
    expect(mm.read32(0x614) >>> 0).toBe(0x3ff00000);
    expect(m.cpu.fpu.status() & 0x80).toBe(0);
  });

  it('asserts FERR# instead when CR0.NE=0, and FNINIT deasserts it', () => {
    const events: boolean[] = [];
    const { m } = runReal(`
      fninit
      fldcw [cw]
      fld1
      fldz
      fdivp st1, st0
      fld1                       ; waiting instruction: FERR#, continues
      fninit
      hlt
    cw: dw 0x037b`, { setup: (mm) => { mm.cpu.onFerr = (a) => events.push(a); } });
    expect(events).toEqual([true, false]);
    expect(m.cpu.fpu.status()).toBe(0);
  });

  it('FNSTSW AX, FXSAVE alignment and #UD for FISTTP', () => {
    const { m } = runFlat32(`
      mov dword [0x600], 0
      finit
      fld1
      fnstsw ax
      mov [0x20000], ax
      hlt`);
    expect(m.cpu.r16[EAX * 2] & 0x3800).toBe(7 << 11);
    expect(m.mem.read16(0x20000)).toBe(0x3800);
    // FISTTP (SSE3) and FXSAVE at a misaligned address fault: check through the fpu API directly
    const cpu = m.cpu;
    expect(() => cpu.fpu.fxsave(3, 0x20008)).toThrow();
    expect(cpu.excVector).toBe(13);
  });
});

describe('x87 exact arithmetic at the precision selected by PC', () => {
  // CW: 037F = PC extended, RC nearest, all masked; RC bits 10-11, PC bits 8-9
  const EXT = 0x037f, DBL = 0x027f, SGL = 0x007f;
  const DOWN = 0x400, UP = 0x800, ZERO = 0xc00;
  type Case = { name: string; cw: number; code: string; want: string; flags?: number; c1?: boolean };
  /** runs each case after FNINIT+FLDCW; returns the m80 result as "SE HI LO" and the status word before the store */
  function run(cases: Case[]) {
    const body = cases
      .map((c, i) => `
      fninit
      mov word [cwtmp], 0x${c.cw.toString(16)}
      fldcw [cwtmp]
      ${c.code}
      fnstsw [${0x2000a + i * 16}]
      fnclex
      fstp tword [${0x20000 + i * 16}]`)
      .join('\n');
    const { m } = runFlat32(`${body}
      hlt
    cwtmp: dw 0
    align 8
    three: dd 3
    big: dq 1e300
    half: dq 0.5
    two: dq 2.0
    e64: ${ext(0x3fbf, '8000000000000000')}
    e100: ${ext(0x3f9b, '8000000000000000')}
    onep: ${ext(0x3fff, '8000000000000001')}
    twom: ${ext(0x3fff, 'ffffffffffffffff')}
    minp: ${ext(0x0001, '8000000000000001')}
    min15: ${ext(0x0001, 'c000000000000000')}
    huge: ${ext(0x7ffe, '8000000000000000')}
    sq31: ${ext(0x3fff, '8000000200000002')}`, { max: 100_000 });
    const h8 = (v: number) => (v >>> 0).toString(16).toUpperCase().padStart(8, '0');
    for (const [i, c] of cases.entries()) {
      const a = 0x20000 + i * 16;
      const got = `${m.mem.read16(a + 8).toString(16).toUpperCase().padStart(4, '0')} ${h8(m.mem.read32(a + 4))} ${h8(m.mem.read32(a))}`;
      const sw = m.mem.read16(a + 10);
      expect(`${c.name}: ${got}`).toBe(`${c.name}: ${c.want}`);
      if (c.flags !== undefined) expect(`${c.name}: flags ${(sw & 0x3f).toString(16)}`).toBe(`${c.name}: flags ${c.flags.toString(16)}`);
      if (c.c1 !== undefined) expect(`${c.name}: C1 ${(sw & 0x200) !== 0}`).toBe(`${c.name}: C1 ${c.c1}`);
    }
  }

  it('rounds extended results to nearest-even and per RC, with PE and C1', () => {
    const add64 = 'fld1\n fld tword [e64]\n faddp st1, st0';
    const addOdd = 'fld tword [onep]\n fld tword [e64]\n faddp st1, st0';
    const third = 'fld1\n fidiv dword [three]';
    const mthird = 'fld1\n fchs\n fidiv dword [three]';
    const sub100 = 'fld1\n fld tword [e100]\n fsubp st1, st0';
    run([
      { name: '1+2^-64 (tie, even)', cw: EXT, code: add64, want: '3FFF 80000000 00000000', flags: 0x20, c1: false },
      { name: '1+2^-64 up', cw: EXT | UP, code: add64, want: '3FFF 80000000 00000001', flags: 0x20, c1: true },
      { name: '(1+2^-63)+2^-64 (tie, odd)', cw: EXT, code: addOdd, want: '3FFF 80000000 00000002', c1: true },
      { name: '(1+2^-63)+2^-64 down', cw: EXT | DOWN, code: addOdd, want: '3FFF 80000000 00000001', c1: false },
      { name: '1/3', cw: EXT, code: third, want: '3FFD AAAAAAAA AAAAAAAB', flags: 0x20, c1: true },
      { name: '1/3 down', cw: EXT | DOWN, code: third, want: '3FFD AAAAAAAA AAAAAAAA', c1: false },
      { name: '1/3 zero', cw: EXT | ZERO, code: third, want: '3FFD AAAAAAAA AAAAAAAA', c1: false },
      { name: '1/3 up', cw: EXT | UP, code: third, want: '3FFD AAAAAAAA AAAAAAAB', c1: true },
      { name: '-1/3 down', cw: EXT | DOWN, code: mthird, want: 'BFFD AAAAAAAA AAAAAAAB', c1: true },
      { name: '-1/3 up', cw: EXT | UP, code: mthird, want: 'BFFD AAAAAAAA AAAAAAAA', c1: false },
      { name: '1-2^-100', cw: EXT, code: sub100, want: '3FFF 80000000 00000000', flags: 0x20, c1: true },
      { name: '1-2^-100 zero', cw: EXT | ZERO, code: sub100, want: '3FFE FFFFFFFF FFFFFFFF', c1: false },
      { name: '(2-2^-63)^2', cw: EXT, code: 'fld tword [twom]\n fmul st0, st0', want: '4000 FFFFFFFF FFFFFFFE', c1: false },
      { name: '(2-2^-63)^2 up', cw: EXT | UP, code: 'fld tword [twom]\n fmul st0, st0', want: '4000 FFFFFFFF FFFFFFFF', c1: true },
      { name: 'sqrt 2', cw: EXT, code: 'fld qword [two]\n fsqrt', want: '3FFF B504F333 F9DE6484', flags: 0x20, c1: false },
      { name: 'sqrt 2 up', cw: EXT | UP, code: 'fld qword [two]\n fsqrt', want: '3FFF B504F333 F9DE6485', c1: true },
      { name: 'sqrt (1+2^-31)^2 exact', cw: EXT, code: 'fld tword [sq31]\n fsqrt', want: '3FFF 80000001 00000000', flags: 0 },
      { name: 'sqrt 2(1+2^-31)^2 exact', cw: EXT, code: 'fld tword [sq31]\n fadd st0, st0\n fsqrt', want: '3FFF B504F335 63E84AEC', flags: 0x20, c1: false },
    ]);
  });

  it('rounds to 53 and 24 bits under PC=double and PC=single', () => {
    run([
      { name: '1/3 double', cw: DBL, code: 'fld1\n fidiv dword [three]', want: '3FFD AAAAAAAA AAAAA800', c1: false },
      { name: '1/3 single', cw: SGL, code: 'fld1\n fidiv dword [three]', want: '3FFD AAAAAB00 00000000', c1: true },
      { name: '(1+2^-63)+2^-64 double', cw: DBL, code: 'fld tword [onep]\n fld tword [e64]\n faddp st1, st0', want: '3FFF 80000000 00000000' },
      { name: 'sqrt 2 double', cw: DBL, code: 'fld qword [two]\n fsqrt', want: '3FFF B504F333 F9DE6800', c1: true },
      { name: 'sqrt 2 single', cw: SGL, code: 'fld qword [two]\n fsqrt', want: '3FFF B504F300 00000000', c1: false },
      { name: '(2-2^-63)^2 double', cw: DBL, code: 'fld tword [twom]\n fmul st0, st0', want: '4001 80000000 00000000', c1: true },
      { name: '1/3 double up (fast path)', cw: DBL | UP, code: 'fld1\n fidiv dword [three]', want: '3FFD AAAAAAAA AAAAB000', c1: true },
    ]);
  });

  it('keeps the 15-bit exponent range: no early overflow, masked and unmasked overflow', () => {
    run([
      { name: '1e300^2', cw: EXT, code: 'fld qword [big]\n fmul st0, st0', want: '47C8 8EB39714 297EFF60', flags: 0x20, c1: true },
      { name: '1e300^2 double', cw: DBL, code: 'fld qword [big]\n fmul st0, st0', want: '47C8 8EB39714 297F0000', flags: 0x20 },
      { name: '1e300^2 / 1e300', cw: DBL, code: 'fld qword [big]\n fmul st0, st0\n fdiv qword [big]', want: '43E3 BF21E440 03ACE000' },
      { name: 'max*2 → ∞', cw: EXT, code: 'fld tword [huge]\n fadd st0, st0', want: '7FFF 80000000 00000000', flags: 0x28, c1: true },
      { name: 'max*2 zero', cw: EXT | ZERO, code: 'fld tword [huge]\n fadd st0, st0', want: '7FFE FFFFFFFF FFFFFFFF', flags: 0x28, c1: false },
      { name: 'max*2 zero double', cw: DBL | ZERO, code: 'fld tword [huge]\n fmul qword [two]', want: '7FFE FFFFFFFF FFFFF800', flags: 0x28 },
      { name: 'unmasked OE: bias −24576', cw: EXT & ~0x08, code: 'fld tword [huge]\n fmul qword [two]', want: '1FFF 80000000 00000000', flags: 0x08 },
    ]);
  });

  it('produces denormal results with UE only when inexact, and bias-adjusts for unmasked UE', () => {
    run([
      { name: '1.5·2^-16382 / 2 exact', cw: EXT, code: 'fld tword [min15]\n fmul qword [half]', want: '0000 60000000 00000000', flags: 0 },
      { name: '(1+2^-63)·2^-16383', cw: EXT, code: 'fld tword [minp]\n fmul qword [half]', want: '0000 40000000 00000000', flags: 0x30, c1: false },
      { name: '(1+2^-63)·2^-16383 up', cw: EXT | UP, code: 'fld tword [minp]\n fmul qword [half]', want: '0000 40000000 00000001', flags: 0x30, c1: true },
      { name: 'denormal − min normal', cw: EXT, code: 'fld tword [min15]\n fmul qword [half]\n fld tword [minp]\n fsubp st1, st0', want: '8000 20000000 00000001', flags: 0x02 },
      { name: 'unmasked UE: bias +24576', cw: EXT & ~0x10, code: 'fld tword [minp]\n fmul qword [half]', want: '6000 80000000 00000001', flags: 0x10 },
    ]);
  });
});
