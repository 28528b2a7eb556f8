/**
 * The x86 CPU: architectural state, memory access through segmentation and the TLB, instruction fetch,
 * ModRM decoding, lazy flags, exceptions and the interpreter loop. Instruction semantics live in
 * core/ops/*.ts (one file per family) and are registered into one opcode table (core/optable.ts);
 * protected-mode control transfers, gates, task switches and interrupt delivery live in core/protmode.ts.
 *
 * Hot-path rules: no allocation or closures per instruction, no exceptions except for guest faults
 * (one preallocated sentinel is thrown and caught by run()), typed arrays for registers and the TLB.
 */
import type { IoBus } from './iobus';
import { Memory, PageKind } from './memory';
import { Fpu } from './fpu';
import { OPS, OPS_0F } from './optable';
import * as pm from './protmode';

import { FAULT, TLB_VALID, TLB_NW_SUP, TLB_NW_USER, TLB_NO_USER, TLB_MMIO, TLB_GLOBAL } from './defs';
import {
  EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI, ES, CS, SS, DS, FS, GS,
  F_CF, F_PF, F_AF, F_ZF, F_SF, F_TF, F_IF, F_OF, F_VM, F_ARITH, F_VALID,
  CR0_PE, CR0_WP, CR0_PG, CR4_PSE, CR4_PGE,
  EX_DB, EX_NMI, EX_SS, EX_GP, EX_UD, EX_PF, EX_DF,
  LZ_ADD, LZ_SUB, LZ_LOGIC, INT_HW, INT_EXC, INT_NMI,
} from './defs';
export * from './defs';

/** source of maskable interrupts (the PIC or the local APIC) */
export interface InterruptController {
  /** the vector of the highest-priority pending interrupt, acknowledged (INTA cycle) */
  acknowledge(): number;
}

const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i, p = 1;
  while (b) {
    p ^= b & 1;
    b >>= 1;
  }
  PARITY[i] = p ? F_PF : 0;
}

const TLB_LIST_MAX = 4096;

/** the byte-register number (AL..BH) → index into the Uint8Array view of regs */
export const R8_INDEX = new Uint8Array([0, 4, 8, 12, 1, 5, 9, 13]);

/** Cpu.saveState(): every field named as in the Cpu class (plain JSON data) */
export interface CpuState {
  regs: number[];
  eip: number;
  instrStart: number;
  flags: number;
  lazyMask: number;
  lazyOp: number;
  lazyA: number;
  lazyB: number;
  lazyRes: number;
  lazyTop: number;
  segSel: number[];
  segBase: number[];
  segLimit: number[];
  segAr: number[];
  segLoR: number[];
  segHiR: number[];
  segLoW: number[];
  segHiW: number[];
  gdtBase: number;
  gdtLimit: number;
  idtBase: number;
  idtLimit: number;
  ldtSel: number;
  ldtBase: number;
  ldtLimit: number;
  ldtAr: number;
  trSel: number;
  trBase: number;
  trLimit: number;
  trAr: number;
  cr0: number;
  cr2: number;
  cr3: number;
  cr4: number;
  dr: number[];
  sysenterCs: number;
  sysenterEsp: number;
  sysenterEip: number;
  apicBase: number;
  tscOffset: number;
  cpl: number;
  code32: boolean;
  stack32: boolean;
  protectedMode: boolean;
  osize32: boolean;
  asize32: boolean;
  segOv: number;
  rep: number;
  eaSeg: number;
  eaOff: number;
  attn: boolean;
  halted: boolean;
  intr: boolean;
  nmiPending: boolean;
  nmiBlocked: boolean;
  shadow: boolean;
  ssShadow: boolean;
  trapNext: boolean;
  exitRequested: boolean;
  excVector: number;
  excCode: number;
  delivering: number;
  deliveringDouble: boolean;
  instructionCount: number;
  /** filled TLB entries as pairs: linear page number, entry */
  tlb: number[];
  fpu: unknown;
}

export class Cpu {
  readonly mem: Memory;
  readonly io: IoBus;
  mem8: Uint8Array;
  mem32: Int32Array;

  // ---- general registers ----
  readonly regs = new Int32Array(8);
  readonly r16 = new Uint16Array(this.regs.buffer);
  readonly r8 = new Uint8Array(this.regs.buffer);
  /** offset of the next instruction byte within CS (unsigned) */
  eip = 0;
  /** EIP of the instruction being executed (faults restart here) */
  instrStart = 0;

  // ---- flags ----
  /** EFLAGS; the bits in lazyMask are stale and must be computed from the lazy state */
  flags = 2;
  lazyMask = 0;
  lazyOp = LZ_LOGIC;
  lazyA = 0;
  lazyB = 0;
  lazyRes = 0;
  /** index of the sign bit of the last operation: 7, 15 or 31 */
  lazyTop = 31;

  // ---- segments (cached descriptors) ----
  readonly segSel = new Uint16Array(6);
  readonly segBase = new Int32Array(6);
  /** byte-granular limit (unsigned, as a double) */
  readonly segLimit = new Float64Array(6);
  /** access rights: descriptor bits 8..15 in bits 0..7, bits 20..23 in bits 12..15 */
  readonly segAr = new Uint16Array(6);
  /** valid offset ranges for reads and writes, derived from limit and type (lo > hi means unusable) */
  readonly segLoR = new Float64Array(6);
  readonly segHiR = new Float64Array(6);
  readonly segLoW = new Float64Array(6);
  readonly segHiW = new Float64Array(6);

  // descriptor tables and system segments
  gdtBase = 0;
  gdtLimit = 0xffff;
  idtBase = 0;
  idtLimit = 0x3ff;
  ldtSel = 0;
  ldtBase = 0;
  ldtLimit = 0;
  ldtAr = 0;
  trSel = 0;
  trBase = 0;
  trLimit = 0;
  trAr = 0;

  // control registers
  cr0 = 0x60000010;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  readonly dr = new Int32Array(8);

  // MSRs
  sysenterCs = 0;
  sysenterEsp = 0;
  sysenterEip = 0;
  apicBase = 0xfee00900 | 0;
  /** TSC = instructionCount + tscOffset (or from the clock, see tscSource) */
  tscOffset = 0;
  /** returns the current TSC value (set by the machine to derive it from its clock) */
  tscSource: () => number = () => this.instructionCount;
  /** a local APIC is present (CPUID.APIC, the APIC base MSR) */
  hasApic = false;
  /** called after the APIC base MSR changed */
  onApicBaseChange: () => void = () => {};

  // ---- mode ----
  cpl = 0;
  /** CS is a 32-bit segment */
  code32 = false;
  /** SS is a 32-bit stack (ESP vs SP) */
  stack32 = false;
  /** CR0.PE */
  protectedMode = false;

  // ---- per-instruction decode state ----
  osize32 = false;
  asize32 = false;
  /** segment override or -1 */
  segOv = -1;
  /** 0, 0xF2 (REPNE) or 0xF3 (REP/REPE) */
  rep = 0;
  /** segment chosen by the last ModRM decode */
  eaSeg = DS;
  /** offset decoded by instruction handlers that split decode and access */
  eaOff = 0;

  // ---- TLB ----
  readonly tlb = new Int32Array(1 << 20);
  private readonly tlbList = new Int32Array(TLB_LIST_MAX);
  private tlbCount = 0;
  private tlbOverflow = false;
  /** masks and the expected value (TLB_VALID) for fast reads/writes at the current CPL */
  readMask = TLB_VALID | TLB_MMIO;
  writeMask = TLB_VALID | TLB_MMIO | TLB_NW_SUP;

  // ---- instruction fetch window: eip in [fLo, fHi) reads mem8[eip + fDelta] ----
  private fLo = 0;
  private fHi = 0;
  private fDelta = 0;

