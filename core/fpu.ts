/**
 * The x87 FPU (P6 class): the eight-register stack, control/status/tag words, exceptions (masked responses,
 * #MF / FERR#), FIP/FDP bookkeeping, environment and state images (FSTENV/FSAVE/FXSAVE) and every x87
 * instruction of the P6 (opcodes D8–DF, plus FWAIT and FXSAVE/FXRSTOR entry points).
 *
 * Representation. Each register holds a double (`val`) and optionally (always when the value is not
 * exactly a double) its exact 80-bit image (`se` = sign/exponent, `mhi`:`mlo` = 64-bit significand,
 * `hasRaw` = 1; `val` is then the nearest double, used only by the transcendental functions and FPREM).
 * Without the raw image `val` is the exact value. Moves (FLD/FST m80, FLD/FST ST(i), FXCH, FSAVE/FRSTOR,
 * FXSAVE/FXRSTOR, FCHS/FABS, FILD m64, FBLD) keep the image, stores and integer conversions (FST m32/m64,
 * FIST, FRNDINT, FBSTP) round the exact value once, FCOM compares exact values, and every NaN and
 * unsupported encoding always carries its raw image (NaN payloads never depend on JavaScript's NaN bits).
 *
 * Arithmetic (FADD/FSUB/FSUBR/FMUL/FDIV/FDIVR and their integer forms, FSQRT) is exact: the result is
 * computed from the exact operands on uint32 halves (64×64→128-bit products from 16-bit limbs, 65-bit
 * quotients by shift-subtract, 65-bit roots by restoring square root, 96-bit aligned sums with a sticky
 * bit) and rounded once to the precision selected by PC (24/53/64 bits) under RC, with the 15-bit
 * exponent range, denormal results, PE, C1 (rounded up), UE/OE masked responses and, unmasked, the
 * ±24576 exponent bias adjustment of register results. A fast path computes in doubles (error-free
 * transformations) when both operands are doubles and the result is provably the same: exact, or PC =
 * double with everything well inside the double range. No BigInt, no allocation per instruction.
 * F2XM1 and FPTAN are computed in double-double (≈106 bits) and rounded once the same way; the other
 * transcendental functions use doubles.
 *
 * Slots 0–7 are the physical registers; slot 8 holds a memory operand, slot 9 is scratch.
 */
import type { Cpu } from './cpu';

// ---- status word ----
const IE = 0x1, DE = 0x2, ZE = 0x4, OE = 0x8, UE = 0x10, PE = 0x20, SF = 0x40, ES = 0x80;
const C0 = 0x100, C1 = 0x200, C2 = 0x400, C3 = 0x4000, BUSY = 0x8000;
const CC_MASK = C0 | C1 | C2 | C3;

// ---- rounding control ----
export const RC_NEAREST = 0, RC_DOWN = 1, RC_UP = 2, RC_ZERO = 3;

// ---- operand classes ----
export const CLS_ZERO = 0, CLS_NORMAL = 1, CLS_DENORMAL = 2, CLS_INF = 3, CLS_QNAN = 4, CLS_SNAN = 5;
export const CLS_UNSUPPORTED = 6;

const SLOT_MEM = 8;
const SLOT_TMP = 9;

const TWO32 = 4294967296;
const DBL_MAX = 1.7976931348623157e308;
const FLT_MAX = 3.4028234663852886e38;
const LN2_LO = 2.3190468138462996e-17; // ln 2 − Math.LN2

// =====================================================================================
// scratch for bit conversions (shared, no allocation per instruction)
// =====================================================================================

const f64 = new Float64Array(1);
const f64u = new Uint32Array(f64.buffer); // [0] = low word, [1] = high word (little-endian hosts)
const f32 = new Float32Array(1);
const f32u = new Uint32Array(f32.buffer);

/** output of the 80-bit helpers: [0] = significand low 32 bits, [1] = significand high 32 bits, [2] = sign/exponent */
export const X80 = new Uint32Array(3);

/** 2^e as a double, exact for −1074 ≤ e ≤ 1023 (0 below, ∞ above) */
export function pow2(e: number): number {
  if (e > 1023) return Infinity;
  if (e >= -1022) {
    f64u[0] = 0;
    f64u[1] = (e + 1023) << 20;
    return f64[0];
  }
  if (e < -1074) return 0;
  const bit = e + 1074; // 0..51
  if (bit >= 32) {
    f64u[0] = 0;
    f64u[1] = 1 << (bit - 32);
  } else {
    f64u[0] = (1 << bit) >>> 0;
    f64u[1] = 0;
  }
  return f64[0];
}

/** x · 2^e without intermediate overflow/underflow (one rounding at most, at the end) */
export function ldexp(x: number, e: number): number {
  if (x === 0 || x - x !== 0) return x;
  while (e > 1000) {
    x *= pow2(1000);
    e -= 1000;
    if (x - x !== 0) return x;
  }
  while (e < -1000) {
    // keep the last step as the only inexact one where possible
    if (e >= -2000) {
      x *= pow2(-1000);
      e += 1000;
      break;
    }
    x *= pow2(-1000);
    e += 1000;
    if (x === 0) return x;
  }
  return x * pow2(e);
}

/** Converts a double to its exact 80-bit image in X80. */
export function doubleToX80(d: number): void {
  f64[0] = d;
  const lo = f64u[0], hi = f64u[1];
  const sign = (hi >>> 16) & 0x8000;
  const e = (hi >>> 20) & 0x7ff;
  let mh = (((hi & 0xfffff) << 11) | (lo >>> 21)) >>> 0;
  let ml = (lo << 11) >>> 0;
  if (e === 0x7ff) {
    X80[2] = sign | 0x7fff;
    X80[1] = (mh | 0x80000000) >>> 0;
    X80[0] = ml;
    return;
  }
  if (e === 0) {
    if (mh === 0 && ml === 0) {
      X80[2] = sign;
      X80[1] = 0;
      X80[0] = 0;
      return;
    }
    // double denormal: value = m · 2^(−1022−63); normalize (always a normal in 80-bit format)
    const s = mh !== 0 ? Math.clz32(mh) : 32 + Math.clz32(ml);
    if (s >= 32) {
      mh = (ml << (s - 32)) >>> 0;
      ml = 0;
    } else if (s > 0) {
      mh = ((mh << s) | (ml >>> (32 - s))) >>> 0;
      ml = (ml << s) >>> 0;
    }
    X80[2] = sign | (16383 - 1022 - s);
    X80[1] = mh;
    X80[0] = ml;
    return;
  }
  X80[2] = sign | (e - 1023 + 16383);
  X80[1] = (mh | 0x80000000) >>> 0;
  X80[0] = ml;
}

/** class of an 80-bit image */
export function classifyX80(se: number, hi: number, lo: number): number {
  const ef = se & 0x7fff;
  const j = hi >>> 31;
  if (ef === 0) return hi === 0 && lo === 0 ? CLS_ZERO : CLS_DENORMAL;
  if (!j) return CLS_UNSUPPORTED;
  if (ef === 0x7fff) {
    if ((hi & 0x7fffffff) === 0 && lo === 0) return CLS_INF;
    return hi & 0x40000000 ? CLS_QNAN : CLS_SNAN;
  }
  return CLS_NORMAL;
}

// ---- results of the rounding helpers ----
/** the last rounding was inexact */
export let rfInexact = false;
/** the last rounding increased the magnitude */
export let rfAway = false;
/** the value was tiny (below the smallest normal) before rounding */
export let rfTiny = false;
/** the rounded value overflowed the format */
export let rfOverflow = false;

// 64-bit shift right with round and sticky bits
let shHi = 0, shLo = 0, shRound = 0, shSticky = 0;
function shr64(hi: number, lo: number, s: number): void {
  if (s === 0) {
    shHi = hi;
    shLo = lo;
    shRound = 0;
    shSticky = 0;
  } else if (s < 32) {
    shLo = ((lo >>> s) | (hi << (32 - s))) >>> 0;
    shHi = hi >>> s;
    shRound = (lo >>> (s - 1)) & 1;
    shSticky = s > 1 && (lo & ((1 << (s - 1)) - 1)) !== 0 ? 1 : 0;
  } else if (s === 32) {
    shLo = hi;
    shHi = 0;
    shRound = lo >>> 31;
    shSticky = (lo & 0x7fffffff) !== 0 ? 1 : 0;
  } else if (s < 64) {
    const t = s - 32;
    shLo = hi >>> t;
    shHi = 0;
    shRound = (hi >>> (t - 1)) & 1;
    shSticky = lo !== 0 || (t > 1 && (hi & ((1 << (t - 1)) - 1)) !== 0) ? 1 : 0;
  } else if (s === 64) {
    shLo = shHi = 0;
    shRound = hi >>> 31;
    shSticky = (hi & 0x7fffffff) !== 0 || lo !== 0 ? 1 : 0;
  } else {
    shLo = shHi = 0;
    shRound = 0;
    shSticky = hi !== 0 || lo !== 0 ? 1 : 0;
  }
}

function roundUp(neg: boolean, odd: number, rb: number, st: number, rc: number): number {
  if (!(rb | st)) return 0;
  switch (rc) {
    case RC_NEAREST:
      return rb && (st || odd) ? 1 : 0;
    case RC_DOWN:
      return neg ? 1 : 0;
    case RC_UP:
      return neg ? 0 : 1;
    default:
      return 0;
  }
}

/**
 * Rounds a finite nonzero 80-bit value to a binary format with p significand bits and normal exponent
 * range [emin, emax] (24/−126/127 for single, 53/−1022/1023 for double) under rounding control rc. Returns
 * the rounded value as a double (exactly representable in the target format) and sets rfInexact, rfAway,
 * rfTiny (before rounding) and rfOverflow (then the result is the masked overflow response).
 */
export function roundX80(se: number, hi: number, lo: number, p: number, emin: number, emax: number, rc: number): number {
  const neg = (se & 0x8000) !== 0;
  const ef = se & 0x7fff;
  rfInexact = rfAway = rfTiny = rfOverflow = false;
  if (hi === 0 && lo === 0) return neg ? -0 : 0;
  let E = ef === 0 ? -16382 : ef - 16383;
  if (!(hi & 0x80000000)) {
    const s = hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
    if (s >= 32) {
      hi = (lo << (s - 32)) >>> 0;
      lo = 0;
    } else {
      hi = ((hi << s) | (lo >>> (32 - s))) >>> 0;
      lo = (lo << s) >>> 0;
    }
    E -= s;
  }
  rfTiny = E < emin;
  const k = rfTiny ? p - (emin - E) : p;
  shr64(hi, lo, k < 0 ? 65 : 64 - k);
  let I = shHi * TWO32 + shLo;
  const up = roundUp(neg, shLo & 1, shRound, shSticky, rc);
  I += up;
  rfInexact = (shRound | shSticky) !== 0;
  rfAway = up !== 0;
  let Eeff = E;
  if (!rfTiny && I === pow2(p)) Eeff = E + 1;
  if (Eeff > emax) {
    rfOverflow = true;
    rfInexact = true;
    const max = (pow2(p) - 1) * pow2(emax - p + 1);
    let r: number;
    switch (rc) {
      case RC_NEAREST: r = Infinity; break;
      case RC_ZERO: r = max; break;
      case RC_DOWN: r = neg ? Infinity : max; break;
      default: r = neg ? max : Infinity; break;
    }
    rfAway = r === Infinity;
    return neg ? -r : r;
  }
  const r = ldexp(I, (rfTiny ? emin : E) - p + 1);
  return neg ? -r : r;
}

/** 80-bit image → double (round to nearest; NaNs and unsupported encodings give NaN) */
export function x80ToDouble(se: number, hi: number, lo: number): number {
  const ef = se & 0x7fff;
  if (ef === 0x7fff) {
    if (!(hi & 0x80000000) || (hi & 0x7fffffff) !== 0 || lo !== 0) return NaN;
    return se & 0x8000 ? -Infinity : Infinity;
  }
  if (ef !== 0 && !(hi & 0x80000000)) return NaN; // unnormal
  return roundX80(se, hi, lo, 53, -1022, 1023, RC_NEAREST);
}

// integer rounding result: magnitude in intHi:intLo
let intHi = 0, intLo = 0;
/** magnitude ≥ 2^64 */
let intOverflow = false;

/** Rounds a finite 80-bit value to an integer (magnitude in intHi:intLo) under rc; sets rfInexact/rfAway. */
function roundX80ToInt(se: number, hi: number, lo: number, rc: number): void {
  const neg = (se & 0x8000) !== 0;
  const ef = se & 0x7fff;
  rfInexact = rfAway = false;
  intOverflow = false;
  intHi = intLo = 0;
  if (hi === 0 && lo === 0) return;
  const E = ef === 0 ? -16382 : ef - 16383;
  if (E >= 64) {
    intOverflow = true;
    return;
  }
  shr64(hi, lo, E >= 63 ? 0 : 63 - E);
  const up = roundUp(neg, shLo & 1, shRound, shSticky, rc);
  rfInexact = (shRound | shSticky) !== 0;
  rfAway = up !== 0;
  intLo = shLo;
  intHi = shHi;
  if (up) {
    intLo = (intLo + 1) >>> 0;
    if (intLo === 0) {
      intHi = (intHi + 1) >>> 0;
      if (intHi === 0) intOverflow = true;
    }
  }
}

/** 64-bit integer magnitude with a sign → exact 80-bit image in X80 */
export function intToX80(neg: boolean, hi: number, lo: number): void {
  hi >>>= 0;
  lo >>>= 0;
  if (hi === 0 && lo === 0) {
    X80[0] = X80[1] = 0;
    X80[2] = neg ? 0x8000 : 0;
    return;
  }
  const s = hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
  if (s >= 32) {
    hi = (lo << (s - 32)) >>> 0;
    lo = 0;
  } else if (s > 0) {
    hi = ((hi << s) | (lo >>> (32 - s))) >>> 0;
    lo = (lo << s) >>> 0;
  }
  X80[0] = lo;
  X80[1] = hi;
  X80[2] = (neg ? 0x8000 : 0) | (16383 + 63 - s);
}

