/**
 * virtio-blk (virtio device ID 2, PCI 1AF4:1042) over the virtio 1.0 PCI transport (devices/virtio.ts),
 * serving a disk/ BlockDevice.
 *
 * Written from the virtio 1.0 specification, 5.2 Block Device. One request queue of 128 entries.
 *
 * Configuration space (little-endian): capacity 0x00 (64-bit, 512-byte sectors), size_max 0x08,
 * seg_max 0x0C, geometry 0x10 (cylinders 16, heads 8, sectors 8), blk_size 0x14, topology 0x18
 * (physical_block_exp, alignment_offset, min_io_size, opt_io_size), writeback 0x20.
 * Features offered: SIZE_MAX (1 MiB segments), SEG_MAX (126 = queue size - 2, as QEMU), BLK_SIZE (512),
 * FLUSH (the driver then treats the cache as write-back and sends FLUSH on sync), TOPOLOGY, and RO when
 * the BlockDevice is read-only. No GEOMETRY, MQ, DISCARD or WRITE_ZEROES.
 *
 * A request is a descriptor chain: the 16-byte header (type 32, reserved 32, sector 64) in the readable
 * part, then data (readable for OUT, writable for IN and GET_ID), and the status byte as the last
 * writable byte (OK 0, IOERR 1, UNSUPP 2). Types: IN 0, OUT 1, FLUSH 4, GET_ID 8 (the 20-byte serial,
 * zero-padded). A request that runs past the capacity, is not whole sectors, writes a read-only disk or
 * fails on the host gets IOERR; an unknown type gets UNSUPP; a chain without a header or a status byte
 * puts the device in DEVICE_NEEDS_RESET.
 *
 * Timing: each request starts its host operation at once (several are in flight together; the
 * BlockDevice orders its own metadata) and completes through core/blockio.ts completeIo at a guest time
 * LATENCY_NS + bytes / BYTES_PER_NS later (flush: FLUSH_LATENCY_NS): data is copied into guest memory,
 * the status written and the used ring updated at that guest time, so deterministic runs stay
 * reproducible.
 *
 * Snapshots: a request in flight is saved as its queue, its head descriptor and the guest time left until
 * its completion. On restore the chain is read again from guest memory (the device still owns it) when
 * that time comes, and the request is executed again with no further latency: reads, writes of the same
 * bytes and flushes are idempotent, and the disk's contents belong to the snapshot.
 */
import type { Pc } from '../core/pc';
import type { Machine } from '../core/machine';
import type { BlockDevice } from '../disk/block';
import { devfn } from './pci';
import { VirtioPciDevice, freePciSlot, type DescChain, type Virtqueue } from './virtio';

export const VIRTIO_ID_BLOCK = 2;

export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_GEOMETRY = 4;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_TOPOLOGY = 10;

export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;

export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

export const VIRTIO_BLK_ID_BYTES = 20;
export const VIRTIO_BLK_QUEUE_SIZE = 128;
export const VIRTIO_BLK_SEG_MAX = VIRTIO_BLK_QUEUE_SIZE - 2;
export const VIRTIO_BLK_SIZE_MAX = 1 << 20;
/** requests carrying more data than this are refused with IOERR (the guest cannot make us allocate GiBs) */
export const VIRTIO_BLK_MAX_REQUEST = 64 << 20;

/** guest time a request takes: a fixed part, plus the transfer at BYTES_PER_NS */
export const LATENCY_NS = 10_000;
export const BYTES_PER_NS = 4;
export const FLUSH_LATENCY_NS = 50_000;
/** requests answered without the host (GET_ID, errors) */
export const QUICK_LATENCY_NS = 2_000;

const HEADER = 16;
const CONFIG_SIZE = 0x24;

export interface VirtioBlkOptions {
  /** PCI slot (default: the first free one from 4) */
  slot?: number;
  /** the serial number GET_ID returns (up to 20 bytes of ASCII; default "x86vm-<slot>") */
  serial?: string;
}

