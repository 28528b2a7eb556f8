/**
 * The PIIX3 IDE controller (82371SB function 1, 8086:7010) at 00:01.1 with ATA disks and ATAPI CD-ROMs.
 *
 * Written from the ATA/ATAPI-6 and -7 specifications (T13 1410D, 1532D: task file, protocols, IDENTIFY
 * words, SRST and signatures, PACKET), the Intel 82371SB datasheet (bus master IDE registers, PRD format,
 * IDETIM) and SFF-8020i/MMC for ATAPI; checked against what Linux's ata_piix/libata-sff sends and expects.
 *
 * PCI: class 01/01, programming interface 0x80 (both channels in legacy ("compatibility") mode, bus
 * master capable). Legacy ports are always decoded: channel 0 at 0x1F0–0x1F7 + 0x3F6 on IRQ 14, channel 1
 * at 0x170–0x177 + 0x376 on IRQ 15 (ISA edge lines through pc.irq). BAR4 (16 bytes of I/O) holds the bus
 * master registers (channel 0 at +0, channel 1 at +8). IDETIM (0x40/0x42) resets with the IDE decode
 * enable bits set, as SeaBIOS leaves them: x86vm boots Linux directly without firmware and ata_piix ignores
 * a channel whose enable bit is clear.
 *
 * Task file: each device keeps its own copy of the registers; host writes go to both devices of a
 * channel (both latch them, as on a real cable), reads come from the selected one. The LBA48 registers
 * are two deep (the previous value is read back with HOB set in the device control register). A selected
 * device that is not there reads status 0 (Linux then classifies it as absent); a channel with no device
 * at all floats (0xFF). Writes other than to the command register are ignored while the selected device
 * has BSY or DRQ set.
 *
 * Interrupts: each device has an INTRQ pending flag, set when it wants the host's attention and cleared
 * by a read of its status register (or by reset); the channel's IRQ line is the selected device's INTRQ
 * unless nIEN is set. Each assertion also sets the bus master status register's interrupt bit.
 *
 * Data: a command that moves data fetches the whole request from the BlockDevice at once (reads) or
 * collects all of it before writing (writes). PIO hands it out one DRQ block at a time (a sector, or the
 * READ/WRITE MULTIPLE count) through typed-array reads on the 16/32-bit data port handlers. DMA moves it
 * between the buffer and guest RAM by walking the PRD table (typed-array copies per page) once both the
 * command and the bus master start bit are there. Host I/O completes through core/blockio.ts completeIo()
 * with a guest latency of IO_BASE_NS plus the transfer time at IO_BYTES_PER_NS, so the interrupt comes
 * later than the command and deterministic runs stay reproducible. Host errors become UNC (reads) or ABRT
 * (writes, flushes) for the guest and a one-line message through onWarning.
 *
 * ATAPI: PACKET takes a 12-byte CDB (DRQ with interrupt reason CoD=1, no interrupt: IDENTIFY PACKET
 * DEVICE announces the 50 µs accelerated DRQ), runs it on a ScsiCdrom (devices/scsi.ts), then moves its
 * data by PIO in blocks of at most the byte count limit (cylinder registers; interrupt reason IO=1 for data
 * to the host) or by DMA when the FEATURES DMA bit is set. Completion: status DRDY, interrupt reason
 * CoD|IO; a CHECK CONDITION sets ERR with the sense key in the error register's high nibble (ABRT set),
 * and the sense data waits for REQUEST SENSE in the target.
 *
 * State: saveState records everything including an operation in flight (its kind, guest deadline, the
 * data buffer, the SCSI result or host error once settled); after machine.quiesce() every host operation
 * has settled, so loadState only re-arms the completion at the recorded deadline. An operation saved
 * before it settled is started again on the BlockDevice after the restore.
 */
import type { Pc } from '../core/pc';
import type { Machine } from '../core/machine';
import type { IrqLine } from '../core/host';
import type { IoBus } from '../core/iobus';
import type { Memory } from '../core/memory';
import { PageKind } from '../core/memory';
import { completeIo } from '../core/blockio';
import { SECTOR_SIZE, type BlockDevice } from '../disk/block';
import { PciDevice, devfn, PCI_COMMAND, PCI_COMMAND_MASTER, PCI_STATUS } from './pci';
import { ScsiCdrom, SCSI_GOOD, type ScsiResult } from './scsi';

// ---- ATA register bits ----
export const ATA_SR_BSY = 0x80;
export const ATA_SR_DRDY = 0x40;
export const ATA_SR_DF = 0x20;
export const ATA_SR_DSC = 0x10;
export const ATA_SR_DRQ = 0x08;
export const ATA_SR_ERR = 0x01;

export const ATA_ER_UNC = 0x40;
export const ATA_ER_IDNF = 0x10;
export const ATA_ER_ABRT = 0x04;

export const ATA_DC_NIEN = 0x02;
export const ATA_DC_SRST = 0x04;
export const ATA_DC_HOB = 0x80;

/** ATAPI interrupt reason (sector count register) */
export const ATAPI_IR_COD = 0x01;
export const ATAPI_IR_IO = 0x02;

// ---- bus master IDE ----
export const BM_CMD_START = 0x01;
/** direction: 1 = the bus master writes memory (device to memory, READ DMA) */
export const BM_CMD_WRITE = 0x08;
export const BM_ST_ACTIVE = 0x01;
export const BM_ST_ERROR = 0x02;
export const BM_ST_INTR = 0x04;
export const BM_ST_DMA0 = 0x20;
export const BM_ST_DMA1 = 0x40;

/** guest latency of a host I/O: fixed part and transfer rate */
export const IO_BASE_NS = 20_000;
export const IO_BYTES_PER_NS = 2;
/** largest READ/WRITE MULTIPLE block (sectors) */
export const MAX_MULTIPLE = 16;
/** most PRD entries walked for one transfer (a PIIX PRD table lives in one 64 KiB region) */
const MAX_PRD_ENTRIES = 8192;

const EMPTY: Uint8Array = new Uint8Array(0);

const enum Phase {
  /** no command in progress */
  Idle = 0,
  /** command accepted, waiting for the host (BSY) */
  Busy = 1,
  /** DRQ: data to the host by PIO */
  PioIn = 2,
  /** DRQ: data from the host by PIO */
  PioOut = 3,
  /** a DMA transfer waiting for the bus master (start bit, bus master enable) */
  DmaWait = 4,
  /** ATAPI: DRQ for the 12-byte command packet */
  Packet = 5,
  /** SRST held */
  Reset = 6,
}

type Kind = 'none' | 'disk' | 'cdrom';
type IoKind = 'read' | 'write' | 'flush' | 'scsi';

export type IdeDrive = { kind: 'disk'; dev: BlockDevice } | { kind: 'cdrom'; dev: BlockDevice | null };

export interface IdeOptions {
  /** one-line messages about host I/O failures (the guest sees an error status); default: kept in lastWarning */
  onWarning?: (message: string) => void;
}

interface PendingIo {
  kind: IoKind;
  token: number;
  deadline: number;
  settled: boolean;
  error: string | null;
  timer: number;
}

// ---------------------------------------------------------------------------------------------------
// one device (master or slave) on a channel

class IdeDevice {
  readonly ch: IdeChannel;
  readonly slot: 0 | 1;
  kind: Kind = 'none';
  dev: BlockDevice | null = null;
  cdrom: ScsiCdrom | null = null;

  // task file (this device's copy)
  feature = 0;
  hobFeature = 0;
  nsect = 0;
  hobNsect = 0;
  lbal = 0;
  hobLbal = 0;
  lbam = 0;
  hobLbam = 0;
  lbah = 0;
  hobLbah = 0;
  select = 0;
  status = 0;
  error = 0;
  intrq = false;

  // settings
  multCount = 0;
  curHeads = 16;
  curSpt = 63;
  xferMode = 0;
  writeCache = true;