  // ---- interrupts and run state ----
  /** anything to look at between instructions (interrupt, halt, trap, exit request) */
  attn = true;
  halted = false;
  /** INTR line from the interrupt controller */
  intr = false;
  nmiPending = false;
  /** NMIs blocked until the next IRET */
  nmiBlocked = false;
  /** interrupts inhibited for one instruction (after STI, MOV SS, POP SS) */
  shadow = false;
  /** debug traps also held back for one instruction (after MOV SS, POP SS) */
  ssShadow = false;
  private trapNext = false;
  private exitRequested = false;
  pic: InterruptController | null = null;
  /** called on a triple fault */
  onShutdown: (why: string) => void = () => {};
  /** FERR# output for the PC's IRQ13 path (CR0.NE = 0) */
  onFerr: (asserted: boolean) => void = () => {};

  // ---- exceptions ----
  excVector = 0;
  excCode = -1;
  /** vector being delivered (for double-fault rules), -1 when none */
  delivering = -1;
  /** set while delivering an exception that was itself raised while delivering one */
  private deliveringDouble = false;

  instructionCount = 0;
  readonly fpu: Fpu;

  constructor(mem: Memory, io: IoBus) {
    this.mem = mem;
    this.io = io;
    this.mem8 = mem.mem8;
    this.mem32 = mem.mem32;
    this.fpu = new Fpu(this);
    mem.onMapChange = () => this.flushTlb(true);
    this.reset();
  }

  // =====================================================================================
  // reset and mode bookkeeping
  // =====================================================================================

  reset(): void {
    this.regs.fill(0);
    this.regs[EDX] = 0x663; // family 6, model 6, stepping 3
    this.flags = 2;
    this.lazyMask = 0;
    this.cr0 = 0x60000010;
    this.cr2 = this.cr3 = this.cr4 = 0;
    this.dr.fill(0);
    this.dr[6] = 0xffff0ff0 | 0;
    this.dr[7] = 0x400;
    this.gdtBase = 0;
    this.gdtLimit = 0xffff;
    this.idtBase = 0;
    this.idtLimit = 0x3ff;
    this.ldtSel = this.ldtBase = 0;
    this.ldtLimit = 0xffff;
    this.ldtAr = 0x82;
    this.trSel = this.trBase = 0;
    this.trLimit = 0xffff;
    this.trAr = 0x8b;
    for (let s = 0; s < 6; s++) this.setSegCache(s, 0, 0, 0xffff, 0x93);
    this.setSegCache(CS, 0xf000, 0xffff0000 | 0, 0xffff, 0x9b);
    this.eip = 0xfff0;
    this.sysenterCs = this.sysenterEsp = this.sysenterEip = 0;
    this.apicBase = 0xfee00900 | 0;
    this.cpl = 0;
    this.protectedMode = false;
    this.halted = false;
    this.intr = false;
    this.nmiPending = false;
    this.nmiBlocked = false;
    this.shadow = false;
    this.ssShadow = false;
    this.trapNext = false;
    this.delivering = -1;
    this.deliveringDouble = false;
    this.fpu.reset();
    this.updateMode();
    this.flushTlb(true);
    this.attn = true;
  }

  /** recomputes derived mode state after CR0, CS, SS, EFLAGS.VM or CPL changed */
  updateMode(): void {
    this.protectedMode = (this.cr0 & CR0_PE) !== 0;
    this.code32 = (this.segAr[CS] & 0x4000) !== 0;
    this.stack32 = (this.segAr[SS] & 0x4000) !== 0;
    const user = this.cpl === 3;
    this.readMask = TLB_VALID | TLB_MMIO | (user ? TLB_NO_USER : 0);
    this.writeMask = TLB_VALID | TLB_MMIO | (user ? TLB_NO_USER | TLB_NW_USER : TLB_NW_SUP);
    this.fLo = this.fHi = 0;
  }

  /** loads a segment's descriptor cache directly (no checks) and derives the access ranges */
  setSegCache(seg: number, sel: number, base: number, limit: number, ar: number): void {
    this.segSel[seg] = sel;
    this.segBase[seg] = base | 0;
    this.segLimit[seg] = limit >>> 0;
    this.segAr[seg] = ar;
    this.deriveSeg(seg);
    if (seg === CS || seg === SS) {
      this.code32 = (this.segAr[CS] & 0x4000) !== 0;
      this.stack32 = (this.segAr[SS] & 0x4000) !== 0;
      if (seg === CS) this.fLo = this.fHi = 0;
    }
  }

  /** marks a segment register unusable (null selector loaded in protected mode) */
  setSegNull(seg: number, sel: number): void {
    this.segSel[seg] = sel;
    this.segBase[seg] = 0;
    this.segLimit[seg] = 0;
    this.segAr[seg] = 0;
    this.segLoR[seg] = this.segLoW[seg] = 1;
    this.segHiR[seg] = this.segHiW[seg] = 0;
  }

  private deriveSeg(seg: number): void {
    const ar = this.segAr[seg];
    const limit = this.segLimit[seg];
    if (!(ar & 0x80)) {
      // not present / unusable
      this.segLoR[seg] = this.segLoW[seg] = 1;
      this.segHiR[seg] = this.segHiW[seg] = 0;
      return;
    }
    const type = ar & 0xf;
    if (ar & 0x10 && !(type & 8) && type & 4) {
      // expand-down data
      const top = ar & 0x4000 ? 0xffffffff : 0xffff;
      this.segLoR[seg] = limit + 1;
      this.segHiR[seg] = top;
    } else {
      this.segLoR[seg] = 0;
      this.segHiR[seg] = limit;
    }
    const isCode = (ar & 0x10) !== 0 && (type & 8) !== 0;
    const readable = !isCode || (type & 2) !== 0 || !(ar & 0x10);
    const writable = (ar & 0x10) !== 0 && !isCode && (type & 2) !== 0;
    if (!readable && this.protectedMode && !(this.flags & F_VM)) {
      this.segLoR[seg] = 1;
      this.segHiR[seg] = 0;
    }
    if (writable || !this.protectedMode || this.flags & F_VM) {
      this.segLoW[seg] = this.segLoR[seg] === 1 && this.segHiR[seg] === 0 ? 0 : this.segLoR[seg];
      this.segHiW[seg] = this.segLoR[seg] === 1 && this.segHiR[seg] === 0 ? limit : this.segHiR[seg];
    } else {
      this.segLoW[seg] = 1;
      this.segHiW[seg] = 0;
    }
  }

  /** re-derives all segment ranges (after a mode change: real ↔ protected) */
  rederiveSegments(): void {
    for (let s = 0; s < 6; s++) if (this.segAr[s] !== 0 || !this.protectedMode) this.deriveSeg(s);
  }

  /** sets CPL and the TLB masks that depend on it */
  setCpl(cpl: number): void {
    this.cpl = cpl;
    this.updateMode();
  }

  requestExit(): void {
    this.exitRequested = true;
    this.attn = true;
  }

  // =====================================================================================
  // snapshots
  // =====================================================================================

