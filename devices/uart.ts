/**
 * A 16550A UART (COM1 at 0x3F8 by default): RBR/THR, IER, IIR/FCR with 16-byte FIFOs, LCR with DLAB
 * and the DLL/DLM divisor latch, MCR with loopback, LSR, MSR and SCR.
 *
 * Transmission is instantaneous: a byte written to THR goes straight to the host sink, so THRE and TEMT
 * always read as set. Host input goes to an unbounded queue in front of the receiver and moves into the
 * receive FIFO (or the single holding register when FIFOs are off) as the guest makes room, so pasted
 * or piped input is never lost to overruns. With FIFOs on, a receive FIFO below its trigger level raises
 * the character-timeout interrupt after four character times at the programmed baud rate (guest time).
 *
 * The interrupt output follows QEMU: it is asserted whenever IIR reports a cause, regardless of MCR.OUT2
 * (real PC boards gate it with OUT2; guests written against QEMU sometimes forget to set it).
 */
import type { Clock } from '../core/clock';
import type { IoBus } from '../core/iobus';
import type { IrqLine, SerialSink } from '../core/host';
import type { Device } from '../core/machine';

export const COM1_PORT = 0x3f8;

// IER bits
const IER_RDI = 0x01, IER_THRI = 0x02, IER_RLSI = 0x04, IER_MSI = 0x08;
// IIR values
const IIR_NONE = 0x01, IIR_MSI = 0x00, IIR_THRI = 0x02, IIR_RDI = 0x04, IIR_RLSI = 0x06, IIR_TIMEOUT = 0x0c;
const IIR_FIFO = 0xc0;
// LSR bits
export const LSR_DR = 0x01, LSR_OE = 0x02, LSR_PE = 0x04, LSR_FE = 0x08, LSR_BI = 0x10;
export const LSR_THRE = 0x20, LSR_TEMT = 0x40, LSR_FIFOERR = 0x80;
const LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI;
// MCR bits
const MCR_DTR = 0x01, MCR_RTS = 0x02, MCR_OUT1 = 0x04, MCR_OUT2 = 0x08, MCR_LOOP = 0x10;
// MSR bits
const MSR_DCTS = 0x01, MSR_DDSR = 0x02, MSR_TERI = 0x04, MSR_DDCD = 0x08;
const MSR_CTS = 0x10, MSR_DSR = 0x20, MSR_RI = 0x40, MSR_DCD = 0x80;
/** modem lines of the (virtual) cable when not in loopback: carrier, data set ready, clear to send */
const HOST_LINES = MSR_DCD | MSR_DSR | MSR_CTS;

const FIFO_SIZE = 16;
const TRIGGER_LEVELS = [1, 4, 8, 14];
const UART_CLOCK_HZ = 115200;

/** what a Uart16550 needs from the machine */
export interface UartHost {
  readonly io: IoBus;
  readonly clock: Clock;
}

export interface UartOptions {
  /** base I/O port (default 0x3F8) */
  port?: number;
  /** where transmitted bytes go (default: discarded) */
  sink?: SerialSink;
  /** interrupt output (the PIC input, IRQ 4 for COM1) */
  irq?: IrqLine | null;
  /** device name (default "uart@3f8") */
  name?: string;
}

export interface UartState {
  ier: number;
  lcr: number;
  mcr: number;
  fcr: number;
  lsrErrors: number;
  msrDelta: number;
  scr: number;
  dll: number;
  dlm: number;
  rx: number[];
  pending: number[];
  thri: boolean;
  timeoutPending: boolean;
  /** guest ns left until the character timeout fires, or -1 when not armed */
  timeoutIn: number;
}