interface BlkInflight {
  q: number;
  head: number;
  /** guest time at which it completes */
  deadline: number;
}

export interface VirtioBlkState {
  inflight: { q: number; head: number; dueIn: number }[];
}

export class VirtioBlk extends VirtioPciDevice {
  readonly disk: BlockDevice;
  serial: string;
  /** requests started and not yet completed, in the order they were taken */
  private readonly inflight = new Set<BlkInflight>();
  /** the last host error (for diagnostics) */
  lastError: string | null = null;

  constructor(machine: Machine, disk: BlockDevice, options: { serial?: string; name?: string } = {}) {
    const features = [VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_TOPOLOGY];
    if (disk.readOnly) features.push(VIRTIO_BLK_F_RO);
    super(machine, {
      name: options.name ?? 'virtio-blk',
      deviceType: VIRTIO_ID_BLOCK,
      classCode: 0x010000,
      features,
      queueSizes: [VIRTIO_BLK_QUEUE_SIZE],
      configSize: CONFIG_SIZE,
    });
    this.disk = disk;
    this.serial = options.serial ?? 'x86vm';
    const c = this.deviceConfig;
    const put32 = (o: number, v: number): void => {
      c[o] = v & 0xff;
      c[o + 1] = (v >>> 8) & 0xff;
      c[o + 2] = (v >>> 16) & 0xff;
      c[o + 3] = (v >>> 24) & 0xff;
    };
    put32(0x00, disk.sectors % 0x100000000);
    put32(0x04, Math.floor(disk.sectors / 0x100000000));
    put32(0x08, VIRTIO_BLK_SIZE_MAX);
    put32(0x0c, VIRTIO_BLK_SEG_MAX);
    put32(0x14, 512);
    // topology: one logical block per physical block, no misalignment, no I/O size hints
    c[0x18] = 0;
    c[0x19] = 0;
    c[0x20] = 1; // writeback (meaningful only with CONFIG_WCE, which is not offered)
    this.captureResetState();
  }

  protected override queueNotify(q: Virtqueue): void {
    for (;;) {
      const chain = this.popChain(q);
      if (!chain) return;
      this.start(q, chain, -1);
    }
  }