  /**
   * The whole CPU as plain data, taken between instructions: registers, lazy flags, descriptor caches
   * with their derived ranges, system registers, MSRs, mode, pending interrupt/exception state, the
   * instruction count, the FPU, and the TLB's filled entries (so stale translations the guest has not
   * flushed yet survive a restore exactly as they would have survived without one).
   */
  saveState(): CpuState {
    const tlb: number[] = [];
    if (this.tlbOverflow) {
      const t = this.tlb;
      for (let p = 0; p < t.length; p++) if (t[p] !== 0) tlb.push(p, t[p]);
    } else {
      for (let i = 0; i < this.tlbCount; i++) {
        const p = this.tlbList[i];
        if (this.tlb[p] !== 0) tlb.push(p, this.tlb[p]);
      }
    }
    return {
      regs: Array.from(this.regs),
      eip: this.eip,
      instrStart: this.instrStart,
      flags: this.flags,
      lazyMask: this.lazyMask,
      lazyOp: this.lazyOp,
      lazyA: this.lazyA,
      lazyB: this.lazyB,
      lazyRes: this.lazyRes,
      lazyTop: this.lazyTop,
      segSel: Array.from(this.segSel),
      segBase: Array.from(this.segBase),
      segLimit: Array.from(this.segLimit),
      segAr: Array.from(this.segAr),
      segLoR: Array.from(this.segLoR),
      segHiR: Array.from(this.segHiR),
      segLoW: Array.from(this.segLoW),
      segHiW: Array.from(this.segHiW),
      gdtBase: this.gdtBase,
      gdtLimit: this.gdtLimit,
      idtBase: this.idtBase,
      idtLimit: this.idtLimit,
      ldtSel: this.ldtSel,
      ldtBase: this.ldtBase,
      ldtLimit: this.ldtLimit,
      ldtAr: this.ldtAr,
      trSel: this.trSel,
      trBase: this.trBase,
      trLimit: this.trLimit,
      trAr: this.trAr,
      cr0: this.cr0,
      cr2: this.cr2,
      cr3: this.cr3,
      cr4: this.cr4,
      dr: Array.from(this.dr),
      sysenterCs: this.sysenterCs,
      sysenterEsp: this.sysenterEsp,
      sysenterEip: this.sysenterEip,
      apicBase: this.apicBase,
      tscOffset: this.tscOffset,
      cpl: this.cpl,
      code32: this.code32,
      stack32: this.stack32,
      protectedMode: this.protectedMode,
      osize32: this.osize32,
      asize32: this.asize32,
      segOv: this.segOv,
      rep: this.rep,
      eaSeg: this.eaSeg,
      eaOff: this.eaOff,
      attn: this.attn,
      halted: this.halted,
      intr: this.intr,
      nmiPending: this.nmiPending,
      nmiBlocked: this.nmiBlocked,
      shadow: this.shadow,
      ssShadow: this.ssShadow,
      trapNext: this.trapNext,
      exitRequested: this.exitRequested,
      excVector: this.excVector,
      excCode: this.excCode,
      delivering: this.delivering,
      deliveringDouble: this.deliveringDouble,
      instructionCount: this.instructionCount,
      tlb,
      fpu: this.fpu.saveState(),
    };
  }

  /** Loads a saveState() image. The TLB is flushed and refilled with the saved entries; the fetch window is dropped. */
  loadState(state: unknown): void {
    const s = state as CpuState;
    for (let i = 0; i < 8; i++) {
      this.regs[i] = s.regs[i] | 0;
      this.dr[i] = s.dr[i] | 0;
    }
    this.eip = s.eip >>> 0;
    this.instrStart = s.instrStart >>> 0;
    this.flags = s.flags | 0;
    this.lazyMask = s.lazyMask | 0;
    this.lazyOp = s.lazyOp | 0;
    this.lazyA = s.lazyA | 0;
    this.lazyB = s.lazyB | 0;
    this.lazyRes = s.lazyRes | 0;
    this.lazyTop = s.lazyTop | 0;
    for (let i = 0; i < 6; i++) {
      this.segSel[i] = s.segSel[i];
      this.segBase[i] = s.segBase[i] | 0;
      this.segLimit[i] = +s.segLimit[i];
      this.segAr[i] = s.segAr[i];
      this.segLoR[i] = +s.segLoR[i];
      this.segHiR[i] = +s.segHiR[i];
      this.segLoW[i] = +s.segLoW[i];
      this.segHiW[i] = +s.segHiW[i];
    }
    this.gdtBase = s.gdtBase | 0;
    this.gdtLimit = s.gdtLimit;
    this.idtBase = s.idtBase | 0;
    this.idtLimit = s.idtLimit;
    this.ldtSel = s.ldtSel;
    this.ldtBase = s.ldtBase | 0;
    this.ldtLimit = s.ldtLimit;
    this.ldtAr = s.ldtAr;
    this.trSel = s.trSel;
    this.trBase = s.trBase | 0;
    this.trLimit = s.trLimit;
    this.trAr = s.trAr;
    this.cr0 = s.cr0 | 0;
    this.cr2 = s.cr2 | 0;
    this.cr3 = s.cr3 | 0;
    this.cr4 = s.cr4 | 0;
    this.sysenterCs = s.sysenterCs;
    this.sysenterEsp = s.sysenterEsp;
    this.sysenterEip = s.sysenterEip;
    this.apicBase = s.apicBase | 0;
    this.tscOffset = s.tscOffset;
    this.cpl = s.cpl & 3;
    // derived masks first, then the saved mode bits exactly as they were
    this.updateMode();
    this.code32 = !!s.code32;
    this.stack32 = !!s.stack32;
    this.protectedMode = !!s.protectedMode;
    this.osize32 = !!s.osize32;
    this.asize32 = !!s.asize32;
    this.segOv = s.segOv;
    this.rep = s.rep;
    this.eaSeg = s.eaSeg;
    this.eaOff = s.eaOff;
    this.attn = !!s.attn;
    this.halted = !!s.halted;
    this.intr = !!s.intr;
    this.nmiPending = !!s.nmiPending;
    this.nmiBlocked = !!s.nmiBlocked;
    this.shadow = !!s.shadow;
    this.ssShadow = !!s.ssShadow;
    this.trapNext = !!s.trapNext;
    this.exitRequested = !!s.exitRequested;
    this.excVector = s.excVector;
    this.excCode = s.excCode;
    this.delivering = s.delivering;
    this.deliveringDouble = !!s.deliveringDouble;
    this.instructionCount = s.instructionCount;
    this.fpu.loadState(s.fpu);
    // the TLB: everything out, then the saved entries back in
    this.tlb.fill(0);
    this.tlbCount = 0;
    this.tlbOverflow = false;
    const t = s.tlb;
    for (let i = 0; i + 1 < t.length; i += 2) {
      const page = t[i] >>> 0;
      if (page < this.tlb.length && t[i + 1] !== 0) this.tlbInsert(page, t[i + 1] | 0);
    }
    this.fLo = this.fHi = 0;
    this.fDelta = 0;
  }

  // =====================================================================================
  // flags
  // =====================================================================================

  getCF(): number {
    if (!(this.lazyMask & F_CF)) return this.flags & F_CF;
    const a = this.lazyA, b = this.lazyB, r = this.lazyRes;
    switch (this.lazyOp) {
      case LZ_ADD:
        return (((a & b) | ((a | b) & ~r)) >>> this.lazyTop) & 1;
      case LZ_SUB:
        return (((~a & b) | ((~a | b) & r)) >>> this.lazyTop) & 1;
      default:
        return 0;
    }
  }

  getOF(): boolean {
    if (!(this.lazyMask & F_OF)) return (this.flags & F_OF) !== 0;
    const a = this.lazyA, b = this.lazyB, r = this.lazyRes;
    switch (this.lazyOp) {
      case LZ_ADD:
        return ((((a ^ r) & (b ^ r)) >>> this.lazyTop) & 1) !== 0;
      case LZ_SUB:
        return ((((a ^ b) & (a ^ r)) >>> this.lazyTop) & 1) !== 0;
      default:
        return false;
    }
  }

  getZF(): boolean {
    if (!(this.lazyMask & F_ZF)) return (this.flags & F_ZF) !== 0;
    return this.lazyRes << (31 - this.lazyTop) === 0;
  }

  getSF(): boolean {
    if (!(this.lazyMask & F_SF)) return (this.flags & F_SF) !== 0;
    return ((this.lazyRes >>> this.lazyTop) & 1) !== 0;
  }

