/**
 * SCSI targets (devices/scsi.ts): ScsiDisk (SBC) and ScsiCdrom (MMC) executing CDBs against raw images in
 * memory — data, capacities, mode pages, TOC, configuration, media events, sense keys for every error.
 */
import { describe, it, expect } from 'vitest';
import { MemoryStore, DiskError, type BlockDevice } from '../../disk/block';
import { RawImage } from '../../disk/raw';
import {
  ScsiDisk,
  ScsiCdrom,
  SCSI_GOOD,
  SCSI_CHECK_CONDITION,
  senseTriple,
  lbaToMsf,
  type ScsiResult,
  type ScsiTarget,
} from '../../devices/scsi';

/** a raw disk of `sectors` sectors where every byte of sector s is (s * 7 + offset) & 0xff */
function patterned(sectors: number, name = 'disk.raw', readOnly = false): { dev: RawImage; bytes: Uint8Array } {
  const bytes = new Uint8Array(sectors * 512);
  for (let s = 0; s < sectors; s++) for (let i = 0; i < 512; i++) bytes[s * 512 + i] = (s * 7 + i) & 0xff;
  const store = new MemoryStore(name, bytes.slice(), readOnly);
  return { dev: new RawImage(store, readOnly), bytes };
}

function cdb(...b: number[]): Uint8Array {
  const c = new Uint8Array(Math.max(b.length, 6) <= 6 ? 6 : b.length <= 10 ? 10 : b.length <= 12 ? 12 : 16);
  c.set(b);
  return c;
}

const be32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const be16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
const get32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
const get16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];
const text = (b: Uint8Array, o: number, n: number): string => String.fromCharCode(...b.subarray(o, o + n));

function expectSense(r: ScsiResult, key: number, asc: number, ascq: number): void {
  expect(r.status).toBe(SCSI_CHECK_CONDITION);
  expect(r.sense?.length).toBe(18);
  expect(r.sense![0] & 0x7f).toBe(0x70);
  expect(senseTriple(r.sense)).toEqual([key, asc, ascq]);
}

async function requestSense(t: ScsiTarget): Promise<[number, number, number]> {
  const r = await t.execute(cdb(0x03, 0, 0, 0, 18, 0), null);
  expect(r.status).toBe(SCSI_GOOD);
  expect(r.dataIn?.length).toBe(18);
  return senseTriple(r.dataIn);
}

