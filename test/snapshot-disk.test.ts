/**
 * Exact snapshots of the default Linux guest with its disks busy. In --deterministic mode the guest has
 * a dynamic VHD on the IDE primary master (/dev/sda, written directly; Linux's ata_piix moves it by
 * bus-master DMA), a raw image with snapshot=on on the primary slave (/dev/sdb: its writes stay in
 * memory and travel in the snapshot's "disk:ide1" section), a dynamic VDI on virtio-blk (/dev/vda,
 * written directly) and an ISO on the CD. A scripted session writes the start of /bin/busybox to the
 * slave (so its overlay holds something whatever the save point), then copies /bin/busybox's first
 * 31 × 64 KiB onto the three disks at once with dd oflag=direct (one request at a time per disk, the
 * three disks busy together), a CPU-bound shell loop running beside (so the CPU executes instructions
 * while requests are in flight), drops the page cache, reads everything back through md5sum and powers
 * off.
 *
 * (1) runs it straight through, looking every 10 000 instructions (its Machine.run does its slices in
 * such steps, which deterministic mode allows: time follows the instruction count, whatever the slicing)
 * at which instruction counts an IDE DMA write and virtio-blk requests are in flight; (2) runs it again
 * on fresh copies of the images with --save-at N at such a point and stops — the test reads the saved
 * device states out of the snapshot to prove the operations were in flight, not assumed; (3) restores
 * the snapshot with no drive options and finishes.
 * The serial output of (2) and (3) joined equals (1) byte for byte, and the directly-written images
 * afterwards equal (1)'s byte for byte; the snapshot=on image and the ISO are untouched. Then through the
 * CLI: `x86vm snapshot info` lists the drives; a changed image or a missing one is refused with one
 * line and status 2, leaving every file as it was.
 *
 * VMs run in-process through runVm (one at a time); the CLI checks spawn the built dist/x86vm.mjs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommandLine } from '../node/options';
import { runVm, type VmControl } from '../node/run';
import { diskMain } from '../node/disk-cli';
import { nodeCompressor, readSnapshotFile } from '../node/snapshot';
import { sectionJson } from '../core/snapshot';
import { buildCli, PROMPT, runCli, type CliRun } from './helpers/guest';
import type { Pc } from '../core/pc';
import { IdeController } from '../devices/ide';
import { VirtioBlk } from '../devices/virtio-blk';

const TIMEOUT_S = 1500;

/** ATA DMA commands: READ/WRITE DMA and their EXT forms */
const DMA_CMDS = [0xc8, 0xca, 0x25, 0x35];
/** PIIX3 IDE at PCI 00:01.1 */
const IDE_DEVFN = (1 << 3) | 1;

/** the second command starts with this no-op, so the test knows from the echo that it has begun */
const PHASE2 = ': p2go;';
const SESSION = [
  'cat /sys/block/sda/size /sys/block/sdb/size /sys/block/vda/size; ' +
    'dd if=/bin/busybox of=/dev/sdb bs=64k count=4 conv=fsync 2>/dev/null; echo primed',
  // 31 × 64 KiB of busybox onto the three disks at once (at 1 MiB), a CPU-bound loop beside
  `${PHASE2} (while [ ! -e /tmp/stop ]; do :; done) & p=''; ` +
    'for d in sda vda sdb; do dd if=/bin/busybox of=/dev/$d bs=64k seek=16 count=31 oflag=direct 2>/dev/null & p="$p $!"; done; ' +
    // (the quotes keep the command's echo from reading "written" at a line start)
    "wait $p; touch /tmp/stop; wait; echo wr''itten",
  // everything read back from the disks, not the page cache
  'sync; echo 3 > /proc/sys/vm/drop_caches; for d in sda vda sdb; do dd if=/dev/$d bs=64k skip=16 count=31 2>/dev/null | md5sum; done; ' +
    'head -c 2031616 /bin/busybox | md5sum; dd if=/dev/sdb bs=64k count=4 2>/dev/null | md5sum; head -c 262144 /bin/busybox | md5sum',
];

function scriptArgs(): string[] {
  const args: string[] = [];
  for (const c of SESSION) args.push('--expect', PROMPT, '--send', `${c}\\n`);
  args.push('--expect', PROMPT, '--send', 'poweroff -f\\n');
  return args;
}

let work = '';
/** the images as made, copied for each run */
const made: Record<'vhd' | 'raw' | 'vdi' | 'iso', string> = { vhd: '', raw: '', vdi: '', iso: '' };

const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

