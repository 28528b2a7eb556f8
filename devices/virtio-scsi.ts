/**
 * virtio-scsi (virtio device ID 8, PCI 1AF4:1048): a SCSI host adapter over the virtio 1.0 PCI transport
 * (devices/virtio.ts). It routes SCSI commands to the ScsiTargets (devices/scsi.ts: disks, CD-ROMs)
 * attached at target/LUN addresses.
 *
 * Written from the virtio 1.0 specification, 5.6 SCSI Host Device; behaviour Linux 6.1's virtio_scsi
 * and its SCSI scan rely on was checked against QEMU's model (read, not copied).
 *
 * Queues (128 entries each): 0 control, 1 event, 2 requests (num_queues = 1).
 * Configuration space: num_queues 0x00, seg_max 0x04 (126), max_sectors 0x08 (0xFFFF), cmd_per_lun 0x0C
 * (128), event_info_size 0x10 (16), sense_size 0x14 (96, written by the driver), cdb_size 0x18 (32,
 * written by the driver), max_channel 0x1C (0), max_target 0x1E (255), max_lun 0x20 (16383). Reset
 * restores sense_size and cdb_size. Features: HOTPLUG (attach/detach while the driver runs sends a
 * TRANSPORT_RESET event with reason RESCAN/REMOVED, and Linux adds or removes the device).
 *
 * Request queue: virtio_scsi_cmd_req (lun[8], id 64, task_attr, prio, crn, cdb[cdb_size]) then data-out
 * in the readable part; virtio_scsi_cmd_resp (sense_len 32, resid 32, status_qualifier 16, status 8,
 * response 8, sense[sense_size]) then data-in in the writable part. lun[8] is {1, target, 0x40 | lun >> 8,
 * lun & 0xFF, 0, 0, 0, 0} (flat addressing; lun[2] = 0 also accepted). Responses:
 * - no target at that address (or a malformed lun field): response BAD_TARGET, so Linux's scan of the
 *   255 absent targets ends at once;
 * - a target with no such LUN: the adapter answers as SAM says for an absent logical unit: INQUIRY data
 *   with peripheral qualifier 3, REQUEST SENSE data and otherwise CHECK CONDITION with ILLEGAL REQUEST /
 *   LOGICAL UNIT NOT SUPPORTED;
 * - REPORT LUNS is answered by the adapter for every LUN of a present target (the inventory it holds);
 * - anything else goes to the ScsiTarget: its status, sense (cut to sense_size) and data-in (cut to the
 *   buffer; resid counts the rest) come back with response OK; data-out is what the target asks for
 *   (dataOutLength), and a buffer shorter than that gets response OVERRUN without running the command;
 *   both data-out and data-in in one request (INOUT, not offered) gets FAILURE; a target that fails
 *   (a host error) gives CHECK CONDITION, HARDWARE ERROR / INTERNAL TARGET FAILURE.
 * Commands to one target/LUN run one after the other on the host (ScsiTarget executes one at a time);
 * each completes at a guest time (core/blockio.ts completeIo), a fixed latency plus the transfer.
 *
 * Control queue: task management (TMF: ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LOGICAL UNIT RESET,
 * I_T NEXUS RESET answered FUNCTION COMPLETE once the commands they concern have completed, since Linux
 * relies on every command completing before its TMF; QUERY TASK / QUERY TASK SET answer FUNCTION
 * SUCCEEDED when such commands are in flight; CLEAR ACA completes; others are REJECTED; BAD_TARGET for an
 * absent target) and asynchronous notification queries/subscriptions (no events supported: event_actual
 * 0, response OK). Event queue: buffers stay there until an event needs one; events that find no buffer
 * wait (up to 64, then the EVENTS_MISSED flag goes with the next one).
 *
 * Snapshots: requests in flight are saved with their queue, head descriptor, target/LUN and the guest
 * time left; a command whose target has finished carries its result (status, sense, data) so it is not
 * executed twice; one that has not (no quiesce) runs again after restore. Pending TMFs, events and each
 * attached target's own state are saved too.
 */
import type { Pc } from '../core/pc';
import type { Machine } from '../core/machine';
import { devfn } from './pci';
import { SCSI_CHECK_CONDITION, SCSI_GOOD, type ScsiResult, type ScsiTarget } from './scsi';
import { VirtioPciDevice, freePciSlot, fromBase64, toBase64, type DescChain, type Virtqueue } from './virtio';

export const VIRTIO_ID_SCSI = 8;

export const VIRTIO_SCSI_F_INOUT = 0;
export const VIRTIO_SCSI_F_HOTPLUG = 1;
export const VIRTIO_SCSI_F_CHANGE = 2;

