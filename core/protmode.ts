/**
 * Protected-mode machinery: descriptor loads, segment-register loads with their checks, far control
 * transfers (JMP/CALL/RET/IRET) through code segments, call gates, task gates and TSS descriptors,
 * interrupt and exception delivery (real mode IVT, protected-mode IDT, virtual-8086 mode), hardware
 * task switches, LLDT/LTR, LAR/LSL/VERR/VERW and SYSENTER/SYSEXIT.
 *
 * Every function works in all modes and looks at cpu.protectedMode and EFLAGS.VM itself.
 *
 * Fault rule: a function reads and checks everything it needs before it changes any register, so a
 * fault (thrown as FAULT by cpu.raise) leaves the CPU as it was and the caller restarts the instruction.
 * Memory writes (accessed bits, stack pushes, the old TSS image) happen after all checks and before the
 * first register is committed. The one exception is the hardware task switch: once the old task's state
 * is saved and TR points to the new task, faults belong to the new task (cpu.instrStart is moved to the
 * new EIP so they are delivered there), as the SDM describes.
 *
 * The descriptor cache format is cpu.setSegCache(seg, sel, base, byteLimit, ar) with
 * ar = (descriptor high dword >>> 8) & 0xF0FF.
 */
import type { Cpu } from './cpu';
import {
  ES, CS, SS, DS, FS, GS, ESP, ECX, EDX,
  F_TF, F_IF, F_NT, F_RF, F_VM, F_AC, F_IOPL, F_ID, F_VALID, F_ARITH, F_DF,
  CR0_TS, CR0_PG,
  EX_GP, EX_NP, EX_SS, EX_TS, EX_UD,
  INT_SOFT,
} from './defs';

/** ICEBP / INT1 (0xF1): delivered like a hardware event (no gate DPL check, EXT = 1) */
export const INT_ICEBP = 4;
/**
 * INT3 and INTO: software interrupts (gate DPL check, EXT = 0) that, unlike INT n, are not
 * IOPL-sensitive in virtual-8086 mode (SDM vol. 3, 20.2.7: only INT n is). Callers that pass INT_SOFT
 * for them get INT n's v86 behaviour (#GP(0) when IOPL < 3).
 */
export const INT_SOFT3 = 5;

/** task-switch reasons */
export const TS_JMP = 0, TS_CALL = 1, TS_IRET = 2, TS_INT = 3;

// =====================================================================================
// descriptors
// =====================================================================================

/** the descriptor read by the last readDescriptor(): low dword, high dword, linear address */
export const desc = { lo: 0, hi: 0, addr: 0 };

/**
 * Reads the descriptor for `sel` from the GDT or LDT into `desc`. Returns false if the selector is
 * beyond the table's limit (or refers to an invalid LDT). Reads are supervisor accesses (may #PF).
 */
export function readDescriptor(cpu: Cpu, sel: number): boolean {
  const idx = sel & 0xfff8;
  let base: number, limit: number;
  if (sel & 4) {
    if (!(cpu.ldtAr & 0x80)) return false;
    base = cpu.ldtBase;
    limit = cpu.ldtLimit;
  } else {
    base = cpu.gdtBase;
    limit = cpu.gdtLimit;
  }
  if (idx + 7 > limit) return false;
  const addr = (base + idx) | 0;
  desc.lo = cpu.readSys32(addr);
  desc.hi = cpu.readSys32((addr + 4) | 0);
  desc.addr = addr;
  return true;
}

export function descBase(lo: number, hi: number): number {
  return (lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000);
}

/** byte-granular limit (unsigned) */
export function descLimit(lo: number, hi: number): number {
  const l = (lo & 0xffff) | (hi & 0xf0000);
  return hi & 0x800000 ? ((l << 12) | 0xfff) >>> 0 : l;
}

export function descAr(hi: number): number {
  return (hi >>> 8) & 0xf0ff;
}

const dplOf = (hi: number) => (hi >>> 13) & 3;
const present = (hi: number) => (hi & 0x8000) !== 0;
/** S=1 and the code bit */
const isCode = (hi: number) => (hi & 0x1800) === 0x1800;
/** S=1 and not code */
const isData = (hi: number) => (hi & 0x1800) === 0x1000;
const conforming = (hi: number) => (hi & 0x400) !== 0;
/** code: readable; data: writable */
const rwBit = (hi: number) => (hi & 0x200) !== 0;

/** sets the accessed bit of a code/data descriptor in memory */
function setAccessed(cpu: Cpu, addr: number, hi: number): void {
  if (!(hi & 0x100)) cpu.writeSys8((addr + 5) | 0, ((hi >>> 8) | 1) & 0xff);
}

function fault(cpu: Cpu, vec: number, code: number): never {
  return cpu.raise(vec, code & 0xffff);
}

/** writes EFLAGS completely (materialises lazy flags first so no arithmetic flag is lost) */
function writeFlags(cpu: Cpu, value: number, mask: number): void {
  const cur = cpu.getFlags();
  cpu.setFlags((cur & ~mask) | (value & mask), -1);
}

// =====================================================================================
// stack helpers
// =====================================================================================

/** true if `len` bytes at offset `off` lie within a stack (data) segment with this limit and ar */
function stackOk(limit: number, ar: number, off: number, len: number): boolean {
  if (ar & 0x10 && !(ar & 8) && ar & 4) {
    const top = ar & 0x4000 ? 0xffffffff : 0xffff;
    return off > limit && off + len - 1 <= top;
  }
  return off + len - 1 <= limit;
}

// queued pushes: values and sizes (2 or 4), first queued = first pushed (highest address)
const qVal = new Int32Array(32);
const qSize = new Uint8Array(32);
let qN = 0;

function q(v: number, size: number): void {
  qVal[qN] = v;
  qSize[qN++] = size;
}

/** checks that the queued pushes fit on the stack below `esp`; raises #SS(err) if not */
function checkPushes(cpu: Cpu, limit: number, ar: number, esp: number, err: number): void {
  const big = (ar & 0x4000) !== 0;
  let sp = esp;
  for (let i = 0; i < qN; i++) {
    sp = big ? (sp - qSize[i]) >>> 0 : (sp - qSize[i]) & 0xffff;
    if (!stackOk(limit, ar, sp, qSize[i])) fault(cpu, EX_SS, err);
  }
}

/**
 * Writes the queued pushes below `esp` on a stack with this base and ar; `sup` = supervisor
 * accesses (the target privilege is 0–2). Returns the new ESP value (upper half kept for 16-bit stacks).
 */
function writePushes(cpu: Cpu, base: number, ar: number, esp: number, sup: boolean): number {
  const big = (ar & 0x4000) !== 0;
  let sp = big ? esp >>> 0 : esp & 0xffff;
  for (let i = 0; i < qN; i++) {
    const size = qSize[i];
    sp = big ? (sp - size) >>> 0 : (sp - size) & 0xffff;
    const lin = (base + sp) | 0;
    const v = qVal[i];
    if (sup) {
      if (size === 4) cpu.writeSys32(lin, v);
      else cpu.writeSys16(lin, v);
    } else if (size === 4) cpu.writeLin32(lin, v);
    else cpu.writeLin16(lin, v);
  }
  qN = 0;
  return big ? sp | 0 : (esp & ~0xffff) | sp;
}

