/**
 * Virtio 1.0 over PCI: the modern PCI transport and split virtqueues, shared by every virtio device
 * (virtio-blk, virtio-scsi, later virtio-net). A device subclasses VirtioPciDevice and supplies its
 * virtio device ID, feature bits, queue sizes, device configuration space and what happens when the driver
 * notifies a queue; the base does the rest.
 *
 * Written from the OASIS "Virtual I/O Device (VIRTIO) Version 1.0" specification (4.1 PCI transport,
 * 2.4 split virtqueues, 2.1 device status, 6 reserved feature bits). Behaviour Linux 6.1's virtio_pci and
 * virtio_ring rely on was checked against TinyEMU's and QEMU's models (read, not copied).
 *
 * PCI function: vendor 0x1AF4, device 0x1040 + virtio device ID, revision 1 (non-transitional: there is
 * no legacy 0.9.5 I/O BAR; Linux's virtio_pci takes the modern path when the capabilities are present),
 * subsystem 1AF4:1100 as QEMU's. INTA through the PIIX PIRQ routing. No MSI-X (Linux falls back to INTx).
 *
 * BAR4 is a 16 KiB 32-bit memory BAR (the bus models 32-bit BARs only) laid out as QEMU's:
 *   0x0000 common configuration (the 0x3C bytes below)
 *   0x1000 ISR status: bit 0 used-buffer interrupt, bit 1 configuration change; reading clears it and
 *          deasserts INTx
 *   0x2000 device-specific configuration (little-endian)
 *   0x3000 notifications: queue q at 0x3000 + 4 q (queue_notify_off = q, notify_off_multiplier = 4)
 * Vendor-specific PCI capabilities (ID 0x09) point at these: COMMON_CFG 1, ISR_CFG 3, DEVICE_CFG 4,
 * NOTIFY_CFG 2, and PCI_CFG 5, a window in configuration space through which the driver reaches any BAR4
 * register (set bar, offset, length 1/2/4, then read or write pci_cfg_data).
 *
 * Common configuration: device_feature_select 0x00, device_feature 0x04, driver_feature_select 0x08,
 * driver_feature 0x0C, msix_config 0x10 (reads NO_VECTOR), num_queues 0x12, device_status 0x14,
 * config_generation 0x15, queue_select 0x16, queue_size 0x18, queue_msix_vector 0x1A (NO_VECTOR),
 * queue_enable 0x1C, queue_notify_off 0x1E, queue_desc 0x20, queue_driver (avail) 0x28,
 * queue_device (used) 0x30 (64-bit, as two 32-bit halves), queue_notify_data 0x38 and queue_reset 0x3A
 * (virtio 1.2 fields, read as 0). Any access width works; a narrow write merges into its field.
 *
 * Device status: writing 0 resets the device (queues, features, ISR; requests in flight are forgotten,
 * their late host completions ignored). FEATURES_OK sticks only if the driver accepted a subset of the
 * offered features that includes VIRTIO_F_VERSION_1. Queues are processed once DRIVER_OK is set (a
 * notification that arrives earlier is remembered). When the driver hands the device garbage (a
 * descriptor loop, a buffer outside RAM, a readable descriptor after a writable one, a missing request
 * header, more buffers available than the ring holds) the device sets DEVICE_NEEDS_RESET (0x40), raises a
 * configuration-change interrupt, and ignores the queues until it is reset; `brokenReason` says why.
 *
 * Features offered by the transport: VIRTIO_F_VERSION_1 (32), VIRTIO_F_RING_INDIRECT_DESC (28) and
 * VIRTIO_F_RING_EVENT_IDX (29). With EVENT_IDX the device interrupts only when the used index passes the
 * driver's used_event, and publishes avail_event (the next available index it will read) after every
 * buffer it takes, so the driver kicks only when the device has drained the ring. Without it, the
 * avail ring's NO_INTERRUPT flag suppresses interrupts.
 *
 * Split virtqueues live in guest RAM (physical address = index into mem8, below ramSize): descriptor
 * table (16 bytes: addr 64, len 32, flags 16 NEXT 1 / WRITE 2 / INDIRECT 4, next 16), available ring
 * (flags, idx, ring[size], used_event), used ring (flags, idx, ring[size] of {id 32, len 32},
 * avail_event). A chain is read into a DescChain: the device-readable segments followed by the
 * device-writable ones, which the device treats as two byte streams (any framing of a request across
 * descriptors works, as VERSION_1 requires).
 *
 * State: saveState covers the configuration space (the bus's part), the transport registers, every
 * queue's addresses and indices, and the device's own state (requests in flight included, see the
 * subclasses).
 */
import type { Machine } from '../core/machine';
import type { Memory } from '../core/memory';
import { completeIo } from '../core/blockio';
import { PciDevice, devfn, type BarHandler, type PciBus } from './pci';

export const VIRTIO_PCI_VENDOR = 0x1af4;
/** modern (virtio 1.0) PCI device IDs are 0x1040 + the virtio device ID */
export const VIRTIO_PCI_DEVICE_BASE = 0x1040;
export const VIRTIO_PCI_SUBSYSTEM_ID = 0x1100;

// device status bits
export const VIRTIO_STATUS_ACKNOWLEDGE = 0x01;
export const VIRTIO_STATUS_DRIVER = 0x02;
export const VIRTIO_STATUS_DRIVER_OK = 0x04;
export const VIRTIO_STATUS_FEATURES_OK = 0x08;
export const VIRTIO_STATUS_DEVICE_NEEDS_RESET = 0x40;
export const VIRTIO_STATUS_FAILED = 0x80;

