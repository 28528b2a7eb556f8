/**
 * A hand-played virtio 1.0 guest driver for the unit tests: PCI configuration through the bus, the
 * BAR through the memory bus (the MMIO path the CPU uses), split rings written into guest RAM, and a
 * loop that runs the machine's clock until something happens. Deterministic mode: guest time moves only
 * when the loop advances it.
 */
import { createPc, type Pc } from '../../core/pc';
import { PCI_COMMAND, PCI_BAR0, PCI_CAPABILITY_LIST } from '../../devices/pci';
import {
  VIRTIO_BAR,
  VIRTIO_COMMON_OFFSET,
  VIRTIO_ISR_OFFSET,
  VIRTIO_DEVICE_OFFSET,
  VIRTIO_NOTIFY_OFFSET,
  VIRTIO_NOTIFY_MULTIPLIER,
  VIRTIO_STATUS_ACKNOWLEDGE,
  VIRTIO_STATUS_DRIVER,
  VIRTIO_STATUS_FEATURES_OK,
  VIRTIO_STATUS_DRIVER_OK,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_DESC_F_INDIRECT,
  type VirtioPciDevice,
} from '../../devices/virtio';

export const MEM = 32 << 20;
export const BAR_BASE = 0xe0000000;

export function makePc(devices: ((pc: Pc) => void)[] = []): Pc {
  const pc = createPc({ memSize: MEM, deterministic: true, devices });
  pc.prepareDirectBoot(); // PCI interrupt routing as firmware leaves it
  return pc;
}

export interface Seg {
  addr: number;
  len: number;
  write?: boolean;
}

export interface UsedElem {
  id: number;
  len: number;
}

export class GuestQueue {
  desc = 0;
  avail = 0;
  used = 0;
  size = 0;
  nextDesc = 0;
  availIdx = 0;
  usedSeen = 0;
}

export class Driver {
  readonly pc: Pc;
  readonly dev: VirtioPciDevice;
  readonly queues: GuestQueue[] = [];
  private heap = 0x100000;

  constructor(pc: Pc, dev: VirtioPciDevice) {
    this.pc = pc;
    this.dev = dev;
    this.cfgWrite(PCI_BAR0 + 4 * VIRTIO_BAR, BAR_BASE, 4);
    this.cfgWrite(PCI_COMMAND, 0x0006, 2);
  }

  // ---- PCI configuration ----

  cfgRead(off: number, size: 1 | 2 | 4): number {
    return this.pc.pci!.bus.configRead(this.dev.devfn, off, size);
  }

  cfgWrite(off: number, v: number, size: 1 | 2 | 4): void {
    this.pc.pci!.bus.configWrite(this.dev.devfn, off, v, size);
  }

  /** the vendor-specific capabilities: offset in config space and the fields of each */
  virtioCaps(): { at: number; type: number; bar: number; offset: number; length: number; len: number }[] {
    const caps = [];
    let p = this.cfgRead(PCI_CAPABILITY_LIST, 1);
    for (let guard = 0; p && guard < 48; guard++) {
      if (this.cfgRead(p, 1) === 0x09) {
        caps.push({
          at: p,
          len: this.cfgRead(p + 2, 1),
          type: this.cfgRead(p + 3, 1),
          bar: this.cfgRead(p + 4, 1),
          offset: this.cfgRead(p + 8, 4),
          length: this.cfgRead(p + 12, 4),
        });
      }
      p = this.cfgRead(p + 1, 1);
    }
    return caps;
  }

  // ---- BAR (through the memory bus) ----

  r8(off: number): number {
    return this.pc.mem.read8(BAR_BASE + off);
  }
  r16(off: number): number {
    return this.pc.mem.read16(BAR_BASE + off);
  }
  r32(off: number): number {
    return this.pc.mem.read32(BAR_BASE + off) >>> 0;
  }
  w8(off: number, v: number): void {
    this.pc.mem.write8(BAR_BASE + off, v);
  }
  w16(off: number, v: number): void {
    this.pc.mem.write16(BAR_BASE + off, v);
  }
  w32(off: number, v: number): void {
    this.pc.mem.write32(BAR_BASE + off, v);
  }

  common(reg: number, size: 1 | 2 | 4): number {
    const o = VIRTIO_COMMON_OFFSET + reg;
    return size === 1 ? this.r8(o) : size === 2 ? this.r16(o) : this.r32(o);
  }

  setCommon(reg: number, v: number, size: 1 | 2 | 4): void {
    const o = VIRTIO_COMMON_OFFSET + reg;
    if (size === 1) this.w8(o, v);
    else if (size === 2) this.w16(o, v);
    else this.w32(o, v);
  }