  // the command in progress
  phase: Phase = Phase.Idle;
  cmd = 0;
  lba = 0;
  count = 0;
  lba48 = false;
  /** DMA direction of the pending transfer: true = device to memory */
  dmaToMem = false;
  /** ATAPI: the data phase uses DMA */
  atapiDma = false;
  /** ATAPI: byte count limit of each PIO DRQ block */
  byteLimit = 0;
  cdb: Uint8Array | null = null;
  /** ATAPI: bytes the command sends to the device (collected before it runs) */
  outLen = 0;
  scsiResult: ScsiResult | null = null;
  /** the transfer buffer; pos..blockEnd is the current DRQ block, end the transfer's length */
  buf: Uint8Array = EMPTY;
  pos = 0;
  blockEnd = 0;
  end = 0;
  /** ATA PIO: bytes per DRQ block */
  blockSize = SECTOR_SIZE;
  /** a reusable buffer this device owns (dropped when a host operation might still write into it) */
  private owned: Uint8Array = EMPTY;
  io: PendingIo | null = null;
  private ioToken = 0;

  constructor(ch: IdeChannel, slot: 0 | 1) {
    this.ch = ch;
    this.slot = slot;
  }

  get present(): boolean {
    return this.kind !== 'none';
  }

  get sectors(): number {
    return this.dev ? this.dev.sectors : 0;
  }

  /** default geometry: 16 heads, 63 sectors per track, up to 16383 cylinders */
  get cylinders(): number {
    return Math.max(1, Math.min(16383, Math.floor(this.sectors / (16 * 63))));
  }

  /** cylinders of the current geometry (after INITIALIZE DEVICE PARAMETERS) */
  get curCylinders(): number {
    const per = this.curHeads * this.curSpt;
    return per ? Math.min(65535, Math.floor(Math.min(this.sectors, 16514064) / per)) : 0;
  }

  attach(drive: IdeDrive | null): void {
    this.abandon();
    if (!drive) {
      this.kind = 'none';
      this.dev = null;
      this.cdrom = null;
    } else if (drive.kind === 'disk') {
      this.kind = 'disk';
      this.dev = drive.dev;
      this.cdrom = null;
    } else {
      this.kind = 'cdrom';
      this.dev = null;
      this.cdrom = new ScsiCdrom(drive.dev);
      this.cdrom.onWarning = (m) => this.ch.ctrl.warn(m);
    }
    this.powerOn();
  }

  /** power-on / hardware reset defaults */
  powerOn(): void {
    this.abandon();
    // READ/WRITE MULTIPLE enabled at the largest block, as many drives (and QEMU's) power up
    this.multCount = MAX_MULTIPLE;
    this.curHeads = 16;
    this.curSpt = 63;
    this.xferMode = 0;
    this.writeCache = true;
    this.feature = this.hobFeature = 0;
    this.signature();
    this.intrq = false;
  }

  /** the reset signature and the status after a reset or EXECUTE DEVICE DIAGNOSTIC */
  signature(): void {
    this.nsect = this.hobNsect = 1;
    this.lbal = this.hobLbal = 1;
    if (this.kind === 'cdrom') {
      this.lbam = this.hobLbam = 0x14;
      this.lbah = this.hobLbah = 0xeb;
    } else if (this.kind === 'disk') {
      this.lbam = this.hobLbam = 0;
      this.lbah = this.hobLbah = 0;
    } else {
      this.lbam = this.hobLbam = 0xff;
      this.lbah = this.hobLbah = 0xff;
    }
    this.select = 0;
    this.error = 0x01; // diagnostics passed
    this.status = this.kind === 'disk' ? ATA_SR_DRDY | ATA_SR_DSC : 0;
  }

  /** forgets the command in progress (a late host completion is ignored) */
  abandon(): void {
    if (this.io) {
      this.ch.ctrl.machine.clock.cancel(this.io.timer);
      if (!this.io.settled) this.owned = new Uint8Array(0); // the host may still write into it
      this.io = null;
    }
    this.ioToken++;
    this.phase = Phase.Idle;
    this.count = 0;
    this.scsiResult = null;
    this.cdb = null;
    this.buf = EMPTY;
    this.pos = this.blockEnd = this.end = 0;
  }

  /** a buffer of at least n bytes (+1 slack for odd-length ATAPI blocks read as words) */
  ownedBuffer(n: number): Uint8Array {
    if (this.owned.length < n + 4) {
      let size = 4096;
      while (size < n + 4) size *= 2;
      this.owned = new Uint8Array(size);
    }
    return this.owned;
  }

  raiseIrq(): void {
    this.intrq = true;
    this.ch.deviceIrq(this);
  }

  // ---- task file access from the channel ----

  writeReg(r: number, v: number): void {
    switch (r) {
      case 1:
        this.hobFeature = this.feature;
        this.feature = v;
        break;
      case 2:
        this.hobNsect = this.nsect;
        this.nsect = v;
        break;
      case 3:
        this.hobLbal = this.lbal;
        this.lbal = v;
        break;
      case 4:
        this.hobLbam = this.lbam;
        this.lbam = v;
        break;
      case 5:
        this.hobLbah = this.lbah;
        this.lbah = v;
        break;
      case 6:
        this.select = v;
        break;
    }
  }

  readReg(r: number, hob: boolean): number {
    switch (r) {
      case 1:
        return this.error;
      case 2:
        return hob ? this.hobNsect : this.nsect;
      case 3:
        return hob ? this.hobLbal : this.lbal;
      case 4:
        return hob ? this.hobLbam : this.lbam;
      case 5:
        return hob ? this.hobLbah : this.lbah;
      case 6:
        return this.select;
    }
    return 0xff;
  }

  // ---- command completion helpers ----

  private readyStatus(): number {
    return this.kind === 'disk' ? ATA_SR_DRDY | ATA_SR_DSC : ATA_SR_DRDY;
  }

  /** ends the command successfully */
  finishOk(irq = true): void {
    this.phase = Phase.Idle;
    this.status = this.readyStatus();
    this.error = 0;
    if (this.kind === 'cdrom') this.nsect = ATAPI_IR_IO | ATAPI_IR_COD;
    this.buf = EMPTY;
    if (irq) this.raiseIrq();
  }

  /** ends the command with ERR and `err` in the error register */
  finishError(err: number): void {
    this.phase = Phase.Idle;
    this.status = this.readyStatus() | ATA_SR_ERR;
    this.error = err;
    if (this.kind === 'cdrom') this.nsect = ATAPI_IR_IO | ATAPI_IR_COD;
    this.buf = EMPTY;
    this.raiseIrq();
  }

  abort(): void {
    this.finishError(ATA_ER_ABRT);
  }

  // ---- host I/O ----

  /** starts a host operation; its completion runs onIoDone at guest time now + latency */
  startIo(kind: IoKind, op: Promise<unknown>, latencyNs: number): void {
    const machine = this.ch.ctrl.machine;
    this.phase = Phase.Busy;
    this.status = ATA_SR_BSY | ATA_SR_DRDY;
    const io: PendingIo = {
      kind,
      token: ++this.ioToken,
      deadline: machine.clock.now() + latencyNs,
      settled: false,
      error: null,
      timer: 0,
    };
    this.io = io;
    this.armIo(io, op, latencyNs);
  }

  private armIo(io: PendingIo, op: Promise<unknown>, latencyNs: number): void {
    const tracked = op.then(
      (r) => {
        if (io.kind === 'scsi' && this.io === io) this.scsiResult = r as ScsiResult;
        io.settled = true;
      },
      (e: unknown) => {
        io.error = e instanceof Error ? e.message : String(e);
        io.settled = true;
      },
    );
    io.timer = completeIo(this.ch.ctrl.machine, tracked, latencyNs, () => {
      if (this.io !== io || io.token !== this.ioToken) return;
      this.io = null;
      this.onIoDone(io);
    });
  }

