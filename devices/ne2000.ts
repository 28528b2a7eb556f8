/**
 * NE2000 on PCI: the Realtek RTL8029(AS) (PCI 10EC:8029), a DP8390-compatible Ethernet controller with
 * 32 KiB of packet buffer, as Linux's ne2k-pci + 8390 driver expects it.
 *
 * Written from the National Semiconductor DP8390D datasheet (register pages 0–2, remote DMA, the receive
 * ring, the address filter), the RTL8029AS datasheet (PCI, ID registers 0x0A/0x0B = 'P','C') and what
 * Linux 6.1's ne2k-pci.c and 8390.c do with them; details checked against QEMU's ne2000 (read, not copied).
 *
 * I/O BAR0, 32 bytes:
 *   0x00–0x0F  the DP8390 registers of the page selected by CR.PS (pages 0, 1, 2; page 3 reads 0)
 *   0x10–0x17  the remote DMA data port (8, 16 or 32 bits; in word mode (DCR.WTS) every access moves at
 *              least one 16-bit word, an 8-bit read returning its low byte, as QEMU and ne2k-pci expect)
 *   0x18–0x1F  the reset port: a read resets the chip (ISR.RST), a write is ignored
 *
 * Packet memory (the remote DMA address space, 16 bits): the station address PROM at 0x0000–0x001F (16
 * bytes, each doubled: MAC, then 0x57 0x57 at 14/15 as an NE2000 signature), packet RAM at 0x4000–0xBFFF;
 * reads elsewhere return 0xFF, writes elsewhere vanish. Remote DMA wraps from PSTOP to PSTART, as the
 * chip does while reading the receive ring.
 *
 * Receive: a frame from the wire passes the address filter (PRO all; AB broadcast; AM multicast whose
 * CRC hash bit is set in MAR0–7; otherwise our PAR0–5), is padded to 60 bytes and stored at CURR with the
 * 4-byte header (RSR, next page, byte count including the header); CURR moves on, ISR.PRX is set. A frame
 * goes in only if it leaves at least one page free before BNRY (CURR never reaches BNRY). While the ring is
 * full, in loopback, or OVW is pending, frames wait in a backlog (BACKLOG_FRAMES) that drains when the
 * driver acknowledges PRX (after moving BNRY), so every frame stored raises PRX after the acknowledgement;
 * an acknowledgement that leaves unread frames in the ring keeps PRX set. A frame that finds the backlog full is lost: ISR.OVW is set, the missed-packet tally (CNTR2)
 * counts it, and reception stays off until the driver acknowledges OVW. A stopped chip (CR.STP) or monitor
 * mode (RCR.MON) takes no frames (monitor mode counts them as missed).
 *
 * Transmit: CR.TXP sends TBCR bytes from page TPSR at once (to our own receiver instead, through the
 * filter, in internal loopback, TCR.LB = 1); TSR.PTX and ISR.PTX follow TX_LATENCY_NS + 8 ns per byte of
 * guest time later, when CR.TXP drops. Frames shorter than 14 or longer than 1518 bytes are not sent.
 *
 * The interrupt (INTA) is asserted while ISR & IMR & 0x7F is non-zero. Counters CNTR0–2 clear on read and
 * raise ISR.CNT when one reaches 128. ISR.RST is set by a reset or CR.STP and cleared by CR.STA.
 *
 * State: registers, the packet memory, the backlog and a transmission in flight (its guest deadline).
 */
import type { Machine } from '../core/machine';
import type { Pc } from '../core/pc';
import { ETH_HEADER, ETH_MAX_TAGGED, ETH_MIN_FRAME, defaultMac, multicastHashIndex, type NetPort, type NetworkCard } from '../core/net';
import { devfn, PciDevice, type BarHandler } from './pci';
import { fromBase64, freePciSlot, toBase64 } from './virtio';

