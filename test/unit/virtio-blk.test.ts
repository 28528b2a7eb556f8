/**
 * virtio-blk: the guest driver played by hand (test/unit/virtio-driver.ts) against a raw image in
 * memory: configuration, reads, writes, flush, GET_ID, indirect chains, several requests in flight,
 * errors, reset with requests in flight, and a snapshot taken with requests in flight.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore, type BlockDevice } from '../../disk/block';
import { RawImage } from '../../disk/raw';
import {
  addVirtioBlk,
  VirtioBlk,
  BYTES_PER_NS,
  FLUSH_LATENCY_NS,
  LATENCY_NS,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from '../../devices/virtio-blk';
import { VIRTIO_F_VERSION_1 } from '../../devices/virtio';
import { Driver, byteDiff, makePc, pattern, le32, le64, type Seg } from './virtio-driver';

const SECTORS = 2048; // 1 MiB

function setup(options: { readOnly?: boolean; serial?: string; disk?: BlockDevice } = {}) {
  const image = pattern(SECTORS * 512, 7);
  const store = new MemoryStore('disk.img', image.slice());
  const disk = options.disk ?? new RawImage(store, !!options.readOnly);
  let blk!: VirtioBlk;
  const pc = makePc([
    (p) => {
      blk = addVirtioBlk(p, disk, { serial: options.serial });
    },
  ]);
  const drv = new Driver(pc, blk);
  return { pc, blk, drv, store, image, disk };
}

interface Req {
  head: number;
  data: number;
  status: number;
}

/** builds a request: header, data buffers (sizes), status byte */
function request(drv: Driver, type: number, sector: number, sizes: number[], options: { indirect?: boolean; payload?: Uint8Array; publish?: boolean } = {}): Req {
  const hdr = drv.alloc(16);
  drv.put(hdr, [...le32(type), ...le32(0), ...le64(sector)]);
  const total = sizes.reduce((a, b) => a + b, 0);
  const data = drv.alloc(Math.max(total, 1));
  if (options.payload) drv.put(data, options.payload);
  const status = drv.alloc(1);
  drv.m[status] = 0xee;
  const deviceWrites = type === VIRTIO_BLK_T_IN || type === VIRTIO_BLK_T_GET_ID;
  const segs: Seg[] = [{ addr: hdr, len: 16 }];
  let off = 0;
  for (const s of sizes) {
    segs.push({ addr: data + off, len: s, write: deviceWrites });
    off += s;
  }
  segs.push({ addr: status, len: 1, write: true });
  const head = drv.add(0, segs, options);
  return { head, data, status };
}