/** reads the current stack at ESP+delta (current privilege; #SS(0) on limit) */
function peek(cpu: Cpu, delta: number, size: number): number {
  return size === 4 ? cpu.peek32(delta) : cpu.peek16(delta);
}

/** sets ESP or SP after a stack change, according to the (new) SS size */
function setSp(cpu: Cpu, v: number): void {
  if (cpu.stack32) cpu.regs[ESP] = v;
  else cpu.r16[ESP * 2] = v;
}

// =====================================================================================
// segment loads
// =====================================================================================

/** real-mode / v86 load of any segment register (base = sel << 4) */
function loadSegReal(cpu: Cpu, seg: number, sel: number): void {
  sel &= 0xffff;
  if (cpu.flags & F_VM) {
    cpu.setSegCache(seg, sel, sel << 4, 0xffff, 0xf3);
  } else {
    // real mode keeps limit and attributes (big real mode); a segment made unusable is usable again
    let ar = cpu.segAr[seg];
    if (!(ar & 0x80)) ar = 0x93;
    cpu.setSegCache(seg, sel, sel << 4, cpu.segLimit[seg], ar);
  }
}

/** loads CS in real or v86 mode */
export function loadCsReal(cpu: Cpu, sel: number): void {
  loadSegReal(cpu, CS, sel);
}

/**
 * MOV Sreg / POP Sreg / LDS…LSS: loads a data or stack segment register (not CS) with all the checks
 * of the current mode. Loading SS starts the one-instruction interrupt shadow.
 */
export function loadSeg(cpu: Cpu, seg: number, sel: number): void {
  sel &= 0xffff;
  if (!cpu.protectedMode || cpu.flags & F_VM) {
    loadSegReal(cpu, seg, sel);
  } else if ((sel & 0xfffc) === 0) {
    if (seg === SS) fault(cpu, EX_GP, 0);
    cpu.setSegNull(seg, sel);
  } else {
    if (!readDescriptor(cpu, sel)) fault(cpu, EX_GP, sel & 0xfffc);
    const hi = desc.hi, lo = desc.lo;
    const dpl = dplOf(hi), rpl = sel & 3, cpl = cpu.cpl;
    if (seg === SS) {
      if (rpl !== cpl || !isData(hi) || !rwBit(hi) || dpl !== cpl) fault(cpu, EX_GP, sel & 0xfffc);
      if (!present(hi)) fault(cpu, EX_SS, sel & 0xfffc);
    } else {
      if (!(hi & 0x1000) || (isCode(hi) && !rwBit(hi))) fault(cpu, EX_GP, sel & 0xfffc);
      if (!(isCode(hi) && conforming(hi)) && (dpl < cpl || dpl < rpl)) fault(cpu, EX_GP, sel & 0xfffc);
      if (!present(hi)) fault(cpu, EX_NP, sel & 0xfffc);
    }
    setAccessed(cpu, desc.addr, hi);
    cpu.setSegCache(seg, sel, descBase(lo, hi), descLimit(lo, hi), descAr(hi) | 1);
  }
  if (seg === SS) {
    cpu.shadow = true;
    cpu.ssShadow = true;
    cpu.attn = true;
  }
}

/** loads CS from a checked code descriptor with RPL = the new CPL, and sets the CPL */
function commitCs(cpu: Cpu, sel: number, lo: number, hi: number, cpl: number): void {
  cpu.setSegCache(CS, (sel & 0xfffc) | cpl, descBase(lo, hi), descLimit(lo, hi), descAr(hi) | 1);
  if (cpu.cpl !== cpl) cpu.setCpl(cpl);
}

/** after a return to an outer privilege level: data segments the new CPL may not use become null */
function nullInvalidSegs(cpu: Cpu): void {
  const cpl = cpu.cpl;
  for (const seg of [ES, DS, FS, GS]) {
    const ar = cpu.segAr[seg];
    if (!(ar & 0x80)) continue;
    const codeConf = (ar & 0x1c) === 0x1c;
    if (!codeConf && ((ar >>> 5) & 3) < cpl) cpu.setSegNull(seg, 0);
  }
}

// =====================================================================================
// interrupts and exceptions
// =====================================================================================

/**
 * Delivers an interrupt or exception through the IVT (real mode) or the IDT (protected and v86 mode).
 * kind: INT_HW, INT_SOFT (INT n), INT_SOFT3 (INT3/INTO), INT_ICEBP, INT_EXC, INT_NMI. errorCode -1 = none.
 */