export const VIRTIO_SCSI_S_OK = 0;
export const VIRTIO_SCSI_S_FUNCTION_COMPLETE = 0;
export const VIRTIO_SCSI_S_OVERRUN = 1;
export const VIRTIO_SCSI_S_ABORTED = 2;
export const VIRTIO_SCSI_S_BAD_TARGET = 3;
export const VIRTIO_SCSI_S_RESET = 4;
export const VIRTIO_SCSI_S_BUSY = 5;
export const VIRTIO_SCSI_S_TRANSPORT_FAILURE = 6;
export const VIRTIO_SCSI_S_TARGET_FAILURE = 7;
export const VIRTIO_SCSI_S_NEXUS_FAILURE = 8;
export const VIRTIO_SCSI_S_FAILURE = 9;
export const VIRTIO_SCSI_S_FUNCTION_SUCCEEDED = 10;
export const VIRTIO_SCSI_S_FUNCTION_REJECTED = 11;
export const VIRTIO_SCSI_S_INCORRECT_LUN = 12;

export const VIRTIO_SCSI_T_TMF = 0;
export const VIRTIO_SCSI_T_AN_QUERY = 1;
export const VIRTIO_SCSI_T_AN_SUBSCRIBE = 2;

export const VIRTIO_SCSI_T_TMF_ABORT_TASK = 0;
export const VIRTIO_SCSI_T_TMF_ABORT_TASK_SET = 1;
export const VIRTIO_SCSI_T_TMF_CLEAR_ACA = 2;
export const VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET = 3;
export const VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET = 4;
export const VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET = 5;
export const VIRTIO_SCSI_T_TMF_QUERY_TASK = 6;
export const VIRTIO_SCSI_T_TMF_QUERY_TASK_SET = 7;

export const VIRTIO_SCSI_T_NO_EVENT = 0;
export const VIRTIO_SCSI_T_TRANSPORT_RESET = 1;
export const VIRTIO_SCSI_T_EVENTS_MISSED = 0x80000000;
export const VIRTIO_SCSI_EVT_RESET_RESCAN = 0;
export const VIRTIO_SCSI_EVT_RESET_REMOVED = 1;

export const VIRTIO_SCSI_CDB_SIZE = 32;
export const VIRTIO_SCSI_SENSE_SIZE = 96;
export const VIRTIO_SCSI_QUEUE_SIZE = 128;
export const VIRTIO_SCSI_MAX_TARGET = 255;
export const VIRTIO_SCSI_MAX_LUN = 16383;
/** largest cdb_size / sense_size the driver may configure */
const MAX_FIELD = 1024;
/** data-out larger than this is refused (OVERRUN) */
const MAX_TRANSFER = 64 << 20;
const MAX_PENDING_EVENTS = 64;

export const QUEUE_CONTROL = 0;
export const QUEUE_EVENT = 1;
export const QUEUE_REQUEST = 2;

/** guest time a command takes: a fixed part plus the transfer */
export const LATENCY_NS = 10_000;
export const BYTES_PER_NS = 4;
/** answers that need no target (absent targets, REPORT LUNS, control requests) */
export const QUICK_LATENCY_NS = 2_000;

const CONFIG_SIZE = 0x24;
const CFG_SENSE_SIZE = 0x14;
const CFG_CDB_SIZE = 0x18;

/** what a command came to */
interface Outcome {
  response: number;
  status: number;
  sense: Uint8Array | null;
  dataIn: Uint8Array | null;
}

interface CmdReq {
  seq: number;
  q: number;
  head: number;
  /** the chain read when the request was taken; null for one restored from a snapshot (read again) */
  chain: DescChain | null;
  target: number;
  lun: number;
  idLo: number;
  idHi: number;
  cdbSize: number;
  senseSize: number;
  /** data-out bytes passed to the target */
  outUsed: number;
  deadline: number;
  outcome: Outcome | null;
}

interface TmfReq {
  seq: number;
  q: number;
  head: number;
  chain: DescChain | null;
  response: number;
  /** commands it waits for */
  waitFor: Set<number>;
  deadline: number;
  /** its own latency has passed */
  due: boolean;
}

interface ScsiEvent {
  event: number;
  target: number;
  lun: number;
  reason: number;
}

interface SavedOutcome {
  response: number;
  status: number;
  sense: string | null;
  dataIn: string | null;
}

export interface VirtioScsiState {
  seq: number;
  cmds: {
    seq: number;
    q: number;
    head: number;
    target: number;
    lun: number;
    id: [number, number];
    cdbSize: number;
    senseSize: number;
    outUsed: number;
    dueIn: number;
    outcome: SavedOutcome | null;
  }[];
  tmfs: { seq: number; q: number; head: number; response: number; waitFor: number[]; dueIn: number; due: boolean }[];
  events: ScsiEvent[];
  eventsMissed: boolean;
  targets: Record<string, unknown>;
}