  private onIoDone(io: PendingIo): void {
    switch (io.kind) {
      case 'read':
        if (io.error !== null) {
          this.ch.ctrl.warn(`${this.dev!.name}: read of ${this.count} sectors at ${this.lba} failed: ${io.error}`);
          this.setAddress(this.lba);
          this.finishError(ATA_ER_UNC);
          return;
        }
        if (this.cmdIsDma()) {
          this.dmaToMem = true;
          this.phase = Phase.DmaWait;
          this.status = ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_DRQ;
          this.ch.tryDma(this);
        } else {
          this.pos = 0;
          this.blockEnd = Math.min(this.blockSize, this.end);
          this.phase = Phase.PioIn;
          this.ch.ctrl.stats.pioBytes += this.end;
          this.status = ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_DRQ;
          this.raiseIrq();
        }
        return;
      case 'write':
        if (io.error !== null) {
          this.ch.ctrl.warn(`${this.dev!.name}: write of ${this.count} sectors at ${this.lba} failed: ${io.error}`);
          this.setAddress(this.lba);
          this.abort();
          return;
        }
        this.setAddress(this.lba + this.count - 1);
        this.finishOk();
        return;
      case 'flush':
        if (io.error !== null) {
          this.ch.ctrl.warn(`${this.dev!.name}: flush failed: ${io.error}`);
          this.abort();
          return;
        }
        this.finishOk();
        return;
      case 'scsi':
        this.atapiResult(io.error);
        return;
    }
  }

  private cmdIsDma(): boolean {
    const c = this.cmd;
    return c === 0xc8 || c === 0xc9 || c === 0x25 || c === 0xca || c === 0xcb || c === 0x35;
  }

  private latency(bytes: number): number {
    return IO_BASE_NS + Math.ceil(bytes / IO_BYTES_PER_NS);
  }

  // ---- commands ----

  command(cmd: number): void {
    this.abandon();
    this.cmd = cmd;
    this.error = 0;
    if (this.kind === 'cdrom') this.packetDeviceCommand(cmd);
    else this.ataCommand(cmd);
  }

  private ataCommand(cmd: number): void {
    switch (cmd) {
      case 0xec: // IDENTIFY DEVICE
        return this.sendPio(this.identify());
      case 0x20: // READ SECTORS
      case 0x21:
        return this.transfer(false, false, false, false);
      case 0x24: // READ SECTORS EXT
        return this.transfer(true, false, false, false);
      case 0xc4: // READ MULTIPLE
        return this.transfer(false, false, false, true);
      case 0x29: // READ MULTIPLE EXT
        return this.transfer(true, false, false, true);
      case 0x30: // WRITE SECTORS
      case 0x31:
        return this.transfer(false, true, false, false);
      case 0x34: // WRITE SECTORS EXT
        return this.transfer(true, true, false, false);
      case 0xc5: // WRITE MULTIPLE
        return this.transfer(false, true, false, true);
      case 0x39: // WRITE MULTIPLE EXT
        return this.transfer(true, true, false, true);
      case 0xc8: // READ DMA
      case 0xc9:
        return this.transfer(false, false, true, false);
      case 0x25: // READ DMA EXT
        return this.transfer(true, false, true, false);
      case 0xca: // WRITE DMA
      case 0xcb:
        return this.transfer(false, true, true, false);
      case 0x35: // WRITE DMA EXT
        return this.transfer(true, true, true, false);
      case 0x40: // READ VERIFY SECTORS
      case 0x41:
        return this.verify(false);
      case 0x42: // READ VERIFY SECTORS EXT
        return this.verify(true);
      case 0xe7: // FLUSH CACHE
      case 0xea: // FLUSH CACHE EXT
        if (this.dev!.readOnly) return this.finishOk();
        return this.startIo('flush', this.dev!.flush(), IO_BASE_NS);
      case 0xef:
        return this.setFeatures();
      case 0x91: // INITIALIZE DEVICE PARAMETERS
        return this.initParams();
      case 0xc6: // SET MULTIPLE MODE
        if (this.nsect !== 0 && (this.nsect > MAX_MULTIPLE || (this.nsect & (this.nsect - 1)) !== 0)) return this.abort();
        this.multCount = this.nsect;
        return this.finishOk();
      case 0xf8: // READ NATIVE MAX ADDRESS
        if (!(this.select & 0x40)) return this.abort();
        this.setAddress(Math.min(this.sectors, 0x10000000) - 1, false);
        return this.finishOk();
      case 0x27: // READ NATIVE MAX ADDRESS EXT
        this.setAddress(this.sectors - 1, true);
        return this.finishOk();
      case 0xe5: // CHECK POWER MODE: active or idle
        this.nsect = 0xff;
        return this.finishOk();
      case 0xe0: // STANDBY IMMEDIATE
      case 0xe1: // IDLE IMMEDIATE
      case 0xe2: // STANDBY
      case 0xe3: // IDLE
      case 0xe6: // SLEEP
        return this.finishOk();
      case 0x90: // EXECUTE DEVICE DIAGNOSTIC
        return this.ch.diagnostic();
      case 0xa1: // IDENTIFY PACKET DEVICE: not a packet device
      case 0xa0: // PACKET
      case 0x08: // DEVICE RESET
        return this.abort();
    }
    if ((cmd & 0xf0) === 0x10) return this.finishOk(); // RECALIBRATE
    if ((cmd & 0xf0) === 0x70) return this.finishOk(); // SEEK
    this.abort();
  }

  private packetDeviceCommand(cmd: number): void {
    switch (cmd) {
      case 0xa0:
        return this.packet();
      case 0xa1: // IDENTIFY PACKET DEVICE
        return this.sendPio(this.identifyPacket());
      case 0x08: // DEVICE RESET: no interrupt
        this.signature();
        this.intrq = false;
        this.ch.updateIrq();
        return;
      case 0xef:
        return this.setFeatures();
      case 0x90:
        return this.ch.diagnostic();
      case 0xe5:
        this.nsect = 0xff;
        return this.finishOk();
      case 0xe0:
      case 0xe1:
      case 0xe2:
      case 0xe3:
      case 0xe6:
      case 0xe7:
        return this.finishOk();
      case 0xec: // IDENTIFY DEVICE
      case 0x20: // READ SECTORS
      case 0x21:
        // a packet device aborts these and shows its signature, so the host learns what it is
        this.signature();
        this.status = ATA_SR_DRDY | ATA_SR_ERR;
        this.error = ATA_ER_ABRT;
        this.raiseIrq();
        return;
    }
    this.abort();
  }

  /** the LBA (or CHS-converted) address in the task file; -1 when the CHS address is invalid */
  private taskAddress(lba48: boolean): number {
    if (lba48) {
      return (
        this.hobLbah * 0x10000000000 +
        this.hobLbam * 0x100000000 +
        this.hobLbal * 0x1000000 +
        ((this.lbah << 16) | (this.lbam << 8) | this.lbal)
      );
    }
    if (this.select & 0x40) return (((this.select & 0x0f) << 24) | (this.lbah << 16) | (this.lbam << 8) | this.lbal) >>> 0;
    const cyl = this.lbam | (this.lbah << 8);
    const head = this.select & 0x0f;
    const sector = this.lbal;
    if (sector === 0 || sector > this.curSpt || head >= this.curHeads) return -1;
    return (cyl * this.curHeads + head) * this.curSpt + sector - 1;
  }

  /** puts an address in the task file (after a command, or on error), in the addressing mode in use */
  setAddress(lba: number, lba48 = this.lba48): void {
    if (lba < 0) lba = 0;
    if (lba48) {
      const lo = lba % 0x1000000;
      const hi = Math.floor(lba / 0x1000000);
      this.lbal = lo & 0xff;
      this.lbam = (lo >>> 8) & 0xff;
      this.lbah = (lo >>> 16) & 0xff;
      this.hobLbal = hi & 0xff;
      this.hobLbam = (hi >>> 8) & 0xff;
      this.hobLbah = (hi >>> 16) & 0xff;
    } else if (this.select & 0x40) {
      this.lbal = lba & 0xff;
      this.lbam = (lba >>> 8) & 0xff;
      this.lbah = (lba >>> 16) & 0xff;
      this.select = (this.select & 0xf0) | ((lba >>> 24) & 0x0f);
    } else {
      const per = this.curHeads * this.curSpt;
      if (!per) return;
      const cyl = Math.floor(lba / per);
      const rest = lba % per;
      this.lbam = cyl & 0xff;
      this.lbah = (cyl >>> 8) & 0xff;
      this.select = (this.select & 0xf0) | Math.floor(rest / this.curSpt);
      this.lbal = (rest % this.curSpt) + 1;
    }
  }

