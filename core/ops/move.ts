/**
 * Data movement: MOV in all forms, XCHG, LEA, MOVZX/MOVSX, CMOVcc, SETcc, XLAT, LAHF/SAHF, flag-bit
 * instructions, BCD adjusts, BSWAP/XADD/CMPXCHG/CMPXCHG8B.
 */
import type { Cpu } from '../cpu';
import { def } from '../optable';
import * as pm from '../protmode';
import { decodeRm } from './alu';
import {
  EAX, ECX, EDX, EBX, DS, CS, SS, F_CF, F_PF, F_AF, F_ZF, F_SF, F_DF, EX_DE,
} from '../defs';

// ---- MOV ----
def(0x88, 'MOV Eb,Gb', (cpu) => {
  const modrm = cpu.fetch8();
  cpu.writeRm8(modrm, cpu.getReg8((modrm >> 3) & 7));
});
def(
  0x89,
  'MOV Ev,Gv',
  (cpu) => {
    const modrm = cpu.fetch8();
    cpu.writeRm16(modrm, cpu.r16[((modrm >> 3) & 7) << 1]);
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    cpu.writeRm32(modrm, cpu.regs[(modrm >> 3) & 7]);
  },
);
def(0x8a, 'MOV Gb,Eb', (cpu) => {
  const modrm = cpu.fetch8();
  cpu.setReg8((modrm >> 3) & 7, cpu.readRm8(modrm));
});
def(
  0x8b,
  'MOV Gv,Ev',
  (cpu) => {
    const modrm = cpu.fetch8();
    cpu.r16[((modrm >> 3) & 7) << 1] = cpu.readRm16(modrm);
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    cpu.regs[(modrm >> 3) & 7] = cpu.readRm32(modrm);
  },
);
def(
  0x8c,
  'MOV Ew,Sreg',
  (cpu) => {
    const modrm = cpu.fetch8();
    const sr = (modrm >> 3) & 7;
    if (sr > 5) cpu.ud();
    cpu.writeRm16(modrm, cpu.segSel[sr]);
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    const sr = (modrm >> 3) & 7;
    if (sr > 5) cpu.ud();
    if (modrm >= 0xc0) cpu.regs[modrm & 7] = cpu.segSel[sr];
    else cpu.writeRm16(modrm, cpu.segSel[sr]);
  },
);
def(0x8e, 'MOV Sreg,Ew', (cpu) => {
  const modrm = cpu.fetch8();
  const sr = (modrm >> 3) & 7;
  if (sr === CS || sr > 5) cpu.ud();
  pm.loadSeg(cpu, sr, cpu.readRm16(modrm));
});
def(
  0x8d,
  'LEA Gv,M',
  (cpu) => {
    const modrm = cpu.fetch8();
    if (modrm >= 0xc0) cpu.ud();
    cpu.r16[((modrm >> 3) & 7) << 1] = cpu.ea(modrm);
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    if (modrm >= 0xc0) cpu.ud();
    cpu.regs[(modrm >> 3) & 7] = cpu.ea(modrm);
  },
);
/** moffs: the address size decides the offset width */
function moffs(cpu: Cpu): number {
  return cpu.asize32 ? cpu.fetch32() >>> 0 : cpu.fetch16();
}
function moffsSeg(cpu: Cpu): number {
  return cpu.segOv >= 0 ? cpu.segOv : DS;
}
def(0xa0, 'MOV AL,Ob', (cpu) => {
  const off = moffs(cpu);
  cpu.r8[0] = cpu.read8(moffsSeg(cpu), off);
});
def(
  0xa1,
  'MOV eAX,Ov',
  (cpu) => {
    const off = moffs(cpu);
    cpu.r16[0] = cpu.read16(moffsSeg(cpu), off);
  },
  (cpu) => {
    const off = moffs(cpu);
    cpu.regs[EAX] = cpu.read32(moffsSeg(cpu), off);
  },
);
def(0xa2, 'MOV Ob,AL', (cpu) => {
  const off = moffs(cpu);
  cpu.write8(moffsSeg(cpu), off, cpu.r8[0]);
});
def(
  0xa3,
  'MOV Ov,eAX',
  (cpu) => {
    const off = moffs(cpu);
    cpu.write16(moffsSeg(cpu), off, cpu.r16[0]);
  },
  (cpu) => {
    const off = moffs(cpu);
    cpu.write32(moffsSeg(cpu), off, cpu.regs[EAX]);
  },
);
for (let r = 0; r < 8; r++) {
  def(0xb0 + r, `MOV r8(${r}),Ib`, (cpu) => {
    cpu.setReg8(r, cpu.fetch8());
  });
  def(
    0xb8 + r,
    `MOV r${r},Iv`,
    (cpu) => {
      cpu.r16[r << 1] = cpu.fetch16();
    },
    (cpu) => {
      cpu.regs[r] = cpu.fetch32();
    },
  );
}
def(0xc6, 'MOV Eb,Ib', (cpu) => {
  const modrm = cpu.fetch8();
  if ((modrm & 0x38) !== 0) cpu.ud();
  decodeRm(cpu, modrm);
  const imm = cpu.fetch8();
  if (modrm >= 0xc0) cpu.setReg8(modrm & 7, imm);
  else cpu.write8(cpu.eaSeg, cpu.eaOff, imm);
});
def(
  0xc7,
  'MOV Ev,Iv',
  (cpu) => {
    const modrm = cpu.fetch8();
    if ((modrm & 0x38) !== 0) cpu.ud();
    decodeRm(cpu, modrm);
    const imm = cpu.fetch16();
    if (modrm >= 0xc0) cpu.r16[(modrm & 7) << 1] = imm;
    else cpu.write16(cpu.eaSeg, cpu.eaOff, imm);
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    if ((modrm & 0x38) !== 0) cpu.ud();
    decodeRm(cpu, modrm);
    const imm = cpu.fetch32();
    if (modrm >= 0xc0) cpu.regs[modrm & 7] = imm;
    else cpu.write32(cpu.eaSeg, cpu.eaOff, imm);
  },
);

