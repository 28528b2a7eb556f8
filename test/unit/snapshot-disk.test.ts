/**
 * Snapshots of machines with disks (core/snapshot.ts "disk:ID" sections and meta.disks, node/snapshot.ts
 * fingerprints and restore, node/attach-drives.ts), without Linux: a 64 KiB BIOS-image guest in real
 * mode drives the IDE controller's legacy ports by PIO. It reads sector 1 of the primary master (written
 * directly, a raw file) and of the primary slave (snapshot=on: its writes stay in memory), writes both,
 * spins for a few million instructions, reads them back, writes sector 2 of the master, reads it back and
 * ends through isa-debug-exit, printing a checksum of every sector it read. It prints 'W' right after
 * handing the controller the data of its first write: the write is in flight from there for the
 * controller's latency (about 20 000 guest ns = instructions in deterministic mode).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nasm } from '../helpers/asm';
import {
  captureSnapshot,
  encodeSnapshot,
  parseSnapshot,
  readDiskOverlay,
  sectionJson,
  SnapshotError,
  DISK_CHUNK_SECTORS,
  type DiskRef,
  joinParts,
} from '../../core/snapshot';
import { createPc } from '../../core/pc';
import { MemoryStore } from '../../disk/block';
import { openRaw } from '../../disk/raw';
import { CowOverlay } from '../../disk/overlay';
import { nodeCompressor, formatSnapshotInfo, diskStatuses, readSnapshotFile, snapshotMain, fingerprintFile } from '../../node/snapshot';
import { runVm, type RunResult, type VmControl } from '../../node/run';
import { parseCommandLine, type RunOptions } from '../../node/options';
import { diskMain } from '../../node/disk-cli';
import { createHash } from 'node:crypto';

const zlib = nodeCompressor();
const root = mkdtempSync(join(tmpdir(), 'x86vm-snapdisk-unit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const newDir = (): string => {
  const d = join(root, `d${dirCount++}`);
  mkdirSync(d);
  return d;
};

// ---------------------------------------------------------------------------------------------------
// the format


function refFor(id: string, sectors: number, overlay: boolean): DiskRef {
  return {
    id,
    controller: 'virtio-blk',
    media: 'disk',
    file: `${id}.img`,
    format: 'raw',
    readOnly: false,
    overlay,
    sectors,
    overlaySectors: 0,
    files: [{ path: `/vm/${id}.img`, rel: `${id}.img`, size: sectors * 512, sha256: 'ab'.repeat(32) }],
  };
}

describe('the disk sections of the file format', () => {
  it('an overlay round-trips: spans across chunk boundaries, scattered sectors, exact bytes', async () => {
    const sectors = 20_000;
    const base = openRaw(new MemoryStore('base.img', new Uint8Array(sectors * 512)));
    const ov = new CowOverlay(base);
    // a run of 3000 sectors (crosses a 2048-sector chunk), then scattered single sectors and a half cluster
    const big = new Uint8Array(3000 * 512);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 9)) & 0xff;
    await ov.write(100, big);
    for (const s of [5, 7, 9000, 19_999]) await ov.write(s, new Uint8Array(512).fill(s & 0xff));
    await ov.write(12_001, new Uint8Array(3 * 512).fill(0xee));
    const pc = createPc({ memSize: 2 << 20, deterministic: true });
    const cap = captureSnapshot({ pc, disks: [{ ref: refFor('virtio-blk0', sectors, true), overlay: ov }, { ref: refFor('virtio-blk1', 64, false) }] });
    expect(cap.meta.disks.map((d) => [d.id, d.overlay, d.overlaySectors])).toEqual([
      ['virtio-blk0', true, 3000 + 4 + 3],
      ['virtio-blk1', false, 0],
    ]);
    expect(cap.overlays[0].chunks.map((c) => c.length / 512)).toEqual([DISK_CHUNK_SECTORS, 3007 - DISK_CHUNK_SECTORS]);
    // the capture is a copy: later writes do not reach it
    await ov.write(100, new Uint8Array(512));
    const { parts, size } = await encodeSnapshot(cap, zlib);
    const snap = parseSnapshot(joinParts(parts, size));
    const sec = snap.sections.find((s) => s.name === 'disk:virtio-blk0')!;
    expect(sec.rawLength).toBe(3007 * 512);
    expect(sec.storedLength).toBeLessThan(sec.rawLength / 4);
    expect(snap.sections.some((s) => s.name === 'disk:virtio-blk1')).toBe(false);
    const runs = await readDiskOverlay(snap, 'virtio-blk0', zlib);
    const back = new CowOverlay(openRaw(new MemoryStore('base.img', new Uint8Array(sectors * 512))));
    back.restore(runs);
    expect(back.writtenSpans()).toEqual([
      { sector: 5, count: 1 },
      { sector: 7, count: 1 },
      { sector: 100, count: 3000 },
      { sector: 9000, count: 1 },
      { sector: 12_001, count: 3 },
      { sector: 19_999, count: 1 },
    ]);
    const got = new Uint8Array(3000 * 512);
    await back.read(100, got);
    expect(Buffer.from(got).equals(Buffer.from(big))).toBe(true);
    const one = new Uint8Array(512);
    await back.read(19_999, one);
    expect(one.every((b) => b === (19_999 & 0xff))).toBe(true);
  });

  it('refuses an overlay section that does not match its disk, and a missing one', async () => {
    const base = openRaw(new MemoryStore('b', new Uint8Array(64 * 512)));
    const ov = new CowOverlay(base);
    await ov.write(3, new Uint8Array(1024).fill(1));
    const pc = createPc({ memSize: 2 << 20, deterministic: true });
    const encode = async (mutate: (c: ReturnType<typeof captureSnapshot>) => void): Promise<Uint8Array> => {
      const cap = captureSnapshot({ pc, disks: [{ ref: refFor('virtio-blk0', 64, true), overlay: ov }] });
      mutate(cap);
      const { parts, size } = await encodeSnapshot(cap, zlib);
      return joinParts(parts, size);
    };
    const problem = async (bytes: Uint8Array): Promise<string> => {
      try {
        await readDiskOverlay(parseSnapshot(bytes), 'virtio-blk0', zlib);
        return 'no error';
      } catch (e) {
        expect(e).toBeInstanceOf(SnapshotError);
        return (e as Error).message;
      }
    };
    expect(await problem(await encode(() => {}))).toBe('no error');
    expect(await problem(await encode((c) => (c.meta.disks[0].overlaySectors = 3)))).toBe("section 'disk:virtio-blk0': holds 2 sectors, the disk's description says 3");
    expect(await problem(await encode((c) => (c.overlays[0].spans[0].sector = 63)))).toMatch(/^section 'disk:virtio-blk0': span 0 \(sector 63, 2 sectors\) is out of order or past the disk's end$/);
    expect(await problem(await encode((c) => (c.overlays = [])))).toBe("the 'disk:virtio-blk0' section (the overlay of disk virtio-blk0) is missing");
    expect(await problem(await encode((c) => (c.meta.disks[0].files[0].sha256 = 'xyz')))).toBe("the 'meta' section is inconsistent: disk virtio-blk0: a file's path, size or SHA-256");
    expect(await problem(await encode((c) => (c.meta.disks[0].controller = 'floppy' as 'ide')))).toBe("the 'meta' section is inconsistent: disk virtio-blk0: controller floppy");
  });
});

// ---------------------------------------------------------------------------------------------------
// a guest that uses its IDE disks

const GUEST = nasm(String.raw`
bits 16
org 0
start:
  cli
  xor ax, ax
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov sp, 0x7000
  mov si, s_start
  call puts
  ; the base contents of sector 1 of both disks
  mov bl, 0
  mov cl, 1
  call ide_read
  mov si, s_r0
  call puts
  call sum_print
  mov bl, 1
  mov cl, 1
  call ide_read
  mov si, s_r1
  call puts
  call sum_print
  call newline
  ; write sector 1 of both
  mov bl, 0
  mov cl, 1
  mov ch, 0x11
  call ide_write
  mov bl, 1
  mov cl, 1
  mov ch, 0x22
  call ide_write
  mov si, s_wrote
  call puts
  ; a while for the host to save in
  mov ecx, 2500000
.spin:
  a32 loop .spin
  ; read both back
  mov bl, 0
  mov cl, 1
  call ide_read
  mov si, s_r0
  call puts
  call sum_print
  mov bl, 1
  mov cl, 1
  call ide_read
  mov si, s_r1
  call puts
  call sum_print
  call newline
  ; one more write to the directly-written disk, read back
  mov bl, 0
  mov cl, 2
  mov ch, 0x33
  call ide_write
  mov bl, 0
  mov cl, 2
  call ide_read
  mov si, s_r2
  call puts
  call sum_print
  call newline
  mov si, s_done
  call puts
  mov al, 0x21
  out 0xF4, al
  hlt

; al -> COM1
putc:
  push dx
  mov dx, 0x3F8
  out dx, al
  pop dx
  ret

; cs:si -> COM1 until 0
puts:
  cs lodsb
  test al, al
  jz .end
  call putc
  jmp puts
.end:
  ret

newline:
  mov al, 10
  jmp putc

; waits for BSY clear; al = status
wait_ready:
  mov dx, 0x1F7
.w:
  in al, dx
  test al, 0x80
  jnz .w
  ret

; bl = drive (0 master, 1 slave), cl = LBA: selects and sets up a one-sector command
setup:
  call wait_ready
  mov dx, 0x1F6
  mov al, bl
  shl al, 4
  or al, 0xE0
  out dx, al
  call wait_ready
  mov dx, 0x1F2
  mov al, 1
  out dx, al
  inc dx
  mov al, cl
  out dx, al
  inc dx
  xor al, al
  out dx, al
  inc dx
  out dx, al
  ret

; bl = drive, cl = LBA, ch = pattern seed: WRITE SECTORS from a pattern at 0x8000
ide_write:
  mov di, 0x8000
  mov al, ch
  push cx
  mov cx, 512
.fill:
  stosb
  add al, 3
  loop .fill
  pop cx
  call setup
  mov dx, 0x1F7
  mov al, 0x30
  out dx, al
.drq:
  in al, dx
  test al, 0x80
  jnz .drq
  test al, 0x08
  jz .drq
  mov si, 0x8000
  mov dx, 0x1F0
  push cx
  mov cx, 256
  rep outsw
  pop cx
  ; the controller has the data: the write is in flight now
  mov al, 'W'
  call putc
  call wait_ready
  test al, 0x01
  jnz error
  ret

; bl = drive, cl = LBA: READ SECTORS into 0x9000
ide_read:
  call setup
  mov dx, 0x1F7
  mov al, 0x20
  out dx, al
.drq:
  in al, dx
  test al, 0x80
  jnz .drq
  test al, 0x01
  jnz error
  test al, 0x08
  jz .drq
  mov di, 0x9000
  mov dx, 0x1F0
  mov cx, 256
  rep insw
  ret

; prints a checksum of the 512 bytes at 0x9000 as 4 hex digits
sum_print:
  mov si, 0x9000
  mov cx, 256
  xor bx, bx
.s:
  lodsw
  imul bx, bx, 31
  add bx, ax
  loop .s
  mov cx, 4
.h:
  rol bx, 4
  mov al, bl
  and al, 15
  add al, '0'
  cmp al, '9'
  jbe .d
  add al, 7
.d:
  call putc
  loop .h
  ret

error:
  mov si, s_error
  call puts
  mov al, 0x7F
  out 0xF4, al
  hlt

s_start: db 'start', 10, 0
s_r0: db 'r0=', 0
s_r1: db ' r1=', 0
s_r2: db 'r2=', 0
s_wrote: db ' wrote', 10, 0
s_done: db 'done', 10, 0
s_error: db 'IDE error', 10, 0
times 0xFFF0 - ($ - $$) db 0
  jmp 0xF000:start
times 0x10000 - ($ - $$) db 0
`);

const biosFile = join(root, 'guest.bin');
writeFileSync(biosFile, GUEST);

const SECTORS = 2048; // 1 MiB images

/** a fresh pair of images in `dir`: each sector's bytes depend on the image and the sector */
function makeImages(dir: string): { master: string; slave: string } {
  const mk = (name: string, salt: number): string => {
    const b = new Uint8Array(SECTORS * 512);
    for (let i = 0; i < b.length; i++) b[i] = ((i >> 9) * 31 + i * salt) & 0xff;
    const p = join(dir, name);
    writeFileSync(p, b);
    return p;
  };
  return { master: mk('master.img', 5), slave: mk('slave.img', 11) };
}

