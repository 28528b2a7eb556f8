/**
 * Unit tests of the small devices: the 16550A UART, the debug console (0xE9), the POST-code ports
 * (0x80, 0x190) and isa-debug-exit (0xF4). They run on a bare I/O bus and a deterministic clock whose
 * "instruction count" the test moves by hand, so no CPU is involved.
 */
import { describe, it, expect, beforeEach } from 'vitest';
import { IoBus } from '../../core/iobus';
import { Clock } from '../../core/clock';
import { BufferSink } from '../../core/host';
import { Uart16550, LSR_DR, LSR_OE, LSR_THRE, LSR_TEMT } from '../../devices/uart';
import { DebugCon } from '../../devices/debugcon';
import { PostCodes } from '../../devices/postcode';
import { DebugExit, debugExitStatus } from '../../devices/debugexit';
import { EscapeFilter, CTRL_A } from '../../node/console';
import type { StopReason } from '../../core/machine';

const COM1 = 0x3f8;
const RBR = COM1, THR = COM1, DLL = COM1, IER = COM1 + 1, DLM = COM1 + 1, IIR = COM1 + 2, FCR = COM1 + 2;
const LCR = COM1 + 3, MCR = COM1 + 4, LSR = COM1 + 5, MSR = COM1 + 6, SCR = COM1 + 7;

class Rig {
  io = new IoBus();
  clock = new Clock(true);
  insns = 0;
  sink = new BufferSink();
  irqLevels: boolean[] = [];
  uart: Uart16550;
  constructor() {
    this.clock.instructions = () => this.insns;
    this.uart = new Uart16550(this, { sink: this.sink, irq: (l) => this.irqLevels.push(l) });
  }
  /** lets `ns` of guest time pass and fires due timers */
  elapse(ns: number): void {
    this.insns += Math.ceil(ns / this.clock.nsPerInstruction);
    this.clock.runDue();
  }
  get irq(): boolean {
    return this.uart.irqAsserted;
  }
}

