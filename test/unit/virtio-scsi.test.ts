/**
 * virtio-scsi: the guest driver played by hand (test/unit/virtio-driver.ts). Most cases use a small
 * test-only SCSI target whose completions the test can hold back; one runs the real ScsiDisk from
 * devices/scsi.ts. Covers the configuration, commands through the request queue, absent targets and
 * LUNs, REPORT LUNS, sense and residuals, the control queue (TMF, AN), hot-plug events, ordering per LUN,
 * reset and snapshots with commands in flight.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../disk/block';
import { RawImage } from '../../disk/raw';
import { SCSI_CHECK_CONDITION, SCSI_GOOD, ScsiDisk, type ScsiResult, type ScsiTarget } from '../../devices/scsi';
import {
  addVirtioScsi,
  encodeLun,
  VirtioScsi,
  QUEUE_CONTROL,
  QUEUE_EVENT,
  QUEUE_REQUEST,
  VIRTIO_SCSI_F_HOTPLUG,
  VIRTIO_SCSI_S_BAD_TARGET,
  VIRTIO_SCSI_S_FAILURE,
  VIRTIO_SCSI_S_FUNCTION_COMPLETE,
  VIRTIO_SCSI_S_FUNCTION_REJECTED,
  VIRTIO_SCSI_S_FUNCTION_SUCCEEDED,
  VIRTIO_SCSI_S_OK,
  VIRTIO_SCSI_S_OVERRUN,
  VIRTIO_SCSI_T_AN_QUERY,
  VIRTIO_SCSI_T_EVENTS_MISSED,
  VIRTIO_SCSI_T_TMF,
  VIRTIO_SCSI_T_TMF_ABORT_TASK,
  VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET,
  VIRTIO_SCSI_T_TMF_QUERY_TASK,
  VIRTIO_SCSI_T_TRANSPORT_RESET,
  VIRTIO_SCSI_EVT_RESET_REMOVED,
  VIRTIO_SCSI_EVT_RESET_RESCAN,
} from '../../devices/virtio-scsi';
import { Driver, byteDiff, makePc, pattern, le32, le64 } from './virtio-driver';

const BLOCKS = 1024;

/** a minimal SBC disk: TEST UNIT READY, INQUIRY, READ CAPACITY(10), READ(10), WRITE(10) */
class TestDisk implements ScsiTarget {
  readonly kind = 'disk' as const;
  readonly data: Uint8Array;
  /** opcodes in the order they started */
  readonly started: number[] = [];
  running = 0;
  maxRunning = 0;
  /** while set, commands wait for it before finishing */
  gate: Promise<void> | null = null;
  loaded: unknown = null;
  readonly name: string;

  constructor(name = 'TESTDISK', seed = 11) {
    this.name = name;
    this.data = pattern(BLOCKS * 512, seed);
  }

  dataOutLength(cdb: Uint8Array): number {
    return cdb[0] === 0x2a ? ((cdb[7] << 8) | cdb[8]) * 512 : 0;
  }

  async execute(cdb: Uint8Array, dataOut: Uint8Array | null): Promise<ScsiResult> {
    this.started.push(cdb[0]);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      if (this.gate) await this.gate;
      await Promise.resolve();
      return this.run(cdb, dataOut);
    } finally {
      this.running--;
    }
  }

  private run(cdb: Uint8Array, dataOut: Uint8Array | null): ScsiResult {
    const ok = (dataIn: Uint8Array | null = null): ScsiResult => ({ status: SCSI_GOOD, dataIn, sense: null });
    const lba = ((cdb[2] << 24) | (cdb[3] << 16) | (cdb[4] << 8) | cdb[5]) >>> 0;
    const count = (cdb[7] << 8) | cdb[8];
    switch (cdb[0]) {
      case 0x00:
        return ok();
      case 0x12: {
        const d = new Uint8Array(36);
        d[2] = 5;
        d[3] = 2;
        d[4] = 31;
        for (let i = 0; i < this.name.length; i++) d[8 + i] = this.name.charCodeAt(i);
        return ok(d.subarray(0, Math.min(36, (cdb[3] << 8) | cdb[4])));
      }
      case 0x25:
        return ok(Uint8Array.of(0, 0, (BLOCKS - 1) >> 8, (BLOCKS - 1) & 0xff, 0, 0, 2, 0));
      case 0x28:
        return ok(this.data.slice(lba * 512, (lba + count) * 512));
      case 0x2a:
        this.data.set(dataOut!, lba * 512);
        return ok();
      default: {
        const s = new Uint8Array(18);
        s[0] = 0x70;
        s[2] = 5;
        s[7] = 10;
        s[12] = 0x20;
        return { status: SCSI_CHECK_CONDITION, dataIn: null, sense: s };
      }
    }
  }

  saveState(): unknown {
    return { name: this.name, started: this.started.length };
  }

  loadState(state: unknown): void {
    this.loaded = state;
  }
}