export function deliverInterrupt(cpu: Cpu, vector: number, kind: number, errorCode: number): void {
  vector &= 0xff;
  if (!cpu.protectedMode) {
    realInterrupt(cpu, vector);
    return;
  }
  const soft = kind === INT_SOFT || kind === INT_SOFT3;
  const ext = soft ? 0 : 1;
  const vm = (cpu.flags & F_VM) !== 0;
  if (vm && kind === INT_SOFT && ((cpu.flags >>> 12) & 3) < 3) fault(cpu, EX_GP, 0);
  const gateErr = vector * 8 + 2 + ext;
  if (vector * 8 + 7 > cpu.idtLimit) fault(cpu, EX_GP, gateErr);
  const ga = (cpu.idtBase + vector * 8) | 0;
  const glo = cpu.readSys32(ga);
  const ghi = cpu.readSys32((ga + 4) | 0);
  const gtype = (ghi >>> 8) & 0x1f;
  if (gtype !== 5 && gtype !== 6 && gtype !== 7 && gtype !== 0xe && gtype !== 0xf) fault(cpu, EX_GP, gateErr);
  if (soft && dplOf(ghi) < cpu.cpl) fault(cpu, EX_GP, gateErr);
  if (!present(ghi)) fault(cpu, EX_NP, gateErr);

  if (gtype === 5) {
    // task gate
    const tss32 = taskSwitch(cpu, glo >>> 16, TS_INT, ext);
    if (errorCode >= 0) {
      qN = 0;
      q(errorCode, tss32 ? 4 : 2);
      checkPushes(cpu, cpu.segLimit[SS], cpu.segAr[SS], cpu.regs[ESP], ext);
      cpu.regs[ESP] = writePushes(cpu, cpu.segBase[SS], cpu.segAr[SS], cpu.regs[ESP], cpu.cpl !== 3);
    }
    return;
  }

  const is32 = (gtype & 8) !== 0;
  const sz = is32 ? 4 : 2;
  const intGate = (gtype & 1) === 0;
  const csSel = glo >>> 16;
  const target = is32 ? ((glo & 0xffff) | (ghi & 0xffff0000)) >>> 0 : glo & 0xffff;
  if ((csSel & 0xfffc) === 0) fault(cpu, EX_GP, ext);
  const csErr = (csSel & 0xfffc) | ext;
  if (!readDescriptor(cpu, csSel)) fault(cpu, EX_GP, csErr);
  const cLo = desc.lo, cHi = desc.hi, cAddr = desc.addr;
  const dpl = dplOf(cHi);
  if (!isCode(cHi) || dpl > cpu.cpl) fault(cpu, EX_GP, csErr);
  if (!present(cHi)) fault(cpu, EX_NP, csErr);
  const csLimit = descLimit(cLo, cHi);
  const oldFlags = cpu.getFlags();
  let newFlags = oldFlags & ~(F_TF | F_NT | F_RF | F_VM);
  if (intGate) newFlags &= ~F_IF;

  if (!conforming(cHi) && dpl < cpu.cpl) {
    // inter-privilege: new stack from the TSS
    if (vm && dpl !== 0) fault(cpu, EX_GP, csErr);
    readTssStack(cpu, dpl, ext);
    const ssSel = tssSs, newEsp = tssEsp;
    checkNewSs(cpu, ssSel, dpl, ext);
    const sLo = desc.lo, sHi = desc.hi, sAddr = desc.addr;
    const ssBase = descBase(sLo, sHi), ssLimit = descLimit(sLo, sHi), ssAr = descAr(sHi) | 1;
    qN = 0;
    if (vm) {
      q(cpu.segSel[GS], sz);
      q(cpu.segSel[FS], sz);
      q(cpu.segSel[DS], sz);
      q(cpu.segSel[ES], sz);
    }
    q(cpu.segSel[SS], sz);
    q(cpu.regs[ESP], sz);
    q(oldFlags, sz);
    q(cpu.segSel[CS], sz);
    q(cpu.eip, sz);
    if (errorCode >= 0) q(errorCode, sz);
    checkPushes(cpu, ssLimit, ssAr, newEsp, (ssSel & 0xfffc) | ext);
    if (target > csLimit) fault(cpu, EX_GP, ext);
    setAccessed(cpu, sAddr, sHi);
    setAccessed(cpu, cAddr, cHi);
    const esp = writePushes(cpu, ssBase, ssAr, newEsp, dpl !== 3);
    // commit
    cpu.setCpl(dpl);
    writeFlags(cpu, newFlags, -1);
    if (vm) {
      cpu.setSegNull(GS, 0);
      cpu.setSegNull(FS, 0);
      cpu.setSegNull(DS, 0);
      cpu.setSegNull(ES, 0);
    }
    cpu.setSegCache(SS, (ssSel & 0xfffc) | dpl, ssBase, ssLimit, ssAr);
    cpu.regs[ESP] = esp;
    commitCs(cpu, csSel, cLo, cHi, dpl);
    cpu.eip = target;
    cpu.updateMode();
    return;
  }

  // same privilege (conforming code or DPL = CPL)
  if (vm) fault(cpu, EX_GP, csErr);
  qN = 0;
  q(oldFlags, sz);
  q(cpu.segSel[CS], sz);
  q(cpu.eip, sz);
  if (errorCode >= 0) q(errorCode, sz);
  checkPushes(cpu, cpu.segLimit[SS], cpu.segAr[SS], cpu.regs[ESP], ext);
  if (target > csLimit) fault(cpu, EX_GP, ext);
  setAccessed(cpu, cAddr, cHi);
  const esp = writePushes(cpu, cpu.segBase[SS], cpu.segAr[SS], cpu.regs[ESP], cpu.cpl !== 3);
  cpu.regs[ESP] = esp;
  writeFlags(cpu, newFlags, -1);
  commitCs(cpu, csSel, cLo, cHi, cpu.cpl);
  cpu.eip = target;
}

function realInterrupt(cpu: Cpu, vector: number): void {
  if (vector * 4 + 3 > cpu.idtLimit) fault(cpu, EX_GP, 0);
  const a = (cpu.idtBase + vector * 4) | 0;
  const ip = cpu.readSys16(a);
  const cs = cpu.readSys16((a + 2) | 0);
  const flags = cpu.getFlags();
  qN = 0;
  q(flags, 2);
  q(cpu.segSel[CS], 2);
  q(cpu.eip, 2);
  checkPushes(cpu, cpu.segLimit[SS], cpu.segAr[SS], cpu.regs[ESP], 0);
  if (ip > cpu.segLimit[CS]) fault(cpu, EX_GP, 0);
  cpu.regs[ESP] = writePushes(cpu, cpu.segBase[SS], cpu.segAr[SS], cpu.regs[ESP], true);
  writeFlags(cpu, flags & ~(F_IF | F_TF | F_AC | F_RF), -1);
  loadCsReal(cpu, cs);
  cpu.eip = ip;
}

// ---- TSS stack pointers and new-stack checks ----

let tssSs = 0;
let tssEsp = 0;

/** reads SS:ESP for privilege level `pl` from the current TSS into tssSs/tssEsp (#TS on limit) */
function readTssStack(cpu: Cpu, pl: number, ext: number): void {
  const tr = cpu.trBase;
  if ((cpu.trAr & 8) !== 0) {
    const off = 4 + pl * 8;
    if (off + 5 > cpu.trLimit) fault(cpu, EX_TS, (cpu.trSel & 0xfffc) | ext);
    tssEsp = cpu.readSys32((tr + off) | 0);
    tssSs = cpu.readSys16((tr + off + 4) | 0);
  } else {
    const off = 2 + pl * 4;
    if (off + 3 > cpu.trLimit) fault(cpu, EX_TS, (cpu.trSel & 0xfffc) | ext);
    tssEsp = cpu.readSys16((tr + off) | 0);
    tssSs = cpu.readSys16((tr + off + 2) | 0);
  }
}

/** checks a stack segment taken from the TSS for privilege `pl`; leaves its descriptor in `desc` */
function checkNewSs(cpu: Cpu, ssSel: number, pl: number, ext: number): void {
  const err = (ssSel & 0xfffc) | ext;
  if ((ssSel & 0xfffc) === 0) fault(cpu, EX_TS, ext);
  if (!readDescriptor(cpu, ssSel)) fault(cpu, EX_TS, err);
  const hi = desc.hi;
  if ((ssSel & 3) !== pl || dplOf(hi) !== pl || !isData(hi) || !rwBit(hi)) fault(cpu, EX_TS, err);
  if (!present(hi)) fault(cpu, EX_SS, err);
}

// =====================================================================================
// far JMP / CALL / RET / IRET
// =====================================================================================

/**
 * JMP/CALL far to a task gate (type 5) or a TSS descriptor (types 1, 9): the DPL check, the gate's
 * present check, then the task switch (to the gate's TSS selector, or to sel itself).
 */
function farToTask(cpu: Cpu, sel: number, lo: number, hi: number, type: number, dpl: number, cpl: number, rpl: number, reason: number): void {
  if (dpl < cpl || dpl < rpl) fault(cpu, EX_GP, sel & 0xfffc);
  if (type === 5) {
    if (!present(hi)) fault(cpu, EX_NP, sel & 0xfffc);
    taskSwitch(cpu, lo >>> 16, reason, 0);
  } else {
    taskSwitch(cpu, sel, reason, 0);
  }
}