describe('Uart16550', () => {
  let r: Rig;
  let io: IoBus;
  beforeEach(() => {
    r = new Rig();
    io = r.io;
  });

  it('has the 16550A reset values', () => {
    expect(io.in8(IER)).toBe(0);
    expect(io.in8(IIR)).toBe(0x01);
    expect(io.in8(LCR)).toBe(0);
    expect(io.in8(MCR)).toBe(0);
    expect(io.in8(LSR)).toBe(LSR_THRE | LSR_TEMT);
    expect(io.in8(MSR)).toBe(0xb0); // DCD, DSR, CTS asserted by the virtual cable (as in QEMU)
    expect(r.irq).toBe(false);
    expect(io.ownerOf(COM1)).toBe('uart@3f8');
    expect(io.ownerOf(COM1 + 7)).toBe('uart@3f8');
    expect(io.ownerOf(COM1 + 8)).toBeUndefined();
  });

  it('keeps the scratch register', () => {
    io.out8(SCR, 0x5a);
    expect(io.in8(SCR)).toBe(0x5a);
    io.out8(SCR, 0xa5);
    expect(io.in8(SCR)).toBe(0xa5);
  });

  it('switches ports 0/1 to the divisor latch with LCR.DLAB', () => {
    io.out8(IER, 0x05);
    io.out8(LCR, 0x83);
    io.out8(DLL, 0x01);
    io.out8(DLM, 0x02);
    expect(io.in8(DLL)).toBe(0x01);
    expect(io.in8(DLM)).toBe(0x02);
    expect(io.in8(LCR)).toBe(0x83);
    // writing DLL must not transmit
    expect(r.sink.length).toBe(0);
    io.out8(LCR, 0x03);
    expect(io.in8(IER)).toBe(0x05);
    expect(io.in8(LCR)).toBe(0x03);
    // IER keeps only its four defined bits
    io.out8(IER, 0xff);
    expect(io.in8(IER)).toBe(0x0f);
  });

  it('sends THR writes to the sink at once (THRE/TEMT stay set)', () => {
    for (const c of 'Hi!\n') io.out8(THR, c.charCodeAt(0));
    expect(r.sink.text()).toBe('Hi!\n');
    expect(io.in8(LSR) & (LSR_THRE | LSR_TEMT)).toBe(LSR_THRE | LSR_TEMT);
  });

  it('receives host input through the holding register without FIFOs', () => {
    expect(io.in8(LSR) & LSR_DR).toBe(0);
    r.uart.receive([0x41, 0x42, 0x43]);
    expect(io.in8(LSR) & LSR_DR).toBe(LSR_DR);
    expect(io.in8(RBR)).toBe(0x41);
    expect(io.in8(LSR) & LSR_DR).toBe(LSR_DR);
    expect(io.in8(RBR)).toBe(0x42);
    expect(io.in8(RBR)).toBe(0x43);
    expect(io.in8(LSR) & LSR_DR).toBe(0);
    // host input is queued, never overrun
    expect(io.in8(LSR) & LSR_OE).toBe(0);
  });

  it('does not lose a long burst of host input', () => {
    const data = Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
    io.out8(FCR, 0xc7);
    r.uart.receive(data);
    const got: number[] = [];
    while (io.in8(LSR) & LSR_DR) got.push(io.in8(RBR));
    expect(got).toEqual(data);
    expect(r.uart.queuedInput).toBe(0);
  });

  it('reports FIFO mode in IIR and raises the data interrupt at the trigger level', () => {
    io.out8(FCR, 0xc7); // enable, clear both, trigger 14
    expect(io.in8(IIR)).toBe(0xc1);
    io.out8(IER, 0x01);
    r.uart.receive(Array.from({ length: 13 }, (_, i) => 0x30 + i));
    expect(io.in8(IIR)).toBe(0xc1); // below the trigger level: no interrupt yet
    expect(r.irq).toBe(false);
    r.uart.receive([0x7a]);
    expect(io.in8(IIR)).toBe(0xc4);
    expect(r.irq).toBe(true);
    io.in8(RBR); // 13 left: below the trigger again
    expect(io.in8(IIR) & 0x0f).not.toBe(0x04);
  });

  it('holds 16 bytes in the receive FIFO and feeds the rest as room appears', () => {
    io.out8(FCR, 0x01);
    r.uart.receive(Array.from({ length: 20 }, (_, i) => i));
    expect(r.uart.queuedInput).toBe(4);
    expect(io.in8(RBR)).toBe(0);
    expect(r.uart.queuedInput).toBe(3);
  });

  it('clears the receive FIFO with FCR bit 1', () => {
    io.out8(FCR, 0x01);
    r.uart.receive([1, 2, 3]);
    io.out8(FCR, 0x03);
    expect(io.in8(LSR) & LSR_DR).toBe(0);
  });

  it('raises the character-timeout interrupt after four character times', () => {
    io.out8(LCR, 0x80);
    io.out8(DLL, 1); // 115200 baud
    io.out8(DLM, 0);
    io.out8(LCR, 0x03); // 8N1: 10 bits per character
    io.out8(FCR, 0x81); // FIFO on, trigger 8
    io.out8(IER, 0x01);
    r.uart.receive([0x61, 0x62, 0x63]);
    expect(io.in8(IIR)).toBe(0xc1);
    const charNs = (10 * 1e9) / 115200;
    r.elapse(3 * charNs);
    expect(io.in8(IIR)).toBe(0xc1);
    r.elapse(1.1 * charNs);
    expect(io.in8(IIR)).toBe(0xcc);
    expect(r.irq).toBe(true);
    // reading a byte clears the timeout indication and restarts the timer
    expect(io.in8(RBR)).toBe(0x61);
    expect(io.in8(IIR)).toBe(0xc1);
    expect(r.irq).toBe(false);
    r.elapse(4.1 * charNs);
    expect(io.in8(IIR)).toBe(0xcc);
    io.in8(RBR);
    io.in8(RBR);
    r.elapse(10 * charNs);
    expect(io.in8(IIR)).toBe(0xc1); // empty FIFO: no timeout
  });

  it('raises THRE when enabled, clears it by reading IIR, and raises it again after a write', () => {
    io.out8(IER, 0x02);
    expect(r.irq).toBe(true);
    expect(io.in8(IIR)).toBe(0x02);
    expect(r.irq).toBe(false);
    expect(io.in8(IIR)).toBe(0x01);
    io.out8(THR, 0x55);
    expect(r.irq).toBe(true);
    expect(io.in8(IIR)).toBe(0x02);
    io.out8(IER, 0x00);
    expect(io.in8(IIR)).toBe(0x01);
    expect(r.irqLevels).toEqual([true, false, true, false]);
  });

  it('orders interrupt causes: line status > received data > THRE > modem status', () => {
    io.out8(MCR, 0x10); // loopback, to create an overrun
    io.out8(IER, 0x0f);
    io.out8(THR, 1);
    io.out8(THR, 2); // overrun: holding register already full
    expect(io.in8(IIR)).toBe(0x06);
    const lsr = io.in8(LSR);
    expect(lsr & LSR_OE).toBe(LSR_OE);
    expect(lsr & LSR_DR).toBe(LSR_DR);
    expect(io.in8(LSR) & LSR_OE).toBe(0); // reading LSR cleared OE
    expect(io.in8(IIR)).toBe(0x04);
    io.in8(RBR);
    expect(io.in8(IIR)).toBe(0x02); // THRE (reading IIR clears it)
    io.out8(MCR, 0x12); // loopback + RTS: CTS changes → DCTS
    expect(io.in8(IIR)).toBe(0x00);
    expect(io.in8(MSR) & 0x01).toBe(0x01);
    expect(io.in8(IIR)).toBe(0x01);
    expect(r.irq).toBe(false);
  });

  it('loops THR back to RBR in loopback mode and maps MCR to MSR', () => {
    io.out8(MCR, 0x10);
    expect(io.in8(MSR)).toBe(0x0b); // CTS, DSR and DCD dropped: deltas set (DCTS, DDSR, DDCD)
    expect(io.in8(MSR)).toBe(0x00); // deltas cleared by the read
    io.out8(THR, 0x99);
    expect(r.sink.length).toBe(0);
    expect(io.in8(LSR) & LSR_DR).toBe(LSR_DR);
    expect(io.in8(RBR)).toBe(0x99);
    io.out8(MCR, 0x1f); // DTR RTS OUT1 OUT2 → DSR CTS RI DCD
    expect(io.in8(MSR)).toBe(0xf0 | 0x0b);
    io.out8(MCR, 0x1b); // OUT1 off: RI trailing edge
    expect(io.in8(MSR)).toBe(0xb0 | 0x04);
    // host input waits while in loopback
    r.uart.receive([0x33]);
    expect(io.in8(LSR) & LSR_DR).toBe(0);
    io.out8(MCR, 0x00);
    expect(io.in8(LSR) & LSR_DR).toBe(LSR_DR);
    expect(io.in8(RBR)).toBe(0x33);
    expect(io.in8(MSR) & 0xf0).toBe(0xb0);
  });

  it('resets its registers', () => {
    io.out8(IER, 0x0f);
    io.out8(LCR, 0x1b);
    io.out8(MCR, 0x0b);
    io.out8(FCR, 0x01);
    r.uart.reset();
    expect(io.in8(IER)).toBe(0);
    expect(io.in8(LCR)).toBe(0);
    expect(io.in8(MCR)).toBe(0);
    expect(io.in8(IIR)).toBe(0x01);
    expect(r.irq).toBe(false);
  });

  it('saves and restores its state as plain JSON', () => {
    io.out8(LCR, 0x80);
    io.out8(DLL, 3);
    io.out8(LCR, 0x03);
    io.out8(FCR, 0x41); // FIFO, trigger 4
    io.out8(IER, 0x05);
    io.out8(SCR, 0x42);
    io.out8(MCR, 0x0b);
    r.uart.receive(Array.from({ length: 20 }, (_, i) => 0x40 + i));
    io.in8(RBR);
    const state = JSON.parse(JSON.stringify(r.uart.saveState()));
    const r2 = new Rig();
    r2.uart.loadState(state);
    const io2 = r2.io;
    expect(io2.in8(SCR)).toBe(0x42);
    expect(io2.in8(MCR)).toBe(0x0b);
    expect(io2.in8(LCR)).toBe(0x03);
    expect(io2.in8(IER)).toBe(0x05);
    expect(io2.in8(IIR)).toBe(0xc4);
    expect(r2.irq).toBe(true);
    io2.out8(LCR, 0x83);
    expect(io2.in8(DLL)).toBe(3);
    io2.out8(LCR, 0x03);
    const rest: number[] = [];
    while (io2.in8(LSR) & LSR_DR) rest.push(io2.in8(RBR));
    expect(rest).toEqual(Array.from({ length: 19 }, (_, i) => 0x41 + i));
  });
});