/** fixed-format sense data (18 bytes) */
function senseData(key: number, asc: number, ascq: number): Uint8Array {
  const s = new Uint8Array(18);
  s[0] = 0x70;
  s[2] = key & 0x0f;
  s[7] = 10;
  s[12] = asc;
  s[13] = ascq;
  return s;
}

/** the 8-byte LUN field virtio-scsi uses for target/lun */
export function encodeLun(target: number, lun: number): Uint8Array {
  return Uint8Array.of(1, target, 0x40 | (lun >> 8), lun & 0xff, 0, 0, 0, 0);
}

export interface VirtioScsiOptions {
  /** PCI slot (default: the first free one from 4) */
  slot?: number;
  /** highest target number (default 255) */
  maxTarget?: number;
}

export class VirtioScsi extends VirtioPciDevice {
  readonly maxTarget: number;
  /** target → LUN → ScsiTarget */
  private readonly targets = new Map<number, Map<number, ScsiTarget>>();
  private readonly cmds = new Map<number, CmdReq>();
  private readonly tmfs = new Map<number, TmfReq>();
  /** per target/LUN, the end of its command sequence on the host */
  private readonly tails = new Map<number, Promise<unknown>>();
  private events: ScsiEvent[] = [];
  private eventsMissed = false;
  private seq = 0;
  /** the last host error (for diagnostics) */
  lastError: string | null = null;

  constructor(machine: Machine, options: { maxTarget?: number; name?: string } = {}) {
    super(machine, {
      name: options.name ?? 'virtio-scsi',
      deviceType: VIRTIO_ID_SCSI,
      classCode: 0x010000,
      features: [VIRTIO_SCSI_F_HOTPLUG],
      queueSizes: [VIRTIO_SCSI_QUEUE_SIZE, VIRTIO_SCSI_QUEUE_SIZE, VIRTIO_SCSI_QUEUE_SIZE],
      configSize: CONFIG_SIZE,
    });
    const maxTarget = options.maxTarget ?? VIRTIO_SCSI_MAX_TARGET;
    if (!(Number.isInteger(maxTarget) && maxTarget >= 0 && maxTarget <= 255)) throw new RangeError(`virtio-scsi: bad max target ${maxTarget}`);
    this.maxTarget = maxTarget;
    this.putCfg32(0x00, 1);
    this.putCfg32(0x04, VIRTIO_SCSI_QUEUE_SIZE - 2);
    this.putCfg32(0x08, 0xffff);
    this.putCfg32(0x0c, VIRTIO_SCSI_QUEUE_SIZE);
    this.putCfg32(0x10, 16);
    this.putCfg32(CFG_SENSE_SIZE, VIRTIO_SCSI_SENSE_SIZE);
    this.putCfg32(CFG_CDB_SIZE, VIRTIO_SCSI_CDB_SIZE);
    this.deviceConfig[0x1c] = 0;
    this.deviceConfig[0x1d] = 0;
    this.deviceConfig[0x1e] = maxTarget & 0xff;
    this.deviceConfig[0x1f] = maxTarget >> 8;
    this.putCfg32(0x20, VIRTIO_SCSI_MAX_LUN);
  }

  private putCfg32(o: number, v: number): void {
    const c = this.deviceConfig;
    c[o] = v & 0xff;
    c[o + 1] = (v >>> 8) & 0xff;
    c[o + 2] = (v >>> 16) & 0xff;
    c[o + 3] = (v >>> 24) & 0xff;
  }

  private cfg32(o: number): number {
    const c = this.deviceConfig;
    return (c[o] | (c[o + 1] << 8) | (c[o + 2] << 16) | (c[o + 3] << 24)) >>> 0;
  }

  // ---- targets ----

  /** attaches a target at target/lun (while the driver runs, with HOTPLUG, the guest is told) */
  attach(target: number, lun: number, t: ScsiTarget): void {
    if (!(Number.isInteger(target) && target >= 0 && target <= this.maxTarget)) {
      throw new RangeError(`virtio-scsi: target ${target} out of range 0–${this.maxTarget}`);
    }
    if (!(Number.isInteger(lun) && lun >= 0 && lun <= VIRTIO_SCSI_MAX_LUN)) {
      throw new RangeError(`virtio-scsi: LUN ${lun} out of range 0–${VIRTIO_SCSI_MAX_LUN}`);
    }
    let luns = this.targets.get(target);
    if (!luns) {
      luns = new Map();
      this.targets.set(target, luns);
    }
    if (luns.has(lun)) throw new Error(`virtio-scsi: target ${target} LUN ${lun} is taken`);
    luns.set(lun, t);
    this.hotplugEvent(target, lun, VIRTIO_SCSI_EVT_RESET_RESCAN);
  }

