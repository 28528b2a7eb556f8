/**
 * Control flow and the stack: jumps, calls, returns, loops, INT/IRET, PUSH/POP in all forms, ENTER/
 * LEAVE, PUSHF/POPF, HLT/CLI/STI, port I/O, BOUND, and the prefix bytes.
 */
import type { Cpu } from '../cpu';
import { def, defBranch } from '../optable';
import * as pm from '../protmode';
import { decodeRm } from './alu';
import {
  EAX, ECX, EDX, ESP, EBP, ES, CS, SS, DS, FS, GS,
  F_IF, F_TF, F_VM, F_RF, F_IOPL, F_NT, F_AC, F_ID, F_ARITH, F_DF, F_VALID,
  EX_BP, EX_OF, EX_BR, EX_GP, EX_NM, INT_SOFT, CR0_EM, CR0_TS, CR0_MP,
} from '../defs';

// ---- prefixes ----
const segPrefix = (seg: number) => (cpu: Cpu) => {
  cpu.segOv = seg;
  cpu.dispatchNext();
};
def(0x26, 'ES:', segPrefix(ES));
def(0x2e, 'CS:', segPrefix(CS));
def(0x36, 'SS:', segPrefix(SS));
def(0x3e, 'DS:', segPrefix(DS));
def(0x64, 'FS:', segPrefix(FS));
def(0x65, 'GS:', segPrefix(GS));
def(0x66, 'OPSIZE', (cpu) => {
  cpu.osize32 = !cpu.code32;
  cpu.dispatchNext();
});
def(0x67, 'ADSIZE', (cpu) => {
  cpu.asize32 = !cpu.code32;
  cpu.dispatchNext();
});
/**
 * LOCK is allowed only on the read-modify-write instructions with a memory destination; anything else
 * raises #UD. The following bytes are looked at without being consumed, then decoded as usual.
 */
function lockAllowed(cpu: Cpu): boolean {
  const start = cpu.eip;
  let op = cpu.fetch8();
  while (op === 0x66 || op === 0x67 || op === 0xf0 || op === 0xf2 || op === 0xf3 || (op & 0xe7) === 0x26 || op === 0x64 || op === 0x65) {
    op = cpu.fetch8();
  }
  let ok: boolean;
  if (op === 0x0f) {
    const op2 = cpu.fetch8();
    const modrm = cpu.fetch8();
    const reg = (modrm >> 3) & 7;
    ok =
      modrm < 0xc0 &&
      (op2 === 0xab || op2 === 0xb3 || op2 === 0xbb || op2 === 0xb0 || op2 === 0xb1 || op2 === 0xc0 || op2 === 0xc1 ||
        (op2 === 0xba && reg >= 5) || (op2 === 0xc7 && reg === 1));
  } else {
    const modrm = cpu.fetch8();
    const reg = (modrm >> 3) & 7;
    ok =
      modrm < 0xc0 &&
      ((op < 0x40 && (op & 7) < 2 && (op & 0x38) !== 0x38) ||
        (op >= 0x80 && op <= 0x83 && reg !== 7) ||
        op === 0x86 || op === 0x87 ||
        ((op === 0xf6 || op === 0xf7) && (reg === 2 || reg === 3)) ||
        ((op === 0xfe || op === 0xff) && reg < 2));
  }
  cpu.eip = start;
  return ok;
}
def(0xf0, 'LOCK', (cpu) => {
  if (!lockAllowed(cpu)) cpu.ud();
  cpu.dispatchNext();
});
def(0xf2, 'REPNE', (cpu) => {
  cpu.rep = 0xf2;
  cpu.dispatchNext();
});
def(0xf3, 'REP', (cpu) => {
  cpu.rep = 0xf3;
  cpu.dispatchNext();
});
def(0x0f, '0F escape', (cpu) => cpu.exec0F());

