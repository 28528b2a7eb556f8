/**
 * PIIX3 IDE (devices/ide.ts) driven through the I/O ports of a createPc() machine, as a driver would:
 * PCI identity, reset signatures, IDENTIFY words, PIO (LBA28, LBA48, CHS, MULTIPLE, 16- and 32-bit data
 * port), bus master DMA over multi-entry PRD tables, error bits, interrupts, saved state with an operation
 * in flight, and ATAPI packets (INQUIRY, READ(10) in several DRQ blocks and by DMA, READ TOC, media change).
 * Guest time is deterministic and moved by hand; disks are raw images in memory.
 */
import { describe, it, expect } from 'vitest';
import { createPc, type Pc } from '../../core/pc';
import { MemoryStore, DiskError, type BlockDevice } from '../../disk/block';
import { RawImage } from '../../disk/raw';
import { devfn } from '../../devices/pci';
import {
  addIde,
  ATA_SR_BSY,
  ATA_SR_DRDY,
  ATA_SR_DRQ,
  ATA_SR_ERR,
  ATA_SR_DSC,
  ATA_ER_ABRT,
  ATA_ER_IDNF,
  ATA_ER_UNC,
  BM_ST_ACTIVE,
  BM_ST_INTR,
  IO_BASE_NS,
  type IdeController,
} from '../../devices/ide';

const DF = devfn(1, 1);
const BM = 0xc000;
const P = { base: 0x1f0, ctl: 0x3f6, irq: 14, bm: BM };
const S = { base: 0x170, ctl: 0x376, irq: 15, bm: BM + 8 };
type Ch = typeof P;

/** the byte at offset i of sector s of the test disks */
const pat = (s: number, i: number): number => (s * 31 + i * 7 + (s >>> 8)) & 0xff;

/** a disk in memory of `sectors` sectors, each filled with pat() unless written */
class PatternDisk implements BlockDevice {
  readonly format = 'raw';
  readonly name: string;
  readonly sectors: number;
  readOnly = false;
  readonly written = new Map<number, Uint8Array>();
  flushes = 0;
  fail: string | null = null;
  constructor(sectors: number, name = 'pattern.raw') {
    this.sectors = sectors;
    this.name = name;
  }
  async read(sector: number, buf: Uint8Array): Promise<void> {
    if (this.fail) throw new DiskError(this.name, this.fail);
    for (let k = 0; k < buf.length / 512; k++) {
      const w = this.written.get(sector + k);
      if (w) buf.set(w, k * 512);
      else for (let i = 0; i < 512; i++) buf[k * 512 + i] = pat(sector + k, i);
    }
  }
  async write(sector: number, data: Uint8Array): Promise<void> {
    if (this.fail) throw new DiskError(this.name, this.fail);
    for (let k = 0; k < data.length / 512; k++) this.written.set(sector + k, data.slice(k * 512, (k + 1) * 512));
  }
  async flush(): Promise<void> {
    this.flushes++;
  }
  async close(): Promise<void> {}
  sector(s: number): Uint8Array {
    const out = new Uint8Array(512);
    const w = this.written.get(s);
    if (w) out.set(w);
    else for (let i = 0; i < 512; i++) out[i] = pat(s, i);
    return out;
  }
}

/** an ISO-like CD image: 2048-byte block b filled with (b * 3) & 0xff, then its number in the first 4 bytes */
function cdImage(blocks: number, name = 'cd.iso'): RawImage {
  const bytes = new Uint8Array(blocks * 2048);
  for (let b = 0; b < blocks; b++) {
    bytes.fill((b * 3) & 0xff, b * 2048, (b + 1) * 2048);
    bytes[b * 2048] = b & 0xff;
    bytes[b * 2048 + 1] = b >> 8;
  }
  return new RawImage(new MemoryStore(name, bytes, true), true);
}

interface Rig {
  pc: Pc;
  ide: IdeController;
  warnings: string[];
  in8(p: number): number;
  out8(p: number, v: number): void;
}