describe('DebugCon (port 0xE9)', () => {
  it('passes every byte written, as written, and reads back 0xE9', () => {
    const io = new IoBus();
    const sink = new BufferSink();
    new DebugCon({ io }, sink);
    for (const b of [0x68, 0x69, 0x00, 0xff, 0x0a]) io.out8(0xe9, b);
    expect(Array.from(sink.peek())).toEqual([0x68, 0x69, 0x00, 0xff, 0x0a]);
    expect(io.in8(0xe9)).toBe(0xe9);
    // a word write delivers its low byte (the device decodes one port, as QEMU's does)
    io.out16(0xe9, 0x4241);
    expect(sink.peek()[5]).toBe(0x41);
    expect(sink.length).toBe(6);
  });
});

describe('PostCodes (ports 0x80 and 0x190)', () => {
  it('logs one byte per write, in order, from both ports', () => {
    const io = new IoBus();
    const sink = new BufferSink();
    const post = new PostCodes({ io }, sink);
    io.out8(0x80, 0x01);
    io.out8(0x190, 0x02);
    io.out8(0x80, 0x03);
    io.out16(0x80, 0x1204);
    expect(Array.from(sink.peek())).toEqual([0x01, 0x02, 0x03, 0x04]);
    expect(post.last).toBe(0x04);
    expect(post.saveState()).toEqual({ last: 4 });
    post.reset();
    expect(post.last).toBe(-1);
  });
});

