/**
 * System instructions: descriptor-table registers, control and debug registers, MSRs, CPUID, RDTSC,
 * SYSENTER/SYSEXIT, LAR/LSL/VERR/VERW, cache and hint no-ops, FXSAVE/FXRSTOR.
 */
import type { Cpu } from '../cpu';
import { def, defBranch } from '../optable';
import * as pm from '../protmode';
import {
  EAX, ECX, EDX, EBX, F_VM, F_ZF, CR0_PE, CR0_PG, CR0_TS, CR0_EM, CR0_WP, CR0_ET, CR0_NE, CR0_MP, CR0_AM,
  CR0_NW, CR0_CD, CR4_VALID, CR4_PGE, CR4_PSE, CR4_TSD, CR4_DE, EX_NM,
} from '../defs';

/** privileged instruction check: CPL 0 and not virtual-8086 mode */
export function requireCpl0(cpu: Cpu): void {
  if (cpu.protectedMode && (cpu.cpl !== 0 || cpu.flags & F_VM)) cpu.gp(0);
}

function setZF(cpu: Cpu, z: boolean): void {
  cpu.materializeFlags();
  if (z) cpu.flags |= F_ZF;
  else cpu.flags &= ~F_ZF;
}

/** protected-mode-only instructions (#UD in real and v86 mode) */
function requirePm(cpu: Cpu): void {
  if (!cpu.protectedMode || cpu.flags & F_VM) cpu.ud();
}

// ---- 0F 00: SLDT STR LLDT LTR VERR VERW ----
def(0x0f00, 'GRP6', (cpu) => {
  const modrm = cpu.fetch8();
  const op = (modrm >> 3) & 7;
  requirePm(cpu);
  switch (op) {
    case 0: // SLDT
    case 1: // STR
      {
        const v = op === 0 ? cpu.ldtSel : cpu.trSel;
        if (modrm >= 0xc0 && cpu.osize32) cpu.regs[modrm & 7] = v;
        else cpu.writeRm16(modrm, v);
      }
      return;
    case 2:
    case 3: {
      const sel = cpu.readRm16(modrm);
      requireCpl0(cpu);
      if (op === 2) pm.lldt(cpu, sel);
      else pm.ltr(cpu, sel);
      return;
    }
    case 4:
    case 5: {
      const sel = cpu.readRm16(modrm);
      setZF(cpu, op === 4 ? pm.verr(cpu, sel) : pm.verw(cpu, sel));
      return;
    }
    default:
      cpu.ud();
  }
});

// ---- 0F 01: SGDT SIDT LGDT LIDT SMSW LMSW INVLPG ----
def(0x0f01, 'GRP7', (cpu) => {
  const modrm = cpu.fetch8();
  const op = (modrm >> 3) & 7;
  switch (op) {
    case 0:
    case 1: {
      if (modrm >= 0xc0) cpu.ud();
      const off = cpu.ea(modrm);
      const seg = cpu.eaSeg;
      const limit = op === 0 ? cpu.gdtLimit : cpu.idtLimit;
      let base = op === 0 ? cpu.gdtBase : cpu.idtBase;
      if (!cpu.osize32) base &= 0xffffff;
      const lin = cpu.linW(seg, off, 6);
      cpu.probeWrite(lin, 6);
      cpu.writeLin16(lin, limit);
      cpu.writeLin32((lin + 2) | 0, base);
      return;
    }
    case 2:
    case 3: {
      if (modrm >= 0xc0) cpu.ud();
      requireCpl0(cpu);
      const off = cpu.ea(modrm);
      const seg = cpu.eaSeg;
      const limit = cpu.read16(seg, off);
      let base = cpu.read32(seg, cpu.asize32 ? (off + 2) >>> 0 : (off + 2) & 0xffff);
      if (!cpu.osize32) base &= 0xffffff;
      if (op === 2) {
        cpu.gdtBase = base;
        cpu.gdtLimit = limit;
      } else {
        cpu.idtBase = base;
        cpu.idtLimit = limit;
      }
      return;
    }
    case 4: // SMSW
      if (modrm >= 0xc0 && cpu.osize32) cpu.regs[modrm & 7] = cpu.cr0;
      else cpu.writeRm16(modrm, cpu.cr0 & 0xffff);
      return;
    case 6: {
      // LMSW: can set PE but not clear it; only MP, EM, TS, PE
      const v = cpu.readRm16(modrm);
      requireCpl0(cpu);
      const keepPe = cpu.cr0 & CR0_PE;
      setCr0(cpu, (cpu.cr0 & ~0xf) | (v & 0xf) | keepPe);
      return;
    }
    case 7: {
      if (modrm >= 0xc0) cpu.ud();
      requireCpl0(cpu);
      const off = cpu.ea(modrm);
      cpu.invalidatePage((cpu.segBase[cpu.eaSeg] + off) | 0);
      return;
    }
    default:
      cpu.ud();
  }
});