/** far JMP (EA, FF /5) to sel:offset */
export function farJmp(cpu: Cpu, sel: number, offset: number): void {
  sel &= 0xffff;
  if (!cpu.osize32) offset &= 0xffff;
  offset >>>= 0;
  if (!cpu.protectedMode || cpu.flags & F_VM) {
    if (offset > 0xffff && cpu.flags & F_VM) fault(cpu, EX_GP, 0);
    if (!(cpu.flags & F_VM) && offset > cpu.segLimit[CS]) fault(cpu, EX_GP, 0);
    loadCsReal(cpu, sel);
    cpu.eip = offset;
    return;
  }
  if ((sel & 0xfffc) === 0) fault(cpu, EX_GP, 0);
  if (!readDescriptor(cpu, sel)) fault(cpu, EX_GP, sel & 0xfffc);
  const lo = desc.lo, hi = desc.hi, addr = desc.addr;
  const cpl = cpu.cpl, rpl = sel & 3, dpl = dplOf(hi);
  if (hi & 0x1000) {
    if (!isCode(hi)) fault(cpu, EX_GP, sel & 0xfffc);
    if (conforming(hi) ? dpl > cpl : rpl > cpl || dpl !== cpl) fault(cpu, EX_GP, sel & 0xfffc);
    if (!present(hi)) fault(cpu, EX_NP, sel & 0xfffc);
    if (offset > descLimit(lo, hi)) fault(cpu, EX_GP, 0);
    setAccessed(cpu, addr, hi);
    commitCs(cpu, sel, lo, hi, cpl);
    cpu.eip = offset;
    return;
  }
  const type = (hi >>> 8) & 0xf;
  switch (type) {
    case 4:
    case 0xc: {
      // call gate: no privilege change for JMP
      if (dpl < cpl || dpl < rpl) fault(cpu, EX_GP, sel & 0xfffc);
      if (!present(hi)) fault(cpu, EX_NP, sel & 0xfffc);
      const csSel = lo >>> 16;
      const target = type === 0xc ? ((lo & 0xffff) | (hi & 0xffff0000)) >>> 0 : lo & 0xffff;
      if ((csSel & 0xfffc) === 0) fault(cpu, EX_GP, 0);
      if (!readDescriptor(cpu, csSel)) fault(cpu, EX_GP, csSel & 0xfffc);
      const cLo = desc.lo, cHi = desc.hi, cAddr = desc.addr;
      const cdpl = dplOf(cHi);
      if (!isCode(cHi) || (conforming(cHi) ? cdpl > cpl : cdpl !== cpl)) fault(cpu, EX_GP, csSel & 0xfffc);
      if (!present(cHi)) fault(cpu, EX_NP, csSel & 0xfffc);
      if (target > descLimit(cLo, cHi)) fault(cpu, EX_GP, 0);
      setAccessed(cpu, cAddr, cHi);
      commitCs(cpu, csSel, cLo, cHi, cpl);
      cpu.eip = target;
      return;
    }
    case 5:
    case 1:
    case 9:
      farToTask(cpu, sel, lo, hi, type, dpl, cpl, rpl, TS_JMP);
      return;
    default:
      fault(cpu, EX_GP, sel & 0xfffc);
  }
}

/** far CALL (9A, FF /3) to sel:offset; pushes with cpu.osize32 */
export function farCall(cpu: Cpu, sel: number, offset: number): void {
  sel &= 0xffff;
  const osz = cpu.osize32 ? 4 : 2;
  if (!cpu.osize32) offset &= 0xffff;
  offset >>>= 0;
  qN = 0;
  if (!cpu.protectedMode || cpu.flags & F_VM) {
    q(cpu.segSel[CS], osz);
    q(cpu.eip, osz);
    checkPushes(cpu, cpu.segLimit[SS], cpu.segAr[SS], cpu.regs[ESP], 0);
    if (cpu.flags & F_VM ? offset > 0xffff : offset > cpu.segLimit[CS]) fault(cpu, EX_GP, 0);
    cpu.regs[ESP] = writePushes(cpu, cpu.segBase[SS], cpu.segAr[SS], cpu.regs[ESP], cpu.cpl !== 3);
    loadCsReal(cpu, sel);
    cpu.eip = offset;
    return;
  }
  if ((sel & 0xfffc) === 0) fault(cpu, EX_GP, 0);
  if (!readDescriptor(cpu, sel)) fault(cpu, EX_GP, sel & 0xfffc);
  const lo = desc.lo, hi = desc.hi, addr = desc.addr;
  const cpl = cpu.cpl, rpl = sel & 3, dpl = dplOf(hi);
  if (hi & 0x1000) {
    if (!isCode(hi)) fault(cpu, EX_GP, sel & 0xfffc);
    if (conforming(hi) ? dpl > cpl : rpl > cpl || dpl !== cpl) fault(cpu, EX_GP, sel & 0xfffc);
    if (!present(hi)) fault(cpu, EX_NP, sel & 0xfffc);
    q(cpu.segSel[CS], osz);
    q(cpu.eip, osz);
    checkPushes(cpu, cpu.segLimit[SS], cpu.segAr[SS], cpu.regs[ESP], 0);
    if (offset > descLimit(lo, hi)) fault(cpu, EX_GP, 0);
    setAccessed(cpu, addr, hi);
    cpu.regs[ESP] = writePushes(cpu, cpu.segBase[SS], cpu.segAr[SS], cpu.regs[ESP], cpl !== 3);
    commitCs(cpu, sel, lo, hi, cpl);
    cpu.eip = offset;
    return;
  }
  const type = (hi >>> 8) & 0xf;
  switch (type) {
    case 4:
    case 0xc:
      callGate(cpu, sel, lo, hi);
      return;
    case 5:
    case 1:
    case 9:
      farToTask(cpu, sel, lo, hi, type, dpl, cpl, rpl, TS_CALL);
      return;
    default:
      fault(cpu, EX_GP, sel & 0xfffc);
  }
}

