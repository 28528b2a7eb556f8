/**
 * The virtio 1.0 PCI transport and split virtqueues (devices/virtio.ts), driven by hand through PCI
 * configuration space and BAR4, with virtio-blk as the device behind it: the PCI identity and
 * capabilities, feature negotiation, the common configuration registers, the PCI_CFG window, ISR and
 * INTx, interrupt suppression (NO_INTERRUPT, EVENT_IDX), garbage from the driver → DEVICE_NEEDS_RESET,
 * notifications before DRIVER_OK, and the saved state.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../disk/block';
import { RawImage } from '../../disk/raw';
import { addVirtioBlk, VirtioBlk, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_S_OK } from '../../devices/virtio-blk';
import {
  VIRTIO_F_RING_EVENT_IDX,
  VIRTIO_F_RING_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  VIRTIO_STATUS_ACKNOWLEDGE,
  VIRTIO_STATUS_DRIVER,
  VIRTIO_STATUS_DRIVER_OK,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET,
  VIRTIO_STATUS_FEATURES_OK,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  freePciSlot,
  fromBase64,
  toBase64,
} from '../../devices/virtio';
import { PCI_BAR0, PCI_COMMAND, PCI_STATUS } from '../../devices/pci';
import { Driver, MEM, makePc, pattern, le32, le64 } from './virtio-driver';

function setup(slot?: number) {
  const store = new MemoryStore('disk.img', pattern(256 * 512, 1));
  let blk!: VirtioBlk;
  const pc = makePc([
    (p) => {
      blk = addVirtioBlk(p, new RawImage(store), { slot });
    },
  ]);
  return { pc, blk, drv: new Driver(pc, blk) };
}

/** a GET_ID request (a device-writable buffer and a status byte) on queue 0 */
function getId(drv: Driver, publish = true): { head: number; status: number } {
  const hdr = drv.alloc(16);
  drv.put(hdr, [...le32(VIRTIO_BLK_T_GET_ID), 0, 0, 0, 0, ...le64(0)]);
  const data = drv.alloc(20);
  const status = drv.alloc(1);
  drv.m[status] = 0xee;
  const head = drv.add(
    0,
    [
      { addr: hdr, len: 16 },
      { addr: data, len: 20, write: true },
      { addr: status, len: 1, write: true },
    ],
    { publish },
  );
  return { head, status };
}

const BOTH = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

