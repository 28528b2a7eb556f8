/**
 * PCI bus 0 of the PC: configuration mechanism #1 (0xCF8 address, 0xCFC–0xCFF data), the reset control
 * register at 0xCF9, and a small plug-in API for PCI functions.
 *
 * Written from the PCI Local Bus specification 3.0 (configuration header, BARs, command/status, INTx) and
 * the Intel 82441FX (i440FX PMC) and 82371SB (PIIX3) datasheets. Behaviour SeaBIOS and Linux rely on was
 * checked against QEMU's i440fx/piix3 models:
 * - 0xCF8 is a dword register (bit 31 enable, bus 23:16, device 15:11, function 10:8, register 7:2); byte
 *   and word accesses to 0xCF8–0xCFB go elsewhere (0xCF9 is the PIIX reset control register).
 * - 0xCFC–0xCFF move 1, 2 or 4 bytes of the selected dword, at any byte offset.
 * - Absent functions read as all ones; writes to them vanish.
 * - Function 0 reports the multi-function bit in its header type when other functions share its slot.
 * - Every type-0 function gets the subsystem IDs 1AF4:1100 (as QEMU does): SeaBIOS only believes it runs
 *   on QEMU (and reads fw_cfg) when the host bridge carries them.
 *
 * A PCI function is a PciDevice (construct it with a PciDeviceInfo, or subclass it). The bus handles the
 * standard header: BAR sizing (write all ones, read back the size mask), BAR mapping and unmapping when a
 * BAR or the command register's I/O / memory enable bits change (it registers the BAR's handler on the
 * IoBus or Memory itself, and tells the device through barMapped()), the interrupt line register, the
 * INTx disable bit and the capabilities list. Device-specific registers (0x40–0xFF) are stored bytes with
 * a per-byte write mask; a subclass reacts to them in configWritten() and may compute reads in
 * readConfigByte().
 *
 * INTx routing (as on QEMU's i440FX/PIIX3 board): device slot S pin P (1 = INTA) drives PIRQ
 * (S + P - 2) & 3; PIRQn goes to the ISA IRQ programmed in PIIX3 register 0x60+n (unless bit 7 is set)
 * and also to IOAPIC input 16+n. The ELCR belongs to the PIC (0x4D0/0x4D1), not to this file.
 */
import type { IrqLine } from '../core/host';
import type { IoBus, PortHandler } from '../core/iobus';
import type { Device } from '../core/machine';
import type { Memory } from '../core/memory';
import { PageKind } from '../core/memory';

export const PCI_CONFIG_ADDRESS = 0xcf8;
export const PCI_CONFIG_DATA = 0xcfc;
export const PCI_RESET_CONTROL = 0xcf9;

// standard header offsets
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BAR0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;

export const PCI_COMMAND_IO = 0x0001;
export const PCI_COMMAND_MEMORY = 0x0002;
export const PCI_COMMAND_MASTER = 0x0004;
export const PCI_COMMAND_INTX_DISABLE = 0x0400;
export const PCI_STATUS_INTERRUPT = 0x0008;
export const PCI_STATUS_CAP_LIST = 0x0010;

/** the subsystem IDs QEMU gives its devices (SeaBIOS checks them on the host bridge) */
export const QEMU_SUBSYSTEM_VENDOR = 0x1af4;
export const QEMU_SUBSYSTEM_ID = 0x1100;

/** I/O or MMIO handler of one BAR: addresses are offsets from the BAR's base */
export interface BarHandler {
  read8(offset: number): number;
  write8(offset: number, value: number): void;
  read16?(offset: number): number;
  write16?(offset: number, value: number): void;
  read32?(offset: number): number;
  write32?(offset: number, value: number): void;
}

export interface PciBarDecl {
  /** bytes, a power of two: at least 4 for I/O, at least 4096 for memory (page-granular MMIO) */
  size: number;
  kind: 'io' | 'mem';
  prefetchable?: boolean;
  /** when given, the bus registers it on the IoBus / Memory wherever the BAR is mapped */
  handler?: BarHandler;
}