// CR
export const CR_STP = 0x01;
export const CR_STA = 0x02;
export const CR_TXP = 0x04;
export const CR_RD_READ = 0x08;
export const CR_RD_WRITE = 0x10;
export const CR_RD_SEND = 0x18;
export const CR_RD_ABORT = 0x20;
// ISR / IMR
export const ISR_PRX = 0x01;
export const ISR_PTX = 0x02;
export const ISR_RXE = 0x04;
export const ISR_TXE = 0x08;
export const ISR_OVW = 0x10;
export const ISR_CNT = 0x20;
export const ISR_RDC = 0x40;
export const ISR_RST = 0x80;
// DCR
export const DCR_WTS = 0x01;
// TCR
export const TCR_LB_MASK = 0x06;
// RCR
export const RCR_SEP = 0x01;
export const RCR_AR = 0x02;
export const RCR_AB = 0x04;
export const RCR_AM = 0x08;
export const RCR_PRO = 0x10;
export const RCR_MON = 0x20;
// RSR
export const RSR_PRX = 0x01;
export const RSR_MPA = 0x10;
export const RSR_PHY = 0x20;
// TSR
export const TSR_PTX = 0x01;

export const NE2000_IO_SIZE = 32;
export const NE2000_DATA_PORT = 0x10;
export const NE2000_RESET_PORT = 0x18;
export const NE2000_PMEM_START = 0x4000;
export const NE2000_PMEM_END = 0xc000;
/** frames waiting for room in the ring before new ones are lost */
export const BACKLOG_FRAMES = 128;
/** guest time from CR.TXP to PTX, plus 8 ns per byte (about 1 Gbit/s) */
export const TX_LATENCY_NS = 2000;
export const TX_NS_PER_BYTE = 8;

export interface Ne2000Options {
  mac?: Uint8Array;
  name?: string;
}

export interface Ne2000State {
  cr: number;
  pstart: number;
  pstop: number;
  bnry: number;
  tpsr: number;
  tbcr: number;
  isr: number;
  rsar: number;
  rbcr: number;
  rcr: number;
  tcr: number;
  dcr: number;
  imr: number;
  par: number[];
  curr: number;
  mar: number[];
  tsr: number;
  rsr: number;
  cntr: number[];
  sendPacket: boolean;
  /** guest ns until the transmission in flight completes, or -1 */
  txDueIn: number;
  linkUp: boolean;
  mem: string;
  backlog: string[];
}

export class Ne2000 extends PciDevice implements NetworkCard {
  readonly machine: Machine;
  readonly mac: Uint8Array;
  /** the 64 KiB remote DMA address space (PROM and packet RAM) */
  readonly mem = new Uint8Array(0x10000);
  private port: NetPort | null = null;
  private link = true;
  private cr = CR_STP | CR_RD_ABORT;
  private pstart = 0;
  private pstop = 0;
  private bnry = 0;
  private tpsr = 0;
  private tbcr = 0;
  private isr = ISR_RST;
  private rsar = 0;
  private rbcr = 0;
  private rcr = 0;
  private tcr = 0;
  private dcr = 0;
  private imr = 0;
  private readonly par = new Uint8Array(6);
  private curr = 0;
  private readonly mar = new Uint8Array(8);
  private tsr = 0;
  private rsr = 0;
  private readonly cntr = [0, 0, 0];
  private sendPacket = false;
  private txDeadline = -1;
  private txTimer = -1;
  private backlog: Uint8Array[] = [];
  private epoch = 0;
  /** frames sent / received into the ring / lost, for diagnostics and tests */
  readonly counters = { tx: 0, rx: 0, lost: 0, filtered: 0 };

  constructor(machine: Machine, options: Ne2000Options = {}) {
    const proxy: { dev: Ne2000 | null } = { dev: null };
    const handler: BarHandler = {
      read8: (o) => proxy.dev!.ioRead(o, 1),
      read16: (o) => proxy.dev!.ioRead(o, 2),
      read32: (o) => proxy.dev!.ioRead(o, 4),
      write8: (o, v) => proxy.dev!.ioWrite(o, v, 1),
      write16: (o, v) => proxy.dev!.ioWrite(o, v, 2),
      write32: (o, v) => proxy.dev!.ioWrite(o, v, 4),
    };
    super({
      name: options.name ?? 'ne2k-pci',
      vendorId: 0x10ec,
      deviceId: 0x8029,
      classCode: 0x020000,
      bars: [{ size: NE2000_IO_SIZE, kind: 'io', handler }],
      interruptPin: 1,
    });
    proxy.dev = this;
    this.machine = machine;
    this.mac = Uint8Array.from(options.mac ?? defaultMac());
    this.chipReset();
    this.captureResetState();
  }

  // ---- NetworkCard ----