  /** removes the target at target/lun (the guest is told, as for attach) */
  detach(target: number, lun: number): ScsiTarget | undefined {
    const luns = this.targets.get(target);
    const t = luns?.get(lun);
    if (!luns || !t) return undefined;
    luns.delete(lun);
    if (luns.size === 0) this.targets.delete(target);
    this.hotplugEvent(target, lun, VIRTIO_SCSI_EVT_RESET_REMOVED);
    return t;
  }

  /** the target at target/lun */
  target(target: number, lun: number): ScsiTarget | undefined {
    return this.targets.get(target)?.get(lun);
  }

  /** commands and TMFs in flight now */
  get pending(): number {
    return this.cmds.size + this.tmfs.size;
  }

  private hotplugEvent(target: number, lun: number, reason: number): void {
    if (!this.running || !this.hasFeature(VIRTIO_SCSI_F_HOTPLUG)) return;
    this.postEvent({ event: VIRTIO_SCSI_T_TRANSPORT_RESET, target, lun, reason });
  }

  private postEvent(e: ScsiEvent): void {
    if (this.events.length >= MAX_PENDING_EVENTS) this.eventsMissed = true;
    else this.events.push(e);
    this.deliverEvents();
  }

  private deliverEvents(): void {
    const q = this.queues[QUEUE_EVENT];
    while ((this.events.length || this.eventsMissed) && this.running && this.availableCount(q) > 0) {
      const chain = this.popChain(q);
      if (!chain) return;
      const e = this.events.shift() ?? { event: VIRTIO_SCSI_T_NO_EVENT, target: 0, lun: 0, reason: 0 };
      const ev = (e.event | (this.eventsMissed ? VIRTIO_SCSI_T_EVENTS_MISSED : 0)) >>> 0;
      this.eventsMissed = false;
      const buf = new Uint8Array(16);
      buf[0] = ev & 0xff;
      buf[1] = (ev >>> 8) & 0xff;
      buf[2] = (ev >>> 16) & 0xff;
      buf[3] = ev >>> 24;
      buf.set(encodeLun(e.target, e.lun), 4);
      buf[12] = e.reason & 0xff;
      buf[13] = (e.reason >>> 8) & 0xff;
      buf[14] = (e.reason >>> 16) & 0xff;
      buf[15] = e.reason >>> 24;
      const n = this.writeToChain(chain, 0, buf);
      this.pushUsed(q, chain.head, n);
    }
  }

  // ---- queues ----

  protected override queueNotify(q: Virtqueue): void {
    if (q.index === QUEUE_EVENT) {
      this.deliverEvents();
      return;
    }
    for (;;) {
      const chain = this.popChain(q);
      if (!chain) return;
      if (q.index === QUEUE_CONTROL) this.control(q, chain);
      else this.command(q, chain, null);
    }
  }

  protected override driverOk(): void {
    this.deliverEvents();
  }

  protected override writeDeviceConfig(off: number, size: number, value: number): void {
    // sense_size and cdb_size are the driver's to set
    for (let i = 0; i < size; i++) {
      const o = off + i;
      if (o >= CFG_SENSE_SIZE && o < CFG_CDB_SIZE + 4) this.deviceConfig[o] = (value >>> (8 * i)) & 0xff;
    }
  }

  /** target/lun from the 8-byte LUN field, or null when it addresses nothing this adapter has */
  private decodeLun(b: Uint8Array, at: number): { target: number; lun: number } | null {
    if (b[at] !== 1) return null;
    const hi = b[at + 2];
    if (hi !== 0 && (hi & 0xc0) !== 0x40) return null;
    for (let i = 4; i < 8; i++) if (b[at + i] !== 0) return null;
    return { target: b[at + 1], lun: ((hi & 0x3f) << 8) | b[at + 3] };
  }

