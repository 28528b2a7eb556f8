/**
 * The one opcode table. Each instruction family (core/ops/*.ts) registers its opcodes here with a
 * mnemonic and a handler for 16-bit and for 32-bit operand size. The interpreter dispatches through
 * OPS / OPS_0F indexed by `opcode | (osize32 ? 256 : 0)`; OP_INFO keeps the names for disassembly,
 * error messages and coverage checks (and later the block compiler's metadata).
 */
import type { Cpu } from './cpu';

export type OpFn = (cpu: Cpu) => void;

export interface OpInfo {
  /** mnemonic and operand form, e.g. "ADD Ev,Gv" */
  name: string;
  /** ends a basic block (jumps, calls, returns, interrupts, mode changes) */
  branch: boolean;
}

const undefinedOp: OpFn = (cpu) => cpu.ud();

/** one-byte opcodes: [op] for 16-bit, [op | 256] for 32-bit operand size */
export const OPS: OpFn[] = new Array<OpFn>(512).fill(undefinedOp);
/** two-byte opcodes 0F xx, indexed the same way */
export const OPS_0F: OpFn[] = new Array<OpFn>(512).fill(undefinedOp);
export const OP_INFO: (OpInfo | undefined)[] = new Array(512);
export const OP_INFO_0F: (OpInfo | undefined)[] = new Array(512);

/**
 * Registers an opcode. `opcode` is 0x00–0xFF for one-byte opcodes or 0x0F00–0x0FFF for 0F xx.
 * fn32 defaults to fn16 (for opcodes whose behaviour does not depend on operand size).
 */
export function def(opcode: number, name: string, fn16: OpFn, fn32: OpFn = fn16, branch = false): void {
  const twoByte = opcode >= 0x0f00;
  const op = opcode & 0xff;
  const table = twoByte ? OPS_0F : OPS;
  const info = twoByte ? OP_INFO_0F : OP_INFO;
  if (info[op]) throw new Error(`opcode ${opcode.toString(16)} (${name}) registered twice (was ${info[op]!.name})`);
  table[op] = fn16;
  table[op | 256] = fn32;
  info[op] = { name, branch };
}

/** registers an opcode whose handler ends a basic block */
export function defBranch(opcode: number, name: string, fn16: OpFn, fn32: OpFn = fn16): void {
  def(opcode, name, fn16, fn32, true);
}