  attach(port: NetPort | null): void {
    if (this.port && this.port !== port) this.port.onFrame(() => {});
    this.port = port;
    port?.onFrame((frame) => this.receive(frame));
  }

  setLink(up: boolean): void {
    this.link = up;
  }

  get linkUp(): boolean {
    return this.link && this.port !== null;
  }

  // ---- the chip ----

  /** the reset port (and power-on): PROM reloaded, the chip stopped with ISR.RST */
  private chipReset(): void {
    this.epoch++;
    if (this.txTimer >= 0) this.machine.clock.cancel(this.txTimer);
    this.txTimer = -1;
    this.txDeadline = -1;
    this.cr = CR_STP | CR_RD_ABORT;
    this.isr = ISR_RST;
    this.imr = 0;
    this.dcr = 0;
    this.tcr = 0;
    this.rcr = 0;
    this.rbcr = 0;
    this.sendPacket = false;
    this.backlog = [];
    const prom = new Uint8Array(16);
    prom.set(this.mac);
    prom[14] = 0x57;
    prom[15] = 0x57;
    for (let i = 0; i < 16; i++) {
      this.mem[2 * i] = prom[i];
      this.mem[2 * i + 1] = prom[i];
    }
    this.updateIrq();
  }

  private updateIrq(): void {
    this.setIrq((this.isr & this.imr & 0x7f) !== 0);
  }

  private memRead8(a: number): number {
    a &= 0xffff;
    if (a < 32 || (a >= NE2000_PMEM_START && a < NE2000_PMEM_END)) return this.mem[a];
    return 0xff;
  }

  private memWrite8(a: number, v: number): void {
    a &= 0xffff;
    if (a >= NE2000_PMEM_START && a < NE2000_PMEM_END) this.mem[a] = v;
  }

  /** advances the remote DMA by n bytes: wrap at PSTOP, RDC when the count runs out */
  private dmaStep(n: number): void {
    this.rsar = (this.rsar + n) & 0xffff;
    if (this.pstop > this.pstart && this.rsar === this.pstop << 8) this.rsar = this.pstart << 8;
    if (this.rbcr <= n) {
      if (this.rbcr > 0) {
        this.rbcr = 0;
        this.dmaDone();
      }
    } else {
      this.rbcr -= n;
    }
  }

  private dmaDone(): void {
    if (this.sendPacket) {
      // Send Packet: the packet has been read; BNRY moves to its next-packet pointer
      this.sendPacket = false;
      this.bnry = this.rnpp;
      this.drainBacklog();
    }
    this.isr |= ISR_RDC;
    this.updateIrq();
  }

  /** Send Packet's next page (from the header it read), the remote next packet pointer */
  private rnpp = 0;

  private dataRead(size: number): number {
    if (size === 4) {
      const a = this.rsar;
      const v = this.memRead8(a) | (this.memRead8(a + 1) << 8) | (this.memRead8(a + 2) << 16) | (this.memRead8(a + 3) << 24);
      this.dmaStep(2);
      this.dmaStep(2);
      return v >>> 0;
    }
    if (this.dcr & DCR_WTS) {
      const a = this.rsar & ~1;
      const v = this.memRead8(a) | (this.memRead8(a + 1) << 8);
      this.rsar = a;
      this.dmaStep(2);
      return size === 1 ? v & 0xff : v;
    }
    if (size === 2) {
      const lo = this.memRead8(this.rsar);
      this.dmaStep(1);
      const hi = this.memRead8(this.rsar);
      this.dmaStep(1);
      return lo | (hi << 8);
    }
    const v = this.memRead8(this.rsar);
    this.dmaStep(1);
    return v;
  }

  private dataWrite(value: number, size: number): void {
    if (size === 4) {
      const a = this.rsar;
      this.memWrite8(a, value & 0xff);
      this.memWrite8(a + 1, (value >>> 8) & 0xff);
      this.memWrite8(a + 2, (value >>> 16) & 0xff);
      this.memWrite8(a + 3, (value >>> 24) & 0xff);
      this.dmaStep(2);
      this.dmaStep(2);
      return;
    }
    if (this.dcr & DCR_WTS) {
      const a = this.rsar & ~1;
      this.memWrite8(a, value & 0xff);
      this.memWrite8(a + 1, (value >>> 8) & 0xff);
      this.rsar = a;
      this.dmaStep(2);
      return;
    }
    this.memWrite8(this.rsar, value & 0xff);
    this.dmaStep(1);
    if (size === 2) {
      this.memWrite8(this.rsar, (value >>> 8) & 0xff);
      this.dmaStep(1);
    }
  }