function options(args: string[]): RunOptions {
  // a guest that waits for a completion that never comes ends the run (status 124), never the test
  const cmd = parseCommandLine(['run', '--serial', 'stdio', '--vga', 'none', '--timeout', '60', '--max-instructions', '40000000', ...args]);
  if (cmd.command !== 'run') throw new Error('not a run');
  return cmd.options;
}

const driveArgs = (img: { master: string; slave: string }): string[] => [
  '--deterministic',
  '--bios',
  biosFile,
  '--mem',
  '8M',
  '--drive',
  `file=${img.master},if=ide,index=0,format=raw`,
  '--drive',
  `file=${img.slave},if=ide,index=1,snapshot=on`,
];

interface Run {
  r: RunResult;
  out: string;
  /** instruction count when the guest printed its first 'W' */
  firstWrite: number;
  notices: string[];
}

async function run(args: string[], extra: { onReady?: (vm: VmControl) => void; stdout?: (text: string) => void; snapshotDir?: string } = {}): Promise<Run> {
  let out = '';
  let firstWrite = 0;
  const notices: string[] = [];
  const r = await runVm(options(args), {
    snapshotDir: extra.snapshotDir,
    notice: (t) => notices.push(t),
    stdout: (b) => {
      const t = String.fromCharCode(...b);
      out += t;
      extra.stdout?.(t);
    },
    onReady: (vm) => {
      const inner = vm.uart.sink!;
      vm.uart.sink = {
        write(byte: number): void {
          inner.write(byte);
          if (!firstWrite && byte === 0x57) firstWrite = vm.machine.cpu.instructionCount;
        },
      };
      extra.onReady?.(vm);
    },
  });
  return { r, out, firstWrite, notices };
}