  getPF(): boolean {
    if (!(this.lazyMask & F_PF)) return (this.flags & F_PF) !== 0;
    return PARITY[this.lazyRes & 0xff] !== 0;
  }

  getAF(): boolean {
    if (!(this.lazyMask & F_AF)) return (this.flags & F_AF) !== 0;
    if (this.lazyOp === LZ_LOGIC) return false;
    return ((this.lazyA ^ this.lazyB ^ this.lazyRes) & 0x10) !== 0;
  }

  /** EFLAGS with every lazy bit computed */
  getFlags(): number {
    let f = this.flags;
    const m = this.lazyMask;
    if (m) {
      f &= ~m;
      if (m & F_CF && this.getCF()) f |= F_CF;
      if (m & F_PF && this.getPF()) f |= F_PF;
      if (m & F_AF && this.getAF()) f |= F_AF;
      if (m & F_ZF && this.getZF()) f |= F_ZF;
      if (m & F_SF && this.getSF()) f |= F_SF;
      if (m & F_OF && this.getOF()) f |= F_OF;
    }
    return (f & F_VALID) | 2;
  }

  /** makes every flag concrete in this.flags */
  materializeFlags(): void {
    if (this.lazyMask) {
      this.flags = this.getFlags() | (this.flags & ~F_VALID & ~2);
      this.lazyMask = 0;
    }
  }

  /** sets the arithmetic flags from a value (SAHF, POPF …) leaving the others alone */
  setArithFlags(value: number, mask: number): void {
    this.materializeFlags();
    this.flags = (this.flags & ~mask) | (value & mask);
  }

  /**
   * Writes EFLAGS (POPF, IRET, task switch): `mask` says which bits may change. Handles VM, IF and TF
   * consequences (mode, pending interrupts).
   */
  setFlags(value: number, mask: number): void {
    this.materializeFlags(); // a partial mask must not lose the lazily-kept arithmetic flags
    const old = this.flags;
    this.flags = ((old & ~mask) | (value & mask) | 2) & F_VALID | 2;
    if ((old ^ this.flags) & F_VM) {
      this.updateMode();
      this.rederiveSegments();
    }
    if (this.flags & (F_IF | F_TF)) this.attn = true;
  }

  setCF(v: number): void {
    this.materializeFlags();
    this.flags = (this.flags & ~F_CF) | (v & 1);
  }

  /** condition code test for Jcc/SETcc/CMOVcc (cc = low nibble of the opcode) */
  cond(cc: number): boolean {
    let r: boolean;
    switch (cc >> 1) {
      case 0: r = this.getOF(); break;
      case 1: r = this.getCF() !== 0; break;
      case 2: r = this.getZF(); break;
      case 3: r = this.getCF() !== 0 || this.getZF(); break;
      case 4: r = this.getSF(); break;
      case 5: r = this.getPF(); break;
      case 6: r = this.getSF() !== this.getOF(); break;
      default: r = this.getZF() || this.getSF() !== this.getOF(); break;
    }
    return (cc & 1) !== 0 ? !r : r;
  }

  // ---- arithmetic helpers that set the lazy state; they return the result (not masked) ----

  add(a: number, b: number, top: number): number {
    const r = (a + b) | 0;
    this.lazyA = a;
    this.lazyB = b;
    this.lazyRes = r;
    this.lazyTop = top;
    this.lazyOp = LZ_ADD;
    this.lazyMask = F_ARITH;
    return r;
  }

  adc(a: number, b: number, top: number): number {
    const r = (a + b + this.getCF()) | 0;
    this.lazyA = a;
    this.lazyB = b;
    this.lazyRes = r;
    this.lazyTop = top;
    this.lazyOp = LZ_ADD;
    this.lazyMask = F_ARITH;
    return r;
  }

  sub(a: number, b: number, top: number): number {
    const r = (a - b) | 0;
    this.lazyA = a;
    this.lazyB = b;
    this.lazyRes = r;
    this.lazyTop = top;
    this.lazyOp = LZ_SUB;
    this.lazyMask = F_ARITH;
    return r;
  }

  sbb(a: number, b: number, top: number): number {
    const r = (a - b - this.getCF()) | 0;
    this.lazyA = a;
    this.lazyB = b;
    this.lazyRes = r;
    this.lazyTop = top;
    this.lazyOp = LZ_SUB;
    this.lazyMask = F_ARITH;
    return r;
  }

  logic(r: number, top: number): number {
    this.lazyRes = r;
    this.lazyTop = top;
    this.lazyOp = LZ_LOGIC;
    this.lazyMask = F_ARITH;
    return r;
  }

  inc(a: number, top: number): number {
    const cf = this.getCF();
    this.flags = (this.flags & ~F_CF) | cf;
    const r = (a + 1) | 0;
    this.lazyA = a;
    this.lazyB = 1;
    this.lazyRes = r;
    this.lazyTop = top;
    this.lazyOp = LZ_ADD;
    this.lazyMask = F_ARITH & ~F_CF;
    return r;
  }

  dec(a: number, top: number): number {
    const cf = this.getCF();
    this.flags = (this.flags & ~F_CF) | cf;
    const r = (a - 1) | 0;
    this.lazyA = a;
    this.lazyB = 1;
    this.lazyRes = r;
    this.lazyTop = top;
    this.lazyOp = LZ_SUB;
    this.lazyMask = F_ARITH & ~F_CF;
    return r;
  }

  /** result-derived flags (ZF, SF, PF) lazy from r; CF/OF/AF given explicitly */
  setResultFlags(r: number, top: number, cfofaf: number): void {
    this.lazyRes = r;
    this.lazyTop = top;
    this.lazyOp = LZ_LOGIC;
    this.flags = (this.flags & ~(F_CF | F_OF | F_AF)) | cfofaf;
    this.lazyMask = F_ZF | F_SF | F_PF;
  }

  // =====================================================================================
  // exceptions
  // =====================================================================================

  /** raises a fault/trap: vector with optional error code (-1 = none). Never returns. */
  raise(vector: number, code = -1): never {
    this.excVector = vector;
    this.excCode = code;
    throw FAULT;
  }

  gp(code = 0): never {
    return this.raise(EX_GP, code);
  }

  ud(): never {
    return this.raise(EX_UD);
  }

  /** called by run() when a fault was thrown */
  private handleFault(): void {
    const vec = this.excVector;
    const code = this.excCode;
    // faults restart the instruction; the instruction's partial register effects are undone by the
    // instructions themselves (they commit state only after their last faulting access)
    this.eip = this.instrStart;
    this.deliverException(vec, code);
  }

  /** delivers an exception with the double-fault and triple-fault rules */
  deliverException(vec: number, code: number): void {
    const prev = this.delivering;
    if (prev >= 0) {
      if (prev === EX_DF || this.deliveringDouble) {
        this.shutdown(`exception ${vec} while delivering a double fault`);
        return;
      }
      const contributory = (v: number) => v === 0 || (v >= 10 && v <= 13);
      const isDouble =
        (contributory(prev) && contributory(vec)) || (prev === EX_PF && (contributory(vec) || vec === EX_PF));
      if (isDouble) {
        vec = EX_DF;
        code = 0;
        this.deliveringDouble = true;
      }
    }
    this.delivering = vec;
    try {
      pm.deliverInterrupt(this, vec, INT_EXC, code);
      this.delivering = -1;
      this.deliveringDouble = false;
    } catch (e) {
      if (e !== FAULT) throw e;
      // a fault while delivering: recurse with the rules above
      this.eip = this.instrStart;
      this.deliverException(this.excVector, this.excCode);
      this.delivering = -1;
      this.deliveringDouble = false;
    }
  }