// ---- exact 80-bit arithmetic on uint32 halves (no BigInt, no allocation) ----

/** unpacked operand: sign, unbiased exponent, normalized 64-bit significand (uHi bit 31 set) */
let uNeg = false, uE = 0, uHi = 0, uLo = 0;

/** output of shr96/shl96: three words (high to low) and a sticky flag for bits shifted out */
let oH = 0, oM = 0, oL = 0, oSt = false;

/** (h:m:0) >> d into oH:oM:oL with the lost bits in oSt */
function shr96(h: number, m: number, d: number): void {
  if (d === 0) {
    oH = h; oM = m; oL = 0; oSt = false;
  } else if (d < 32) {
    oH = h >>> d;
    oM = ((m >>> d) | (h << (32 - d))) >>> 0;
    oL = (m << (32 - d)) >>> 0;
    oSt = false;
  } else if (d === 32) {
    oH = 0; oM = h; oL = m; oSt = false;
  } else if (d < 64) {
    const t = d - 32;
    oH = 0;
    oM = h >>> t;
    oL = ((m >>> t) | (h << (32 - t))) >>> 0;
    oSt = (m << (32 - t)) !== 0;
  } else if (d === 64) {
    oH = oM = 0; oL = h; oSt = m !== 0;
  } else if (d < 96) {
    const t = d - 64;
    oH = oM = 0;
    oL = h >>> t;
    oSt = m !== 0 || (h << (32 - t)) !== 0;
  } else {
    oH = oM = oL = 0;
    oSt = h !== 0 || m !== 0;
  }
}

/** (h:m:l) << s (0 ≤ s < 96) into oH:oM:oL */
function shl96(h: number, m: number, l: number, s: number): void {
  if (s === 0) {
    oH = h; oM = m; oL = l;
  } else if (s < 32) {
    oH = ((h << s) | (m >>> (32 - s))) >>> 0;
    oM = ((m << s) | (l >>> (32 - s))) >>> 0;
    oL = (l << s) >>> 0;
  } else if (s === 32) {
    oH = m; oM = l; oL = 0;
  } else if (s < 64) {
    const t = s - 32;
    oH = ((m << t) | (l >>> (32 - t))) >>> 0;
    oM = (l << t) >>> 0;
    oL = 0;
  } else {
    oH = (l << (s - 64)) >>> 0;
    oM = oL = 0;
  }
}

/** scratch of the division: dividend/remainder digits and quotient digits (16 bits each) */
const DIV_U = new Float64Array(10);
const DIV_Q = new Float64Array(6);

const TWO_M63 = 1.0842021724855044e-19; // 2^-63
const TWO_P900 = 8.452712498170644e270; // 2^900
const TWO_M900 = 1.1830521861667747e-271; // 2^-900
const TWO_P1023 = 8.98846567431158e307; // 2^1023

// ---- error-free transformations ----
const SPLIT = 134217729; // 2^27 + 1

/** the rounding error of p = fl(a·b): exact a·b − p (NaN when it cannot be computed) */
function prodErr(a: number, b: number, p: number): number {
  let c = SPLIT * a;
  const ah = c - (c - a), al = a - ah;
  c = SPLIT * b;
  const bh = c - (c - b), bl = b - bh;
  return ah * bh - p + ah * bl + al * bh + al * bl;
}

// ---- double-double arithmetic (≈106 bits) for F2XM1 and FPTAN ----
let ddH = 0, ddL = 0;

function ddNorm(s: number, e: number): void {
  const h = s + e;
  ddL = e - (h - s);
  ddH = h;
}
function ddAdd(ah: number, al: number, bh: number, bl: number): void {
  const s = ah + bh;
  const bb = s - ah;
  ddNorm(s, ah - (s - bb) + (bh - bb) + (al + bl));
}
function ddMul(ah: number, al: number, bh: number, bl: number): void {
  const p = ah * bh;
  ddNorm(p, prodErr(ah, bh, p) + (ah * bl + al * bh));
}
/** (ah:al) / b for a small exact double b */
function ddDivD(ah: number, al: number, b: number): void {
  const q = ah / b;
  const p = q * b;
  ddNorm(q, (ah - p - prodErr(q, b, p) + al) / b);
}
function ddDiv(ah: number, al: number, bh: number, bl: number): void {
  const q1 = ah / bh;
  ddMul(q1, 0, bh, bl);
  ddAdd(ah, al, -ddH, -ddL);
  const rh = ddH, rl = ddL;
  const q2 = rh / bh;
  ddMul(q2, 0, bh, bl);
  ddAdd(rh, rl, -ddH, -ddL);
  const q3 = ddH / bh;
  ddNorm(q1, q2);
  ddAdd(ddH, ddL, q3, 0);
}
/** e^y − 1 for |y| < 0.75 by its Taylor series */
function ddExpm1(yh: number, yl: number): void {
  let th = yh, tl = yl, sh = yh, sl = yl;
  for (let n = 2; n < 40; n++) {
    ddMul(th, tl, yh, yl);
    ddDivD(ddH, ddL, n);
    th = ddH;
    tl = ddL;
    ddAdd(sh, sl, th, tl);
    sh = ddH;
    sl = ddL;
    if (Math.abs(th) < Math.abs(sh) * 1e-34) break;
  }
  ddH = sh;
  ddL = sl;
}
let sinH = 0, sinL = 0, cosH = 0, cosL = 0;
/** sin and cos of r (|r| ≤ π/4 + ε) by their Taylor series */
function ddSinCos(rh: number, rl: number): void {
  ddMul(rh, rl, rh, rl);
  const qh = ddH, ql = ddL;
  let th = rh, tl = rl, sh = rh, sl = rl;
  for (let n = 3; n < 60; n += 2) {
    ddMul(th, tl, qh, ql);
    ddDivD(-ddH, -ddL, (n - 1) * n);
    th = ddH;
    tl = ddL;
    ddAdd(sh, sl, th, tl);
    sh = ddH;
    sl = ddL;
    if (Math.abs(th) < Math.abs(sh) * 1e-34) break;
  }
  sinH = sh;
  sinL = sl;
  th = 1;
  tl = 0;
  sh = 1;
  sl = 0;
  for (let n = 2; n < 60; n += 2) {
    ddMul(th, tl, qh, ql);
    ddDivD(-ddH, -ddL, (n - 1) * n);
    th = ddH;
    tl = ddL;
    ddAdd(sh, sl, th, tl);
    sh = ddH;
    sl = ddL;
    if (Math.abs(th) < 1e-34) break;
  }
  cosH = sh;
  cosL = sl;
}
const PIO2_1 = 1.5707963267948966, PIO2_2 = 6.123233995736766e-17, PIO2_3 = -1.4973849048591698e-33;

/** the next double above x */
function nextUp(x: number): number {
  if (x !== x || x === Infinity) return x;
  if (x === 0) return 5e-324;
  f64[0] = x;
  if (x > 0) {
    f64u[0] = f64u[0] + 1;
    if (f64u[0] === 0) f64u[1] = f64u[1] + 1;
  } else {
    if (f64u[0] === 0) f64u[1] = f64u[1] - 1;
    f64u[0] = f64u[0] - 1;
  }
  return f64[0];
}

function nextDown(x: number): number {
  return -nextUp(-x);
}

/** BCD indefinite, integer indefinite pieces */
const QNAN_HI = 0xc0000000;

// =====================================================================================
// the FPU
// =====================================================================================

/**
 * Fpu.saveState(): all ten register slots (eight registers and the two scratch slots), each with its
 * double as an exact bit pattern (low and high 32-bit words: JSON cannot carry -0, infinities or NaN
 * payloads), its raw 80-bit image and flags, and the exception flags of an instruction that faulted
 * before committing them.
 */
export interface FpuState {
  cw: number;
  sw: number;
  top: number;
  fip: number;
  fcs: number;
  fdp: number;
  fds: number;
  fop: number;
  mxcsr: number;
  /** per slot: low word, high word of the IEEE double */
  valBits: number[];
  se: number[];
  mhi: number[];
  mlo: number[];
  hasRaw: number[];
  empty: number[];
  exc: number;
}

/** bit-exact double <-> words for snapshots (independent of the host's byte order) */
const stateBits = new DataView(new ArrayBuffer(8));

export class Fpu {
  readonly cpu: Cpu;
  /** control word */
  cw = 0x40;
  /** status word without TOP (bits 11–13 are kept in `top`) */
  sw = 0;
  top = 0;
  fip = 0;
  fcs = 0;
  fdp = 0;
  fds = 0;
  /** last non-control opcode: 11 bits ((first byte & 7) << 8 | ModRM) */
  fop = 0;
  /** SSE control/status kept for FXSAVE/FXRSTOR only */
  mxcsr = 0x1f80;

  readonly val = new Float64Array(10);
  readonly se = new Uint16Array(10);
  readonly mhi = new Uint32Array(10);
  readonly mlo = new Uint32Array(10);
  readonly hasRaw = new Uint8Array(10);
  readonly empty = new Uint8Array(10);

  /** exception flags raised by the current instruction */
  private exc = 0;
  private readonly buf = new Uint8Array(512);

  constructor(cpu: Cpu) {
    this.cpu = cpu;
    this.reset();
  }

  /** power-on state (SDM Table 9-1, P6): FCW 0040h, FSW 0, FTW 5555h (all +0.0), pointers 0 */
  reset(): void {
    this.cw = 0x40;
    this.sw = 0;
    this.top = 0;
    this.fip = this.fcs = this.fdp = this.fds = this.fop = 0;
    this.mxcsr = 0x1f80;
    this.val.fill(0);
    this.se.fill(0);
    this.mhi.fill(0);
    this.mlo.fill(0);
    this.hasRaw.fill(0);
    this.empty.fill(0);
    this.exc = 0;
  }

  /** FNINIT */
  init(): void {
    this.cw = 0x37f;
    this.sw = 0;
    this.top = 0;
    for (let i = 0; i < 8; i++) this.empty[i] = 1;
    this.fip = this.fcs = this.fdp = this.fds = this.fop = 0;
  }

  saveState(): FpuState {
    const valBits: number[] = [];
    for (let i = 0; i < this.val.length; i++) {
      stateBits.setFloat64(0, this.val[i], true);
      valBits.push(stateBits.getUint32(0, true), stateBits.getUint32(4, true));
    }
    return {
      cw: this.cw, sw: this.sw, top: this.top, fip: this.fip, fcs: this.fcs, fdp: this.fdp, fds: this.fds,
      fop: this.fop, mxcsr: this.mxcsr,
      valBits,
      se: Array.from(this.se),
      mhi: Array.from(this.mhi),
      mlo: Array.from(this.mlo),
      hasRaw: Array.from(this.hasRaw),
      empty: Array.from(this.empty),
      exc: this.exc,
    };
  }

  loadState(s: unknown): void {
    const st = s as FpuState;
    this.cw = st.cw; this.sw = st.sw; this.top = st.top & 7;
    this.fip = st.fip; this.fcs = st.fcs; this.fdp = st.fdp; this.fds = st.fds; this.fop = st.fop;
    this.mxcsr = st.mxcsr;
    this.exc = st.exc | 0;
    for (let i = 0; i < this.val.length; i++) {
      this.se[i] = st.se[i];
      this.mhi[i] = st.mhi[i];
      this.mlo[i] = st.mlo[i];
      this.hasRaw[i] = st.hasRaw[i];
      this.empty[i] = st.empty[i];
      stateBits.setUint32(0, st.valBits[2 * i] >>> 0, true);
      stateBits.setUint32(4, st.valBits[2 * i + 1] >>> 0, true);
      this.val[i] = stateBits.getFloat64(0, true);
    }
  }

  // =====================================================================================
  // words and registers
  // =====================================================================================

  /** the status word with TOP */
  status(): number {
    return (this.sw & ~0x3800) | (this.top << 11);
  }

  /** the full tag word, computed from the registers' contents */
  tagWord(): number {
    let tw = 0;
    for (let i = 0; i < 8; i++) {
      let t: number;
      if (this.empty[i]) t = 3;
      else {
        const c = this.cls(i);
        t = c === CLS_ZERO ? 1 : c === CLS_NORMAL ? 0 : 2;
      }
      tw |= t << (i * 2);
    }
    return tw;
  }

  /** physical slot of ST(i) */
  st(i: number): number {
    return (this.top + i) & 7;
  }

  /** class of a slot's value (ignoring emptiness) */
  cls(s: number): number {
    if (this.hasRaw[s]) return classifyX80(this.se[s], this.mhi[s], this.mlo[s]);
    const v = this.val[s];
    if (v === 0) return CLS_ZERO;
    if (v - v !== 0) return v === v ? CLS_INF : CLS_QNAN;
    return CLS_NORMAL;
  }

  /** the exact 80-bit image of a slot into X80 */
  raw(s: number): void {
    if (this.hasRaw[s]) {
      X80[0] = this.mlo[s];
      X80[1] = this.mhi[s];
      X80[2] = this.se[s];
    } else {
      doubleToX80(this.val[s]);
    }
  }

  /** the value of ST(i) as a double (tests and debuggers) */
  getST(i: number): number {
    return this.val[this.st(i)];
  }

  setD(s: number, d: number): void {
    if (d !== d) {
      this.setIndef(s);
      return;
    }
    this.val[s] = d;
    this.hasRaw[s] = 0;
    this.empty[s] = 0;
  }

  setX(s: number, se: number, hi: number, lo: number): void {
    this.se[s] = se;
    this.mhi[s] = hi;
    this.mlo[s] = lo;
    this.hasRaw[s] = 1;
    this.empty[s] = 0;
    this.val[s] = x80ToDouble(se, hi, lo);
  }

  /** sets a slot from X80 */
  setFromX80(s: number): void {
    this.setX(s, X80[2], X80[1], X80[0]);
  }