function rig(setup: (ide: IdeController) => void, busMaster = true): Rig {
  const warnings: string[] = [];
  let ide!: IdeController;
  const pc = createPc({
    memSize: 16 * 1024 * 1024,
    deterministic: true,
    devices: [
      (p) => {
        ide = addIde(p, { onWarning: (m) => warnings.push(m) });
        setup(ide);
      },
    ],
  });
  const bus = pc.pci!.bus;
  bus.configWrite(DF, 0x20, BM | 1, 4);
  bus.configWrite(DF, 0x04, busMaster ? 0x0005 : 0x0001, 2);
  return { pc, ide, warnings, in8: (p) => pc.io.in8(p), out8: (p, v) => pc.io.out8(p, v) };
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

/** lets host I/O settle and guest time pass */
async function advance(pc: Pc, ns = 10 * IO_BASE_NS): Promise<void> {
  await tick();
  pc.clock.advance(ns);
  pc.clock.runDue();
  await tick();
}

const irq = (r: Rig, ch: Ch): boolean => r.pc.irq.level(ch.irq);

function taskfile(r: Rig, ch: Ch, f: { dev?: number; lba?: number; count?: number; feature?: number; lba48?: boolean; chs?: boolean }): void {
  const lba = f.lba ?? 0;
  const count = f.count ?? 1;
  const devBit = (f.dev ?? 0) << 4;
  if (f.lba48) {
    r.out8(ch.base + 6, 0x40 | devBit);
    r.out8(ch.base + 1, 0);
    r.out8(ch.base + 2, (count >> 8) & 0xff);
    r.out8(ch.base + 3, Math.floor(lba / 0x1000000) & 0xff);
    r.out8(ch.base + 4, Math.floor(lba / 0x100000000) & 0xff);
    r.out8(ch.base + 5, Math.floor(lba / 0x10000000000) & 0xff);
    r.out8(ch.base + 1, f.feature ?? 0);
    r.out8(ch.base + 2, count & 0xff);
    r.out8(ch.base + 3, lba & 0xff);
    r.out8(ch.base + 4, (lba >>> 8) & 0xff);
    r.out8(ch.base + 5, (lba >>> 16) & 0xff);
  } else {
    r.out8(ch.base + 6, (f.chs ? 0xa0 : 0xe0) | devBit | (f.chs ? 0 : (lba >>> 24) & 0x0f));
    r.out8(ch.base + 1, f.feature ?? 0);
    r.out8(ch.base + 2, count & 0xff);
    r.out8(ch.base + 3, lba & 0xff);
    r.out8(ch.base + 4, (lba >>> 8) & 0xff);
    r.out8(ch.base + 5, (lba >>> 16) & 0xff);
  }
}

/** reads n bytes from the data port with 16-bit (or 32-bit) accesses */
function pioIn(r: Rig, ch: Ch, n: number, wide = false): Uint8Array {
  const out = new Uint8Array(n);
  if (wide) {
    for (let i = 0; i < n; i += 4) {
      const v = r.pc.io.in32(ch.base);
      out[i] = v & 0xff;
      out[i + 1] = (v >>> 8) & 0xff;
      out[i + 2] = (v >>> 16) & 0xff;
      out[i + 3] = (v >>> 24) & 0xff;
    }
  } else {
    for (let i = 0; i < n; i += 2) {
      const v = r.pc.io.in16(ch.base);
      out[i] = v & 0xff;
      if (i + 1 < n) out[i + 1] = v >> 8;
    }
  }
  return out;
}

function pioOut(r: Rig, ch: Ch, data: Uint8Array): void {
  for (let i = 0; i < data.length; i += 2) r.pc.io.out16(ch.base, data[i] | (data[i + 1] << 8));
}

function identifyWords(r: Rig, ch: Ch, cmd = 0xec): Uint16Array {
  r.out8(ch.base + 7, cmd);
  const st = r.in8(ch.base + 7);
  expect(st & (ATA_SR_DRQ | ATA_SR_ERR)).toBe(ATA_SR_DRQ);
  const b = pioIn(r, ch, 512);
  return new Uint16Array(b.buffer);
}

function identString(w: Uint16Array, from: number, words: number): string {
  let s = '';
  for (let i = 0; i < words; i++) s += String.fromCharCode(w[from + i] >> 8, w[from + i] & 0xff);
  return s.trimEnd();
}

function softReset(r: Rig, ch: Ch): void {
  r.out8(ch.ctl, 0x04);
  r.out8(ch.ctl, 0x00);
}

describe('PIIX3 IDE: PCI function and reset', () => {
  it('is 8086:7010 class 01/01/80 at 00:01.1 with a 16-byte I/O BAR4 and both channels enabled', () => {
    const r = rig(() => {});
    const bus = r.pc.pci!.bus;
    expect(bus.configRead(DF, 0, 4)).toBe(0x70108086);
    expect(bus.configRead(DF, 0x08, 4) >>> 8).toBe(0x010180);
    expect(bus.configRead(DF, 0x10, 4)).toBe(0); // BAR0-3 unused in legacy mode
    expect(bus.configRead(DF, 0x3d, 1)).toBe(0); // no INTx pin: legacy IRQ 14/15
    expect(bus.configRead(DF, 0x40, 2) & 0x8000).toBe(0x8000);
    expect(bus.configRead(DF, 0x42, 2) & 0x8000).toBe(0x8000);
    bus.configWrite(DF, 0x20, 0xffffffff, 4);
    expect(bus.configRead(DF, 0x20, 4)).toBe(0xfffffff1);
    bus.configWrite(DF, 0x20, BM | 1, 4);
    expect(r.pc.io.ownerOf(BM)).toMatch(/piix3-ide BAR4/);
    expect(r.pc.io.ownerOf(0x1f7)).toBe('ide0');
    expect(r.pc.io.ownerOf(0x3f6)).toBe('ide0 control');
    expect(r.pc.io.ownerOf(0x177)).toBe('ide1');
  });

  it('shows the disk and ATAPI signatures after SRST, 0 status for a missing slave, a floating empty channel', () => {
    const r = rig((ide) => {
      ide.attach(0, 0, { kind: 'disk', dev: new PatternDisk(1000) });
      ide.attach(1, 1, { kind: 'cdrom', dev: null });
    });
    softReset(r, P);
    expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC);
    expect([1, 2, 3, 4, 5].map((i) => r.in8(P.base + i))).toEqual([0x01, 0x01, 0x01, 0x00, 0x00]);
    // the slave is missing: its status reads 0 while it is selected; the registers still latch
    r.out8(P.base + 6, 0xb0);
    expect(r.in8(P.base + 7)).toBe(0);
    expect(r.in8(P.ctl)).toBe(0);
    r.out8(P.base + 2, 0x55);
    r.out8(P.base + 3, 0xaa);
    expect([r.in8(P.base + 2), r.in8(P.base + 3)]).toEqual([0x55, 0xaa]);
    softReset(r, P);
    r.out8(P.base + 6, 0xb0);
    expect([r.in8(P.base + 4), r.in8(P.base + 5)]).toEqual([0xff, 0xff]); // no signature: not ATA, not ATAPI
    // a command to the missing slave does nothing
    r.out8(P.base + 7, 0xec);
    expect(r.in8(P.base + 7)).toBe(0);
    expect(irq(r, P)).toBe(false);
    // the ATAPI slave on the secondary channel
    softReset(r, S);
    r.out8(S.base + 6, 0xb0);
    expect([1, 2, 3, 4, 5].map((i) => r.in8(S.base + i))).toEqual([0x01, 0x01, 0x01, 0x14, 0xeb]);
    expect(r.in8(S.base + 7) & ATA_SR_BSY).toBe(0);
    // during SRST the devices are busy
    r.out8(P.base + 6, 0xa0);
    r.out8(P.ctl, 0x04);
    expect(r.in8(P.ctl)).toBe(ATA_SR_BSY);
    r.out8(P.ctl, 0x00);
    // EXECUTE DEVICE DIAGNOSTIC: device 0 reports (error 01h: passed) and interrupts; signatures return
    r.out8(P.base + 6, 0xa0);
    r.out8(P.base + 4, 0x12);
    r.out8(P.base + 7, 0x90);
    expect(irq(r, P)).toBe(true);
    expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC);
    expect([1, 2, 3, 4, 5].map((i) => r.in8(P.base + i))).toEqual([0x01, 0x01, 0x01, 0x00, 0x00]);
    // DEVICE RESET of the ATAPI device: its signature, no interrupt
    r.out8(S.base + 6, 0xb0);
    r.out8(S.base + 4, 0x00);
    r.out8(S.base + 7, 0x08);
    expect(irq(r, S)).toBe(false);
    expect([r.in8(S.base + 4), r.in8(S.base + 5)]).toEqual([0x14, 0xeb]);
    expect(r.in8(S.base + 7) & ATA_SR_BSY).toBe(0);
    // an empty channel floats
    const e = rig((ide) => ide.attach(0, 0, { kind: 'disk', dev: new PatternDisk(100) }));
    expect(e.in8(S.base + 7)).toBe(0xff);
    expect(e.in8(S.base + 2)).toBe(0xff);
  });
});