describe('ScsiDisk', () => {
  it('answers INQUIRY (standard data and VPD pages) with its identity', async () => {
    const { dev } = patterned(64);
    const d = new ScsiDisk(dev, { vendor: 'ACME', product: 'TESTDISK', serial: 'SN42' });
    const std = await d.execute(cdb(0x12, 0, 0, 0, 96, 0), null);
    expect(std.status).toBe(SCSI_GOOD);
    expect(std.dataIn!.length).toBe(36);
    expect(std.dataIn![0]).toBe(0x00); // direct-access block device
    expect(std.dataIn![1] & 0x80).toBe(0); // not removable
    expect(std.dataIn![4]).toBe(31);
    expect(text(std.dataIn!, 8, 8)).toBe('ACME    ');
    expect(text(std.dataIn!, 16, 16)).toBe('TESTDISK        ');
    // allocation length cuts the data
    const short = await d.execute(cdb(0x12, 0, 0, 0, 5, 0), null);
    expect(short.dataIn!.length).toBe(5);
    const list = await d.execute(cdb(0x12, 1, 0x00, 0, 255, 0), null);
    expect(Array.from(list.dataIn!.subarray(4))).toEqual([0x00, 0x80, 0x83, 0xb0, 0xb1]);
    const serial = await d.execute(cdb(0x12, 1, 0x80, 0, 255, 0), null);
    expect(serial.dataIn![1]).toBe(0x80);
    expect(text(serial.dataIn!, 4, serial.dataIn![3])).toBe('SN42');
    const bdc = await d.execute(cdb(0x12, 1, 0xb1, 0, 255, 0), null);
    expect(get16(bdc.dataIn!, 4)).toBe(1); // non-rotating
    expectSense(await d.execute(cdb(0x12, 1, 0x42, 0, 255, 0), null), 5, 0x24, 0);
    expectSense(await d.execute(cdb(0x12, 0, 0x80, 0, 255, 0), null), 5, 0x24, 0);
  });

  it('reports its capacity through READ CAPACITY(10) and (16)', async () => {
    const { dev } = patterned(1000);
    const d = new ScsiDisk(dev);
    const r10 = await d.execute(cdb(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0), null);
    expect(get32(r10.dataIn!, 0)).toBe(999);
    expect(get32(r10.dataIn!, 4)).toBe(512);
    const r16 = await d.execute(cdb(0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0), null);
    expect(r16.dataIn!.length).toBe(32);
    expect(get32(r16.dataIn!, 0)).toBe(0);
    expect(get32(r16.dataIn!, 4)).toBe(999);
    expect(get32(r16.dataIn!, 8)).toBe(512);
    expectSense(await d.execute(cdb(0x9e, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0), null), 5, 0x24, 0);
  });

  it('reads and writes with READ/WRITE(6), (10), (12) and (16)', async () => {
    const { dev, bytes } = patterned(300);
    const d = new ScsiDisk(dev);
    const r6 = await d.execute(cdb(0x08, 0, 0, 10, 2, 0), null);
    expect(r6.status).toBe(SCSI_GOOD);
    expect(r6.dataIn).toEqual(bytes.subarray(10 * 512, 12 * 512));
    const r10 = await d.execute(cdb(0x28, 0, ...be32(250), 0, ...be16(50), 0), null);
    expect(r10.dataIn).toEqual(bytes.subarray(250 * 512, 300 * 512));
    const r12 = await d.execute(cdb(0xa8, 0, ...be32(3), ...be32(1), 0, 0), null);
    expect(r12.dataIn).toEqual(bytes.subarray(3 * 512, 4 * 512));
    // WRITE(16) then READ(16) back
    const data = new Uint8Array(3 * 512).map((_, i) => (i * 13) & 0xff);
    const w16 = cdb(0x8a, 0, 0, 0, 0, 0, ...be32(100), ...be32(3), 0, 0);
    expect(d.dataOutLength(w16)).toBe(3 * 512);
    expect((await d.execute(w16, data)).status).toBe(SCSI_GOOD);
    const r16 = await d.execute(cdb(0x88, 0, 0, 0, 0, 0, ...be32(100), ...be32(3), 0, 0), null);
    expect(r16.dataIn).toEqual(data);
    // the bytes are in the image
    const back = new Uint8Array(3 * 512);
    await dev.read(100, back);
    expect(back).toEqual(data);
    // WRITE(10) and WRITE(6)
    const one = new Uint8Array(512).fill(0x5a);
    expect(d.dataOutLength(cdb(0x2a, 0, ...be32(7), 0, ...be16(1), 0))).toBe(512);
    expect((await d.execute(cdb(0x2a, 0, ...be32(7), 0, ...be16(1), 0), one)).status).toBe(SCSI_GOOD);
    expect((await d.execute(cdb(0x0a, 0, 0, 8, 1, 0), one)).status).toBe(SCSI_GOOD);
    await dev.read(7, back.subarray(0, 1024));
    expect(back.subarray(0, 1024).every((b) => b === 0x5a)).toBe(true);
    // READ(6) with length 0 means 256 blocks
    const r256 = await d.execute(cdb(0x08, 0, 0, 0, 0, 0), null);
    expect(r256.dataIn!.length).toBe(256 * 512);
    // READ(10) of 0 blocks moves nothing
    const r0 = await d.execute(cdb(0x28, 0, ...be32(0), 0, 0, 0, 0), null);
    expect(r0.status).toBe(SCSI_GOOD);
    expect(r0.dataIn).toBeNull();
  });

  it('rejects out-of-range LBAs, unknown opcodes and writes to a read-only disk with the right sense', async () => {
    const { dev } = patterned(100);
    const d = new ScsiDisk(dev);
    expectSense(await d.execute(cdb(0x28, 0, ...be32(99), 0, ...be16(2), 0), null), 5, 0x21, 0);
    expect(await requestSense(d)).toEqual([5, 0x21, 0]);
    // REQUEST SENSE forgets the sense once reported
    expect(await requestSense(d)).toEqual([0, 0, 0]);
    expectSense(await d.execute(cdb(0xc7, 0, 0, 0, 0, 0), null), 5, 0x20, 0);
    expectSense(await d.execute(cdb(0x2f, 0, ...be32(99), 0, ...be16(5), 0), null), 5, 0x21, 0);
    expect((await d.execute(cdb(0x2f, 0, ...be32(0), 0, ...be16(100), 0), null)).status).toBe(SCSI_GOOD);
    const ro = new ScsiDisk(patterned(100, 'ro.raw', true).dev);
    expectSense(await ro.execute(cdb(0x2a, 0, ...be32(0), 0, ...be16(1), 0), new Uint8Array(512)), 7, 0x27, 0);
    // a good command clears the kept sense
    await d.execute(cdb(0xc7, 0, 0, 0, 0, 0), null);
    expect((await d.execute(cdb(0x00, 0, 0, 0, 0, 0), null)).status).toBe(SCSI_GOOD);
    expect(await requestSense(d)).toEqual([0, 0, 0]);
  });

  it('turns host I/O failures into MEDIUM ERROR and a warning', async () => {
    const failing: BlockDevice = {
      name: 'bad.raw',
      format: 'raw',
      sectors: 100,
      readOnly: false,
      read: async () => {
        throw new DiskError('bad.raw', 'read failed at offset 0');
      },
      write: async () => {
        throw new DiskError('bad.raw', 'no space left on the device');
      },
      flush: async () => {},
      close: async () => {},
    };
    const d = new ScsiDisk(failing);
    const warnings: string[] = [];
    d.onWarning = (m) => warnings.push(m);
    expectSense(await d.execute(cdb(0x28, 0, ...be32(1), 0, ...be16(1), 0), null), 3, 0x11, 0);
    expectSense(await d.execute(cdb(0x2a, 0, ...be32(1), 0, ...be16(1), 0), new Uint8Array(512)), 3, 0x0c, 0);
    expect(warnings.length).toBe(2);
    expect(warnings[0]).toMatch(/bad\.raw.*read failed/);
    expect(warnings[1]).toMatch(/no space left/);
  });

  it('flushes on SYNCHRONIZE CACHE, and after each write once the write cache is off (MODE SELECT)', async () => {
    const { dev } = patterned(64);
    let flushes = 0;
    const counted: BlockDevice = Object.assign(Object.create(dev) as BlockDevice, {
      flush: async () => {
        flushes++;
      },
    });
    const d = new ScsiDisk(counted);
    expect((await d.execute(cdb(0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0), null)).status).toBe(SCSI_GOOD);
    expect(flushes).toBe(1);
    await d.execute(cdb(0x2a, 0, ...be32(1), 0, ...be16(1), 0), new Uint8Array(512));
    expect(flushes).toBe(1);
    // caching page: WCE set, and changeable
    const cur = await d.execute(cdb(0x1a, 0x08, 0x08, 0, 255, 0), null);
    expect(cur.dataIn![0]).toBe(cur.dataIn!.length - 1);
    expect(cur.dataIn![3]).toBe(0); // DBD: no block descriptor
    expect(cur.dataIn![4] & 0x3f).toBe(0x08);
    expect(cur.dataIn![6] & 0x04).toBe(0x04);
    const chg = await d.execute(cdb(0x1a, 0x08, 0x48, 0, 255, 0), null);
    expect(chg.dataIn![6] & 0x04).toBe(0x04);
    // MODE SELECT(6): caching page with WCE clear
    const param = new Uint8Array(4 + 20);
    param[4] = 0x08;
    param[5] = 0x12;
    const sel = cdb(0x15, 0x10, 0, 0, param.length, 0);
    expect(d.dataOutLength(sel)).toBe(param.length);
    expect((await d.execute(sel, param)).status).toBe(SCSI_GOOD);
    const off = await d.execute(cdb(0x1a, 0x08, 0x08, 0, 255, 0), null);
    expect(off.dataIn![6] & 0x04).toBe(0);
    await d.execute(cdb(0x2a, 0, ...be32(1), 0, ...be16(1), 0), new Uint8Array(512));
    expect(flushes).toBe(2);
    // the state keeps the setting
    const again = new ScsiDisk(counted);
    again.loadState(JSON.parse(JSON.stringify(d.saveState())));
    const off2 = await again.execute(cdb(0x1a, 0x08, 0x08, 0, 255, 0), null);
    expect(off2.dataIn![6] & 0x04).toBe(0);
  });

  it('answers MODE SENSE(10) with a block descriptor and all pages, REPORT LUNS, and rejects saved values', async () => {
    const { dev } = patterned(2048, 'ro.raw', true);
    const d = new ScsiDisk(dev);
    const r = await d.execute(cdb(0x5a, 0, 0x3f, 0, 0, 0, 0, ...be16(512), 0), null);
    const b = r.dataIn!;
    expect(get16(b, 0)).toBe(b.length - 2);
    expect(b[3] & 0x80).toBe(0x80); // write protected
    expect(get16(b, 6)).toBe(8); // block descriptor length
    expect(get32(b, 8)).toBe(2048); // blocks
    expect(get32(b, 12) & 0xffffff).toBe(512);
    const pages: number[] = [];
    for (let o = 16; o < b.length; o += 2 + b[o + 1]) pages.push(b[o] & 0x3f);
    expect(pages).toEqual([0x01, 0x08, 0x0a]);
    expectSense(await d.execute(cdb(0x5a, 0, 0xc8, 0, 0, 0, 0, ...be16(512), 0), null), 5, 0x39, 0);
    expectSense(await d.execute(cdb(0x1a, 0, 0x1c, 0, 255, 0), null), 5, 0x24, 0);
    const luns = await d.execute(cdb(0xa0, 0, 0, 0, 0, 0, ...be32(64), 0, 0), null);
    expect(get32(luns.dataIn!, 0)).toBe(8);
    expect(luns.dataIn!.length).toBe(16);
  });
});