function callGate(cpu: Cpu, sel: number, lo: number, hi: number): void {
  const cpl = cpu.cpl;
  const dpl = dplOf(hi);
  if (dpl < cpl || dpl < (sel & 3)) fault(cpu, EX_GP, sel & 0xfffc);
  if (!present(hi)) fault(cpu, EX_NP, sel & 0xfffc);
  const is32 = (hi & 0x800) !== 0;
  const sz = is32 ? 4 : 2;
  const csSel = lo >>> 16;
  const target = is32 ? ((lo & 0xffff) | (hi & 0xffff0000)) >>> 0 : lo & 0xffff;
  const count = hi & 0x1f;
  if ((csSel & 0xfffc) === 0) fault(cpu, EX_GP, 0);
  if (!readDescriptor(cpu, csSel)) fault(cpu, EX_GP, csSel & 0xfffc);
  const cLo = desc.lo, cHi = desc.hi, cAddr = desc.addr;
  const cdpl = dplOf(cHi);
  if (!isCode(cHi) || cdpl > cpl) fault(cpu, EX_GP, csSel & 0xfffc);
  if (!present(cHi)) fault(cpu, EX_NP, csSel & 0xfffc);
  const csLimit = descLimit(cLo, cHi);
  qN = 0;
  if (!conforming(cHi) && cdpl < cpl) {
    // more privileged: switch stacks, copy parameters
    readTssStack(cpu, cdpl, 0);
    const ssSel = tssSs, newEsp = tssEsp;
    checkNewSs(cpu, ssSel, cdpl, 0);
    const sLo = desc.lo, sHi = desc.hi, sAddr = desc.addr;
    const ssBase = descBase(sLo, sHi), ssLimit = descLimit(sLo, sHi), ssAr = descAr(sHi) | 1;
    q(cpu.segSel[SS], sz);
    q(cpu.regs[ESP], sz);
    for (let i = count - 1; i >= 0; i--) q(peek(cpu, i * sz, sz), sz);
    q(cpu.segSel[CS], sz);
    q(cpu.eip, sz);
    checkPushes(cpu, ssLimit, ssAr, newEsp, ssSel & 0xfffc);
    if (target > csLimit) fault(cpu, EX_GP, 0);
    setAccessed(cpu, sAddr, sHi);
    setAccessed(cpu, cAddr, cHi);
    const esp = writePushes(cpu, ssBase, ssAr, newEsp, cdpl !== 3);
    cpu.setCpl(cdpl);
    cpu.setSegCache(SS, (ssSel & 0xfffc) | cdpl, ssBase, ssLimit, ssAr);
    cpu.regs[ESP] = esp;
    commitCs(cpu, csSel, cLo, cHi, cdpl);
    cpu.eip = target;
    cpu.updateMode();
    return;
  }
  q(cpu.segSel[CS], sz);
  q(cpu.eip, sz);
  checkPushes(cpu, cpu.segLimit[SS], cpu.segAr[SS], cpu.regs[ESP], 0);
  if (target > csLimit) fault(cpu, EX_GP, 0);
  setAccessed(cpu, cAddr, cHi);
  cpu.regs[ESP] = writePushes(cpu, cpu.segBase[SS], cpu.segAr[SS], cpu.regs[ESP], cpl !== 3);
  commitCs(cpu, csSel, cLo, cHi, cpl);
  cpu.eip = target;
}

/**
 * Checks the CS selector popped by RETF/IRET for a return to privilege rpl (≥ CPL); leaves its
 * descriptor in `desc`.
 */
function checkReturnCs(cpu: Cpu, csSel: number): void {
  if ((csSel & 0xfffc) === 0) fault(cpu, EX_GP, 0);
  if (!readDescriptor(cpu, csSel)) fault(cpu, EX_GP, csSel & 0xfffc);
  const hi = desc.hi;
  const rpl = csSel & 3, dpl = dplOf(hi);
  if (!isCode(hi) || rpl < cpu.cpl) fault(cpu, EX_GP, csSel & 0xfffc);
  if (conforming(hi) ? dpl > rpl : dpl !== rpl) fault(cpu, EX_GP, csSel & 0xfffc);
  if (!present(hi)) fault(cpu, EX_NP, csSel & 0xfffc);
}

/** checks the SS selector popped on a return to outer privilege rpl; leaves its descriptor in `desc` */
function checkReturnSs(cpu: Cpu, ssSel: number, rpl: number): void {
  if ((ssSel & 0xfffc) === 0) fault(cpu, EX_GP, 0);
  if (!readDescriptor(cpu, ssSel)) fault(cpu, EX_GP, ssSel & 0xfffc);
  const hi = desc.hi;
  if ((ssSel & 3) !== rpl || !isData(hi) || !rwBit(hi) || dplOf(hi) !== rpl) fault(cpu, EX_GP, ssSel & 0xfffc);
  if (!present(hi)) fault(cpu, EX_SS, ssSel & 0xfffc);
}

/** far RET (CB, CA imm16): pops EIP/CS with cpu.osize32, then releases popBytes of parameters */
export function farRet(cpu: Cpu, popBytes: number): void {
  const sz = cpu.osize32 ? 4 : 2;
  const mask = cpu.osize32 ? 0xffffffff : 0xffff;
  const eip = peek(cpu, 0, sz) & mask;
  const csSel = peek(cpu, sz, sz) & 0xffff;
  if (!cpu.protectedMode || cpu.flags & F_VM) {
    if (eip >>> 0 > (cpu.flags & F_VM ? 0xffff : cpu.segLimit[CS])) fault(cpu, EX_GP, 0);
    loadCsReal(cpu, csSel);
    cpu.eip = eip >>> 0;
    cpu.adjustSp(2 * sz + popBytes);
    return;
  }
  checkReturnCs(cpu, csSel);
  const cLo = desc.lo, cHi = desc.hi, cAddr = desc.addr;
  const rpl = csSel & 3;
  const csLimit = descLimit(cLo, cHi);
  if (rpl === cpu.cpl) {
    if (eip >>> 0 > csLimit) fault(cpu, EX_GP, 0);
    setAccessed(cpu, cAddr, cHi);
    commitCs(cpu, csSel, cLo, cHi, rpl);
    cpu.eip = eip >>> 0;
    cpu.adjustSp(2 * sz + popBytes);
    return;
  }
  // return to outer privilege
  const newEsp = peek(cpu, 2 * sz + popBytes, sz);
  const ssSel = peek(cpu, 3 * sz + popBytes, sz) & 0xffff;
  checkReturnSs(cpu, ssSel, rpl);
  const sLo = desc.lo, sHi = desc.hi, sAddr = desc.addr;
  if (eip >>> 0 > csLimit) fault(cpu, EX_GP, 0);
  setAccessed(cpu, cAddr, cHi);
  setAccessed(cpu, sAddr, sHi);
  commitCs(cpu, csSel, cLo, cHi, rpl);
  cpu.eip = eip >>> 0;
  cpu.setSegCache(SS, ssSel, descBase(sLo, sHi), descLimit(sLo, sHi), descAr(sHi) | 1);
  setSp(cpu, sz === 4 ? newEsp : newEsp & 0xffff);
  cpu.adjustSp(popBytes);
  nullInvalidSegs(cpu);
  cpu.updateMode();
}