  /** READ/WRITE SECTORS, MULTIPLE and DMA (and their EXT forms) */
  private transfer(lba48: boolean, write: boolean, dma: boolean, multiple: boolean): void {
    if (multiple && this.multCount === 0) return this.abort();
    const lba = this.taskAddress(lba48);
    const count = lba48 ? ((this.hobNsect << 8) | this.nsect) || 65536 : this.nsect || 256;
    this.lba48 = lba48;
    if (lba < 0 || lba + count > this.sectors || (!lba48 && lba + count > 0x10000000)) {
      return this.finishError(ATA_ER_IDNF);
    }
    if (write && this.dev!.readOnly) return this.abort();
    this.lba = lba;
    this.count = count;
    const bytes = count * SECTOR_SIZE;
    this.blockSize = (multiple ? this.multCount : 1) * SECTOR_SIZE;
    this.buf = this.ownedBuffer(bytes);
    this.end = bytes;
    this.pos = 0;
    if (!write) {
      this.startIo('read', this.dev!.read(lba, this.buf.subarray(0, bytes)), this.latency(bytes));
    } else if (!dma) {
      this.phase = Phase.PioOut;
      this.ch.ctrl.stats.pioBytes += bytes;
      this.blockEnd = Math.min(this.blockSize, bytes);
      this.status = ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_DRQ; // the first block goes without an interrupt
    } else {
      this.dmaToMem = false;
      this.phase = Phase.DmaWait;
      this.status = ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_DRQ;
      this.ch.tryDma(this);
    }
  }

  private startWrite(): void {
    const dev = this.dev!;
    const data = this.buf.subarray(0, this.end);
    const op = this.writeCache ? dev.write(this.lba, data) : dev.write(this.lba, data).then(() => dev.flush());
    this.startIo('write', op, this.latency(this.end));
  }

  private verify(lba48: boolean): void {
    const lba = this.taskAddress(lba48);
    const count = lba48 ? ((this.hobNsect << 8) | this.nsect) || 65536 : this.nsect || 256;
    this.lba48 = lba48;
    if (lba < 0 || lba + count > this.sectors || (!lba48 && lba + count > 0x10000000)) {
      return this.finishError(ATA_ER_IDNF);
    }
    this.setAddress(lba + count - 1);
    this.finishOk();
  }

  private setFeatures(): void {
    switch (this.feature) {
      case 0x03: {
        // set transfer mode: PIO default (00/01), PIO 0-4 (08-0C), MWDMA 0-2 (20-22), UDMA 0-5 (40-45)
        const v = this.nsect;
        const ok = v <= 0x01 || (v >= 0x08 && v <= 0x0c) || (v >= 0x20 && v <= 0x22) || (v >= 0x40 && v <= 0x45);
        if (!ok) return this.abort();
        this.xferMode = v;
        return this.finishOk();
      }
      case 0x02: // enable write cache
      case 0x82: // disable write cache
        if (this.kind !== 'disk') return this.abort();
        this.writeCache = this.feature === 0x02;
        return this.finishOk();
      case 0xaa: // read look-ahead on/off
      case 0x55:
      case 0x66: // keep / revert to power-on defaults after reset
      case 0xcc:
        return this.finishOk();
    }
    this.abort();
  }

  private initParams(): void {
    const heads = (this.select & 0x0f) + 1;
    const spt = this.nsect;
    if (spt === 0) return this.abort();
    this.curHeads = heads;
    this.curSpt = spt;
    this.finishOk();
  }

  /** PIO data-in of a buffer built by the device (IDENTIFY) */
  private sendPio(data: Uint8Array): void {
    this.buf = data;
    this.pos = 0;
    this.end = data.length;
    this.blockSize = data.length;
    this.blockEnd = data.length;
    this.phase = Phase.PioIn;
    this.ch.ctrl.stats.pioBytes += data.length;
    this.status = this.readyStatus() | ATA_SR_DRQ;
    this.raiseIrq();
  }

  // ---- IDENTIFY ----

  private identifyCommon(w: Uint16Array, model: string): void {
    const c = this.ch;
    identString(w, 10, 20, `X86VM-${c.index}${this.slot}-${this.kind === 'disk' ? 'HD' : 'CD'}`);
    identString(w, 23, 8, '1.0');
    identString(w, 27, 40, model);
    w[49] = 0x0f00; // IORDY, IORDY may be disabled, LBA, DMA
    w[50] = 0x4000;
    w[51] = 0x0200; // PIO timing mode 2 (obsolete field)
    w[52] = 0x0200;
    w[53] = 0x0007; // words 54-58, 64-70 and 88 are valid
    const mode = this.xferMode;
    w[63] = 0x0007 | ((mode & 0xf8) === 0x20 ? 0x100 << (mode & 7) : 0); // multiword DMA 0-2
    w[64] = 0x0003; // PIO modes 3 and 4
    w[65] = 120; // minimum multiword DMA cycle time (ns)
    w[66] = 120;
    w[67] = 120;
    w[68] = 120;
    w[80] = 0x00f0; // ATA/ATAPI-4 to -7
    w[88] = 0x003f | ((mode & 0xf8) === 0x40 ? 0x100 << (mode & 7) : 0); // Ultra DMA 0-5
    w[93] = this.slot === 0 ? 0x600b : 0x6b00; // hardware reset result (jumper, diagnostics passed)
  }

  private identify(): Uint8Array {
    const buf = this.ownedBuffer(512).subarray(0, 512);
    buf.fill(0);
    const w = new Uint16Array(256);
    const sectors = this.sectors;
    w[0] = 0x0040; // fixed device
    w[1] = this.cylinders;
    w[3] = 16;
    w[6] = 63;
    this.identifyCommon(w, 'x86vm HARDDISK');
    w[47] = 0x8000 | MAX_MULTIPLE;
    w[54] = this.curCylinders;
    w[55] = this.curHeads;
    w[56] = this.curSpt;
    const cur = this.curCylinders * this.curHeads * this.curSpt;
    w[57] = cur & 0xffff;
    w[58] = (cur >>> 16) & 0xffff;
    w[59] = this.multCount ? 0x100 | this.multCount : 0;
    const lba28 = Math.min(sectors, 0x0fffffff);
    w[60] = lba28 & 0xffff;
    w[61] = lba28 >>> 16;
    // supported: NOP, look-ahead, write cache, power management; LBA48, FLUSH CACHE (EXT)
    w[82] = 0x4000 | 0x0040 | 0x0020 | 0x0008;
    w[83] = 0x4000 | 0x2000 | 0x1000 | 0x0400;
    w[84] = 0x4000;
    w[85] = 0x4000 | 0x0040 | (this.writeCache ? 0x0020 : 0) | 0x0008;
    w[86] = 0x2000 | 0x1000 | 0x0400;
    w[87] = 0x4000;
    w[100] = sectors % 0x10000;
    w[101] = Math.floor(sectors / 0x10000) % 0x10000;
    w[102] = Math.floor(sectors / 0x100000000) % 0x10000;
    w[103] = 0;
    finishIdentify(w, buf);
    return buf;
  }

  private identifyPacket(): Uint8Array {
    const buf = this.ownedBuffer(512).subarray(0, 512);
    buf.fill(0);
    const w = new Uint16Array(256);
    // ATAPI, CD-ROM (type 5), removable, 50 µs accelerated DRQ, 12-byte packets
    w[0] = 0x8000 | (5 << 8) | 0x80 | (2 << 5);
    this.identifyCommon(w, 'x86vm DVD-ROM');
    w[71] = 30; // typical release times (ns), as drives report
    w[72] = 30;
    // supported: NOP, DEVICE RESET, PACKET, removable media
    w[82] = 0x4000 | 0x0200 | 0x0010;
    w[83] = 0x4000;
    w[84] = 0x4000;
    w[85] = 0x4000 | 0x0200 | 0x0010;
    w[87] = 0x4000;
    finishIdentify(w, buf);
    return buf;
  }

  // ---- PIO data port ----