  /** starts one request; `deadline` >= 0 for a request restored from a snapshot */
  private start(q: Virtqueue, chain: DescChain, deadline: number): void {
    if (chain.readTotal < HEADER || chain.writeTotal < 1) {
      this.needsReset(`queue ${q.index}: request ${chain.head} without ${chain.readTotal < HEADER ? 'a header' : 'a status byte'}`);
      return;
    }
    const hdr = new Uint8Array(HEADER);
    this.readFromChain(chain, 0, hdr);
    const type = (hdr[0] | (hdr[1] << 8) | (hdr[2] << 16) | (hdr[3] << 24)) >>> 0;
    const sector =
      ((hdr[8] | (hdr[9] << 8) | (hdr[10] << 16) | (hdr[11] << 24)) >>> 0) +
      ((hdr[12] | (hdr[13] << 8) | (hdr[14] << 16) | (hdr[15] << 24)) >>> 0) * 0x100000000;
    const now = this.machine.clock.now();
    const statusAt = chain.writeTotal - 1;
    const req: BlkInflight = { q: q.index, head: chain.head, deadline: 0 };
    const finish = (status: number, written: number): void => {
      this.inflight.delete(req);
      this.writeChainByte(chain, statusAt, status);
      this.pushUsed(q, chain.head, written + 1);
    };
    const quick = (status: number): void => {
      req.deadline = deadline >= 0 ? deadline : now + QUICK_LATENCY_NS;
      this.inflight.add(req);
      this.at(req.deadline, () => finish(status, 0));
    };
    const hostOp = (op: Promise<unknown>, latency: number, done: (error: Error | null) => void): void => {
      req.deadline = deadline >= 0 ? Math.max(deadline, now) : now + latency;
      this.inflight.add(req);
      this.completeAfter(op, req.deadline - now, (error) => {
        if (error) this.lastError = error.message;
        done(error);
      });
    };
    const rangeOk = (bytes: number): boolean =>
      bytes % 512 === 0 && bytes <= VIRTIO_BLK_MAX_REQUEST && sector + bytes / 512 <= this.disk.sectors;

    switch (type) {
      case VIRTIO_BLK_T_IN: {
        const bytes = statusAt;
        if (!rangeOk(bytes)) return quick(VIRTIO_BLK_S_IOERR);
        const buf = new Uint8Array(bytes);
        const op = bytes ? this.disk.read(sector, buf) : Promise.resolve();
        hostOp(op, LATENCY_NS + bytes / BYTES_PER_NS, (error) => {
          if (error) return finish(VIRTIO_BLK_S_IOERR, 0);
          this.writeToChain(chain, 0, buf);
          finish(VIRTIO_BLK_S_OK, bytes);
        });
        return;
      }
      case VIRTIO_BLK_T_OUT: {
        const bytes = chain.readTotal - HEADER;
        if (this.disk.readOnly || !rangeOk(bytes)) return quick(VIRTIO_BLK_S_IOERR);
        const data = new Uint8Array(bytes);
        this.readFromChain(chain, HEADER, data);
        const op = bytes ? this.disk.write(sector, data) : Promise.resolve();
        hostOp(op, LATENCY_NS + bytes / BYTES_PER_NS, (error) => finish(error ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, 0));
        return;
      }
      case VIRTIO_BLK_T_FLUSH: {
        const op = this.disk.readOnly ? Promise.resolve() : this.disk.flush();
        hostOp(op, FLUSH_LATENCY_NS, (error) => finish(error ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, 0));
        return;
      }
      case VIRTIO_BLK_T_GET_ID: {
        const id = new Uint8Array(Math.min(VIRTIO_BLK_ID_BYTES, statusAt));
        for (let i = 0; i < id.length && i < this.serial.length; i++) id[i] = this.serial.charCodeAt(i) & 0x7f;
        req.deadline = deadline >= 0 ? deadline : now + QUICK_LATENCY_NS;
        this.inflight.add(req);
        this.at(req.deadline, () => {
          this.writeToChain(chain, 0, id);
          finish(VIRTIO_BLK_S_OK, id.length);
        });
        return;
      }
      default:
        return quick(VIRTIO_BLK_S_UNSUPP);
    }
  }

  /** requests in flight now */
  get pending(): number {
    return this.inflight.size;
  }

  protected override deviceReset(): void {
    this.inflight.clear();
  }

  protected override saveDevice(): VirtioBlkState {
    const now = this.machine.clock.now();
    return {
      inflight: [...this.inflight].map((r) => ({ q: r.q, head: r.head, dueIn: Math.max(0, r.deadline - now) })),
    };
  }

  protected override loadDevice(s: unknown): void {
    const st = s as VirtioBlkState | undefined;
    this.inflight.clear();
    const now = this.machine.clock.now();
    for (const r of st?.inflight ?? []) {
      const q = this.queues[r.q];
      if (!q) continue;
      const req: BlkInflight = { q: r.q, head: r.head, deadline: now + Math.max(0, r.dueIn) };
      // placeholder until the chain is read again at the deadline (guest memory may be restored later)
      this.inflight.add(req);
      this.at(req.deadline, () => {
        this.inflight.delete(req);
        const chain = this.readChain(q, req.head);
        if (chain) this.start(q, chain, req.deadline);
      });
    }
  }
}

/** adds a virtio-blk PCI function serving `dev` to the PC (in the first free slot unless one is given) */
export function addVirtioBlk(pc: Pc, dev: BlockDevice, options: VirtioBlkOptions = {}): VirtioBlk {
  const bus = pc.pci?.bus;
  if (!bus) throw new Error('virtio-blk needs the PCI bus (createPc with pci enabled)');
  const slot = options.slot ?? freePciSlot(bus);
  const blk = new VirtioBlk(pc.machine, dev, { serial: options.serial ?? `x86vm-${slot}` });
  return bus.add(blk, devfn(slot, 0));
}