// ---- PUSH / POP general registers ----
for (let r = 0; r < 8; r++) {
  def(
    0x50 + r,
    `PUSH r${r}`,
    (cpu) => cpu.push16(cpu.r16[r << 1]),
    (cpu) => cpu.push32(cpu.regs[r]),
  );
  def(
    0x58 + r,
    `POP r${r}`,
    (cpu) => {
      const v = cpu.pop16();
      cpu.r16[r << 1] = v;
    },
    (cpu) => {
      const v = cpu.pop32();
      cpu.regs[r] = v;
    },
  );
}
def(
  0x68,
  'PUSH Iv',
  (cpu) => cpu.push16(cpu.fetch16()),
  (cpu) => cpu.push32(cpu.fetch32()),
);
def(
  0x6a,
  'PUSH Ib',
  (cpu) => cpu.push16(cpu.fetch8s()),
  (cpu) => cpu.push32(cpu.fetch8s()),
);
def(0x8f, 'POP Ev', (cpu) => {
  const modrm = cpu.fetch8();
  if ((modrm & 0x38) !== 0) cpu.ud();
  const size = cpu.osize32 ? 4 : 2;
  const v = cpu.osize32 ? cpu.peek32(0) : cpu.peek16(0);
  if (modrm >= 0xc0) {
    cpu.adjustSp(size);
    if (cpu.osize32) cpu.regs[modrm & 7] = v;
    else cpu.r16[(modrm & 7) << 1] = v;
    return;
  }
  // the address is computed after ESP was incremented
  const oldEsp = cpu.regs[ESP];
  cpu.adjustSp(size);
  try {
    const off = cpu.ea(modrm);
    if (cpu.osize32) cpu.write32(cpu.eaSeg, off, v);
    else cpu.write16(cpu.eaSeg, off, v);
  } catch (e) {
    cpu.regs[ESP] = oldEsp;
    throw e;
  }
});

// ---- segment registers ----
function pushSeg(seg: number) {
  return [
    (cpu: Cpu) => cpu.push16(cpu.segSel[seg]),
    (cpu: Cpu) => {
      // a 32-bit push of a segment register writes only the low word on P6
      const sp = cpu.stack32 ? (cpu.regs[ESP] - 4) >>> 0 : (cpu.r16[ESP << 1] - 4) & 0xffff;
      cpu.writeLin16(cpu.linW(SS, sp, 4), cpu.segSel[seg]);
      cpu.adjustSp(-4);
    },
  ];
}
function popSeg(seg: number) {
  return [
    (cpu: Cpu) => {
      const sel = cpu.peek16(0);
      const s32 = cpu.stack32; // POP SS: SP moves by the old stack's size
      pm.loadSeg(cpu, seg, sel);
      cpu.adjustSpSized(s32, 2);
    },
    (cpu: Cpu) => {
      const sel = cpu.peek32(0) & 0xffff;
      const s32 = cpu.stack32;
      pm.loadSeg(cpu, seg, sel);
      cpu.adjustSpSized(s32, 4);
    },
  ];
}
const SEG_OPS: [number, number, number][] = [
  [0x06, 0x07, ES],
  [0x0e, -1, CS],
  [0x16, 0x17, SS],
  [0x1e, 0x1f, DS],
  [0x0fa0, 0x0fa1, FS],
  [0x0fa8, 0x0fa9, GS],
];
const SEG_NAMES = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS'];
for (const [pushOp, popOp, seg] of SEG_OPS) {
  const [p16, p32] = pushSeg(seg);
  def(pushOp, `PUSH ${SEG_NAMES[seg]}`, p16, p32);
  if (popOp >= 0) {
    const [q16, q32] = popSeg(seg);
    def(popOp, `POP ${SEG_NAMES[seg]}`, q16, q32);
  }
}