// ---- XCHG ----
def(0x86, 'XCHG Eb,Gb', (cpu) => {
  const modrm = cpu.fetch8();
  const reg = (modrm >> 3) & 7;
  if (modrm >= 0xc0) {
    const t = cpu.getReg8(modrm & 7);
    cpu.setReg8(modrm & 7, cpu.getReg8(reg));
    cpu.setReg8(reg, t);
    return;
  }
  const lin = cpu.eaLinW(modrm, 1);
  const t = cpu.rmwLin8(lin);
  cpu.writeLin8(lin, cpu.getReg8(reg));
  cpu.setReg8(reg, t);
});
def(
  0x87,
  'XCHG Ev,Gv',
  (cpu) => {
    const modrm = cpu.fetch8();
    const reg = ((modrm >> 3) & 7) << 1;
    if (modrm >= 0xc0) {
      const t = cpu.r16[(modrm & 7) << 1];
      cpu.r16[(modrm & 7) << 1] = cpu.r16[reg];
      cpu.r16[reg] = t;
      return;
    }
    const lin = cpu.eaLinW(modrm, 2);
    const t = cpu.rmwLin16(lin);
    cpu.writeLin16(lin, cpu.r16[reg]);
    cpu.r16[reg] = t;
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    const reg = (modrm >> 3) & 7;
    if (modrm >= 0xc0) {
      const t = cpu.regs[modrm & 7];
      cpu.regs[modrm & 7] = cpu.regs[reg];
      cpu.regs[reg] = t;
      return;
    }
    const lin = cpu.eaLinW(modrm, 4);
    const t = cpu.rmwLin32(lin);
    cpu.writeLin32(lin, cpu.regs[reg]);
    cpu.regs[reg] = t;
  },
);
for (let r = 1; r < 8; r++) {
  def(
    0x90 + r,
    `XCHG eAX,r${r}`,
    (cpu) => {
      const t = cpu.r16[0];
      cpu.r16[0] = cpu.r16[r << 1];
      cpu.r16[r << 1] = t;
    },
    (cpu) => {
      const t = cpu.regs[0];
      cpu.regs[0] = cpu.regs[r];
      cpu.regs[r] = t;
    },
  );
}
def(0x90, 'NOP', () => {});