function setup(options: { attach?: boolean } = {}) {
  let hba!: VirtioScsi;
  const pc = makePc([
    (p) => {
      hba = addVirtioScsi(p);
    },
  ]);
  const disk = new TestDisk();
  if (options.attach !== false) hba.attach(0, 0, disk);
  const drv = new Driver(pc, hba);
  return { pc, hba, drv, disk };
}

interface Cmd {
  head: number;
  resp: number;
  dataIn: number;
}

interface Resp {
  senseLen: number;
  resid: number;
  status: number;
  response: number;
  sense: Uint8Array;
}

/** a virtio_scsi_cmd_req on the request queue */
function command(
  drv: Driver,
  lunField: Uint8Array | number[],
  cdb: number[],
  options: { dataIn?: number; dataOut?: Uint8Array; id?: number; senseSize?: number; publish?: boolean } = {},
): Cmd {
  const req = drv.alloc(51);
  const cdb32 = new Uint8Array(32);
  cdb32.set(cdb);
  drv.put(req, [...lunField, ...le64(options.id ?? 0), 0, 0, 0, ...cdb32]);
  const respLen = 12 + (options.senseSize ?? 96);
  const resp = drv.alloc(respLen);
  drv.m.fill(0xcc, resp, resp + respLen);
  const segs = [{ addr: req, len: 51 }];
  if (options.dataOut) {
    const out = drv.alloc(options.dataOut.length);
    drv.put(out, options.dataOut);
    segs.push({ addr: out, len: options.dataOut.length });
  }
  segs.push({ addr: resp, len: respLen, write: true } as never);
  const dataIn = options.dataIn ? drv.alloc(options.dataIn) : 0;
  if (options.dataIn) segs.push({ addr: dataIn, len: options.dataIn, write: true } as never);
  const head = drv.add(QUEUE_REQUEST, segs, { publish: options.publish });
  return { head, resp, dataIn };
}

function response(drv: Driver, c: Cmd): Resp {
  return {
    senseLen: drv.r32m(c.resp),
    resid: drv.r32m(c.resp + 4),
    status: drv.m[c.resp + 10],
    response: drv.m[c.resp + 11],
    sense: drv.get(c.resp + 12, 18),
  };
}

const LUN0 = encodeLun(0, 0);
const cdb10 = (op: number, lba: number, count: number): number[] => [op, 0, lba >>> 24, (lba >>> 16) & 0xff, (lba >>> 8) & 0xff, lba & 0xff, 0, count >> 8, count & 0xff, 0];

async function runCommands(drv: Driver, n: number): Promise<void> {
  drv.kick(QUEUE_REQUEST);
  expect(await drv.run(() => drv.usedIdx(QUEUE_REQUEST) === n)).toBe(true);
}