  private command(q: Virtqueue, chain: DescChain, restored: CmdReq | null): void {
    const cdbSize = restored ? restored.cdbSize : Math.min(this.cfg32(CFG_CDB_SIZE), MAX_FIELD);
    const senseSize = restored ? restored.senseSize : Math.min(this.cfg32(CFG_SENSE_SIZE), MAX_FIELD);
    const hdrLen = 19 + cdbSize;
    const respLen = 12 + senseSize;
    if (chain.readTotal < hdrLen || chain.writeTotal < respLen) {
      this.needsReset(`queue ${q.index}: command ${chain.head} has ${chain.readTotal < hdrLen ? 'no full request header' : 'no room for the response'}`);
      return;
    }
    const hdr = new Uint8Array(hdrLen);
    this.readFromChain(chain, 0, hdr);
    const now = this.machine.clock.now();
    const req: CmdReq = restored ?? {
      seq: ++this.seq,
      q: q.index,
      head: chain.head,
      chain,
      target: hdr[1],
      lun: 0,
      idLo: (hdr[8] | (hdr[9] << 8) | (hdr[10] << 16) | (hdr[11] << 24)) >>> 0,
      idHi: (hdr[12] | (hdr[13] << 8) | (hdr[14] << 16) | (hdr[15] << 24)) >>> 0,
      cdbSize,
      senseSize,
      outUsed: 0,
      deadline: 0,
      outcome: null,
    };
    req.chain = chain;
    this.cmds.set(req.seq, req);
    const quick = (o: Outcome): void => {
      req.outcome = o;
      req.deadline = restored ? Math.max(restored.deadline, now) : now + QUICK_LATENCY_NS;
      this.at(req.deadline, () => this.completeCmd(req));
    };
    const addr = this.decodeLun(hdr, 0);
    const luns = addr ? this.targets.get(addr.target) : undefined;
    if (!addr || !luns) return quick({ response: VIRTIO_SCSI_S_BAD_TARGET, status: 0, sense: null, dataIn: null });
    req.target = addr.target;
    req.lun = addr.lun;
    const cdb = hdr.slice(19, 19 + cdbSize);
    const dataOutLen = chain.readTotal - hdrLen;
    const dataInCap = chain.writeTotal - respLen;
    if (dataOutLen > 0 && dataInCap > 0) return quick({ response: VIRTIO_SCSI_S_FAILURE, status: 0, sense: null, dataIn: null });
    const opcode = cdb[0];
    if (opcode === 0xa0) return quick(this.reportLuns(luns, cdb));
    const t = luns.get(addr.lun);
    if (!t) return quick(absentLun(cdb));
    let want: number;
    try {
      want = t.dataOutLength(cdb);
    } catch (e) {
      this.lastError = e instanceof Error ? e.message : String(e);
      return quick({ response: VIRTIO_SCSI_S_OK, status: SCSI_CHECK_CONDITION, sense: senseData(5, 0x24, 0), dataIn: null });
    }
    if (want > dataOutLen || want > MAX_TRANSFER) return quick({ response: VIRTIO_SCSI_S_OVERRUN, status: 0, sense: null, dataIn: null });
    let dataOut: Uint8Array | null = null;
    if (want > 0) {
      dataOut = new Uint8Array(want);
      this.readFromChain(chain, hdrLen, dataOut);
    }
    req.outUsed = want;
    // one command at a time per target/LUN on the host
    const key = addr.target * 0x10000 + addr.lun;
    const prev = this.tails.get(key) ?? Promise.resolve();
    const run = prev.then(() => t.execute(cdb, dataOut));
    const op = run.then(
      (r: ScsiResult) => {
        req.outcome = { response: VIRTIO_SCSI_S_OK, status: r.status, sense: r.sense, dataIn: r.dataIn };
      },
      (e: unknown) => {
        this.lastError = e instanceof Error ? e.message : String(e);
        req.outcome = { response: VIRTIO_SCSI_S_OK, status: SCSI_CHECK_CONDITION, sense: senseData(4, 0x44, 0), dataIn: null };
      },
    );
    this.tails.set(key, op);
    void op.then(() => {
      if (this.tails.get(key) === op) this.tails.delete(key);
    });
    const latency = LATENCY_NS + Math.max(want, dataInCap) / BYTES_PER_NS;
    req.deadline = restored ? Math.max(restored.deadline, now) : now + latency;
    this.completeAfter(op, req.deadline - now, () => this.completeCmd(req));
  }

  /** REPORT LUNS: the LUN inventory of one target */
  private reportLuns(luns: Map<number, ScsiTarget>, cdb: Uint8Array): Outcome {
    const alloc = ((cdb[6] << 24) | (cdb[7] << 16) | (cdb[8] << 8) | cdb[9]) >>> 0;
    const list = [...luns.keys()].sort((a, b) => a - b);
    const data = new Uint8Array(8 + 8 * list.length);
    const len = 8 * list.length;
    data[0] = len >>> 24;
    data[1] = (len >>> 16) & 0xff;
    data[2] = (len >>> 8) & 0xff;
    data[3] = len & 0xff;
    list.forEach((lun, i) => {
      data[8 + 8 * i] = lun < 256 ? 0 : 0x40 | (lun >> 8);
      data[9 + 8 * i] = lun & 0xff;
    });
    if (alloc < 16) return { response: VIRTIO_SCSI_S_OK, status: SCSI_CHECK_CONDITION, sense: senseData(5, 0x24, 0), dataIn: null };
    return { response: VIRTIO_SCSI_S_OK, status: SCSI_GOOD, sense: null, dataIn: data.subarray(0, Math.min(alloc, data.length)) };
  }