// ---- PUSHA / POPA ----
def(
  0x60,
  'PUSHA',
  (cpu) => {
    const sp = cpu.r16[ESP << 1];
    const base = cpu.stack32 ? cpu.regs[ESP] >>> 0 : sp;
    // check the whole area first so a fault leaves SP unchanged
    const low = cpu.stack32 ? (base - 16) >>> 0 : (base - 16) & 0xffff;
    if (cpu.stack32 || low < base) cpu.probeWrite(cpu.linW(SS, low, 16), 16);
    for (let r = 0; r < 8; r++) cpu.push16(r === ESP ? sp : cpu.r16[r << 1]);
  },
  (cpu) => {
    const esp = cpu.regs[ESP];
    const base = cpu.stack32 ? esp >>> 0 : cpu.r16[ESP << 1];
    const low = cpu.stack32 ? (base - 32) >>> 0 : (base - 32) & 0xffff;
    if (cpu.stack32 || low < base) cpu.probeWrite(cpu.linW(SS, low, 32), 32);
    for (let r = 0; r < 8; r++) cpu.push32(r === ESP ? esp : cpu.regs[r]);
  },
);
def(
  0x61,
  'POPA',
  (cpu) => {
    const vals = POPA_SCRATCH;
    for (let i = 0; i < 8; i++) vals[i] = cpu.peek16(i * 2);
    for (let r = 0; r < 8; r++) if (r !== ESP) cpu.r16[r << 1] = vals[7 - r];
    cpu.adjustSp(16);
  },
  (cpu) => {
    const vals = POPA_SCRATCH;
    for (let i = 0; i < 8; i++) vals[i] = cpu.peek32(i * 4);
    for (let r = 0; r < 8; r++) if (r !== ESP) cpu.regs[r] = vals[7 - r];
    cpu.adjustSp(32);
  },
);
const POPA_SCRATCH = new Int32Array(8);

// ---- ENTER / LEAVE ----
function enter(cpu: Cpu): void {
  const size = cpu.fetch16();
  const level = cpu.fetch8() & 31;
  const o32 = cpu.osize32;
  const w = o32 ? 4 : 2;
  const s32 = cpu.stack32;
  const mask = s32 ? 0xffffffff : 0xffff;
  let sp = (s32 ? cpu.regs[ESP] >>> 0 : cpu.r16[ESP << 1]) as number;
  let bp = (s32 ? cpu.regs[EBP] >>> 0 : cpu.r16[EBP << 1]) as number;
  // compute every store first, check them all (segment and paging), then write and commit registers
  sp = (sp - w) & mask;
  // the frame pointer: on a 16-bit stack only SP's low word changes, EBP's upper word comes from ESP
  const frame = s32 ? sp >>> 0 : ((cpu.regs[ESP] & ~0xffff) | sp) >>> 0;
  const writes: number[] = ENTER_SCRATCH;
  let nw = 0;
  writes[nw++] = sp >>> 0;
  writes[nw++] = o32 ? cpu.regs[EBP] : cpu.r16[EBP << 1];
  if (level > 0) {
    for (let i = 1; i < level; i++) {
      bp = (bp - w) & mask;
      const v = o32 ? cpu.read32(SS, bp >>> 0) : cpu.read16(SS, bp >>> 0);
      sp = (sp - w) & mask;
      writes[nw++] = sp >>> 0;
      writes[nw++] = v;
    }
    sp = (sp - w) & mask;
    writes[nw++] = sp >>> 0;
    writes[nw++] = o32 ? frame : frame & 0xffff;
  }
  const finalSp = ((sp - size) & mask) >>> 0;
  // the new stack top must be writable too (#SS on the limit, #PF on the page)
  cpu.probeWrite(cpu.linW(SS, finalSp, w), w);
  for (let i = 0; i < nw; i += 2) {
    const lin = cpu.linW(SS, writes[i], w);
    cpu.probeWrite(lin, w);
  }
  for (let i = 0; i < nw; i += 2) {
    const lin = cpu.linW(SS, writes[i], w);
    if (o32) cpu.writeLin32(lin, writes[i + 1]);
    else cpu.writeLin16(lin, writes[i + 1]);
  }
  if (o32) cpu.regs[EBP] = frame;
  else cpu.r16[EBP << 1] = frame;
  if (s32) cpu.regs[ESP] = finalSp;
  else cpu.r16[ESP << 1] = finalSp;
}
const ENTER_SCRATCH: number[] = new Array(70).fill(0);
def(0xc8, 'ENTER Iw,Ib', enter);
def(
  0xc9,
  'LEAVE',
  (cpu) => {
    const bp = cpu.stack32 ? cpu.regs[EBP] >>> 0 : cpu.r16[EBP << 1];
    const v = cpu.read16(SS, bp);
    if (cpu.stack32) cpu.regs[ESP] = bp + 2;
    else cpu.r16[ESP << 1] = bp + 2;
    cpu.r16[EBP << 1] = v;
  },
  (cpu) => {
    const bp = cpu.stack32 ? cpu.regs[EBP] >>> 0 : cpu.r16[EBP << 1];
    const v = cpu.read32(SS, bp);
    if (cpu.stack32) cpu.regs[ESP] = bp + 4;
    else cpu.r16[ESP << 1] = bp + 4;
    cpu.regs[EBP] = v;
  },
);