// transport feature bits
export const VIRTIO_F_RING_INDIRECT_DESC = 28;
export const VIRTIO_F_RING_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;

// descriptor and ring flags
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;

// PCI capability types
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
export const VIRTIO_PCI_CAP_PCI_CFG = 5;
const PCI_CAP_ID_VNDR = 0x09;

/** the BAR holding the virtio structures, its size and layout */
export const VIRTIO_BAR = 4;
export const VIRTIO_BAR_SIZE = 0x4000;
export const VIRTIO_COMMON_OFFSET = 0x0000;
export const VIRTIO_ISR_OFFSET = 0x1000;
export const VIRTIO_DEVICE_OFFSET = 0x2000;
export const VIRTIO_NOTIFY_OFFSET = 0x3000;
export const VIRTIO_NOTIFY_MULTIPLIER = 4;
const REGION = 0x1000;

// common configuration registers
export const VIRTIO_COMMON_DFSELECT = 0x00;
export const VIRTIO_COMMON_DF = 0x04;
export const VIRTIO_COMMON_GFSELECT = 0x08;
export const VIRTIO_COMMON_GF = 0x0c;
export const VIRTIO_COMMON_MSIX = 0x10;
export const VIRTIO_COMMON_NUMQ = 0x12;
export const VIRTIO_COMMON_STATUS = 0x14;
export const VIRTIO_COMMON_CFGGENERATION = 0x15;
export const VIRTIO_COMMON_Q_SELECT = 0x16;
export const VIRTIO_COMMON_Q_SIZE = 0x18;
export const VIRTIO_COMMON_Q_MSIX = 0x1a;
export const VIRTIO_COMMON_Q_ENABLE = 0x1c;
export const VIRTIO_COMMON_Q_NOFF = 0x1e;
export const VIRTIO_COMMON_Q_DESCLO = 0x20;
export const VIRTIO_COMMON_Q_DESCHI = 0x24;
export const VIRTIO_COMMON_Q_AVAILLO = 0x28;
export const VIRTIO_COMMON_Q_AVAILHI = 0x2c;
export const VIRTIO_COMMON_Q_USEDLO = 0x30;
export const VIRTIO_COMMON_Q_USEDHI = 0x34;
export const VIRTIO_COMMON_Q_NDATA = 0x38;
export const VIRTIO_COMMON_Q_RESET = 0x3a;
const COMMON_SIZE = 0x3c;
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** the largest split queue (spec: 32768) */
export const VIRTQ_MAX_SIZE = 32768;
/** segments in one chain, indirect tables included (QEMU's limit too): more is garbage */
export const VIRTQ_MAX_CHAIN = 1024;

// field start / width per byte of the common configuration
const FIELD_START = new Uint8Array(COMMON_SIZE);
const FIELD_WIDTH = new Uint8Array(COMMON_SIZE);
{
  const fields: [number, number][] = [
    [0x00, 4], [0x04, 4], [0x08, 4], [0x0c, 4], [0x10, 2], [0x12, 2], [0x14, 1], [0x15, 1], [0x16, 2],
    [0x18, 2], [0x1a, 2], [0x1c, 2], [0x1e, 2], [0x20, 4], [0x24, 4], [0x28, 4], [0x2c, 4], [0x30, 4],
    [0x34, 4], [0x38, 2], [0x3a, 2],
  ];
  for (const [start, width] of fields) {
    for (let i = 0; i < width; i++) FIELD_START[start + i] = start;
    FIELD_WIDTH[start] = width;
  }
}

/** one split virtqueue's transport state */
export class Virtqueue {
  readonly index: number;
  readonly maxSize: number;
  /** the size the driver chose (a power of two up to maxSize) */
  size: number;
  enabled = false;
  /** ring addresses, low and high 32 bits */
  descLo = 0;
  descHi = 0;
  availLo = 0;
  availHi = 0;
  usedLo = 0;
  usedHi = 0;
  /** next index of the available ring the device will read (free-running 16 bits) */
  lastAvail = 0;
  /** the used ring's idx as the device last wrote it */
  usedIdx = 0;
  /** EVENT_IDX: used idx at the last interrupt decision, and whether there was one */
  signalledUsed = 0;
  signalledValid = false;
  /** a notification arrived before DRIVER_OK: serve it then */
  notifyPending = false;

  constructor(index: number, maxSize: number) {
    this.index = index;
    this.maxSize = maxSize;
    this.size = maxSize;
  }

  /** physical addresses (valid once enabled: checked to lie in RAM) */
  get desc(): number {
    return this.descLo;
  }

  get avail(): number {
    return this.availLo;
  }

  get used(): number {
    return this.usedLo;
  }

  reset(): void {
    this.size = this.maxSize;
    this.enabled = false;
    this.descLo = this.descHi = this.availLo = this.availHi = this.usedLo = this.usedHi = 0;
    this.lastAvail = 0;
    this.usedIdx = 0;
    this.signalledUsed = 0;
    this.signalledValid = false;
    this.notifyPending = false;
  }
}

/**
 * A descriptor chain taken from a queue: the head's index (what goes back in the used ring) and the
 * guest-physical segments, device-readable first, then device-writable.
 */