  private completeCmd(req: CmdReq): void {
    if (!this.cmds.has(req.seq)) return;
    this.cmds.delete(req.seq);
    const q = this.queues[req.q];
    const chain = req.chain ?? this.readChain(q, req.head);
    const o = req.outcome;
    if (chain && o) {
      const respLen = 12 + req.senseSize;
      const hdrLen = 19 + req.cdbSize;
      const dataInCap = Math.max(0, chain.writeTotal - respLen);
      const dataOutLen = Math.max(0, chain.readTotal - hdrLen);
      let copied = 0;
      let resid = 0;
      if (o.response === VIRTIO_SCSI_S_OK) {
        if (o.dataIn && dataInCap > 0) {
          copied = Math.min(o.dataIn.length, dataInCap);
          this.writeToChain(chain, respLen, copied === o.dataIn.length ? o.dataIn : o.dataIn.subarray(0, copied));
          resid = dataInCap - copied;
        } else if (dataInCap > 0) {
          resid = dataInCap;
        } else {
          resid = dataOutLen - req.outUsed;
        }
      }
      const resp = new Uint8Array(respLen);
      const senseLen = o.sense && o.response === VIRTIO_SCSI_S_OK ? Math.min(o.sense.length, req.senseSize) : 0;
      resp[0] = senseLen & 0xff;
      resp[1] = senseLen >>> 8;
      resp[4] = resid & 0xff;
      resp[5] = (resid >>> 8) & 0xff;
      resp[6] = (resid >>> 16) & 0xff;
      resp[7] = resid >>> 24;
      resp[10] = o.status & 0xff;
      resp[11] = o.response;
      if (senseLen) resp.set(o.sense!.subarray(0, senseLen), 12);
      this.writeToChain(chain, 0, resp);
      this.pushUsed(q, req.head, respLen + copied);
    }
    // task management functions waiting for this command
    for (const tmf of this.tmfs.values()) {
      if (tmf.waitFor.delete(req.seq) && tmf.waitFor.size === 0 && tmf.due) this.completeTmf(tmf);
    }
  }

  // ---- control queue ----

  private control(q: Virtqueue, chain: DescChain): void {
    const head = new Uint8Array(Math.min(chain.readTotal, 24));
    this.readFromChain(chain, 0, head);
    const type = head.length >= 4 ? (head[0] | (head[1] << 8) | (head[2] << 16) | (head[3] << 24)) >>> 0 : -1;
    if (type === VIRTIO_SCSI_T_TMF) {
      if (chain.readTotal < 24 || chain.writeTotal < 1) {
        this.needsReset(`control request ${chain.head}: a task management request is 24 + 1 bytes`);
        return;
      }
      this.tmf(q, chain, head);
    } else if (type === VIRTIO_SCSI_T_AN_QUERY || type === VIRTIO_SCSI_T_AN_SUBSCRIBE) {
      if (chain.readTotal < 16 || chain.writeTotal < 5) {
        this.needsReset(`control request ${chain.head}: an asynchronous notification request is 16 + 5 bytes`);
        return;
      }
      // no asynchronous events are supported: event_actual 0, response OK
      const tmf: TmfReq = {
        seq: ++this.seq,
        q: q.index,
        head: chain.head,
        chain,
        response: -1,
        waitFor: new Set(),
        deadline: this.machine.clock.now() + QUICK_LATENCY_NS,
        due: false,
      };
      this.tmfs.set(tmf.seq, tmf);
      this.at(tmf.deadline, () => this.tmfDue(tmf));
    } else {
      this.needsReset(`control request ${chain.head}: unknown type ${type}`);
    }
  }