describe('virtio-scsi', () => {
  it('presents a virtio 1.0 SCSI host with three queues and its configuration', () => {
    const { drv } = setup();
    expect(drv.cfgRead(0, 4)).toBe(0x10481af4);
    expect(drv.common(0x12, 2)).toBe(3);
    for (let q = 0; q < 3; q++) {
      drv.setCommon(0x16, q, 2);
      expect(drv.common(0x18, 2)).toBe(128);
    }
    const [lo] = drv.deviceFeatures();
    expect((lo >>> VIRTIO_SCSI_F_HOTPLUG) & 1).toBe(1);
    expect(drv.devCfg32(0x00)).toBe(1); // num_queues (request queues)
    expect(drv.devCfg32(0x04)).toBe(126); // seg_max
    expect(drv.devCfg32(0x08)).toBe(0xffff); // max_sectors
    expect(drv.devCfg32(0x0c)).toBe(128); // cmd_per_lun
    expect(drv.devCfg32(0x10)).toBe(16); // event_info_size
    expect(drv.devCfg32(0x14)).toBe(96); // sense_size
    expect(drv.devCfg32(0x18)).toBe(32); // cdb_size
    expect(drv.devCfg16(0x1c)).toBe(0); // max_channel
    expect(drv.devCfg16(0x1e)).toBe(255); // max_target
    expect(drv.devCfg32(0x20)).toBe(16383); // max_lun
    // sense_size and cdb_size belong to the driver; the rest is read-only; reset restores them
    drv.w32(0x2000 + 0x14, 64);
    drv.w32(0x2000 + 0x18, 16);
    drv.w32(0x2000 + 0x00, 9);
    expect(drv.devCfg32(0x14)).toBe(64);
    expect(drv.devCfg32(0x18)).toBe(16);
    expect(drv.devCfg32(0x00)).toBe(1);
    drv.status = 0;
    expect(drv.devCfg32(0x14)).toBe(96);
    expect(drv.devCfg32(0x18)).toBe(32);
  });

  it('runs INQUIRY, READ CAPACITY, READ(10) and WRITE(10) on the attached target', async () => {
    const { drv, disk } = setup();
    drv.init();
    const inq = command(drv, LUN0, [0x12, 0, 0, 0, 36, 0], { dataIn: 96 });
    const cap = command(drv, LUN0, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], { dataIn: 8 });
    const rd = command(drv, LUN0, cdb10(0x28, 10, 8), { dataIn: 4096 });
    const payload = pattern(1024, 3);
    const wr = command(drv, LUN0, cdb10(0x2a, 500, 2), { dataOut: payload });
    await runCommands(drv, 4);
    const used = new Map(drv.takeUsed(QUEUE_REQUEST).map((u) => [u.id, u.len]));
    for (const c of [inq, cap, rd, wr]) {
      const r = response(drv, c);
      expect(r.response).toBe(VIRTIO_SCSI_S_OK);
      expect(r.status).toBe(SCSI_GOOD);
      expect(r.senseLen).toBe(0);
    }
    expect(String.fromCharCode(...drv.get(inq.dataIn + 8, 8))).toBe('TESTDISK');
    expect(response(drv, inq).resid).toBe(96 - 36);
    expect(used.get(inq.head)).toBe(108 + 36);
    expect(drv.get(cap.dataIn, 8)).toEqual(Uint8Array.of(0, 0, 3, 0xff, 0, 0, 2, 0));
    expect(byteDiff(drv.get(rd.dataIn, 4096), disk.data.subarray(10 * 512, 18 * 512))).toBe('');
    expect(response(drv, rd).resid).toBe(0);
    expect(used.get(rd.head)).toBe(108 + 4096);
    expect(byteDiff(disk.data.subarray(500 * 512, 502 * 512), payload)).toBe('');
    expect(used.get(wr.head)).toBe(108);
  });

  it('drives the real ScsiDisk of devices/scsi.ts', async () => {
    const image = pattern(4096 * 512, 21);
    const { drv, hba } = setup({ attach: false });
    hba.attach(2, 0, new ScsiDisk(new RawImage(new MemoryStore('sd.img', image.slice()))));
    drv.init();
    const lun = encodeLun(2, 0);
    const inq = command(drv, lun, [0x12, 0, 0, 0, 36, 0], { dataIn: 36 });
    const cap = command(drv, lun, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], { dataIn: 8 });
    const rd = command(drv, lun, cdb10(0x28, 4000, 16), { dataIn: 8192 });
    await runCommands(drv, 3);
    for (const c of [inq, cap, rd]) expect(response(drv, c)).toMatchObject({ response: VIRTIO_SCSI_S_OK, status: SCSI_GOOD });
    expect(drv.m[inq.dataIn] & 0x1f).toBe(0); // direct-access block device
    expect(drv.get(cap.dataIn, 8)).toEqual(Uint8Array.of(0, 0, 0x0f, 0xff, 0, 0, 2, 0));
    expect(byteDiff(drv.get(rd.dataIn, 8192), image.subarray(4000 * 512, 4016 * 512))).toBe('');
  });

  it('answers BAD_TARGET for absent targets and malformed LUN fields, without a target', async () => {
    const { drv, disk, pc } = setup();
    drv.init();
    const t0 = pc.clock.now();
    const absent = command(drv, encodeLun(7, 0), [0x12, 0, 0, 0, 36, 0], { dataIn: 36 });
    const badFirst = command(drv, [2, 0, 0x40, 0, 0, 0, 0, 0], [0x00]);
    const badHigh = command(drv, [1, 0, 0x80, 0, 0, 0, 0, 0], [0x00]);
    await runCommands(drv, 3);
    for (const c of [absent, badFirst, badHigh]) expect(response(drv, c).response).toBe(VIRTIO_SCSI_S_BAD_TARGET);
    expect(disk.started).toEqual([]);
    expect(pc.clock.now() - t0).toBeLessThanOrEqual(5000); // quick answers keep the bus scan short
  });

  it('answers for absent LUNs of a present target, and REPORT LUNS with the inventory', async () => {
    const { drv, hba, disk } = setup();
    hba.attach(0, 300, new TestDisk('LUN300'));
    drv.init();
    const inq = command(drv, encodeLun(0, 5), [0x12, 0, 0, 0, 36, 0], { dataIn: 36 });
    const tur = command(drv, encodeLun(0, 5), [0x00]);
    const rl = command(drv, encodeLun(0, 5), [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0], { dataIn: 256 });
    const inq300 = command(drv, encodeLun(0, 300), [0x12, 0, 0, 0, 36, 0], { dataIn: 36 });
    // LUN field with lun[2] = 0 (peripheral addressing) also reaches LUN 0
    const tur0 = command(drv, [1, 0, 0, 0, 0, 0, 0, 0], [0x00]);
    await runCommands(drv, 5);
    expect(response(drv, inq)).toMatchObject({ response: VIRTIO_SCSI_S_OK, status: SCSI_GOOD });
    expect(drv.m[inq.dataIn]).toBe(0x7f);
    const t = response(drv, tur);
    expect(t.status).toBe(SCSI_CHECK_CONDITION);
    expect(t.senseLen).toBe(18);
    expect([t.sense[2] & 0xf, t.sense[12], t.sense[13]]).toEqual([5, 0x25, 0]);
    expect(response(drv, rl).status).toBe(SCSI_GOOD);
    expect(drv.get(rl.dataIn, 24)).toEqual(Uint8Array.of(0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x41, 300 & 0xff, 0, 0, 0, 0, 0, 0));
    expect(response(drv, rl).resid).toBe(256 - 24);
    expect(String.fromCharCode(...drv.get(inq300.dataIn + 8, 6))).toBe('LUN300');
    expect(response(drv, tur0).status).toBe(SCSI_GOOD);
    expect(disk.started).toEqual([0x00]);
  });

  it('returns the target sense, cut to the configured sense_size', async () => {
    const { drv } = setup();
    drv.init();
    drv.w32(0x2000 + 0x14, 8);
    const c = command(drv, LUN0, [0xff], { senseSize: 8 });
    await runCommands(drv, 1);
    const r = response(drv, c);
    expect(r.status).toBe(SCSI_CHECK_CONDITION);
    expect(r.senseLen).toBe(8);
    expect(drv.get(c.resp + 12, 8)).toEqual(Uint8Array.of(0x70, 0, 5, 0, 0, 0, 0, 10));
    expect(drv.takeUsed(QUEUE_REQUEST)[0].len).toBe(20);
  });

  it('refuses data-out shorter than the command needs (OVERRUN) and bidirectional requests (FAILURE)', async () => {
    const { drv, disk } = setup();
    drv.init();
    const short = command(drv, LUN0, cdb10(0x2a, 0, 4), { dataOut: new Uint8Array(1024) });
    const both = command(drv, LUN0, cdb10(0x2a, 0, 1), { dataOut: new Uint8Array(512), dataIn: 512 });
    await runCommands(drv, 2);
    expect(response(drv, short).response).toBe(VIRTIO_SCSI_S_OVERRUN);
    expect(response(drv, both).response).toBe(VIRTIO_SCSI_S_FAILURE);
    expect(disk.started).toEqual([]);
  });

  it('runs the commands of one LUN one at a time, in order', async () => {
    const { drv, disk } = setup();
    drv.init();
    const cmds = [0, 1, 2, 3, 4].map((i) => command(drv, LUN0, cdb10(0x28, i, 1), { dataIn: 512 }));
    await runCommands(drv, 5);
    expect(disk.maxRunning).toBe(1);
    expect(disk.started).toEqual([0x28, 0x28, 0x28, 0x28, 0x28]);
    cmds.forEach((c, i) => expect(byteDiff(drv.get(c.dataIn, 512), disk.data.subarray(i * 512, (i + 1) * 512))).toBe(''));
  });

  describe('control queue', () => {
    function control(drv: Driver, bytes: number[], respLen: number): { head: number; resp: number } {
      const req = drv.alloc(bytes.length);
      drv.put(req, bytes);
      const resp = drv.alloc(respLen);
      drv.m.fill(0xcc, resp, resp + respLen);
      const head = drv.add(QUEUE_CONTROL, [
        { addr: req, len: bytes.length },
        { addr: resp, len: respLen, write: true },
      ]);
      return { head, resp };
    }
    const tmf = (subtype: number, lun: Uint8Array, id = 0): number[] => [...le32(VIRTIO_SCSI_T_TMF), ...le32(subtype), ...lun, ...le64(id)];

    it('answers asynchronous notification queries with no events', async () => {
      const { drv } = setup();
      drv.init();
      const an = control(drv, [...le32(VIRTIO_SCSI_T_AN_QUERY), ...LUN0, ...le32(0xffff)], 5);
      drv.kick(QUEUE_CONTROL);
      expect(await drv.run(() => drv.usedIdx(QUEUE_CONTROL) === 1)).toBe(true);
      expect(drv.r32m(an.resp)).toBe(0);
      expect(drv.m[an.resp + 4]).toBe(VIRTIO_SCSI_S_OK);
    });

    it('ABORT TASK completes only after the command it names has completed', async () => {
      const { pc, drv, disk } = setup();
      drv.init();
      let open!: () => void;
      disk.gate = new Promise((r) => (open = r));
      const c = command(drv, LUN0, cdb10(0x28, 0, 1), { dataIn: 512, id: 77 });
      drv.kick(QUEUE_REQUEST);
      const query = control(drv, tmf(VIRTIO_SCSI_T_TMF_QUERY_TASK, LUN0, 77), 1);
      const abort = control(drv, tmf(VIRTIO_SCSI_T_TMF_ABORT_TASK, LUN0, 77), 1);
      drv.kick(QUEUE_CONTROL);
      // let the control requests' own latency pass while the command is held by its target
      pc.clock.advance(5000);
      pc.clock.runDue();
      expect(drv.usedIdx(QUEUE_CONTROL)).toBe(1);
      expect(drv.m[query.resp]).toBe(VIRTIO_SCSI_S_FUNCTION_SUCCEEDED);
      expect(drv.m[abort.resp]).toBe(0xcc);
      await new Promise((r) => setImmediate(r));
      const order: string[] = [];
      open();
      disk.gate = null;
      expect(
        await drv.run(() => {
          if (drv.takeUsed(QUEUE_REQUEST).length) order.push('command');
          if (drv.usedIdx(QUEUE_CONTROL) === 2 && !order.includes('abort')) order.push('abort');
          return order.length === 2;
        }),
      ).toBe(true);
      expect(order).toEqual(['command', 'abort']);
      expect(drv.m[abort.resp]).toBe(VIRTIO_SCSI_S_FUNCTION_COMPLETE);
      expect(response(drv, c).status).toBe(SCSI_GOOD);
    });

    it('TMFs: BAD_TARGET for an absent target, REJECTED for unknown functions, LUN reset with nothing in flight', async () => {
      const { drv } = setup();
      drv.init();
      const bad = control(drv, tmf(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, encodeLun(9, 0)), 1);
      const odd = control(drv, tmf(99, LUN0), 1);
      const reset = control(drv, tmf(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, LUN0), 1);
      drv.kick(QUEUE_CONTROL);
      expect(await drv.run(() => drv.usedIdx(QUEUE_CONTROL) === 3)).toBe(true);
      expect(drv.m[bad.resp]).toBe(VIRTIO_SCSI_S_BAD_TARGET);
      expect(drv.m[odd.resp]).toBe(VIRTIO_SCSI_S_FUNCTION_REJECTED);
      expect(drv.m[reset.resp]).toBe(VIRTIO_SCSI_S_FUNCTION_COMPLETE);
    });

    it('an unknown control request type puts the device in NEEDS_RESET', async () => {
      const { drv, hba } = setup();
      drv.init();
      control(drv, [...le32(42), ...LUN0], 4);
      drv.kick(QUEUE_CONTROL);
      await drv.run();
      expect(drv.status & 0x40).toBe(0x40);
      expect(hba.brokenReason).toMatch(/unknown type 42/);
    });
  });

  describe('hot-plug events', () => {
    function eventBuffers(drv: Driver, n: number): number[] {
      const bufs: number[] = [];
      for (let i = 0; i < n; i++) {
        const b = drv.alloc(16);
        bufs.push(b);
        drv.add(QUEUE_EVENT, [{ addr: b, len: 16, write: true }]);
      }
      drv.kick(QUEUE_EVENT);
      return bufs;
    }

    it('attach and detach while the driver runs post TRANSPORT_RESET events into waiting buffers', () => {
      const { drv, hba } = setup();
      drv.init();
      const bufs = eventBuffers(drv, 4);
      expect(drv.usedIdx(QUEUE_EVENT)).toBe(0); // buffers wait for events
      hba.attach(3, 1, new TestDisk());
      expect(drv.usedIdx(QUEUE_EVENT)).toBe(1);
      expect(drv.get(bufs[0], 16)).toEqual(Uint8Array.of(...le32(VIRTIO_SCSI_T_TRANSPORT_RESET), ...encodeLun(3, 1), ...le32(VIRTIO_SCSI_EVT_RESET_RESCAN)));
      expect(drv.readIsr()).toBe(1);
      hba.detach(3, 1);
      expect(drv.get(bufs[1], 16)).toEqual(Uint8Array.of(...le32(VIRTIO_SCSI_T_TRANSPORT_RESET), ...encodeLun(3, 1), ...le32(VIRTIO_SCSI_EVT_RESET_REMOVED)));
      expect(drv.takeUsed(QUEUE_EVENT).map((u) => u.len)).toEqual([16, 16]);
      expect(hba.target(3, 1)).toBe(undefined);
    });

    it('events wait for buffers; beyond 64 waiting the next one carries EVENTS_MISSED', () => {
      const { drv, hba } = setup();
      drv.init();
      for (let i = 0; i < 70; i++) hba.attach(1 + (i >> 4), i & 15, new TestDisk());
      expect(drv.usedIdx(QUEUE_EVENT)).toBe(0);
      const bufs = eventBuffers(drv, 2);
      expect(drv.usedIdx(QUEUE_EVENT)).toBe(2);
      expect(drv.r32m(bufs[0])).toBe((VIRTIO_SCSI_T_TRANSPORT_RESET | VIRTIO_SCSI_T_EVENTS_MISSED) >>> 0);
      expect(drv.r32m(bufs[1])).toBe(VIRTIO_SCSI_T_TRANSPORT_RESET);
      expect(drv.get(bufs[1] + 4, 8)).toEqual(encodeLun(1, 1));
    });

    it('no events before the driver is ready, or without HOTPLUG', () => {
      const { drv, hba } = setup();
      hba.attach(4, 0, new TestDisk());
      drv.init({ drop: [VIRTIO_SCSI_F_HOTPLUG] });
      eventBuffers(drv, 2);
      hba.attach(5, 0, new TestDisk());
      expect(drv.usedIdx(QUEUE_EVENT)).toBe(0);
    });
  });

  it('a reset drops commands in flight', async () => {
    const { drv, hba } = setup();
    drv.init();
    command(drv, LUN0, cdb10(0x28, 0, 8), { dataIn: 4096 });
    drv.kick(QUEUE_REQUEST);
    expect(hba.pending).toBe(1);
    drv.status = 0;
    expect(hba.pending).toBe(0);
    await drv.run();
    expect(drv.usedIdx(QUEUE_REQUEST)).toBe(0);
  });

  it('a snapshot keeps finished results (not run again) and runs unfinished commands again after restore', async () => {
    const a = setup();
    a.drv.init();
    const rd = command(a.drv, LUN0, cdb10(0x28, 20, 4), { dataIn: 2048 });
    a.drv.kick(QUEUE_REQUEST);
    await a.pc.machine.quiesce(); // the target has answered; the completion is not due yet
    // a second command held back by its target: saved without a result
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    a.disk.gate = gate;
    const inq = command(a.drv, LUN0, [0x12, 0, 0, 0, 36, 0], { dataIn: 36 });
    a.drv.kick(QUEUE_REQUEST);
    expect(a.hba.pending).toBe(2);
    const snap = JSON.parse(JSON.stringify({ bus: a.pc.pci!.bus.saveState(), ram: Array.from(a.pc.mem.mem8.subarray(0x100000, 0x180000)) }));
    open();

    const b = setup();
    b.pc.mem.mem8.set(snap.ram, 0x100000);
    b.pc.pci!.bus.loadState(snap.bus);
    // the target's own state travels too (the held INQUIRY had not reached it yet)
    expect(b.disk.loaded).toEqual({ name: 'TESTDISK', started: 1 });
    expect(b.hba.pending).toBe(2);
    b.drv.queues[QUEUE_REQUEST] = a.drv.queues[QUEUE_REQUEST];
    expect(await b.drv.run(() => b.drv.usedIdx(QUEUE_REQUEST) === 2)).toBe(true);
    // only the unfinished INQUIRY ran on the restored machine's target
    expect(b.disk.started).toEqual([0x12]);
    expect(response(b.drv, rd)).toMatchObject({ response: VIRTIO_SCSI_S_OK, status: SCSI_GOOD });
    expect(byteDiff(b.drv.get(rd.dataIn, 2048), a.disk.data.subarray(20 * 512, 24 * 512))).toBe('');
    expect(String.fromCharCode(...b.drv.get(inq.dataIn + 8, 8))).toBe('TESTDISK');
    expect(b.drv.irq).toBe(true);
  });

  it('attach refuses addresses out of range or taken', () => {
    const { hba } = setup();
    expect(() => hba.attach(256, 0, new TestDisk())).toThrow(/target 256/);
    expect(() => hba.attach(0, 16384, new TestDisk())).toThrow(/LUN 16384/);
    expect(() => hba.attach(0, 0, new TestDisk())).toThrow(/taken/);
  });
});
