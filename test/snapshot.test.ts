/**
 * Exact snapshots of the default Linux guest, as a user drives them from the command line.
 *
 * In --deterministic mode a scripted session (wait for the prompt, run a command, power off) is run
 * three ways: (1) straight through; (2) the same session with --save-at N, which saves the machine and
 * stops; (3) `x86vm run --restore` of that snapshot, which finishes the session. The serial output of (2)
 * and (3) joined must equal (1) byte for byte, for N during the kernel's boot (before the local APIC
 * timer is set up), N with the APIC timer armed, and N at the shell prompt (the prompt printed, the
 * console script not yet shown it: the script's progress and that output travel in the snapshot).
 * Restoring the same snapshot twice gives the same output twice. Then bad snapshot files: a one-line
 * error naming the file and the problem, exit status 2, the file untouched.
 *
 * The disk case (a snapshot with the disks busy) is test/snapshot-disk.test.ts.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runVm, SLICE } from '../node/run';
import { parseCommandLine } from '../node/options';
import { parseSnapshot, sectionJson, crc32 } from '../core/snapshot';
import { nodeCompressor, type CliHostState } from '../node/snapshot';
import { buildCli, PROMPT, runCli, type CliRun } from './helpers/guest';

const SESSION = ['--deterministic', '--timeout', '900', '--expect', PROMPT, '--send', 'uname -a; cat /proc/uptime\\n', '--expect', PROMPT, '--send', 'poweroff -f\\n'];
const dir = mkdtempSync(join(tmpdir(), 'x86vm-snaptest-'));

beforeAll(buildCli);

const cli = (args: string[]): Promise<CliRun> => runCli(args);

async function hostState(file: string): Promise<CliHostState> {
  return (await sectionJson(parseSnapshot(new Uint8Array(readFileSync(file))), 'host', nodeCompressor())) as CliHostState;
}

async function deviceState(file: string, name: string): Promise<Record<string, unknown>> {
  const devices = (await sectionJson(parseSnapshot(new Uint8Array(readFileSync(file))), 'devices', nodeCompressor())) as { name: string; state: Record<string, unknown> }[];
  return devices.find((d) => d.name === name)!.state;
}

describe('snapshots of the default guest', () => {
  /** the uninterrupted session, and the instruction at which the first prompt was complete */
  let full = '';
  let promptAt = 0;

  it('(1) the uninterrupted deterministic session', async () => {
    const cmd = parseCommandLine(['run', '--serial', 'stdio', ...SESSION]);
    if (cmd.command !== 'run') throw new Error('not a run');
    let tail = '';
    const chunks: string[] = [];
    const r = await runVm(cmd.options, {
      stdout: (b) => chunks.push(String.fromCharCode(...b)),
      onReady: (vm) => {
        // note the instruction at which the guest wrote the prompt's last byte
        const inner = vm.uart.sink!;
        vm.uart.sink = {
          write(byte: number): void {
            inner.write(byte);
            if (promptAt) return;
            tail = (tail + String.fromCharCode(byte)).slice(-PROMPT.length);
            if (tail === PROMPT) promptAt = vm.machine.cpu.instructionCount;
          },
        };
      },
    });
    full = chunks.join('');
    expect(r.exitCode, r.message).toBe(0);
    expect(full).toMatch(/Linux x86vm 6\.1/);
    expect(full).toMatch(/reboot: Power down/);
    expect(promptAt).toBeGreaterThan(10_000_000);
  });

  const points: { name: string; at: () => number; check: (file: string) => Promise<void> }[] = [
    {
      name: 'during the kernel boot, before the APIC timer runs',
      at: () => Math.floor(promptAt / 4) + 7,
      check: async (file) => {
        expect((await deviceState(file, 'lapic')).timerRunning).toBe(false);
        expect((await hostState(file)).script?.steps[0]).toEqual({ kind: 'expect', source: PROMPT });
      },
    },
    {
      name: 'with the APIC timer armed',
      at: () => Math.floor(promptAt * 0.7) + 3,
      check: async (file) => {
        const apic = await deviceState(file, 'lapic');
        expect(apic.timerRunning).toBe(true);
        expect(apic.timerDueIn as number).toBeGreaterThanOrEqual(0);
      },
    },
    {
      name: 'at the shell prompt (printed, not yet seen by the console script)',
      at: () => ((promptAt + 1) % SLICE === 0 ? promptAt + 2 : promptAt + 1),
      check: async (file) => {
        const host = await hostState(file);
        expect(host.unfed).toContain(PROMPT);
        expect(host.script?.steps.map((s) => s.kind)).toEqual(['expect', 'send', 'expect', 'send']);
      },
    },
  ];

  for (const p of points) {
    it(`(2)+(3) saved ${p.name}: the two halves join to the uninterrupted output`, async () => {
      expect(full, 'needs run (1)').not.toBe('');
      const n = p.at();
      const file = join(dir, `at-${n}.snap`);
      const first = await cli(['run', ...SESSION, '--save-state', file, '--save-at', String(n)]);
      expect(first.status, first.err).toBe(0);
      expect(first.err.startsWith(`x86vm: snapshot saved to '${file}' at instruction ${n} (`)).toBe(true);
      expect(first.err).toMatch(/ \([\d.]+ MiB\)\n$/);
      await p.check(file);
      const second = await cli(['run', '--restore', file, '--timeout', '900']);
      expect(second.err).toBe('');
      expect(second.status).toBe(0);
      expect(first.out.length).toBeGreaterThan(0);
      expect(first.out + second.out).toBe(full);
      if (p === points[2]) {
        // the same snapshot restored again: the same output again
        const again = await cli(['run', '--restore', file, '--timeout', '900']);
        expect(again.status).toBe(0);
        expect(again.out).toBe(second.out);
      }
    });
  }

  it('x86vm snapshot info shows what is inside', async () => {
    const file = join(dir, `at-${points[0].at()}.snap`);
    const r = await cli(['snapshot', 'info', file]);
    expect(r.status, r.err).toBe(0);
    expect(r.out).toMatch(/^format: +x86vm snapshot, version 1$/m);
    expect(r.out).toMatch(/^mode: +deterministic$/m);
    expect(r.out).toMatch(/^memory: +128 MiB \(\d+ of 32768 pages in use/m);
    expect(r.out).toMatch(new RegExp(`^instructions: +${points[0].at()}$`, 'm'));
    expect(r.out).toMatch(/^guest time: +0\.\d{9} s$/m);
    expect(r.out).toMatch(/^devices: +irq-router pic pit .*lapic ioapic pci fw_cfg$/m);
    for (const s of ['meta', 'cpu', 'machine', 'devices', 'memmap', 'ram', 'host']) expect(r.out).toMatch(new RegExp(`^  ${s} +[\\d.]+ [KM]?i?B +[\\d.]+ [KM]?i?B  [0-9a-f]{8}`, 'm'));
    expect(r.out).toMatch(/all checksums verified/);
  });

  it('bad snapshot files: one line naming the file and the problem, status 2, the file untouched', async () => {
    const good = readFileSync(join(dir, `at-${points[0].at()}.snap`));
    const snap = parseSnapshot(new Uint8Array(good));
    const ram = snap.sections.find((s) => s.name === 'ram')!;
    const corrupt = Buffer.from(good);
    corrupt[ram.offset + 1000] ^= 0xff;
    const newer = Buffer.from(good);
    newer.writeUInt32LE(7, 8);
    newer.writeUInt32LE(crc32(newer.subarray(0, 24)), 24);
    const cases: [string, Buffer, RegExp][] = [
      ['truncated.snap', good.subarray(0, good.length - 4096), /truncated: \d+ bytes of \d+ bytes$/],
      ['corrupt.snap', corrupt, /section 'ram': checksum mismatch \(the file is corrupted\)$/],
      ['newer.snap', newer, /snapshot format version 7 is newer than this x86vm reads \(version 1\); use a newer x86vm$/],
      ['notasnap.snap', Buffer.from('#!/bin/sh\necho this is not a snapshot\n'), /not an x86vm snapshot \(wrong magic number\)$/],
    ];
    for (const [name, bytes, why] of cases) {
      const file = join(dir, name);
      writeFileSync(file, bytes);
      const before = statSync(file).mtimeMs;
      for (const args of [['run', '--restore', file], ['snapshot', 'info', file]]) {
        const r = await cli(args);
        expect(r.status, `${args.join(' ')}: ${r.err}`).toBe(2);
        expect(r.out).toBe('');
        expect(r.err.split('\n')).toHaveLength(2); // one line
        expect(r.err.startsWith(`x86vm: snapshot '${file}': `)).toBe(true);
        expect(r.err.trimEnd()).toMatch(why);
      }
      expect(readFileSync(file).equals(bytes)).toBe(true);
      expect(statSync(file).mtimeMs).toBe(before);
    }
    const missing = await cli(['run', '--restore', join(dir, 'nope.snap')]);
    expect(missing.status).toBe(2);
    expect(missing.err).toBe(`x86vm: cannot read snapshot '${join(dir, 'nope.snap')}': no such file or directory\n`);
  });

  it('options that would build another machine are refused', async () => {
    const file = join(dir, `at-${points[0].at()}.snap`);
    const mem = await cli(['run', '--restore', file, '--mem', '256M']);
    expect(mem.status).toBe(2);
    expect(mem.err).toBe(`x86vm: --mem 256 MiB conflicts with snapshot '${file}', taken with 128 MiB of RAM (leave --mem out)\n`);
    const kernel = await cli(['run', '--restore', file, '--kernel', 'bzImage']);
    expect(kernel.status).toBe(2);
    expect(kernel.err).toBe('x86vm: --kernel cannot be combined with --restore (the snapshot holds the loaded machine)\n');
    const late = await cli(['run', '--restore', file, '--save-state', join(dir, 'x.snap'), '--save-at', '5']);
    expect(late.status).toBe(2);
    expect(late.err).toBe(`x86vm: --save-at 5: the restored machine is already at instruction ${points[0].at()}\n`);
    const when = await cli(['run', '--save-state', join(dir, 'x.snap')]);
    expect(when.status).toBe(2);
    expect(when.err).toBe('x86vm: --save-state needs --save-at N or --save-on REGEX (when to save)\n');
  });
});
