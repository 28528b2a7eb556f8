/**
 * String instructions (MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS) with REP/REPE/REPNE, both address sizes
 * and both directions. Registers are updated after every iteration so a fault in the middle restarts
 * correctly. A long REP is cut into chunks (the instruction re-executes) so interrupts stay timely.
 * REP MOVS/STOS forward over RAM with 32-bit addressing take a bulk path: whole page-bounded runs are
 * copied with typed-array operations.
 */
import type { Cpu } from '../cpu';
import { def } from '../optable';
import { ECX, ESI, EDI, ES, DS, F_DF } from '../defs';

/** iterations per execution of a REP instruction before it yields (re-executes) */
const CHUNK = 65536;

function srcSeg(cpu: Cpu): number {
  return cpu.segOv >= 0 ? cpu.segOv : DS;
}

function getCount(cpu: Cpu): number {
  return cpu.asize32 ? cpu.regs[ECX] >>> 0 : cpu.r16[ECX << 1];
}

function setCount(cpu: Cpu, v: number): void {
  if (cpu.asize32) cpu.regs[ECX] = v;
  else cpu.r16[ECX << 1] = v;
}

function getIdx(cpu: Cpu, r: number): number {
  return cpu.asize32 ? cpu.regs[r] >>> 0 : cpu.r16[r << 1];
}

function setIdx(cpu: Cpu, r: number, v: number): void {
  if (cpu.asize32) cpu.regs[r] = v;
  else cpu.r16[r << 1] = v;
}

function readN(cpu: Cpu, seg: number, off: number, size: number): number {
  return size === 1 ? cpu.read8(seg, off) : size === 2 ? cpu.read16(seg, off) : cpu.read32(seg, off);
}

function writeN(cpu: Cpu, seg: number, off: number, size: number, v: number): void {
  if (size === 1) cpu.write8(seg, off, v);
  else if (size === 2) cpu.write16(seg, off, v);
  else cpu.write32(seg, off, v);
}

function accGet(cpu: Cpu, size: number): number {
  return size === 1 ? cpu.r8[0] : size === 2 ? cpu.r16[0] : cpu.regs[0];
}

function accSet(cpu: Cpu, size: number, v: number): void {
  if (size === 1) cpu.r8[0] = v;
  else if (size === 2) cpu.r16[0] = v;
  else cpu.regs[0] = v;
}

/**
 * bulk forward MOVS over RAM; returns the number of elements moved (0 if the fast path does not apply
 * to the next element)
 */
function bulkMovs(cpu: Cpu, size: number, count: number): number {
  const ss = srcSeg(cpu);
  const si = cpu.regs[ESI] >>> 0;
  const di = cpu.regs[EDI] >>> 0;
  const sLin = (cpu.segBase[ss] + si) | 0;
  const dLin = (cpu.segBase[ES] + di) | 0;
  let n = Math.min(count, Math.floor((0x1000 - (sLin & 0xfff)) / size), Math.floor((0x1000 - (dLin & 0xfff)) / size));
  if (n < 2) return 0;
  const bytes = n * size;
  if (si < cpu.segLoR[ss] || si + bytes - 1 > cpu.segHiR[ss]) return 0;
  if (di < cpu.segLoW[ES] || di + bytes - 1 > cpu.segHiW[ES]) return 0;
  const s = cpu.ramIndexR(sLin);
  if (s < 0) return 0;
  const d = cpu.ramIndexW(dLin);
  if (d < 0) return 0;
  const m = cpu.mem8;
  if (d > s && d < s + bytes) {
    // overlapping forward copy replicates the pattern: copy element by element
    for (let i = 0; i < bytes; i++) m[d + i] = m[s + i];
  } else {
    m.copyWithin(d, s, s + bytes);
  }
  n = bytes / size;
  cpu.regs[ESI] = si + bytes;
  cpu.regs[EDI] = di + bytes;
  return n;
}