export interface PciDeviceInfo {
  name: string;
  vendorId: number;
  deviceId: number;
  /** class << 16 | subclass << 8 | programming interface */
  classCode: number;
  revision?: number;
  /** 0 (normal) or 1 (PCI-PCI bridge); the multi-function bit is computed by the bus */
  headerType?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** up to 6 BARs (type 0 header); null leaves a slot unused */
  bars?: (PciBarDecl | null)[];
  /** 0 = none, 1..4 = INTA..INTD */
  interruptPin?: number;
  /** an interrupt wired to a fixed ISA IRQ instead of INTx (the PIIX4 PM's SCI on IRQ 9) */
  hardwiredIrq?: number;
}

export interface PciDeviceState {
  config: number[];
  intx: boolean;
  extra?: unknown;
}

export type Devfn = number;

/** slot (0–31) and function (0–7) as the 8-bit devfn */
export function devfn(slot: number, fn = 0): Devfn {
  return ((slot & 31) << 3) | (fn & 7);
}

/** the PIRQ (0 = A … 3 = D) a slot's interrupt pin (1 = INTA … 4 = INTD) drives on the PIIX board */
export function pirqOf(slot: number, pin: number): number {
  return (slot + pin - 2) & 3;
}

/** one PCI function */
export class PciDevice implements Device {
  readonly name: string;
  readonly info: PciDeviceInfo;
  /** the 256-byte configuration space as stored */
  readonly config = new Uint8Array(256);
  /** writable bits of each configuration byte (beyond the header fields the bus handles itself) */
  readonly wmask = new Uint8Array(256);
  /** write-one-to-clear bits of each configuration byte */
  readonly w1cmask = new Uint8Array(256);
  bus: PciBus | null = null;
  devfn: Devfn = -1;
  /** where each BAR is mapped now (-1 = not mapped) */
  readonly mappedAt: number[] = [-1, -1, -1, -1, -1, -1];
  private readonly initial = new Uint8Array(256);
  /** the device's own INTx request (before the command register's INTx disable) */
  private intx = false;
  private nextCap = 0x40;

  constructor(info: PciDeviceInfo) {
    this.info = info;
    this.name = info.name;
    const c = this.config;
    this.set16(PCI_VENDOR_ID, info.vendorId);
    this.set16(PCI_DEVICE_ID, info.deviceId);
    c[PCI_REVISION_ID] = info.revision ?? 0;
    c[PCI_CLASS_PROG] = info.classCode & 0xff;
    c[0x0a] = (info.classCode >> 8) & 0xff;
    c[0x0b] = (info.classCode >> 16) & 0xff;
    c[PCI_HEADER_TYPE] = (info.headerType ?? 0) & 0x7f;
    if ((info.headerType ?? 0) === 0) {
      this.set16(PCI_SUBSYSTEM_VENDOR_ID, info.subsystemVendorId ?? QEMU_SUBSYSTEM_VENDOR);
      this.set16(PCI_SUBSYSTEM_ID, info.subsystemId ?? QEMU_SUBSYSTEM_ID);
    }
    c[PCI_INTERRUPT_PIN] = info.interruptPin ?? 0;
    const bars = info.bars ?? [];
    if (bars.length > 6) throw new RangeError(`${info.name}: a type-0 header has 6 BARs`);
    for (let i = 0; i < bars.length; i++) {
      const b = bars[i];
      if (!b) continue;
      const min = b.kind === 'io' ? 4 : 4096;
      if (b.size < min || (b.size & (b.size - 1)) !== 0 || b.size > 0x80000000) {
        throw new RangeError(`${info.name}: BAR${i} size ${b.size} must be a power of two ≥ ${min}`);
      }
      if (b.kind === 'io' && b.size > 256) throw new RangeError(`${info.name}: I/O BAR${i} larger than 256 bytes`);
      this.set32(PCI_BAR0 + 4 * i, this.barFlags(i));
    }
    // command: I/O, memory, bus master, parity, SERR, INTx disable
    this.wmask[PCI_COMMAND] = 0x47;
    this.wmask[PCI_COMMAND + 1] = 0x05;
    this.w1cmask[PCI_STATUS + 1] = 0xf9; // error bits
    this.wmask[0x0c] = 0xff; // cache line size
    this.wmask[0x0d] = 0xff; // latency timer
    this.wmask[PCI_INTERRUPT_LINE] = 0xff;
  }