  ioRead(off: number, size: number): number {
    if (off >= NE2000_DATA_PORT && off < NE2000_RESET_PORT) return this.dataRead(size);
    if (off >= NE2000_RESET_PORT) {
      this.chipReset();
      return 0;
    }
    let v = 0;
    for (let i = 0; i < size && off + i < NE2000_DATA_PORT; i++) v |= this.regRead(off + i) << (8 * i);
    return v >>> 0;
  }

  ioWrite(off: number, value: number, size: number): void {
    if (off >= NE2000_DATA_PORT && off < NE2000_RESET_PORT) {
      this.dataWrite(value >>> 0, size);
      return;
    }
    if (off >= NE2000_RESET_PORT) return;
    for (let i = 0; i < size && off + i < NE2000_DATA_PORT; i++) this.regWrite(off + i, (value >>> (8 * i)) & 0xff);
  }

  private get page(): number {
    return this.cr >> 6;
  }

  private regRead(r: number): number {
    if (r === 0) return this.cr;
    switch (this.page) {
      case 0:
        switch (r) {
          case 0x01:
            return (this.curr << 8) & 0xff; // CLDA0
          case 0x02:
            return this.curr; // CLDA1
          case 0x03:
            return this.bnry;
          case 0x04:
            return this.tsr;
          case 0x05:
            return 0; // NCR: no collisions on a switched link
          case 0x06:
            return 0; // FIFO
          case 0x07:
            return this.isr;
          case 0x08:
            return this.rsar & 0xff;
          case 0x09:
            return this.rsar >> 8;
          case 0x0a:
            return 0x50; // RTL8029 ID 'P'
          case 0x0b:
            return 0x43; // 'C'
          case 0x0c:
            return this.rsr;
          default: {
            const i = r - 0x0d;
            const v = this.cntr[i];
            this.cntr[i] = 0;
            return v;
          }
        }
      case 1:
        if (r <= 6) return this.par[r - 1];
        if (r === 7) return this.curr;
        return this.mar[r - 8];
      case 2:
        switch (r) {
          case 0x01:
            return this.pstart;
          case 0x02:
            return this.pstop;
          case 0x03:
            return this.rnpp;
          case 0x04:
            return this.tpsr;
          case 0x05:
            return this.curr; // LNPP
          case 0x06:
            return this.curr; // address counter (upper)
          case 0x07:
            return 0; // address counter (lower)
          case 0x0c:
            return this.rcr;
          case 0x0d:
            return this.tcr;
          case 0x0e:
            return this.dcr;
          case 0x0f:
            return this.imr;
          default:
            return 0xff;
        }
      default:
        return 0; // page 3: the RTL8029's configuration registers, left at zero
    }
  }

  private regWrite(r: number, v: number): void {
    if (r === 0) {
      this.writeCr(v);
      return;
    }
    switch (this.page) {
      case 0:
        switch (r) {
          case 0x01:
            this.pstart = v;
            break;
          case 0x02:
            this.pstop = v;
            break;
          case 0x03:
            this.bnry = v;
            break;
          case 0x04:
            this.tpsr = v;
            break;
          case 0x05:
            this.tbcr = (this.tbcr & 0xff00) | v;
            break;
          case 0x06:
            this.tbcr = (this.tbcr & 0xff) | (v << 8);
            break;
          case 0x07: {
            this.isr &= ~(v & 0x7f);
            if (v & (ISR_PRX | ISR_OVW)) {
              // the driver is done with the ring for now: waiting frames go in (and raise PRX afresh),
              // and frames it left unread keep PRX set, so none sits in the ring without an interrupt
              this.drainBacklog();
              if (this.ringHasFrames()) this.isr |= ISR_PRX;
            }
            this.updateIrq();
            break;
          }
          case 0x08:
            this.rsar = (this.rsar & 0xff00) | v;
            break;
          case 0x09:
            this.rsar = (this.rsar & 0xff) | (v << 8);
            break;
          case 0x0a:
            this.rbcr = (this.rbcr & 0xff00) | v;
            break;
          case 0x0b:
            this.rbcr = (this.rbcr & 0xff) | (v << 8);
            break;
          case 0x0c:
            this.rcr = v & 0x3f;
            break;
          case 0x0d: {
            const wasLoop = (this.tcr & TCR_LB_MASK) !== 0;
            this.tcr = v & 0x1f;
            if (wasLoop && !(this.tcr & TCR_LB_MASK)) this.drainBacklog();
            break;
          }
          case 0x0e:
            this.dcr = v & 0x7f;
            break;
          case 0x0f:
            this.imr = v & 0x7f;
            this.updateIrq();
            break;
        }
        break;
      case 1:
        if (r <= 6) this.par[r - 1] = v;
        else if (r === 7) {
          this.curr = v;
          this.drainBacklog();
        } else this.mar[r - 8] = v;
        break;
      case 2:
        // page 2 is for diagnostics: the local DMA pointers it would set are not used here
        if (r === 0x03) this.rnpp = v;
        break;
      default:
        break;
    }
  }