  /** the current DRQ block has been fully read or written */
  blockDone(): void {
    switch (this.phase) {
      case Phase.PioIn:
        if (this.pos >= this.end) {
          if (this.kind === 'cdrom') return this.finishOk();
          if (this.count) this.setAddress(this.lba + this.count - 1);
          this.count = 0;
          this.finishOk(false); // ATA PIO in: no interrupt after the last block
          return;
        }
        if (this.kind === 'cdrom') return this.nextAtapiBlock();
        this.blockEnd = Math.min(this.pos + this.blockSize, this.end);
        this.status = ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_DRQ;
        this.raiseIrq();
        return;
      case Phase.PioOut:
        if (this.kind === 'cdrom') {
          if (this.pos >= this.outLen) return this.runCdb(this.buf.slice(0, this.outLen));
          return this.nextAtapiOutBlock();
        }
        if (this.pos >= this.end) return this.startWrite();
        this.blockEnd = Math.min(this.pos + this.blockSize, this.end);
        this.status = ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_DRQ;
        this.raiseIrq();
        return;
      case Phase.Packet:
        return this.packetReceived();
    }
  }

  // ---- ATAPI ----

  private packet(): void {
    this.atapiDma = (this.feature & 0x01) !== 0;
    let limit = this.lbam | (this.lbah << 8);
    if (limit === 0 || limit === 0xffff) limit = 0xfffe;
    this.byteLimit = limit;
    this.buf = this.ownedBuffer(16);
    this.buf.fill(0, 0, 16);
    this.pos = 0;
    this.blockEnd = this.end = 12;
    this.phase = Phase.Packet;
    this.nsect = ATAPI_IR_COD;
    this.status = ATA_SR_DRDY | ATA_SR_DRQ;
  }

  private packetReceived(): void {
    const cdb = this.buf.slice(0, 12);
    this.cdb = cdb;
    this.phase = Phase.Busy;
    this.status = ATA_SR_BSY | ATA_SR_DRDY;
    const target = this.cdrom!;
    const out = target.dataOutLength(cdb);
    this.outLen = out;
    if (out === 0) return this.runCdb(null);
    this.buf = this.ownedBuffer(out);
    this.pos = 0;
    this.end = out;
    if (this.atapiDma) {
      this.dmaToMem = false;
      this.phase = Phase.DmaWait;
      this.status = ATA_SR_DRDY | ATA_SR_DRQ;
      this.ch.tryDma(this);
      return;
    }
    this.phase = Phase.PioOut;
    this.ch.ctrl.stats.pioBytes += out;
    this.blockEnd = 0;
    this.nextAtapiOutBlock();
  }

  /** the size of the next ATAPI PIO block: the rest, or the byte count limit (even) */
  private atapiBlock(rest: number): number {
    if (rest <= this.byteLimit) return rest;
    return this.byteLimit & ~1;
  }

  private nextAtapiOutBlock(): void {
    const n = this.atapiBlock(this.outLen - this.pos);
    this.blockEnd = this.pos + n;
    this.lbam = n & 0xff;
    this.lbah = (n >>> 8) & 0xff;
    this.nsect = 0; // CoD = 0, IO = 0: data to the device
    this.status = ATA_SR_DRDY | ATA_SR_DRQ;
    this.raiseIrq();
  }

  runCdb(dataOut: Uint8Array | null): void {
    const cdb = this.cdb!;
    const target = this.cdrom!;
    this.scsiResult = null;
    // the latency follows the size of the transfer the command asks for
    const want = cdb[0] === 0x28 ? ((cdb[7] << 8) | cdb[8]) * 2048 : cdb[0] === 0xa8 ? ((cdb[6] << 24) | (cdb[7] << 16) | (cdb[8] << 8) | cdb[9]) * 2048 : 0;
    const latency = want ? this.latency(want) : IO_BASE_NS / 2;
    this.startIo('scsi', target.execute(cdb, dataOut), latency);
  }

  private atapiResult(hostError: string | null): void {
    const r: ScsiResult = this.scsiResult ?? {
      status: 0x02,
      dataIn: null,
      sense: null,
    };
    this.scsiResult = null;
    if (hostError !== null) this.ch.ctrl.warn(`CD-ROM command 0x${this.cdb![0].toString(16)} failed: ${hostError}`);
    if (hostError !== null || r.status !== SCSI_GOOD) {
      const key = r.sense ? r.sense[2] & 0x0f : 0x04;
      this.finishError((key << 4) | ATA_ER_ABRT);
      return;
    }
    const data = r.dataIn;
    if (!data || data.length === 0) return this.finishOk();
    this.buf = data;
    this.pos = 0;
    this.end = data.length;
    if (this.atapiDma) {
      this.dmaToMem = true;
      this.phase = Phase.DmaWait;
      this.status = ATA_SR_DRDY | ATA_SR_DRQ;
      this.ch.tryDma(this);
      return;
    }
    this.phase = Phase.PioIn;
    this.ch.ctrl.stats.pioBytes += data.length;
    this.nextAtapiBlock();
  }

  private nextAtapiBlock(): void {
    const n = this.atapiBlock(this.end - this.pos);
    this.blockEnd = this.pos + n;
    this.lbam = n & 0xff;
    this.lbah = (n >>> 8) & 0xff;
    this.nsect = ATAPI_IR_IO;
    this.status = ATA_SR_DRDY | ATA_SR_DRQ;
    this.raiseIrq();
  }

  // ---- DMA (called by the channel once the bus master runs) ----

  /** the bus master has moved `moved` bytes of this device's transfer; `short`: the PRD table ran out */
  dmaDone(short: boolean): void {
    if (short) {
      // the PRD table described less than the transfer: end the command with an error
      this.abort();
      return;
    }
    if (this.kind === 'cdrom') {
      if (!this.dmaToMem) {
        this.phase = Phase.Busy;
        this.status = ATA_SR_BSY | ATA_SR_DRDY;
        this.runCdb(this.buf.slice(0, this.outLen));
        return;
      }
      return this.finishOk();
    }
    if (this.dmaToMem) {
      this.setAddress(this.lba + this.count - 1);
      this.finishOk();
    } else {
      this.startWrite();
    }
  }

  // ---- state ----

  saveState(): IdeDeviceState {
    const io = this.io;
    const holdsData = this.phase !== Phase.Idle && this.phase !== Phase.Reset;
    return {
      regs: [
        this.feature,
        this.hobFeature,
        this.nsect,
        this.hobNsect,
        this.lbal,
        this.hobLbal,
        this.lbam,
        this.hobLbam,
        this.lbah,
        this.hobLbah,
        this.select,
        this.status,
        this.error,
      ],
      intrq: this.intrq,
      multCount: this.multCount,
      curHeads: this.curHeads,
      curSpt: this.curSpt,
      xferMode: this.xferMode,
      writeCache: this.writeCache,
      phase: this.phase,
      cmd: this.cmd,
      lba: this.lba,
      count: this.count,
      lba48: this.lba48,
      dmaToMem: this.dmaToMem,
      atapiDma: this.atapiDma,
      byteLimit: this.byteLimit,
      cdb: this.cdb ? Array.from(this.cdb) : null,
      outLen: this.outLen,
      buf: holdsData ? toB64(this.buf.subarray(0, Math.max(this.end, this.blockEnd))) : null,
      pos: this.pos,
      blockEnd: this.blockEnd,
      end: this.end,
      blockSize: this.blockSize,
      io: io
        ? {
            kind: io.kind,
            deadline: io.deadline,
            settled: io.settled,
            error: io.error,
            result:
              io.kind === 'scsi' && this.scsiResult
                ? {
                    status: this.scsiResult.status,
                    dataIn: this.scsiResult.dataIn ? toB64(this.scsiResult.dataIn) : null,
                    sense: this.scsiResult.sense ? Array.from(this.scsiResult.sense) : null,
                  }
                : null,
          }
        : null,
      target: this.cdrom ? this.cdrom.saveState() : null,
    };
  }