beforeAll(async () => {
  buildCli();
  work = mkdtempSync(join(tmpdir(), 'x86vm-snapdisk-'));
  const io = { out: () => {}, err: (l: string) => { throw new Error(l); } };
  made.vhd = join(work, 'ide.vhd');
  made.vdi = join(work, 'blk.vdi');
  made.raw = join(work, 'scratch.raw');
  expect(await diskMain(['create', '--format', 'vhd-dynamic', made.vhd, '8M'], io)).toBe(0);
  expect(await diskMain(['create', '--format', 'vdi-dynamic', made.vdi, '8M'], io)).toBe(0);
  const raw = new Uint8Array(8 << 20);
  for (let i = 0; i < raw.length; i += 512) raw[i] = (i >> 9) & 0xff;
  writeFileSync(made.raw, raw);
  const isoTree = join(work, 'iso-tree');
  mkdirSync(isoTree);
  writeFileSync(join(isoTree, 'readme.txt'), 'on the CD\n');
  made.iso = join(work, 'cd.iso');
  execFileSync('genisoimage', ['-quiet', '-R', '-V', 'X86VMCD', '-o', made.iso, isoTree]);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Images {
  dir: string;
  vhd: string;
  raw: string;
  vdi: string;
  iso: string;
}

/** a VM folder with fresh copies of the images */
function folder(name: string): Images {
  const dir = join(work, name);
  mkdirSync(dir);
  const img = { dir, vhd: join(dir, 'ide.vhd'), raw: join(dir, 'scratch.raw'), vdi: join(dir, 'blk.vdi'), iso: join(dir, 'cd.iso') };
  for (const k of ['vhd', 'raw', 'vdi', 'iso'] as const) copyFileSync(made[k], img[k]);
  return img;
}

const driveArgs = (img: Images): string[] => [
  '--hda', img.vhd,
  '--drive', `file=${img.raw},if=ide,index=1,snapshot=on`,
  '--drive', `file=${img.vdi},if=virtio-blk`,
  '--cdrom', img.iso,
];

interface Busy {
  at: number;
  /** an IDE DMA write to the master in flight */
  ideDma: boolean;
  /** virtio-blk requests in flight */
  blk: number;
}

interface Run {
  exitCode: number;
  message?: string;
  out: string;
}

async function vm(args: string[], watch?: (vm: VmControl, pc: () => Pc | null) => void, onOutput?: (text: string) => void): Promise<Run> {
  const cmd = parseCommandLine(['run', '--serial', 'stdio', '--timeout', String(TIMEOUT_S), ...args]);
  if (cmd.command !== 'run') throw new Error('not a run');
  const chunks: string[] = [];
  let pc: Pc | null = null;
  const r = await runVm(cmd.options, {
    stdout: (b) => {
      const text = Buffer.from(b).toString('latin1');
      chunks.push(text);
      onOutput?.(text);
    },
    // records the PC (adds no device, so the machine is the same)
    devices: [(p: Pc) => void (pc = p)],
    onReady: watch ? (v) => watch(v, () => pc) : undefined,
  });
  return { exitCode: r.exitCode, message: r.message, out: chunks.join('') };
}

/** is an IDE device doing a DMA command with its data or completion still to come? */
function ideDmaBusy(dev: { cmd: number; phase: number; io: unknown } | null): boolean {
  return !!dev && DMA_CMDS.includes(dev.cmd) && (dev.io !== null || dev.phase === 4);
}

/** ATA WRITE DMA (EXT) */
const isWrite = (cmd: number): boolean => cmd === 0xca || cmd === 0x35;

type SavedFn = { extra?: { channels?: { devices: ({ cmd: number; phase: number; io: { kind: string; deadline: number } | null } | null)[] }[]; device?: { inflight?: { q: number; head: number; dueIn: number }[] } } };

/** the PCI functions' saved states in a snapshot */
async function savedPci(file: string): Promise<Record<string, SavedFn>> {
  const devices = (await sectionJson(await readSnapshotFile(file), 'devices', nodeCompressor())) as { name: string; state: { functions: Record<string, SavedFn> } }[];
  return devices.find((d) => d.name === 'pci')!.state.functions;
}

const cli = (args: string[]): Promise<CliRun> => runCli(args);

describe('snapshots of the default guest with its disks busy', () => {
  let reference: Run;
  let refImg: Images;
  const busy: Busy[] = [];

  it('(1) the uninterrupted session: the disks are written and read back, noting where I/O is in flight', { timeout: TIMEOUT_S * 1000 }, async () => {
    refImg = folder('ref');
    let done = false;
    // points are noted while the second command runs: from its echo to its "written"
    let seen = '';
    let armed = false;
    reference = await vm(['--deterministic', ...driveArgs(refImg), ...scriptArgs()], (v, pc) => {
      const machine = v.machine;
      const p = pc()!;
      let ide: IdeController | null = null;
      let blkDev: VirtioBlk | null = null;
      for (let df = 0; df < 256; df++) {
        const f = p.pci!.bus.get(df);
        if (f instanceof IdeController) ide = f;
        else if (f instanceof VirtioBlk) blkDev = f;
      }
      expect(ide && blkDev, 'the IDE controller and virtio-blk are on the PCI bus').toBeTruthy();
      // the IDE devices' public fields: what a saved state would hold
      const devs = (ide as unknown as { channels: { devices: { cmd: number; phase: number; io: unknown }[] }[] }).channels[0].devices;
      const look = (): void => {
        if (!armed) return;
        // the master: the directly-written disk
        const ideDma = ideDmaBusy(devs[0]) && isWrite(devs[0].cmd);
        const blk = blkDev!.pending;
        if (ideDma || blk) busy.push({ at: machine.cpu.instructionCount, ideDma, blk });
      };
      const run = machine.run.bind(machine);
      machine.run = (max: number): number => {
        let total = 0;
        while (total < max && !done) {
          const want = Math.min(10_000, max - total);
          const n = run(want);
          total += n;
          look();
          if (n < want || machine.stopReason || machine.hostWait) break;
        }
        return total;
      };
    }, (text) => {
      seen = (seen + text).slice(-4096);
      if (!armed && seen.includes(PHASE2)) armed = true;
      if (armed && /^written\r?$/m.test(seen)) {
        armed = false;
        seen = '';
      }
    });
    done = true;
    expect(reference.exitCode, reference.message).toBe(0);
    const out = reference.out.replace(/\r/g, '');
    expect(out).toMatch(/^written$/m);
    // what each disk gives back is what was written to it: busybox's start, and the slave's first write
    const read = [...out.matchAll(/^([0-9a-f]{32}) {2}-$/gm)].map((m) => m[1]);
    expect(read).toHaveLength(6);
    expect(read.slice(0, 3)).toEqual([read[3], read[3], read[3]]);
    expect(read[4]).toBe(read[5]);
    expect(read[3]).not.toBe(read[5]);
    // the guest's data landed in the directly-written images, not in the snapshot=on one
    expect(sha(refImg.raw)).toBe(sha(made.raw));
    expect(sha(refImg.vhd)).not.toBe(sha(made.vhd));
    expect(sha(refImg.vdi)).not.toBe(sha(made.vdi));
    expect(busy.some((b) => b.ideDma), 'an IDE DMA write in flight somewhere').toBe(true);
    expect(busy.some((b) => b.blk > 0), 'virtio-blk requests in flight somewhere').toBe(true);
  });

  let snapFile = '';
  let saveImg: Images;

  it('(2)+(3) saved with IDE DMA and virtio-blk requests in flight (read back from the snapshot), restored: output and images equal (1)', { timeout: TIMEOUT_S * 2000 }, async () => {
    expect(reference?.exitCode, 'needs run (1)').toBe(0);
    // one point with both in flight if there is one, else one for each
    const both = busy.filter((b) => b.ideDma && b.blk > 0);
    const points = both.length ? [both[Math.floor(both.length / 2)]] : [busy.find((b) => b.ideDma)!, busy.find((b) => b.blk > 0)!];
    for (const [i, point] of points.entries()) {
      const img = folder(`save${i}`);
      const file = join(img.dir, 'vm.snap');
      const first = await vm(['--deterministic', ...driveArgs(img), ...scriptArgs(), '--save-state', file, '--save-at', String(point.at)]);
      expect(first.exitCode, first.message).toBe(0);
      expect(first.message).toMatch(new RegExp(`snapshot saved to '.*vm\\.snap' at instruction ${point.at} `));
      // the proof: the device states in the file
      const pci = await savedPci(file);
      const ide = pci[String(IDE_DEVFN)].extra!.channels![0].devices;
      const blk = Object.values(pci).find((f) => Array.isArray(f.extra?.device?.inflight))!.extra!.device!.inflight!;
      if (point.ideDma) {
        const m = ide[0];
        expect(ideDmaBusy(m) && isWrite(m!.cmd), JSON.stringify(m && { cmd: m.cmd, phase: m.phase, io: m.io })).toBe(true);
      }
      if (point.blk) expect(blk.length).toBeGreaterThan(0);
      const snap = await readSnapshotFile(file);
      const io = ide[0]?.io;
      console.log(
        `saved at instruction ${point.at}: IDE master ${point.ideDma ? `DMA ${io ? `${io.kind} due in ${io.deadline - snap.meta.guestNs} ns` : 'waiting for the bus master'}` : 'idle'}, ` +
          `${blk.length} virtio-blk request(s) in flight (due in ${blk.map((r) => r.dueIn).join(', ')} ns); ${points.length} point(s) of ${busy.length} noted`,
      );
      expect(snap.meta.disks.map((d) => [d.id, d.format, d.overlay])).toEqual([
        ['ide0', 'vhd-dynamic', false],
        ['ide1', 'raw', true],
        ['virtio-blk0', 'vdi-dynamic', false],
        ['ide2', 'iso', false],
      ]);
      // (3): the snapshot alone (no drive options) finishes the session
      const second = await vm(['--restore', file]);
      expect(second.exitCode, second.message).toBe(0);
      expect(first.out.length).toBeGreaterThan(0);
      expect(first.out + second.out).toBe(reference.out);
      expect(readFileSync(img.vhd).equals(readFileSync(refImg.vhd))).toBe(true);
      expect(readFileSync(img.vdi).equals(readFileSync(refImg.vdi))).toBe(true);
      expect(sha(img.raw)).toBe(sha(made.raw));
      expect(sha(img.iso)).toBe(sha(made.iso));
      snapFile = file;
      saveImg = img;
    }
  });

  it('through the CLI: snapshot info lists the drives; a changed or missing image is refused with one line, status 2, nothing touched', { timeout: 300_000 }, async () => {
    expect(snapFile, 'needs (2)').not.toBe('');
    // the restored run went on writing the directly-written images (both or one, depending on the
    // point); one byte of the VHD changed by hand besides: info says which no longer match, and a
    // restore is refused naming the first
    const vhd = readFileSync(saveImg.vhd);
    vhd[vhd.length >> 1] ^= 0xff;
    writeFileSync(saveImg.vhd, vhd);
    const meta = (await readSnapshotFile(snapFile)).meta;
    const stale = meta.disks.filter((d) => sha(d.files[0].path) !== d.files[0].sha256).map((d) => d.id);
    expect(stale[0]).toBe('ide0');
    expect(stale.every((id) => id === 'ide0' || id === 'virtio-blk0')).toBe(true);
    const info = await cli(['snapshot', 'info', snapFile]);
    expect(info.status, info.err).toBe(0);
    expect(info.out).toMatch(/^ {2}ide0 +IDE primary master disk: .*ide\.vhd \(vhd-dynamic, 8\.0 MiB\); written directly/m);
    expect(info.out).toMatch(/^ {2}ide1 +IDE primary slave disk: .*scratch\.raw \(raw, 8\.0 MiB\); writes in the snapshot: overlay [\d.]+ [KM]iB \(\d+ sectors\)$/m);
    expect(info.out).toMatch(/^ {2}virtio-blk0 +virtio-blk disk: .*blk\.vdi \(vdi-dynamic, 8\.0 MiB\); written directly/m);
    expect(info.out).toMatch(/^ {2}ide2 +IDE secondary master cdrom: .*cd\.iso \(iso, [\d.]+ KiB\); read-only$/m);
    for (const [id, name] of [['ide0', 'ide\\.vhd'], ['virtio-blk0', 'blk\\.vdi']]) {
      const state = stale.includes(id) ? ': CHANGED since the snapshot was taken \\(.*\\); it will not restore$' : ': fingerprint ok$';
      expect(info.out).toMatch(new RegExp(`image .*${name} .*${state}`, 'm'));
    }
    expect(info.out).toMatch(/image .*scratch\.raw .*: fingerprint ok$/m);
    expect(info.out).toMatch(/image .*cd\.iso .*: fingerprint ok$/m);
    expect(info.out).toMatch(/^ {2}disk:ide1 /m);
    const files = [snapFile, saveImg.vhd, saveImg.raw, saveImg.vdi, saveImg.iso];
    const before = files.map((f) => ({ bytes: readFileSync(f), mtime: statSync(f).mtimeMs }));
    const changed = await cli(['run', '--restore', snapFile]);
    expect(changed.status).toBe(2);
    expect(changed.out).toBe('');
    // (with the sizes when the restored run grew the image)
    expect(changed.err.startsWith(`x86vm: snapshot '${snapFile}': disk ide0 (${saveImg.vhd}) has changed since the snapshot was taken`)).toBe(true);
    expect(changed.err).toMatch(/ was taken(?: \(\d+ bytes, was \d+\))?\n$/);
    files.forEach((f, i) => {
      expect(readFileSync(f).equals(before[i].bytes)).toBe(true);
      expect(statSync(f).mtimeMs).toBe(before[i].mtime);
    });
    // a missing image: a fresh folder saved early (during boot), its ISO removed
    const img = folder('missing');
    const file = join(img.dir, 'vm.snap');
    const early = await cli(['run', '--deterministic', ...driveArgs(img), '--serial', 'none', '--save-state', file, '--save-at', '3000000']);
    expect(early.status, early.err).toBe(0);
    rmSync(img.iso);
    const missing = await cli(['run', '--restore', file]);
    expect(missing.status).toBe(2);
    expect(missing.err).toBe(`x86vm: snapshot '${file}': disk ide2: its image '${img.iso}' is missing (looked for ${img.iso})\n`);
    expect(existsSync(img.iso)).toBe(false);
  });
});