describe('PIIX3 IDE: ATA disk', () => {
  it('returns correct IDENTIFY DEVICE words', () => {
    const sectors = 300000; // 297 cylinders of 16 x 63 (+ a remainder)
    const r = rig((ide) => ide.attach(0, 0, { kind: 'disk', dev: new PatternDisk(sectors) }));
    r.out8(P.base + 6, 0xa0);
    const w = identifyWords(r, P);
    expect(irq(r, P)).toBe(false); // the status read acknowledged it
    expect(w[0]).toBe(0x0040);
    expect([w[1], w[3], w[6]]).toEqual([Math.floor(sectors / (16 * 63)), 16, 63]);
    expect([w[54], w[55], w[56]]).toEqual([297, 16, 63]);
    expect(w[57] | (w[58] << 16)).toBe(297 * 16 * 63);
    expect(w[60] | (w[61] << 16)).toBe(sectors);
    expect(w[100] + w[101] * 0x10000 + w[102] * 0x100000000).toBe(sectors);
    expect(w[103]).toBe(0);
    expect(identString(w, 27, 20)).toBe('x86vm HARDDISK');
    expect(identString(w, 23, 4)).toBe('1.0');
    expect(identString(w, 10, 10)).toMatch(/^X86VM/);
    expect(w[47]).toBe(0x8010); // READ/WRITE MULTIPLE up to 16 sectors
    expect(w[49] & 0x0300).toBe(0x0300); // LBA and DMA
    expect(w[53] & 0x0006).toBe(0x0006);
    expect(w[63] & 0x07).toBe(0x07); // MWDMA 0-2
    expect(w[64] & 0x03).toBe(0x03); // PIO 3-4
    expect(w[88] & 0x3f).toBe(0x3f);
    expect(w[80] & 0x0040).toBe(0x0040); // ATA-6
    expect(w[83] & 0xc000).toBe(0x4000);
    expect(w[83] & 0x0400).toBe(0x0400); // LBA48
    expect(w[83] & 0x3000).toBe(0x3000); // FLUSH CACHE (EXT)
    expect(w[86] & 0x0400).toBe(0x0400);
    expect(w[85] & 0x0020).toBe(0x0020); // write cache enabled
    // integrity word: signature A5h and a checksum making the byte sum 0
    const bytes = new Uint8Array(w.buffer);
    expect(w[255] & 0xff).toBe(0xa5);
    expect(bytes.reduce((a, b) => a + b, 0) & 0xff).toBe(0);
    // SET FEATURES: transfer mode MWDMA2, write cache off; SET MULTIPLE 8
    taskfile(r, P, { feature: 0x03, count: 0x22 });
    r.out8(P.base + 7, 0xef);
    expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC);
    taskfile(r, P, { feature: 0x82 });
    r.out8(P.base + 7, 0xef);
    taskfile(r, P, { count: 8 });
    r.out8(P.base + 7, 0xc6);
    expect(r.in8(P.base + 7) & ATA_SR_ERR).toBe(0);
    const w2 = identifyWords(r, P);
    expect(w2[63] >> 8).toBe(0x04);
    expect(w2[88] >> 8).toBe(0);
    expect(w2[59]).toBe(0x0108);
    expect(w2[85] & 0x0020).toBe(0);
    // bad values are aborted
    taskfile(r, P, { feature: 0x03, count: 0x23 });
    r.out8(P.base + 7, 0xef);
    expect(r.in8(P.base + 7) & ATA_SR_ERR).toBe(ATA_SR_ERR);
    expect(r.in8(P.base + 1)).toBe(ATA_ER_ABRT);
    taskfile(r, P, { count: 3 });
    r.out8(P.base + 7, 0xc6);
    expect(r.in8(P.base + 1)).toBe(ATA_ER_ABRT);
    // an unknown command and IDENTIFY PACKET DEVICE: ABRT
    for (const c of [0x00, 0xa1, 0xb0]) {
      r.out8(P.base + 7, c);
      expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_ERR);
      expect(r.in8(P.base + 1)).toBe(ATA_ER_ABRT);
    }
  });

  it('reads sectors by PIO (LBA28) one DRQ block at a time, an interrupt per block, later than the command', async () => {
    const disk = new PatternDisk(2000);
    const r = rig((ide) => ide.attach(0, 0, { kind: 'disk', dev: disk }));
    taskfile(r, P, { lba: 1234, count: 3 });
    r.out8(P.base + 7, 0x20);
    expect(r.in8(P.ctl) & ATA_SR_BSY).toBe(ATA_SR_BSY);
    expect(irq(r, P)).toBe(false);
    await advance(r.pc, IO_BASE_NS / 2);
    expect(irq(r, P)).toBe(false); // not yet: the latency is tens of µs
    await advance(r.pc);
    for (let k = 0; k < 3; k++) {
      expect(irq(r, P)).toBe(true);
      expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_DRQ);
      expect(irq(r, P)).toBe(false);
      const data = pioIn(r, P, 512, k === 1); // the middle sector through 32-bit reads
      expect(data).toEqual(disk.sector(1234 + k));
    }
    expect(irq(r, P)).toBe(false); // no interrupt after the last block of a PIO read
    expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC);
    // the task file holds the last sector's address
    expect(r.in8(P.base + 3) | (r.in8(P.base + 4) << 8) | (r.in8(P.base + 5) << 16)).toBe(1236);
  });

  it('writes sectors by PIO with LBA48 past 2^28 and reads them back; sector count 0 means 65536 with EXT', async () => {
    const big = 0x10000000 + 100000; // larger than LBA28 can address
    const disk = new PatternDisk(big);
    const r = rig((ide) => ide.attach(0, 1, { kind: 'disk', dev: disk }));
    const lba = 0x10000000 + 5;
    const data = new Uint8Array(2 * 512).map((_, i) => (i * 5 + 3) & 0xff);
    taskfile(r, P, { dev: 1, lba, count: 2, lba48: true });
    r.out8(P.base + 7, 0x34); // WRITE SECTORS EXT
    expect(r.in8(P.ctl)).toBe(ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_DRQ); // first block: no interrupt
    expect(irq(r, P)).toBe(false);
    pioOut(r, P, data.subarray(0, 512));
    expect(irq(r, P)).toBe(true); // ready for the second block
    expect(r.in8(P.base + 7) & ATA_SR_DRQ).toBe(ATA_SR_DRQ);
    pioOut(r, P, data.subarray(512));
    expect(r.in8(P.ctl) & ATA_SR_BSY).toBe(ATA_SR_BSY);
    await advance(r.pc);
    expect(irq(r, P)).toBe(true);
    expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC);
    expect(disk.sector(lba)).toEqual(data.subarray(0, 512));
    expect(disk.sector(lba + 1)).toEqual(data.subarray(512));
    // the high-order bytes read back with HOB
    r.out8(P.ctl, 0x80);
    expect(r.in8(P.base + 3)).toBe(0x10);
    r.out8(P.ctl, 0x00);
    // READ SECTORS EXT back
    taskfile(r, P, { dev: 1, lba, count: 2, lba48: true });
    r.out8(P.base + 7, 0x24);
    await advance(r.pc);
    r.in8(P.base + 7);
    expect(pioIn(r, P, 512)).toEqual(data.subarray(0, 512));
    r.in8(P.base + 7);
    expect(pioIn(r, P, 512)).toEqual(data.subarray(512));
    // LBA28 cannot reach it
    taskfile(r, P, { dev: 1, lba: 0x0fffffff, count: 2 });
    r.out8(P.base + 7, 0x20);
    expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_ERR);
    expect(r.in8(P.base + 1)).toBe(ATA_ER_IDNF);
    // count 0 = 65536 sectors with READ VERIFY EXT: ends at lba + 65535
    taskfile(r, P, { dev: 1, lba: 1000, count: 0, lba48: true });
    r.out8(P.base + 7, 0x42);
    expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC);
    expect(r.in8(P.base + 3) | (r.in8(P.base + 4) << 8) | (r.in8(P.base + 5) << 16)).toBe(1000 + 65535);
    // READ NATIVE MAX ADDRESS EXT
    r.out8(P.base + 6, 0x50);
    r.out8(P.base + 7, 0x27);
    r.in8(P.base + 7);
    const lo = r.in8(P.base + 3) | (r.in8(P.base + 4) << 8) | (r.in8(P.base + 5) << 16);
    r.out8(P.ctl, 0x80);
    const hi = r.in8(P.base + 3) | (r.in8(P.base + 4) << 8) | (r.in8(P.base + 5) << 16);
    r.out8(P.ctl, 0x00);
    expect(hi * 0x1000000 + lo).toBe(big - 1);
  });

  it('uses the READ/WRITE MULTIPLE block size, CHS addressing after INITIALIZE DEVICE PARAMETERS, and flushes', async () => {
    const disk = new PatternDisk(5000);
    const r = rig((ide) => ide.attach(0, 0, { kind: 'disk', dev: disk }));
    r.out8(P.base + 6, 0xe0);
    expect(identifyWords(r, P)[59]).toBe(0x0110); // multiple mode on at power-on, 16 sectors
    taskfile(r, P, { count: 0 });
    r.out8(P.base + 7, 0xc6); // SET MULTIPLE MODE 0: off
    expect(identifyWords(r, P)[59]).toBe(0);
    r.out8(P.base + 7, 0xc4); // READ MULTIPLE with multiple mode off: aborted
    expect(r.in8(P.base + 1)).toBe(ATA_ER_ABRT);
    taskfile(r, P, { count: 4 });
    r.out8(P.base + 7, 0xc6);
    r.in8(P.base + 7);
    taskfile(r, P, { lba: 100, count: 10 });
    r.out8(P.base + 7, 0xc4);
    await advance(r.pc);
    const blocks: number[] = [];
    let got = new Uint8Array(0);
    while (r.in8(P.ctl) & ATA_SR_DRQ) {
      expect(irq(r, P)).toBe(true);
      r.in8(P.base + 7);
      // read until DRQ drops or this block ends (an interrupt announces the next)
      let n = 0;
      while (!irq(r, P) && r.in8(P.ctl) & ATA_SR_DRQ) {
        const more = pioIn(r, P, 512);
        const next = new Uint8Array(got.length + 512);
        next.set(got);
        next.set(more, got.length);
        got = next;
        n++;
      }
      blocks.push(n);
    }
    expect(blocks).toEqual([4, 4, 2]);
    for (let k = 0; k < 10; k++) expect(got.subarray(k * 512, (k + 1) * 512)).toEqual(disk.sector(100 + k));
    // CHS: 4 heads, 17 sectors per track; C/H/S = 2/3/5 is LBA (2*4+3)*17 + 4 = 191
    taskfile(r, P, { count: 17 });
    r.out8(P.base + 6, 0xa3); // head field = heads - 1
    r.out8(P.base + 7, 0x91);
    expect(r.in8(P.base + 7) & ATA_SR_ERR).toBe(0);
    r.out8(P.base + 6, 0xa3);
    r.out8(P.base + 2, 1);
    r.out8(P.base + 3, 5);
    r.out8(P.base + 4, 2);
    r.out8(P.base + 5, 0);
    r.out8(P.base + 7, 0x20);
    await advance(r.pc);
    r.in8(P.base + 7);
    expect(pioIn(r, P, 512)).toEqual(disk.sector(191));
    // an invalid CHS address (sector 0): IDNF
    r.out8(P.base + 3, 0);
    r.out8(P.base + 7, 0x20);
    expect(r.in8(P.base + 1)).toBe(ATA_ER_IDNF);
    // IDENTIFY shows the current geometry
    const w = identifyWords(r, P);
    expect([w[55], w[56], w[54]]).toEqual([4, 17, Math.floor(5000 / 68)]);
    // FLUSH CACHE reaches the BlockDevice and interrupts when it is done
    r.out8(P.base + 7, 0xe7);
    expect(r.in8(P.ctl) & ATA_SR_BSY).toBe(ATA_SR_BSY);
    await advance(r.pc);
    expect(disk.flushes).toBe(1);
    expect(irq(r, P)).toBe(true);
    expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC);
  });

  it('reports out-of-range LBAs (IDNF), host read errors (UNC + warning) and write errors (ABRT)', async () => {
    const disk = new PatternDisk(100);
    const r = rig((ide) => ide.attach(0, 0, { kind: 'disk', dev: disk }));
    taskfile(r, P, { lba: 99, count: 2 });
    r.out8(P.base + 7, 0x20);
    expect(irq(r, P)).toBe(true);
    expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_ERR);
    expect(r.in8(P.base + 1)).toBe(ATA_ER_IDNF);
    taskfile(r, P, { lba: 100, count: 1 });
    r.out8(P.base + 7, 0xc8);
    expect(r.in8(P.base + 1)).toBe(ATA_ER_IDNF);
    disk.fail = 'I/O error on the host file';
    taskfile(r, P, { lba: 10, count: 1 });
    r.out8(P.base + 7, 0x20);
    await advance(r.pc);
    expect(irq(r, P)).toBe(true);
    expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_ERR);
    expect(r.in8(P.base + 1)).toBe(ATA_ER_UNC);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(/pattern\.raw.*read of 1 sectors at 10 failed.*I\/O error on the host file/);
    taskfile(r, P, { lba: 10, count: 1 });
    r.out8(P.base + 7, 0x30);
    pioOut(r, P, new Uint8Array(512));
    await advance(r.pc);
    expect(r.in8(P.base + 7) & ATA_SR_ERR).toBe(ATA_SR_ERR);
    expect(r.in8(P.base + 1)).toBe(ATA_ER_ABRT);
    expect(r.warnings).toHaveLength(2);
    // a read-only disk refuses writes
    disk.fail = null;
    disk.readOnly = true;
    taskfile(r, P, { lba: 10, count: 1 });
    r.out8(P.base + 7, 0x30);
    expect(r.in8(P.base + 7) & (ATA_SR_ERR | ATA_SR_DRQ)).toBe(ATA_SR_ERR);
  });

  it('masks the interrupt with nIEN and shows it again when nIEN clears', () => {
    const r = rig((ide) => ide.attach(0, 0, { kind: 'disk', dev: new PatternDisk(100) }));
    r.out8(P.ctl, 0x02);
    r.out8(P.base + 6, 0xa0);
    r.out8(P.base + 7, 0xec);
    expect(irq(r, P)).toBe(false);
    expect(r.in8(P.ctl) & ATA_SR_DRQ).toBe(ATA_SR_DRQ);
    r.out8(P.ctl, 0x00);
    expect(irq(r, P)).toBe(true);
    expect(r.in8(P.ctl) & ATA_SR_DRQ).toBe(ATA_SR_DRQ); // the alternate status does not acknowledge
    expect(irq(r, P)).toBe(true);
    r.in8(P.base + 7);
    expect(irq(r, P)).toBe(false);
  });
});