describe('virtio-blk', () => {
  it('presents a virtio 1.0 block device with its capacity, segment limits and block size', () => {
    const { drv, blk } = setup();
    expect(drv.cfgRead(0, 2)).toBe(0x1af4);
    expect(drv.cfgRead(2, 2)).toBe(0x1042);
    expect(blk.devfn >> 3).toBe(4); // first free slot from 4
    const [lo, hi] = drv.deviceFeatures();
    expect(hi & (1 << (VIRTIO_F_VERSION_1 - 32))).not.toBe(0);
    for (const b of [VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH]) expect((lo >>> b) & 1).toBe(1);
    expect((lo >>> VIRTIO_BLK_F_RO) & 1).toBe(0);
    expect(drv.devCfg32(0)).toBe(SECTORS);
    expect(drv.devCfg32(4)).toBe(0);
    expect(drv.devCfg32(0x0c)).toBe(126);
    expect(drv.devCfg32(0x14)).toBe(512);
    expect(drv.devCfg32(0x08)).toBe(1 << 20);
    expect(drv.common(0x12, 2)).toBe(1);
  });

  it('reads sectors into guest memory at a guest time later, then interrupts through the PIRQ', async () => {
    const { pc, drv, image } = setup();
    drv.init();
    const r = request(drv, VIRTIO_BLK_T_IN, 3, [4096]);
    const t0 = pc.clock.now();
    drv.kick(0);
    // nothing is delivered at the notification itself
    expect(drv.usedIdx(0)).toBe(0);
    expect(drv.m[r.status]).toBe(0xee);
    expect(await drv.run(() => drv.usedIdx(0) === 1)).toBe(true);
    expect(pc.clock.now() - t0).toBe(LATENCY_NS + 4096 / BYTES_PER_NS);
    expect(drv.m[r.status]).toBe(VIRTIO_BLK_S_OK);
    expect(byteDiff(drv.get(r.data, 4096), image.subarray(3 * 512, 3 * 512 + 4096))).toBe('');
    expect(drv.takeUsed(0)).toEqual([{ id: r.head, len: 4097 }]);
    // INTA of slot 4 is PIRQD, routed to IRQ 11 (and IOAPIC input 19)
    expect(drv.isaIrq).toBe(11);
    expect(drv.irq).toBe(true);
    expect(pc.irq.level(11)).toBe(true);
    expect(pc.irq.level(19)).toBe(true);
    expect(drv.readIsr()).toBe(1);
    expect(drv.irq).toBe(false);
    expect(pc.irq.level(11)).toBe(false);
    expect(drv.readIsr()).toBe(0);
  });

  it('writes guest data to the disk and flushes it', async () => {
    const { drv, store, image } = setup();
    drv.init();
    const payload = pattern(3 * 512, 99);
    // data split over two descriptors of 512 and 1024 bytes
    const w = request(drv, VIRTIO_BLK_T_OUT, 100, [512, 1024], { payload });
    const f = request(drv, VIRTIO_BLK_T_FLUSH, 0, []);
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 2)).toBe(true);
    expect(drv.m[w.status]).toBe(VIRTIO_BLK_S_OK);
    expect(drv.m[f.status]).toBe(VIRTIO_BLK_S_OK);
    const used = drv.takeUsed(0);
    expect(used.map((u) => u.id).sort()).toEqual([w.head, f.head].sort());
    expect(used.every((u) => u.len === 1)).toBe(true);
    const bytes = store.bytes();
    expect(byteDiff(bytes.subarray(100 * 512, 103 * 512), payload)).toBe('');
    // neighbours untouched
    expect(byteDiff(bytes.subarray(99 * 512, 100 * 512), image.subarray(99 * 512, 100 * 512))).toBe('');
    expect(byteDiff(bytes.subarray(103 * 512, 104 * 512), image.subarray(103 * 512, 104 * 512))).toBe('');
  });

  it('flush reaches the block device and takes its own latency', async () => {
    const calls: string[] = [];
    const store = new MemoryStore('disk.img', new Uint8Array(SECTORS * 512));
    const raw = new RawImage(store);
    const spy: BlockDevice = {
      name: 'spy',
      format: 'raw',
      sectors: raw.sectors,
      readOnly: false,
      read: (s, b) => raw.read(s, b),
      write: (s, d) => raw.write(s, d),
      flush: async () => {
        calls.push('flush');
      },
      close: () => raw.close(),
    };
    const { pc, drv } = setup({ disk: spy });
    drv.init();
    const f = request(drv, VIRTIO_BLK_T_FLUSH, 0, []);
    const t0 = pc.clock.now();
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 1)).toBe(true);
    expect(pc.clock.now() - t0).toBe(FLUSH_LATENCY_NS);
    expect(calls).toEqual(['flush']);
    expect(drv.m[f.status]).toBe(VIRTIO_BLK_S_OK);
  });

  it('GET_ID returns the serial number, zero-padded to 20 bytes', async () => {
    const { drv } = setup({ serial: 'SER-1234' });
    drv.init();
    const r = request(drv, VIRTIO_BLK_T_GET_ID, 0, [20]);
    drv.m.fill(0x55, r.data, r.data + 20);
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 1)).toBe(true);
    expect(drv.m[r.status]).toBe(VIRTIO_BLK_S_OK);
    const id = drv.get(r.data, 20);
    expect(String.fromCharCode(...id.subarray(0, 8))).toBe('SER-1234');
    expect([...id.subarray(8)].every((b) => b === 0)).toBe(true);
    expect(drv.takeUsed(0)[0].len).toBe(21);
  });

  it('the default serial names the slot', async () => {
    const { drv } = setup();
    drv.init();
    const r = request(drv, VIRTIO_BLK_T_GET_ID, 0, [20]);
    drv.kick(0);
    await drv.run(() => drv.usedIdx(0) === 1);
    expect(String.fromCharCode(...drv.get(r.data, 7))).toBe('x86vm-4');
  });

  it('serves a chain given through an indirect descriptor table', async () => {
    const { drv, image, store } = setup();
    drv.init();
    const r = request(drv, VIRTIO_BLK_T_IN, 40, [512, 2048, 1536], { indirect: true });
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 1)).toBe(true);
    expect(drv.m[r.status]).toBe(VIRTIO_BLK_S_OK);
    expect(byteDiff(drv.get(r.data, 4096), image.subarray(40 * 512, 48 * 512))).toBe('');
    // and a write the same way
    const payload = pattern(1024, 5);
    const w = request(drv, VIRTIO_BLK_T_OUT, 7, [1024], { indirect: true, payload });
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 2)).toBe(true);
    expect(drv.m[w.status]).toBe(VIRTIO_BLK_S_OK);
    expect(byteDiff(store.bytes().subarray(7 * 512, 9 * 512), payload)).toBe('');
  });

  it('keeps several requests in flight; each completes at its own time', async () => {
    const { pc, drv, blk, image } = setup();
    drv.init();
    const sizes = [65536, 512, 8192, 1024];
    const reqs = sizes.map((n, i) => request(drv, VIRTIO_BLK_T_IN, 64 * i, [n]));
    drv.kick(0);
    expect(blk.pending).toBe(4);
    const order: number[] = [];
    const t0 = pc.clock.now();
    const times: number[] = [];
    expect(
      await drv.run(() => {
        for (const u of drv.takeUsed(0)) {
          order.push(u.id);
          times.push(pc.clock.now() - t0);
        }
        return order.length === 4;
      }),
    ).toBe(true);
    // shortest transfer first
    const byTime = reqs.map((r, i) => ({ head: r.head, n: sizes[i] })).sort((a, b) => a.n - b.n);
    expect(order).toEqual(byTime.map((x) => x.head));
    expect(times).toEqual(byTime.map((x) => LATENCY_NS + x.n / BYTES_PER_NS));
    reqs.forEach((r, i) => {
      expect(drv.m[r.status]).toBe(VIRTIO_BLK_S_OK);
      expect(byteDiff(drv.get(r.data, sizes[i]), image.subarray(64 * i * 512, 64 * i * 512 + sizes[i]))).toBe('');
    });
    expect(blk.pending).toBe(0);
  });

  it('answers IOERR past the end or for partial sectors, UNSUPP for unknown types', async () => {
    const { drv, store, image } = setup();
    drv.init();
    const past = request(drv, VIRTIO_BLK_T_IN, SECTORS - 1, [1024]);
    const far = request(drv, VIRTIO_BLK_T_OUT, 2 ** 40, [512], { payload: new Uint8Array(512).fill(1) });
    const partial = request(drv, VIRTIO_BLK_T_OUT, 0, [100], { payload: new Uint8Array(100).fill(1) });
    const odd = request(drv, 99, 0, [512]);
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 4)).toBe(true);
    expect(drv.m[past.status]).toBe(VIRTIO_BLK_S_IOERR);
    expect(drv.m[far.status]).toBe(VIRTIO_BLK_S_IOERR);
    expect(drv.m[partial.status]).toBe(VIRTIO_BLK_S_IOERR);
    expect(drv.m[odd.status]).toBe(VIRTIO_BLK_S_UNSUPP);
    expect(byteDiff(store.bytes(), image)).toBe('');
  });

  it('a read-only disk offers RO and refuses writes', async () => {
    const { drv, store, image } = setup({ readOnly: true });
    const [lo] = drv.deviceFeatures();
    expect((lo >>> VIRTIO_BLK_F_RO) & 1).toBe(1);
    drv.init();
    const w = request(drv, VIRTIO_BLK_T_OUT, 0, [512], { payload: new Uint8Array(512).fill(9) });
    const r = request(drv, VIRTIO_BLK_T_IN, 0, [512]);
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 2)).toBe(true);
    expect(drv.m[w.status]).toBe(VIRTIO_BLK_S_IOERR);
    expect(drv.m[r.status]).toBe(VIRTIO_BLK_S_OK);
    expect(byteDiff(store.bytes(), image)).toBe('');
  });

  it('a failing host read gives IOERR and leaves the guest buffer alone', async () => {
    const failing: BlockDevice = {
      name: 'broken.img',
      format: 'raw',
      sectors: SECTORS,
      readOnly: false,
      read: async () => {
        throw new Error('broken.img: read error');
      },
      write: async () => {},
      flush: async () => {},
      close: async () => {},
    };
    const { drv, blk } = setup({ disk: failing });
    drv.init();
    const r = request(drv, VIRTIO_BLK_T_IN, 0, [512]);
    drv.m.fill(0x77, r.data, r.data + 512);
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 1)).toBe(true);
    expect(drv.m[r.status]).toBe(VIRTIO_BLK_S_IOERR);
    expect([...drv.get(r.data, 512)].every((b) => b === 0x77)).toBe(true);
    expect(blk.lastError).toBe('broken.img: read error');
  });

  it('a reset while requests are in flight drops their completions', async () => {
    const { drv, blk } = setup();
    drv.init();
    const r = request(drv, VIRTIO_BLK_T_IN, 0, [4096]);
    drv.kick(0);
    expect(blk.pending).toBe(1);
    drv.status = 0;
    expect(drv.status).toBe(0);
    expect(blk.pending).toBe(0);
    await drv.run();
    expect(drv.usedIdx(0)).toBe(0);
    expect(drv.m[r.status]).toBe(0xee);
    expect(drv.irq).toBe(false);
  });

  it('a machine reset resets the device', async () => {
    const { pc, drv } = setup();
    drv.init();
    expect(drv.status & 4).toBe(4);
    pc.machine.reset();
    expect(drv.cfgRead(0x20, 4)).toBe(0); // BAR unassigned again
    const d2 = new Driver(pc, drv.dev);
    expect(d2.status).toBe(0);
    expect(d2.common(0x1c, 2)).toBe(0); // queue 0 disabled
  });

  it('a snapshot taken with requests in flight restores them, and they complete after the restore', async () => {
    const a = setup();
    a.drv.init();
    const payload = pattern(2048, 3);
    const rd = request(a.drv, VIRTIO_BLK_T_IN, 200, [8192]);
    const wr = request(a.drv, VIRTIO_BLK_T_OUT, 300, [2048], { payload });
    const id = request(a.drv, VIRTIO_BLK_T_GET_ID, 0, [20]);
    a.drv.kick(0);
    a.pc.clock.advance(1000);
    await a.pc.machine.quiesce();
    const snap = JSON.parse(JSON.stringify({ bus: a.pc.pci!.bus.saveState(), ram: Array.from(a.pc.mem.mem8.subarray(0x100000, 0x200000)) }));
    const diskBytes = a.store.bytes().slice();

    // a second machine with the same disk contents
    const store2 = new MemoryStore('disk.img', diskBytes);
    const b = setup({ disk: new RawImage(store2) });
    b.pc.mem.mem8.set(snap.ram, 0x100000);
    b.pc.pci!.bus.loadState(snap.bus);
    expect(b.blk.pending).toBe(3);
    const t0 = b.pc.clock.now();
    const drv = b.drv;
    drv.queues[0] = a.drv.queues[0];
    expect(await drv.run(() => drv.usedIdx(0) === 3)).toBe(true);
    // the last one (the 8 KiB read) completes when it was due: its latency minus the 1000 ns that had passed
    expect(b.pc.clock.now() - t0).toBe(LATENCY_NS + 8192 / BYTES_PER_NS - 1000);
    expect(drv.m[rd.status]).toBe(VIRTIO_BLK_S_OK);
    expect(drv.m[wr.status]).toBe(VIRTIO_BLK_S_OK);
    expect(drv.m[id.status]).toBe(VIRTIO_BLK_S_OK);
    expect(byteDiff(drv.get(rd.data, 8192), a.image.subarray(200 * 512, 216 * 512))).toBe('');
    expect(byteDiff(store2.bytes().subarray(300 * 512, 304 * 512), payload)).toBe('');
    expect(drv.irq).toBe(true);
    // the restored device keeps serving new requests
    const more = request(drv, VIRTIO_BLK_T_IN, 300, [2048]);
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 4)).toBe(true);
    expect(byteDiff(drv.get(more.data, 2048), payload)).toBe('');
  });
});