  loadState(s: IdeDeviceState): void {
    this.abandon();
    [
      this.feature,
      this.hobFeature,
      this.nsect,
      this.hobNsect,
      this.lbal,
      this.hobLbal,
      this.lbam,
      this.hobLbam,
      this.lbah,
      this.hobLbah,
      this.select,
      this.status,
      this.error,
    ] = s.regs.map((v) => v & 0xff);
    this.intrq = !!s.intrq;
    this.multCount = s.multCount | 0;
    this.curHeads = s.curHeads | 0;
    this.curSpt = s.curSpt | 0;
    this.xferMode = s.xferMode | 0;
    this.writeCache = s.writeCache !== false;
    this.cmd = s.cmd | 0;
    this.lba = s.lba;
    this.count = s.count;
    this.lba48 = !!s.lba48;
    this.dmaToMem = !!s.dmaToMem;
    this.atapiDma = !!s.atapiDma;
    this.byteLimit = s.byteLimit | 0;
    this.cdb = s.cdb ? Uint8Array.from(s.cdb) : null;
    this.outLen = s.outLen | 0;
    if (s.buf !== null) {
      const data = fromB64(s.buf);
      // data the device built or read into its own buffer goes back there; ATAPI data-in stays separate
      const b = this.ownedBuffer(data.length);
      b.set(data);
      this.buf = b;
    }
    this.pos = s.pos;
    this.blockEnd = s.blockEnd;
    this.end = s.end;
    this.blockSize = s.blockSize || SECTOR_SIZE;
    if (this.cdrom && s.target) this.cdrom.loadState(s.target);
    this.phase = s.phase as Phase;
    if (s.io) this.restoreIo(s.io);
  }

  /** re-arms an operation that was in flight when the state was saved */
  private restoreIo(s: NonNullable<IdeDeviceState['io']>): void {
    const machine = this.ch.ctrl.machine;
    const latency = Math.max(0, s.deadline - machine.clock.now());
    const io: PendingIo = { kind: s.kind, token: ++this.ioToken, deadline: s.deadline, settled: false, error: null, timer: 0 };
    this.io = io;
    let op: Promise<unknown>;
    if (s.settled) {
      io.error = s.error;
      if (s.kind === 'scsi' && s.result) {
        this.scsiResult = {
          status: s.result.status,
          dataIn: s.result.dataIn !== null ? fromB64(s.result.dataIn) : null,
          sense: s.result.sense ? Uint8Array.from(s.result.sense) : null,
        };
      }
      op = Promise.resolve(s.kind === 'scsi' ? this.scsiResult : undefined);
      if (io.error !== null) op = Promise.reject(new Error(io.error));
    } else {
      // the host had not finished: do the operation again
      switch (s.kind) {
        case 'read':
          op = this.dev!.read(this.lba, this.buf.subarray(0, this.end));
          break;
        case 'write':
          op = this.dev!.write(this.lba, this.buf.subarray(0, this.end));
          break;
        case 'flush':
          op = this.dev!.flush();
          break;
        case 'scsi':
          op = this.cdrom!.execute(this.cdb!, this.outLen ? this.buf.slice(0, this.outLen) : null);
          break;
      }
    }
    this.armIo(io, op, latency);
  }
}

interface IdeDeviceState {
  regs: number[];
  intrq: boolean;
  multCount: number;
  curHeads: number;
  curSpt: number;
  xferMode: number;
  writeCache: boolean;
  phase: number;
  cmd: number;
  lba: number;
  count: number;
  lba48: boolean;
  dmaToMem: boolean;
  atapiDma: boolean;
  byteLimit: number;
  cdb: number[] | null;
  outLen: number;
  buf: string | null;
  pos: number;
  blockEnd: number;
  end: number;
  blockSize: number;
  io: {
    kind: IoKind;
    deadline: number;
    settled: boolean;
    error: string | null;
    result: { status: number; dataIn: string | null; sense: number[] | null } | null;
  } | null;
  target: unknown;
}

/** writes an ATA string field: two characters per word, the first in the high byte, space padded */
function identString(w: Uint16Array, word: number, chars: number, text: string): void {
  for (let i = 0; i < chars; i += 2) {
    const a = i < text.length ? text.charCodeAt(i) & 0x7f : 0x20;
    const b = i + 1 < text.length ? text.charCodeAt(i + 1) & 0x7f : 0x20;
    w[word + i / 2] = (a << 8) | b;
  }
}

/** stores IDENTIFY words little-endian with the integrity word (255: A5h signature + checksum) */
function finishIdentify(w: Uint16Array, out: Uint8Array): void {
  w[255] = 0x00a5;
  let sum = 0;
  for (let i = 0; i < 255; i++) {
    out[2 * i] = w[i] & 0xff;
    out[2 * i + 1] = w[i] >>> 8;
    sum += out[2 * i] + out[2 * i + 1];
  }
  sum += 0xa5;
  w[255] = 0x00a5 | (((256 - (sum & 0xff)) & 0xff) << 8);
  out[510] = w[255] & 0xff;
  out[511] = w[255] >>> 8;
}

// ---------------------------------------------------------------------------------------------------
// a channel: two devices, the device control register, the bus master registers

interface IdeChannelState {
  selected: number;
  devctl: number;
  level: boolean;
  bmCmd: number;
  bmStatus: number;
  prd: number;
  devices: (IdeDeviceState | null)[];
}

class IdeChannel {
  readonly ctrl: IdeController;
  readonly index: 0 | 1;
  readonly devices: [IdeDevice, IdeDevice];
  private readonly line: IrqLine;
  selected: 0 | 1 = 0;
  devctl = 0;
  private level = false;
  bmCmd = 0;
  bmStatus = 0;
  prd = 0;

  constructor(ctrl: IdeController, index: 0 | 1, line: IrqLine) {
    this.ctrl = ctrl;
    this.index = index;
    this.line = line;
    this.devices = [new IdeDevice(this, 0), new IdeDevice(this, 1)];
  }

  get cur(): IdeDevice {
    return this.devices[this.selected];
  }

  get empty(): boolean {
    return !this.devices[0].present && !this.devices[1].present;
  }

  /** power-on / machine reset */
  hardReset(): void {
    for (const d of this.devices) d.powerOn();
    this.selected = 0;
    this.devctl = 0;
    this.bmCmd = 0;
    this.bmStatus = 0;
    this.prd = 0;
    this.updateIrq();
  }

  updateIrq(): void {
    const d = this.cur;
    const level = d.present && d.intrq && !(this.devctl & ATA_DC_NIEN);
    if (level !== this.level) {
      this.level = level;
      this.line(level);
    }
  }

  deviceIrq(d: IdeDevice): void {
    if (d === this.cur && !(this.devctl & ATA_DC_NIEN)) this.bmStatus |= BM_ST_INTR;
    this.updateIrq();
  }

  // ---- task file ports ----

  readPort(r: number): number {
    if (this.empty) return 0xff;
    const d = this.cur;
    if (r === 7) {
      if (!d.present) return 0;
      const s = d.status;
      if (d.intrq) {
        d.intrq = false;
        this.updateIrq();
      }
      return s;
    }
    if (r === 0) return this.dataRead16() & 0xff;
    return d.readReg(r, (this.devctl & ATA_DC_HOB) !== 0);
  }

  writePort(r: number, v: number): void {
    if (r === 0) {
      this.dataWrite16(v);
      return;
    }
    this.devctl &= ~ATA_DC_HOB;
    const d = this.cur;
    if (r === 7) {
      if (!d.present) return;
      if ((d.status & ATA_SR_BSY) && !(d.kind === 'cdrom' && v === 0x08)) return;
      // writing the command register clears a pending interrupt
      d.intrq = false;
      this.updateIrq();
      d.command(v);
      return;
    }
    if (d.present && d.status & (ATA_SR_BSY | ATA_SR_DRQ)) return;
    this.devices[0].writeReg(r, v);
    this.devices[1].writeReg(r, v);
    if (r === 6) {
      this.selected = ((v >> 4) & 1) as 0 | 1;
      this.updateIrq();
    }
  }

  readAltStatus(): number {
    if (this.empty) return 0xff;
    const d = this.cur;
    return d.present ? d.status : 0;
  }