  // ---- helpers for subclasses ----

  set16(off: number, v: number): void {
    this.config[off] = v & 0xff;
    this.config[off + 1] = (v >> 8) & 0xff;
  }

  set32(off: number, v: number): void {
    this.set16(off, v & 0xffff);
    this.set16(off + 2, (v >>> 16) & 0xffff);
  }

  get16(off: number): number {
    return this.config[off] | (this.config[off + 1] << 8);
  }

  get32(off: number): number {
    return (this.get16(off) | (this.get16(off + 2) << 16)) >>> 0;
  }

  /**
   * Adds a capability of `length` bytes (header included) to the list and returns its offset; the
   * caller fills bytes offset+2 onwards (and their write masks).
   */
  addCapability(id: number, length: number, offset = this.nextCap): number {
    if (offset < 0x40 || offset + length > 256 || (offset & 3) !== 0) throw new RangeError('bad capability offset');
    this.config[offset] = id;
    this.config[offset + 1] = 0;
    if (this.config[PCI_CAPABILITY_LIST] === 0) {
      this.config[PCI_CAPABILITY_LIST] = offset;
    } else {
      let p = this.config[PCI_CAPABILITY_LIST];
      while (this.config[p + 1] !== 0) p = this.config[p + 1];
      this.config[p + 1] = offset;
    }
    this.config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    this.nextCap = Math.max(this.nextCap, (offset + length + 3) & ~3);
    return offset;
  }

  /** Must be called at the end of a subclass constructor that changed config/wmask defaults. */
  captureResetState(): void {
    this.initial.set(this.config);
  }

  /** Raises (true) or lowers the function's INTx pin. */
  setIrq(level: boolean): void {
    if (this.intx === level) return;
    this.intx = level;
    this.updateIntx();
  }

  get irqLevel(): boolean {
    return this.intx;
  }

  // ---- hooks for subclasses ----

  /** a BAR was mapped at `base`, or unmapped (base -1) */
  barMapped(_index: number, _base: number): void {}

  /** config bytes [offset, offset+size) were written (already stored through the masks) */
  configWritten(_offset: number, _size: number): void {}

  /** the value of one config byte as the guest reads it (override for computed registers) */
  readConfigByte(offset: number): number {
    if (offset === PCI_HEADER_TYPE && this.bus && (this.devfn & 7) === 0 && this.bus.isMultiFunction(this.devfn >> 3)) {
      return this.config[offset] | 0x80;
    }
    return this.config[offset];
  }

  /** device-specific state beyond the config space (override in subclasses) */
  saveExtra(): unknown {
    return undefined;
  }

  loadExtra(_s: unknown): void {}

  // ---- config access (called by the bus) ----

  readConfig(offset: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.readConfigByte((offset + i) & 0xff) << (8 * i);
    return v >>> 0;
  }

