// Harness smoke test: print macros, real-mode #DE, PM entry/exit and PM faults (test/conformance/real/smoke.asm).
// Run: npx vitest run test/conformance-smoke.test.ts
import { assemble } from './harness/oracle.js';
import { conformance } from './harness/suite.js';

conformance('smoke', () => assemble('test/conformance/real/smoke.asm'), {
  lines: 12,
  contains: ['EXC 00 cs:ip=f000:', 'EXC 0d err=00000074', 'EXC 06 err=00000000', 'rm-again cs=f000'],
});