export class DescChain {
  head = 0;
  readonly readAddr: number[] = [];
  readonly readLen: number[] = [];
  readTotal = 0;
  readonly writeAddr: number[] = [];
  readonly writeLen: number[] = [];
  writeTotal = 0;
}

/** a driver error: the device goes to DEVICE_NEEDS_RESET */
export class VirtioError extends Error {}

export interface VirtioPciConfig {
  /** device name (PCI function name, messages) */
  name: string;
  /** the virtio device ID (1 net, 2 block, 8 SCSI, …): PCI device ID 0x1040 + this */
  deviceType: number;
  /** PCI class << 16 | subclass << 8 | prog-if */
  classCode: number;
  /** device-specific feature bits (bit numbers 0–23) */
  features: number[];
  /** maximum size of each queue (powers of two) */
  queueSizes: number[];
  /** bytes of device-specific configuration space */
  configSize: number;
}

export interface VirtqueueState {
  size: number;
  enabled: boolean;
  desc: [number, number];
  avail: [number, number];
  used: [number, number];
  lastAvail: number;
  usedIdx: number;
  signalledUsed: number;
  signalledValid: boolean;
  notifyPending: boolean;
}

export interface VirtioState {
  deviceFeatureSelect: number;
  driverFeatureSelect: number;
  driverFeatures: [number, number];
  status: number;
  generation: number;
  queueSelect: number;
  isr: number;
  brokenReason: string | null;
  deviceConfig: number[];
  queues: VirtqueueState[];
  device: unknown;
}

/** forwards BAR accesses to the device (the BAR handler must exist before the device's constructor runs) */
class BarProxy implements BarHandler {
  dev: VirtioPciDevice | null = null;
  read8(o: number): number {
    return this.dev!.barRead(o, 1);
  }
  read16(o: number): number {
    return this.dev!.barRead(o, 2);
  }
  read32(o: number): number {
    return this.dev!.barRead(o, 4);
  }
  write8(o: number, v: number): void {
    this.dev!.barWrite(o, 1, v);
  }
  write16(o: number, v: number): void {
    this.dev!.barWrite(o, 2, v);
  }
  write32(o: number, v: number): void {
    this.dev!.barWrite(o, 4, v);
  }
}

/**
 * The virtio PCI transport. Subclasses implement queueNotify() and, as needed, deviceReset(),
 * writeDeviceConfig(), driverOk(), saveDevice()/loadDevice().
 */
export abstract class VirtioPciDevice extends PciDevice {
  readonly machine: Machine;
  readonly mem: Memory;
  readonly queues: Virtqueue[];
  readonly deviceType: number;
  /** device-specific configuration space, little-endian; subclasses fill it */
  readonly deviceConfig: Uint8Array;
  /** why the device is in DEVICE_NEEDS_RESET, or null */
  brokenReason: string | null = null;
  /** offered features, bits 0–31 and 32–63 */
  protected readonly offered = new Uint32Array(2);
  /** features the driver accepted */
  protected readonly accepted = new Uint32Array(2);
  protected status = 0;
  protected isr = 0;
  /** bumped on every reset and restore: late completions of older requests are dropped */
  protected epoch = 0;
  private deviceFeatureSelect = 0;
  private driverFeatureSelect = 0;
  private generation = 0;
  private queueSelect = 0;
  /** config-space offset of the PCI_CFG capability */
  private readonly pciCfgCap: number;

  constructor(machine: Machine, cfg: VirtioPciConfig) {
    const proxy = new BarProxy();
    const bars: ({ size: number; kind: 'mem'; handler: BarHandler } | null)[] = [null, null, null, null, null, null];
    bars[VIRTIO_BAR] = { size: VIRTIO_BAR_SIZE, kind: 'mem', handler: proxy };
    super({
      name: cfg.name,
      vendorId: VIRTIO_PCI_VENDOR,
      deviceId: VIRTIO_PCI_DEVICE_BASE + cfg.deviceType,
      classCode: cfg.classCode,
      revision: 1,
      subsystemVendorId: VIRTIO_PCI_VENDOR,
      subsystemId: VIRTIO_PCI_SUBSYSTEM_ID,
      bars,
      interruptPin: 1,
    });
    proxy.dev = this;
    this.machine = machine;
    this.mem = machine.mem;
    this.deviceType = cfg.deviceType;
    if (cfg.queueSizes.length < 1 || cfg.queueSizes.length > 0xffff) throw new RangeError(`${cfg.name}: bad queue count`);
    this.queues = cfg.queueSizes.map((n, i) => {
      if (!(n >= 1 && n <= VIRTQ_MAX_SIZE && (n & (n - 1)) === 0)) throw new RangeError(`${cfg.name}: bad queue size ${n}`);
      return new Virtqueue(i, n);
    });
    if (cfg.configSize > REGION) throw new RangeError(`${cfg.name}: device configuration too large`);
    this.deviceConfig = new Uint8Array(cfg.configSize);
    for (const b of cfg.features) {
      if (!(b >= 0 && b < 24)) throw new RangeError(`${cfg.name}: device feature bit ${b} out of range`);
      this.offered[0] |= 1 << b;
    }
    this.offered[0] |= (1 << VIRTIO_F_RING_INDIRECT_DESC) | (1 << VIRTIO_F_RING_EVENT_IDX);
    this.offered[1] |= 1 << (VIRTIO_F_VERSION_1 - 32);

    this.addVirtioCap(VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_COMMON_OFFSET, REGION, 16);
    this.addVirtioCap(VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_ISR_OFFSET, REGION, 16);
    if (cfg.configSize > 0) this.addVirtioCap(VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_DEVICE_OFFSET, REGION, 16);
    const notify = this.addVirtioCap(VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_NOTIFY_OFFSET, REGION, 20);
    this.set32(notify + 16, VIRTIO_NOTIFY_MULTIPLIER);
    // PCI_CFG: bar (byte 4), offset (8–11), length (12–15) and pci_cfg_data (16–19) are the driver's
    this.pciCfgCap = this.addVirtioCap(VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 20);
    this.wmask[this.pciCfgCap + 4] = 0xff;
    for (let i = 8; i < 20; i++) this.wmask[this.pciCfgCap + i] = 0xff;
    this.captureResetState();
  }