describe('PIIX3 IDE: bus master DMA', () => {
  const PRD = 0x10000;
  function prd(r: Rig, entries: [number, number, boolean][]): void {
    entries.forEach(([addr, len, eot], i) => {
      r.pc.mem.write32(PRD + 8 * i, addr);
      r.pc.mem.write32(PRD + 8 * i + 4, (len & 0xffff) | (eot ? 0x80000000 : 0));
    });
  }

  it('reads by DMA into a PRD table of several entries (one crossing a page), then interrupts', async () => {
    const disk = new PatternDisk(1000);
    const r = rig((ide) => ide.attach(0, 0, { kind: 'disk', dev: disk }));
    prd(r, [
      [0x20000, 512, false],
      [0x30f00, 1024, false], // crosses 0x31000
      [0x40000, 512, true],
    ]);
    r.pc.io.out32(BM + 4, PRD);
    r.out8(BM, 0x08); // device to memory, not started
    taskfile(r, P, { lba: 40, count: 4 });
    r.out8(P.base + 7, 0xc8); // READ DMA
    r.out8(BM, 0x09); // start
    expect(r.in8(BM + 2) & BM_ST_ACTIVE).toBe(BM_ST_ACTIVE);
    expect(irq(r, P)).toBe(false);
    await advance(r.pc);
    expect(irq(r, P)).toBe(true);
    const bmst = r.in8(BM + 2);
    expect(bmst & BM_ST_INTR).toBe(BM_ST_INTR);
    expect(bmst & BM_ST_ACTIVE).toBe(0); // the table ended exactly with the data
    r.out8(BM, 0x08); // stop
    expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC);
    r.out8(BM + 2, BM_ST_INTR); // write 1 to clear
    expect(r.in8(BM + 2) & BM_ST_INTR).toBe(0);
    const m = r.pc.mem.mem8;
    expect(m.subarray(0x20000, 0x20200)).toEqual(disk.sector(40));
    expect(m.subarray(0x30f00, 0x31100)).toEqual(disk.sector(41));
    expect(m.subarray(0x31100, 0x31300)).toEqual(disk.sector(42));
    expect(m.subarray(0x40000, 0x40200)).toEqual(disk.sector(43));
    expect(m[0x40200]).toBe(0);
  });

  it('writes by DMA (bus master started before the command) with LBA48, and leaves Active set when the table is longer', async () => {
    const disk = new PatternDisk(1000);
    const r = rig((ide) => ide.attach(0, 0, { kind: 'disk', dev: disk }));
    for (let i = 0; i < 1536; i++) r.pc.mem.mem8[0x50000 + i] = (i * 11) & 0xff;
    prd(r, [
      [0x50000, 1024, false],
      [0x50400, 0x2000, true], // longer than what is left (512)
    ]);
    r.pc.io.out32(BM + 4, PRD);
    r.out8(BM, 0x01); // memory to device, started first
    taskfile(r, P, { lba: 500, count: 3, lba48: true });
    r.out8(P.base + 7, 0x35); // WRITE DMA EXT
    expect(r.in8(P.ctl) & ATA_SR_BSY).toBe(ATA_SR_BSY); // data collected, host write under way
    await advance(r.pc);
    expect(irq(r, P)).toBe(true);
    expect(r.in8(BM + 2) & (BM_ST_INTR | BM_ST_ACTIVE)).toBe(BM_ST_INTR | BM_ST_ACTIVE);
    r.out8(BM, 0x00);
    expect(r.in8(BM + 2) & BM_ST_ACTIVE).toBe(0);
    expect(r.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC);
    for (let k = 0; k < 3; k++) expect(disk.sector(500 + k)).toEqual(r.pc.mem.mem8.slice(0x50000 + k * 512, 0x50000 + (k + 1) * 512));
  });

  it('waits for bus mastering, and ends with an error when the PRD table is too short', async () => {
    const disk = new PatternDisk(100);
    const r = rig((ide) => ide.attach(0, 0, { kind: 'disk', dev: disk }), false);
    prd(r, [[0x20000, 512, true]]);
    r.pc.io.out32(BM + 4, PRD);
    taskfile(r, P, { lba: 1, count: 1 });
    r.out8(P.base + 7, 0xc8);
    r.out8(BM, 0x09);
    await advance(r.pc);
    expect(irq(r, P)).toBe(false); // bus master disabled in PCI command: nothing moves
    expect(r.pc.mem.mem8[0x20000]).toBe(0);
    r.pc.pci!.bus.configWrite(DF, 0x04, 0x0005, 2);
    r.out8(BM, 0x08);
    r.out8(BM, 0x09); // restart
    expect(irq(r, P)).toBe(true);
    expect(r.pc.mem.mem8.subarray(0x20000, 0x20200)).toEqual(disk.sector(1));
    r.in8(P.base + 7);
    r.out8(BM, 0x08);
    r.out8(BM + 2, 0x06);
    // two sectors into one 512-byte entry
    taskfile(r, P, { lba: 2, count: 2 });
    r.out8(P.base + 7, 0xc8);
    r.out8(BM, 0x09);
    await advance(r.pc);
    expect(irq(r, P)).toBe(true);
    expect(r.in8(P.base + 7) & ATA_SR_ERR).toBe(ATA_SR_ERR);
    expect(r.in8(BM + 2) & BM_ST_ACTIVE).toBe(0);
  });
});