  private tmf(q: Virtqueue, chain: DescChain, b: Uint8Array): void {
    const subtype = (b[4] | (b[5] << 8) | (b[6] << 16) | (b[7] << 24)) >>> 0;
    const idLo = (b[16] | (b[17] << 8) | (b[18] << 16) | (b[19] << 24)) >>> 0;
    const idHi = (b[20] | (b[21] << 8) | (b[22] << 16) | (b[23] << 24)) >>> 0;
    const addr = this.decodeLun(b, 8);
    const tmf: TmfReq = {
      seq: ++this.seq,
      q: q.index,
      head: chain.head,
      chain,
      response: VIRTIO_SCSI_S_FUNCTION_COMPLETE,
      waitFor: new Set(),
      deadline: this.machine.clock.now() + QUICK_LATENCY_NS,
      due: false,
    };
    const inflight = [...this.cmds.values()];
    const sameLun = (c: CmdReq): boolean => !!addr && c.target === addr.target && c.lun === addr.lun && c.outcome?.response !== VIRTIO_SCSI_S_BAD_TARGET;
    if (!addr || !this.targets.has(addr.target)) {
      tmf.response = VIRTIO_SCSI_S_BAD_TARGET;
    } else {
      switch (subtype) {
        case VIRTIO_SCSI_T_TMF_ABORT_TASK:
          for (const c of inflight) if (sameLun(c) && c.idLo === idLo && c.idHi === idHi) tmf.waitFor.add(c.seq);
          break;
        case VIRTIO_SCSI_T_TMF_ABORT_TASK_SET:
        case VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET:
        case VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET:
          for (const c of inflight) if (sameLun(c)) tmf.waitFor.add(c.seq);
          break;
        case VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET:
          for (const c of inflight) if (c.target === addr.target) tmf.waitFor.add(c.seq);
          break;
        case VIRTIO_SCSI_T_TMF_CLEAR_ACA:
          break;
        case VIRTIO_SCSI_T_TMF_QUERY_TASK:
          if (inflight.some((c) => sameLun(c) && c.idLo === idLo && c.idHi === idHi)) tmf.response = VIRTIO_SCSI_S_FUNCTION_SUCCEEDED;
          break;
        case VIRTIO_SCSI_T_TMF_QUERY_TASK_SET:
          if (inflight.some(sameLun)) tmf.response = VIRTIO_SCSI_S_FUNCTION_SUCCEEDED;
          break;
        default:
          tmf.response = VIRTIO_SCSI_S_FUNCTION_REJECTED;
      }
    }
    this.tmfs.set(tmf.seq, tmf);
    this.at(tmf.deadline, () => this.tmfDue(tmf));
  }

  private tmfDue(tmf: TmfReq): void {
    tmf.due = true;
    if (tmf.waitFor.size === 0) this.completeTmf(tmf);
  }

  private completeTmf(tmf: TmfReq): void {
    if (!this.tmfs.has(tmf.seq)) return;
    this.tmfs.delete(tmf.seq);
    const q = this.queues[tmf.q];
    const chain = tmf.chain ?? this.readChain(q, tmf.head);
    if (!chain) return;
    if (tmf.response < 0) {
      // asynchronous notification: event_actual 0, response OK
      const n = this.writeToChain(chain, 0, new Uint8Array(5));
      this.pushUsed(q, tmf.head, n);
    } else {
      this.writeChainByte(chain, 0, tmf.response);
      this.pushUsed(q, tmf.head, 1);
    }
  }

  // ---- reset and state ----

  protected override deviceReset(): void {
    this.cmds.clear();
    this.tmfs.clear();
    this.tails.clear();
    this.events = [];
    this.eventsMissed = false;
    this.putCfg32(CFG_SENSE_SIZE, VIRTIO_SCSI_SENSE_SIZE);
    this.putCfg32(CFG_CDB_SIZE, VIRTIO_SCSI_CDB_SIZE);
  }

  protected override saveDevice(): VirtioScsiState {
    const now = this.machine.clock.now();
    const saveOutcome = (o: Outcome | null): SavedOutcome | null =>
      o && {
        response: o.response,
        status: o.status,
        sense: o.sense ? toBase64(o.sense) : null,
        dataIn: o.dataIn ? toBase64(o.dataIn) : null,
      };
    const targets: Record<string, unknown> = {};
    for (const [t, luns] of this.targets) for (const [l, target] of luns) targets[`${t}:${l}`] = target.saveState();
    return {
      seq: this.seq,
      cmds: [...this.cmds.values()].map((c) => ({
        seq: c.seq,
        q: c.q,
        head: c.head,
        target: c.target,
        lun: c.lun,
        id: [c.idLo, c.idHi],
        cdbSize: c.cdbSize,
        senseSize: c.senseSize,
        outUsed: c.outUsed,
        dueIn: Math.max(0, c.deadline - now),
        outcome: saveOutcome(c.outcome),
      })),
      tmfs: [...this.tmfs.values()].map((t) => ({
        seq: t.seq,
        q: t.q,
        head: t.head,
        response: t.response,
        waitFor: [...t.waitFor],
        dueIn: Math.max(0, t.deadline - now),
        due: t.due,
      })),
      events: this.events.map((e) => ({ ...e })),
      eventsMissed: this.eventsMissed,
      targets,
    };
  }