  get status(): number {
    return this.common(0x14, 1);
  }

  set status(v: number) {
    this.setCommon(0x14, v, 1);
  }

  readIsr(): number {
    return this.r8(VIRTIO_ISR_OFFSET);
  }

  devCfg8(off: number): number {
    return this.r8(VIRTIO_DEVICE_OFFSET + off);
  }
  devCfg16(off: number): number {
    return this.r16(VIRTIO_DEVICE_OFFSET + off);
  }
  devCfg32(off: number): number {
    return this.r32(VIRTIO_DEVICE_OFFSET + off);
  }

  /** the device's 64 feature bits as [lo, hi] */
  deviceFeatures(): [number, number] {
    this.setCommon(0x00, 0, 4);
    const lo = this.common(0x04, 4);
    this.setCommon(0x00, 1, 4);
    const hi = this.common(0x04, 4);
    return [lo, hi];
  }

  setDriverFeatures(lo: number, hi: number): void {
    this.setCommon(0x08, 0, 4);
    this.setCommon(0x0c, lo, 4);
    this.setCommon(0x08, 1, 4);
    this.setCommon(0x0c, hi, 4);
  }

  /**
   * The driver's initialisation sequence (spec 3.1.1): reset, ACKNOWLEDGE, DRIVER, features (all the
   * device offers, minus `drop`), FEATURES_OK, queues, DRIVER_OK. Returns the accepted features.
   */
  init(options: { drop?: number[]; queueSizes?: number[]; driverOk?: boolean } = {}): [number, number] {
    this.status = 0;
    this.status = VIRTIO_STATUS_ACKNOWLEDGE;
    this.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    let [lo, hi] = this.deviceFeatures();
    for (const b of options.drop ?? []) {
      if (b < 32) lo &= ~(1 << b);
      else hi &= ~(1 << (b - 32));
    }
    lo >>>= 0;
    hi >>>= 0;
    this.setDriverFeatures(lo, hi);
    this.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
    if (!(this.status & VIRTIO_STATUS_FEATURES_OK)) throw new Error('FEATURES_OK refused');
    const n = this.common(0x12, 2);
    for (let i = 0; i < n; i++) this.setupQueue(i, options.queueSizes?.[i]);
    if (options.driverOk !== false) this.status = this.status | VIRTIO_STATUS_DRIVER_OK;
    return [lo, hi];
  }

  alloc(bytes: number, align = 16): number {
    this.heap = (this.heap + align - 1) & ~(align - 1);
    const a = this.heap;
    this.heap += bytes;
    if (this.heap > MEM - 0x20000) throw new Error('test heap exhausted');
    this.pc.mem.mem8.fill(0, a, a + bytes);
    return a;
  }

  setupQueue(index: number, size?: number): GuestQueue {
    this.setCommon(0x16, index, 2);
    const max = this.common(0x18, 2);
    const n = size ?? max;
    const q = new GuestQueue();
    q.size = n;
    q.desc = this.alloc(16 * n, 16);
    q.avail = this.alloc(6 + 2 * n, 2);
    q.used = this.alloc(6 + 8 * n, 4);
    this.setCommon(0x18, n, 2);
    this.setCommon(0x20, q.desc, 4);
    this.setCommon(0x24, 0, 4);
    this.setCommon(0x28, q.avail, 4);
    this.setCommon(0x2c, 0, 4);
    this.setCommon(0x30, q.used, 4);
    this.setCommon(0x34, 0, 4);
    this.setCommon(0x1c, 1, 2);
    this.queues[index] = q;
    return q;
  }

  // ---- guest memory ----

  get m(): Uint8Array {
    return this.pc.mem.mem8;
  }

  put(addr: number, bytes: ArrayLike<number>): void {
    this.m.set(bytes, addr);
  }

  get(addr: number, len: number): Uint8Array {
    return this.m.slice(addr, addr + len);
  }

  w16m(a: number, v: number): void {
    this.m[a] = v & 0xff;
    this.m[a + 1] = (v >>> 8) & 0xff;
  }

  w32m(a: number, v: number): void {
    this.w16m(a, v & 0xffff);
    this.w16m(a + 2, v >>> 16);
  }

  r16m(a: number): number {
    return this.m[a] | (this.m[a + 1] << 8);
  }

  r32m(a: number): number {
    return (this.r16m(a) | (this.r16m(a + 2) << 16)) >>> 0;
  }