// ---- PUSHF / POPF ----
function iopl(cpu: Cpu): number {
  return (cpu.flags >> 12) & 3;
}
def(
  0x9c,
  'PUSHF',
  (cpu) => {
    if (cpu.flags & F_VM && iopl(cpu) < 3) cpu.gp(0);
    cpu.push16(cpu.getFlags() & 0xffff);
  },
  (cpu) => {
    if (cpu.flags & F_VM && iopl(cpu) < 3) cpu.gp(0);
    cpu.push32(cpu.getFlags() & ~(F_VM | F_RF) & 0x00fcffff);
  },
);
function popfMask(cpu: Cpu): number {
  let mask = F_ARITH | F_TF | F_DF | F_NT | F_AC | F_ID | F_IF | F_IOPL;
  if (cpu.flags & F_VM) {
    if (iopl(cpu) < 3) cpu.gp(0);
    mask &= ~F_IOPL;
  } else if (cpu.protectedMode) {
    if (cpu.cpl > 0) mask &= ~F_IOPL;
    if (cpu.cpl > iopl(cpu)) mask &= ~F_IF;
  }
  return mask;
}
def(
  0x9d,
  'POPF',
  (cpu) => {
    const mask = popfMask(cpu) & 0xffff;
    const v = cpu.peek16(0);
    cpu.adjustSp(2);
    cpu.setFlags(v, mask);
  },
  (cpu) => {
    const mask = popfMask(cpu);
    const v = cpu.peek32(0);
    cpu.adjustSp(4);
    cpu.setFlags(v, mask & F_VALID);
  },
);

// ---- jumps ----
for (let cc = 0; cc < 16; cc++) {
  defBranch(0x70 + cc, `Jcc(${cc}) Jb`, (cpu) => {
    const d = cpu.fetch8s();
    if (cpu.cond(cc)) cpu.jumpNear(cpu.eip + d);
  });
  defBranch(
    0x0f80 + cc,
    `Jcc(${cc}) Jv`,
    (cpu) => {
      const d = cpu.fetch16();
      if (cpu.cond(cc)) cpu.jumpNear(cpu.eip + d);
    },
    (cpu) => {
      const d = cpu.fetch32();
      if (cpu.cond(cc)) cpu.jumpNear(cpu.eip + d);
    },
  );
}
defBranch(0xeb, 'JMP Jb', (cpu) => {
  const d = cpu.fetch8s();
  cpu.jumpNear(cpu.eip + d);
});
defBranch(
  0xe9,
  'JMP Jv',
  (cpu) => {
    const d = cpu.fetch16();
    cpu.jumpNear(cpu.eip + d);
  },
  (cpu) => {
    const d = cpu.fetch32();
    cpu.jumpNear(cpu.eip + d);
  },
);
defBranch(
  0xe8,
  'CALL Jv',
  (cpu) => {
    const d = cpu.fetch16();
    const target = (cpu.eip + d) & 0xffff;
    if (target > cpu.segLimit[CS]) cpu.gp(0);
    cpu.push16(cpu.eip);
    cpu.eip = target;
  },
  (cpu) => {
    const d = cpu.fetch32();
    const target = (cpu.eip + d) >>> 0;
    if (target > cpu.segLimit[CS]) cpu.gp(0);
    cpu.push32(cpu.eip);
    cpu.eip = target;
  },
);
defBranch(
  0xc3,
  'RET',
  (cpu) => {
    const t = cpu.peek16(0);
    if (t > cpu.segLimit[CS]) cpu.gp(0);
    cpu.adjustSp(2);
    cpu.eip = t;
  },
  (cpu) => {
    const t = cpu.peek32(0) >>> 0;
    if (t > cpu.segLimit[CS]) cpu.gp(0);
    cpu.adjustSp(4);
    cpu.eip = t;
  },
);
defBranch(
  0xc2,
  'RET Iw',
  (cpu) => {
    const n = cpu.fetch16();
    const t = cpu.peek16(0);
    if (t > cpu.segLimit[CS]) cpu.gp(0);
    cpu.adjustSp(2 + n);
    cpu.eip = t;
  },
  (cpu) => {
    const n = cpu.fetch16();
    const t = cpu.peek32(0) >>> 0;
    if (t > cpu.segLimit[CS]) cpu.gp(0);
    cpu.adjustSp(4 + n);
    cpu.eip = t;
  },
);
defBranch(
  0xea,
  'JMP Ap',
  (cpu) => {
    const off = cpu.fetch16();
    pm.farJmp(cpu, cpu.fetch16(), off);
  },
  (cpu) => {
    const off = cpu.fetch32() >>> 0;
    pm.farJmp(cpu, cpu.fetch16(), off);
  },
);
defBranch(
  0x9a,
  'CALL Ap',
  (cpu) => {
    const off = cpu.fetch16();
    pm.farCall(cpu, cpu.fetch16(), off);
  },
  (cpu) => {
    const off = cpu.fetch32() >>> 0;
    pm.farCall(cpu, cpu.fetch16(), off);
  },
);
defBranch(0xcb, 'RETF', (cpu) => pm.farRet(cpu, 0));
defBranch(0xca, 'RETF Iw', (cpu) => pm.farRet(cpu, cpu.fetch16()));
defBranch(0xcf, 'IRET', (cpu) => pm.iret(cpu));