/** IRET / IRETD (operand size cpu.osize32) in every mode; clears the NMI block */
export function iret(cpu: Cpu): void {
  const sz = cpu.osize32 ? 4 : 2;
  const cpl = cpu.cpl;
  const iopl = (cpu.flags >>> 12) & 3;
  if (!cpu.protectedMode || cpu.flags & F_VM) {
    const v86 = (cpu.flags & F_VM) !== 0;
    if (v86 && iopl < 3) fault(cpu, EX_GP, 0);
    const eip = peek(cpu, 0, sz) >>> 0;
    const csSel = peek(cpu, sz, sz) & 0xffff;
    const fl = peek(cpu, 2 * sz, sz);
    const target = sz === 4 ? eip : eip & 0xffff;
    if (target > (v86 ? 0xffff : cpu.segLimit[CS])) fault(cpu, EX_GP, 0);
    let mask = sz === 4 ? F_VALID & ~F_VM : 0xffff;
    if (v86) mask &= ~F_IOPL;
    cpu.adjustSp(3 * sz);
    loadCsReal(cpu, csSel);
    cpu.eip = target;
    writeFlags(cpu, fl, mask);
    cpu.nmiBlocked = false;
    return;
  }
  if (cpu.flags & F_NT) {
    // return from a nested task
    const link = cpu.readSys16(cpu.trBase);
    taskSwitch(cpu, link, TS_IRET, 0);
    cpu.nmiBlocked = false;
    return;
  }
  const eip = peek(cpu, 0, sz) >>> 0;
  const csSel = peek(cpu, sz, sz) & 0xffff;
  const fl = sz === 4 ? peek(cpu, 8, 4) : peek(cpu, 4, 2);
  if (sz === 4 && fl & F_VM && cpl === 0) {
    iretToV86(cpu, eip, csSel, fl);
    cpu.nmiBlocked = false;
    return;
  }
  checkReturnCs(cpu, csSel);
  const cLo = desc.lo, cHi = desc.hi, cAddr = desc.addr;
  const rpl = csSel & 3;
  const csLimit = descLimit(cLo, cHi);
  const target = sz === 4 ? eip : eip & 0xffff;
  // flags this IRET may change (decided by the old CPL)
  let mask = F_ARITH | F_TF | F_DF | F_NT | F_RF | F_AC | F_ID;
  if (cpl <= iopl) mask |= F_IF;
  if (cpl === 0) mask |= F_IOPL;
  if (sz === 2) mask &= 0xffff;
  if (rpl === cpl) {
    if (target > csLimit) fault(cpu, EX_GP, 0);
    setAccessed(cpu, cAddr, cHi);
    cpu.adjustSp(3 * sz);
    commitCs(cpu, csSel, cLo, cHi, rpl);
    cpu.eip = target;
    writeFlags(cpu, fl, mask);
    cpu.nmiBlocked = false;
    return;
  }
  const newEsp = peek(cpu, 3 * sz, sz);
  const ssSel = peek(cpu, 4 * sz, sz) & 0xffff;
  checkReturnSs(cpu, ssSel, rpl);
  const sLo = desc.lo, sHi = desc.hi, sAddr = desc.addr;
  if (target > csLimit) fault(cpu, EX_GP, 0);
  setAccessed(cpu, cAddr, cHi);
  setAccessed(cpu, sAddr, sHi);
  writeFlags(cpu, fl, mask);
  commitCs(cpu, csSel, cLo, cHi, rpl);
  cpu.eip = target;
  cpu.setSegCache(SS, ssSel, descBase(sLo, sHi), descLimit(sLo, sHi), descAr(sHi) | 1);
  setSp(cpu, sz === 4 ? newEsp : newEsp & 0xffff);
  nullInvalidSegs(cpu);
  cpu.updateMode();
  cpu.nmiBlocked = false;
}

/** IRETD at CPL 0 with VM set in the popped EFLAGS: return to virtual-8086 mode */
function iretToV86(cpu: Cpu, eip: number, csSel: number, fl: number): void {
  const newEsp = cpu.peek32(12);
  const ss = cpu.peek32(16) & 0xffff;
  const es = cpu.peek32(20) & 0xffff;
  const ds = cpu.peek32(24) & 0xffff;
  const fs = cpu.peek32(28) & 0xffff;
  const gs = cpu.peek32(32) & 0xffff;
  const target = eip & 0xffff;
  // EIP beyond the v86 CS limit (0xFFFF) faults in the new context on the next fetch
  writeFlags(cpu, fl, -1);
  cpu.setCpl(3);
  for (const [seg, sel] of [[CS, csSel], [SS, ss], [ES, es], [DS, ds], [FS, fs], [GS, gs]] as const) {
    cpu.setSegCache(seg, sel, sel << 4, 0xffff, 0xf3);
  }
  cpu.regs[ESP] = newEsp;
  cpu.eip = target;
  cpu.updateMode();
}

// =====================================================================================
// hardware task switch
// =====================================================================================

const tsRegs = new Int32Array(8);
const tsSegs = new Uint16Array(6);

/**
 * Switches to the task whose TSS descriptor is `sel` (reason TS_JMP, TS_CALL, TS_IRET, TS_INT).
 * `ext` is the EXT bit for error codes (1 for hardware interrupts/exceptions through a task gate).
 * Returns true if the new TSS is a 32-bit TSS (the size of an error code to push).
 */