  private writeCr(v: number): void {
    const wasStopped = (this.cr & CR_STP) !== 0;
    // TXP can only be set, never cleared, by the host; it drops when the transmission completes
    const txp = (this.cr & CR_TXP) | (v & CR_TXP);
    this.cr = (v & ~CR_TXP) | txp;
    if (v & CR_STP) {
      this.cr = (this.cr & ~CR_STA) | CR_STP;
      this.isr |= ISR_RST;
    } else if (v & CR_STA) {
      this.cr &= ~CR_STP;
      this.isr &= ~ISR_RST;
    }
    const rd = v & 0x38;
    if (rd === CR_RD_READ || rd === CR_RD_WRITE) {
      this.sendPacket = false;
      if (this.rbcr === 0) this.dmaDone(); // a transfer of nothing completes at once
    } else if (rd === CR_RD_SEND) {
      // Send Packet: remote read of the packet at BNRY, its length from the ring header
      this.rsar = this.bnry << 8;
      this.rnpp = this.memRead8(this.rsar + 1);
      this.rbcr = this.memRead8(this.rsar + 2) | (this.memRead8(this.rsar + 3) << 8);
      this.sendPacket = true;
      if (this.rbcr === 0) this.dmaDone();
    } else if (rd & CR_RD_ABORT) {
      this.sendPacket = false;
    }
    if (v & CR_TXP && !(this.cr & CR_STP) && this.txDeadline < 0) this.transmit();
    else if (v & CR_TXP && this.cr & CR_STP) this.cr &= ~CR_TXP;
    this.updateIrq();
    if (wasStopped && !(this.cr & CR_STP)) this.drainBacklog();
  }

  private transmit(): void {
    const len = this.tbcr;
    const start = this.tpsr << 8;
    if (len >= ETH_HEADER && len <= ETH_MAX_TAGGED) {
      const frame = new Uint8Array(len);
      for (let i = 0; i < len; i++) frame[i] = this.memRead8(start + i);
      this.counters.tx++;
      if ((this.tcr & TCR_LB_MASK) !== 0) {
        // loopback: back into our own receiver (LB = 1 internal, 2/3 external: all stay inside)
        this.accept(frame, true);
      } else if (this.link && this.port) {
        this.port.send(frame);
      }
    }
    this.txDeadline = this.machine.clock.now() + TX_LATENCY_NS + TX_NS_PER_BYTE * len;
    this.armTx();
  }

  private armTx(): void {
    const epoch = this.epoch;
    this.txTimer = this.machine.clock.at(this.txDeadline, () => {
      if (epoch !== this.epoch) return;
      this.txTimer = -1;
      this.txDeadline = -1;
      this.cr &= ~CR_TXP;
      this.tsr = TSR_PTX;
      this.isr |= ISR_PTX;
      this.updateIrq();
    });
  }

  // ---- receive ----

  /** a frame from the wire (the host's event loop calls this between slices) */
  receive(frame: Uint8Array): void {
    if (!this.link) return;
    if (frame.length < ETH_HEADER || frame.length > ETH_MAX_TAGGED) return;
    this.accept(frame, false);
  }

  private get ringPages(): number {
    return this.pstop - this.pstart;
  }