function bulkStos(cpu: Cpu, size: number, count: number): number {
  const di = cpu.regs[EDI] >>> 0;
  const dLin = (cpu.segBase[ES] + di) | 0;
  const n = Math.min(count, Math.floor((0x1000 - (dLin & 0xfff)) / size));
  if (n < 2) return 0;
  const bytes = n * size;
  if (di < cpu.segLoW[ES] || di + bytes - 1 > cpu.segHiW[ES]) return 0;
  const d = cpu.ramIndexW(dLin);
  if (d < 0) return 0;
  const v = accGet(cpu, size);
  if (size === 1) cpu.mem8.fill(v, d, d + bytes);
  else if (size === 4 && (d & 3) === 0) cpu.mem32.fill(v, d >>> 2, (d + bytes) >>> 2);
  else {
    const m = cpu.mem8;
    for (let i = 0; i < bytes; i += size) {
      m[d + i] = v;
      m[d + i + 1] = v >> 8;
      if (size === 4) {
        m[d + i + 2] = v >> 16;
        m[d + i + 3] = v >> 24;
      }
    }
  }
  cpu.regs[EDI] = di + bytes;
  return n;
}

/** one MOVS element: copy, then step SI/DI */
function movsOne(cpu: Cpu, ss: number, size: number, delta: number): void {
  const v = readN(cpu, ss, getIdx(cpu, ESI), size);
  writeN(cpu, ES, getIdx(cpu, EDI), size, v);
  setIdx(cpu, ESI, getIdx(cpu, ESI) + delta);
  setIdx(cpu, EDI, getIdx(cpu, EDI) + delta);
}

function movs(cpu: Cpu, size: number): void {
  const ss = srcSeg(cpu);
  const delta = cpu.flags & F_DF ? -size : size;
  if (cpu.rep === 0) {
    movsOne(cpu, ss, size, delta);
    return;
  }
  let count = getCount(cpu);
  let budget = CHUNK * 16;
  while (count > 0 && budget > 0) {
    if (delta > 0 && cpu.asize32) {
      const n = bulkMovs(cpu, size, Math.min(count, budget));
      if (n > 0) {
        count -= n;
        budget -= n;
        setCount(cpu, count);
        continue;
      }
    }
    movsOne(cpu, ss, size, delta);
    count--;
    budget -= 16;
    setCount(cpu, count);
  }
  if (count > 0) cpu.eip = cpu.instrStart;
}

function stos(cpu: Cpu, size: number): void {
  const delta = cpu.flags & F_DF ? -size : size;
  if (cpu.rep === 0) {
    writeN(cpu, ES, getIdx(cpu, EDI), size, accGet(cpu, size));
    setIdx(cpu, EDI, getIdx(cpu, EDI) + delta);
    return;
  }
  let count = getCount(cpu);
  let budget = CHUNK * 16;
  while (count > 0 && budget > 0) {
    if (delta > 0 && cpu.asize32) {
      const n = bulkStos(cpu, size, Math.min(count, budget));
      if (n > 0) {
        count -= n;
        budget -= n;
        setCount(cpu, count);
        continue;
      }
    }
    writeN(cpu, ES, getIdx(cpu, EDI), size, accGet(cpu, size));
    setIdx(cpu, EDI, getIdx(cpu, EDI) + delta);
    count--;
    budget -= 16;
    setCount(cpu, count);
  }
  if (count > 0) cpu.eip = cpu.instrStart;
}

function lods(cpu: Cpu, size: number): void {
  const ss = srcSeg(cpu);
  const delta = cpu.flags & F_DF ? -size : size;
  if (cpu.rep === 0) {
    accSet(cpu, size, readN(cpu, ss, getIdx(cpu, ESI), size));
    setIdx(cpu, ESI, getIdx(cpu, ESI) + delta);
    return;
  }
  let count = getCount(cpu);
  let n = 0;
  while (count > 0 && n < CHUNK) {
    accSet(cpu, size, readN(cpu, ss, getIdx(cpu, ESI), size));
    setIdx(cpu, ESI, getIdx(cpu, ESI) + delta);
    setCount(cpu, --count);
    n++;
  }
  if (count > 0) cpu.eip = cpu.instrStart;
}