  private shutdown(why: string): void {
    this.delivering = -1;
    this.deliveringDouble = false;
    this.halted = true;
    this.flags &= ~F_IF;
    this.attn = true;
    this.exitRequested = true;
    this.onShutdown(why);
  }

  // =====================================================================================
  // segmentation
  // =====================================================================================

  /** the fault for a segment-limit or type violation on seg */
  segFault(seg: number): never {
    if (seg === SS) return this.raise(EX_SS, 0);
    return this.raise(EX_GP, 0);
  }

  /** linear address for reading len bytes at seg:off (checks limit and type) */
  linR(seg: number, off: number, len: number): number {
    if (off < this.segLoR[seg] || off + len - 1 > this.segHiR[seg]) this.segFault(seg);
    return (this.segBase[seg] + off) | 0;
  }

  /** linear address for writing len bytes at seg:off (checks limit and type) */
  linW(seg: number, off: number, len: number): number {
    if (off < this.segLoW[seg] || off + len - 1 > this.segHiW[seg]) this.segFault(seg);
    return (this.segBase[seg] + off) | 0;
  }

  // =====================================================================================
  // paging and the TLB
  // =====================================================================================

  /** flushes the TLB; global pages survive unless `all` */
  flushTlb(all: boolean): void {
    const tlb = this.tlb;
    if (this.tlbOverflow) {
      if (all || !(this.cr4 & CR4_PGE)) {
        tlb.fill(0);
        this.tlbCount = 0;
        this.tlbOverflow = false;
      } else {
        for (let i = 0; i < tlb.length; i++) if (tlb[i] !== 0 && !(tlb[i] & TLB_GLOBAL)) tlb[i] = 0;
        this.tlbCount = 0;
        this.tlbOverflow = true;
      }
    } else {
      const list = this.tlbList;
      let keep = 0;
      const keepGlobal = !all && (this.cr4 & CR4_PGE) !== 0;
      for (let i = 0; i < this.tlbCount; i++) {
        const p = list[i];
        if (keepGlobal && tlb[p] & TLB_GLOBAL) list[keep++] = p;
        else tlb[p] = 0;
      }
      this.tlbCount = keep;
    }
    this.fLo = this.fHi = 0;
  }

  /** INVLPG */
  invalidatePage(lin: number): void {
    this.tlb[lin >>> 12] = 0;
    this.fLo = this.fHi = 0;
  }

  private tlbInsert(page: number, entry: number): void {
    if (this.tlb[page] === 0) {
      if (this.tlbCount < TLB_LIST_MAX) this.tlbList[this.tlbCount++] = page;
      else this.tlbOverflow = true;
    }
    this.tlb[page] = entry;
  }

  /**
   * Translates a linear address (page walk), fills the TLB and returns the physical address.
   * Raises #PF on failure. `user` is true for CPL 3 accesses (not for implicit supervisor accesses).
   */
  translate(lin: number, write: boolean, user: boolean): number {
    const a20 = this.mem.a20Mask;
    const page = lin >>> 12;
    if (!(this.cr0 & CR0_PG)) {
      const phys = lin & a20 & ~0xfff;
      this.tlbInsert(page, phys | this.physFlags(phys >>> 12, true) | TLB_VALID);
      return (phys | (lin & 0xfff)) >>> 0;
    }
    const mem = this.mem;
    const pdeAddr = ((this.cr3 & ~0xfff) | ((lin >>> 20) & 0xffc)) & a20;
    const pde = mem.read32(pdeAddr);
    if (!(pde & 1)) this.pageFault(lin, 0, write, user);
    let phys: number;
    let rw: number, us: number, global: number;
    if (pde & 0x80 && this.cr4 & CR4_PSE) {
      rw = pde & 2;
      us = pde & 4;
      this.checkPagePerm(lin, rw, us, write, user);
      const want = pde | 0x20 | (write ? 0x40 : 0);
      if (want !== pde) mem.write32(pdeAddr, want);
      phys = ((pde & 0xffc00000) | (lin & 0x3ff000)) & a20;
      global = pde & 0x100;
      const dirty = (want & 0x40) !== 0;
      return this.fillPaged(page, phys, rw, us, dirty, global, lin);
    }
    const pteAddr = ((pde & ~0xfff) | ((lin >>> 10) & 0xffc)) & a20;
    const pte = mem.read32(pteAddr);
    if (!(pte & 1)) this.pageFault(lin, 0, write, user);
    rw = pde & pte & 2;
    us = pde & pte & 4;
    this.checkPagePerm(lin, rw, us, write, user);
    if (!(pde & 0x20)) mem.write32(pdeAddr, pde | 0x20);
    const wantPte = pte | 0x20 | (write ? 0x40 : 0);
    if (wantPte !== pte) mem.write32(pteAddr, wantPte);
    phys = (pte & ~0xfff) & a20;
    global = pte & 0x100;
    return this.fillPaged(page, phys, rw, us, (wantPte & 0x40) !== 0, global, lin);
  }

  private fillPaged(page: number, phys: number, rw: number, us: number, dirty: boolean, global: number, lin: number): number {
    let flags = TLB_VALID | this.physFlags(phys >>> 12, dirty);
    if (!us) flags |= TLB_NO_USER | TLB_NW_USER;
    if (!rw) {
      flags |= TLB_NW_USER;
      if (this.cr0 & CR0_WP) flags |= TLB_NW_SUP;
    }
    if (global && this.cr4 & CR4_PGE) flags |= TLB_GLOBAL;
    this.tlbInsert(page, phys | flags);
    return (phys | (lin & 0xfff)) >>> 0;
  }

  /** TLB flags that follow from what the physical page is */
  private physFlags(ppage: number, dirty: boolean): number {
    const k = this.mem.pageKind[ppage];
    if (k === PageKind.Ram) return dirty ? 0 : TLB_NW_SUP | TLB_NW_USER;
    if (k === PageKind.RomInRam) return TLB_NW_SUP | TLB_NW_USER;
    return TLB_MMIO;
  }

  private checkPagePerm(lin: number, rw: number, us: number, write: boolean, user: boolean): void {
    if (user) {
      if (!us || (write && !rw)) this.pageFault(lin, 1, write, user);
    } else if (write && !rw && this.cr0 & CR0_WP) {
      this.pageFault(lin, 1, write, user);
    }
  }

  pageFault(lin: number, present: number, write: boolean, user: boolean): never {
    this.cr2 = lin | 0;
    return this.raise(EX_PF, present | (write ? 2 : 0) | (user ? 4 : 0));
  }

  // ---- linear-address accesses (the fast path is a TLB lookup) ----

  /** physical address for a read of the byte at lin (slow path of the TLB) */
  private physR(lin: number, user: boolean): number {
    const e = this.tlb[lin >>> 12];
    const mask = TLB_VALID | (user ? TLB_NO_USER : 0);
    if ((e & mask) === TLB_VALID) return ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
    return this.translate(lin, false, user);
  }

  private physW(lin: number, user: boolean): number {
    const e = this.tlb[lin >>> 12];
    const mask = TLB_VALID | (user ? TLB_NO_USER | TLB_NW_USER : TLB_NW_SUP);
    if ((e & mask) === TLB_VALID) return ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
    return this.translate(lin, true, user);
  }

  readLin8(lin: number): number {
    const e = this.tlb[lin >>> 12];
    if ((e & this.readMask) === TLB_VALID) return this.mem8[(e & ~0xfff) | (lin & 0xfff)];
    return this.mem.read8(this.physR(lin, this.cpl === 3));
  }