  protected override loadDevice(s: unknown): void {
    const st = s as VirtioScsiState | undefined;
    this.cmds.clear();
    this.tmfs.clear();
    this.tails.clear();
    this.events = [];
    this.eventsMissed = false;
    if (!st) return;
    this.seq = st.seq >>> 0;
    this.events = (st.events ?? []).map((e) => ({ event: e.event >>> 0, target: e.target & 0xff, lun: e.lun & 0x3fff, reason: e.reason >>> 0 }));
    this.eventsMissed = !!st.eventsMissed;
    for (const [key, ts] of Object.entries(st.targets ?? {})) {
      const [t, l] = key.split(':').map(Number);
      this.target(t, l)?.loadState(ts);
    }
    const now = this.machine.clock.now();
    for (const c of st.cmds ?? []) {
      const o = c.outcome;
      const req: CmdReq = {
        seq: c.seq,
        q: c.q,
        head: c.head,
        chain: null,
        target: c.target,
        lun: c.lun,
        idLo: c.id[0] >>> 0,
        idHi: c.id[1] >>> 0,
        cdbSize: Math.min(c.cdbSize, MAX_FIELD),
        senseSize: Math.min(c.senseSize, MAX_FIELD),
        outUsed: c.outUsed,
        deadline: now + Math.max(0, c.dueIn),
        outcome: o && {
          response: o.response,
          status: o.status,
          sense: o.sense !== null ? fromBase64(o.sense) : null,
          dataIn: o.dataIn !== null ? fromBase64(o.dataIn) : null,
        },
      };
      this.cmds.set(req.seq, req);
      this.at(req.deadline, () => {
        if (req.outcome) {
          this.completeCmd(req);
          return;
        }
        // the target had not finished when the state was saved: run the command again
        this.cmds.delete(req.seq);
        const q = this.queues[req.q];
        const chain = q && this.readChain(q, req.head);
        if (chain) this.command(q, chain, req);
      });
    }
    for (const t of st.tmfs ?? []) {
      const tmf: TmfReq = {
        seq: t.seq,
        q: t.q,
        head: t.head,
        chain: null,
        response: t.response,
        waitFor: new Set(t.waitFor.filter((seq) => this.cmds.has(seq))),
        deadline: now + Math.max(0, t.dueIn),
        due: !!t.due,
      };
      this.tmfs.set(tmf.seq, tmf);
      if (tmf.due) {
        if (tmf.waitFor.size === 0) this.at(now, () => this.completeTmf(tmf));
      } else {
        this.at(tmf.deadline, () => this.tmfDue(tmf));
      }
    }
  }
}

/** how the adapter answers for a LUN that is not there on a present target (SAM-5 5.9.6) */
function absentLun(cdb: Uint8Array): Outcome {
  const opcode = cdb[0];
  if (opcode === 0x12 && !(cdb[1] & 1)) {
    // standard INQUIRY data: peripheral qualifier 3 (no logical unit), device type 0x1F
    const data = new Uint8Array(36);
    data[0] = 0x7f;
    data[2] = 5;
    data[3] = 2;
    data[4] = 31;
    const text = 'x86vm   (no LUN)        0001';
    for (let i = 0; i < text.length; i++) data[8 + i] = text.charCodeAt(i);
    const alloc = (cdb[3] << 8) | cdb[4];
    return { response: VIRTIO_SCSI_S_OK, status: SCSI_GOOD, sense: null, dataIn: data.subarray(0, Math.min(alloc, 36)) };
  }
  if (opcode === 0x03) {
    const alloc = cdb[4];
    const sense = senseData(5, 0x25, 0);
    return { response: VIRTIO_SCSI_S_OK, status: SCSI_GOOD, sense: null, dataIn: sense.subarray(0, Math.min(alloc, sense.length)) };
  }
  return { response: VIRTIO_SCSI_S_OK, status: SCSI_CHECK_CONDITION, sense: senseData(5, 0x25, 0), dataIn: null };
}

/** adds a virtio-scsi host adapter to the PC (in the first free slot unless one is given) */
export function addVirtioScsi(pc: Pc, options: VirtioScsiOptions = {}): VirtioScsi {
  const bus = pc.pci?.bus;
  if (!bus) throw new Error('virtio-scsi needs the PCI bus (createPc with pci enabled)');
  const slot = options.slot ?? freePciSlot(bus);
  const hba = new VirtioScsi(pc.machine, { maxTarget: options.maxTarget });
  return bus.add(hba, devfn(slot, 0));
}
