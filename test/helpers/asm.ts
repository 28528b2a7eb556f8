/**
 * Test helpers: assemble a nasm snippet and run it on a bare Machine (no firmware), in real mode at
 * 0000:7C00 or in flat 32-bit protected mode at 0x10000, until it executes HLT.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine } from '../../core/machine';
import { CS, DS, ES, SS, FS, GS, CR0_PE } from '../../core/defs';

const dir = mkdtempSync(join(tmpdir(), 'x86vm-asm-'));
let counter = 0;

export function nasm(src: string): Uint8Array {
  const n = counter++;
  const asmPath = join(dir, `t${n}.asm`);
  const binPath = join(dir, `t${n}.bin`);
  writeFileSync(asmPath, src);
  execFileSync('nasm', ['-f', 'bin', '-o', binPath, asmPath]);
  return new Uint8Array(readFileSync(binPath));
}

export interface RunResult {
  m: Machine;
  instructions: number;
}

function run(m: Machine, max: number): RunResult {
  let total = 0;
  while (total < max && !m.cpu.halted && !m.stopReason) {
    total += m.cpu.run(Math.min(100000, max - total));
  }
  if (!m.cpu.halted) throw new Error(`did not halt after ${total} instructions (eip=${m.cpu.eip.toString(16)})`);
  return { m, instructions: total };
}

/** runs 16-bit code loaded at 0000:7C00 in real mode until HLT */
export function runReal(src: string, opts: { mem?: number; max?: number; setup?: (m: Machine) => void } = {}): RunResult {
  const code = nasm(`bits 16\norg 0x7c00\n${src}\n`);
  const m = new Machine({ memSize: opts.mem ?? 2 << 20 });
  m.mem.load(0x7c00, code);
  const cpu = m.cpu;
  cpu.setSegCache(CS, 0, 0, 0xffff, 0x9b);
  for (const s of [DS, ES, SS, FS, GS]) cpu.setSegCache(s, 0, 0, 0xffff, 0x93);
  cpu.eip = 0x7c00;
  cpu.regs[4] = 0x7000;
  opts.setup?.(m);
  return run(m, opts.max ?? 1_000_000);
}

/** runs 32-bit code at 0x10000 in flat protected mode (ring 0, no paging) until HLT */
export function runFlat32(src: string, opts: { mem?: number; max?: number; setup?: (m: Machine) => void } = {}): RunResult {
  const code = nasm(`bits 32\norg 0x10000\n${src}\n`);
  const m = new Machine({ memSize: opts.mem ?? 4 << 20 });
  m.mem.load(0x10000, code);
  const cpu = m.cpu;
  // a GDT at 0x1000: null, 0x08 code32, 0x10 data32
  const gdt = new Uint8Array([
    0, 0, 0, 0, 0, 0, 0, 0,
    0xff, 0xff, 0, 0, 0, 0x9b, 0xcf, 0,
    0xff, 0xff, 0, 0, 0, 0x93, 0xcf, 0,
  ]);
  m.mem.load(0x1000, gdt);
  cpu.gdtBase = 0x1000;
  cpu.gdtLimit = gdt.length - 1;
  cpu.cr0 |= CR0_PE;
  cpu.updateMode();
  cpu.setSegCache(CS, 0x08, 0, 0xffffffff, 0xc09b);
  for (const s of [DS, ES, SS, FS, GS]) cpu.setSegCache(s, 0x10, 0, 0xffffffff, 0xc093);
  cpu.rederiveSegments();
  cpu.eip = 0x10000;
  cpu.regs[4] = 0x80000;
  opts.setup?.(m);
  return run(m, opts.max ?? 1_000_000);
}
