// Protected-mode conformance programs (test/conformance/pm/*.asm): 64 KiB BIOS images that enter
// protected mode themselves (pm/pmlib.inc), print one observation per line to port 0xE9 and exit
// through isa-debug-exit. Each is run on qemu-system-i386 (the oracle) and on x86vm; the outputs
// must be identical byte for byte.
//
// Where QEMU 7.2 disagrees with the SDM the program either avoids the disputed behaviour (and says
// so in its header) or, when the behaviour is the point of the program, its expected output is a
// golden file recorded from Bochs 2.7 and checked by hand against the SDM (pm/NAME.expected):
//   - seglimit: QEMU checks no data/stack segment limits and does not fault on a null DS/ES.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { assemble, diffOutputs, ROOT, runX86vm } from './harness/oracle.js';
import { conformance } from './harness/suite.js';

const PM = 'test/conformance/pm';
const src = (name: string) => `${PM}/${name}.asm`;

// name -> exact number of output lines on QEMU (DONE included)
const programs: Record<string, number> = {
  seg: 115,
  priv: 55,
  exc: 49,
  paging: 70,
  msr: 20,
  fpu: 11,
};

for (const [name, lines] of Object.entries(programs)) {
  conformance(`pm-${name}`, () => assemble(src(name)), { lines, contains: ['DONE\n'] });
}

// Programs whose oracle is a golden file (QEMU deviates from the SDM there; see above).
const golden: Record<string, number> = {
  seglimit: 42,
};

for (const [name, lines] of Object.entries(golden)) {
  describe(`pm-${name}`, () => {
    const expected = readFileSync(join(ROOT, PM, `${name}.expected`), 'latin1');
    test('golden file (oracle sanity)', () => {
      expect(expected.endsWith('DONE\n')).toBe(true);
      expect(expected.split('\n').length - 1).toBe(lines);
      expect(expected).not.toContain('UNEXPECTED');
    });
    test('x86vm equals the SDM (Bochs-recorded golden file)', async () => {
      const bin = await assemble(src(name));
      const r = await runX86vm(bin);
      const d = diffOutputs(expected, r.debugcon, ['sdm', 'x86vm']);
      if (d) throw new Error(`${name}: x86vm differs from the golden file\n${d}\nstderr: ${r.stderr.slice(0, 2000)}`);
      expect(r.exitCode).toBe(1);
    });
  });
}