// ---- MOVZX / MOVSX ----
def(
  0x0fb6,
  'MOVZX Gv,Eb',
  (cpu) => {
    const modrm = cpu.fetch8();
    cpu.r16[((modrm >> 3) & 7) << 1] = cpu.readRm8(modrm);
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    cpu.regs[(modrm >> 3) & 7] = cpu.readRm8(modrm);
  },
);
def(
  0x0fb7,
  'MOVZX Gv,Ew',
  (cpu) => {
    const modrm = cpu.fetch8();
    cpu.r16[((modrm >> 3) & 7) << 1] = cpu.readRm16(modrm);
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    cpu.regs[(modrm >> 3) & 7] = cpu.readRm16(modrm);
  },
);
def(
  0x0fbe,
  'MOVSX Gv,Eb',
  (cpu) => {
    const modrm = cpu.fetch8();
    cpu.r16[((modrm >> 3) & 7) << 1] = (cpu.readRm8(modrm) << 24) >> 24;
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    cpu.regs[(modrm >> 3) & 7] = (cpu.readRm8(modrm) << 24) >> 24;
  },
);
def(
  0x0fbf,
  'MOVSX Gv,Ew',
  (cpu) => {
    const modrm = cpu.fetch8();
    cpu.r16[((modrm >> 3) & 7) << 1] = cpu.readRm16(modrm);
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    cpu.regs[(modrm >> 3) & 7] = (cpu.readRm16(modrm) << 16) >> 16;
  },
);

// ---- CMOVcc / SETcc ----
for (let cc = 0; cc < 16; cc++) {
  def(
    0x0f40 + cc,
    `CMOVcc(${cc}) Gv,Ev`,
    (cpu) => {
      const modrm = cpu.fetch8();
      const v = cpu.readRm16(modrm); // the source is read (and may fault) even when the condition is false
      if (cpu.cond(cc)) cpu.r16[((modrm >> 3) & 7) << 1] = v;
    },
    (cpu) => {
      const modrm = cpu.fetch8();
      const v = cpu.readRm32(modrm);
      if (cpu.cond(cc)) cpu.regs[(modrm >> 3) & 7] = v;
    },
  );
  def(0x0f90 + cc, `SETcc(${cc}) Eb`, (cpu) => {
    const modrm = cpu.fetch8();
    cpu.writeRm8(modrm, cpu.cond(cc) ? 1 : 0);
  });
}

// ---- XLAT ----
def(0xd7, 'XLAT', (cpu) => {
  const seg = cpu.segOv >= 0 ? cpu.segOv : DS;
  const off = cpu.asize32 ? (cpu.regs[EBX] + cpu.r8[0]) >>> 0 : (cpu.r16[EBX << 1] + cpu.r8[0]) & 0xffff;
  cpu.r8[0] = cpu.read8(seg, off);
});

// ---- flags ----
def(0x9e, 'SAHF', (cpu) => {
  cpu.setArithFlags(cpu.r8[1], F_SF | F_ZF | F_AF | F_PF | F_CF);
});
def(0x9f, 'LAHF', (cpu) => {
  cpu.r8[1] = (cpu.getFlags() & 0xd5) | 2;
});
def(0xf5, 'CMC', (cpu) => cpu.setCF(cpu.getCF() ^ 1));
def(0xf8, 'CLC', (cpu) => cpu.setCF(0));
def(0xf9, 'STC', (cpu) => cpu.setCF(1));
def(0xfc, 'CLD', (cpu) => {
  cpu.flags &= ~F_DF;
});
def(0xfd, 'STD', (cpu) => {
  cpu.flags |= F_DF;
});
def(0xd6, 'SALC', (cpu) => {
  cpu.r8[0] = cpu.getCF() ? 0xff : 0;
});