  readLin16(lin: number): number {
    if ((lin & 0xfff) !== 0xfff) {
      const e = this.tlb[lin >>> 12];
      if ((e & this.readMask) === TLB_VALID) {
        const a = (e & ~0xfff) | (lin & 0xfff);
        return this.mem8[a] | (this.mem8[a + 1] << 8);
      }
      return this.mem.read16(this.physR(lin, this.cpl === 3));
    }
    const user = this.cpl === 3;
    const p0 = this.physR(lin, user);
    const p1 = this.physR((lin + 1) | 0, user);
    return this.mem.read8(p0) | (this.mem.read8(p1) << 8);
  }

  readLin32(lin: number): number {
    if ((lin & 0xfff) <= 0xffc) {
      const e = this.tlb[lin >>> 12];
      if ((e & this.readMask) === TLB_VALID) {
        const a = (e & ~0xfff) | (lin & 0xfff);
        if ((a & 3) === 0) return this.mem32[a >>> 2];
        const m = this.mem8;
        return m[a] | (m[a + 1] << 8) | (m[a + 2] << 16) | (m[a + 3] << 24);
      }
      return this.mem.read32(this.physR(lin, this.cpl === 3));
    }
    return this.readLinSplit32(lin, this.cpl === 3);
  }

  private readLinSplit32(lin: number, user: boolean): number {
    let v = 0;
    for (let i = 0; i < 4; i++) v |= this.mem.read8(this.physR((lin + i) | 0, user)) << (i * 8);
    return v;
  }

  writeLin8(lin: number, v: number): void {
    const e = this.tlb[lin >>> 12];
    if ((e & this.writeMask) === TLB_VALID) {
      this.mem8[(e & ~0xfff) | (lin & 0xfff)] = v;
      return;
    }
    this.mem.write8(this.physW(lin, this.cpl === 3), v);
  }

  writeLin16(lin: number, v: number): void {
    if ((lin & 0xfff) !== 0xfff) {
      const e = this.tlb[lin >>> 12];
      if ((e & this.writeMask) === TLB_VALID) {
        const a = (e & ~0xfff) | (lin & 0xfff);
        this.mem8[a] = v;
        this.mem8[a + 1] = v >> 8;
        return;
      }
      this.mem.write16(this.physW(lin, this.cpl === 3), v);
      return;
    }
    const user = this.cpl === 3;
    const p0 = this.physW(lin, user);
    const p1 = this.physW((lin + 1) | 0, user);
    this.mem.write8(p0, v);
    this.mem.write8(p1, v >> 8);
  }

  writeLin32(lin: number, v: number): void {
    if ((lin & 0xfff) <= 0xffc) {
      const e = this.tlb[lin >>> 12];
      if ((e & this.writeMask) === TLB_VALID) {
        const a = (e & ~0xfff) | (lin & 0xfff);
        if ((a & 3) === 0) {
          this.mem32[a >>> 2] = v;
        } else {
          const m = this.mem8;
          m[a] = v;
          m[a + 1] = v >> 8;
          m[a + 2] = v >> 16;
          m[a + 3] = v >> 24;
        }
        return;
      }
      this.mem.write32(this.physW(lin, this.cpl === 3), v);
      return;
    }
    this.writeLinSplit(lin, v, 4, this.cpl === 3);
  }

  private writeLinSplit(lin: number, v: number, len: number, user: boolean): void {
    // translate both pages first so a fault leaves memory untouched
    const first = this.physW(lin, user);
    const second = this.physW((lin + len - 1) | 0, user);
    const pageEnd = 0x1000 - (lin & 0xfff);
    for (let i = 0; i < len; i++) {
      const pa = i < pageEnd ? first + i : second - (len - 1) + i;
      this.mem.write8(pa >>> 0, (v >>> (i * 8)) & 0xff);
    }
  }

  /** checks that a write of len bytes at lin would succeed (for read-modify-write and multi-part stores) */
  probeWrite(lin: number, len: number): void {
    const user = this.cpl === 3;
    this.physW(lin, user);
    if (((lin & 0xfff) + len - 1) > 0xfff) this.physW((lin + len - 1) | 0, user);
  }

  // ---- read-modify-write: translate for writing (fault before any state changes), then read ----

  rmwLin8(lin: number): number {
    const e = this.tlb[lin >>> 12];
    if ((e & this.writeMask) === TLB_VALID) return this.mem8[(e & ~0xfff) | (lin & 0xfff)];
    return this.mem.read8(this.physW(lin, this.cpl === 3));
  }

  rmwLin16(lin: number): number {
    if ((lin & 0xfff) !== 0xfff) {
      const e = this.tlb[lin >>> 12];
      if ((e & this.writeMask) === TLB_VALID) {
        const a = (e & ~0xfff) | (lin & 0xfff);
        return this.mem8[a] | (this.mem8[a + 1] << 8);
      }
      return this.mem.read16(this.physW(lin, this.cpl === 3));
    }
    this.probeWrite(lin, 2);
    return this.readLin16(lin);
  }

  rmwLin32(lin: number): number {
    if ((lin & 0xfff) <= 0xffc) {
      const e = this.tlb[lin >>> 12];
      if ((e & this.writeMask) === TLB_VALID) {
        const a = (e & ~0xfff) | (lin & 0xfff);
        if ((a & 3) === 0) return this.mem32[a >>> 2];
        const m = this.mem8;
        return m[a] | (m[a + 1] << 8) | (m[a + 2] << 16) | (m[a + 3] << 24);
      }
      return this.mem.read32(this.physW(lin, this.cpl === 3));
    }
    this.probeWrite(lin, 4);
    return this.readLin32(lin);
  }

  // ---- direct RAM indexes for bulk string operations ----

  /** mem8 index of lin for reading if it is ordinary RAM (translating, maybe faulting), else -1 */
  ramIndexR(lin: number): number {
    let e = this.tlb[lin >>> 12];
    if ((e & this.readMask) !== TLB_VALID) {
      this.translate(lin, false, this.cpl === 3);
      e = this.tlb[lin >>> 12];
      if ((e & this.readMask) !== TLB_VALID) return -1;
    }
    return (e & ~0xfff) | (lin & 0xfff);
  }

  /** mem8 index of lin for writing if it is ordinary RAM (translating, maybe faulting), else -1 */
  ramIndexW(lin: number): number {
    let e = this.tlb[lin >>> 12];
    if ((e & this.writeMask) !== TLB_VALID) {
      this.translate(lin, true, this.cpl === 3);
      e = this.tlb[lin >>> 12];
      if ((e & this.writeMask) !== TLB_VALID) return -1;
    }
    return (e & ~0xfff) | (lin & 0xfff);
  }

  // ---- supervisor (implicit) accesses: descriptor tables, TSS, IDT; ignore CPL ----

  readSys8(lin: number): number {
    return this.mem.read8(this.physR(lin, false));
  }

  readSys16(lin: number): number {
    return this.readSys8(lin) | (this.readSys8((lin + 1) | 0) << 8);
  }

  readSys32(lin: number): number {
    if ((lin & 0xfff) <= 0xffc) return this.mem.read32(this.physR(lin, false));
    return this.readSys16(lin) | (this.readSys16((lin + 2) | 0) << 16);
  }

  writeSys8(lin: number, v: number): void {
    this.mem.write8(this.physW(lin, false), v);
  }

  writeSys16(lin: number, v: number): void {
    this.writeSys8(lin, v);
    this.writeSys8((lin + 1) | 0, v >> 8);
  }

  writeSys32(lin: number, v: number): void {
    if ((lin & 0xfff) <= 0xffc) this.mem.write32(this.physW(lin, false), v);
    else this.writeLinSplit(lin, v, 4, false);
  }

  // ---- segmented accesses ----