describe('ScsiCdrom', () => {
  /** an ISO-like image: `blocks` 2048-byte blocks, each filled with its block number's low byte */
  function iso(blocks: number, name = 'cd.iso'): RawImage {
    const bytes = new Uint8Array(blocks * 2048);
    for (let b = 0; b < blocks; b++) bytes.fill(b & 0xff, b * 2048, (b + 1) * 2048);
    return new RawImage(new MemoryStore(name, bytes, true), true);
  }
  const TUR = cdb(0x00, 0, 0, 0, 0, 0);

  it('is NOT READY without a medium, reports a new medium once as UNIT ATTENTION, then reads it', async () => {
    const cd = new ScsiCdrom(null);
    expectSense(await cd.execute(TUR, null), 2, 0x3a, 0);
    expect(await requestSense(cd)).toEqual([2, 0x3a, 0]);
    expectSense(await cd.execute(cdb(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0), null), 2, 0x3a, 0);
    // INQUIRY works without a medium: CD-ROM, removable
    const inq = await cd.execute(cdb(0x12, 0, 0, 0, 36, 0), null);
    expect(inq.dataIn![0]).toBe(0x05);
    expect(inq.dataIn![1]).toBe(0x80);
    cd.insert(iso(100));
    // INQUIRY neither reports nor clears the unit attention
    expect((await cd.execute(cdb(0x12, 0, 0, 0, 36, 0), null)).status).toBe(SCSI_GOOD);
    expectSense(await cd.execute(TUR, null), 6, 0x28, 0);
    expect(await requestSense(cd)).toEqual([6, 0x28, 0]);
    expect((await cd.execute(TUR, null)).status).toBe(SCSI_GOOD);
    const cap = await cd.execute(cdb(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0), null);
    expect(get32(cap.dataIn!, 0)).toBe(99);
    expect(get32(cap.dataIn!, 4)).toBe(2048);
    const r = await cd.execute(cdb(0x28, 0, ...be32(5), 0, ...be16(3), 0), null);
    expect(r.dataIn!.length).toBe(3 * 2048);
    expect(r.dataIn![0]).toBe(5);
    expect(r.dataIn![2048]).toBe(6);
    expect(r.dataIn![3 * 2048 - 1]).toBe(7);
    const r12 = await cd.execute(cdb(0xa8, 0, ...be32(99), ...be32(1), 0, 0), null);
    expect(r12.dataIn![100]).toBe(99);
    expectSense(await cd.execute(cdb(0x28, 0, ...be32(98), 0, ...be16(3), 0), null), 5, 0x21, 0);
    expectSense(await cd.execute(cdb(0x2a, 0, ...be32(0), 0, ...be16(1), 0), null), 5, 0x20, 0);
    // a pending unit attention is what REQUEST SENSE reports when nothing else is kept
    expect((await cd.execute(TUR, null)).status).toBe(SCSI_GOOD);
    cd.insert(iso(50, 'other.iso'));
    expect(await requestSense(cd)).toEqual([6, 0x28, 0]);
    expect((await cd.execute(TUR, null)).status).toBe(SCSI_GOOD);
  });

  it('reads the TOC in formats 0, 1 and 2, in LBA and MSF', async () => {
    const cd = new ScsiCdrom(iso(1000));
    await cd.execute(TUR, null);
    expect(lbaToMsf(0)).toEqual([0, 2, 0]);
    expect(lbaToMsf(1000)).toEqual([0, 15, 25]);
    const toc = (await cd.execute(cdb(0x43, 0, 0, 0, 0, 0, 0, ...be16(100), 0), null)).dataIn!;
    expect(get16(toc, 0)).toBe(18);
    expect([toc[2], toc[3]]).toEqual([1, 1]);
    expect([toc[5], toc[6]]).toEqual([0x14, 1]);
    expect(get32(toc, 8)).toBe(0);
    expect(toc[14]).toBe(0xaa);
    expect(get32(toc, 16)).toBe(1000);
    const msf = (await cd.execute(cdb(0x43, 0x02, 0, 0, 0, 0, 0, ...be16(100), 0), null)).dataIn!;
    expect(Array.from(msf.subarray(8, 12))).toEqual([0, 0, 2, 0]);
    expect(Array.from(msf.subarray(16, 20))).toEqual([0, 0, 15, 25]);
    // starting at the lead-out: just that entry
    const lo = (await cd.execute(cdb(0x43, 0, 0, 0, 0, 0, 0xaa, ...be16(100), 0), null)).dataIn!;
    expect(get16(lo, 0)).toBe(10);
    expect(lo[6]).toBe(0xaa);
    expectSense(await cd.execute(cdb(0x43, 0, 0, 0, 0, 0, 2, ...be16(100), 0), null), 5, 0x24, 0);
    const sess = (await cd.execute(cdb(0x43, 0, 1, 0, 0, 0, 0, ...be16(100), 0), null)).dataIn!;
    expect(get16(sess, 0)).toBe(10);
    expect([sess[2], sess[3], sess[5], sess[6]]).toEqual([1, 1, 0x14, 1]);
    expect(get32(sess, 8)).toBe(0);
    const raw = (await cd.execute(cdb(0x43, 0x02, 2, 0, 0, 0, 0, ...be16(200), 0), null)).dataIn!;
    expect(get16(raw, 0)).toBe(2 + 4 * 11);
    const points = [0, 1, 2, 3].map((i) => raw[4 + 11 * i + 3]);
    expect(points).toEqual([0xa0, 0xa1, 0xa2, 1]);
    const a2 = 4 + 2 * 11;
    expect(Array.from(raw.subarray(a2 + 8, a2 + 11))).toEqual([0, 15, 25]);
    // the allocation length cuts the answer
    expect((await cd.execute(cdb(0x43, 0, 0, 0, 0, 0, 0, ...be16(4), 0), null)).dataIn!.length).toBe(4);
  });

  it('answers MODE SENSE pages 01, 0E, 2A and 3F, GET CONFIGURATION, READ DISC INFORMATION, MECHANISM STATUS', async () => {
    const cd = new ScsiCdrom(iso(64));
    await cd.execute(TUR, null);
    const cap = (await cd.execute(cdb(0x5a, 0, 0x2a, 0, 0, 0, 0, ...be16(128), 0), null)).dataIn!;
    expect(get16(cap, 6)).toBe(0); // no block descriptors
    expect(cap[2]).toBe(0x01); // medium: CD-ROM data
    expect(cap[8]).toBe(0x2a);
    expect(cap[9]).toBe(0x14);
    expect(cap[8 + 6] & 0x08).toBe(0x08); // can eject
    expect(cap[8 + 6] >> 5).toBe(1); // tray
    expect(get16(cap, 8 + 8)).toBeGreaterThan(176);
    const all = (await cd.execute(cdb(0x1a, 0, 0x3f, 0, 255, 0), null)).dataIn!;
    const pages: number[] = [];
    for (let o = 4; o < all.length; o += 2 + all[o + 1]) pages.push(all[o]);
    expect(pages).toEqual([0x01, 0x0e, 0x2a]);
    expectSense(await cd.execute(cdb(0x1a, 0, 0x08, 0, 255, 0), null), 5, 0x24, 0);
    const conf = (await cd.execute(cdb(0x46, 0, 0, 0, 0, 0, 0, ...be16(512), 0), null)).dataIn!;
    expect(get32(conf, 0)).toBe(conf.length - 4);
    expect(get16(conf, 6)).toBe(0x0008); // current profile: CD-ROM
    const codes: number[] = [];
    for (let o = 8; o < conf.length; o += 4 + conf[o + 3]) codes.push(get16(conf, o));
    expect(codes).toEqual([0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x001d, 0x001e, 0x0100]);
    expect(get16(conf, 12)).toBe(0x0008); // the profile list names CD-ROM
    // one feature (RT = 2)
    const one = (await cd.execute(cdb(0x46, 2, 0, 0x10, 0, 0, 0, ...be16(512), 0), null)).dataIn!;
    expect(one.length).toBe(8 + 12);
    expect(get16(one, 8)).toBe(0x0010);
    expect(get32(one, 12)).toBe(2048);
    const disc = (await cd.execute(cdb(0x51, 0, 0, 0, 0, 0, 0, ...be16(34), 0), null)).dataIn!;
    expect(get16(disc, 0)).toBe(32);
    expect(disc[2] & 0x03).toBe(2); // complete disc
    expect([disc[3], disc[4], disc[5], disc[6]]).toEqual([1, 1, 1, 1]);
    const mech = (await cd.execute(cdb(0xbd, 0, 0, 0, 0, 0, 0, 0, ...be16(8), 0, 0), null)).dataIn!;
    expect(mech.length).toBe(8);
    expect((await cd.execute(cdb(0xbb, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0), null)).status).toBe(SCSI_GOOD);
    // without a medium: no current profile, READ DISC INFORMATION not ready
    const empty = new ScsiCdrom(null);
    const conf0 = (await empty.execute(cdb(0x46, 0, 0, 0, 0, 0, 0, ...be16(512), 0), null)).dataIn!;
    expect(get16(conf0, 6)).toBe(0);
    expectSense(await empty.execute(cdb(0x51, 0, 0, 0, 0, 0, 0, ...be16(34), 0), null), 2, 0x3a, 0);
  });

  it('reports media events, ejects and loads, and honours the lock', async () => {
    const cd = new ScsiCdrom(null);
    const gesn = async (): Promise<[number, number]> => {
      const r = await cd.execute(cdb(0x4a, 1, 0, 0, 0x10, 0, 0, ...be16(8), 0), null);
      expect(r.status).toBe(SCSI_GOOD);
      expect(r.dataIn![2]).toBe(0x04); // media class
      return [r.dataIn![4], r.dataIn![5]];
    };
    expect(await gesn()).toEqual([0, 0]);
    cd.insert(iso(10));
    expect(await gesn()).toEqual([2, 0x02]); // new media, present
    expect(await gesn()).toEqual([0, 0x02]);
    // asynchronous GESN is not supported
    expectSense(await cd.execute(cdb(0x4a, 0, 0, 0, 0x10, 0, 0, ...be16(8), 0), null), 5, 0x24, 0);
    // no class asked for: NEA
    const nea = (await cd.execute(cdb(0x4a, 1, 0, 0, 0x02, 0, 0, ...be16(8), 0), null)).dataIn!;
    expect(nea[2] & 0x80).toBe(0x80);
    await cd.execute(TUR, null); // the unit attention
    // lock, then eject is refused
    expect((await cd.execute(cdb(0x1e, 0, 0, 0, 1, 0), null)).status).toBe(SCSI_GOOD);
    expect(cd.locked).toBe(true);
    expectSense(await cd.execute(cdb(0x1b, 0, 0, 0, 0x02, 0), null), 5, 0x53, 0x02);
    await cd.execute(cdb(0x1e, 0, 0, 0, 0, 0), null);
    expect(cd.locked).toBe(false);
    expect((await cd.execute(cdb(0x1b, 0, 0, 0, 0x02, 0), null)).status).toBe(SCSI_GOOD);
    expect(await gesn()).toEqual([3, 0x01]); // removal, tray open
    expectSense(await cd.execute(TUR, null), 2, 0x3a, 0);
    // load: the same disc is back
    expect((await cd.execute(cdb(0x1b, 0, 0, 0, 0x03, 0), null)).status).toBe(SCSI_GOOD);
    expect(await gesn()).toEqual([2, 0x02]);
    expect((await cd.execute(TUR, null)).status).toBe(SCSI_GOOD);
    // the host removes it
    cd.insert(null);
    expect(await gesn()).toEqual([3, 0]);
    expectSense(await cd.execute(TUR, null), 2, 0x3a, 0);
  });

  it('keeps its state (sense, lock, pending unit attention, tray) through saveState/loadState', async () => {
    const disc = iso(10);
    const cd = new ScsiCdrom(null);
    await cd.execute(cdb(0x1e, 0, 0, 0, 1, 0), null);
    cd.insert(disc);
    const copy = new ScsiCdrom(disc);
    copy.loadState(JSON.parse(JSON.stringify(cd.saveState())));
    expect(copy.locked).toBe(true);
    expectSense(await copy.execute(TUR, null), 6, 0x28, 0);
    expect((await copy.execute(TUR, null)).status).toBe(SCSI_GOOD);
    // kept sense survives too
    expectSense(await cd.execute(TUR, null), 6, 0x28, 0);
    expectSense(await cd.execute(cdb(0xff, 0, 0, 0, 0, 0), null), 5, 0x20, 0);
    const copy2 = new ScsiCdrom(disc);
    copy2.loadState(JSON.parse(JSON.stringify(cd.saveState())));
    expect(await requestSense(copy2)).toEqual([5, 0x20, 0]);
  });
});