  /** QNaN floating-point indefinite */
  setIndef(s: number): void {
    this.setX(s, 0xffff, QNAN_HI, 0);
  }

  copy(d: number, s: number): void {
    this.val[d] = this.val[s];
    this.se[d] = this.se[s];
    this.mhi[d] = this.mhi[s];
    this.mlo[d] = this.mlo[s];
    this.hasRaw[d] = this.hasRaw[s];
    this.empty[d] = this.empty[s];
  }

  private swap(a: number, b: number): void {
    this.copy(SLOT_TMP, a);
    this.copy(a, b);
    this.copy(b, SLOT_TMP);
  }

  pop(): void {
    this.empty[this.top] = 1;
    this.top = (this.top + 1) & 7;
  }

  /**
   * Makes room for a push. Returns the new top slot to fill, or −1 when the push was handled as a stack
   * overflow (masked: indefinite pushed; unmasked: nothing changed).
   */
  private push(): number {
    const t = (this.top - 1) & 7;
    if (!this.empty[t]) {
      this.exc |= IE | SF;
      this.sw |= C1;
      if (!(this.cw & IE)) return -1;
      this.top = t;
      this.setIndef(t);
      return -1;
    }
    this.top = t;
    return t;
  }

  /** true if the flags are unmasked */
  private unmasked(flags: number): boolean {
    return (flags & ~this.cw & 0x3f) !== 0;
  }

  /** stack underflow with a destination: masked → indefinite into dst. Returns true if dst was written. */
  private underflow(dst: number): boolean {
    this.exc |= IE | SF;
    if (!(this.cw & IE)) return false;
    if (dst >= 0) this.setIndef(dst);
    return true;
  }

  /** merges the instruction's exception flags into the status word and updates ES/B */
  private commit(): void {
    if (this.exc) {
      this.sw |= this.exc;
      this.exc = 0;
    }
    if (this.sw & ~this.cw & 0x3f) this.sw |= ES | BUSY;
  }

  /** recomputes ES/B from the flags and masks (after loading CW or an environment) */
  private recomputeEs(): void {
    const was = this.sw & ES;
    if (this.sw & ~this.cw & 0x3f) this.sw |= ES | BUSY;
    else {
      this.sw &= ~(ES | BUSY);
      if (was) this.cpu.onFerr(false);
    }
  }

  /** start of a waiting instruction: deliver a pending unmasked exception */
  private checkPending(): void {
    if (this.sw & ES) {
      if (this.cpu.cr0 & 0x20) this.cpu.raise(16);
      this.cpu.onFerr(true);
    }
  }

  /** FWAIT / WAIT (0x9B) */
  fwait(): void {
    this.checkPending();
  }

  private rc(): number {
    return (this.cw >> 10) & 3;
  }

  // =====================================================================================
  // NaN handling and result delivery
  // =====================================================================================

  /**
   * Result when an operand is a NaN or unsupported (ca/cb are the classes of slots a and b). Writes dst
   * unless the invalid-operation exception is unmasked. Returns true if dst was written.
   */
  private nanResult(dst: number, a: number, b: number, ca: number, cb: number): boolean {
    if (ca === CLS_SNAN || cb === CLS_SNAN || ca === CLS_UNSUPPORTED || cb === CLS_UNSUPPORTED) {
      this.exc |= IE;
      if (!(this.cw & IE)) return false;
    }
    if (ca === CLS_UNSUPPORTED || cb === CLS_UNSUPPORTED) {
      if (dst >= 0) this.setIndef(dst);
      return true;
    }
    let pick: number;
    const an = ca === CLS_QNAN || ca === CLS_SNAN;
    const bn = cb === CLS_QNAN || cb === CLS_SNAN;
    if (an && bn) {
      if (ca !== cb) pick = ca === CLS_QNAN ? a : b;
      else {
        const ah = this.mhi[a] & 0x3fffffff, bh = this.mhi[b] & 0x3fffffff;
        if (ah !== bh) pick = ah > bh ? a : b;
        else if (this.mlo[a] !== this.mlo[b]) pick = this.mlo[a] > this.mlo[b] ? a : b;
        else pick = this.se[a] & 0x8000 ? b : a;
      }
    } else pick = an ? a : b;
    if (dst >= 0) this.setX(dst, this.se[pick], (this.mhi[pick] | 0x40000000) >>> 0, this.mlo[pick]);
    return true;
  }

  /**
   * Delivers a double result r to dst. `err` is exact − r (0 if exact, NaN if unknown but inexact).
   * Handles overflow from finite operands, PE, C1, directed rounding and single precision control.
   */
  private deliver(dst: number, r: number, err: number, finiteOps: boolean): boolean {
    if (r - r !== 0 && r === r && finiteOps) {
      // overflow
      this.exc |= OE | PE;
      if (!(this.cw & OE)) return false;
      const neg = r < 0;
      let v: number;
      switch (this.rc()) {
        case RC_NEAREST: v = Infinity; break;
        case RC_ZERO: v = DBL_MAX; break;
        case RC_DOWN: v = neg ? Infinity : DBL_MAX; break;
        default: v = neg ? DBL_MAX : Infinity; break;
      }
      if (v === Infinity) this.sw |= C1;
      this.setD(dst, neg ? -v : v);
      return true;
    }
    if (err !== 0) {
      this.exc |= PE;
      if (err === err) {
        let away: boolean;
        switch (this.rc()) {
          case RC_NEAREST:
            away = r > 0 ? err < 0 : r < 0 ? err > 0 : false;
            break;
          case RC_DOWN:
            if (err < 0) r = nextDown(r);
            away = r < 0;
            break;
          case RC_UP:
            if (err > 0) r = nextUp(r);
            away = r > 0;
            break;
          default:
            if (r > 0 && err < 0) r = nextDown(r);
            else if (r < 0 && err > 0) r = nextUp(r);
            away = false;
            break;
        }
        if (away) this.sw |= C1;
      }
    }
    if ((this.cw & 0x300) === 0 && r - r === 0) {
      const f = Math.fround(r);
      if (f !== r) {
        this.exc |= PE;
        r = f;
      }
    }
    this.setD(dst, r);
    return true;
  }

  /**
   * Two-operand arithmetic: dst ← a op b. op: 0 add, 1 mul, 4 a−b, 5 b−a, 6 a/b, 7 b/a.
   * Returns true if dst was written. Results are rounded once, from the exact value, to the precision
   * selected by PC (24/53/64 bits) with the 15-bit exponent range of the registers.
   */
  private arith(op: number, dst: number, a: number, b: number): boolean {
    if (this.empty[a] || this.empty[b]) return this.underflow(dst);
    let ca = this.cls(a), cb = this.cls(b);
    if (ca >= CLS_QNAN || cb >= CLS_QNAN) return this.nanResult(dst, a, b, ca, cb);
    if (ca === CLS_DENORMAL || cb === CLS_DENORMAL) {
      this.exc |= DE;
      if (!(this.cw & DE)) return false;
    }
    if (op === 5 || op === 7) {
      const t = a;
      a = b;
      b = t;
      const tc = ca;
      ca = cb;
      cb = tc;
      op--;
    }
    if (ca === CLS_NORMAL && cb === CLS_NORMAL && !this.hasRaw[a] && !this.hasRaw[b] && this.fastArith(op, dst, this.val[a], this.val[b])) return true;
    return this.exactArith(op, dst, a, ca, b, cb);
  }

  /**
   * Fast path for double operands: computes the double result and its exact error (error-free
   * transformations). Succeeds (returns true, dst written) only when that equals the x87 result: the
   * result is exact at PC ≥ double, or PC = double, and everything stays well inside the double range.
   */
  private fastArith(op: number, dst: number, x: number, y: number): boolean {
    const pc = (this.cw >> 8) & 3;
    if (pc === 0) return false;
    let r: number, err: number;
    if (op === 0 || op === 4) {
      if (op === 4) y = -y;
      r = x + y;
      if (!(r < TWO_P1023 && r > -TWO_P1023)) return false;
      const bb = r - x;
      err = x - (r - bb) + (y - bb);
      if (r === 0) r = this.rc() === RC_DOWN ? -0 : 0; // exact cancellation
    } else {
      const ax = Math.abs(x), ay = Math.abs(y);
      if (!(ax < TWO_P900 && ax > TWO_M900 && ay < TWO_P900 && ay > TWO_M900)) return false;
      if (op === 1) {
        r = x * y;
        err = prodErr(x, y, r);
      } else {
        r = x / y;
        const p = r * y;
        const rem = x - p - prodErr(r, y, p);
        err = rem === 0 ? 0 : (rem > 0) === (y > 0) ? 1 : -1;
      }
      const ar = Math.abs(r);
      if (!(ar < TWO_P900 && ar > TWO_M900)) return false;
    }
    if (err !== 0 && pc !== 2) return false;
    this.fastDeliver(dst, r, err);
    return true;
  }

  /** delivers a double result r with exact error err (exact − r, only its sign matters) at PC = double */
  private fastDeliver(dst: number, r: number, err: number): void {
    if (err !== 0) {
      this.exc |= PE;
      let away: boolean;
      switch (this.rc()) {
        case RC_NEAREST:
          away = r > 0 ? err < 0 : err > 0;
          break;
        case RC_DOWN:
          if (err < 0) r = nextDown(r);
          away = r < 0;
          break;
        case RC_UP:
          if (err > 0) r = nextUp(r);
          away = r > 0;
          break;
        default:
          if (r > 0 && err < 0) r = nextDown(r);
          else if (r < 0 && err > 0) r = nextUp(r);
          away = false;
          break;
      }
      if (away) this.sw |= C1;
    }
    this.val[dst] = r;
    this.hasRaw[dst] = 0;
    this.empty[dst] = 0;
  }

  /** the exact value of a finite nonzero slot (exponent well inside the double range) as ddH + ddL */
  private ddOf(s: number): void {
    this.unpack(s);
    const sc = pow2(uE - 63);
    const low = uLo & 0x7ff;
    const h = (uHi * TWO32 + (uLo - low)) * sc, l = low * sc;
    ddNorm(uNeg ? -h : h, uNeg ? -l : l);
  }

  /** delivers the nonzero double-double h + l, rounded once per PC/RC (PE always: an approximation) */
  private ddDeliver(dst: number, h: number, l: number): void {
    this.setD(SLOT_MEM, h);
    if (l === 0) {
      this.unpack(SLOT_MEM);
      this.roundReg(dst, h < 0, uE, uHi, uLo, 0, false);
    } else {
      this.setD(SLOT_TMP, l);
      this.addExact(dst, SLOT_MEM, h < 0, SLOT_TMP, l < 0);
    }
    this.exc |= PE;
  }

  /** sign of a slot's value (true = negative) */
  private negOf(s: number): boolean {
    if (this.hasRaw[s]) return (this.se[s] & 0x8000) !== 0;
    const v = this.val[s];
    return v < 0 || (v === 0 && 1 / v < 0);
  }

  /** unpacks a finite nonzero slot into uNeg/uE/uHi/uLo (normalized; denormals get E < −16382) */
  private unpack(s: number): void {
    this.raw(s);
    const se = X80[2];
    let hi = X80[1], lo = X80[0];
    uNeg = (se & 0x8000) !== 0;
    let E = (se & 0x7fff) === 0 ? -16382 : (se & 0x7fff) - 16383;
    if (!(hi & 0x80000000)) {
      const n = hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
      if (n >= 32) {
        hi = (lo << (n - 32)) >>> 0;
        lo = 0;
      } else {
        hi = ((hi << n) | (lo >>> (32 - n))) >>> 0;
        lo = (lo << n) >>> 0;
      }
      E -= n;
    }
    uE = E;
    uHi = hi;
    uLo = lo;
  }

  /** writes ±(biased exponent, hi:lo) to slot s, as a plain double when it is one (keeps the fast path) */
  private setExact(s: number, neg: boolean, biased: number, hi: number, lo: number): void {
    const E = biased - 16383;
    if (hi === 0 && lo === 0) {
      this.val[s] = neg ? -0 : 0;
      this.hasRaw[s] = 0;
      this.empty[s] = 0;
    } else if ((lo & 0x7ff) === 0 && E >= -1022 && E <= 1023 && biased !== 0) {
      const v = (hi * TWO32 + lo) * TWO_M63 * pow2(E);
      this.val[s] = neg ? -v : v;
      this.hasRaw[s] = 0;
      this.empty[s] = 0;
    } else if (E >= -1022 && E <= 1023 && biased !== 0) {
      // not a double: keep the image; the nearest double comes from one correctly rounded addition
      this.se[s] = (neg ? 0x8000 : 0) | biased;
      this.mhi[s] = hi;
      this.mlo[s] = lo;
      this.hasRaw[s] = 1;
      this.empty[s] = 0;
      const v = (hi * TWO32 + lo) * TWO_M63 * pow2(E);
      this.val[s] = neg ? -v : v;
    } else this.setX(s, (neg ? 0x8000 : 0) | biased, hi, lo);
  }