  read8(seg: number, off: number): number {
    return this.readLin8(this.linR(seg, off, 1));
  }
  read16(seg: number, off: number): number {
    return this.readLin16(this.linR(seg, off, 2));
  }
  read32(seg: number, off: number): number {
    return this.readLin32(this.linR(seg, off, 4));
  }
  write8(seg: number, off: number, v: number): void {
    this.writeLin8(this.linW(seg, off, 1), v);
  }
  write16(seg: number, off: number, v: number): void {
    this.writeLin16(this.linW(seg, off, 2), v);
  }
  write32(seg: number, off: number, v: number): void {
    this.writeLin32(this.linW(seg, off, 4), v);
  }

  // =====================================================================================
  // instruction fetch
  // =====================================================================================

  /** refills the fetch window for the current eip, or fetches one byte the slow way */
  private fetchSlow(): number {
    const eip = this.eip;
    const limit = this.segLimit[CS];
    if (eip > limit) this.gp(0);
    const lin = (this.segBase[CS] + eip) | 0;
    const e = this.tlb[lin >>> 12];
    let ok = (e & this.readMask) === TLB_VALID;
    if (!ok) {
      this.translate(lin, false, this.cpl === 3);
      ok = (this.tlb[lin >>> 12] & this.readMask) === TLB_VALID;
    }
    if (ok) {
      const ent = this.tlb[lin >>> 12];
      const pageStartEip = eip - (lin & 0xfff);
      this.fLo = Math.max(pageStartEip, 0);
      this.fHi = Math.min(pageStartEip + 0x1000, limit + 1);
      this.fDelta = ((ent & ~0xfff) >>> 0) - pageStartEip;
      this.eip = eip + 1;
      return this.mem8[eip + this.fDelta];
    }
    // MMIO / ROM outside RAM: byte at a time
    const v = this.mem.read8(this.physR(lin, this.cpl === 3));
    this.eip = eip + 1;
    return v;
  }

  fetch8(): number {
    const eip = this.eip;
    if (eip >= this.fLo && eip < this.fHi) {
      this.eip = eip + 1;
      return this.mem8[eip + this.fDelta];
    }
    return this.fetchSlow();
  }

  fetch8s(): number {
    return (this.fetch8() << 24) >> 24;
  }

  fetch16(): number {
    const eip = this.eip;
    if (eip >= this.fLo && eip + 1 < this.fHi) {
      this.eip = eip + 2;
      const a = eip + this.fDelta;
      return this.mem8[a] | (this.mem8[a + 1] << 8);
    }
    const lo = this.fetch8();
    return lo | (this.fetch8() << 8);
  }

  fetch32(): number {
    const eip = this.eip;
    if (eip >= this.fLo && eip + 3 < this.fHi) {
      this.eip = eip + 4;
      const a = eip + this.fDelta;
      const m = this.mem8;
      return m[a] | (m[a + 1] << 8) | (m[a + 2] << 16) | (m[a + 3] << 24);
    }
    const lo = this.fetch16();
    return lo | (this.fetch16() << 16);
  }

  /** immediate of the current operand size (16 or 32 bits), zero-extended for 16 */
  fetchImm(): number {
    return this.osize32 ? this.fetch32() : this.fetch16();
  }

  /** sets eip after a near jump (masks to 16 bits for a 16-bit operand size and checks the limit) */
  jumpNear(target: number): void {
    target = this.osize32 ? target >>> 0 : target & 0xffff;
    if (target > this.segLimit[CS]) this.gp(0);
    this.eip = target;
  }

  // =====================================================================================
  // ModRM
  // =====================================================================================

  /** effective address (offset) of a memory ModRM operand; sets eaSeg */
  ea(modrm: number): number {
    return this.asize32 ? this.ea32(modrm) : this.ea16(modrm);
  }

  private ea16(modrm: number): number {
    const mod = modrm >> 6;
    const r = this.r16;
    let a: number;
    let seg = DS;
    switch (modrm & 7) {
      case 0: a = r[EBX * 2] + r[ESI * 2]; break;
      case 1: a = r[EBX * 2] + r[EDI * 2]; break;
      case 2: a = r[EBP * 2] + r[ESI * 2]; seg = SS; break;
      case 3: a = r[EBP * 2] + r[EDI * 2]; seg = SS; break;
      case 4: a = r[ESI * 2]; break;
      case 5: a = r[EDI * 2]; break;
      case 6:
        if (mod === 0) {
          a = this.fetch16();
        } else {
          a = r[EBP * 2];
          seg = SS;
        }
        break;
      default: a = r[EBX * 2]; break;
    }
    if (mod === 1) a += this.fetch8s();
    else if (mod === 2) a += this.fetch16();
    this.eaSeg = this.segOv >= 0 ? this.segOv : seg;
    return a & 0xffff;
  }

  private ea32(modrm: number): number {
    const mod = modrm >> 6;
    const rm = modrm & 7;
    const regs = this.regs;
    let a: number;
    let seg = DS;
    if (rm === 4) {
      const sib = this.fetch8();
      const base = sib & 7;
      const index = (sib >> 3) & 7;
      if (base === 5 && mod === 0) {
        a = this.fetch32();
      } else {
        a = regs[base];
        if (base === 4 || base === 5) seg = SS;
      }
      if (index !== 4) a = (a + (regs[index] << (sib >> 6))) | 0;
    } else if (rm === 5 && mod === 0) {
      a = this.fetch32();
    } else {
      a = regs[rm];
      if (rm === 5) seg = SS;
    }
    if (mod === 1) a = (a + this.fetch8s()) | 0;
    else if (mod === 2) a = (a + this.fetch32()) | 0;
    this.eaSeg = this.segOv >= 0 ? this.segOv : seg;
    return a >>> 0;
  }

  /** decodes a memory ModRM operand and returns its linear address, checked for a write of len bytes */
  eaLinW(modrm: number, len: number): number {
    const off = this.ea(modrm);
    return this.linW(this.eaSeg, off, len);
  }

  // ---- register access by number ----

  getReg8(n: number): number {
    return this.r8[R8_INDEX[n]];
  }
  setReg8(n: number, v: number): void {
    this.r8[R8_INDEX[n]] = v;
  }
  getReg16(n: number): number {
    return this.r16[n << 1];
  }
  setReg16(n: number, v: number): void {
    this.r16[n << 1] = v;
  }

  // ---- ModRM r/m operand access (mod==3: register; else memory at ea) ----
  // For read-modify-write the caller computes the address once with ea() and uses read/write below.

  readRm8(modrm: number): number {
    if (modrm >= 0xc0) return this.r8[R8_INDEX[modrm & 7]];
    const off = this.ea(modrm);
    return this.read8(this.eaSeg, off);
  }
  readRm16(modrm: number): number {
    if (modrm >= 0xc0) return this.r16[(modrm & 7) << 1];
    const off = this.ea(modrm);
    return this.read16(this.eaSeg, off);
  }
  readRm32(modrm: number): number {
    if (modrm >= 0xc0) return this.regs[modrm & 7];
    const off = this.ea(modrm);
    return this.read32(this.eaSeg, off);
  }
  writeRm8(modrm: number, v: number): void {
    if (modrm >= 0xc0) this.r8[R8_INDEX[modrm & 7]] = v;
    else {
      const off = this.ea(modrm);
      this.write8(this.eaSeg, off, v);
    }
  }
  writeRm16(modrm: number, v: number): void {
    if (modrm >= 0xc0) this.r16[(modrm & 7) << 1] = v;
    else {
      const off = this.ea(modrm);
      this.write16(this.eaSeg, off, v);
    }
  }
  writeRm32(modrm: number, v: number): void {
    if (modrm >= 0xc0) this.regs[modrm & 7] = v;
    else {
      const off = this.ea(modrm);
      this.write32(this.eaSeg, off, v);
    }
  }

  // =====================================================================================
  // stack
  // =====================================================================================