// ---- LOOP / JCXZ ----
function loopCount(cpu: Cpu): number {
  if (cpu.asize32) return (cpu.regs[ECX] = cpu.regs[ECX] - 1);
  return (cpu.r16[ECX << 1] = cpu.r16[ECX << 1] - 1);
}
defBranch(0xe2, 'LOOP Jb', (cpu) => {
  const d = cpu.fetch8s();
  if (loopCount(cpu) !== 0) cpu.jumpNear(cpu.eip + d);
});
defBranch(0xe1, 'LOOPE Jb', (cpu) => {
  const d = cpu.fetch8s();
  if (loopCount(cpu) !== 0 && cpu.getZF()) cpu.jumpNear(cpu.eip + d);
});
defBranch(0xe0, 'LOOPNE Jb', (cpu) => {
  const d = cpu.fetch8s();
  if (loopCount(cpu) !== 0 && !cpu.getZF()) cpu.jumpNear(cpu.eip + d);
});
defBranch(0xe3, 'JCXZ Jb', (cpu) => {
  const d = cpu.fetch8s();
  const c = cpu.asize32 ? cpu.regs[ECX] : cpu.r16[ECX << 1];
  if (c === 0) cpu.jumpNear(cpu.eip + d);
});

// ---- group 5 (FF) ----
function grp5(cpu: Cpu, o32: boolean): void {
  const modrm = cpu.fetch8();
  const op = (modrm >> 3) & 7;
  switch (op) {
    case 0:
    case 1: {
      if (modrm >= 0xc0) {
        const r = modrm & 7;
        if (o32) cpu.regs[r] = op === 0 ? cpu.inc(cpu.regs[r], 31) : cpu.dec(cpu.regs[r], 31);
        else cpu.r16[r << 1] = op === 0 ? cpu.inc(cpu.r16[r << 1], 15) : cpu.dec(cpu.r16[r << 1], 15);
        return;
      }
      const lin = cpu.eaLinW(modrm, o32 ? 4 : 2);
      if (o32) {
        const v = cpu.rmwLin32(lin);
        cpu.writeLin32(lin, op === 0 ? cpu.inc(v, 31) : cpu.dec(v, 31));
      } else {
        const v = cpu.rmwLin16(lin);
        cpu.writeLin16(lin, op === 0 ? cpu.inc(v, 15) : cpu.dec(v, 15));
      }
      return;
    }
    case 2: {
      // CALL near indirect
      const t = o32 ? cpu.readRm32(modrm) >>> 0 : cpu.readRm16(modrm);
      if (t > cpu.segLimit[CS]) cpu.gp(0);
      if (o32) cpu.push32(cpu.eip);
      else cpu.push16(cpu.eip);
      cpu.eip = t;
      return;
    }
    case 4: {
      const t = o32 ? cpu.readRm32(modrm) >>> 0 : cpu.readRm16(modrm);
      if (t > cpu.segLimit[CS]) cpu.gp(0);
      cpu.eip = t;
      return;
    }
    case 3:
    case 5: {
      if (modrm >= 0xc0) cpu.ud();
      const off = cpu.ea(modrm);
      const seg = cpu.eaSeg;
      const target = o32 ? cpu.read32(seg, off) >>> 0 : cpu.read16(seg, off);
      const sel = cpu.read16(seg, cpu.asize32 ? (off + (o32 ? 4 : 2)) >>> 0 : (off + (o32 ? 4 : 2)) & 0xffff);
      if (op === 3) pm.farCall(cpu, sel, target);
      else pm.farJmp(cpu, sel, target);
      return;
    }
    case 6: {
      const v = o32 ? cpu.readRm32(modrm) : cpu.readRm16(modrm);
      if (o32) cpu.push32(v);
      else cpu.push16(v);
      return;
    }
    default:
      cpu.ud();
  }
}
defBranch(
  0xff,
  'GRP5 Ev',
  (cpu) => grp5(cpu, false),
  (cpu) => grp5(cpu, true),
);