export class Uart16550 implements Device {
  readonly name: string;
  readonly port: number;
  sink: SerialSink | null;
  private irq: IrqLine | null;
  private readonly clock: Clock;

  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private fcr = 0;
  private lsrErrors = 0;
  private msrDelta = 0;
  private scr = 0;
  private dll = 12;
  private dlm = 0;
  /** receive FIFO (or the holding register: at most one byte when FIFOs are off) */
  private rx: number[] = [];
  /** host input not yet in the receiver */
  private pending: number[] = [];
  private pendingHead = 0;
  /** THR-empty interrupt pending (cleared by reading IIR while it is the cause, or by writing THR) */
  private thri = false;
  private timeoutPending = false;
  private timeoutTimer = -1;
  private timeoutDeadline = 0;
  private irqLevel = false;

  constructor(host: UartHost, options: UartOptions = {}) {
    this.port = options.port ?? COM1_PORT;
    this.name = options.name ?? `uart@${this.port.toString(16)}`;
    this.sink = options.sink ?? null;
    this.irq = options.irq ?? null;
    this.clock = host.clock;
    host.io.register(this.name, this.port, 8, {
      read8: (p) => this.read(p - this.port),
      write8: (p, v) => this.write(p - this.port, v),
    });
  }

  /** connects (or disconnects) the interrupt output; the line is driven to its current level */
  connectIrq(irq: IrqLine | null): void {
    this.irq = irq;
    if (irq) irq(this.irqLevel);
  }

  // ---------------------------------------------------------------------------------------------
  // host side
  // ---------------------------------------------------------------------------------------------