describe('PIIX3 IDE: saved state', () => {
  it('continues a PIO read and an in-flight DMA read in another machine from saved state', async () => {
    const disk = new PatternDisk(500);
    const a = rig((ide) => ide.attach(0, 0, { kind: 'disk', dev: disk }));
    taskfile(a, P, { lba: 20, count: 3 });
    a.out8(P.base + 7, 0x20);
    await advance(a.pc);
    a.in8(P.base + 7);
    expect(pioIn(a, P, 512)).toEqual(disk.sector(20));
    await a.pc.machine.quiesce();
    const saved = JSON.parse(JSON.stringify(a.ide.saveState()));
    const b = rig((ide) => ide.attach(0, 0, { kind: 'disk', dev: disk }));
    b.ide.loadState(saved);
    expect(irq(b, P)).toBe(true); // the second block's interrupt is pending
    expect(b.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_DRQ);
    expect(pioIn(b, P, 512)).toEqual(disk.sector(21));
    b.in8(P.base + 7);
    expect(pioIn(b, P, 512)).toEqual(disk.sector(22));
    expect(b.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC);

    // a DMA read saved while the host data is in but the guest deadline has not come
    a.in8(P.base + 7);
    pioIn(a, P, 1024);
    expect(a.in8(P.base + 7)).toBe(ATA_SR_DRDY | ATA_SR_DSC);
    a.pc.mem.write32(0x10000, 0x20000);
    a.pc.mem.write32(0x10004, 0x80000000 | 1024);
    a.pc.io.out32(BM + 4, 0x10000);
    taskfile(a, P, { lba: 300, count: 2 });
    a.out8(P.base + 7, 0xc8);
    a.out8(BM, 0x09);
    await a.pc.machine.quiesce();
    const mid = JSON.parse(JSON.stringify(a.ide.saveState()));
    const c = rig((ide) => ide.attach(0, 0, { kind: 'disk', dev: disk }));
    c.pc.mem.mem8.set(a.pc.mem.mem8.subarray(0x10000, 0x10008), 0x10000);
    c.pc.clock.advance(a.pc.clock.now() - c.pc.clock.now()); // a restored machine has the saved guest time
    c.ide.loadState(mid);
    expect(c.in8(P.ctl) & ATA_SR_BSY).toBe(ATA_SR_BSY);
    expect(irq(c, P)).toBe(false);
    await advance(c.pc);
    expect(irq(c, P)).toBe(true);
    expect(c.pc.mem.mem8.subarray(0x20000, 0x20200)).toEqual(disk.sector(300));
    expect(c.pc.mem.mem8.subarray(0x20200, 0x20400)).toEqual(disk.sector(301));
    expect(c.in8(BM + 2) & BM_ST_INTR).toBe(BM_ST_INTR);
    expect(c.pc.pci!.bus.configRead(DF, 0x20, 4)).toBe(BM | 1);
  });
});