// ---- LAR / LSL: the result (or null → ZF=0) goes to the 16- or 32-bit destination ----
function selectorQuery(query: (cpu: Cpu, sel: number) => number | null) {
  return [
    (cpu: Cpu) => {
      const modrm = cpu.fetch8();
      requirePm(cpu);
      const r = query(cpu, cpu.readRm16(modrm));
      setZF(cpu, r !== null);
      if (r !== null) cpu.r16[((modrm >> 3) & 7) << 1] = r;
    },
    (cpu: Cpu) => {
      const modrm = cpu.fetch8();
      requirePm(cpu);
      const r = query(cpu, cpu.readRm16(modrm));
      setZF(cpu, r !== null);
      if (r !== null) cpu.regs[(modrm >> 3) & 7] = r;
    },
  ] as const;
}
def(0x0f02, 'LAR Gv,Ew', ...selectorQuery(pm.lar));
def(0x0f03, 'LSL Gv,Ew', ...selectorQuery(pm.lsl));

def(0x0f06, 'CLTS', (cpu) => {
  requireCpl0(cpu);
  cpu.cr0 &= ~CR0_TS;
});
def(0x0f08, 'INVD', (cpu) => requireCpl0(cpu));
def(0x0f09, 'WBINVD', (cpu) => requireCpl0(cpu));
def(0x0f0b, 'UD2', (cpu) => cpu.ud());
// hint NOPs (0F 18..0F 1F with a ModRM operand): decode the operand, do nothing
for (let op = 0x0f18; op <= 0x0f1f; op++) {
  def(op, 'NOP Ev (hint)', (cpu) => {
    const modrm = cpu.fetch8();
    if (modrm < 0xc0) cpu.ea(modrm);
  });
}

// ---- control registers ----
const CR0_VALID = CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_NW | CR0_CD | CR0_PG;

export function setCr0(cpu: Cpu, v: number): void {
  v = (v & CR0_VALID) | CR0_ET;
  if (v & CR0_PG && !(v & CR0_PE)) cpu.gp(0);
  if (v & CR0_NW && !(v & CR0_CD)) cpu.gp(0);
  const old = cpu.cr0;
  cpu.cr0 = v | 0;
  if ((old ^ v) & (CR0_PG | CR0_WP | CR0_PE)) cpu.flushTlb(true);
  if ((old ^ v) & CR0_PE) {
    cpu.updateMode();
    cpu.rederiveSegments();
  }
}

function setCr4(cpu: Cpu, v: number): void {
  if (v & ~CR4_VALID) cpu.gp(0);
  const old = cpu.cr4;
  cpu.cr4 = v;
  if ((old ^ v) & (CR4_PGE | CR4_PSE)) cpu.flushTlb(true);
}

def(0x0f20, 'MOV Rd,Cd', (cpu) => {
  const modrm = cpu.fetch8();
  requireCpl0(cpu);
  const cr = (modrm >> 3) & 7;
  let v: number;
  switch (cr) {
    case 0: v = cpu.cr0; break;
    case 2: v = cpu.cr2; break;
    case 3: v = cpu.cr3; break;
    case 4: v = cpu.cr4; break;
    default: return cpu.ud();
  }
  cpu.regs[modrm & 7] = v;
});
defBranch(0x0f22, 'MOV Cd,Rd', (cpu) => {
  const modrm = cpu.fetch8();
  requireCpl0(cpu);
  const v = cpu.regs[modrm & 7];
  switch ((modrm >> 3) & 7) {
    case 0: setCr0(cpu, v); break;
    case 2: cpu.cr2 = v; break;
    case 3:
      cpu.cr3 = v & ~0xfe7;
      cpu.flushTlb(false);
      break;
    case 4: setCr4(cpu, v); break;
    default: cpu.ud();
  }
});
def(0x0f21, 'MOV Rd,Dd', (cpu) => {
  const modrm = cpu.fetch8();
  requireCpl0(cpu);
  let dr = (modrm >> 3) & 7;
  if (dr === 4 || dr === 5) {
    if (cpu.cr4 & CR4_DE) cpu.ud();
    dr += 2;
  }
  cpu.regs[modrm & 7] = cpu.dr[dr];
});
def(0x0f23, 'MOV Dd,Rd', (cpu) => {
  const modrm = cpu.fetch8();
  requireCpl0(cpu);
  let dr = (modrm >> 3) & 7;
  if (dr === 4 || dr === 5) {
    if (cpu.cr4 & CR4_DE) cpu.ud();
    dr += 2;
  }
  let v = cpu.regs[modrm & 7];
  if (dr === 6) v = (v & 0xe00f) | (0xffff0ff0 | 0);
  else if (dr === 7) v = (v & ~0xd800) | 0x400;
  cpu.dr[dr] = v;
});

// ---- TSC and MSRs ----
export const MSR_TSC = 0x10;
/** IA32_PLATFORM_ID (read-only): bits 52:50 = 0, the platform the microcode driver reports as pf=0x1 */
export const MSR_PLATFORM_ID = 0x17;
export const MSR_APIC_BASE = 0x1b;
export const MSR_BIOS_SIGN = 0x8b;
export const MSR_SYSENTER_CS = 0x174;
export const MSR_SYSENTER_ESP = 0x175;
export const MSR_SYSENTER_EIP = 0x176;