function cmps(cpu: Cpu, size: number): void {
  const ss = srcSeg(cpu);
  const delta = cpu.flags & F_DF ? -size : size;
  const top = size * 8 - 1;
  if (cpu.rep === 0) {
    const a = readN(cpu, ss, getIdx(cpu, ESI), size);
    const b = readN(cpu, ES, getIdx(cpu, EDI), size);
    cpu.sub(a, b, top);
    setIdx(cpu, ESI, getIdx(cpu, ESI) + delta);
    setIdx(cpu, EDI, getIdx(cpu, EDI) + delta);
    return;
  }
  const wantZ = cpu.rep === 0xf3;
  let count = getCount(cpu);
  let n = 0;
  while (count > 0 && n < CHUNK) {
    const a = readN(cpu, ss, getIdx(cpu, ESI), size);
    const b = readN(cpu, ES, getIdx(cpu, EDI), size);
    cpu.sub(a, b, top);
    setIdx(cpu, ESI, getIdx(cpu, ESI) + delta);
    setIdx(cpu, EDI, getIdx(cpu, EDI) + delta);
    setCount(cpu, --count);
    n++;
    if (((a ^ b) << (31 - top) === 0) !== wantZ) return;
  }
  if (count > 0) cpu.eip = cpu.instrStart;
}

function scas(cpu: Cpu, size: number): void {
  const delta = cpu.flags & F_DF ? -size : size;
  const top = size * 8 - 1;
  const acc = accGet(cpu, size);
  if (cpu.rep === 0) {
    const b = readN(cpu, ES, getIdx(cpu, EDI), size);
    cpu.sub(acc, b, top);
    setIdx(cpu, EDI, getIdx(cpu, EDI) + delta);
    return;
  }
  const wantZ = cpu.rep === 0xf3;
  let count = getCount(cpu);
  let n = 0;
  while (count > 0 && n < CHUNK) {
    const b = readN(cpu, ES, getIdx(cpu, EDI), size);
    cpu.sub(acc, b, top);
    setIdx(cpu, EDI, getIdx(cpu, EDI) + delta);
    setCount(cpu, --count);
    n++;
    if (((acc ^ b) << (31 - top) === 0) !== wantZ) return;
  }
  if (count > 0) cpu.eip = cpu.instrStart;
}

function ins(cpu: Cpu, size: number): void {
  const port = cpu.r16[2 << 1];
  cpu.checkIo(port, size);
  const delta = cpu.flags & F_DF ? -size : size;
  let count = cpu.rep ? getCount(cpu) : 1;
  let n = 0;
  while (count > 0 && n < CHUNK) {
    const off = getIdx(cpu, EDI);
    // check the destination before reading the port (a port read can have side effects)
    cpu.probeWrite(cpu.linW(ES, off, size), size);
    const v = size === 1 ? cpu.io.in8(port) : size === 2 ? cpu.io.in16(port) : cpu.io.in32(port);
    writeN(cpu, ES, off, size, v);
    setIdx(cpu, EDI, off + delta);
    count--;
    if (cpu.rep) setCount(cpu, count);
    n++;
  }
  if (cpu.rep && count > 0) cpu.eip = cpu.instrStart;
}

function outs(cpu: Cpu, size: number): void {
  const port = cpu.r16[2 << 1];
  cpu.checkIo(port, size);
  const ss = srcSeg(cpu);
  const delta = cpu.flags & F_DF ? -size : size;
  let count = cpu.rep ? getCount(cpu) : 1;
  let n = 0;
  while (count > 0 && n < CHUNK) {
    const v = readN(cpu, ss, getIdx(cpu, ESI), size);
    if (size === 1) cpu.io.out8(port, v);
    else if (size === 2) cpu.io.out16(port, v);
    else cpu.io.out32(port, v);
    setIdx(cpu, ESI, getIdx(cpu, ESI) + delta);
    count--;
    if (cpu.rep) setCount(cpu, count);
    n++;
  }
  if (cpu.rep && count > 0) cpu.eip = cpu.instrStart;
}

type StrFn = (cpu: Cpu, size: number) => void;
const FAMILY: [number, string, StrFn][] = [
  [0xa4, 'MOVS', movs],
  [0xa6, 'CMPS', cmps],
  [0xaa, 'STOS', stos],
  [0xac, 'LODS', lods],
  [0xae, 'SCAS', scas],
  [0x6c, 'INS', ins],
  [0x6e, 'OUTS', outs],
];
for (const [op, name, fn] of FAMILY) {
  def(op, `${name}B`, (cpu) => fn(cpu, 1));
  def(
    op + 1,
    `${name}W/D`,
    (cpu) => fn(cpu, 2),
    (cpu) => fn(cpu, 4),
  );
}
