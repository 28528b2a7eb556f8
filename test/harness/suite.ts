// vitest glue for conformance programs: one describe() per program with two tests,
//   "<name> › qemu (oracle sanity)"  — QEMU exits with status 1, prints DONE and the expected line count;
//   "<name> › x86vm equals qemu"     — x86vm's debugcon output equals QEMU's byte for byte, same exit status.
// Run one program's tests:  npx vitest run test/conformance-alu.test.ts -t 'alu-add'
import { describe, test } from 'vitest';
import { checkRun, expectSameOutput, runQemuCached, runX86vm, type QemuCheck, type RunOptions } from './oracle.js';

export function conformance(name: string, build: () => Promise<string>, check: QemuCheck = {}, opts: RunOptions = {}): void {
  describe(name, () => {
    let binP: Promise<string> | undefined;
    const bin = () => (binP ??= build());
    test('qemu (oracle sanity)', async () => {
      checkRun(await runQemuCached(await bin(), opts), check);
    });
    test('x86vm equals qemu', async () => {
      const b = await bin();
      const q = await runQemuCached(b, opts);
      checkRun(q, check);
      expectSameOutput(q, await runX86vm(b, opts), name);
    });
  });
}