describe('DebugExit (port 0xF4)', () => {
  function rig() {
    const io = new IoBus();
    const stops: StopReason[] = [];
    new DebugExit({ io, stop: (r: StopReason) => void stops.push(r) });
    return { io, stops };
  }

  it('stops the machine with (v << 1) | 1 for byte, word and dword writes', () => {
    const { io, stops } = rig();
    io.out8(0xf4, 0x10);
    io.out16(0xf4, 0x0003);
    io.out32(0xf4, 0x1234);
    expect(stops.map((s) => (s.kind === 'exit' ? s.code : -1))).toEqual([0x21, 0x07, 0x69]);
    expect(stops[2].kind === 'exit' && stops[2].message).toContain('0x00001234');
  });

  it('matches QEMU: the status is the low 8 bits of (v << 1) | 1', () => {
    expect(debugExitStatus(0)).toBe(1);
    expect(debugExitStatus(1)).toBe(3);
    expect(debugExitStatus(0x7f)).toBe(255);
    expect(debugExitStatus(0x80)).toBe(1);
    expect(debugExitStatus(0xffffffff)).toBe(255);
  });

  it('decodes ports 0xF4-0xF7 (iosize=4) and reads as 0', () => {
    const { io, stops } = rig();
    expect(io.in8(0xf4)).toBe(0);
    expect(io.in32(0xf4)).toBe(0);
    expect(io.ownerOf(0xf7)).toBe('isa-debug-exit');
    expect(io.ownerOf(0xf8)).toBeUndefined();
    io.out8(0xf5, 2);
    expect(stops).toEqual([{ kind: 'exit', code: 5, message: 'the guest wrote 0x02 to isa-debug-exit' }]);
  });
});

describe('console escape keys', () => {
  it('passes ordinary bytes and handles Ctrl-A X / H / A', () => {
    const f = new EscapeFilter();
    expect(f.feed([0x61, 0x03, 0x0d])).toEqual({ input: [0x61, 0x03, 0x0d], actions: [] });
    expect(f.feed([CTRL_A, 0x61])).toEqual({ input: [CTRL_A], actions: [] });
    expect(f.feed([CTRL_A, CTRL_A, 0x62])).toEqual({ input: [CTRL_A, 0x62], actions: [] });
    expect(f.feed([CTRL_A, 0x68])).toEqual({ input: [], actions: [{ kind: 'help' }] });
    // the escape may be split across reads
    expect(f.feed([0x7a, CTRL_A])).toEqual({ input: [0x7a], actions: [] });
    expect(f.feed([0x78, 0x79])).toEqual({ input: [], actions: [{ kind: 'quit' }] });
  });
});