  writeDevctl(v: number): void {
    const old = this.devctl;
    this.devctl = v & (ATA_DC_NIEN | ATA_DC_SRST | ATA_DC_HOB);
    if (v & ATA_DC_SRST && !(old & ATA_DC_SRST)) {
      for (const d of this.devices) {
        d.abandon();
        d.phase = Phase.Reset;
        d.status = ATA_SR_BSY;
        d.intrq = false;
      }
    } else if (!(v & ATA_DC_SRST) && old & ATA_DC_SRST) {
      for (const d of this.devices) {
        d.abandon();
        d.signature();
        d.intrq = false;
      }
      this.selected = 0;
    }
    this.updateIrq();
  }

  /** EXECUTE DEVICE DIAGNOSTIC: both devices run it; device 0 reports (and interrupts) */
  diagnostic(): void {
    for (const d of this.devices) {
      d.abandon();
      d.signature();
      d.intrq = false;
    }
    this.selected = 0;
    const d0 = this.devices[0];
    if (d0.present) d0.raiseIrq();
    else this.devices[1].raiseIrq();
  }

  // ---- data port (the fast path: Linux moves sectors with rep insw / insl) ----

  dataRead16(): number {
    const d = this.cur;
    if (d.phase !== Phase.PioIn) return 0xffff;
    const p = d.pos;
    const b = d.buf;
    const v = b[p] | (b[p + 1] << 8);
    d.pos = p + 2;
    if (p + 2 >= d.blockEnd) d.blockDone();
    return v;
  }

  dataRead32(): number {
    const d = this.cur;
    if (d.phase !== Phase.PioIn) return -1;
    const p = d.pos;
    if (p + 4 > d.blockEnd) return this.dataRead16() | (this.dataRead16() << 16);
    const b = d.buf;
    const v = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24);
    d.pos = p + 4;
    if (p + 4 >= d.blockEnd) d.blockDone();
    return v;
  }

  dataWrite16(v: number): void {
    const d = this.cur;
    if (d.phase !== Phase.PioOut && d.phase !== Phase.Packet) return;
    const p = d.pos;
    const b = d.buf;
    b[p] = v & 0xff;
    b[p + 1] = (v >>> 8) & 0xff;
    d.pos = p + 2;
    if (p + 2 >= d.blockEnd) d.blockDone();
  }

  dataWrite32(v: number): void {
    const d = this.cur;
    if (d.phase !== Phase.PioOut && d.phase !== Phase.Packet) return;
    const p = d.pos;
    if (p + 4 > d.blockEnd) {
      this.dataWrite16(v & 0xffff);
      this.dataWrite16(v >>> 16);
      return;
    }
    const b = d.buf;
    b[p] = v & 0xff;
    b[p + 1] = (v >>> 8) & 0xff;
    b[p + 2] = (v >>> 16) & 0xff;
    b[p + 3] = (v >>> 24) & 0xff;
    d.pos = p + 4;
    if (p + 4 >= d.blockEnd) d.blockDone();
  }

  // ---- bus master ----

  readBm(r: number): number {
    switch (r) {
      case 0:
        return this.bmCmd;
      case 2:
        return this.bmStatus;
      case 4:
      case 5:
      case 6:
      case 7:
        return (this.prd >>> (8 * (r - 4))) & 0xff;
    }
    return 0;
  }

  writeBm(r: number, v: number): void {
    switch (r) {
      case 0: {
        const was = this.bmCmd & BM_CMD_START;
        if (v & BM_CMD_START) {
          // the direction bit may not change while the engine runs
          this.bmCmd = was ? (this.bmCmd & BM_CMD_WRITE) | BM_CMD_START : v & (BM_CMD_START | BM_CMD_WRITE);
          if (!was) {
            this.bmStatus |= BM_ST_ACTIVE;
            for (const d of this.devices) this.tryDma(d);
          }
        } else {
          this.bmCmd = v & BM_CMD_WRITE;
          this.bmStatus &= ~BM_ST_ACTIVE; // stopping aborts a transfer in progress
        }
        return;
      }
      case 2:
        this.bmStatus = (this.bmStatus & ~(v & (BM_ST_ERROR | BM_ST_INTR)) & ~(BM_ST_DMA0 | BM_ST_DMA1)) | (v & (BM_ST_DMA0 | BM_ST_DMA1));
        return;
      case 4:
      case 5:
      case 6:
      case 7: {
        const shift = 8 * (r - 4);
        const mask = r === 4 ? 0xfc : 0xff;
        this.prd = ((this.prd & ~(0xff << shift)) | ((v & mask) << shift)) >>> 0;
        return;
      }
    }
  }

  /** runs a device's pending DMA transfer if the bus master is started and allowed to master the bus */
  tryDma(d: IdeDevice): void {
    if (d.phase !== Phase.DmaWait) return;
    if (!(this.bmCmd & BM_CMD_START) || !(this.bmStatus & BM_ST_ACTIVE) || !this.ctrl.busMaster) return;
    const len = d.end;
    const r = this.ctrl.prdTransfer(this.prd, d.buf, len, d.dmaToMem);
    this.ctrl.stats.dmaBytes += r.moved;
    // the engine stops (Active clear) when the PRD table ends exactly with the data or runs out first;
    // a table longer than the transfer leaves it active, as on the PIIX
    if (r.exact || r.moved < len) this.bmStatus &= ~BM_ST_ACTIVE;
    d.dmaDone(r.moved < len);
  }

  saveState(): IdeChannelState {
    return {
      selected: this.selected,
      devctl: this.devctl,
      level: this.level,
      bmCmd: this.bmCmd,
      bmStatus: this.bmStatus,
      prd: this.prd,
      devices: this.devices.map((d) => (d.present ? d.saveState() : null)),
    };
  }

  loadState(s: IdeChannelState): void {
    this.selected = (s.selected & 1) as 0 | 1;
    this.devctl = s.devctl & 0xff;
    this.bmCmd = s.bmCmd & 0xff;
    this.bmStatus = s.bmStatus & 0xff;
    this.prd = s.prd >>> 0;
    this.devices.forEach((d, i) => {
      const ds = s.devices[i];
      if (ds && d.present) d.loadState(ds);
      else d.powerOn();
    });
    this.level = !!s.level;
    this.line(this.level);
    this.updateIrq();
  }
}

// ---------------------------------------------------------------------------------------------------
// the PCI function

export const PIIX3_IDE_DEVFN = devfn(1, 1);
/** IDETIM registers (primary 0x40, secondary 0x42); bit 15 = IDE decode enable */
export const PIIX_IDETIM = 0x40;

const LEGACY = [
  { cmd: 0x1f0, ctl: 0x3f6, irq: 14 },
  { cmd: 0x170, ctl: 0x376, irq: 15 },
];

export class IdeController extends PciDevice {
  readonly machine: Machine;
  private readonly mem: Memory;
  readonly channels: [IdeChannel, IdeChannel];
  onWarning: (message: string) => void;
  /** the last warning given (also when nobody listens) */
  lastWarning: string | null = null;
  /** data moved for the guest since power-on, by bus master DMA and by PIO (diagnostics, benchmarks) */
  readonly stats = { dmaBytes: 0, pioBytes: 0 };