  /**
   * Rounds the exact nonzero value ±(hi:lo:ex)·2^(E−95) (hi bit 31 set; `sticky`: nonzero bits below ex)
   * to the register format at the precision selected by PC under RC, raises PE/UE/OE and C1, and writes
   * dst. Unmasked OE/UE deliver the result with the exponent bias-adjusted by ∓24576 (SDM 8.5.4/8.5.5).
   * Tininess is detected before rounding. Returns true (dst is always written).
   */
  private roundReg(dst: number, neg: boolean, E: number, hi: number, lo: number, ex: number, sticky: boolean): boolean {
    const pc = (this.cw >> 8) & 3;
    const p = pc === 0 ? 24 : pc === 2 ? 53 : 64;
    let tiny = E < -16382;
    if (tiny && !(this.cw & UE)) {
      this.exc |= UE;
      E += 24576;
      tiny = false;
    }
    const k = tiny ? p - (-16382 - E) : p; // significand bits kept
    const s = k < 0 ? 65 : 64 - k;
    shr64(hi, lo, s);
    let kh = shHi, kl = shLo, rb = shRound, st = shSticky;
    if (s === 0) {
      rb = ex >>> 31;
      st = (ex & 0x7fffffff) !== 0 || sticky ? 1 : 0;
    } else if (ex !== 0 || sticky) st = 1;
    const inexact = (rb | st) !== 0;
    const up = roundUp(neg, kl & 1, rb, st, this.rc());
    if (up) {
      kl = (kl + 1) >>> 0;
      if (kl === 0) kh = (kh + 1) >>> 0;
    }
    // back to a 64-bit significand field: kept << (64 − p)
    let rh: number, rl: number;
    if (p === 64) {
      rh = kh;
      rl = kl;
    } else if (p === 53) {
      rh = ((kh << 11) | (kl >>> 21)) >>> 0;
      rl = (kl << 11) >>> 0;
    } else {
      rh = (kl << 8) >>> 0;
      rl = 0;
    }
    let biased: number;
    if (tiny) {
      if (inexact) this.exc |= UE;
      biased = rh & 0x80000000 ? 1 : 0;
    } else {
      if (up && rh === 0 && rl === 0) {
        // carried out of the significand
        rh = 0x80000000;
        E++;
      }
      biased = E + 16383;
      if (biased >= 0x7fff) {
        this.exc |= OE;
        if (this.cw & OE) {
          // masked overflow: ∞ or the largest finite value of the precision, per RC
          this.exc |= PE;
          const rc = this.rc();
          const inf = rc === RC_NEAREST || (rc === RC_UP && !neg) || (rc === RC_DOWN && neg);
          if (inf) {
            this.sw |= C1;
            this.setD(dst, neg ? -Infinity : Infinity);
          } else {
            this.setX(dst, (neg ? 0x8000 : 0) | 0x7ffe, p === 24 ? 0xffffff00 : 0xffffffff, p === 64 ? 0xffffffff : p === 53 ? 0xfffff800 : 0);
          }
          return true;
        }
        biased -= 24576;
      }
    }
    if (inexact) {
      this.exc |= PE;
      if (up) this.sw |= C1;
    }
    this.setExact(dst, neg, biased, rh, rl);
    return true;
  }

  /** the exact path of arith (op: 0 add, 1 mul, 4 a−b, 6 a/b) for non-NaN operands of classes ca, cb */
  private exactArith(op: number, dst: number, a: number, ca: number, b: number, cb: number): boolean {
    const an = this.negOf(a);
    let bn = this.negOf(b);
    if (op === 0 || op === 4) {
      if (op === 4) bn = !bn;
      if (ca === CLS_INF || cb === CLS_INF) {
        if (ca === CLS_INF && cb === CLS_INF && an !== bn) return this.invalid(dst);
        this.setD(dst, (ca === CLS_INF ? an : bn) ? -Infinity : Infinity);
        return true;
      }
      if (ca === CLS_ZERO && cb === CLS_ZERO) {
        this.setD(dst, an === bn ? (an ? -0 : 0) : this.rc() === RC_DOWN ? -0 : 0);
        return true;
      }
      if (ca === CLS_ZERO || cb === CLS_ZERO) {
        this.unpack(ca === CLS_ZERO ? b : a);
        return this.roundReg(dst, ca === CLS_ZERO ? bn : an, uE, uHi, uLo, 0, false);
      }
      return this.addExact(dst, a, an, b, bn);
    }
    const neg = an !== bn;
    if (op === 1) {
      if (ca === CLS_INF || cb === CLS_INF) {
        if (ca === CLS_ZERO || cb === CLS_ZERO) return this.invalid(dst);
        this.setD(dst, neg ? -Infinity : Infinity);
        return true;
      }
      if (ca === CLS_ZERO || cb === CLS_ZERO) {
        this.setD(dst, neg ? -0 : 0);
        return true;
      }
      return this.mulExact(dst, neg, a, b);
    }
    // division a / b
    if (ca === CLS_INF) {
      if (cb === CLS_INF) return this.invalid(dst);
      this.setD(dst, neg ? -Infinity : Infinity);
      return true;
    }
    if (cb === CLS_INF) {
      this.setD(dst, neg ? -0 : 0);
      return true;
    }
    if (ca === CLS_ZERO) {
      if (cb === CLS_ZERO) return this.invalid(dst);
      this.setD(dst, neg ? -0 : 0);
      return true;
    }
    if (cb === CLS_ZERO) {
      this.exc |= ZE;
      if (!(this.cw & ZE)) return false;
      this.setD(dst, neg ? -Infinity : Infinity);
      return true;
    }
    return this.divExact(dst, neg, a, b);
  }

  /** exact sum of two finite nonzero slots with effective signs an, bn */
  private addExact(dst: number, a: number, an: boolean, b: number, bn: boolean): boolean {
    this.unpack(a);
    let aE = uE, ah = uHi, al = uLo;
    this.unpack(b);
    let bE = uE, bh = uHi, bl = uLo;
    let neg = an;
    if (bE > aE || (bE === aE && (bh > ah || (bh === ah && bl > al)))) {
      let t = aE; aE = bE; bE = t;
      t = ah; ah = bh; bh = t;
      t = al; al = bl; bl = t;
      neg = bn;
    }
    shr96(bh, bl, aE - bE);
    const st = oSt;
    if (an === bn) {
      let l = oL;
      let m = al + oM;
      let c = m > 0xffffffff ? 1 : 0;
      m = m >>> 0;
      let h = ah + oH + c;
      c = h > 0xffffffff ? 1 : 0;
      h = h >>> 0;
      let E = aE;
      let sticky = st;
      if (c) {
        if (l & 1) sticky = true;
        l = ((l >>> 1) | (m << 31)) >>> 0;
        m = ((m >>> 1) | (h << 31)) >>> 0;
        h = ((h >>> 1) | 0x80000000) >>> 0;
        E++;
      }
      return this.roundReg(dst, neg, E, h, m, l, sticky);
    }
    // magnitude difference; a sticky remainder of b borrows one unit from the low word
    let l = 0 - oL - (st ? 1 : 0);
    let bw = l < 0 ? 1 : 0;
    l = l >>> 0;
    let m = al - oM - bw;
    bw = m < 0 ? 1 : 0;
    m = m >>> 0;
    const h = (ah - oH - bw) >>> 0;
    if (h === 0 && m === 0 && l === 0 && !st) {
      this.setD(dst, this.rc() === RC_DOWN ? -0 : 0);
      return true;
    }
    const n = h !== 0 ? Math.clz32(h) : m !== 0 ? 32 + Math.clz32(m) : 64 + Math.clz32(l);
    shl96(h, m, l, n);
    return this.roundReg(dst, neg, aE - n, oH, oM, oL, st);
  }

  /** exact product of two finite nonzero slots: 64×64 → 128 bits from 16-bit limbs */
  private mulExact(dst: number, neg: boolean, a: number, b: number): boolean {
    this.unpack(a);
    const aE = uE, ah = uHi, al = uLo;
    this.unpack(b);
    const E0 = aE + uE;
    const a0 = al & 0xffff, a1 = al >>> 16, a2 = ah & 0xffff, a3 = ah >>> 16;
    const b0 = uLo & 0xffff, b1 = uLo >>> 16, b2 = uHi & 0xffff, b3 = uHi >>> 16;
    // column sums (each < 2^35, exact in doubles), then carries in 16-bit steps
    let c = a0 * b0;
    let q = Math.floor(c / 65536);
    const l0 = c - q * 65536;
    c = a0 * b1 + a1 * b0 + q;
    q = Math.floor(c / 65536);
    const l1 = c - q * 65536;
    c = a0 * b2 + a1 * b1 + a2 * b0 + q;
    q = Math.floor(c / 65536);
    const l2 = c - q * 65536;
    c = a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0 + q;
    q = Math.floor(c / 65536);
    const l3 = c - q * 65536;
    c = a1 * b3 + a2 * b2 + a3 * b1 + q;
    q = Math.floor(c / 65536);
    const l4 = c - q * 65536;
    c = a2 * b3 + a3 * b2 + q;
    q = Math.floor(c / 65536);
    const l5 = c - q * 65536;
    c = a3 * b3 + q;
    q = Math.floor(c / 65536);
    const l6 = c - q * 65536;
    const l7 = q;
    let w3 = ((l7 << 16) | l6) >>> 0, w2 = ((l5 << 16) | l4) >>> 0, w1 = ((l3 << 16) | l2) >>> 0;
    const w0 = ((l1 << 16) | l0) >>> 0;
    if (w3 & 0x80000000) return this.roundReg(dst, neg, E0 + 1, w3, w2, w1, w0 !== 0);
    w3 = ((w3 << 1) | (w2 >>> 31)) >>> 0;
    w2 = ((w2 << 1) | (w1 >>> 31)) >>> 0;
    w1 = ((w1 << 1) | (w0 >>> 31)) >>> 0;
    return this.roundReg(dst, neg, E0, w3, w2, w1, (w0 & 0x7fffffff) !== 0);
  }

  /**
   * Exact quotient of two finite nonzero slots: Q = ⌊A·2^80 / B⌋ by schoolbook division in 16-bit
   * digits (Knuth's algorithm D; the quotient digit is estimated from the top digits in doubles and
   * corrected), the remainder gives the sticky bit.
   */
  private divExact(dst: number, neg: boolean, a: number, b: number): boolean {
    this.unpack(a);
    const aE = uE, ah = uHi, al = uLo;
    this.unpack(b);
    const bE = uE;
    const v0 = uLo & 0xffff, v1 = uLo >>> 16, v2 = uHi & 0xffff, v3 = uHi >>> 16; // v3 ≥ 2^15
    const u = DIV_U;
    u[0] = u[1] = u[2] = u[3] = u[4] = 0;
    u[5] = al & 0xffff;
    u[6] = al >>> 16;
    u[7] = ah & 0xffff;
    u[8] = ah >>> 16;
    u[9] = 0;
    const q = DIV_Q;
    for (let j = 5; j >= 0; j--) {
      const num = u[j + 4] * 65536 + u[j + 3];
      let qh = Math.floor(num / v3);
      let rh = num - qh * v3;
      while (qh >= 65536 || qh * v2 > rh * 65536 + u[j + 2]) {
        qh--;
        rh += v3;
        if (rh >= 65536) break;
      }
      // u[j..j+4] −= qh · v
      let carry = 0, borrow = 0;
      for (let i = 0; i < 4; i++) {
        const p = qh * (i === 0 ? v0 : i === 1 ? v1 : i === 2 ? v2 : v3) + carry;
        carry = Math.floor(p / 65536);
        let t = u[i + j] - (p - carry * 65536) - borrow;
        if (t < 0) {
          t += 65536;
          borrow = 1;
        } else borrow = 0;
        u[i + j] = t;
      }
      let t = u[j + 4] - carry - borrow;
      if (t < 0) {
        // estimate one too large: add the divisor back
        qh--;
        let c = 0;
        for (let i = 0; i < 4; i++) {
          const s = u[i + j] + (i === 0 ? v0 : i === 1 ? v1 : i === 2 ? v2 : v3) + c;
          c = s >= 65536 ? 1 : 0;
          u[i + j] = s - c * 65536;
        }
        t += c;
      }
      u[j + 4] = t;
      q[j] = qh;
    }
    const sticky = u[0] !== 0 || u[1] !== 0 || u[2] !== 0 || u[3] !== 0;
    if (q[5] !== 0) {
      // Q ∈ [2^80, 2^81): leading bit 80
      return this.roundReg(dst, neg, aE - bE,
        (0x80000000 | (q[4] << 15) | (q[3] >>> 1)) >>> 0,
        (((q[3] & 1) << 31) | (q[2] << 15) | (q[1] >>> 1)) >>> 0,
        (((q[1] & 1) << 31) | (q[0] << 15)) >>> 0, sticky);
    }
    return this.roundReg(dst, neg, aE - bE - 1, ((q[4] << 16) | q[3]) >>> 0, ((q[2] << 16) | q[1]) >>> 0, (q[0] << 16) >>> 0, sticky);
  }

  /** exact square root of a positive finite nonzero slot: 65 root bits by restoring square root */
  private sqrtExact(dst: number, s: number): boolean {
    this.unpack(s);
    const sh = uHi, sl = uLo;
    const e1 = uE - 63; // value = S · 2^e1
    const k = e1 & 1 ? 65 : 66; // radicand X = S · 2^k (130 bits), e1 − k even
    let r2 = 0, r1 = 0, r0 = 0; // remainder (≤ 67 bits)
    let y2 = 0, y1 = 0, y0 = 0; // root so far (≤ 65 bits)
    for (let i = 0; i < 65; i++) {
      // next two radicand bits: positions 129 − 2i and 128 − 2i of X
      const q = 129 - 2 * i - k; // position in S of the upper one
      let pair = 0;
      if (q >= 0 && q < 64) pair = q >= 32 ? (sh >>> (q - 32)) & 1 : (sl >>> q) & 1;
      const q2 = q - 1;
      if (q2 >= 0) pair = (pair << 1) | (q2 >= 32 ? (sh >>> (q2 - 32)) & 1 : (sl >>> q2) & 1);
      else pair <<= 1;
      // R = R·4 + pair
      r2 = ((r2 << 2) | (r1 >>> 30)) >>> 0;
      r1 = ((r1 << 2) | (r0 >>> 30)) >>> 0;
      r0 = ((r0 << 2) | pair) >>> 0;
      // T = Y·4 + 1
      const t2 = ((y2 << 2) | (y1 >>> 30)) >>> 0;
      const t1 = ((y1 << 2) | (y0 >>> 30)) >>> 0;
      const t0 = ((y0 << 2) | 1) >>> 0;
      // Y = Y·2 (+1 below)
      y2 = ((y2 << 1) | (y1 >>> 31)) >>> 0;
      y1 = ((y1 << 1) | (y0 >>> 31)) >>> 0;
      y0 = (y0 << 1) >>> 0;
      if (r2 > t2 || (r2 === t2 && (r1 > t1 || (r1 === t1 && r0 >= t0)))) {
        let d = r0 - t0;
        let bw = d < 0 ? 1 : 0;
        r0 = d >>> 0;
        d = r1 - t1 - bw;
        bw = d < 0 ? 1 : 0;
        r1 = d >>> 0;
        r2 = (r2 - t2 - bw) >>> 0;
        y0 = (y0 | 1) >>> 0;
      }
    }
    // Y ∈ [2^64, 2^65): significand = Y >> 1, round bit = Y & 1
    const hi = ((y2 << 31) | (y1 >>> 1)) >>> 0;
    const lo = ((y1 << 31) | (y0 >>> 1)) >>> 0;
    return this.roundReg(dst, false, 64 + (e1 - k) / 2, hi, lo, (y0 & 1) << 31 >>> 0, (r2 | r1 | r0) !== 0);
  }