// ---- BCD ----
def(0x27, 'DAA', (cpu) => {
  const oldAl = cpu.r8[0];
  const oldCf = cpu.getCF();
  const af = cpu.getAF();
  let al = oldAl;
  let cf = 0;
  let newAf = 0;
  if ((al & 0xf) > 9 || af) {
    al += 6;
    cf = oldCf | (al > 0xff ? 1 : 0);
    newAf = F_AF;
  }
  if (oldAl > 0x99 || oldCf) {
    al += 0x60;
    cf = 1;
  }
  al &= 0xff;
  cpu.r8[0] = al;
  cpu.setResultFlags(al, 7, cf | newAf);
});
def(0x2f, 'DAS', (cpu) => {
  const oldAl = cpu.r8[0];
  const oldCf = cpu.getCF();
  const af = cpu.getAF();
  let al = oldAl;
  let cf = 0;
  let newAf = 0;
  if ((al & 0xf) > 9 || af) {
    cf = oldCf | (al < 6 ? 1 : 0);
    al = (al - 6) & 0xff;
    newAf = F_AF;
  }
  if (oldAl > 0x99 || oldCf) {
    al = (al - 0x60) & 0xff;
    cf = 1;
  }
  cpu.r8[0] = al;
  cpu.setResultFlags(al, 7, cf | newAf);
});
def(0x37, 'AAA', (cpu) => {
  cpu.materializeFlags();
  const al = cpu.r8[0];
  if ((al & 0xf) > 9 || cpu.flags & F_AF) {
    cpu.r8[1] = cpu.r8[1] + 1 + (al > 0xf9 ? 1 : 0);
    cpu.r8[0] = (al + 6) & 0xf;
    cpu.flags |= F_AF | F_CF;
  } else {
    cpu.r8[0] = al & 0xf;
    cpu.flags &= ~(F_AF | F_CF);
  }
});
def(0x3f, 'AAS', (cpu) => {
  cpu.materializeFlags();
  const al = cpu.r8[0];
  if ((al & 0xf) > 9 || cpu.flags & F_AF) {
    cpu.r8[1] = cpu.r8[1] - 1 - (al < 6 ? 1 : 0);
    cpu.r8[0] = (al - 6) & 0xf;
    cpu.flags |= F_AF | F_CF;
  } else {
    cpu.r8[0] = al & 0xf;
    cpu.flags &= ~(F_AF | F_CF);
  }
});
def(0xd4, 'AAM Ib', (cpu) => {
  const base = cpu.fetch8();
  if (base === 0) cpu.raise(EX_DE);
  const al = cpu.r8[0];
  cpu.r8[1] = Math.floor(al / base);
  cpu.r8[0] = al % base;
  cpu.logic(cpu.r8[0], 7);
});
def(0xd5, 'AAD Ib', (cpu) => {
  const base = cpu.fetch8();
  const al = (cpu.r8[0] + cpu.r8[1] * base) & 0xff;
  cpu.r16[0] = al;
  cpu.logic(al, 7);
});

// ---- bit tests ----
/** k: 0 BT, 1 BTS, 2 BTR, 3 BTC */
function bitOp(cpu: Cpu, k: number, modrm: number, bit: number, size: number, fromReg: boolean): void {
  if (modrm >= 0xc0) {
    const rm = modrm & 7;
    const b = bit & (size - 1);
    const v = size === 16 ? cpu.r16[rm << 1] : cpu.regs[rm];
    cpu.setCF((v >>> b) & 1);
    if (k === 0) return;
    const m = 1 << b;
    const r = k === 1 ? v | m : k === 2 ? v & ~m : v ^ m;
    if (size === 16) cpu.r16[rm << 1] = r;
    else cpu.regs[rm] = r;
    return;
  }
  let off = cpu.eaOff;
  let b: number;
  if (fromReg) {
    // the bit offset is a signed displacement in units of the operand size
    const signed = size === 16 ? (bit << 16) >> 16 : bit | 0;
    const bytes = (signed >> (size === 16 ? 4 : 5)) * (size >> 3);
    off = cpu.asize32 ? (off + bytes) >>> 0 : (off + bytes) & 0xffff;
    b = signed & (size - 1);
  } else {
    b = bit & (size - 1);
  }
  if (k === 0) {
    const v = size === 16 ? cpu.read16(cpu.eaSeg, off) : cpu.read32(cpu.eaSeg, off);
    cpu.setCF((v >>> b) & 1);
    return;
  }
  const lin = cpu.linW(cpu.eaSeg, off, size >> 3);
  const v = size === 16 ? cpu.rmwLin16(lin) : cpu.rmwLin32(lin);
  const m = 1 << b;
  const r = k === 1 ? v | m : k === 2 ? v & ~m : v ^ m;
  if (size === 16) cpu.writeLin16(lin, r);
  else cpu.writeLin32(lin, r);
  cpu.setCF((v >>> b) & 1);
}
const BT_OPS: [number, number][] = [
  [0x0fa3, 0],
  [0x0fab, 1],
  [0x0fb3, 2],
  [0x0fbb, 3],
];
for (const [opc, k] of BT_OPS) {
  def(
    opc,
    ['BT', 'BTS', 'BTR', 'BTC'][k] + ' Ev,Gv',
    (cpu) => {
      const modrm = cpu.fetch8();
      decodeRm(cpu, modrm);
      bitOp(cpu, k, modrm, cpu.r16[((modrm >> 3) & 7) << 1], 16, true);
    },
    (cpu) => {
      const modrm = cpu.fetch8();
      decodeRm(cpu, modrm);
      bitOp(cpu, k, modrm, cpu.regs[(modrm >> 3) & 7], 32, true);
    },
  );
}
def(
  0x0fba,
  'GRP8 Ev,Ib',
  (cpu) => {
    const modrm = cpu.fetch8();
    const op = (modrm >> 3) & 7;
    if (op < 4) cpu.ud();
    decodeRm(cpu, modrm);
    bitOp(cpu, op - 4, modrm, cpu.fetch8(), 16, false);
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    const op = (modrm >> 3) & 7;
    if (op < 4) cpu.ud();
    decodeRm(cpu, modrm);
    bitOp(cpu, op - 4, modrm, cpu.fetch8(), 32, false);
  },
);