  private addVirtioCap(type: number, offset: number, length: number, capLen: number): number {
    const at = this.addCapability(PCI_CAP_ID_VNDR, capLen);
    this.config[at + 2] = capLen;
    this.config[at + 3] = type;
    this.config[at + 4] = type === VIRTIO_PCI_CAP_PCI_CFG ? 0 : VIRTIO_BAR;
    this.set32(at + 8, offset);
    this.set32(at + 12, length);
    return at;
  }

  // ---- hooks for devices ----

  /** the driver made buffers available on queue q (DRIVER_OK is set and the queue is enabled) */
  protected abstract queueNotify(q: Virtqueue): void;

  /** the device was reset (status 0 or a PCI/machine reset): forget requests, restore defaults */
  protected deviceReset(): void {}

  /** the driver set DRIVER_OK */
  protected driverOk(): void {}

  /** a device configuration read (off relative to the device region; may be unaligned) */
  protected readDeviceConfig(off: number, size: number): number {
    let v = 0;
    const c = this.deviceConfig;
    for (let i = 0; i < size; i++) if (off + i < c.length) v |= c[off + i] << (8 * i);
    return v >>> 0;
  }

  /** a device configuration write (read-only fields by default) */
  protected writeDeviceConfig(_off: number, _size: number, _value: number): void {}

  protected saveDevice(): unknown {
    return undefined;
  }

  protected loadDevice(_s: unknown): void {}

  // ---- helpers for devices ----

  /** whether the driver accepted feature `bit` */
  hasFeature(bit: number): boolean {
    return ((this.accepted[bit >>> 5] >>> (bit & 31)) & 1) === 1;
  }

  /** whether the device may process queues now */
  get running(): boolean {
    return (this.status & VIRTIO_STATUS_DRIVER_OK) !== 0 && this.brokenReason === null;
  }

  get deviceStatus(): number {
    return this.status;
  }

  /** bumps config_generation after the device changed its configuration, and tells the driver */
  configChanged(): void {
    this.generation = (this.generation + 1) & 0xff;
    if (this.status & VIRTIO_STATUS_DRIVER_OK) this.raiseIsr(2);
  }

  /** the driver gave the device garbage: DEVICE_NEEDS_RESET, a configuration interrupt, and silence */
  needsReset(reason: string): void {
    if (this.brokenReason !== null) return;
    this.brokenReason = reason;
    this.status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    if (this.status & VIRTIO_STATUS_DRIVER_OK) this.raiseIsr(2);
  }

  /**
   * Takes the next available chain of queue q, or null when there is none (or the device is broken:
   * garbage puts it in DEVICE_NEEDS_RESET and returns null). Publishes avail_event with EVENT_IDX.
   */
  popChain(q: Virtqueue): DescChain | null {
    if (this.brokenReason !== null || !q.enabled) return null;
    const m = this.mem.mem8;
    const avail = q.availLo;
    const idx = m[avail + 2] | (m[avail + 3] << 8);
    const pending = (idx - q.lastAvail) & 0xffff;
    if (pending === 0) return null;
    if (pending > q.size) {
      this.needsReset(`queue ${q.index}: avail idx ${idx} is ${pending} ahead of ${q.lastAvail} (queue size ${q.size})`);
      return null;
    }
    const slot = avail + 4 + 2 * (q.lastAvail % q.size);
    const head = m[slot] | (m[slot + 1] << 8);
    q.lastAvail = (q.lastAvail + 1) & 0xffff;
    if (this.hasFeature(VIRTIO_F_RING_EVENT_IDX)) {
      const ev = q.usedLo + 4 + 8 * q.size;
      m[ev] = q.lastAvail & 0xff;
      m[ev + 1] = q.lastAvail >>> 8;
    }
    return this.readChain(q, head);
  }

  /** the number of chains the driver has made available and the device not yet taken */
  availableCount(q: Virtqueue): number {
    if (!q.enabled || this.brokenReason !== null) return 0;
    const m = this.mem.mem8;
    const idx = m[q.availLo + 2] | (m[q.availLo + 3] << 8);
    return (idx - q.lastAvail) & 0xffff;
  }

  /**
   * Reads the chain starting at descriptor `head` (also used to re-read the chains of requests restored
   * from a snapshot). Garbage puts the device in DEVICE_NEEDS_RESET and returns null.
   */
  readChain(q: Virtqueue, head: number): DescChain | null {
    try {
      return this.walkChain(q, head);
    } catch (e) {
      if (e instanceof VirtioError) {
        this.needsReset(`queue ${q.index}: ${e.message}`);
        return null;
      }
      throw e;
    }
  }