  /** whether the address filter takes the frame */
  private filterPasses(f: Uint8Array): boolean {
    if (this.rcr & RCR_PRO) return true;
    if (f[0] & 1) {
      if (f[0] === 0xff && f[1] === 0xff && f[2] === 0xff && f[3] === 0xff && f[4] === 0xff && f[5] === 0xff) {
        return (this.rcr & RCR_AB) !== 0;
      }
      if (!(this.rcr & RCR_AM)) return false;
      const idx = multicastHashIndex(f, 0);
      return (this.mar[idx >> 3] & (1 << (idx & 7))) !== 0;
    }
    for (let i = 0; i < 6; i++) if (f[i] !== this.par[i]) return false;
    return true;
  }

  private accept(frame: Uint8Array, loopback: boolean): void {
    if (this.cr & CR_STP) return;
    if (!this.filterPasses(frame)) {
      this.counters.filtered++;
      return;
    }
    if (this.rcr & RCR_MON) {
      this.missed();
      return;
    }
    if (!loopback && (this.backlog.length || !this.canStore(frame.length))) {
      if (this.backlog.length >= BACKLOG_FRAMES) {
        this.counters.lost++;
        this.missed();
        this.isr |= ISR_OVW;
        this.updateIrq();
        return;
      }
      this.backlog.push(frame.slice());
      return;
    }
    if (!this.canStore(frame.length, true)) {
      this.missed();
      return;
    }
    this.store(frame);
  }

  private missed(): void {
    this.rsr = RSR_MPA;
    this.bumpCounter(2);
  }

  private bumpCounter(i: number): void {
    if (this.cntr[i] < 0xff) this.cntr[i]++;
    if (this.cntr[i] & 0x80) {
      this.isr |= ISR_CNT;
      this.updateIrq();
    }
  }

  /** whether a frame of `len` bytes fits in the ring now */
  private canStore(len: number, loopback = false): boolean {
    if (this.cr & CR_STP || this.isr & ISR_OVW || (!loopback && this.tcr & TCR_LB_MASK)) return false;
    const n = this.ringPages;
    if (n <= 0 || this.pstart < NE2000_PMEM_START >> 8 || this.pstop > NE2000_PMEM_END >> 8) return false;
    if (this.curr < this.pstart || this.curr >= this.pstop) return false;
    const need = (Math.max(len, ETH_MIN_FRAME) + 4 + 255) >> 8;
    // Linux writes BNRY = next frame - 1, which is PSTART - 1 when the next frame is at PSTART: one page
    // behind PSTART in the ring is PSTOP - 1. A BNRY elsewhere outside the ring never meets the write
    // pointer, as on the chip.
    let b = this.bnry;
    if (b === this.pstart - 1) b = this.pstop - 1;
    if (b < this.pstart || b >= this.pstop) return need < n;
    const free = this.curr < b ? b - this.curr : n - (this.curr - b);
    return need < free;
  }

  private store(frame: Uint8Array): void {
    const len = Math.max(frame.length, ETH_MIN_FRAME);
    const total = len + 4;
    const pages = (total + 255) >> 8;
    let next = this.curr + pages;
    if (next >= this.pstop) next -= this.ringPages;
    const status = RSR_PRX | (frame[0] & 1 ? RSR_PHY : 0);
    const start = this.curr << 8;
    const ringStart = this.pstart << 8;
    const ringEnd = this.pstop << 8;
    const m = this.mem;
    m[start] = status;
    m[start + 1] = next;
    m[start + 2] = total & 0xff;
    m[start + 3] = total >> 8;
    // the frame (zero-padded to 60 bytes), wrapping at PSTOP
    let at = start + 4;
    let done = 0;
    while (done < len) {
      const room = ringEnd - at;
      const n = Math.min(room, len - done);
      const fromFrame = Math.max(0, Math.min(n, frame.length - done));
      if (fromFrame > 0) m.set(frame.subarray(done, done + fromFrame), at);
      if (fromFrame < n) m.fill(0, at + fromFrame, at + n);
      done += n;
      at += n;
      if (at >= ringEnd) at = ringStart;
    }
    this.curr = next;
    this.rsr = status;
    this.counters.rx++;
    this.isr |= ISR_PRX;
    this.updateIrq();
  }