  writeConfig(offset: number, value: number, size: number): void {
    const oldCommand = this.get16(PCI_COMMAND);
    let barTouched = false;
    for (let i = 0; i < size; i++) {
      const o = (offset + i) & 0xff;
      const b = (value >>> (8 * i)) & 0xff;
      if (o >= PCI_BAR0 && o < PCI_BAR0 + 24 && (this.info.headerType ?? 0) === 0) {
        this.writeBarByte(o, b);
        barTouched = true;
        continue;
      }
      const w = this.wmask[o];
      const c = this.w1cmask[o];
      this.config[o] = (this.config[o] & ~w & ~(c & b)) | (b & w);
    }
    const newCommand = this.get16(PCI_COMMAND);
    if (barTouched || ((oldCommand ^ newCommand) & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY))) this.updateMappings();
    if ((oldCommand ^ newCommand) & PCI_COMMAND_INTX_DISABLE) this.updateIntx();
    this.configWritten(offset, size);
  }

  private barFlags(i: number): number {
    const b = this.info.bars?.[i];
    if (!b) return 0;
    return b.kind === 'io' ? 1 : b.prefetchable ? 8 : 0;
  }

  private writeBarByte(o: number, b: number): void {
    const i = (o - PCI_BAR0) >> 2;
    const decl = this.info.bars?.[i];
    if (!decl) return;
    const shift = 8 * ((o - PCI_BAR0) & 3);
    const mask = ((~(decl.size - 1) >>> shift) & 0xff) & (shift === 0 ? (decl.kind === 'io' ? 0xfc : 0xf0) : 0xff);
    this.config[o] = (this.config[o] & ~mask) | (b & mask);
  }

  /** where BAR i should be mapped now, or -1 */
  barAddress(i: number): number {
    const decl = this.info.bars?.[i];
    if (!decl) return -1;
    const cmd = this.get16(PCI_COMMAND);
    const raw = this.get32(PCI_BAR0 + 4 * i);
    if (decl.kind === 'io') {
      if (!(cmd & PCI_COMMAND_IO)) return -1;
      const base = (raw & ~3 & ~(decl.size - 1)) >>> 0;
      if (base === 0 || base + decl.size > 0x10000) return -1;
      return base;
    }
    if (!(cmd & PCI_COMMAND_MEMORY)) return -1;
    const base = (raw & ~0xf & ~(decl.size - 1)) >>> 0;
    if (base === 0 || base + decl.size > 0x100000000) return -1;
    return base;
  }

  /** re-evaluates every BAR's mapping (after a BAR or command write, a reset or a restore) */
  updateMappings(): void {
    const bars = this.info.bars ?? [];
    for (let i = 0; i < bars.length; i++) {
      const decl = bars[i];
      if (!decl) continue;
      let want = this.barAddress(i);
      if (want === this.mappedAt[i]) continue;
      if (this.mappedAt[i] >= 0) {
        this.bus?.unmapBar(this, i, decl, this.mappedAt[i]);
        this.mappedAt[i] = -1;
        this.barMapped(i, -1);
      }
      if (want >= 0 && this.bus && !this.bus.mapBar(this, i, decl, want)) want = -1;
      if (want >= 0) {
        this.mappedAt[i] = want;
        this.barMapped(i, want);
      }
    }
  }

  private updateIntx(): void {
    const disabled = (this.get16(PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE) !== 0;
    if (this.intx) this.config[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
    else this.config[PCI_STATUS] &= ~PCI_STATUS_INTERRUPT;
    this.bus?.setIntx(this, this.intx && !disabled);
  }

  reset(): void {
    this.config.set(this.initial);
    this.intx = false;
    this.updateIntx();
    this.updateMappings();
  }

  saveState(): PciDeviceState {
    return { config: Array.from(this.config), intx: this.intx, extra: this.saveExtra() };
  }

  loadState(state: unknown): void {
    const s = state as PciDeviceState;
    this.config.set(s.config.slice(0, 256));
    this.intx = !!s.intx;
    this.loadExtra(s.extra);
    this.updateMappings();
    this.updateIntx();
  }
}

/** IRQ inputs the bus drives: the IrqRouter satisfies this */
export interface PciIrqTarget {
  line(n: number): IrqLine;
}

export interface PciBusHost {
  readonly io: IoBus;
  readonly mem: Memory;
}

/** what the PIIX3 exposes to the bus for INTx routing */
interface PirqSource {
  /** ISA IRQ of PIRQ n, or -1 when disabled */
  pirqIrq(n: number): number;
}

export class PciBus implements Device {
  readonly name = 'pci';
  readonly io: IoBus;
  readonly mem: Memory;
  private readonly fns: (PciDevice | undefined)[] = new Array(256);
  private address = 0;
  private resetControl = 0;
  /** per PIRQ: the functions currently asserting it */
  private readonly pirqSources: Set<PciDevice>[] = [new Set(), new Set(), new Set(), new Set()];
  /** per PIRQ: the ISA IRQ it is driving now (-1 none) */
  private readonly pirqDriving = [-1, -1, -1, -1];
  private readonly ioapicLines: (IrqLine | null)[] = [null, null, null, null];
  private irqTarget: PciIrqTarget | null = null;
  private pirqSource: PirqSource | null = null;
  /** called on a write of 0xCF9 with bit 2 set (the platform maps it to machine.guestReset) */
  onReset: (message: string) => void = () => {};

  constructor(host: PciBusHost, irqs?: PciIrqTarget) {
    this.io = host.io;
    this.mem = host.mem;
    this.irqTarget = irqs ?? null;
    if (irqs) for (let n = 0; n < 4; n++) this.ioapicLines[n] = irqs.line(16 + n);
    host.io.register('pci-config', PCI_CONFIG_ADDRESS, 8, {
      read8: (p) => this.ioRead(p, 1),
      read16: (p) => this.ioRead(p, 2),
      read32: (p) => this.ioRead(p, 4),
      write8: (p, v) => this.ioWrite(p, v, 1),
      write16: (p, v) => this.ioWrite(p, v, 2),
      write32: (p, v) => this.ioWrite(p, v, 4),
    });
  }

  /** Plugs a function in at slot/function `df` (see devfn()). */
  add<T extends PciDevice>(dev: T, df: Devfn): T {
    if (df < 0 || df > 255) throw new RangeError(`bad devfn ${df}`);
    if (this.fns[df]) throw new Error(`PCI ${fmtDevfn(df)} of ${dev.name} is taken by ${this.fns[df]!.name}`);
    this.fns[df] = dev;
    dev.bus = this;
    dev.devfn = df;
    dev.captureResetState();
    dev.updateMappings();
    return dev;
  }

  /** the function at devfn, if any */
  get(df: Devfn): PciDevice | undefined {
    return this.fns[df];
  }

  /** every function, in devfn order */
  all(): PciDevice[] {
    return this.fns.filter((d): d is PciDevice => !!d);
  }

  isMultiFunction(slot: number): boolean {
    for (let f = 1; f < 8; f++) if (this.fns[(slot << 3) | f]) return true;
    return false;
  }

  // ---- configuration mechanism #1 ----

  /** config read on bus 0 (what 0xCFC returns for the given address) */
  configRead(df: Devfn, offset: number, size: number): number {
    const d = this.fns[df];
    if (!d) return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    return d.readConfig(offset, size);
  }

  configWrite(df: Devfn, offset: number, value: number, size: number): void {
    this.fns[df]?.writeConfig(offset, value, size);
  }

  private ioRead(port: number, size: number): number {
    if (port === PCI_CONFIG_ADDRESS && size === 4) return this.address >>> 0;
    if (port === PCI_RESET_CONTROL && size === 1) return this.resetControl;
    if (port >= PCI_CONFIG_DATA) {
      const off = port - PCI_CONFIG_DATA;
      if ((this.address & 0x80000000) === 0 || ((this.address >> 16) & 0xff) !== 0) {
        return size === 4 ? -1 : size === 2 ? 0xffff : 0xff;
      }
      const df = (this.address >> 8) & 0xff;
      const v = this.configRead(df, (this.address & 0xfc) + off, Math.min(size, 4 - off) as number);
      return size === 4 ? v | 0 : v;
    }
    return size === 4 ? -1 : size === 2 ? 0xffff : 0xff;
  }

  private ioWrite(port: number, value: number, size: number): void {
    if (port === PCI_CONFIG_ADDRESS && size === 4) {
      this.address = (value & 0x80fffffc) >>> 0;
      return;
    }
    if (port === PCI_RESET_CONTROL && size === 1) {
      // bit 1: hard (1) or soft (0) reset; bit 2 (written 1): reset now. Both reset the whole machine here.
      this.resetControl = value & 0x02;
      if (value & 0x04) this.onReset(`PCI reset control (0xCF9) = 0x${value.toString(16)}`);
      return;
    }
    if (port >= PCI_CONFIG_DATA) {
      if ((this.address & 0x80000000) === 0 || ((this.address >> 16) & 0xff) !== 0) return;
      const off = port - PCI_CONFIG_DATA;
      const df = (this.address >> 8) & 0xff;
      this.configWrite(df, (this.address & 0xfc) + off, value >>> 0, Math.min(size, 4 - off));
    }
  }

  // ---- BAR mapping ----

  /** maps BAR i of dev at base (false if the range is taken: the BAR then stays unmapped) */
  mapBar(dev: PciDevice, i: number, decl: PciBarDecl, base: number): boolean {
    const h = decl.handler;
    if (decl.kind === 'io') {
      for (let p = base; p < base + decl.size; p++) if (this.io.ownerOf(p) !== undefined) return false;
      if (!h) return true;
      const ph: PortHandler = {
        read8: (p) => h.read8(p - base),
        write8: (p, v) => h.write8(p - base, v),
      };
      if (h.read16) ph.read16 = (p) => h.read16!(p - base);
      if (h.write16) ph.write16 = (p, v) => h.write16!(p - base, v);
      if (h.read32) ph.read32 = (p) => h.read32!(p - base);
      if (h.write32) ph.write32 = (p, v) => h.write32!(p - base, v);
      this.io.register(`${dev.name} BAR${i}`, base, decl.size, ph);
      return true;
    }
    for (let p = base >>> 12; p < (base + decl.size) / 4096; p++) if (this.mem.pageKind[p] === PageKind.Mmio) return false;
    if (!h) return true;
    const name = `${dev.name} BAR${i}`;
    this.mem.mapMmio(base, decl.size, {
      name,
      read8: (a) => h.read8(a - base),
      write8: (a, v) => h.write8(a - base, v),
      read16: h.read16 ? (a) => h.read16!(a - base) : undefined,
      write16: h.write16 ? (a, v) => h.write16!(a - base, v) : undefined,
      read32: h.read32 ? (a) => h.read32!(a - base) : undefined,
      write32: h.write32 ? (a, v) => h.write32!(a - base, v) : undefined,
    });
    return true;
  }

  unmapBar(_dev: PciDevice, _i: number, decl: PciBarDecl, base: number): void {
    if (!decl.handler) return;
    if (decl.kind === 'io') this.io.unregister(base, decl.size);
    else this.mem.unmapMmio(base, decl.size);
  }

  // ---- INTx routing ----

  /** the PIIX3 registers itself here so PIRQ changes reroute the lines */
  setPirqSource(src: PirqSource): void {
    this.pirqSource = src;
    this.rerouteAll();
  }

  /** a function's effective INTx level changed */
  setIntx(dev: PciDevice, level: boolean): void {
    const pin = dev.config[PCI_INTERRUPT_PIN];
    if (pin < 1 || pin > 4 || dev.devfn < 0) return;
    const n = pirqOf(dev.devfn >> 3, pin);
    const set = this.pirqSources[n];
    const before = set.size > 0;
    if (level) set.add(dev);
    else set.delete(dev);
    if (before !== set.size > 0) this.drivePirq(n);
  }

  /** the level of PIRQ n (0 = A) */
  pirqLevel(n: number): boolean {
    return this.pirqSources[n].size > 0;
  }

  /** the PIIX3's PIRQ registers changed */
  rerouteAll(): void {
    for (let n = 0; n < 4; n++) this.drivePirq(n);
  }

  private drivePirq(n: number): void {
    const level = this.pirqSources[n].size > 0;
    const irq = this.pirqSource ? this.pirqSource.pirqIrq(n) : -1;
    const target = level ? irq : -1;
    if (this.pirqDriving[n] !== target) {
      if (this.pirqDriving[n] >= 0) this.pirqLineFor(n, this.pirqDriving[n])?.(false);
      if (target >= 0) this.pirqLineFor(n, target)?.(true);
      this.pirqDriving[n] = target;
    }
    this.ioapicLines[n]?.(level);
  }

  private readonly pirqIsaLines = new Map<number, IrqLine>();

  private pirqLineFor(n: number, irq: number): IrqLine | null {
    if (!this.irqTarget) return null;
    const key = irq * 4 + n;
    let l = this.pirqIsaLines.get(key);
    if (!l) {
      l = this.irqTarget.line(irq);
      this.pirqIsaLines.set(key, l);
    }
    return l;
  }

  reset(): void {
    this.address = 0;
    this.resetControl = 0;
    for (const d of this.all()) d.reset();
  }

  /** the bus registers and every function's state (config space and device extras), by devfn */
  saveState(): PciBusState {
    const functions: Record<string, unknown> = {};
    this.fns.forEach((d, df) => {
      if (d) functions[df] = d.saveState();
    });
    return { address: this.address, resetControl: this.resetControl, functions };
  }

  loadState(state: unknown): void {
    const s = state as PciBusState;
    this.address = s.address >>> 0;
    this.resetControl = s.resetControl & 0x02;
    for (const [df, fs] of Object.entries(s.functions ?? {})) this.fns[Number(df)]?.loadState(fs);
    this.rerouteAll();
  }
}

export interface PciBusState {
  address: number;
  resetControl: number;
  functions: Record<string, unknown>;
}

export function fmtDevfn(df: Devfn): string {
  return `00:${(df >> 3).toString(16).padStart(2, '0')}.${df & 7}`;
}

// ---------------------------------------------------------------------------------------------------
// i440FX host bridge (82441FX PMC) at 00:00.0

export const I440FX_PAM0 = 0x59;
export const I440FX_SMRAM = 0x72;

/** the shadow-RAM control the host bridge needs (core/memory's Memory satisfies it) */
export interface ShadowControl {
  setRamWritable(base: number, size: number, writable: boolean): void;
}

/**
 * PAM0 (0x59) bits 5:4 control 0xF0000–0xFFFFF; PAM1–PAM6 (0x5A–0x5F) control 0xC0000–0xEFFFF in 16 KiB
 * pieces (low nibble, then high nibble). Bit 0 of a field enables reads from DRAM, bit 1 writes to DRAM.
 * x86vm keeps one copy of those pages (the BIOS image is copied into RAM at start), so reads always see
 * that copy and the write-enable bit alone decides whether writes land (SeaBIOS copies itself from the
 * high ROM mapping and then write-protects the F segment again; the copy is identical).
 */
export class I440fxHostBridge extends PciDevice {
  private readonly shadow: ShadowControl;
  /**
   * Called on reset before PAM is re-applied: with one copy of 0xC0000–0xFFFFF, the platform must copy
   * the pristine BIOS image back there (on real boards and QEMU, reset sends reads to the ROM again).
   */
  restoreRom: () => void = () => {};

  constructor(shadow: ShadowControl) {
    super({ name: 'i440fx', vendorId: 0x8086, deviceId: 0x1237, classCode: 0x060000, revision: 0x02 });
    this.shadow = shadow;
    for (let o = I440FX_PAM0; o <= I440FX_PAM0 + 6; o++) this.wmask[o] = 0x33;
    this.wmask[I440FX_PAM0] = 0x30;
    this.config[I440FX_SMRAM] = 0x02;
    this.wmask[I440FX_SMRAM] = 0x78;
    this.wmask[0x50] = 0xff; // PMCCFG
    this.wmask[0x51] = 0xff;
    this.wmask[0x57] = 0xff; // DRAMC
    for (let o = 0x60; o <= 0x67; o++) this.wmask[o] = 0xff; // DRB
    this.captureResetState();
  }

  /** write enable of each 16 KiB piece below 1 MiB, for tests and diagnostics */
  pamWritable(addr: number): boolean {
    return this.pamField(addr) & 2 ? true : false;
  }

  private pamField(addr: number): number {
    if (addr >= 0xf0000) return (this.config[I440FX_PAM0] >> 4) & 3;
    const piece = (addr - 0xc0000) >> 14; // 0..11
    const reg = I440FX_PAM0 + 1 + (piece >> 1);
    return (this.config[reg] >> ((piece & 1) * 4)) & 3;
  }

  override configWritten(offset: number, size: number): void {
    if (offset + size > I440FX_PAM0 && offset <= I440FX_PAM0 + 6) this.applyPam();
  }

  applyPam(): void {
    this.shadow.setRamWritable(0xf0000, 0x10000, (this.pamField(0xf0000) & 2) !== 0);
    for (let a = 0xc0000; a < 0xf0000; a += 0x4000) this.shadow.setRamWritable(a, 0x4000, (this.pamField(a) & 2) !== 0);
  }

  override reset(): void {
    super.reset();
    this.shadow.setRamWritable(0xc0000, 0x40000, true);
    this.restoreRom();
    this.applyPam();
  }

  override loadState(state: unknown): void {
    super.loadState(state);
    this.applyPam();
  }
}

// ---------------------------------------------------------------------------------------------------
// PIIX3 ISA bridge (82371SB function 0) at 00:01.0

export const PIIX_PIRQ_BASE = 0x60;

export class Piix3IsaBridge extends PciDevice {
  constructor() {
    super({ name: 'piix3-isa', vendorId: 0x8086, deviceId: 0x7000, classCode: 0x060100 });
    const c = this.config;
    this.set16(PCI_COMMAND, 0x0007);
    this.set16(PCI_STATUS, 0x0200);
    c[0x4c] = 0x4d; // ISA I/O recovery timer
    c[0x4e] = 0x03; // X-bus chip select
    for (let n = 0; n < 4; n++) c[PIIX_PIRQ_BASE + n] = 0x80;
    c[0x69] = 0x02; // top of memory
    c[0x70] = 0x80; // motherboard IRQ route (disabled)
    c[0x76] = 0x0c; // DMA
    c[0x77] = 0x0c;
    c[0x78] = 0x02;
    c[0x79] = 0x00;
    c[0xa0] = 0x08;
    c[0xa8] = 0x0f;
    for (const o of [0x4c, 0x4e, 0x4f, 0x69, 0x6a, 0x70, 0x76, 0x77, 0x78, 0x79, 0x80, 0x82, 0xa0, 0xa2, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xaa, 0xab, 0xac, 0xae]) {
      this.wmask[o] = 0xff;
    }
    for (let n = 0; n < 4; n++) this.wmask[PIIX_PIRQ_BASE + n] = 0x8f;
    this.captureResetState();
  }

  /** ISA IRQ of PIRQ n (0–3), or -1 when routing is disabled or the value is reserved */
  pirqIrq(n: number): number {
    const v = this.config[PIIX_PIRQ_BASE + n];
    if (v & 0x80) return -1;
    const irq = v & 0x0f;
    // 0, 1, 2, 8 and 13 are reserved on the PIIX3
    if (irq < 3 || irq === 8 || irq === 13) return -1;
    return irq;
  }

  override configWritten(offset: number, size: number): void {
    if (offset + size > PIIX_PIRQ_BASE && offset < PIIX_PIRQ_BASE + 4) this.bus?.rerouteAll();
  }

  override reset(): void {
    super.reset();
    this.bus?.rerouteAll();
  }
}

/** The PIIX board's fixed part: bus, host bridge at 00:00.0, ISA bridge at 00:01.0. */
export function createPciHost(
  host: PciBusHost,
  irqs: PciIrqTarget | undefined,
): { bus: PciBus; hostBridge: I440fxHostBridge; isa: Piix3IsaBridge } {
  const bus = new PciBus(host, irqs);
  const hostBridge = bus.add(new I440fxHostBridge(host.mem), devfn(0, 0));
  const isa = bus.add(new Piix3IsaBridge(), devfn(1, 0));
  bus.setPirqSource(isa);
  hostBridge.applyPam();
  return { bus, hostBridge, isa };
}

/**
 * What SeaBIOS does for PCI interrupts, for direct kernel boots without a BIOS: PIRQA–D → IRQ 10, 10, 11,
 * 11 and each function's interrupt line register set accordingly. Returns the ISA IRQs that are now
 * level-triggered PCI interrupts (the platform sets those ELCR bits in the PIC).
 */
export function assignPciIrqsLikeSeaBios(bus: PciBus, isa: Piix3IsaBridge): number[] {
  const irqs = [10, 10, 11, 11];
  for (let n = 0; n < 4; n++) isa.writeConfig(PIIX_PIRQ_BASE + n, irqs[n], 1);
  for (const d of bus.all()) {
    const pin = d.config[PCI_INTERRUPT_PIN];
    if (d.info.hardwiredIrq !== undefined) d.writeConfig(PCI_INTERRUPT_LINE, d.info.hardwiredIrq, 1);
    else if (pin >= 1 && pin <= 4) d.writeConfig(PCI_INTERRUPT_LINE, irqs[pirqOf(d.devfn >> 3, pin)], 1);
  }
  return [10, 11];
}
