// Hand-written general-instruction conformance programs (test/conformance/real/*.asm) plus the generated
// addressing-form program. Each must exit with status 1 on QEMU and print exactly the listed line count;
// x86vm must print the same bytes. Run one:  npx vitest run test/conformance-general.test.ts -t strings
import { assemble, assembleText } from './harness/oracle.js';
import { conformance } from './harness/suite.js';
import { genAddr } from './harness/gen.js';

const handWritten: Array<[string, number, string[]]> = [
  // name, exact line count on QEMU (DONE included), strings that must appear
  ['strings', 43, ['rep-movsb-dst:', 'a32-repe-scasb']],
  ['stack', 41, ['popfd ffc3fcff -> 00007cd7', 'enter32-3-frame:']],
  ['cpuid', 5, ['family 06', 'features 0000a939', 'id-ac-toggle 00240000']],
  ['segments', 28, ['unreal eax=feedf00d']],
  ['pm32', 409, ['EXC 00 err=00000000', 'back-in-real-mode cs=f000']],
];
for (const [name, lines, contains] of handWritten) {
  conformance(name, () => assemble(`test/conformance/real/${name}.asm`), { lines, contains });
}
conformance('addressing', () => assembleText('gen-addressing', genAddr()), { lines: 673 });