  /** bytes from the host (keyboard, pipe) for the guest to read */
  receive(bytes: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++) this.pending.push(bytes[i] & 0xff);
    this.fillRx();
    this.update();
  }

  /** host bytes not yet delivered into the receiver */
  get queuedInput(): number {
    return this.pending.length - this.pendingHead;
  }

  /** the level of the interrupt output */
  get irqAsserted(): boolean {
    return this.irqLevel;
  }

  // ---------------------------------------------------------------------------------------------
  // registers
  // ---------------------------------------------------------------------------------------------

  private get dlab(): boolean {
    return (this.lcr & 0x80) !== 0;
  }

  private get fifoEnabled(): boolean {
    return (this.fcr & 1) !== 0;
  }

  private get rxCapacity(): number {
    return this.fifoEnabled ? FIFO_SIZE : 1;
  }

  private get loopback(): boolean {
    return (this.mcr & MCR_LOOP) !== 0;
  }

  read(reg: number): number {
    switch (reg) {
      case 0: {
        if (this.dlab) return this.dll;
        const v = this.rx.length ? this.rx.shift()! : 0;
        this.timeoutPending = false;
        this.fillRx();
        this.rearmTimeout();
        this.update();
        return v;
      }
      case 1:
        return this.dlab ? this.dlm : this.ier;
      case 2: {
        const iir = this.iir();
        if ((iir & 0x0f) === IIR_THRI) {
          this.thri = false;
          this.update();
        }
        return iir;
      }
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5: {
        const v = this.lsr();
        if (this.lsrErrors) {
          this.lsrErrors = 0;
          this.update();
        }
        return v;
      }
      case 6: {
        const v = this.msr();
        if (this.msrDelta) {
          this.msrDelta = 0;
          this.update();
        }
        return v;
      }
      default:
        return this.scr;
    }
  }

  write(reg: number, v: number): void {
    v &= 0xff;
    switch (reg) {
      case 0:
        if (this.dlab) {
          this.dll = v;
        } else {
          this.transmit(v);
        }
        break;
      case 1:
        if (this.dlab) {
          this.dlm = v;
        } else {
          const old = this.ier;
          this.ier = v & 0x0f;
          // an 8250/16550 raises THRE as soon as the interrupt is enabled while THR is empty
          if (!(old & IER_THRI) && this.ier & IER_THRI) this.thri = true;
          this.update();
        }
        break;
      case 2:
        this.writeFcr(v);
        break;
      case 3:
        this.lcr = v;
        break;
      case 4:
        this.writeMcr(v & 0x1f);
        break;
      case 5:
      case 6:
        // LSR and MSR are read-only (factory test writes are ignored)
        break;
      default:
        this.scr = v;
        break;
    }
  }

  private transmit(v: number): void {
    if (this.loopback) {
      this.loopReceive(v);
    } else if (this.sink) {
      this.sink.write(v);
    }
    // the byte leaves at once: THR is empty again
    this.thri = true;
    this.update();
  }

  /** a byte looped back from the transmitter into the receiver */
  private loopReceive(v: number): void {
    if (this.rx.length >= this.rxCapacity) {
      this.lsrErrors |= LSR_OE;
      // with FIFOs the shift register's byte is lost; without, the holding register is overwritten
      if (!this.fifoEnabled) this.rx[0] = v;
    } else {
      this.rx.push(v);
    }
    this.timeoutPending = false;
    this.rearmTimeout();
  }

  private writeFcr(v: number): void {
    const wasEnabled = this.fifoEnabled;
    const enable = (v & 1) !== 0;
    if (enable !== wasEnabled) {
      // changing the FIFO mode clears both FIFOs
      this.rx.length = 0;
      this.timeoutPending = false;
    }
    if (!enable) {
      this.fcr = 0;
    } else {
      if (v & 0x02) {
        this.rx.length = 0;
        this.timeoutPending = false;
        this.lsrErrors &= ~LSR_FIFOERR;
      }
      // bit 2 clears the transmit FIFO, which is always empty here
      this.fcr = v & 0xc9;
    }
    this.fillRx();
    this.rearmTimeout();
    this.update();
  }

  private modemLines(mcr: number): number {
    if (!(mcr & MCR_LOOP)) return HOST_LINES;
    let m = 0;
    if (mcr & MCR_RTS) m |= MSR_CTS;
    if (mcr & MCR_DTR) m |= MSR_DSR;
    if (mcr & MCR_OUT1) m |= MSR_RI;
    if (mcr & MCR_OUT2) m |= MSR_DCD;
    return m;
  }

  private writeMcr(v: number): void {
    const before = this.modemLines(this.mcr);
    const wasLoop = this.loopback;
    this.mcr = v;
    const after = this.modemLines(v);
    const changed = before ^ after;
    if (changed & MSR_CTS) this.msrDelta |= MSR_DCTS;
    if (changed & MSR_DSR) this.msrDelta |= MSR_DDSR;
    if (changed & MSR_DCD) this.msrDelta |= MSR_DDCD;
    if (before & MSR_RI && !(after & MSR_RI)) this.msrDelta |= MSR_TERI;
    if (wasLoop && !this.loopback) this.fillRx();
    this.update();
  }

  private lsr(): number {
    let v = LSR_THRE | LSR_TEMT | this.lsrErrors;
    if (this.rx.length) v |= LSR_DR;
    return v;
  }

  private msr(): number {
    return this.modemLines(this.mcr) | this.msrDelta;
  }

  /** the interrupt identification for the highest-priority pending cause */
  private iir(): number {
    const fifo = this.fifoEnabled ? IIR_FIFO : 0;
    const ier = this.ier;
    if (ier & IER_RLSI && this.lsrErrors & LSR_ERRORS) return IIR_RLSI | fifo;
    if (ier & IER_RDI && this.rx.length) {
      if (!this.fifoEnabled || this.rx.length >= TRIGGER_LEVELS[this.fcr >> 6]) return IIR_RDI | fifo;
      if (this.timeoutPending) return IIR_TIMEOUT | fifo;
    }
    if (ier & IER_THRI && this.thri) return IIR_THRI | fifo;
    if (ier & IER_MSI && this.msrDelta) return IIR_MSI | fifo;
    return IIR_NONE | fifo;
  }

  /** moves queued host input into the receiver as far as there is room */
  private fillRx(): void {
    if (this.loopback) return; // the receiver listens to the transmitter only
    const cap = this.rxCapacity;
    let moved = false;
    while (this.rx.length < cap && this.pendingHead < this.pending.length) {
      this.rx.push(this.pending[this.pendingHead++]);
      moved = true;
    }
    if (this.pendingHead === this.pending.length) {
      this.pending.length = 0;
      this.pendingHead = 0;
    } else if (this.pendingHead > 4096) {
      this.pending = this.pending.slice(this.pendingHead);
      this.pendingHead = 0;
    }
    if (moved) {
      this.timeoutPending = false;
      this.rearmTimeout();
    }
  }

  /** guest ns for one character at the programmed baud rate and frame format */
  private charTimeNs(): number {
    const divisor = this.dll | (this.dlm << 8) || 1;
    const dataBits = 5 + (this.lcr & 3);
    const stopBits = this.lcr & 4 ? 2 : 1;
    const parity = this.lcr & 8 ? 1 : 0;
    const bits = 1 + dataBits + parity + stopBits;
    return (bits * divisor * 1e9) / UART_CLOCK_HZ;
  }

  /** (re)starts the character-timeout timer: FIFO mode, data below the trigger level */
  private rearmTimeout(): void {
    if (this.timeoutTimer >= 0) {
      this.clock.cancel(this.timeoutTimer);
      this.timeoutTimer = -1;
    }
    if (!this.fifoEnabled || this.rx.length === 0 || this.timeoutPending) return;
    this.armTimeoutAt(this.clock.now() + 4 * this.charTimeNs());
  }

  private armTimeoutAt(deadline: number): void {
    this.timeoutDeadline = deadline;
    this.timeoutTimer = this.clock.at(deadline, () => {
      this.timeoutTimer = -1;
      if (this.fifoEnabled && this.rx.length) {
        this.timeoutPending = true;
        this.update();
      }
    });
  }

  /** recomputes the interrupt output */
  private update(): void {
    const level = (this.iir() & 0x0f) !== IIR_NONE;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      if (this.irq) this.irq(level);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Device
  // ---------------------------------------------------------------------------------------------

  reset(): void {
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.fcr = 0;
    this.lsrErrors = 0;
    this.msrDelta = 0;
    this.scr = 0;
    this.dll = 12;
    this.dlm = 0;
    this.rx.length = 0;
    this.thri = false;
    this.timeoutPending = false;
    if (this.timeoutTimer >= 0) this.clock.cancel(this.timeoutTimer);
    this.timeoutTimer = -1;
    this.fillRx();
    this.update();
  }

  saveState(): UartState {
    return {
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      fcr: this.fcr,
      lsrErrors: this.lsrErrors,
      msrDelta: this.msrDelta,
      scr: this.scr,
      dll: this.dll,
      dlm: this.dlm,
      rx: this.rx.slice(),
      pending: this.pending.slice(this.pendingHead),
      thri: this.thri,
      timeoutPending: this.timeoutPending,
      timeoutIn: this.timeoutTimer >= 0 ? Math.max(0, this.timeoutDeadline - this.clock.now()) : -1,
    };
  }

  loadState(state: unknown): void {
    const s = state as UartState;
    this.ier = s.ier & 0x0f;
    this.lcr = s.lcr & 0xff;
    this.mcr = s.mcr & 0x1f;
    this.fcr = s.fcr & 0xc9;
    this.lsrErrors = s.lsrErrors & 0xff;
    this.msrDelta = s.msrDelta & 0x0f;
    this.scr = s.scr & 0xff;
    this.dll = s.dll & 0xff;
    this.dlm = s.dlm & 0xff;
    this.rx = s.rx.map((b) => b & 0xff);
    this.pending = s.pending.map((b) => b & 0xff);
    this.pendingHead = 0;
    this.thri = !!s.thri;
    this.timeoutPending = !!s.timeoutPending;
    if (this.timeoutTimer >= 0) this.clock.cancel(this.timeoutTimer);
    this.timeoutTimer = -1;
    if (s.timeoutIn >= 0) this.armTimeoutAt(this.clock.now() + s.timeoutIn);
    this.irqLevel = (this.iir() & 0x0f) !== IIR_NONE;
    if (this.irq) this.irq(this.irqLevel);
  }
}