export function taskSwitch(cpu: Cpu, sel: number, reason: number, ext = 0): boolean {
  sel &= 0xffff;
  const selErr = (sel & 0xfffc) | ext;
  const badSelVec = reason === TS_IRET ? EX_TS : EX_GP;
  if (sel & 4) fault(cpu, badSelVec, selErr);
  if (!readDescriptor(cpu, sel)) fault(cpu, badSelVec, selErr);
  const nLo = desc.lo, nAddr = desc.addr;
  let nHi = desc.hi;
  const ntype = (nHi >>> 8) & 0x1f;
  if (reason === TS_IRET) {
    if (ntype !== 0x03 && ntype !== 0x0b) fault(cpu, EX_TS, selErr);
  } else if (ntype !== 0x01 && ntype !== 0x09) {
    fault(cpu, EX_GP, selErr);
  }
  if (!present(nHi)) fault(cpu, EX_NP, selErr);
  const n32 = (ntype & 8) !== 0;
  const nBase = descBase(nLo, nHi);
  const nLimit = descLimit(nLo, nHi);
  if (nLimit < (n32 ? 0x67 : 0x2b)) fault(cpu, EX_TS, selErr);
  const o32 = (cpu.trAr & 8) !== 0;
  const oBase = cpu.trBase;
  if (cpu.trLimit < (o32 ? 0x5f : 0x29)) fault(cpu, EX_TS, (cpu.trSel & 0xfffc) | ext);

  // read the new task's state
  let nCr3 = 0, nEip: number, nFlags: number, nLdt: number;
  if (n32) {
    nCr3 = cpu.readSys32((nBase + 0x1c) | 0);
    nEip = cpu.readSys32((nBase + 0x20) | 0);
    nFlags = cpu.readSys32((nBase + 0x24) | 0);
    for (let i = 0; i < 8; i++) tsRegs[i] = cpu.readSys32((nBase + 0x28 + i * 4) | 0);
    for (let i = 0; i < 6; i++) tsSegs[i] = cpu.readSys16((nBase + 0x48 + i * 4) | 0);
    nLdt = cpu.readSys16((nBase + 0x60) | 0);
  } else {
    nEip = cpu.readSys16((nBase + 0x0e) | 0);
    nFlags = cpu.readSys16((nBase + 0x10) | 0);
    for (let i = 0; i < 8; i++) tsRegs[i] = cpu.readSys16((nBase + 0x12 + i * 2) | 0) | 0xffff0000;
    for (let i = 0; i < 4; i++) tsSegs[i] = cpu.readSys16((nBase + 0x22 + i * 2) | 0);
    tsSegs[FS] = tsSegs[GS] = 0;
    nLdt = cpu.readSys16((nBase + 0x2a) | 0);
  }

  // save the old task's state
  let oFlags = cpu.getFlags();
  if (reason === TS_IRET) oFlags &= ~F_NT;
  if (o32) {
    cpu.writeSys32((oBase + 0x20) | 0, cpu.eip);
    cpu.writeSys32((oBase + 0x24) | 0, oFlags);
    for (let i = 0; i < 8; i++) cpu.writeSys32((oBase + 0x28 + i * 4) | 0, cpu.regs[i]);
    for (let i = 0; i < 6; i++) cpu.writeSys16((oBase + 0x48 + i * 4) | 0, cpu.segSel[i]);
  } else {
    cpu.writeSys16((oBase + 0x0e) | 0, cpu.eip);
    cpu.writeSys16((oBase + 0x10) | 0, oFlags);
    for (let i = 0; i < 8; i++) cpu.writeSys16((oBase + 0x12 + i * 2) | 0, cpu.regs[i]);
    for (let i = 0; i < 4; i++) cpu.writeSys16((oBase + 0x22 + i * 2) | 0, cpu.segSel[i]);
  }
  // busy bits and the back link
  if (reason === TS_JMP || reason === TS_IRET) {
    const oAddr = (cpu.gdtBase + (cpu.trSel & 0xfff8) + 5) | 0;
    if ((cpu.trSel & 0xfff8) + 7 <= cpu.gdtLimit) cpu.writeSys8(oAddr, cpu.readSys8(oAddr) & ~2);
  }
  if (reason === TS_CALL || reason === TS_INT) {
    cpu.writeSys16(nBase, cpu.trSel);
    nFlags |= F_NT;
  }
  if (reason !== TS_IRET) {
    nHi |= 0x200;
    cpu.writeSys8((nAddr + 5) | 0, (nHi >>> 8) & 0xff);
  }

  // ---- commit: from here on, faults belong to the new task ----
  cpu.trSel = sel;
  cpu.trBase = nBase;
  cpu.trLimit = nLimit;
  cpu.trAr = descAr(nHi);
  cpu.cr0 |= CR0_TS;
  if (n32 && cpu.cr0 & CR0_PG) {
    cpu.cr3 = nCr3;
    cpu.flushTlb(false);
  }
  for (let i = 0; i < 8; i++) cpu.regs[i] = tsRegs[i];
  // a 16-bit TSS holds FLAGS only: the upper EFLAGS bits (VM among them) are loaded as 0
  writeFlags(cpu, nFlags, -1);
  cpu.eip = n32 ? nEip >>> 0 : nEip & 0xffff;
  cpu.instrStart = cpu.eip;
  // selectors first (unusable caches), then the checked loads
  for (let s = 0; s < 6; s++) cpu.setSegNull(s, tsSegs[s]);
  cpu.ldtSel = nLdt;
  cpu.ldtBase = 0;
  cpu.ldtLimit = 0;
  cpu.ldtAr = 0;
  try {
    loadTaskSegments(cpu, nLdt, ext);
  } finally {
    cpu.updateMode();
  }
  if (cpu.eip > cpu.segLimit[CS]) fault(cpu, EX_GP, ext);
  return n32;
}

/** loads LDTR and the segment registers of the new task (after the task-switch commit point) */
function loadTaskSegments(cpu: Cpu, nLdt: number, ext: number): void {
  if (cpu.flags & F_VM) {
    loadLdtTask(cpu, nLdt, ext);
    cpu.setCpl(3);
    for (let s = 0; s < 6; s++) cpu.setSegCache(s, tsSegs[s], tsSegs[s] << 4, 0xffff, 0xf3);
  } else {
    loadLdtTask(cpu, nLdt, ext);
    const csSel = tsSegs[CS];
    const cpl = csSel & 3;
    // CS
    const csErr = (csSel & 0xfffc) | ext;
    if ((csSel & 0xfffc) === 0) fault(cpu, EX_TS, ext);
    if (!readDescriptor(cpu, csSel)) fault(cpu, EX_TS, csErr);
    const cLo = desc.lo, cHi = desc.hi;
    if (!isCode(cHi)) fault(cpu, EX_TS, csErr);
    if (conforming(cHi) ? dplOf(cHi) > cpl : dplOf(cHi) !== cpl) fault(cpu, EX_TS, csErr);
    if (!present(cHi)) fault(cpu, EX_NP, csErr);
    setAccessed(cpu, desc.addr, cHi);
    cpu.setCpl(cpl);
    commitCs(cpu, csSel, cLo, cHi, cpl);
    // SS
    const ssSel = tsSegs[SS];
    const ssErr = (ssSel & 0xfffc) | ext;
    if ((ssSel & 0xfffc) === 0) fault(cpu, EX_TS, ext);
    if (!readDescriptor(cpu, ssSel)) fault(cpu, EX_TS, ssErr);
    const sHi = desc.hi;
    if ((ssSel & 3) !== cpl || dplOf(sHi) !== cpl || !isData(sHi) || !rwBit(sHi)) fault(cpu, EX_TS, ssErr);
    if (!present(sHi)) fault(cpu, EX_SS, ssErr);
    setAccessed(cpu, desc.addr, sHi);
    cpu.setSegCache(SS, ssSel, descBase(desc.lo, sHi), descLimit(desc.lo, sHi), descAr(sHi) | 1);
    // data segments
    for (const seg of [DS, ES, FS, GS]) {
      const s = tsSegs[seg];
      if ((s & 0xfffc) === 0) continue;
      const err = (s & 0xfffc) | ext;
      if (!readDescriptor(cpu, s)) fault(cpu, EX_TS, err);
      const hi = desc.hi;
      if (!(hi & 0x1000) || (isCode(hi) && !rwBit(hi))) fault(cpu, EX_TS, err);
      if (!(isCode(hi) && conforming(hi)) && (dplOf(hi) < cpl || dplOf(hi) < (s & 3))) fault(cpu, EX_TS, err);
      if (!present(hi)) fault(cpu, EX_NP, err);
      setAccessed(cpu, desc.addr, hi);
      cpu.setSegCache(seg, s, descBase(desc.lo, hi), descLimit(desc.lo, hi), descAr(hi) | 1);
    }
  }
}

/** loads LDTR during a task switch (#TS on a bad LDT selector) */
function loadLdtTask(cpu: Cpu, ldt: number, ext: number): void {
  if ((ldt & 0xfffc) === 0) return;
  const err = (ldt & 0xfffc) | ext;
  if (ldt & 4) fault(cpu, EX_TS, err);
  if (!readDescriptor(cpu, ldt)) fault(cpu, EX_TS, err);
  const hi = desc.hi;
  if (((hi >>> 8) & 0x1f) !== 2 || !present(hi)) fault(cpu, EX_TS, err);
  cpu.ldtBase = descBase(desc.lo, hi);
  cpu.ldtLimit = descLimit(desc.lo, hi);
  cpu.ldtAr = descAr(hi);
}