  private walkChain(q: Virtqueue, head: number): DescChain {
    const m = this.mem.mem8;
    const ram = this.mem.ramSize;
    const chain = new DescChain();
    chain.head = head;
    if (head >= q.size) throw new VirtioError(`descriptor head ${head} outside the table of ${q.size}`);
    let table = q.descLo;
    let tableSize = q.size;
    let i = head;
    let steps = 0;
    let segments = 0;
    let indirect = false;
    for (;;) {
      if (++steps > tableSize) throw new VirtioError(`descriptor chain from ${head} loops`);
      const d = table + 16 * i;
      const addrLo = (m[d] | (m[d + 1] << 8) | (m[d + 2] << 16) | (m[d + 3] << 24)) >>> 0;
      const addrHi = (m[d + 4] | (m[d + 5] << 8) | (m[d + 6] << 16) | (m[d + 7] << 24)) >>> 0;
      const len = (m[d + 8] | (m[d + 9] << 8) | (m[d + 10] << 16) | (m[d + 11] << 24)) >>> 0;
      const flags = m[d + 12] | (m[d + 13] << 8);
      const next = m[d + 14] | (m[d + 15] << 8);
      if (addrHi !== 0 || addrLo + len > ram) {
        throw new VirtioError(`descriptor ${i} points outside RAM (0x${addrHi.toString(16)}${addrLo.toString(16).padStart(8, '0')}, ${len} bytes)`);
      }
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (indirect) throw new VirtioError('an indirect table inside an indirect table');
        if (flags & VIRTQ_DESC_F_NEXT) throw new VirtioError(`indirect descriptor ${i} also has NEXT`);
        if (len === 0 || len % 16 !== 0) throw new VirtioError(`indirect table of ${len} bytes`);
        if (len / 16 > VIRTQ_MAX_CHAIN) throw new VirtioError(`indirect table of ${len / 16} descriptors`);
        indirect = true;
        table = addrLo;
        tableSize = len / 16;
        i = 0;
        steps = 0;
        continue;
      }
      if (++segments > VIRTQ_MAX_CHAIN) throw new VirtioError(`descriptor chain from ${head} is too long`);
      if (flags & VIRTQ_DESC_F_WRITE) {
        if (len) {
          chain.writeAddr.push(addrLo);
          chain.writeLen.push(len);
          chain.writeTotal += len;
        }
      } else {
        if (chain.writeAddr.length) throw new VirtioError(`readable descriptor ${i} after a writable one`);
        if (len) {
          chain.readAddr.push(addrLo);
          chain.readLen.push(len);
          chain.readTotal += len;
        }
      }
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      i = next;
      if (i >= tableSize) throw new VirtioError(`next descriptor ${i} outside the table of ${tableSize}`);
    }
    return chain;
  }

  /** copies dst.length bytes of the chain's readable stream, from `offset`, into dst; returns the count */
  readFromChain(chain: DescChain, offset: number, dst: Uint8Array): number {
    const m = this.mem.mem8;
    let want = dst.length;
    let done = 0;
    for (let s = 0; s < chain.readAddr.length && want > 0; s++) {
      const len = chain.readLen[s];
      if (offset >= len) {
        offset -= len;
        continue;
      }
      const n = Math.min(len - offset, want);
      const a = chain.readAddr[s] + offset;
      dst.set(m.subarray(a, a + n), done);
      done += n;
      want -= n;
      offset = 0;
    }
    return done;
  }

  /** copies src into the chain's writable stream from `offset`; returns the bytes written */
  writeToChain(chain: DescChain, offset: number, src: Uint8Array): number {
    const m = this.mem.mem8;
    let want = src.length;
    let done = 0;
    for (let s = 0; s < chain.writeAddr.length && want > 0; s++) {
      const len = chain.writeLen[s];
      if (offset >= len) {
        offset -= len;
        continue;
      }
      const n = Math.min(len - offset, want);
      m.set(done === 0 && n === src.length ? src : src.subarray(done, done + n), chain.writeAddr[s] + offset);
      done += n;
      want -= n;
      offset = 0;
    }
    return done;
  }

  /** one byte of the writable stream */
  writeChainByte(chain: DescChain, offset: number, value: number): void {
    for (let s = 0; s < chain.writeAddr.length; s++) {
      const len = chain.writeLen[s];
      if (offset < len) {
        this.mem.mem8[chain.writeAddr[s] + offset] = value;
        return;
      }
      offset -= len;
    }
  }

  /**
   * Returns a chain to the driver: used element {head, len} (len = bytes the device wrote), used idx
   * advanced, and an interrupt unless the driver suppressed it.
   */
  pushUsed(q: Virtqueue, head: number, len: number): void {
    if (this.brokenReason !== null || !q.enabled) return;
    const m = this.mem.mem8;
    const e = q.usedLo + 4 + 8 * (q.usedIdx % q.size);
    m[e] = head & 0xff;
    m[e + 1] = (head >>> 8) & 0xff;
    m[e + 2] = 0;
    m[e + 3] = 0;
    m[e + 4] = len & 0xff;
    m[e + 5] = (len >>> 8) & 0xff;
    m[e + 6] = (len >>> 16) & 0xff;
    m[e + 7] = (len >>> 24) & 0xff;
    q.usedIdx = (q.usedIdx + 1) & 0xffff;
    m[q.usedLo + 2] = q.usedIdx & 0xff;
    m[q.usedLo + 3] = q.usedIdx >>> 8;
    if (this.shouldInterrupt(q)) this.raiseIsr(1);
  }

  private shouldInterrupt(q: Virtqueue): boolean {
    const m = this.mem.mem8;
    if (this.hasFeature(VIRTIO_F_RING_EVENT_IDX)) {
      const old = q.signalledUsed;
      const valid = q.signalledValid;
      q.signalledUsed = q.usedIdx;
      q.signalledValid = true;
      if (!valid) return true;
      const a = q.availLo + 4 + 2 * q.size;
      const usedEvent = m[a] | (m[a + 1] << 8);
      return ((q.usedIdx - usedEvent - 1) & 0xffff) < ((q.usedIdx - old) & 0xffff);
    }
    return (m[q.availLo] & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /**
   * Runs `done` latencyNs of guest time from now, once `op` has settled (core/blockio.ts), unless the
   * device has been reset or restored meanwhile.
   */
  completeAfter(op: Promise<unknown>, latencyNs: number, done: (error: Error | null) => void): number {
    const epoch = this.epoch;
    return completeIo(this.machine, op, latencyNs, (error) => {
      if (epoch === this.epoch) done(error);
    });
  }

  /** runs `fn` at guest time `deadline` unless the device has been reset or restored meanwhile */
  at(deadline: number, fn: () => void): number {
    const epoch = this.epoch;
    return this.machine.clock.at(deadline, () => {
      if (epoch === this.epoch) fn();
    });
  }

  private raiseIsr(bits: number): void {
    this.isr |= bits;
    this.setIrq(true);
  }

  // ---- BAR4 ----

  barRead(off: number, size: number): number {
    if (off < VIRTIO_ISR_OFFSET) return this.commonRead(off, size);
    if (off < VIRTIO_DEVICE_OFFSET) {
      if (off !== VIRTIO_ISR_OFFSET) return 0;
      const v = this.isr;
      this.isr = 0;
      this.setIrq(false);
      return v;
    }
    if (off < VIRTIO_NOTIFY_OFFSET) {
      const o = off - VIRTIO_DEVICE_OFFSET;
      if (o >= this.deviceConfig.length) return 0;
      return this.readDeviceConfig(o, size);
    }
    return 0;
  }

  barWrite(off: number, size: number, value: number): void {
    if (off < VIRTIO_ISR_OFFSET) {
      this.commonWrite(off, size, value);
    } else if (off >= VIRTIO_DEVICE_OFFSET && off < VIRTIO_NOTIFY_OFFSET) {
      const o = off - VIRTIO_DEVICE_OFFSET;
      if (o < this.deviceConfig.length) this.writeDeviceConfig(o, size, value);
    } else if (off >= VIRTIO_NOTIFY_OFFSET) {
      const rel = off - VIRTIO_NOTIFY_OFFSET;
      if (rel % VIRTIO_NOTIFY_MULTIPLIER === 0) this.notify(rel / VIRTIO_NOTIFY_MULTIPLIER);
    }
  }

  private notify(index: number): void {
    const q = this.queues[index];
    if (!q || !q.enabled || this.brokenReason !== null) return;
    if (!(this.status & VIRTIO_STATUS_DRIVER_OK)) {
      q.notifyPending = true;
      return;
    }
    q.notifyPending = false;
    this.queueNotify(q);
  }

  private commonRead(off: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) {
      const b = off + i;
      if (b >= COMMON_SIZE) break;
      const start = FIELD_START[b];
      v |= ((this.fieldRead(start) >>> (8 * (b - start))) & 0xff) << (8 * i);
    }
    return v >>> 0;
  }

  private commonWrite(off: number, size: number, value: number): void {
    let i = 0;
    while (i < size) {
      const b = off + i;
      if (b >= COMMON_SIZE) break;
      const start = FIELD_START[b];
      const end = start + FIELD_WIDTH[start];
      let merged = this.fieldRead(start);
      for (; i < size && off + i < end; i++) {
        const shift = 8 * (off + i - start);
        const byte = (value >>> (8 * i)) & 0xff;
        merged = ((merged & ~(0xff << shift)) | (byte << shift)) >>> 0;
      }
      this.fieldWrite(start, merged);
    }
  }

  private get selected(): Virtqueue | undefined {
    return this.queues[this.queueSelect];
  }

  private fieldRead(field: number): number {
    const q = this.selected;
    switch (field) {
      case VIRTIO_COMMON_DFSELECT:
        return this.deviceFeatureSelect;
      case VIRTIO_COMMON_DF:
        return this.deviceFeatureSelect < 2 ? this.offered[this.deviceFeatureSelect] : 0;
      case VIRTIO_COMMON_GFSELECT:
        return this.driverFeatureSelect;
      case VIRTIO_COMMON_GF:
        return this.driverFeatureSelect < 2 ? this.accepted[this.driverFeatureSelect] : 0;
      case VIRTIO_COMMON_MSIX:
        return VIRTIO_MSI_NO_VECTOR;
      case VIRTIO_COMMON_NUMQ:
        return this.queues.length;
      case VIRTIO_COMMON_STATUS:
        return this.status;
      case VIRTIO_COMMON_CFGGENERATION:
        return this.generation;
      case VIRTIO_COMMON_Q_SELECT:
        return this.queueSelect;
      case VIRTIO_COMMON_Q_SIZE:
        return q ? q.size : 0;
      case VIRTIO_COMMON_Q_MSIX:
        return VIRTIO_MSI_NO_VECTOR;
      case VIRTIO_COMMON_Q_ENABLE:
        return q?.enabled ? 1 : 0;
      case VIRTIO_COMMON_Q_NOFF:
        return q ? q.index : 0;
      case VIRTIO_COMMON_Q_DESCLO:
        return q ? q.descLo : 0;
      case VIRTIO_COMMON_Q_DESCHI:
        return q ? q.descHi : 0;
      case VIRTIO_COMMON_Q_AVAILLO:
        return q ? q.availLo : 0;
      case VIRTIO_COMMON_Q_AVAILHI:
        return q ? q.availHi : 0;
      case VIRTIO_COMMON_Q_USEDLO:
        return q ? q.usedLo : 0;
      case VIRTIO_COMMON_Q_USEDHI:
        return q ? q.usedHi : 0;
      default:
        return 0;
    }
  }

  private fieldWrite(field: number, v: number): void {
    const q = this.selected;
    const configurable = q !== undefined && !q.enabled;
    switch (field) {
      case VIRTIO_COMMON_DFSELECT:
        this.deviceFeatureSelect = v >>> 0;
        break;
      case VIRTIO_COMMON_GFSELECT:
        this.driverFeatureSelect = v >>> 0;
        break;
      case VIRTIO_COMMON_GF:
        if (this.driverFeatureSelect < 2 && !(this.status & VIRTIO_STATUS_FEATURES_OK)) {
          this.accepted[this.driverFeatureSelect] = v >>> 0;
        }
        break;
      case VIRTIO_COMMON_STATUS:
        this.setStatus(v & 0xff);
        break;
      case VIRTIO_COMMON_Q_SELECT:
        this.queueSelect = v & 0xffff;
        break;
      case VIRTIO_COMMON_Q_SIZE:
        if (configurable) q.size = v & 0xffff;
        break;
      case VIRTIO_COMMON_Q_ENABLE:
        if (q && !q.enabled && v & 1) this.enableQueue(q);
        break;
      case VIRTIO_COMMON_Q_DESCLO:
        if (configurable) q.descLo = v >>> 0;
        break;
      case VIRTIO_COMMON_Q_DESCHI:
        if (configurable) q.descHi = v >>> 0;
        break;
      case VIRTIO_COMMON_Q_AVAILLO:
        if (configurable) q.availLo = v >>> 0;
        break;
      case VIRTIO_COMMON_Q_AVAILHI:
        if (configurable) q.availHi = v >>> 0;
        break;
      case VIRTIO_COMMON_Q_USEDLO:
        if (configurable) q.usedLo = v >>> 0;
        break;
      case VIRTIO_COMMON_Q_USEDHI:
        if (configurable) q.usedHi = v >>> 0;
        break;
      default:
        // device_feature, num_queues, config_generation, queue_notify_off are read-only; there is no
        // MSI-X, so the vector registers stay NO_VECTOR
        break;
    }
  }

  private enableQueue(q: Virtqueue): void {
    q.enabled = true;
    const n = q.size;
    const ram = this.mem.ramSize;
    const inRam = (hi: number, lo: number, bytes: number): boolean => hi === 0 && lo + bytes <= ram;
    if (!(n >= 1 && n <= q.maxSize && (n & (n - 1)) === 0)) {
      this.needsReset(`queue ${q.index}: size ${n} is not a power of two up to ${q.maxSize}`);
    } else if ((q.descLo & 15) !== 0 || (q.availLo & 1) !== 0 || (q.usedLo & 3) !== 0) {
      this.needsReset(`queue ${q.index}: misaligned ring addresses`);
    } else if (!inRam(q.descHi, q.descLo, 16 * n) || !inRam(q.availHi, q.availLo, 6 + 2 * n) || !inRam(q.usedHi, q.usedLo, 6 + 8 * n)) {
      this.needsReset(`queue ${q.index}: rings outside RAM`);
    }
  }

  private setStatus(v: number): void {
    if (v === 0) {
      this.virtioReset();
      return;
    }
    const old = this.status;
    if (v & VIRTIO_STATUS_FEATURES_OK && !(old & VIRTIO_STATUS_FEATURES_OK)) {
      const ok =
        (this.accepted[0] & ~this.offered[0]) === 0 &&
        (this.accepted[1] & ~this.offered[1]) === 0 &&
        this.hasFeature(VIRTIO_F_VERSION_1);
      if (!ok) v &= ~VIRTIO_STATUS_FEATURES_OK;
    }
    this.status = v | (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    if (v & VIRTIO_STATUS_DRIVER_OK && !(old & VIRTIO_STATUS_DRIVER_OK)) {
      this.driverOk();
      for (const q of this.queues) {
        if (q.notifyPending && q.enabled) {
          q.notifyPending = false;
          if (this.brokenReason === null) this.queueNotify(q);
        }
      }
    }
  }

  /** the virtio reset (device_status = 0), also part of a PCI reset */
  virtioReset(): void {
    this.epoch++;
    this.status = 0;
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.accepted.fill(0);
    this.queueSelect = 0;
    this.isr = 0;
    this.brokenReason = null;
    for (const q of this.queues) q.reset();
    this.setIrq(false);
    this.deviceReset();
  }

  // ---- PCI configuration space: the PCI_CFG access window ----

  private pciCfgAccess(): { off: number; len: number } | null {
    const cap = this.pciCfgCap;
    const bar = this.config[cap + 4];
    const off = this.get32(cap + 8);
    const len = this.get32(cap + 12);
    if (bar !== VIRTIO_BAR || !(len === 1 || len === 2 || len === 4) || off % len !== 0 || off + len > VIRTIO_BAR_SIZE) return null;
    return { off, len };
  }

  override readConfig(offset: number, size: number): number {
    const data = this.pciCfgCap + 16;
    if (offset < data + 4 && offset + size > data) {
      const a = this.pciCfgAccess();
      if (a) {
        const v = this.barRead(a.off, a.len);
        this.set32(data, a.len === 4 ? v : v & ((1 << (8 * a.len)) - 1));
      }
    }
    return super.readConfig(offset, size);
  }

  override writeConfig(offset: number, value: number, size: number): void {
    super.writeConfig(offset, value, size);
    const data = this.pciCfgCap + 16;
    if (offset < data + 4 && offset + size > data) {
      const a = this.pciCfgAccess();
      if (a) this.barWrite(a.off, a.len, this.get32(data));
    }
  }

  // ---- reset and state ----

  override reset(): void {
    super.reset();
    this.virtioReset();
  }

  override saveExtra(): VirtioState {
    const pair = (lo: number, hi: number): [number, number] => [lo >>> 0, hi >>> 0];
    return {
      deviceFeatureSelect: this.deviceFeatureSelect,
      driverFeatureSelect: this.driverFeatureSelect,
      driverFeatures: [this.accepted[0], this.accepted[1]],
      status: this.status,
      generation: this.generation,
      queueSelect: this.queueSelect,
      isr: this.isr,
      brokenReason: this.brokenReason,
      deviceConfig: Array.from(this.deviceConfig),
      queues: this.queues.map((q) => ({
        size: q.size,
        enabled: q.enabled,
        desc: pair(q.descLo, q.descHi),
        avail: pair(q.availLo, q.availHi),
        used: pair(q.usedLo, q.usedHi),
        lastAvail: q.lastAvail,
        usedIdx: q.usedIdx,
        signalledUsed: q.signalledUsed,
        signalledValid: q.signalledValid,
        notifyPending: q.notifyPending,
      })),
      device: this.saveDevice(),
    };
  }

  override loadExtra(state: unknown): void {
    const s = state as VirtioState;
    this.epoch++;
    this.deviceFeatureSelect = s.deviceFeatureSelect >>> 0;
    this.driverFeatureSelect = s.driverFeatureSelect >>> 0;
    this.accepted[0] = s.driverFeatures[0];
    this.accepted[1] = s.driverFeatures[1];
    this.status = s.status & 0xff;
    this.generation = s.generation & 0xff;
    this.queueSelect = s.queueSelect & 0xffff;
    this.isr = s.isr & 3;
    this.brokenReason = s.brokenReason ?? null;
    this.deviceConfig.set(s.deviceConfig.slice(0, this.deviceConfig.length));
    this.queues.forEach((q, i) => {
      const qs = s.queues[i];
      q.reset();
      if (!qs) return;
      q.size = qs.size & 0xffff;
      q.enabled = !!qs.enabled;
      [q.descLo, q.descHi] = qs.desc;
      [q.availLo, q.availHi] = qs.avail;
      [q.usedLo, q.usedHi] = qs.used;
      q.lastAvail = qs.lastAvail & 0xffff;
      q.usedIdx = qs.usedIdx & 0xffff;
      q.signalledUsed = qs.signalledUsed & 0xffff;
      q.signalledValid = !!qs.signalledValid;
      q.notifyPending = !!qs.notifyPending;
    });
    this.loadDevice(s.device);
  }
}

/** the first free PCI slot from 4 upwards (0 host bridge, 1 PIIX3; 2 and 3 are left for VGA and a NIC) */
export function freePciSlot(bus: PciBus, from = 4): number {
  for (let s = from; s < 32; s++) {
    let used = false;
    for (let f = 0; f < 8 && !used; f++) if (bus.get(devfn(s, f))) used = true;
    if (!used) return s;
  }
  for (let s = 2; s < from; s++) if (!bus.get(devfn(s, 0))) return s;
  throw new Error('no free PCI slot left');
}

// ---- base64 for byte buffers in saved states (no Node or DOM APIs here) ----

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;

export function toBase64(bytes: Uint8Array): string {
  const parts: string[] = [];
  let s = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    s += B64[n >>> 18] + B64[(n >>> 12) & 63] + B64[(n >>> 6) & 63] + B64[n & 63];
    if (s.length >= 4096) {
      parts.push(s);
      s = '';
    }
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    s += B64[n >>> 18] + B64[(n >>> 12) & 63] + '==';
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    s += B64[n >>> 18] + B64[(n >>> 12) & 63] + B64[(n >>> 6) & 63] + '=';
  }
  parts.push(s);
  return parts.join('');
}

export function fromBase64(text: string): Uint8Array {
  const clean = text.replace(/=+$/, '');
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < clean.length; i++) {
    const c = clean.charCodeAt(i);
    const v = c < 128 ? B64_INDEX[c] : -1;
    if (v < 0) throw new Error('bad base64 in a saved state');
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  return out.subarray(0, o);
}