describe('virtio PCI transport', () => {
  it('is a modern virtio PCI function with the five vendor capabilities pointing into BAR4', () => {
    const { drv, blk } = setup();
    expect(drv.cfgRead(0x00, 4)).toBe(0x10421af4);
    expect(drv.cfgRead(0x08, 1)).toBe(1); // revision 1: non-transitional
    expect(drv.cfgRead(0x09, 4) & 0xffffff).toBe(0x010000); // mass storage / SCSI class code bytes
    expect(drv.cfgRead(0x2c, 2)).toBe(0x1af4);
    expect(drv.cfgRead(0x2e, 2)).toBe(0x1100);
    expect(drv.cfgRead(0x3d, 1)).toBe(1); // INTA
    expect(drv.cfgRead(PCI_STATUS, 2) & 0x10).toBe(0x10);
    const caps = drv.virtioCaps();
    expect(caps.map((c) => c.type)).toEqual([1, 3, 4, 2, 5]);
    const byType = new Map(caps.map((c) => [c.type, c]));
    expect(byType.get(1)).toMatchObject({ bar: 4, offset: 0x0000, length: 0x1000, len: 16 });
    expect(byType.get(3)).toMatchObject({ bar: 4, offset: 0x1000, length: 0x1000, len: 16 });
    expect(byType.get(4)).toMatchObject({ bar: 4, offset: 0x2000, length: 0x1000, len: 16 });
    expect(byType.get(2)).toMatchObject({ bar: 4, offset: 0x3000, length: 0x1000, len: 20 });
    expect(drv.cfgRead(byType.get(2)!.at + 16, 4)).toBe(4); // notify_off_multiplier
    expect(byType.get(5)).toMatchObject({ len: 20 });
    // BAR4 is 16 KiB of 32-bit memory
    drv.cfgWrite(PCI_BAR0 + 16, 0xffffffff, 4);
    expect(drv.cfgRead(PCI_BAR0 + 16, 4)).toBe(0xffffc000);
    drv.cfgWrite(PCI_BAR0 + 16, 0xe0000000, 4);
    expect(blk.mappedAt[4]).toBe(0xe0000000);
  });

  it('picks the first free slot from 4, or the slot asked for', () => {
    const { pc, blk } = setup();
    expect(blk.devfn).toBe(4 << 3);
    expect(freePciSlot(pc.pci!.bus)).toBe(5);
    const b = setup(9);
    expect(b.blk.devfn).toBe(9 << 3);
    expect(() => addVirtioBlk(b.pc, b.blk.disk, { slot: 9 })).toThrow(/taken/);
  });

  it('negotiates features: VERSION_1 must be accepted, nothing beyond the offer', () => {
    const { drv } = setup();
    const [lo, hi] = drv.deviceFeatures();
    expect(hi).toBe(1 << (VIRTIO_F_VERSION_1 - 32));
    expect((lo >>> VIRTIO_F_RING_INDIRECT_DESC) & 1).toBe(1);
    expect((lo >>> VIRTIO_F_RING_EVENT_IDX) & 1).toBe(1);
    // device_feature_select beyond 1 reads 0
    drv.setCommon(0x00, 2, 4);
    expect(drv.common(0x04, 4)).toBe(0);

    drv.status = 0;
    drv.status = BOTH;
    drv.setDriverFeatures(lo, 0); // no VERSION_1
    drv.status = BOTH | VIRTIO_STATUS_FEATURES_OK;
    expect(drv.status).toBe(BOTH);

    drv.status = 0;
    drv.status = BOTH;
    drv.setDriverFeatures((lo | (1 << 20)) >>> 0, hi); // bit 20 is not offered
    drv.status = BOTH | VIRTIO_STATUS_FEATURES_OK;
    expect(drv.status).toBe(BOTH);

    drv.status = 0;
    expect(drv.status).toBe(0);
    drv.status = BOTH;
    drv.setDriverFeatures(lo, hi);
    drv.status = BOTH | VIRTIO_STATUS_FEATURES_OK;
    expect(drv.status).toBe(BOTH | VIRTIO_STATUS_FEATURES_OK);
    // the accepted features read back, and no longer change once FEATURES_OK is set
    drv.setCommon(0x08, 0, 4);
    expect(drv.common(0x0c, 4)).toBe(lo);
    drv.setCommon(0x0c, 0, 4);
    expect(drv.common(0x0c, 4)).toBe(lo);
    expect(drv.dev.hasFeature(VIRTIO_F_VERSION_1)).toBe(true);
  });

  it('common configuration: queues, vectors, narrow accesses, reset', () => {
    const { drv } = setup();
    expect(drv.common(0x12, 2)).toBe(1); // num_queues
    expect(drv.common(0x10, 2)).toBe(0xffff); // msix_config: NO_VECTOR
    drv.setCommon(0x16, 0, 2);
    expect(drv.common(0x18, 2)).toBe(128);
    expect(drv.common(0x1a, 2)).toBe(0xffff);
    expect(drv.common(0x1c, 2)).toBe(0);
    expect(drv.common(0x1e, 2)).toBe(0);
    // a queue that does not exist has size 0
    drv.setCommon(0x16, 3, 2);
    expect(drv.common(0x18, 2)).toBe(0);
    drv.setCommon(0x16, 0, 2);
    // narrow writes merge into their field; a 32-bit read covers two 16-bit fields
    drv.setCommon(0x20, 0x5000, 2);
    drv.setCommon(0x22, 0x0012, 2);
    expect(drv.common(0x20, 4)).toBe(0x125000);
    drv.w8(0x18, 0x40);
    expect(drv.common(0x18, 2)).toBe(0x40);
    expect(drv.common(0x16, 4)).toBe(0x400000); // queue_select 0, queue_size 0x40
    drv.status = BOTH;
    drv.status = 0;
    expect(drv.common(0x18, 2)).toBe(128);
    expect(drv.common(0x20, 4)).toBe(0);
    expect(drv.status).toBe(0);
    // the virtio 1.2 fields queue_notify_data / queue_reset read as 0
    expect(drv.common(0x38, 4)).toBe(0);
  });

  it('serves the BAR through the PCI_CFG window too', () => {
    const { drv } = setup();
    const cap = drv.virtioCaps().find((c) => c.type === 5)!.at;
    // num_queues (common +0x12, 2 bytes)
    drv.cfgWrite(cap + 4, 4, 1);
    drv.cfgWrite(cap + 8, 0x12, 4);
    drv.cfgWrite(cap + 12, 2, 4);
    expect(drv.cfgRead(cap + 16, 4)).toBe(1);
    // device_status written through the window
    drv.cfgWrite(cap + 8, 0x14, 4);
    drv.cfgWrite(cap + 12, 1, 4);
    drv.cfgWrite(cap + 16, VIRTIO_STATUS_ACKNOWLEDGE, 4);
    expect(drv.status).toBe(VIRTIO_STATUS_ACKNOWLEDGE);
    // capacity in the device configuration (0x2000)
    drv.cfgWrite(cap + 8, 0x2000, 4);
    drv.cfgWrite(cap + 12, 4, 4);
    expect(drv.cfgRead(cap + 16, 4)).toBe(256);
    // a window onto another BAR does nothing
    drv.cfgWrite(cap + 4, 0, 1);
    drv.cfgWrite(cap + 8, 0x14, 4);
    drv.cfgWrite(cap + 12, 1, 4);
    drv.cfgWrite(cap + 16, 0, 4);
    expect(drv.status).toBe(VIRTIO_STATUS_ACKNOWLEDGE);
  });

  it('ISR: read to clear, deasserting INTx; INTx disable masks the line', async () => {
    const { pc, drv } = setup();
    drv.init();
    getId(drv);
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 1)).toBe(true);
    expect(drv.irq).toBe(true);
    expect(pc.irq.level(drv.isaIrq)).toBe(true);
    drv.cfgWrite(PCI_COMMAND, 0x0406, 2); // INTx disable
    expect(pc.irq.level(drv.isaIrq)).toBe(false);
    drv.cfgWrite(PCI_COMMAND, 0x0006, 2);
    expect(pc.irq.level(drv.isaIrq)).toBe(true);
    expect(drv.readIsr()).toBe(1);
    expect(pc.irq.level(drv.isaIrq)).toBe(false);
    expect(drv.readIsr()).toBe(0);
  });

  it('the avail ring NO_INTERRUPT flag suppresses interrupts when EVENT_IDX is off', async () => {
    const { drv } = setup();
    drv.init({ drop: [VIRTIO_F_RING_EVENT_IDX] });
    drv.w16m(drv.queues[0].avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
    getId(drv);
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 1)).toBe(true);
    expect(drv.irq).toBe(false);
    expect(drv.readIsr()).toBe(0);
    drv.w16m(drv.queues[0].avail, 0);
    getId(drv);
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 2)).toBe(true);
    expect(drv.irq).toBe(true);
  });

  it('EVENT_IDX: interrupts when the used index passes used_event; avail_event follows the device', async () => {
    const { drv } = setup();
    const [lo] = drv.init();
    expect((lo >>> VIRTIO_F_RING_EVENT_IDX) & 1).toBe(1);
    const q = drv.queues[0];
    const usedEvent = q.avail + 4 + 2 * q.size;
    const availEvent = q.used + 4 + 8 * q.size;
    getId(drv);
    drv.kick(0);
    expect(drv.r16m(availEvent)).toBe(1); // the device has taken avail entry 0
    expect(await drv.run(() => drv.usedIdx(0) === 1)).toBe(true);
    expect(drv.readIsr()).toBe(1); // the first one always interrupts
    // interrupt only once used idx moves past 2
    drv.w16m(usedEvent, 2);
    getId(drv);
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 2)).toBe(true);
    expect(drv.irq).toBe(false);
    getId(drv);
    drv.kick(0);
    expect(drv.r16m(availEvent)).toBe(3);
    expect(await drv.run(() => drv.usedIdx(0) === 3)).toBe(true);
    expect(drv.irq).toBe(true);
    expect(drv.readIsr()).toBe(1);
  });

  it('a notification before DRIVER_OK is served once DRIVER_OK is set', async () => {
    const { drv, blk } = setup();
    drv.init({ driverOk: false });
    const r = getId(drv);
    drv.kick(0);
    await drv.run();
    expect(drv.usedIdx(0)).toBe(0);
    expect(blk.pending).toBe(0);
    drv.status = drv.status | VIRTIO_STATUS_DRIVER_OK;
    expect(blk.pending).toBe(1);
    expect(await drv.run(() => drv.usedIdx(0) === 1)).toBe(true);
    expect(drv.m[r.status]).toBe(VIRTIO_BLK_S_OK);
  });

  describe('garbage from the driver sets DEVICE_NEEDS_RESET', () => {
    /** what a broken chain does: NEEDS_RESET, a configuration interrupt, no used entry, then recovery */
    async function expectBroken(drv: Driver, blk: VirtioBlk, why: RegExp): Promise<void> {
      drv.kick(0);
      await drv.run();
      expect(drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).toBe(VIRTIO_STATUS_DEVICE_NEEDS_RESET);
      expect(blk.brokenReason).toMatch(why);
      expect(drv.usedIdx(0)).toBe(0);
      expect(drv.irq).toBe(true);
      expect(drv.readIsr()).toBe(2); // configuration change
      // further requests are ignored until a reset
      getId(drv);
      drv.kick(0);
      await drv.run();
      expect(drv.usedIdx(0)).toBe(0);
      // reset and initialise again: it works
      drv.init();
      expect(drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).toBe(0);
      expect(blk.brokenReason).toBe(null);
      const r = getId(drv);
      drv.kick(0);
      expect(await drv.run(() => drv.usedIdx(0) === 1)).toBe(true);
      expect(drv.m[r.status]).toBe(VIRTIO_BLK_S_OK);
    }

    it('a descriptor loop', async () => {
      const { drv, blk } = setup();
      drv.init();
      const q = drv.queues[0];
      const buf = drv.alloc(64);
      drv.writeDesc(q.desc, 0, buf, 16, VIRTQ_DESC_F_NEXT, 1);
      drv.writeDesc(q.desc, 1, buf + 16, 16, VIRTQ_DESC_F_NEXT, 0);
      drv.publish(0, 0);
      q.nextDesc = 2;
      await expectBroken(drv, blk, /loops/);
    });

    it('a buffer outside RAM', async () => {
      const { drv, blk } = setup();
      drv.init();
      drv.add(0, [
        { addr: MEM - 8, len: 16 },
        { addr: 0x1000, len: 1, write: true },
      ]);
      await expectBroken(drv, blk, /outside RAM/);
    });

    it('a readable descriptor after a writable one', async () => {
      const { drv, blk } = setup();
      drv.init();
      const b = drv.alloc(64);
      drv.add(0, [
        { addr: b, len: 1, write: true },
        { addr: b + 16, len: 16 },
      ]);
      await expectBroken(drv, blk, /readable descriptor 1 after a writable one/);
    });

    it('a head index beyond the table, and an avail index jumping past the ring', async () => {
      const { drv, blk } = setup();
      drv.init();
      drv.publish(0, 500);
      await expectBroken(drv, blk, /head 500/);
      const b = setup();
      b.drv.init();
      b.drv.w16m(b.drv.queues[0].avail + 2, 1000);
      b.drv.queues[0].availIdx = 1000;
      await expectBroken(b.drv, b.blk, /avail idx 1000/);
    });

    it('an indirect descriptor with NEXT, and nested indirect tables', async () => {
      const { drv, blk } = setup();
      drv.init();
      const q = drv.queues[0];
      const table = drv.alloc(32);
      drv.writeDesc(q.desc, 0, table, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
      drv.publish(0, 0);
      q.nextDesc = 1;
      await expectBroken(drv, blk, /also has NEXT/);
      const b = setup();
      b.drv.init();
      const t2 = b.drv.alloc(16);
      const t1 = b.drv.alloc(16);
      b.drv.writeDesc(t1, 0, t2, 16, VIRTQ_DESC_F_INDIRECT, 0);
      b.drv.writeDesc(b.drv.queues[0].desc, 0, t1, 16, VIRTQ_DESC_F_INDIRECT, 0);
      b.drv.publish(0, 0);
      b.drv.queues[0].nextDesc = 1;
      await expectBroken(b.drv, b.blk, /inside an indirect/);
    });

    it('a request without a status byte', async () => {
      const { drv, blk } = setup();
      drv.init();
      const hdr = drv.alloc(16);
      drv.put(hdr, [...le32(VIRTIO_BLK_T_IN), 0, 0, 0, 0, ...le64(0)]);
      drv.add(0, [{ addr: hdr, len: 16 }]);
      await expectBroken(drv, blk, /status byte/);
    });

    it('rings outside RAM or misaligned when the queue is enabled', () => {
      const { drv, blk } = setup();
      drv.status = 0;
      drv.status = BOTH;
      const [lo, hi] = drv.deviceFeatures();
      drv.setDriverFeatures(lo, hi);
      drv.status = BOTH | VIRTIO_STATUS_FEATURES_OK;
      drv.setCommon(0x16, 0, 2);
      drv.setCommon(0x20, MEM - 16, 4);
      drv.setCommon(0x28, 0x200000, 4);
      drv.setCommon(0x30, 0x300000, 4);
      drv.setCommon(0x1c, 1, 2);
      expect(blk.brokenReason).toMatch(/outside RAM/);
      expect(drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).toBe(VIRTIO_STATUS_DEVICE_NEEDS_RESET);
      drv.status = 0;
      drv.status = BOTH;
      drv.setCommon(0x16, 0, 2);
      drv.setCommon(0x20, 0x100008, 4);
      drv.setCommon(0x1c, 1, 2);
      expect(blk.brokenReason).toMatch(/misaligned/);
      drv.status = 0;
      drv.setCommon(0x16, 0, 2);
      drv.setCommon(0x18, 100, 2); // not a power of two
      drv.setCommon(0x1c, 1, 2);
      expect(blk.brokenReason).toMatch(/power of two/);
    });
  });

  it('a chain whose data spans descriptors of any framing (header split, data and status together)', async () => {
    const { drv } = setup();
    drv.init();
    const hdr = drv.alloc(16);
    drv.put(hdr, [...le32(VIRTIO_BLK_T_IN), 0, 0, 0, 0, ...le64(2)]);
    const data = drv.alloc(513);
    drv.m[data + 512] = 0xee;
    drv.add(0, [
      { addr: hdr, len: 5 },
      { addr: hdr + 5, len: 11 },
      { addr: data, len: 513, write: true }, // data and status byte in one buffer
    ]);
    drv.kick(0);
    expect(await drv.run(() => drv.usedIdx(0) === 1)).toBe(true);
    expect(drv.m[data + 512]).toBe(VIRTIO_BLK_S_OK);
    expect(drv.get(data, 512)).toEqual(pattern(256 * 512, 1).subarray(1024, 1536));
  });

  it('saves and restores the transport state, including queue indices and ISR', async () => {
    const a = setup();
    a.drv.init();
    getId(a.drv);
    a.drv.kick(0);
    await a.drv.run(() => a.drv.usedIdx(0) === 1);
    const state = JSON.parse(JSON.stringify(a.pc.pci!.bus.saveState()));
    const ram = a.pc.mem.mem8.slice(0x100000, 0x140000);

    const b = setup();
    b.pc.mem.mem8.set(ram, 0x100000);
    b.pc.pci!.bus.loadState(state);
    expect(b.drv.status).toBe(a.drv.status);
    expect(b.drv.irq).toBe(true);
    expect(b.pc.irq.level(b.drv.isaIrq)).toBe(true);
    expect(b.blk.hasFeature(VIRTIO_F_RING_EVENT_IDX)).toBe(true);
    b.drv.queues[0] = a.drv.queues[0];
    expect(b.drv.readIsr()).toBe(1);
    // the next request lands in used slot 1 of the restored ring
    const r = getId(b.drv);
    b.drv.kick(0);
    expect(await b.drv.run(() => b.drv.usedIdx(0) === 2)).toBe(true);
    expect(b.drv.takeUsed(0).map((u) => u.id)).toEqual([0, r.head]);
  });

  it('base64 for saved byte buffers round-trips', () => {
    for (const n of [0, 1, 2, 3, 4, 5, 100, 4099]) {
      const b = pattern(n, n + 1);
      const text = toBase64(b);
      expect(text.length).toBe(Math.ceil(n / 3) * 4);
      expect(fromBase64(text)).toEqual(b);
    }
    expect(toBase64(Uint8Array.of(0xfb, 0xff))).toBe('+/8=');
    expect(() => fromBase64('a$b')).toThrow(/base64/);
  });
});