  /** writes one descriptor into a table */
  writeDesc(table: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const d = table + 16 * i;
    this.w32m(d, addr);
    this.w32m(d + 4, 0);
    this.w32m(d + 8, len);
    this.w16m(d + 12, flags);
    this.w16m(d + 14, next);
  }

  /**
   * Puts a chain on queue q's descriptor table (or, with `indirect`, in an indirect table the single
   * ring descriptor points to) and makes it available. Returns the head index.
   */
  add(qi: number, segs: Seg[], options: { indirect?: boolean; publish?: boolean } = {}): number {
    const q = this.queues[qi];
    const head = q.nextDesc;
    if (options.indirect) {
      const table = this.alloc(16 * segs.length, 16);
      segs.forEach((s, i) => {
        const last = i === segs.length - 1;
        this.writeDesc(table, i, s.addr, s.len, (s.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), last ? 0 : i + 1);
      });
      this.writeDesc(q.desc, head, table, 16 * segs.length, VIRTQ_DESC_F_INDIRECT, 0);
      q.nextDesc = (q.nextDesc + 1) % q.size;
    } else {
      segs.forEach((s, i) => {
        const idx = (head + i) % q.size;
        const last = i === segs.length - 1;
        this.writeDesc(q.desc, idx, s.addr, s.len, (s.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), last ? 0 : (idx + 1) % q.size);
      });
      q.nextDesc = (q.nextDesc + segs.length) % q.size;
    }
    if (options.publish !== false) this.publish(qi, head);
    return head;
  }

  /** places head in the available ring and advances avail idx */
  publish(qi: number, head: number): void {
    const q = this.queues[qi];
    this.w16m(q.avail + 4 + 2 * (q.availIdx % q.size), head);
    q.availIdx = (q.availIdx + 1) & 0xffff;
    this.w16m(q.avail + 2, q.availIdx);
  }

  kick(qi: number): void {
    this.setCommon(0x16, qi, 2);
    const noff = this.common(0x1e, 2); // queue_notify_off of the queue
    this.w16(VIRTIO_NOTIFY_OFFSET + noff * VIRTIO_NOTIFY_MULTIPLIER, qi);
  }

  usedIdx(qi: number): number {
    return this.r16m(this.queues[qi].used + 2);
  }

  /** used elements not seen yet */
  takeUsed(qi: number): UsedElem[] {
    const q = this.queues[qi];
    const out: UsedElem[] = [];
    const idx = this.usedIdx(qi);
    while (q.usedSeen !== idx) {
      const e = q.used + 4 + 8 * (q.usedSeen % q.size);
      out.push({ id: this.r32m(e), len: this.r32m(e + 4) });
      q.usedSeen = (q.usedSeen + 1) & 0xffff;
    }
    return out;
  }

  /** the device's INTx as the interrupt controllers see it */
  get irq(): boolean {
    return this.dev.irqLevel;
  }

  /** the ISA IRQ the device's PIRQ is routed to */
  get isaIrq(): number {
    return this.cfgRead(0x3c, 1);
  }

  /** runs the machine's clock until cond() holds (or nothing is left to happen, or limitNs passes) */
  async run(cond: () => boolean = () => false, limitNs = 50_000_000): Promise<boolean> {
    return settle(this.pc, cond, limitNs);
  }
}

/**
 * Runs due timers, letting host promises settle in between, advancing deterministic guest time to the
 * next timer each step, until cond() holds or limitNs of guest time has passed.
 */
export async function settle(pc: Pc, cond: () => boolean = () => false, limitNs = 50_000_000): Promise<boolean> {
  const clock = pc.clock;
  const start = clock.now();
  for (let i = 0; i < 1_000_000; i++) {
    await new Promise<void>((r) => setImmediate(r));
    if (pc.machine.hostWait) await pc.machine.hostWait;
    clock.runDue();
    if (cond()) return true;
    const next = clock.nextDeadline();
    if (next === Infinity || next - start > limitNs) {
      await new Promise<void>((r) => setImmediate(r));
      clock.runDue();
      return cond();
    }
    if (next > clock.now()) clock.advance(next - clock.now());
  }
  return cond();
}

/** little-endian helpers for building requests */
export function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

export function le64(v: number): number[] {
  return [...le32(v % 0x100000000), ...le32(Math.floor(v / 0x100000000))];
}

/** a deterministic pattern of n bytes */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** '' when a and b hold the same bytes, else where they first differ (fast on MiB-sized buffers) */
export function byteDiff(a: Uint8Array, b: Uint8Array): string {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `byte ${i}: ${a[i]} != ${b[i]}`;
  return '';
}