// ---- BSF / BSR: ZF=1 and destination unchanged for a zero source ----
function bsf(v: number): number {
  return 31 - Math.clz32(v & -v);
}
def(
  0x0fbc,
  'BSF Gv,Ev',
  (cpu) => {
    const modrm = cpu.fetch8();
    const v = cpu.readRm16(modrm);
    cpu.logic(v, 15);
    if (v !== 0) cpu.r16[((modrm >> 3) & 7) << 1] = bsf(v);
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    const v = cpu.readRm32(modrm);
    cpu.logic(v, 31);
    if (v !== 0) cpu.regs[(modrm >> 3) & 7] = bsf(v);
  },
);
def(
  0x0fbd,
  'BSR Gv,Ev',
  (cpu) => {
    const modrm = cpu.fetch8();
    const v = cpu.readRm16(modrm);
    cpu.logic(v, 15);
    if (v !== 0) cpu.r16[((modrm >> 3) & 7) << 1] = 31 - Math.clz32(v);
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    const v = cpu.readRm32(modrm);
    cpu.logic(v, 31);
    if (v !== 0) cpu.regs[(modrm >> 3) & 7] = 31 - Math.clz32(v);
  },
);

// ---- BSWAP ----
for (let r = 0; r < 8; r++) {
  def(
    0x0fc8 + r,
    `BSWAP r${r}`,
    (cpu) => {
      // undefined for 16-bit operands: real CPUs (and QEMU) zero the register's low word
      cpu.r16[r << 1] = 0;
    },
    (cpu) => {
      const v = cpu.regs[r];
      cpu.regs[r] = ((v >>> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24)) | 0;
    },
  );
}