// ---- interrupts ----
defBranch(0xcc, 'INT3', (cpu) => pm.deliverInterrupt(cpu, EX_BP, pm.INT_SOFT3, -1));
defBranch(0xcd, 'INT Ib', (cpu) => {
  const v = cpu.fetch8();
  pm.deliverInterrupt(cpu, v, INT_SOFT, -1);
});
defBranch(0xce, 'INTO', (cpu) => {
  if (cpu.getOF()) pm.deliverInterrupt(cpu, EX_OF, pm.INT_SOFT3, -1);
});
defBranch(0xf1, 'INT1 (ICEBP)', (cpu) => pm.deliverInterrupt(cpu, 1, pm.INT_ICEBP, -1));

def(
  0x62,
  'BOUND Gv,Ma',
  (cpu) => {
    const modrm = cpu.fetch8();
    if (modrm >= 0xc0) cpu.ud();
    const off = cpu.ea(modrm);
    const lo = (cpu.read16(cpu.eaSeg, off) << 16) >> 16;
    const hi = (cpu.read16(cpu.eaSeg, (off + 2) & (cpu.asize32 ? -1 : 0xffff)) << 16) >> 16;
    const idx = (cpu.r16[((modrm >> 3) & 7) << 1] << 16) >> 16;
    if (idx < lo || idx > hi) cpu.raise(EX_BR);
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    if (modrm >= 0xc0) cpu.ud();
    const off = cpu.ea(modrm);
    const lo = cpu.read32(cpu.eaSeg, off);
    const hi = cpu.read32(cpu.eaSeg, cpu.asize32 ? (off + 4) >>> 0 : (off + 4) & 0xffff);
    const idx = cpu.regs[(modrm >> 3) & 7];
    if (idx < lo || idx > hi) cpu.raise(EX_BR);
  },
);

// ---- HLT / CLI / STI ----
defBranch(0xf4, 'HLT', (cpu) => {
  if (cpu.protectedMode && cpu.cpl !== 0) cpu.gp(0);
  if (cpu.flags & F_VM) cpu.gp(0);
  cpu.halted = true;
  cpu.attn = true;
});
function checkIopl(cpu: Cpu): void {
  if (cpu.flags & F_VM) {
    if (iopl(cpu) < 3) cpu.gp(0);
  } else if (cpu.protectedMode && cpu.cpl > iopl(cpu)) {
    cpu.gp(0);
  }
}
def(0xfa, 'CLI', (cpu) => {
  checkIopl(cpu);
  cpu.flags &= ~F_IF;
});
def(0xfb, 'STI', (cpu) => {
  checkIopl(cpu);
  if (!(cpu.flags & F_IF)) {
    cpu.flags |= F_IF;
    cpu.shadow = true;
    cpu.attn = true;
  }
});