  /** invalid operation: masked → indefinite into dst */
  private invalid(dst: number): boolean {
    this.exc |= IE;
    if (!(this.cw & IE)) return false;
    if (dst >= 0) this.setIndef(dst);
    return true;
  }

  /**
   * Compares slots a and b. Returns 0 (a > b), 1 (a < b), 2 (equal), 3 (unordered) or −1 when an
   * unmasked exception suppresses the result. `quiet`: FUCOM semantics (QNaN raises no IE).
   */
  private compare(a: number, b: number, quiet: boolean): number {
    if (this.empty[a] || this.empty[b]) {
      this.exc |= IE | SF;
      return this.cw & IE ? 3 : -1;
    }
    const ca = this.cls(a), cb = this.cls(b);
    if (ca >= CLS_QNAN || cb >= CLS_QNAN) {
      if (!quiet || ca >= CLS_SNAN || cb >= CLS_SNAN) this.exc |= IE;
      return this.unmasked(this.exc & IE) ? -1 : 3;
    }
    if (ca === CLS_DENORMAL || cb === CLS_DENORMAL) {
      this.exc |= DE;
      if (!(this.cw & DE)) return -1;
    }
    if (!this.hasRaw[a] && !this.hasRaw[b]) {
      const x = this.val[a], y = this.val[b];
      return x > y ? 0 : x < y ? 1 : 2;
    }
    // exact comparison of the 80-bit images
    if (ca === CLS_ZERO && cb === CLS_ZERO) return 2;
    this.raw(a);
    const as = X80[2], ah = X80[1], al = X80[0];
    this.raw(b);
    const bs = X80[2], bh = X80[1], bl = X80[0];
    const an = (as & 0x8000) !== 0 && ca !== CLS_ZERO;
    const bn = (bs & 0x8000) !== 0 && cb !== CLS_ZERO;
    if (an !== bn) return an ? 1 : 0;
    let c = 0;
    if (ca === CLS_ZERO) c = -1;
    else if (cb === CLS_ZERO) c = 1;
    else {
      const ae = (as & 0x7fff) || 1, be = (bs & 0x7fff) || 1;
      c = ae !== be ? (ae > be ? 1 : -1) : ah !== bh ? (ah > bh ? 1 : -1) : al !== bl ? (al > bl ? 1 : -1) : 0;
    }
    if (c === 0) return 2;
    if (an) c = -c;
    return c > 0 ? 0 : 1;
  }

  private setCC(code: number): void {
    this.sw &= ~(C0 | C2 | C3);
    if (code === 1) this.sw |= C0;
    else if (code === 2) this.sw |= C3;
    else if (code === 3) this.sw |= C0 | C2 | C3;
  }

  /** FCOMI/FUCOMI: ZF, PF, CF in EFLAGS */
  private setEflags(code: number): void {
    // ZF 0x40, PF 0x4, CF 0x1; OF, SF, AF cleared
    const v = code === 1 ? 0x1 : code === 2 ? 0x40 : code === 3 ? 0x45 : 0;
    this.cpu.setArithFlags(v, 0x8d5);
  }

  // =====================================================================================
  // memory operands
  // =====================================================================================

  /** m32 real → slot 8 (denormal sets DE; NaNs kept raw) */
  private loadM32(seg: number, off: number): void {
    const bits = this.cpu.read32(seg, off) >>> 0;
    const e = (bits >>> 23) & 0xff;
    const frac = bits & 0x7fffff;
    if (e === 0xff && frac !== 0) {
      this.setX(SLOT_MEM, ((bits >>> 16) & 0x8000) | 0x7fff, (0x80000000 | (frac << 8)) >>> 0, 0);
      return;
    }
    if (e === 0 && frac !== 0) this.exc |= DE;
    f32u[0] = bits;
    this.setD(SLOT_MEM, f32[0]);
  }

  /** m64 real → slot 8 */
  private loadM64(seg: number, off: number): void {
    const lo = this.cpu.read32(seg, off) >>> 0;
    const hi = this.cpu.read32(seg, off + 4) >>> 0;
    const e = (hi >>> 20) & 0x7ff;
    const fhi = hi & 0xfffff;
    if (e === 0x7ff && (fhi | lo) !== 0) {
      this.setX(SLOT_MEM, ((hi >>> 16) & 0x8000) | 0x7fff, (0x80000000 | (fhi << 11) | (lo >>> 21)) >>> 0, (lo << 11) >>> 0);
      return;
    }
    if (e === 0 && (fhi | lo) !== 0) this.exc |= DE;
    f64u[0] = lo;
    f64u[1] = hi;
    this.setD(SLOT_MEM, f64[0]);
  }

  /** m80 real → slot 8 (exact, no exceptions) */
  private loadM80(seg: number, off: number): void {
    const lo = this.cpu.read32(seg, off) >>> 0;
    const hi = this.cpu.read32(seg, off + 4) >>> 0;
    const se = this.cpu.read16(seg, off + 8);
    this.setX(SLOT_MEM, se, hi, lo);
  }

  /** m64 integer → slot 8 (exact) */
  private loadI64(seg: number, off: number): void {
    let lo = this.cpu.read32(seg, off) >>> 0;
    let hi = this.cpu.read32(seg, off + 4) >>> 0;
    const neg = hi >= 0x80000000;
    if (neg) {
      lo = (~lo + 1) >>> 0;
      hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
    }
    intToX80(neg, hi, lo);
    this.setFromX80(SLOT_MEM);
  }

  /** m80 packed BCD → slot 8 (exact) */
  private loadBcd(seg: number, off: number): void {
    const cpu = this.cpu;
    let hi = 0, lo = 0;
    for (let i = 8; i >= 0; i--) {
      const b = cpu.read8(seg, off + i);
      for (let k = 0; k < 2; k++) {
        const d = k === 0 ? b >> 4 : b & 15;
        const l = lo * 10 + d;
        const carry = Math.floor(l / TWO32);
        lo = l - carry * TWO32;
        hi = hi * 10 + carry;
      }
    }
    const neg = (cpu.read8(seg, off + 9) & 0x80) !== 0;
    intToX80(neg, hi >>> 0, lo >>> 0);
    this.setFromX80(SLOT_MEM);
  }

  /** checks that len bytes at seg:off can be written */
  private probe(seg: number, off: number, len: number): void {
    const lin = this.cpu.linW(seg, off, len);
    this.cpu.probeWrite(lin, len);
  }

  /**
   * Stores slot s as a real of p bits (24 or 53) to memory. Returns false when an unmasked exception
   * suppressed the store (then no pop).
   */
  private storeReal(seg: number, off: number, s: number, dbl: boolean): boolean {
    const cpu = this.cpu;
    if (dbl) this.probe(seg, off, 8);
    let lo = 0, hi = 0;
    if (this.empty[s]) {
      this.exc |= IE | SF;
      if (!(this.cw & IE)) return false;
      hi = dbl ? 0xfff80000 : 0xffc00000;
    } else {
      const c = this.cls(s);
      if (c >= CLS_QNAN) {
        if (c !== CLS_QNAN) {
          this.exc |= IE;
          if (!(this.cw & IE)) return false;
        }
        if (c === CLS_UNSUPPORTED) hi = dbl ? 0xfff80000 : 0xffc00000;
        else {
          const sign = (this.se[s] & 0x8000) << 16;
          const mh = this.mhi[s], ml = this.mlo[s];
          if (dbl) {
            hi = (sign | 0x7ff80000 | ((mh >>> 11) & 0x7ffff)) >>> 0;
            lo = ((mh << 21) | (ml >>> 11)) >>> 0;
          } else {
            hi = (sign | 0x7fc00000 | ((mh >>> 8) & 0x3fffff)) >>> 0;
          }
        }
      } else {
        const v = this.val[s];
        const av = Math.abs(v);
        let r: number;
        if (c === CLS_ZERO || c === CLS_INF) {
          r = v;
        } else if (!this.hasRaw[s] && (dbl ? av >= 2.2250738585072014e-308 : av >= 1.1754943508222875e-38 && av <= FLT_MAX && Math.fround(v) === v)) {
          r = v; // exactly representable normal: no rounding
        } else {
          this.raw(s);
          r = dbl ? roundX80(X80[2], X80[1], X80[0], 53, -1022, 1023, this.rc())
            : roundX80(X80[2], X80[1], X80[0], 24, -126, 127, this.rc());
          if (rfOverflow) {
            this.exc |= OE | PE;
            if (!(this.cw & OE)) return false;
          } else if (rfTiny && (!(this.cw & UE) || rfInexact)) {
            this.exc |= UE;
            if (!(this.cw & UE)) return false;
          }
          if (rfInexact) {
            this.exc |= PE;
            if (rfAway) this.sw |= C1;
          }
        }
        if (dbl) {
          f64[0] = r;
          lo = f64u[0];
          hi = f64u[1];
        } else {
          f32[0] = r;
          hi = f32u[0];
        }
      }
    }
    if (dbl) {
      cpu.write32(seg, off, lo | 0);
      cpu.write32(seg, off + 4, hi | 0);
    } else cpu.write32(seg, off, hi | 0);
    return true;
  }

  /** FSTP m80 (no exceptions except stack underflow) */
  private storeM80(seg: number, off: number, s: number): boolean {
    this.probe(seg, off, 10);
    if (this.empty[s]) {
      this.exc |= IE | SF;
      if (!(this.cw & IE)) return false;
      X80[0] = 0;
      X80[1] = QNAN_HI;
      X80[2] = 0xffff;
    } else this.raw(s);
    const cpu = this.cpu;
    cpu.write32(seg, off, X80[0] | 0);
    cpu.write32(seg, off + 4, X80[1] | 0);
    cpu.write16(seg, off + 8, X80[2]);
    return true;
  }

  /**
   * Rounds slot s to an integer under RC into intHi:intLo (magnitude) and returns the sign (true = negative),
   * or null-equivalent: returns −1 when the value is not convertible (NaN, ∞, empty, out of range for
   * `bits`), 0 for non-negative and 1 for negative. Sets PE/C1 for inexact conversions.
   */
  private toInt(s: number, bits: number): number {
    if (this.empty[s]) {
      this.exc |= IE | SF;
      return -1;
    }
    const c = this.cls(s);
    if (c >= CLS_INF) {
      this.exc |= IE;
      return -1;
    }
    const v = this.val[s];
    let neg: boolean;
    if (!this.hasRaw[s] && v < 4503599627370496 && v > -4503599627370496) {
      // fast path: |v| < 2^52
      let r: number;
      switch (this.rc()) {
        case RC_NEAREST:
          r = Math.round(v);
          if (r - v === 0.5 && (r % 2) !== 0) r -= 1;
          break;
        case RC_DOWN: r = Math.floor(v); break;
        case RC_UP: r = Math.ceil(v); break;
        default: r = Math.trunc(v); break;
      }
      rfInexact = r !== v;
      rfAway = Math.abs(r) > Math.abs(v);
      neg = v < 0 || (v === 0 && 1 / v < 0);
      const m = Math.abs(r);
      intHi = Math.floor(m / TWO32);
      intLo = m - intHi * TWO32;
      intOverflow = false;
    } else {
      this.raw(s);
      roundX80ToInt(X80[2], X80[1], X80[0], this.rc());
      neg = (X80[2] & 0x8000) !== 0;
    }
    // range check
    let ok: boolean;
    if (intOverflow) ok = false;
    else if (bits === 64) ok = intHi < 0x80000000 || (neg && intHi === 0x80000000 && intLo === 0);
    else {
      const lim = bits === 32 ? 0x80000000 : 0x8000;
      ok = intHi === 0 && (intLo < lim || (neg && intLo === lim));
    }
    if (!ok) {
      this.exc |= IE;
      return -1;
    }
    if (rfInexact) {
      this.exc |= PE;
      if (rfAway) this.sw |= C1;
    }
    return neg ? 1 : 0;
  }

  /** FIST/FISTP m16/m32/m64. Returns false if an unmasked exception suppressed the store. */
  private storeInt(seg: number, off: number, s: number, bits: number): boolean {
    const cpu = this.cpu;
    if (bits === 64) this.probe(seg, off, 8);
    else cpu.linW(seg, off, bits >> 3);
    const sign = this.toInt(s, bits);
    let lo: number, hi: number;
    if (sign < 0) {
      if (!(this.cw & IE)) return false;
      lo = bits === 16 ? 0x8000 : bits === 32 ? 0x80000000 : 0;
      hi = 0x80000000;
    } else {
      lo = intLo;
      hi = intHi;
      if (sign) {
        lo = (~lo + 1) >>> 0;
        hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
      }
    }
    if (bits === 16) cpu.write16(seg, off, lo & 0xffff);
    else if (bits === 32) cpu.write32(seg, off, lo | 0);
    else {
      cpu.write32(seg, off, lo | 0);
      cpu.write32(seg, off + 4, hi | 0);
    }
    return true;
  }

