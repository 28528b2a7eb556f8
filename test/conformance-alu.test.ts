// General-instruction conformance (generated, table-driven programs; see test/harness/gen.ts).
// Every case prints "name A B Fin : eax ebx ecx edx eflags&mask" on port 0xE9; x86vm must print exactly what
// QEMU prints. Flags the SDM calls undefined are masked in gen.ts (comments there say which).
// Run one family:  npx vitest run test/conformance-alu.test.ts -t 'shift'
import { assembleText } from './harness/oracle.js';
import { conformance } from './harness/suite.js';
import { genAluArith, genAluLogic, genBcd, genBitops, genCond, genMulDiv, genShifts } from './harness/gen.js';

const progs: Array<[string, () => string, number]> = [
  // name, generator, exact line count on QEMU (DONE included)
  ['alu-arith', genAluArith, 10801],
  ['alu-logic', genAluLogic, 7073],
  ['muldiv', genMulDiv, 11951],
  ['shift', () => genShifts(['shl', 'shr', 'sar'], false), 4321],
  ['rotate', () => genShifts(['rol', 'ror'], false), 2881],
  ['rotate-carry', () => genShifts(['rcl', 'rcr'], false), 2881],
  ['shld-shrd', () => genShifts([], true), 7301],
  ['bcd', genBcd, 6665],
  ['bitops', genBitops, 8605],
  ['cond', genCond, 7441],
];

for (const [name, gen, lines] of progs) {
  conformance(name, () => assembleText('gen-' + name, gen()), { lines });
}