// ---- port I/O ----
def(0xe4, 'IN AL,Ib', (cpu) => {
  const port = cpu.fetch8();
  cpu.checkIo(port, 1);
  cpu.r8[0] = cpu.io.in8(port);
});
def(
  0xe5,
  'IN eAX,Ib',
  (cpu) => {
    const port = cpu.fetch8();
    cpu.checkIo(port, 2);
    cpu.r16[0] = cpu.io.in16(port);
  },
  (cpu) => {
    const port = cpu.fetch8();
    cpu.checkIo(port, 4);
    cpu.regs[EAX] = cpu.io.in32(port);
  },
);
def(0xe6, 'OUT Ib,AL', (cpu) => {
  const port = cpu.fetch8();
  cpu.checkIo(port, 1);
  cpu.io.out8(port, cpu.r8[0]);
});
def(
  0xe7,
  'OUT Ib,eAX',
  (cpu) => {
    const port = cpu.fetch8();
    cpu.checkIo(port, 2);
    cpu.io.out16(port, cpu.r16[0]);
  },
  (cpu) => {
    const port = cpu.fetch8();
    cpu.checkIo(port, 4);
    cpu.io.out32(port, cpu.regs[EAX]);
  },
);
def(0xec, 'IN AL,DX', (cpu) => {
  const port = cpu.r16[EDX << 1];
  cpu.checkIo(port, 1);
  cpu.r8[0] = cpu.io.in8(port);
});
def(
  0xed,
  'IN eAX,DX',
  (cpu) => {
    const port = cpu.r16[EDX << 1];
    cpu.checkIo(port, 2);
    cpu.r16[0] = cpu.io.in16(port);
  },
  (cpu) => {
    const port = cpu.r16[EDX << 1];
    cpu.checkIo(port, 4);
    cpu.regs[EAX] = cpu.io.in32(port);
  },
);
def(0xee, 'OUT DX,AL', (cpu) => {
  const port = cpu.r16[EDX << 1];
  cpu.checkIo(port, 1);
  cpu.io.out8(port, cpu.r8[0]);
});
def(
  0xef,
  'OUT DX,eAX',
  (cpu) => {
    const port = cpu.r16[EDX << 1];
    cpu.checkIo(port, 2);
    cpu.io.out16(port, cpu.r16[0]);
  },
  (cpu) => {
    const port = cpu.r16[EDX << 1];
    cpu.checkIo(port, 4);
    cpu.io.out32(port, cpu.regs[EAX]);
  },
);

// ---- x87 escape and WAIT ----
for (let op = 0xd8; op <= 0xdf; op++) {
  def(op, `ESC ${op.toString(16)}`, (cpu) => {
    const modrm = cpu.fetch8();
    if (cpu.cr0 & (CR0_EM | CR0_TS)) cpu.raise(EX_NM);
    cpu.fpu.exec(op, modrm);
  });
}
def(0x9b, 'WAIT', (cpu) => {
  if ((cpu.cr0 & (CR0_TS | CR0_MP)) === (CR0_TS | CR0_MP)) cpu.raise(EX_NM);
  cpu.fpu.fwait();
});

// ---- ARPL (protected mode) ----
def(0x63, 'ARPL Ew,Gw', (cpu) => {
  if (!cpu.protectedMode || cpu.flags & F_VM) cpu.ud();
  const modrm = cpu.fetch8();
  decodeRm(cpu, modrm);
  const src = cpu.r16[((modrm >> 3) & 7) << 1];
  let lin = 0;
  let dst: number;
  if (modrm >= 0xc0) dst = cpu.r16[(modrm & 7) << 1];
  else {
    lin = cpu.linW(cpu.eaSeg, cpu.eaOff, 2);
    dst = cpu.rmwLin16(lin);
  }
  cpu.materializeFlags();
  if ((dst & 3) < (src & 3)) {
    dst = (dst & ~3) | (src & 3);
    if (modrm >= 0xc0) cpu.r16[(modrm & 7) << 1] = dst;
    else cpu.writeLin16(lin, dst);
    cpu.flags |= 0x40;
  } else {
    cpu.flags &= ~0x40;
  }
});

void EX_GP;