  constructor(machine: Machine, io: IoBus, lines: [IrqLine, IrqLine], options: IdeOptions = {}) {
    const holder: { c: IdeController | null } = { c: null };
    const bmChannel = (off: number): IdeChannel => holder.c!.channels[off >> 3 ? 1 : 0];
    super({
      name: 'piix3-ide',
      vendorId: 0x8086,
      deviceId: 0x7010,
      classCode: 0x010180,
      bars: [
        null,
        null,
        null,
        null,
        {
          size: 16,
          kind: 'io',
          handler: {
            read8: (o) => bmChannel(o).readBm(o & 7),
            write8: (o, v) => bmChannel(o).writeBm(o & 7, v),
            read16: (o) => bmChannel(o).readBm(o & 7) | (bmChannel(o + 1).readBm((o + 1) & 7) << 8),
            write16: (o, v) => {
              bmChannel(o).writeBm(o & 7, v & 0xff);
              bmChannel(o + 1).writeBm((o + 1) & 7, (v >>> 8) & 0xff);
            },
            read32: (o) => {
              let v = 0;
              for (let i = 0; i < 4; i++) v |= bmChannel(o + i).readBm((o + i) & 7) << (8 * i);
              return v;
            },
            write32: (o, v) => {
              for (let i = 0; i < 4; i++) bmChannel(o + i).writeBm((o + i) & 7, (v >>> (8 * i)) & 0xff);
            },
          },
        },
      ],
    });
    holder.c = this;
    this.machine = machine;
    this.mem = machine.mem;
    this.onWarning = options.onWarning ?? (() => {});
    this.channels = [new IdeChannel(this, 0, lines[0]), new IdeChannel(this, 1, lines[1])];
    // PCI status: medium DEVSEL timing, fast back-to-back capable
    this.set16(PCI_STATUS, 0x0280);
    // IDETIM (with the decode enables set), SIDETIM; writable so drivers can program timings
    this.config[PIIX_IDETIM + 1] = 0x80;
    this.config[PIIX_IDETIM + 3] = 0x80;
    for (let o = 0x40; o <= 0x44; o++) this.wmask[o] = 0xff;
    this.captureResetState();
    this.channels.forEach((ch, i) => this.registerLegacy(io, ch, LEGACY[i].cmd, LEGACY[i].ctl));
    for (const ch of this.channels) ch.hardReset();
  }

  private registerLegacy(io: IoBus, ch: IdeChannel, cmd: number, ctl: number): void {
    io.register(`ide${ch.index}`, cmd, 8, {
      read8: (p) => ch.readPort(p - cmd),
      write8: (p, v) => ch.writePort(p - cmd, v),
      read16: (p) => (p === cmd ? ch.dataRead16() : ch.readPort(p - cmd) | (ch.readPort(p - cmd + 1) << 8)),
      write16: (p, v) => {
        if (p === cmd) ch.dataWrite16(v);
        else {
          ch.writePort(p - cmd, v & 0xff);
          if (p - cmd < 7) ch.writePort(p - cmd + 1, v >>> 8);
        }
      },
      read32: (p) => (p === cmd ? ch.dataRead32() : ch.readPort(p - cmd) | (ch.readPort(p - cmd + 1) << 8) | (ch.readPort(p - cmd + 2) << 16) | (ch.readPort(p - cmd + 3) << 24)),
      write32: (p, v) => {
        if (p === cmd) ch.dataWrite32(v);
        else for (let i = 0; i < 4 && p - cmd + i <= 7; i++) ch.writePort(p - cmd + i, (v >>> (8 * i)) & 0xff);
      },
    });
    io.register(`ide${ch.index} control`, ctl, 1, {
      read8: () => ch.readAltStatus(),
      write8: (_p, v) => ch.writeDevctl(v),
    });
  }

  /**
   * Connects a drive: channel 0 (primary) or 1 (secondary), slot 0 (master) or 1 (slave). A CD-ROM's
   * medium may be null (an empty drive); change it later through cdrom(channel, slot).insert().
   */
  attach(channel: 0 | 1, slot: 0 | 1, drive: IdeDrive): void {
    if ((channel !== 0 && channel !== 1) || (slot !== 0 && slot !== 1)) throw new RangeError(`IDE: no channel ${channel} slot ${slot}`);
    const ch = this.channels[channel];
    ch.devices[slot].attach(drive);
    ch.updateIrq();
  }

  /** the SCSI target behind an ATAPI CD-ROM (media change, lock state), or null */
  cdrom(channel: 0 | 1, slot: 0 | 1): ScsiCdrom | null {
    return this.channels[channel]?.devices[slot]?.cdrom ?? null;
  }

  /** the block device of an ATA disk, or null */
  disk(channel: 0 | 1, slot: 0 | 1): BlockDevice | null {
    const d = this.channels[channel]?.devices[slot];
    return d && d.kind === 'disk' ? d.dev : null;
  }

  warn(message: string): void {
    this.lastWarning = message;
    this.onWarning(message);
  }

  get busMaster(): boolean {
    return (this.get16(PCI_COMMAND) & PCI_COMMAND_MASTER) !== 0;
  }

  /**
   * Moves `len` bytes between `buf` and guest memory as the PRD table at `table` describes. Returns the
   * bytes moved and whether the table ended exactly with the data (EOT on a fully used entry).
   */
  prdTransfer(table: number, buf: Uint8Array, len: number, toMem: boolean): { moved: number; exact: boolean } {
    const mem = this.mem;
    let moved = 0;
    let addr = table >>> 0;
    for (let i = 0; i < MAX_PRD_ENTRIES && moved < len; i++) {
      const base = (mem.read32(addr) & ~1) >>> 0;
      const raw = mem.read16((addr + 4) >>> 0) & 0xfffe;
      const size = raw === 0 ? 0x10000 : raw;
      const eot = (mem.read16((addr + 6) >>> 0) & 0x8000) !== 0;
      const n = Math.min(size, len - moved);
      this.copy(base, buf, moved, n, toMem);
      moved += n;
      if (eot) return { moved, exact: moved === len && n === size };
      addr = (addr + 8) >>> 0;
    }
    return { moved, exact: false };
  }

  /** copies between guest physical memory and a buffer, a page at a time (RAM by typed-array copies) */
  private copy(phys: number, buf: Uint8Array, off: number, n: number, toMem: boolean): void {
    const mem = this.mem;
    while (n > 0) {
      const page = phys >>> 12;
      const chunk = Math.min(n, 4096 - (phys & 0xfff));
      const kind = mem.pageKind[page];
      if (toMem ? kind === PageKind.Ram : kind <= PageKind.RomInRam) {
        if (toMem) mem.mem8.set(buf.subarray(off, off + chunk), phys);
        else buf.set(mem.mem8.subarray(phys, phys + chunk), off);
      } else if (toMem) {
        for (let i = 0; i < chunk; i++) mem.write8(phys + i, buf[off + i]);
      } else {
        for (let i = 0; i < chunk; i++) buf[off + i] = mem.read8(phys + i);
      }
      phys = (phys + chunk) >>> 0;
      off += chunk;
      n -= chunk;
    }
  }

  override reset(): void {
    super.reset();
    for (const ch of this.channels) ch.hardReset();
  }

  override saveExtra(): unknown {
    return { channels: this.channels.map((c) => c.saveState()) };
  }

  override loadExtra(s: unknown): void {
    const st = s as { channels?: IdeChannelState[] } | undefined;
    if (!st?.channels) return;
    this.channels.forEach((c, i) => c.loadState(st.channels![i]));
  }
}

/**
 * Adds the PIIX3 IDE function at 00:01.1 to the PC (or, on a PC without PCI, just its legacy ports) and
 * returns it; attach drives with ide.attach(channel, slot, drive).
 */
export function addIde(pc: Pc, options: IdeOptions = {}): IdeController {
  const ide = new IdeController(pc.machine, pc.io, [pc.irq.line(14), pc.irq.line(15)], options);
  if (pc.pci) pc.pci.bus.add(ide, PIIX3_IDE_DEVFN);
  else pc.machine.addDevice(ide);
  return ide;
}

// ---- base64 for buffers in saved states (no Node or DOM APIs in devices/) ----

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function toB64(b: Uint8Array): string {
  const out: string[] = [];
  let chunk = '';
  for (let i = 0; i < b.length; i += 3) {
    const n = (b[i] << 16) | ((i + 1 < b.length ? b[i + 1] : 0) << 8) | (i + 2 < b.length ? b[i + 2] : 0);
    chunk += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    chunk += i + 1 < b.length ? B64[(n >> 6) & 63] : '=';
    chunk += i + 2 < b.length ? B64[n & 63] : '=';
    if (chunk.length >= 8192) {
      out.push(chunk);
      chunk = '';
    }
  }
  out.push(chunk);
  return out.join('');
}

function fromB64(s: string): Uint8Array {
  let len = s.length;
  while (len > 0 && s.charCodeAt(len - 1) === 61) len--; // '='
  const out = new Uint8Array(Math.floor((len * 6) / 8));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < len; i++) {
    const v = B64.indexOf(s[i]);
    if (v < 0) throw new Error('IDE state: bad base64 data');
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}