  push16(v: number): void {
    if (this.stack32) {
      const sp = (this.regs[ESP] - 2) >>> 0;
      this.writeLin16(this.linW(SS, sp, 2), v);
      this.regs[ESP] = sp;
    } else {
      const sp = (this.r16[ESP * 2] - 2) & 0xffff;
      this.writeLin16(this.linW(SS, sp, 2), v);
      this.r16[ESP * 2] = sp;
    }
  }

  push32(v: number): void {
    if (this.stack32) {
      const sp = (this.regs[ESP] - 4) >>> 0;
      this.writeLin32(this.linW(SS, sp, 4), v);
      this.regs[ESP] = sp;
    } else {
      const sp = (this.r16[ESP * 2] - 4) & 0xffff;
      this.writeLin32(this.linW(SS, sp, 4), v);
      this.r16[ESP * 2] = sp;
    }
  }

  /** push of the current operand size */
  push(v: number): void {
    if (this.osize32) this.push32(v);
    else this.push16(v);
  }

  pop16(): number {
    if (this.stack32) {
      const sp = this.regs[ESP] >>> 0;
      const v = this.readLin16(this.linR(SS, sp, 2));
      this.regs[ESP] = sp + 2;
      return v;
    }
    const sp = this.r16[ESP * 2];
    const v = this.readLin16(this.linR(SS, sp, 2));
    this.r16[ESP * 2] = sp + 2;
    return v;
  }

  pop32(): number {
    if (this.stack32) {
      const sp = this.regs[ESP] >>> 0;
      const v = this.readLin32(this.linR(SS, sp, 4));
      this.regs[ESP] = sp + 4;
      return v;
    }
    const sp = this.r16[ESP * 2];
    const v = this.readLin32(this.linR(SS, sp, 4));
    this.r16[ESP * 2] = sp + 4;
    return v;
  }

  pop(): number {
    return this.osize32 ? this.pop32() : this.pop16();
  }

  /** reads the stack at ESP+delta without popping (for instructions that must not change ESP on fault) */
  peek16(delta: number): number {
    const sp = this.stack32 ? (this.regs[ESP] + delta) >>> 0 : (this.r16[ESP * 2] + delta) & 0xffff;
    return this.readLin16(this.linR(SS, sp, 2));
  }

  peek32(delta: number): number {
    const sp = this.stack32 ? (this.regs[ESP] + delta) >>> 0 : (this.r16[ESP * 2] + delta) & 0xffff;
    return this.readLin32(this.linR(SS, sp, 4));
  }

  /** adds to ESP or SP according to the stack size */
  adjustSp(delta: number): void {
    if (this.stack32) this.regs[ESP] = this.regs[ESP] + delta;
    else this.r16[ESP * 2] = this.r16[ESP * 2] + delta;
  }

  /** adds to ESP or SP according to a given stack size (POP SS: the size before the load counts) */
  adjustSpSized(stack32: boolean, delta: number): void {
    if (stack32) this.regs[ESP] = this.regs[ESP] + delta;
    else this.r16[ESP * 2] = this.r16[ESP * 2] + delta;
  }

  // =====================================================================================
  // I/O permission
  // =====================================================================================

  /** checks IOPL / the TSS I/O permission bitmap for an access of len bytes at port */
  checkIo(port: number, len: number): void {
    if (!this.protectedMode) return;
    if (!(this.flags & F_VM) && this.cpl <= ((this.flags >> 12) & 3)) return;
    // 32-bit TSS with an I/O bitmap
    if ((this.trAr & 0xf) !== 0x9 && (this.trAr & 0xf) !== 0xb) this.gp(0);
    if (this.trLimit < 0x67) this.gp(0);
    const mapBase = this.readSys16((this.trBase + 0x66) | 0);
    const byteOff = mapBase + (port >>> 3);
    if (byteOff + 1 > this.trLimit) this.gp(0);
    const bits = this.readSys16((this.trBase + byteOff) | 0);
    const mask = ((1 << len) - 1) << (port & 7);
    if (bits & mask) this.gp(0);
  }

  // =====================================================================================
  // interrupts and the run loop
  // =====================================================================================

  /** the INTR line from the interrupt controller */
  setIntr(level: boolean): void {
    this.intr = level;
    if (level) this.attn = true;
  }

  raiseNmi(): void {
    this.nmiPending = true;
    this.attn = true;
  }

  /** true if a halted CPU can be woken (IF set, or an NMI may come) */
  canWake(): boolean {
    return (this.flags & F_IF) !== 0 || this.nmiPending;
  }

  /** handles everything between instructions; returns false if the loop should leave */
  private attention(): boolean {
    this.attn = false;
    if (this.exitRequested) {
      this.exitRequested = false;
      this.attn = true;
      return false;
    }
    if (this.trapNext && this.ssShadow) {
      // a single-step trap after MOV SS / POP SS waits until after the next instruction
      this.ssShadow = false;
      this.attn = true;
    } else if (this.trapNext) {
      this.trapNext = false;
      this.dr[6] |= 0x4000; // BS
      this.instrStart = this.eip;
      this.deliverException(EX_DB, -1);
    }
    if (this.shadow) {
      this.shadow = false;
      this.ssShadow = false;
      this.attn = true;
    } else if (this.nmiPending && !this.nmiBlocked) {
      this.nmiPending = false;
      this.nmiBlocked = true;
      this.halted = false;
      this.instrStart = this.eip;
      this.deliverSafely(EX_NMI, INT_NMI);
    } else if (this.intr && this.flags & F_IF) {
      this.halted = false;
      if (this.pic) {
        const vec = this.pic.acknowledge();
        if (vec >= 0) {
          this.instrStart = this.eip;
          this.deliverSafely(vec, INT_HW);
        }
      }
      this.attn = true;
    }
    if (this.halted) {
      this.attn = true;
      return false;
    }
    if (this.flags & F_TF) {
      this.trapNext = true;
      this.attn = true;
    }
    return true;
  }

  /** delivers an external interrupt/NMI; a fault during delivery is handled as an exception */
  private deliverSafely(vec: number, kind: number): void {
    try {
      pm.deliverInterrupt(this, vec, kind, -1);
    } catch (e) {
      if (e !== FAULT) throw e;
      this.eip = this.instrStart;
      this.deliverException(this.excVector, this.excCode);
    }
  }

  /**
   * Runs up to `limit` instructions. Returns the number retired. Returns early when halted or when
   * requestExit() was called.
   */
  run(limit: number): number {
    // instructionCount is kept exact at every instruction so RDTSC and the deterministic clock can read it
    const start = this.instructionCount;
    const end = start + limit;
    const ops = OPS;
    while (this.instructionCount < end) {
      try {
        while (this.instructionCount < end) {
          if (this.attn && !this.attention()) return this.instructionCount - start;
          this.instrStart = this.eip;
          const c32 = this.code32;
          this.osize32 = c32;
          this.asize32 = c32;
          this.segOv = -1;
          this.rep = 0;
          const op = this.fetch8();
          ops[c32 ? op | 256 : op](this);
          this.instructionCount++;
        }
      } catch (e) {
        if (e !== FAULT) throw e;
        this.instructionCount++;
        this.handleFault();
      }
    }
    return this.instructionCount - start;
  }

  /** executes one instruction (tests and debuggers) */
  step(): void {
    this.run(1);
  }

  /** dispatches the byte after a 0x0F escape */
  exec0F(): void {
    const op = this.fetch8();
    OPS_0F[this.osize32 ? op | 256 : op](this);
  }

  /** re-dispatches after a prefix: the next opcode byte with the current operand size */
  dispatchNext(): void {
    if (this.eip - this.instrStart >= 15 && this.eip > this.instrStart) this.gp(0);
    const op = this.fetch8();
    OPS[this.osize32 ? op | 256 : op](this);
  }
}