  /** FBSTP m80 */
  private storeBcd(seg: number, off: number, s: number): boolean {
    const cpu = this.cpu;
    this.probe(seg, off, 10);
    let sign = this.toInt(s, 64);
    const b = this.buf;
    if (sign >= 0) {
      // 10^18 = 0x0DE0B6B3_A7640000
      if (intHi > 0x0de0b6b3 || (intHi === 0x0de0b6b3 && intLo >= 0xa7640000)) {
        this.exc |= IE;
        sign = -1;
      }
    }
    if (sign < 0) {
      if (!(this.cw & IE)) return false;
      for (let i = 0; i < 7; i++) b[i] = 0;
      b[7] = 0xc0;
      b[8] = 0xff;
      b[9] = 0xff;
    } else {
      let hi = intHi, lo = intLo;
      for (let i = 0; i < 9; i++) {
        let byte = 0;
        for (let k = 0; k < 2; k++) {
          // divide hi:lo by 10
          const qh = Math.floor(hi / 10);
          const rh = hi - qh * 10;
          const cur = rh * TWO32 + lo;
          const ql = Math.floor(cur / 10);
          const d = cur - ql * 10;
          hi = qh;
          lo = ql;
          byte |= d << (k * 4);
        }
        b[i] = byte;
      }
      b[9] = sign ? 0x80 : 0;
    }
    for (let i = 0; i < 10; i++) cpu.write8(seg, off + i, b[i]);
    return true;
  }

  // =====================================================================================
  // environment and state images
  // =====================================================================================

  private put16(i: number, v: number): void {
    this.buf[i] = v;
    this.buf[i + 1] = v >> 8;
  }
  private put32(i: number, v: number): void {
    this.buf[i] = v;
    this.buf[i + 1] = v >> 8;
    this.buf[i + 2] = v >> 16;
    this.buf[i + 3] = v >>> 24;
  }
  private get16(i: number): number {
    return this.buf[i] | (this.buf[i + 1] << 8);
  }
  private get32(i: number): number {
    return (this.buf[i] | (this.buf[i + 1] << 8) | (this.buf[i + 2] << 16) | (this.buf[i + 3] << 24)) >>> 0;
  }

  private realLayout(): boolean {
    return !this.cpu.protectedMode || (this.cpu.flags & 0x20000) !== 0;
  }

  /** builds the FSTENV image in buf[0..]; returns its length (14 or 28) */
  private buildEnv(o32: boolean, real: boolean): number {
    const tag = this.tagWord();
    const sw = this.status();
    const ip = real ? ((this.fcs << 4) + this.fip) >>> 0 : this.fip >>> 0;
    const dp = real ? ((this.fds << 4) + this.fdp) >>> 0 : this.fdp >>> 0;
    if (o32) {
      this.put32(0, 0xffff0000 | this.cw);
      this.put32(4, 0xffff0000 | sw);
      this.put32(8, 0xffff0000 | tag);
      if (real) {
        this.put32(12, 0xffff0000 | (ip & 0xffff));
        this.put32(16, (((ip >>> 16) & 0xffff) << 12) | (this.fop & 0x7ff));
        this.put32(20, 0xffff0000 | (dp & 0xffff));
        this.put32(24, ((dp >>> 16) & 0xffff) << 12);
      } else {
        this.put32(12, ip);
        this.put32(16, (this.fcs & 0xffff) | ((this.fop & 0x7ff) << 16));
        this.put32(20, dp);
        this.put32(24, 0xffff0000 | (this.fds & 0xffff));
      }
      return 28;
    }
    this.put16(0, this.cw);
    this.put16(2, sw);
    this.put16(4, tag);
    if (real) {
      this.put16(6, ip & 0xffff);
      this.put16(8, (((ip >>> 16) & 0xf) << 12) | (this.fop & 0x7ff));
      this.put16(10, dp & 0xffff);
      this.put16(12, ((dp >>> 16) & 0xf) << 12);
    } else {
      this.put16(6, ip & 0xffff);
      this.put16(8, this.fcs);
      this.put16(10, dp & 0xffff);
      this.put16(12, this.fds);
    }
    return 14;
  }

  /** loads an environment image from buf; returns the tag word */
  private parseEnv(o32: boolean, real: boolean): number {
    let cw: number, sw: number, tag: number;
    if (o32) {
      cw = this.get16(0);
      sw = this.get16(4);
      tag = this.get16(8);
      if (real) {
        this.fip = (this.get16(12) | (((this.get32(16) >>> 12) & 0xffff) << 16)) >>> 0;
        this.fcs = 0;
        this.fop = this.get32(16) & 0x7ff;
        this.fdp = (this.get16(20) | (((this.get32(24) >>> 12) & 0xffff) << 16)) >>> 0;
        this.fds = 0;
      } else {
        this.fip = this.get32(12);
        this.fcs = this.get16(16);
        this.fop = this.get16(18) & 0x7ff;
        this.fdp = this.get32(20);
        this.fds = this.get16(24);
      }
    } else {
      cw = this.get16(0);
      sw = this.get16(2);
      tag = this.get16(4);
      if (real) {
        this.fip = this.get16(6) | ((this.get16(8) >>> 12) << 16);
        this.fcs = 0;
        this.fop = this.get16(8) & 0x7ff;
        this.fdp = this.get16(10) | ((this.get16(12) >>> 12) << 16);
        this.fds = 0;
      } else {
        this.fip = this.get16(6);
        this.fcs = this.get16(8);
        this.fdp = this.get16(10);
        this.fds = this.get16(12);
      }
    }
    this.cw = (cw & 0x1f3f) | 0x40;
    this.top = (sw >> 11) & 7;
    this.sw = sw & ~0x3800;
    for (let i = 0; i < 8; i++) this.empty[i] = ((tag >> (i * 2)) & 3) === 3 ? 1 : 0;
    return tag;
  }

  private readBuf(seg: number, off: number, len: number): void {
    const cpu = this.cpu;
    cpu.linR(seg, off, len);
    for (let i = 0; i < len; i++) this.buf[i] = cpu.read8(seg, off + i);
  }

  private writeBuf(seg: number, off: number, len: number): void {
    const cpu = this.cpu;
    for (let i = 0; i < len; i++) cpu.write8(seg, off + i, this.buf[i]);
  }

  private fstenv(seg: number, off: number): void {
    const o32 = this.cpu.osize32;
    const len = o32 ? 28 : 14;
    this.probe(seg, off, len);
    this.buildEnv(o32, this.realLayout());
    this.writeBuf(seg, off, len);
    this.cw |= 0x3f;
    this.recomputeEs();
  }

  private fldenv(seg: number, off: number): void {
    const o32 = this.cpu.osize32;
    this.readBuf(seg, off, o32 ? 28 : 14);
    this.parseEnv(o32, this.realLayout());
    this.recomputeEs();
  }

  private fsave(seg: number, off: number): void {
    const o32 = this.cpu.osize32;
    const envLen = o32 ? 28 : 14;
    const len = envLen + 80;
    this.probe(seg, off, len);
    this.buildEnv(o32, this.realLayout());
    for (let i = 0; i < 8; i++) this.putReg(envLen + i * 10, this.st(i));
    this.writeBuf(seg, off, len);
    const had = this.sw & ES;
    this.init();
    if (had) this.cpu.onFerr(false);
  }

  private frstor(seg: number, off: number): void {
    const o32 = this.cpu.osize32;
    const envLen = o32 ? 28 : 14;
    this.readBuf(seg, off, envLen + 80);
    const empties = this.parseEnv(o32, this.realLayout());
    for (let i = 0; i < 8; i++) {
      const s = this.st(i);
      this.getReg(envLen + i * 10, s);
      this.empty[s] = ((empties >> (s * 2)) & 3) === 3 ? 1 : 0;
    }
    this.recomputeEs();
  }

  /** writes slot s as 10 bytes at buf[i] */
  private putReg(i: number, s: number): void {
    this.raw(s);
    this.put32(i, X80[0]);
    this.put32(i + 4, X80[1]);
    this.put16(i + 8, X80[2]);
  }

  /** loads slot s from 10 bytes at buf[i] (sets it non-empty; callers fix emptiness) */
  private getReg(i: number, s: number): void {
    this.setX(s, this.get16(i + 8), this.get32(i + 4), this.get32(i));
  }

  /** FXSAVE m512 (0F AE /0) */
  fxsave(seg: number, off: number): void {
    const cpu = this.cpu;
    if (((cpu.segBase[seg] + off) & 15) !== 0) cpu.gp(0);
    this.probe(seg, off, 512);
    const b = this.buf;
    b.fill(0, 0, 288);
    this.put16(0, this.cw);
    this.put16(2, this.status());
    let ftw = 0;
    for (let i = 0; i < 8; i++) if (!this.empty[i]) ftw |= 1 << i;
    b[4] = ftw;
    this.put16(6, this.fop & 0x7ff);
    this.put32(8, this.fip);
    this.put16(12, this.fcs);
    this.put32(16, this.fdp);
    this.put16(20, this.fds);
    this.put32(24, this.mxcsr);
    this.put32(28, 0xffff);
    for (let i = 0; i < 8; i++) this.putReg(32 + i * 16, this.st(i));
    this.writeBuf(seg, off, 288);
  }

  /** FXRSTOR m512 (0F AE /1) */
  fxrstor(seg: number, off: number): void {
    const cpu = this.cpu;
    if (((cpu.segBase[seg] + off) & 15) !== 0) cpu.gp(0);
    cpu.linR(seg, off, 512);
    this.readBuf(seg, off, 160);
    const mxcsr = this.get32(24);
    if (mxcsr & 0xffff0000) cpu.gp(0);
    this.cw = (this.get16(0) & 0x1f3f) | 0x40;
    const sw = this.get16(2);
    this.top = (sw >> 11) & 7;
    this.sw = sw & ~0x3800;
    const ftw = this.buf[4];
    this.fop = this.get16(6) & 0x7ff;
    this.fip = this.get32(8);
    this.fcs = this.get16(12);
    this.fdp = this.get32(16);
    this.fds = this.get16(20);
    this.mxcsr = mxcsr;
    for (let i = 0; i < 8; i++) {
      const s = this.st(i);
      this.getReg(32 + i * 16, s);
    }
    for (let i = 0; i < 8; i++) this.empty[i] = (ftw >> i) & 1 ? 0 : 1;
    this.recomputeEs();
  }

  // =====================================================================================
  // instruction dispatch
  // =====================================================================================

  /** executes an x87 instruction: op = 0xD8..0xDF, modrm already fetched */
  exec(op: number, modrm: number): void {
    const cpu = this.cpu;
    this.exc = 0;
    const reg = (modrm >> 3) & 7;
    if (modrm < 0xc0) {
      // ---- memory forms ----
      if (op === 0xd9 && reg >= 4) {
        if (reg === 4 || reg === 5) this.checkPending();
        const off = cpu.ea(modrm);
        const seg = cpu.eaSeg;
        if (reg === 4) this.fldenv(seg, off);
        else if (reg === 5) {
          this.cw = (cpu.read16(seg, off) & 0x1f3f) | 0x40;
          this.recomputeEs();
        } else if (reg === 6) this.fstenv(seg, off);
        else cpu.write16(seg, off, this.cw);
        return;
      }
      if (op === 0xdd && reg >= 4) {
        if (reg === 5) cpu.ud();
        if (reg === 4) this.checkPending();
        const off = cpu.ea(modrm);
        const seg = cpu.eaSeg;
        if (reg === 4) this.frstor(seg, off);
        else if (reg === 6) this.fsave(seg, off);
        else cpu.write16(seg, off, this.status());
        return;
      }
      if (reg === 1 && (op === 0xd9 || op === 0xdb || op === 0xdd || op === 0xdf)) cpu.ud(); // FISTTP is SSE3
      if (op === 0xdb && (reg === 4 || reg === 6)) cpu.ud();
      this.checkPending();
      const off = cpu.ea(modrm);
      const seg = cpu.eaSeg;
      this.sw &= ~C1;
      this.memOp(op, reg, seg, off);
      this.fip = cpu.instrStart;
      this.fcs = cpu.segSel[1];
      this.fop = ((op & 7) << 8) | modrm;
      this.fdp = off;
      this.fds = cpu.segSel[seg];
      this.commit();
      return;
    }
    // ---- register forms ----
    const i = modrm & 7;
    switch (op) {
      case 0xd9:
        if ((modrm >= 0xd1 && modrm <= 0xd7) || modrm === 0xe2 || modrm === 0xe3 || modrm === 0xe6 || modrm === 0xe7 || modrm === 0xef) cpu.ud();
        break;
      case 0xda:
        if (modrm >= 0xe0 && modrm !== 0xe9) cpu.ud();
        break;
      case 0xdb:
        if (modrm >= 0xe0 && modrm <= 0xe7) {
          if (modrm === 0xe2) {
            // FNCLEX
            const had = this.sw & ES;
            this.sw &= 0x7f00;
            if (had) cpu.onFerr(false);
          } else if (modrm === 0xe3) {
            const had = this.sw & ES;
            this.init();
            if (had) cpu.onFerr(false);
          } else if (modrm >= 0xe5) cpu.ud();
          // E0 FNENI, E1 FNDISI, E4 FNSETPM: no-ops on the 387 and later
          return;
        }
        if (modrm >= 0xf8) cpu.ud();
        break;
      case 0xdd:
        if (modrm >= 0xf0) cpu.ud();
        break;
      case 0xde:
        if (modrm >= 0xd8 && modrm <= 0xdf && modrm !== 0xd9) cpu.ud();
        break;
      case 0xdf:
        if (modrm === 0xe0) {
          cpu.r16[0] = this.status();
          return;
        }
        if ((modrm >= 0xe1 && modrm <= 0xe7) || modrm >= 0xf8) cpu.ud();
        break;
    }
    this.checkPending();
    this.sw &= ~C1;
    this.regOp(op, modrm, reg, i);
    this.fip = cpu.instrStart;
    this.fcs = cpu.segSel[1];
    this.fop = ((op & 7) << 8) | modrm;
    this.commit();
  }