describe('PIIX3 IDE: ATAPI CD-ROM', () => {
  /** sends a packet command; returns the status after the CDB went out */
  function packet(r: Rig, ch: Ch, cdb: number[], limit = 0xfffe, dma = false): void {
    r.out8(ch.base + 6, 0xa0);
    r.out8(ch.base + 1, dma ? 1 : 0);
    r.out8(ch.base + 4, limit & 0xff);
    r.out8(ch.base + 5, limit >> 8);
    r.out8(ch.base + 7, 0xa0);
    expect(r.in8(ch.ctl) & (ATA_SR_DRQ | ATA_SR_BSY)).toBe(ATA_SR_DRQ);
    expect(r.in8(ch.base + 2) & 3).toBe(1); // CoD: the device wants the command
    expect(irq(r, ch)).toBe(false);
    const c = new Uint8Array(12);
    c.set(cdb);
    pioOut(r, ch, c);
  }

  /** collects the data-in DRQ blocks of a packet command: [data, block sizes]; ends at the completion */
  async function dataIn(r: Rig, ch: Ch): Promise<{ data: Uint8Array; blocks: number[]; status: number; error: number }> {
    await advance(r.pc);
    const parts: Uint8Array[] = [];
    const blocks: number[] = [];
    for (;;) {
      expect(irq(r, ch)).toBe(true);
      const st = r.in8(ch.base + 7);
      const reason = r.in8(ch.base + 2) & 3;
      if (!(st & ATA_SR_DRQ)) {
        expect(reason).toBe(3); // IO | CoD: command complete
        const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) {
          data.set(p, o);
          o += p.length;
        }
        return { data, blocks, status: st, error: r.in8(ch.base + 1) };
      }
      expect(reason).toBe(2); // IO: data to the host
      const n = r.in8(ch.base + 4) | (r.in8(ch.base + 5) << 8);
      blocks.push(n);
      parts.push(pioIn(r, ch, n));
    }
  }

  it('identifies as a packet device (and aborts IDENTIFY DEVICE with its signature)', () => {
    const r = rig((ide) => ide.attach(1, 0, { kind: 'cdrom', dev: cdImage(10) }));
    r.out8(S.base + 6, 0xa0);
    r.out8(S.base + 4, 0);
    r.out8(S.base + 5, 0);
    r.out8(S.base + 7, 0xec);
    expect(irq(r, S)).toBe(true);
    expect(r.in8(S.base + 7) & ATA_SR_ERR).toBe(ATA_SR_ERR);
    expect(r.in8(S.base + 1) & ATA_ER_ABRT).toBe(ATA_ER_ABRT);
    expect([r.in8(S.base + 4), r.in8(S.base + 5)]).toEqual([0x14, 0xeb]);
    const w = identifyWords(r, S, 0xa1);
    expect(w[0]).toBe(0x85c0); // ATAPI, CD-ROM, removable, accelerated DRQ, 12-byte packets
    expect(w[49] & 0x0300).toBe(0x0300);
    expect(w[63] & 0x07).toBe(0x07);
    expect(w[82] & 0x0010).toBe(0x0010); // PACKET feature set
    expect(identString(w, 27, 20)).toBe('x86vm DVD-ROM');
    expect(new Uint8Array(w.buffer).reduce((a, b) => a + b, 0) & 0xff).toBe(0);
  });

  it('answers INQUIRY and READ TOC, and reads 2048-byte blocks in DRQ blocks of the byte count limit', async () => {
    const r = rig((ide) => ide.attach(1, 0, { kind: 'cdrom', dev: cdImage(300) }));
    // clear the power-on state: the first TEST UNIT READY is GOOD (no medium change since power-on)
    packet(r, S, [0x12, 0, 0, 0, 96, 0]);
    expect(r.in8(S.ctl) & ATA_SR_BSY).toBe(ATA_SR_BSY);
    const inq = await dataIn(r, S);
    expect(inq.blocks).toEqual([36]);
    expect(inq.data[0]).toBe(0x05);
    expect(inq.status).toBe(ATA_SR_DRDY);
    packet(r, S, [0x43, 0x02, 0, 0, 0, 0, 0, 0, 100, 0]);
    const toc = await dataIn(r, S);
    expect(toc.data.length).toBe(20);
    expect(Array.from(toc.data.subarray(16, 20))).toEqual([0, 0x00, 0x06, 0x00]); // lead-out at 300+150 frames = 00:06:00
    // READ(10): 3 blocks at 7 with a byte count limit of 5000 (odd-sized blocks are cut to an even size)
    packet(r, S, [0x28, 0, 0, 0, 0, 7, 0, 0, 3, 0], 5001);
    const rd = await dataIn(r, S);
    expect(rd.blocks).toEqual([5000, 1144]);
    expect(rd.data.length).toBe(3 * 2048);
    for (let k = 0; k < 3; k++) {
      expect(rd.data[k * 2048]).toBe(7 + k);
      expect(rd.data[k * 2048 + 100]).toBe(((7 + k) * 3) & 0xff);
    }
    // past the end: CHECK CONDITION, sense key 5 in the error register
    packet(r, S, [0x28, 0, 0, 0, 1, 0x2c, 0, 0, 1, 0]);
    const bad = await dataIn(r, S);
    expect(bad.status & ATA_SR_ERR).toBe(ATA_SR_ERR);
    expect(bad.error).toBe(0x54);
    packet(r, S, [0x03, 0, 0, 0, 18, 0]);
    const sense = await dataIn(r, S);
    expect([sense.data[2] & 0xf, sense.data[12], sense.data[13]]).toEqual([5, 0x21, 0]);
  });

  it('reports a media change as UNIT ATTENTION, then NOT READY after removal', async () => {
    const r = rig((ide) => ide.attach(1, 1, { kind: 'cdrom', dev: null }));
    const tur = async (): Promise<number> => {
      r.out8(S.base + 6, 0xb0);
      r.out8(S.base + 1, 0);
      r.out8(S.base + 7, 0xa0);
      pioOut(r, S, new Uint8Array(12));
      await advance(r.pc);
      expect(irq(r, S)).toBe(true);
      const st = r.in8(S.base + 7);
      expect(r.in8(S.base + 2) & 3).toBe(3);
      return st & ATA_SR_ERR ? r.in8(S.base + 1) : 0;
    };
    const senseOf = async (): Promise<number[]> => {
      r.out8(S.base + 6, 0xb0);
      r.out8(S.base + 1, 0);
      r.out8(S.base + 4, 0xfe);
      r.out8(S.base + 5, 0xff);
      r.out8(S.base + 7, 0xa0);
      const c = new Uint8Array(12);
      c.set([0x03, 0, 0, 0, 18, 0]);
      pioOut(r, S, c);
      await advance(r.pc);
      r.in8(S.base + 7);
      const n = r.in8(S.base + 4);
      const d = pioIn(r, S, n);
      return [d[2] & 0xf, d[12], d[13]];
    };
    expect(await tur()).toBe(0x24); // NOT READY, ABRT
    expect(await senseOf()).toEqual([2, 0x3a, 0]);
    r.ide.cdrom(1, 1)!.insert(cdImage(20));
    expect(await tur()).toBe(0x64); // UNIT ATTENTION
    expect(await senseOf()).toEqual([6, 0x28, 0]);
    expect(await tur()).toBe(0);
    r.ide.cdrom(1, 1)!.insert(null);
    expect(await tur()).toBe(0x24);
  });

  it('moves packet data by DMA when the FEATURES DMA bit is set', async () => {
    const r = rig((ide) => ide.attach(1, 0, { kind: 'cdrom', dev: cdImage(50) }));
    r.pc.mem.write32(0x10000, 0x60000);
    r.pc.mem.write32(0x10004, 0x80000000 | (2 * 2048));
    r.pc.io.out32(S.bm + 4, 0x10000);
    r.out8(S.bm, 0x08);
    packet(r, S, [0x28, 0, 0, 0, 0, 9, 0, 0, 2, 0], 0xfffe, true);
    r.out8(S.bm, 0x09);
    await advance(r.pc);
    expect(irq(r, S)).toBe(true);
    expect(r.in8(S.bm + 2) & (BM_ST_INTR | BM_ST_ACTIVE)).toBe(BM_ST_INTR);
    expect(r.in8(S.base + 7)).toBe(ATA_SR_DRDY);
    expect(r.in8(S.base + 2) & 3).toBe(3);
    const m = r.pc.mem.mem8;
    expect([m[0x60000], m[0x60000 + 2048], m[0x60000 + 4095]]).toEqual([9, 10, 30]);
    // the primary channel's bus master saw nothing
    expect(r.in8(BM + 2) & BM_ST_INTR).toBe(0);
  });
});