const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

interface IdeDev {
  phase: number;
  io: { kind: string; deadline: number; settled: boolean } | null;
}

/** the IDE devices' saved states (PIIX3 IDE at PCI 00:01.1) */
async function savedIde(file: string): Promise<(IdeDev | null)[]> {
  const devices = (await sectionJson(parseSnapshot(new Uint8Array(readFileSync(file))), 'devices', zlib)) as { name: string; state: { functions: Record<string, { extra: { channels: { devices: (IdeDev | null)[] }[] } }> } }[];
  const pci = devices.find((d) => d.name === 'pci')!;
  return pci.state.functions[String((1 << 3) | 1)].extra.channels[0].devices;
}

/** a run's result must be a clean exit through isa-debug-exit (0x21 → status 0x43) */
function finished(x: Run): void {
  expect(x.r.message ?? '', x.out).not.toMatch(/error/);
  expect(x.r.exitCode).toBe(0x43);
  expect(x.out).toMatch(/done\n$/);
}

describe('snapshots of a machine with IDE disks (runVm)', () => {
  // the uninterrupted run, on its own images
  const refDir = newDir();
  const refImg = makeImages(refDir);
  const slaveSha = sha(refImg.slave);
  let reference: Run;

  it('the uninterrupted run: reads the base, writes, reads back; the slave image stays untouched', async () => {
    reference = await run(driveArgs(refImg));
    finished(reference);
    const lines = reference.out.split('\n');
    expect(lines[0]).toBe('start');
    expect(lines[1]).toMatch(/^r0=[0-9A-F]{4} r1=[0-9A-F]{4}$/);
    expect(lines[2]).toBe('WW wrote');
    // what was read back is what was written, not the base
    expect(lines[3]).toMatch(/^r0=[0-9A-F]{4} r1=[0-9A-F]{4}$/);
    expect(lines[3]).not.toBe(lines[1]);
    expect(reference.firstWrite).toBeGreaterThan(1000);
    // the master holds the written pattern, the snapshot=on slave was never written
    const master = readFileSync(refImg.master);
    for (let i = 0; i < 512; i++) expect(master[512 + i]).toBe((0x11 + 3 * i) & 0xff);
    expect(sha(refImg.slave)).toBe(slaveSha);
  });

  let snapFile = '';
  let saveDir = '';
  let firstHalf = '';
  let masterAtSave: Buffer;

  it('saved with a PIO write in flight (proved from the saved IDE state), restored: output and images equal the uninterrupted run', async () => {
    saveDir = newDir();
    const img = makeImages(saveDir);
    snapFile = join(saveDir, 'vm.snap');
    const n = reference.firstWrite + 5000;
    const first = await run([...driveArgs(img), '--save-state', snapFile, '--save-at', String(n)]);
    expect(first.r.exitCode, first.r.message).toBe(0);
    expect(first.r.message).toMatch(new RegExp(`^x86vm: snapshot saved to '.*vm\\.snap' at instruction ${n} `));
    firstHalf = first.out;
    // proof: the master's write is in flight at the save, settled on the host, due later
    const ide = await savedIde(snapFile);
    expect(ide[0]?.io).toMatchObject({ kind: 'write', settled: true });
    expect(ide[0]!.io!.deadline).toBeGreaterThan(n);
    // the snapshot names both drives; the slave's written sector is in its overlay section
    const snap = await readSnapshotFile(snapFile);
    expect(snap.meta.disks.map((d) => [d.id, d.controller, d.index, d.format, d.overlay, d.overlaySectors, d.files.length])).toEqual([
      ['ide0', 'ide', 0, 'raw', false, 0, 1],
      ['ide1', 'ide', 1, 'raw', true, 0, 1],
    ]);
    expect(snap.meta.disks[0].files[0]).toMatchObject({ path: img.master, rel: 'master.img', size: SECTORS * 512, sha256: sha(img.master) });
    expect(snap.meta.disks[1].files[0]).toMatchObject({ path: img.slave, rel: 'slave.img', sha256: slaveSha });
    masterAtSave = readFileSync(img.master);
    // the rest of the run, from the snapshot alone (no drive options)
    const second = await run(['--restore', snapFile]);
    finished(second);
    expect(first.out + second.out).toBe(reference.out);
    expect(readFileSync(img.master).equals(readFileSync(refImg.master))).toBe(true);
    expect(sha(img.slave)).toBe(slaveSha);
  });

  it('the browser host refuses a snapshot with disks with a one-line error (it does not restore disks yet)', async () => {
    expect(snapFile, 'needs the snapshot above').not.toBe('');
    const { restoreMachine } = await import('../../web/snapshots');
    let message = '';
    try {
      await restoreMachine(new Uint8Array(readFileSync(snapFile)), { write() {} });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/disks/);
    expect(message).not.toContain('\n');
  });

  it('saved after the slave was written: its overlay travels in the snapshot; --restore --snapshot twice gives the same run and leaves the images alone', async () => {
    const dir = newDir();
    const img = makeImages(dir);
    const file = join(dir, 'late.snap');
    const n = reference.firstWrite + 400_000; // both writes done, in the spin
    const first = await run([...driveArgs(img), '--save-state', file, '--save-at', String(n)]);
    expect(first.r.exitCode, first.r.message).toBe(0);
    expect(first.out).toMatch(/ wrote\n$/);
    const snap = await readSnapshotFile(file);
    expect(snap.meta.disks[1]).toMatchObject({ id: 'ide1', overlay: true, overlaySectors: 1 });
    const runs = await readDiskOverlay(snap, 'ide1', zlib);
    expect(runs.map((r) => r.sector)).toEqual([1]);
    for (let i = 0; i < 512; i++) expect(runs[0].data[i]).toBe((0x22 + 3 * i) & 0xff);
    const masterBefore = readFileSync(img.master);
    const a = await run(['--restore', file, '--snapshot']);
    const b = await run(['--restore', file, '--snapshot']);
    finished(a);
    expect(first.out + a.out).toBe(reference.out);
    expect(b.out).toBe(a.out);
    expect(readFileSync(img.master).equals(masterBefore)).toBe(true);
    expect(sha(img.slave)).toBe(slaveSha);
  });

  it('a VM folder moved as a whole restores from its new place (images found beside the snapshot)', async () => {
    const dir = newDir();
    const img = makeImages(dir);
    const file = join(dir, 'vm.snap');
    const first = await run([...driveArgs(img), '--save-state', file, '--save-at', String(reference.firstWrite + 5000)]);
    expect(first.r.exitCode).toBe(0);
    const moved = `${dir}-moved`;
    renameSync(dir, moved);
    const info = formatSnapshotInfo(join(moved, 'vm.snap'), await readSnapshotFile(join(moved, 'vm.snap')), await diskStatuses(join(moved, 'vm.snap'), await readSnapshotFile(join(moved, 'vm.snap'))));
    expect(info).toContain(`image ${img.master} (1.0 MiB, sha256 `);
    expect(info).toContain(`fingerprint ok (found at ${join(moved, 'master.img')})`);
    const second = await run(['--restore', join(moved, 'vm.snap')]);
    finished(second);
    expect(first.out + second.out).toBe(reference.out);
    expect(readFileSync(join(moved, 'master.img')).equals(readFileSync(refImg.master))).toBe(true);
  });

  it('bad input: a changed, resized or missing image, drives on the command line: one line naming the snapshot and the drive, status 2, no file touched', async () => {
    const dir = newDir();
    const img = makeImages(dir);
    const file = join(dir, 'vm.snap');
    const first = await run([...driveArgs(img), '--save-state', file, '--save-at', String(reference.firstWrite + 5000)]);
    expect(first.r.exitCode).toBe(0);
    const snapBytes = readFileSync(file);
    const attempt = async (args: string[], why: string): Promise<void> => {
      const before = [file, img.master, img.slave].map((p) => (existsSync(p) ? { bytes: readFileSync(p), mtime: statSync(p).mtimeMs } : null));
      const r = await run(args);
      expect(r.r.exitCode, r.r.message).toBe(2);
      expect(r.out).toBe('');
      expect(r.r.message).toBe(`x86vm: ${why}`);
      expect(r.r.message).not.toContain('\n');
      [file, img.master, img.slave].forEach((p, i) => {
        const b = before[i];
        if (!b) return expect(existsSync(p)).toBe(false);
        expect(readFileSync(p).equals(b.bytes)).toBe(true);
        expect(statSync(p).mtimeMs).toBe(b.mtime);
      });
    };
    // one byte of the directly-written image changed after the save
    const good = readFileSync(img.master);
    const changed = Buffer.from(good);
    changed[600_000] ^= 1;
    writeFileSync(img.master, changed);
    await attempt(['--restore', file], `snapshot '${file}': disk ide0 (${img.master}) has changed since the snapshot was taken`);
    // the snapshot=on drive's base changed
    writeFileSync(img.master, good);
    const slave = readFileSync(img.slave);
    writeFileSync(img.slave, Buffer.concat([slave, Buffer.alloc(512)]));
    await attempt(['--restore', file], `snapshot '${file}': disk ide1 (${img.slave}) has changed since the snapshot was taken (${SECTORS * 512 + 512} bytes, was ${SECTORS * 512})`);
    writeFileSync(img.slave, slave);
    // missing
    renameSync(img.master, `${img.master}.away`);
    await attempt(['--restore', file], `snapshot '${file}': disk ide0: its image '${img.master}' is missing (looked for ${img.master})`);
    renameSync(`${img.master}.away`, img.master);
    // drives given with --restore
    await attempt(['--restore', file, '--hda', img.master], `--hda ${img.master} conflicts with snapshot '${file}', which brings its own disks (leave the drive options out)`);
    expect(readFileSync(file).equals(snapBytes)).toBe(true);
    // all put back: it restores
    const ok = await run(['--restore', file]);
    finished(ok);
    expect(first.out + ok.out).toBe(reference.out);
  });

  it('x86vm snapshot info lists the drives and checks their fingerprints', async () => {
    const dir = newDir();
    const img = makeImages(dir);
    const file = join(dir, 'vm.snap');
    expect((await run([...driveArgs(img), '--save-state', file, '--save-at', String(reference.firstWrite + 400_000)])).r.exitCode).toBe(0);
    const show = async (): Promise<{ status: number; out: string; err: string }> => {
      let out = '';
      let err = '';
      const status = await snapshotMain(['info', file], (t) => (out += t), (t) => (err += t));
      return { status, out, err };
    };
    let r = await show();
    expect(r.status, r.err).toBe(0);
    expect(r.out).toMatch(new RegExp(`^disks:\\n  ide0 +IDE primary master disk: ${img.master.replace(/[.]/g, '\\.')} \\(raw, 1\\.0 MiB\\); written directly \\(the image holds the disk as saved\\)$`, 'm'));
    expect(r.out).toMatch(/^ {2}ide1 +IDE primary slave disk: .*slave\.img \(raw, 1\.0 MiB\); writes in the snapshot: overlay 512 B \(1 sectors\)$/m);
    expect(r.out).toMatch(new RegExp(`^ +image ${img.master.replace(/[.]/g, '\\.')} \\(1\\.0 MiB, sha256 [0-9a-f]{16}…\\): fingerprint ok$`, 'm'));
    expect(r.out).toMatch(/^ {2}disk:ide1 +[\d.]+ B +512 B {2}[0-9a-f]{8} +disk overlay: span table \+ deflated chunks$/m);
    const b = readFileSync(img.master);
    b[7] ^= 0x80;
    writeFileSync(img.master, b);
    renameSync(img.slave, `${img.slave}.x`);
    r = await show();
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/image .*master\.img .*: CHANGED since the snapshot was taken \(.*master\.img\); it will not restore$/m);
    expect(r.out).toMatch(/image .*slave\.img .*: MISSING \(looked for .*slave\.img\); it will not restore$/m);
  });

  it('Ctrl-A S with a directly-written disk: the notice says what the snapshot holds, the guest\'s next write to it is reported, and the snapshot restores only while the disk is unchanged', async () => {
    const dir = newDir();
    const img = makeImages(dir);
    let control: VmControl | null = null;
    let asked = false;
    let atSave = '';
    let out = '';
    const x = await run(driveArgs(img), {
      snapshotDir: dir,
      onReady: (vm) => (control = vm),
      stdout: (t) => {
        out += t;
        // after the first writes (in the spin), as Ctrl-A S does
        if (!asked && out.includes('wrote')) {
          asked = true;
          atSave = out;
          control!.saveSnapshot();
        }
      },
    });
    finished(x);
    expect(x.out).toBe(reference.out);
    expect(x.notices).toHaveLength(2);
    const m = /^x86vm: snapshot saved to (.*\.snap) \(instruction \d+, [\d.]+ MiB\); it holds disk ide0 \((.*)\) as written directly: restorable while the guest leaves it unwritten \(--snapshot keeps disk writes in snapshots\)$/.exec(x.notices[0]);
    expect(m, x.notices[0]).not.toBeNull();
    expect(m![2]).toBe(img.master);
    expect(x.notices[1]).toBe(`x86vm: the guest wrote to disk ide0 (${img.master}): snapshot '${m![1]}' will no longer restore (it holds that disk as it was when saved)`);
    // and indeed: the image changed after the save
    const r = await run(['--restore', m![1]]);
    expect(r.r.exitCode).toBe(2);
    expect(r.r.message).toBe(`x86vm: snapshot '${m![1]}': disk ide0 (${img.master}) has changed since the snapshot was taken`);
    // with the image as it was at the save (sector 2 unwritten), it restores and finishes the run exactly
    const back = readFileSync(img.master);
    const orig = readFileSync(join(makeImages(newDir()).master));
    back.set(orig.subarray(1024, 1536), 1024);
    writeFileSync(img.master, back);
    const again = await run(['--restore', m![1]]);
    finished(again);
    expect(atSave).toMatch(/ wrote\n$/);
    expect(atSave + again.out).toBe(reference.out);
  });

  it('a differencing VHD: its parent is fingerprinted too, and a changed parent is named', async () => {
    const dir = newDir();
    const img = makeImages(dir);
    const child = join(dir, 'child.vhd');
    const io = { out: () => {}, err: (l: string) => { throw new Error(l); } };
    expect(await diskMain(['create', '--parent', img.master, child], io)).toBe(0);
    const file = join(dir, 'vm.snap');
    const args = ['--deterministic', '--bios', biosFile, '--mem', '8M', '--hda', child, '--drive', `file=${img.slave},if=ide,index=1,snapshot=on`];
    const first = await run([...args, '--save-state', file, '--save-at', String(reference.firstWrite + 400_000)]);
    expect(first.r.exitCode, first.r.message).toBe(0);
    const snap = await readSnapshotFile(file);
    expect(snap.meta.disks[0].format).toBe('vhd-differencing');
    expect(snap.meta.disks[0].files.map((f) => f.path)).toEqual([child, img.master]);
    expect(snap.meta.disks[0].files[1]).toMatchObject(await fingerprintFile(img.master));
    const parent = readFileSync(img.master);
    const touched = Buffer.from(parent);
    touched[100_000] ^= 4;
    writeFileSync(img.master, touched);
    const bad = await run(['--restore', file]);
    expect(bad.r.exitCode).toBe(2);
    expect(bad.r.message).toBe(`x86vm: snapshot '${file}': disk ide0 (${child}): its parent image '${img.master}' has changed since the snapshot was taken`);
    writeFileSync(img.master, parent);
    const ok = await run(['--restore', file]);
    finished(ok);
    // the child reads as its parent did, so the guest prints what it printed over the raw master
    expect(first.out + ok.out).toBe(reference.out);
  });
});