  private memOp(op: number, reg: number, seg: number, off: number): void {
    const cpu = this.cpu;
    switch (op) {
      case 0xd8:
        this.loadM32(seg, off);
        this.memArith(reg);
        return;
      case 0xdc:
        this.loadM64(seg, off);
        this.memArith(reg);
        return;
      case 0xda:
        this.setD(SLOT_MEM, cpu.read32(seg, off) | 0);
        this.memArith(reg);
        return;
      case 0xde:
        this.setD(SLOT_MEM, (cpu.read16(seg, off) << 16) >> 16);
        this.memArith(reg);
        return;
      case 0xd9:
        if (reg === 0) {
          this.loadM32(seg, off);
          this.fldMem(true);
        } else if (this.storeReal(seg, off, this.st(0), false) && reg === 3) this.pop();
        return;
      case 0xdd:
        if (reg === 0) {
          this.loadM64(seg, off);
          this.fldMem(true);
        } else if (this.storeReal(seg, off, this.st(0), true) && reg === 3) this.pop();
        return;
      case 0xdb:
        switch (reg) {
          case 0:
            this.setD(SLOT_MEM, cpu.read32(seg, off) | 0);
            this.fldMem(false);
            return;
          case 2:
          case 3:
            if (this.storeInt(seg, off, this.st(0), 32) && reg === 3) this.pop();
            return;
          case 5:
            this.loadM80(seg, off);
            this.fldMem(false);
            return;
          default:
            if (this.storeM80(seg, off, this.st(0))) this.pop();
            return;
        }
      default: // 0xdf
        switch (reg) {
          case 0:
            this.setD(SLOT_MEM, (cpu.read16(seg, off) << 16) >> 16);
            this.fldMem(false);
            return;
          case 2:
          case 3:
            if (this.storeInt(seg, off, this.st(0), 16) && reg === 3) this.pop();
            return;
          case 4:
            this.loadBcd(seg, off);
            this.fldMem(false);
            return;
          case 5:
            this.loadI64(seg, off);
            this.fldMem(false);
            return;
          case 6:
            if (this.storeBcd(seg, off, this.st(0))) this.pop();
            return;
          default:
            if (this.storeInt(seg, off, this.st(0), 64)) this.pop();
            return;
        }
    }
  }

  /** FLD of the operand in slot 8 (m32/m64: SNaN → IE and quieted, denormal → DE) */
  private fldMem(checkReal: boolean): void {
    if (checkReal) {
      if (this.cls(SLOT_MEM) === CLS_SNAN) {
        this.exc |= IE;
        this.mhi[SLOT_MEM] |= 0x40000000;
      }
      if (this.unmasked(this.exc)) return;
    }
    const d = this.push();
    if (d >= 0) this.copy(d, SLOT_MEM);
  }

  /** D8/DC/DA/DE memory forms: ST0 ← ST0 op mem, or compare */
  private memArith(reg: number): void {
    const s0 = this.st(0);
    // a denormal m32/m64 operand with DE unmasked: no result (stack underflow takes precedence)
    if (this.unmasked(this.exc & DE) && !this.empty[s0]) return;
    if (reg === 2 || reg === 3) {
      const c = this.compare(s0, SLOT_MEM, false);
      if (c < 0) return;
      this.setCC(c);
      if (reg === 3) this.pop();
      return;
    }
    this.arith(reg, s0, s0, SLOT_MEM);
  }

  private regOp(op: number, modrm: number, reg: number, i: number): void {
    const cpu = this.cpu;
    const s0 = this.st(0);
    const si = this.st(i);
    switch (op) {
      case 0xd8:
        if (reg === 2 || reg === 3) this.fcom(s0, si, false, reg === 3 ? 1 : 0);
        else this.arith(reg, s0, s0, si);
        return;
      case 0xdc:
      case 0xde: {
        if (reg === 2 || reg === 3) {
          // DC D0 FCOM2, DC D8 FCOMP3, DE D0 FCOMP5, DE D9 FCOMPP
          if (op === 0xde && reg === 3) this.fcom(s0, this.st(1), false, 2);
          else this.fcom(s0, si, false, op === 0xde || reg === 3 ? 1 : 0);
          return;
        }
        const r = reg >= 4 ? reg ^ 1 : reg;
        if (this.arith(r, si, si, s0) && op === 0xde) this.pop();
        return;
      }
      case 0xd9:
        this.d9(modrm, reg, i, s0, si);
        return;
      case 0xda:
        if (modrm === 0xe9) {
          this.fcom(s0, this.st(1), true, 2);
          return;
        }
        this.fcmov(cpu.cond(FCMOV_CC[reg & 3]), s0, si);
        return;
      case 0xdb:
        if (reg <= 3) this.fcmov(cpu.cond(FCMOV_CC[reg] ^ 1), s0, si);
        else this.fcomi(s0, si, reg === 5, false);
        return;
      case 0xdd:
        switch (reg) {
          case 0:
            this.empty[si] = 1;
            return;
          case 1:
            this.fxch(s0, si);
            return;
          case 2:
          case 3:
            this.fstReg(s0, si, reg === 3);
            return;
          case 4:
          case 5:
            this.fcom(s0, si, true, reg === 5 ? 1 : 0);
            return;
        }
        return;
      default: // 0xdf
        switch (reg) {
          case 0:
            this.empty[si] = 1;
            this.pop();
            return;
          case 1:
            this.fxch(s0, si);
            return;
          case 2:
          case 3:
            this.fstReg(s0, si, true);
            return;
          default:
            this.fcomi(s0, si, reg === 5, true);
            return;
        }
    }
  }

  private fcom(a: number, b: number, quiet: boolean, pops: number): void {
    const c = this.compare(a, b, quiet);
    if (c < 0) return;
    this.setCC(c);
    if (pops > 0) this.pop();
    if (pops > 1) this.pop();
  }

  private fcomi(a: number, b: number, quiet: boolean, pop: boolean): void {
    const c = this.compare(a, b, quiet);
    if (c < 0) return;
    this.setEflags(c);
    if (pop) this.pop();
  }

  private fcmov(cond: boolean, s0: number, si: number): void {
    if (this.empty[s0] || this.empty[si]) {
      this.underflow(s0);
      return;
    }
    if (cond) this.copy(s0, si);
  }

  private fxch(s0: number, si: number): void {
    if (this.empty[s0] || this.empty[si]) {
      this.exc |= IE | SF;
      if (!(this.cw & IE)) return;
      if (this.empty[s0]) this.setIndef(s0);
      if (this.empty[si]) this.setIndef(si);
    }
    this.swap(s0, si);
  }

  private fstReg(s0: number, si: number, pop: boolean): void {
    if (this.empty[s0]) {
      if (!this.underflow(si)) return;
    } else this.copy(si, s0);
    if (pop) this.pop();
  }

  // ---- D9 register forms ----
  private d9(modrm: number, reg: number, i: number, s0: number, si: number): void {
    switch (reg) {
      case 0: {
        // FLD ST(i)
        if (this.empty[si]) {
          this.exc |= IE | SF;
          if (!(this.cw & IE)) return;
          const d = this.push();
          if (d >= 0) this.setIndef(d);
          return;
        }
        this.copy(SLOT_MEM, si);
        const d = this.push();
        if (d >= 0) this.copy(d, SLOT_MEM);
        return;
      }
      case 1:
        this.fxch(s0, si);
        return;
      case 2:
        return; // FNOP
      case 3:
        this.fstReg(s0, si, true); // FSTP1
        return;
      case 4:
        switch (i) {
          case 0: // FCHS
          case 1: // FABS
            if (this.empty[s0]) {
              this.underflow(s0);
              return;
            }
            if (this.hasRaw[s0]) {
              this.se[s0] = i === 0 ? this.se[s0] ^ 0x8000 : this.se[s0] & 0x7fff;
              this.val[s0] = i === 0 ? -this.val[s0] : Math.abs(this.val[s0]);
            } else this.val[s0] = i === 0 ? -this.val[s0] : Math.abs(this.val[s0]);
            return;
          case 4: // FTST
            this.setD(SLOT_MEM, 0);
            this.fcom(s0, SLOT_MEM, false, 0);
            return;
          default: // 5: FXAM
            this.fxam(s0);
            return;
        }
      case 5:
        this.fldConst(i);
        return;
      case 6:
        this.d9f0(i, s0);
        return;
      default:
        this.d9f8(i, s0);
        return;
    }
  }

  private fxam(s: number): void {
    this.sw &= ~CC_MASK;
    const neg = this.hasRaw[s] ? (this.se[s] & 0x8000) !== 0 : this.val[s] < 0 || (this.val[s] === 0 && 1 / this.val[s] < 0);
    if (neg) this.sw |= C1;
    if (this.empty[s]) {
      this.sw |= C3 | C0;
      return;
    }
    switch (this.cls(s)) {
      case CLS_UNSUPPORTED: break;
      case CLS_QNAN:
      case CLS_SNAN: this.sw |= C0; break;
      case CLS_NORMAL: this.sw |= C2; break;
      case CLS_INF: this.sw |= C2 | C0; break;
      case CLS_ZERO: this.sw |= C3; break;
      default: this.sw |= C3 | C2; break; // denormal
    }
  }

  private fldConst(i: number): void {
    const d = this.push();
    if (d < 0) return;
    const rc = this.rc();
    const upish = rc === RC_NEAREST || rc === RC_UP;
    switch (i) {
      case 0: this.setD(d, 1); return;
      case 1: this.setX(d, 0x4000, 0xd49a784b, rc === RC_UP ? 0xcd1b8aff : 0xcd1b8afe); return; // log2(10)
      case 2: this.setX(d, 0x3fff, 0xb8aa3b29, upish ? 0x5c17f0bc : 0x5c17f0bb); return; // log2(e)
      case 3: this.setX(d, 0x4000, 0xc90fdaa2, upish ? 0x2168c235 : 0x2168c234); return; // pi
      case 4: this.setX(d, 0x3ffd, 0x9a209a84, upish ? 0xfbcff799 : 0xfbcff798); return; // log10(2)
      case 5: this.setX(d, 0x3ffe, 0xb17217f7, upish ? 0xd1cf79ac : 0xd1cf79ab); return; // ln(2)
      default: this.setD(d, 0); return;
    }
  }

  /** prepares a one-operand operation on ST0: returns its class or −1 if handled (empty, NaN, unmasked DE) */
  private prep1(s0: number): number {
    if (this.empty[s0]) {
      this.underflow(s0);
      return -1;
    }
    const c = this.cls(s0);
    if (c >= CLS_QNAN) {
      this.nanResult(s0, s0, s0, c, c);
      return -1;
    }
    if (c === CLS_DENORMAL) {
      this.exc |= DE;
      if (!(this.cw & DE)) return -1;
    }
    return c;
  }

  /**
   * Prepares FPTAN/FSINCOS (one operand, two results). Empty, NaN, unsupported and infinite operands give
   * the masked response in both results (as measured on hardware: ST0 and the pushed value are the same
   * NaN). Returns the operand class, or −1 when handled.
   */
  private prep2push(s0: number): number {
    const full = !this.empty[(this.top - 1) & 7];
    if (this.empty[s0]) {
      if (!this.underflow(s0)) return -1;
      if (!full) this.setIndef(this.push());
      else this.push();
      return -1;
    }
    const c = this.cls(s0);
    if (c >= CLS_QNAN || c === CLS_INF) {
      this.sw &= ~C2;
      if (c === CLS_INF ? !this.invalid(s0) : !this.nanResult(s0, s0, s0, c, c)) return -1;
      this.copy(SLOT_MEM, s0);
      const d = this.push();
      if (d >= 0) this.copy(d, SLOT_MEM);
      return -1;
    }
    if (c === CLS_DENORMAL) {
      this.exc |= DE;
      if (!(this.cw & DE)) return -1;
    }
    return c;
  }

  /** prepares a two-operand operation on ST0/ST1 with the result into dst: class of ST0 ×8 + class of ST1, or −1 */
  private prep2(s0: number, s1: number, dst: number): number {
    if (this.empty[s0] || this.empty[s1]) {
      return this.underflow(dst) ? -2 : -1;
    }
    const c0 = this.cls(s0), c1 = this.cls(s1);
    if (c0 >= CLS_QNAN || c1 >= CLS_QNAN) return this.nanResult(dst, s0, s1, c0, c1) ? -2 : -1;
    if (c0 === CLS_DENORMAL || c1 === CLS_DENORMAL) {
      this.exc |= DE;
      if (!(this.cw & DE)) return -1;
    }
    return c0 * 8 + c1;
  }