/** the TSC as a number (< 2^53) */
export function readTsc(cpu: Cpu): number {
  return cpu.tscSource() + cpu.tscOffset;
}

def(0x0f31, 'RDTSC', (cpu) => {
  if (cpu.cr4 & CR4_TSD && cpu.protectedMode && (cpu.cpl !== 0 || cpu.flags & F_VM)) cpu.gp(0);
  const t = readTsc(cpu);
  cpu.regs[EAX] = t % 4294967296;
  cpu.regs[EDX] = Math.floor(t / 4294967296);
});
def(0x0f32, 'RDMSR', (cpu) => {
  requireCpl0(cpu);
  const idx = cpu.regs[ECX] >>> 0;
  let lo = 0;
  let hi = 0;
  switch (idx) {
    case MSR_TSC: {
      const t = readTsc(cpu);
      lo = t % 4294967296;
      hi = Math.floor(t / 4294967296);
      break;
    }
    case MSR_APIC_BASE:
      if (!cpu.hasApic) cpu.gp(0);
      lo = cpu.apicBase;
      break;
    case MSR_PLATFORM_ID:
    case MSR_BIOS_SIGN:
      break;
    case MSR_SYSENTER_CS: lo = cpu.sysenterCs; break;
    case MSR_SYSENTER_ESP: lo = cpu.sysenterEsp; break;
    case MSR_SYSENTER_EIP: lo = cpu.sysenterEip; break;
    default:
      cpu.gp(0);
  }
  cpu.regs[EAX] = lo;
  cpu.regs[EDX] = hi;
});
def(0x0f30, 'WRMSR', (cpu) => {
  requireCpl0(cpu);
  const idx = cpu.regs[ECX] >>> 0;
  const lo = cpu.regs[EAX];
  const hi = cpu.regs[EDX];
  switch (idx) {
    case MSR_TSC:
      // P6: writing the TSC sets the low 32 bits and clears the high ones
      cpu.tscOffset = (lo >>> 0) - cpu.tscSource();
      break;
    case MSR_APIC_BASE:
      if (!cpu.hasApic) cpu.gp(0);
      if (hi !== 0 || lo & 0x6ff) cpu.gp(0);
      cpu.apicBase = lo;
      cpu.onApicBaseChange();
      break;
    case MSR_BIOS_SIGN:
      break;
    case MSR_SYSENTER_CS: cpu.sysenterCs = lo & 0xffff; break;
    case MSR_SYSENTER_ESP: cpu.sysenterEsp = lo; break;
    case MSR_SYSENTER_EIP: cpu.sysenterEip = lo; break;
    default:
      cpu.gp(0);
  }
});
defBranch(0x0f34, 'SYSENTER', (cpu) => pm.sysenter(cpu));
defBranch(0x0f35, 'SYSEXIT', (cpu) => pm.sysexit(cpu));

// ---- CPUID ----
/** family 6, model 5, stepping 2 (a Pentium II) */
export const CPUID_SIGNATURE = 0x652;
export const CPUID_FEATURES_BASE =
  (1 << 0) | // FPU
  (1 << 3) | // PSE
  (1 << 4) | // TSC
  (1 << 5) | // MSR
  (1 << 8) | // CX8
  (1 << 11) | // SEP
  (1 << 13) | // PGE
  (1 << 15) | // CMOV
  (1 << 24); // FXSR
const CPUID_APIC = 1 << 9;

def(0x0fa2, 'CPUID', (cpu) => {
  const leaf = cpu.regs[EAX] >>> 0;
  const r = cpu.regs;
  switch (leaf >= 3 ? 2 : leaf) {
    case 0:
      r[EAX] = 2;
      r[EBX] = 0x756e6547; // "Genu"
      r[EDX] = 0x49656e69; // "ineI"
      r[ECX] = 0x6c65746e; // "ntel"
      break;
    case 1:
      r[EAX] = CPUID_SIGNATURE;
      r[EBX] = 0;
      r[ECX] = 0;
      r[EDX] = CPUID_FEATURES_BASE | (cpu.hasApic ? CPUID_APIC : 0);
      break;
    default:
      // cache and TLB descriptors of a Pentium II (also returned for leaves beyond the maximum)
      r[EAX] = 0x03020101;
      r[EBX] = 0;
      r[ECX] = 0;
      r[EDX] = 0x0c040843;
      break;
  }
});

// ---- 0F AE: FXSAVE / FXRSTOR (no SSE: the other forms are #UD) ----
def(0x0fae, 'GRP15', (cpu) => {
  const modrm = cpu.fetch8();
  const op = (modrm >> 3) & 7;
  if (modrm >= 0xc0 || op > 1) cpu.ud();
  if (cpu.cr0 & (CR0_TS | CR0_EM)) cpu.raise(EX_NM);
  const off = cpu.ea(modrm);
  if (op === 0) cpu.fpu.fxsave(cpu.eaSeg, off);
  else cpu.fpu.fxrstor(cpu.eaSeg, off);
});

void EBX;
void EDX;
