/** Architectural constants shared by the CPU, the instruction families and the devices (no imports). */

// general registers
export const EAX = 0, ECX = 1, EDX = 2, EBX = 3, ESP = 4, EBP = 5, ESI = 6, EDI = 7;
// segment registers (encoding order)
export const ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5;

// EFLAGS
export const F_CF = 0x1, F_PF = 0x4, F_AF = 0x10, F_ZF = 0x40, F_SF = 0x80, F_TF = 0x100, F_IF = 0x200;
export const F_DF = 0x400, F_OF = 0x800, F_IOPL = 0x3000, F_NT = 0x4000, F_RF = 0x10000, F_VM = 0x20000;
export const F_AC = 0x40000, F_VIF = 0x80000, F_VIP = 0x100000, F_ID = 0x200000;
export const F_ARITH = F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF;
/** bits of EFLAGS that exist on this CPU (others read as 0; bit 1 reads as 1) */
export const F_VALID = F_ARITH | F_TF | F_IF | F_DF | F_IOPL | F_NT | F_RF | F_VM | F_AC | F_ID;

// CR0 / CR4
export const CR0_PE = 0x1, CR0_MP = 0x2, CR0_EM = 0x4, CR0_TS = 0x8, CR0_ET = 0x10, CR0_NE = 0x20;
export const CR0_WP = 0x10000, CR0_AM = 0x40000, CR0_NW = 0x20000000, CR0_CD = 0x40000000, CR0_PG = 0x80000000 | 0;
export const CR4_VME = 0x1, CR4_PVI = 0x2, CR4_TSD = 0x4, CR4_DE = 0x8, CR4_PSE = 0x10, CR4_PGE = 0x80;
export const CR4_OSFXSR = 0x200, CR4_OSXMMEXCPT = 0x400;
/** CR4 bits we implement (writing others is #GP) */
export const CR4_VALID = CR4_TSD | CR4_DE | CR4_PSE | CR4_PGE | CR4_OSFXSR | CR4_OSXMMEXCPT;

// exception vectors
export const EX_DE = 0, EX_DB = 1, EX_NMI = 2, EX_BP = 3, EX_OF = 4, EX_BR = 5, EX_UD = 6, EX_NM = 7;
export const EX_DF = 8, EX_TS = 10, EX_NP = 11, EX_SS = 12, EX_GP = 13, EX_PF = 14, EX_MF = 16, EX_AC = 17;
export const EX_MC = 18, EX_XM = 19;

/** lazy flag operation kinds */
export const LZ_ADD = 0, LZ_SUB = 1, LZ_LOGIC = 2;

// TLB entry flags (low 12 bits of an entry; the high 20 bits are the physical page)
export const TLB_VALID = 1;
/** a supervisor write must take the slow path (read-only with WP, not yet dirty, ROM) */
export const TLB_NW_SUP = 2;
/** a user write must take the slow path */
export const TLB_NW_USER = 4;
/** user access not allowed */
export const TLB_NO_USER = 8;
/** not RAM: every access takes the slow path */
export const TLB_MMIO = 16;
/** global page (survives CR3 writes when CR4.PGE) */
export const TLB_GLOBAL = 32;

/** interrupt kinds for deliverInterrupt */
export const INT_HW = 0, INT_SOFT = 1, INT_EXC = 2, INT_NMI = 3;

/** Thrown (as this single object) when the guest faults; run() catches it and delivers the exception. */
export class CpuFault {
  readonly isCpuFault = true;
}
export const FAULT = new CpuFault();