  /** D9 F0–F7 */
  private d9f0(i: number, s0: number): void {
    const s1 = this.st(1);
    switch (i) {
      case 0: { // F2XM1
        const c = this.prep1(s0);
        if (c < 0) return;
        const x = this.val[s0];
        if (c === CLS_ZERO) return;
        if (c === CLS_INF) {
          this.setD(s0, x > 0 ? x : -1);
          return;
        }
        if (!this.hasRaw[s0] && (x === 1 || x === -1)) {
          this.setD(s0, x === 1 ? 1 : -0.5);
          return;
        }
        if (Math.abs(x) <= 1 && Math.abs(x) > 1e-150) {
          this.ddOf(s0);
          ddMul(ddH, ddL, Math.LN2, LN2_LO);
          ddExpm1(ddH, ddL);
          this.ddDeliver(s0, ddH, ddL);
          return;
        }
        const p = x * Math.LN2;
        const pe = prodErr(x, Math.LN2, p) + x * LN2_LO;
        const e = Math.expm1(p);
        this.deliver(s0, e + (1 + e) * pe, NaN, true);
        return;
      }
      case 1: { // FYL2X: ST1 ← ST1 · log2(ST0), pop
        const c = this.prep2(s0, s1, s1);
        if (c === -2) this.pop();
        if (c < 0) return;
        const x = this.val[s0], y = this.val[s1];
        const l = Math.log2(x);
        const r = y * l;
        if (r !== r) {
          if (this.invalid(s1)) this.pop();
          return;
        }
        if (x === 0 && y - y === 0) {
          this.exc |= ZE;
          if (!(this.cw & ZE)) return;
          this.setD(s1, r);
          this.pop();
          return;
        }
        let err: number = NaN;
        if (r - r !== 0 || r === 0) err = 0;
        else if (Math.pow(2, l) === x && l === Math.round(l)) err = prodErr(y, l, r);
        if (this.deliver(s1, r, err, (c >> 3) !== CLS_INF && (c & 7) !== CLS_INF)) this.pop();
        return;
      }
      case 2: { // FPTAN
        const c = this.prep2push(s0);
        if (c < 0) return;
        const x = this.val[s0];
        if (Math.abs(x) >= 9223372036854775808) {
          this.sw |= C2;
          return;
        }
        this.sw &= ~C2;
        const t = (this.top - 1) & 7;
        if (!this.empty[t]) {
          this.push();
          return;
        }
        if (x !== 0) this.exc |= PE;
        const ax = Math.abs(x);
        if (ax > 1e-150 && ax < 1048576) {
          // tan in double-double after reduction by π/2 (three-part constant), rounded once
          this.ddOf(s0);
          const k = Math.round(ddH / PIO2_1);
          if (k !== 0) {
            const xh = ddH, xl = ddL;
            ddMul(k, 0, PIO2_1, PIO2_2);
            ddAdd(xh, xl, -ddH, -ddL);
            ddAdd(ddH, ddL, -k * PIO2_3, 0);
          }
          ddSinCos(ddH, ddL);
          if (k & 1) ddDiv(-cosH, -cosL, sinH, sinL);
          else ddDiv(sinH, sinL, cosH, cosL);
          this.ddDeliver(s0, ddH, ddL);
        } else this.setD(s0, Math.tan(x));
        const d = this.push();
        if (d >= 0) this.setD(d, 1);
        return;
      }
      case 3: { // FPATAN: ST1 ← atan2(ST1, ST0), pop
        const c = this.prep2(s0, s1, s1);
        if (c === -2) this.pop();
        if (c < 0) return;
        const r = Math.atan2(this.val[s1], this.val[s0]);
        if (this.deliver(s1, r, r === 0 ? 0 : NaN, false)) this.pop();
        return;
      }
      case 4: // FXTRACT
        this.fxtract(s0);
        return;
      case 5: // FPREM1
        this.fprem(s0, s1, true);
        return;
      case 6: // FDECSTP
        this.top = (this.top - 1) & 7;
        return;
      default: // FINCSTP
        this.top = (this.top + 1) & 7;
        return;
    }
  }

  /** D9 F8–FF */
  private d9f8(i: number, s0: number): void {
    const s1 = this.st(1);
    switch (i) {
      case 0: // FPREM
        this.fprem(s0, s1, false);
        return;
      case 1: { // FYL2XP1: ST1 ← ST1 · log2(ST0 + 1), pop
        const c = this.prep2(s0, s1, s1);
        if (c === -2) this.pop();
        if (c < 0) return;
        const x = this.val[s0], y = this.val[s1];
        const r = y * (Math.log1p(x) / Math.LN2);
        if (r !== r) {
          if (this.invalid(s1)) this.pop();
          return;
        }
        if (this.deliver(s1, r, x === 0 || r - r !== 0 ? 0 : NaN, false)) this.pop();
        return;
      }
      case 2: { // FSQRT
        const c = this.prep1(s0);
        if (c < 0) return;
        const x = this.val[s0];
        if (c === CLS_ZERO) return;
        if (this.negOf(s0)) {
          this.invalid(s0);
          return;
        }
        if (c === CLS_INF) return;
        if (!this.hasRaw[s0] && ((this.cw >> 8) & 3) !== 0 && x < TWO_P900 && x > TWO_M900) {
          const r = Math.sqrt(x);
          const p = r * r;
          const rem = x - p - prodErr(r, r, p);
          if (rem === 0 || ((this.cw >> 8) & 3) === 2) {
            this.fastDeliver(s0, r, rem);
            return;
          }
        }
        this.sqrtExact(s0, s0);
        return;
      }
      case 3: { // FSINCOS
        const c = this.prep2push(s0);
        if (c < 0) return;
        const x = this.val[s0];
        if (Math.abs(x) >= 9223372036854775808) {
          this.sw |= C2;
          return;
        }
        this.sw &= ~C2;
        if (!this.empty[(this.top - 1) & 7]) {
          this.push();
          return;
        }
        this.exc |= PE;
        const cs = Math.cos(x);
        this.setD(s0, Math.sin(x));
        const d = this.push();
        if (d >= 0) this.setD(d, cs);
        return;
      }
      case 4: // FRNDINT
        this.frndint(s0);
        return;
      case 5: // FSCALE
        this.fscale(s0, s1);
        return;
      default: { // 6 FSIN, 7 FCOS
        const c = this.prep1(s0);
        if (c < 0) return;
        const x = this.val[s0];
        if (c === CLS_INF) {
          this.invalid(s0);
          this.sw &= ~C2;
          return;
        }
        if (Math.abs(x) >= 9223372036854775808) {
          this.sw |= C2;
          return;
        }
        this.sw &= ~C2;
        if (i === 6) {
          if (x !== 0) this.exc |= PE;
          if (x !== 0) this.setD(s0, Math.sin(x));
        } else {
          if (x !== 0) this.exc |= PE;
          this.setD(s0, Math.cos(x));
        }
        return;
      }
    }
  }

  private fxtract(s0: number): void {
    if (this.empty[s0]) {
      // masked: ST0 ← indefinite, then push indefinite
      if (!this.underflow(s0)) return;
      const d = this.push();
      if (d >= 0) this.setIndef(d);
      return;
    }
    const c = this.cls(s0);
    if (!this.empty[(this.top - 1) & 7]) {
      this.push();
      return;
    }
    if (c >= CLS_QNAN) {
      if (!this.nanResult(s0, s0, s0, c, c)) return;
      this.copy(SLOT_MEM, s0);
      const d = this.push();
      if (d >= 0) this.copy(d, SLOT_MEM);
      return;
    }
    if (c === CLS_ZERO) {
      this.exc |= ZE;
      if (!(this.cw & ZE)) return;
      this.copy(SLOT_MEM, s0);
      this.setD(s0, -Infinity);
      const d = this.push();
      if (d >= 0) this.copy(d, SLOT_MEM);
      return;
    }
    if (c === CLS_INF) {
      this.copy(SLOT_MEM, s0);
      this.setD(s0, Infinity);
      const d = this.push();
      if (d >= 0) this.copy(d, SLOT_MEM);
      return;
    }
    if (c === CLS_DENORMAL) {
      this.exc |= DE;
      if (!(this.cw & DE)) return;
    }
    this.raw(s0);
    let se = X80[2], hi = X80[1], lo = X80[0];
    let E = (se & 0x7fff) === 0 ? -16382 : (se & 0x7fff) - 16383;
    if (!(hi & 0x80000000)) {
      const s = hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
      if (s >= 32) {
        hi = (lo << (s - 32)) >>> 0;
        lo = 0;
      } else {
        hi = ((hi << s) | (lo >>> (32 - s))) >>> 0;
        lo = (lo << s) >>> 0;
      }
      E -= s;
    }
    se = (se & 0x8000) | 16383;
    this.setD(s0, E);
    const d = this.push();
    if (d >= 0) this.setX(d, se, hi, lo);
  }

  private frndint(s0: number): void {
    const c = this.prep1(s0);
    if (c < 0 || c === CLS_ZERO || c === CLS_INF) return;
    const v = this.val[s0];
    if (!this.hasRaw[s0]) {
      if (v >= 4503599627370496 || v <= -4503599627370496) return; // already an integer
      let r: number;
      switch (this.rc()) {
        case RC_NEAREST:
          r = Math.round(v);
          if (r - v === 0.5 && r % 2 !== 0) r -= 1;
          break;
        case RC_DOWN: r = Math.floor(v); break;
        case RC_UP: r = Math.ceil(v); break;
        default: r = Math.trunc(v); break;
      }
      if (r === 0 && v < 0) r = -0;
      if (r !== v) {
        this.exc |= PE;
        if (Math.abs(r) > Math.abs(v)) this.sw |= C1;
      }
      this.setD(s0, r);
      return;
    }
    this.raw(s0);
    const se = X80[2];
    if ((se & 0x7fff) - 16383 >= 63) return;
    roundX80ToInt(se, X80[1], X80[0], this.rc());
    if (rfInexact) {
      this.exc |= PE;
      if (rfAway) this.sw |= C1;
    }
    if (intOverflow) {
      // rounded up to 2^64
      this.setX(s0, (se & 0x8000) | (16383 + 64), 0x80000000, 0);
      return;
    }
    intToX80((se & 0x8000) !== 0, intHi, intLo);
    this.setFromX80(s0);
  }

  private fscale(s0: number, s1: number): void {
    const c = this.prep2(s0, s1, s0);
    if (c < 0) return;
    const c0 = c >> 3, c1 = c & 7;
    const y = this.val[s1];
    if (c1 === CLS_INF) {
      if ((c0 === CLS_ZERO && y > 0) || (c0 === CLS_INF && y < 0)) {
        this.invalid(s0);
        return;
      }
      if (c0 === CLS_ZERO || c0 === CLS_INF) return;
      const neg = this.hasRaw[s0] ? (this.se[s0] & 0x8000) !== 0 : this.val[s0] < 0;
      this.setD(s0, y > 0 ? (neg ? -Infinity : Infinity) : neg ? -0 : 0);
      return;
    }
    if (c0 === CLS_ZERO || c0 === CLS_INF) return;
    let n = Math.trunc(y);
    if (n > 100000) n = 100000;
    if (n < -100000) n = -100000;
    this.raw(s0);
    let se = X80[2], hi = X80[1], lo = X80[0];
    let E = (se & 0x7fff) === 0 ? -16382 : (se & 0x7fff) - 16383;
    if (!(hi & 0x80000000)) {
      const s = hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
      if (s >= 32) {
        hi = (lo << (s - 32)) >>> 0;
        lo = 0;
      } else {
        hi = ((hi << s) | (lo >>> (32 - s))) >>> 0;
        lo = (lo << s) >>> 0;
      }
      E -= s;
    }
    const ne = E + n;
    if (ne >= -16382 && ne <= 16383) {
      this.setX(s0, (se & 0x8000) | (ne + 16383), hi, lo);
      return;
    }
    const neg = (se & 0x8000) !== 0;
    if (ne > 16383) {
      this.exc |= OE | PE;
      if (!(this.cw & OE)) return;
      this.sw |= C1;
      this.setD(s0, neg ? -Infinity : Infinity);
      return;
    }
    // 80-bit denormal or zero result
    const shift = -16382 - ne;
    shr64(hi, lo, shift);
    const up = roundUp(neg, shLo & 1, shRound, shSticky, this.rc());
    const inexact = (shRound | shSticky) !== 0;
    if (inexact || !(this.cw & UE)) {
      this.exc |= UE;
      if (!(this.cw & UE)) return;
    }
    let mh = shHi, ml = shLo;
    if (up) {
      ml = (ml + 1) >>> 0;
      if (ml === 0) mh = (mh + 1) >>> 0;
    }
    if (inexact) {
      this.exc |= PE;
      if (up) this.sw |= C1;
    }
    se = neg ? 0x8000 : 0;
    this.setX(s0, mh & 0x80000000 ? se | 1 : se, mh, ml);
  }

  private fprem(s0: number, s1: number, ieee: boolean): void {
    const c = this.prep2(s0, s1, s0);
    if (c < 0) {
      this.sw &= ~(C0 | C2 | C3);
      return;
    }
    const c0 = c >> 3, c1 = c & 7;
    this.sw &= ~(C0 | C1 | C2 | C3);
    if (c0 === CLS_INF || c1 === CLS_ZERO) {
      this.invalid(s0);
      return;
    }
    if (c0 === CLS_ZERO || c1 === CLS_INF) return; // ST0 unchanged, quotient 0
    const x = this.val[s0], y = this.val[s1];
    const ax = Math.abs(x), ay = Math.abs(y);
    const d = ilogb(ax) - ilogb(ay);
    if (d >= 64) {
      // partial remainder (the AMD-documented chunk that Intel parts follow too)
      const n = 32 + (d % 32);
      const r = ax % ldexp(ay, d - n);
      this.sw |= C2;
      this.setD(s0, x < 0 ? -r : r);
      return;
    }
    let r = ax % ay;
    const r8 = ay * 8 === Infinity ? ax : ax % (ay * 8);
    let q = Math.round((r8 - r) / ay) & 7;
    if (ieee) {
      const half = ay / 2;
      if (r > half || (r === half && (q & 1) !== 0)) {
        r -= ay;
        q = (q + 1) & 7;
      }
    }
    if (q & 4) this.sw |= C0;
    if (q & 2) this.sw |= C3;
    if (q & 1) this.sw |= C1;
    if (r === 0) r = 0;
    this.setD(s0, x < 0 ? -r : r);
  }
}

/** condition codes of FCMOVB/E/BE/U for cpu.cond(); DB forms use the negation (cc ^ 1) */
const FCMOV_CC = new Uint8Array([0x2, 0x4, 0x6, 0xa]);

/** unbiased exponent of a finite nonzero double (denormals normalized) */
function ilogb(x: number): number {
  f64[0] = x;
  const e = (f64u[1] >>> 20) & 0x7ff;
  if (e !== 0) return e - 1023;
  const mh = f64u[1] & 0xfffff;
  const lz = mh !== 0 ? Math.clz32(mh) - 12 : 20 + Math.clz32(f64u[0]);
  return -1023 - lz;
}