// =====================================================================================
// LLDT, LTR, LAR, LSL, VERR, VERW
// =====================================================================================

function checkSystemInsn(cpu: Cpu): void {
  if (!cpu.protectedMode || cpu.flags & F_VM) cpu.raise(EX_UD);
  if (cpu.cpl !== 0) fault(cpu, EX_GP, 0);
}

/** LLDT: loads LDTR from a GDT descriptor (null selector makes the LDT invalid) */
export function lldt(cpu: Cpu, sel: number): void {
  checkSystemInsn(cpu);
  sel &= 0xffff;
  if ((sel & 0xfffc) === 0) {
    cpu.ldtSel = sel;
    cpu.ldtBase = 0;
    cpu.ldtLimit = 0;
    cpu.ldtAr = 0;
    return;
  }
  if (sel & 4) fault(cpu, EX_GP, sel & 0xfffc);
  if (!readDescriptor(cpu, sel)) fault(cpu, EX_GP, sel & 0xfffc);
  const lo = desc.lo, hi = desc.hi;
  if (((hi >>> 8) & 0x1f) !== 2) fault(cpu, EX_GP, sel & 0xfffc);
  if (!present(hi)) fault(cpu, EX_NP, sel & 0xfffc);
  cpu.ldtSel = sel;
  cpu.ldtBase = descBase(lo, hi);
  cpu.ldtLimit = descLimit(lo, hi);
  cpu.ldtAr = descAr(hi);
}

/** LTR: loads TR from an available TSS descriptor and marks it busy */
export function ltr(cpu: Cpu, sel: number): void {
  checkSystemInsn(cpu);
  sel &= 0xffff;
  if ((sel & 0xfffc) === 0) fault(cpu, EX_GP, 0);
  if (sel & 4) fault(cpu, EX_GP, sel & 0xfffc);
  if (!readDescriptor(cpu, sel)) fault(cpu, EX_GP, sel & 0xfffc);
  const lo = desc.lo, hi = desc.hi, addr = desc.addr;
  const type = (hi >>> 8) & 0x1f;
  if (type !== 1 && type !== 9) fault(cpu, EX_GP, sel & 0xfffc);
  if (!present(hi)) fault(cpu, EX_NP, sel & 0xfffc);
  const busyHi = hi | 0x200;
  cpu.writeSys8((addr + 5) | 0, (busyHi >>> 8) & 0xff);
  cpu.trSel = sel;
  cpu.trBase = descBase(lo, hi);
  cpu.trLimit = descLimit(lo, hi);
  cpu.trAr = descAr(busyHi);
}

/** reads a selector's descriptor for LAR/LSL/VERR/VERW: false if null or beyond the table limit */
function probe(cpu: Cpu, sel: number): boolean {
  if ((sel & 0xfffc) === 0) return false;
  return readDescriptor(cpu, sel & 0xffff);
}

/** privilege check shared by LAR/LSL/VERR/VERW (conforming code segments skip it) */
function visible(cpu: Cpu, sel: number, hi: number): boolean {
  if (isCode(hi) && conforming(hi)) return true;
  const dpl = dplOf(hi);
  return dpl >= cpu.cpl && dpl >= (sel & 3);
}

const LAR_SYS_OK = 0b0001_1010_0011_1110; // types 1,2,3,4,5,9,B,C
const LSL_SYS_OK = 0b0000_1010_0000_1110; // types 1,2,3,9,B

/** LAR: the access-rights dword (descriptor high dword & 0x00F0FF00), or null (ZF = 0) */
export function lar(cpu: Cpu, sel: number): number | null {
  if (!probe(cpu, sel)) return null;
  const hi = desc.hi;
  if (!(hi & 0x1000) && !((LAR_SYS_OK >>> ((hi >>> 8) & 0xf)) & 1)) return null;
  if (!visible(cpu, sel, hi)) return null;
  return hi & 0x00f0ff00;
}

/** LSL: the byte-granular segment limit, or null (ZF = 0) */
export function lsl(cpu: Cpu, sel: number): number | null {
  if (!probe(cpu, sel)) return null;
  const hi = desc.hi;
  if (!(hi & 0x1000) && !((LSL_SYS_OK >>> ((hi >>> 8) & 0xf)) & 1)) return null;
  if (!visible(cpu, sel, hi)) return null;
  return descLimit(desc.lo, hi);
}

/** VERR: segment readable at the current privilege */
export function verr(cpu: Cpu, sel: number): boolean {
  if (!probe(cpu, sel)) return false;
  const hi = desc.hi;
  if (!(hi & 0x1000)) return false;
  if (isCode(hi) && !rwBit(hi)) return false;
  return visible(cpu, sel, hi);
}

/** VERW: segment writable at the current privilege */
export function verw(cpu: Cpu, sel: number): boolean {
  if (!probe(cpu, sel)) return false;
  const hi = desc.hi;
  if (!isData(hi) || !rwBit(hi)) return false;
  return dplOf(hi) >= cpu.cpl && dplOf(hi) >= (sel & 3);
}

// =====================================================================================
// SYSENTER / SYSEXIT
// =====================================================================================

/** SYSENTER: flat ring-0 CS/SS from IA32_SYSENTER_CS, ESP/EIP from the MSRs */
export function sysenter(cpu: Cpu): void {
  if (!cpu.protectedMode) fault(cpu, EX_GP, 0);
  const cs = cpu.sysenterCs & 0xfffc;
  if (cs === 0) fault(cpu, EX_GP, 0);
  writeFlags(cpu, 0, F_VM | F_IF | F_RF);
  cpu.setCpl(0);
  cpu.setSegCache(CS, cs, 0, 0xffffffff, 0xc09b);
  cpu.setSegCache(SS, (cs + 8) & 0xfffc, 0, 0xffffffff, 0xc093);
  cpu.regs[ESP] = cpu.sysenterEsp;
  cpu.eip = cpu.sysenterEip >>> 0;
  cpu.updateMode();
}

/** SYSEXIT: flat ring-3 CS/SS at IA32_SYSENTER_CS + 16/24, ESP = ECX, EIP = EDX */
export function sysexit(cpu: Cpu): void {
  if (!cpu.protectedMode || cpu.flags & F_VM || cpu.cpl !== 0) fault(cpu, EX_GP, 0);
  const cs = cpu.sysenterCs & 0xfffc;
  if (cs === 0) fault(cpu, EX_GP, 0);
  cpu.setCpl(3);
  cpu.setSegCache(CS, ((cs + 16) & 0xfffc) | 3, 0, 0xffffffff, 0xc0fb);
  cpu.setSegCache(SS, ((cs + 24) & 0xfffc) | 3, 0, 0xffffffff, 0xc0f3);
  cpu.regs[ESP] = cpu.regs[ECX];
  cpu.eip = cpu.regs[EDX] >>> 0;
  cpu.updateMode();
}