// ---- XADD / CMPXCHG ----
def(0x0fc0, 'XADD Eb,Gb', (cpu) => {
  const modrm = cpu.fetch8();
  const reg = (modrm >> 3) & 7;
  const src = cpu.getReg8(reg);
  if (modrm >= 0xc0) {
    const d = cpu.getReg8(modrm & 7);
    const r = cpu.add(d, src, 7);
    cpu.setReg8(reg, d);
    cpu.setReg8(modrm & 7, r);
    return;
  }
  const lin = cpu.eaLinW(modrm, 1);
  const d = cpu.rmwLin8(lin);
  cpu.writeLin8(lin, cpu.add(d, src, 7));
  cpu.setReg8(reg, d);
});
def(
  0x0fc1,
  'XADD Ev,Gv',
  (cpu) => {
    const modrm = cpu.fetch8();
    const reg = ((modrm >> 3) & 7) << 1;
    const src = cpu.r16[reg];
    if (modrm >= 0xc0) {
      const d = cpu.r16[(modrm & 7) << 1];
      const r = cpu.add(d, src, 15);
      cpu.r16[reg] = d;
      cpu.r16[(modrm & 7) << 1] = r;
      return;
    }
    const lin = cpu.eaLinW(modrm, 2);
    const d = cpu.rmwLin16(lin);
    cpu.writeLin16(lin, cpu.add(d, src, 15));
    cpu.r16[reg] = d;
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    const reg = (modrm >> 3) & 7;
    const src = cpu.regs[reg];
    if (modrm >= 0xc0) {
      const d = cpu.regs[modrm & 7];
      const r = cpu.add(d, src, 31);
      cpu.regs[reg] = d;
      cpu.regs[modrm & 7] = r;
      return;
    }
    const lin = cpu.eaLinW(modrm, 4);
    const d = cpu.rmwLin32(lin);
    cpu.writeLin32(lin, cpu.add(d, src, 31));
    cpu.regs[reg] = d;
  },
);
def(0x0fb0, 'CMPXCHG Eb,Gb', (cpu) => {
  const modrm = cpu.fetch8();
  const src = cpu.getReg8((modrm >> 3) & 7);
  if (modrm >= 0xc0) {
    const d = cpu.getReg8(modrm & 7);
    cpu.sub(cpu.r8[0], d, 7);
    if (cpu.r8[0] === d) cpu.setReg8(modrm & 7, src);
    else cpu.r8[0] = d;
    return;
  }
  const lin = cpu.eaLinW(modrm, 1);
  const d = cpu.rmwLin8(lin);
  cpu.sub(cpu.r8[0], d, 7);
  if (cpu.r8[0] === d) cpu.writeLin8(lin, src);
  else {
    cpu.writeLin8(lin, d);
    cpu.r8[0] = d;
  }
});
def(
  0x0fb1,
  'CMPXCHG Ev,Gv',
  (cpu) => {
    const modrm = cpu.fetch8();
    const src = cpu.r16[((modrm >> 3) & 7) << 1];
    if (modrm >= 0xc0) {
      const d = cpu.r16[(modrm & 7) << 1];
      cpu.sub(cpu.r16[0], d, 15);
      if (cpu.r16[0] === d) cpu.r16[(modrm & 7) << 1] = src;
      else cpu.r16[0] = d;
      return;
    }
    const lin = cpu.eaLinW(modrm, 2);
    const d = cpu.rmwLin16(lin);
    cpu.sub(cpu.r16[0], d, 15);
    if (cpu.r16[0] === d) cpu.writeLin16(lin, src);
    else {
      cpu.writeLin16(lin, d);
      cpu.r16[0] = d;
    }
  },
  (cpu) => {
    const modrm = cpu.fetch8();
    const src = cpu.regs[(modrm >> 3) & 7];
    if (modrm >= 0xc0) {
      const d = cpu.regs[modrm & 7];
      cpu.sub(cpu.regs[EAX], d, 31);
      if (cpu.regs[EAX] === d) cpu.regs[modrm & 7] = src;
      else cpu.regs[EAX] = d;
      return;
    }
    const lin = cpu.eaLinW(modrm, 4);
    const d = cpu.rmwLin32(lin);
    cpu.sub(cpu.regs[EAX], d, 31);
    if (cpu.regs[EAX] === d) cpu.writeLin32(lin, src);
    else {
      cpu.writeLin32(lin, d);
      cpu.regs[EAX] = d;
    }
  },
);
def(0x0fc7, 'GRP9 (CMPXCHG8B Mq)', (cpu) => {
  const modrm = cpu.fetch8();
  if (modrm >= 0xc0 || ((modrm >> 3) & 7) !== 1) cpu.ud();
  const off = cpu.ea(modrm);
  const seg = cpu.eaSeg;
  const lin = cpu.linW(seg, off, 8);
  cpu.probeWrite(lin, 8);
  const lo = cpu.readLin32(lin);
  const hi = cpu.readLin32((lin + 4) | 0);
  cpu.materializeFlags();
  if (lo === cpu.regs[EAX] && hi === cpu.regs[EDX]) {
    cpu.writeLin32(lin, cpu.regs[EBX]);
    cpu.writeLin32((lin + 4) | 0, cpu.regs[ECX]);
    cpu.flags |= F_ZF;
  } else {
    cpu.writeLin32(lin, lo);
    cpu.writeLin32((lin + 4) | 0, hi);
    cpu.regs[EAX] = lo;
    cpu.regs[EDX] = hi;
    cpu.flags &= ~F_ZF;
  }
});

// ---- far pointer loads: LDS LES LSS LFS LGS ----
function loadFarPtr(cpu: Cpu, seg: number): void {
  const modrm = cpu.fetch8();
  if (modrm >= 0xc0) cpu.ud();
  const off = cpu.ea(modrm);
  const s = cpu.eaSeg;
  const size = cpu.osize32 ? 4 : 2;
  const v = cpu.osize32 ? cpu.read32(s, off) : cpu.read16(s, off);
  const sel = cpu.read16(s, cpu.asize32 ? (off + size) >>> 0 : (off + size) & 0xffff);
  pm.loadSeg(cpu, seg, sel);
  const reg = (modrm >> 3) & 7;
  if (cpu.osize32) cpu.regs[reg] = v;
  else cpu.r16[reg << 1] = v;
}
def(0xc4, 'LES Gv,Mp', (cpu) => loadFarPtr(cpu, 0));
def(0xc5, 'LDS Gv,Mp', (cpu) => loadFarPtr(cpu, DS));
def(0x0fb2, 'LSS Gv,Mp', (cpu) => loadFarPtr(cpu, SS));
def(0x0fb4, 'LFS Gv,Mp', (cpu) => loadFarPtr(cpu, 4));
def(0x0fb5, 'LGS Gv,Mp', (cpu) => loadFarPtr(cpu, 5));

void F_PF;