  /** whether frames the driver has not taken are in the ring (BNRY trails the next frame by one page) */
  private ringHasFrames(): boolean {
    if (this.pstop <= this.pstart) return false;
    let next = this.bnry + 1;
    if (next >= this.pstop) next = this.pstart;
    return this.curr !== next && this.curr !== this.bnry;
  }

  /** moves waiting frames into the ring while they fit */
  private drainBacklog(): void {
    while (this.backlog.length && this.canStore(this.backlog[0].length)) {
      const f = this.backlog.shift()!;
      this.store(f);
    }
  }

  /** frames waiting for room in the ring */
  get backlogLength(): number {
    return this.backlog.length;
  }

  // ---- PCI reset and state ----

  override reset(): void {
    super.reset();
    this.chipReset();
    this.par.fill(0);
    this.mar.fill(0);
    this.pstart = this.pstop = this.bnry = this.curr = this.tpsr = this.tbcr = this.rsar = 0;
    this.tsr = this.rsr = 0;
    this.cntr.fill(0);
    this.updateIrq();
  }

  override saveExtra(): Ne2000State {
    const now = this.machine.clock.now();
    return {
      cr: this.cr,
      pstart: this.pstart,
      pstop: this.pstop,
      bnry: this.bnry,
      tpsr: this.tpsr,
      tbcr: this.tbcr,
      isr: this.isr,
      rsar: this.rsar,
      rbcr: this.rbcr,
      rcr: this.rcr,
      tcr: this.tcr,
      dcr: this.dcr,
      imr: this.imr,
      par: Array.from(this.par),
      curr: this.curr,
      mar: Array.from(this.mar),
      tsr: this.tsr,
      rsr: this.rsr,
      cntr: this.cntr.slice(),
      sendPacket: this.sendPacket,
      txDueIn: this.txDeadline < 0 ? -1 : Math.max(0, this.txDeadline - now),
      linkUp: this.link,
      mem: toBase64(this.mem),
      backlog: this.backlog.map((f) => toBase64(f)),
    };
  }

  override loadExtra(state: unknown): void {
    const s = state as Ne2000State | undefined;
    if (!s) return;
    this.epoch++;
    if (this.txTimer >= 0) this.machine.clock.cancel(this.txTimer);
    this.txTimer = -1;
    const b = (x: number): number => x & 0xff;
    this.cr = b(s.cr);
    this.pstart = b(s.pstart);
    this.pstop = b(s.pstop);
    this.bnry = b(s.bnry);
    this.tpsr = b(s.tpsr);
    this.tbcr = s.tbcr & 0xffff;
    this.isr = b(s.isr);
    this.rsar = s.rsar & 0xffff;
    this.rbcr = s.rbcr & 0xffff;
    this.rcr = b(s.rcr);
    this.tcr = b(s.tcr);
    this.dcr = b(s.dcr);
    this.imr = b(s.imr);
    this.par.set(s.par.slice(0, 6));
    this.curr = b(s.curr);
    this.mar.set(s.mar.slice(0, 8));
    this.tsr = b(s.tsr);
    this.rsr = b(s.rsr);
    for (let i = 0; i < 3; i++) this.cntr[i] = b(s.cntr[i] ?? 0);
    this.sendPacket = !!s.sendPacket;
    this.link = s.linkUp !== false;
    const mem = fromBase64(s.mem);
    this.mem.fill(0);
    this.mem.set(mem.subarray(0, this.mem.length));
    this.backlog = (s.backlog ?? []).map((t) => fromBase64(t).slice());
    this.txDeadline = -1;
    if (s.txDueIn >= 0) {
      this.txDeadline = this.machine.clock.now() + s.txDueIn;
      this.armTx();
    }
  }

  override loadState(state: unknown): void {
    super.loadState(state);
    this.updateIrq();
  }
}

/** adds an NE2000 (RTL8029) PCI function to the PC, in the first free slot unless one is given */
export function addNe2000(pc: Pc, options: Ne2000Options & { slot?: number } = {}): Ne2000 {
  const bus = pc.pci?.bus;
  if (!bus) throw new Error('ne2k-pci needs the PCI bus (createPc with pci enabled)');
  const slot = options.slot ?? freePciSlot(bus);
  return bus.add(new Ne2000(pc.machine, options), devfn(slot, 0));
}
