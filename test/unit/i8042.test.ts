/**
 * Unit tests of the 8042 keyboard controller with its PS/2 keyboard and mouse, and of port 0x92, on a bare
 * I/O bus with a stand-in A20 gate and reset callback.
 */
import { describe, it, expect, beforeEach } from 'vitest';
import { IoBus } from '../../core/iobus';
import { Memory } from '../../core/memory';
import { I8042, KEYS, STAT_OBF, STAT_AUXB, STAT_SYS, STAT_A2, STAT_INH } from '../../devices/i8042';
import { Port92 } from '../../devices/port92';

class Rig {
  io = new IoBus();
  mem = { a20Enabled: true, setA20(on: boolean) { this.a20Enabled = on; } };
  resets = 0;
  kbdRises = 0;
  mouseRises = 0;
  kbdLevel = false;
  mouseLevel = false;
  kbc: I8042;
  port92: Port92;
  constructor() {
    this.kbc = new I8042(this, {
      irqKbd: (l) => {
        if (l && !this.kbdLevel) this.kbdRises++;
        this.kbdLevel = l;
      },
      irqMouse: (l) => {
        if (l && !this.mouseLevel) this.mouseRises++;
        this.mouseLevel = l;
      },
      onReset: () => this.resets++,
    });
    this.port92 = new Port92(this, () => this.resets++);
  }
  status(): number {
    return this.io.in8(0x64);
  }
  cmd(c: number, data?: number): void {
    this.io.out8(0x64, c);
    if (data !== undefined) this.io.out8(0x60, data);
  }
  send(...bytes: number[]): void {
    for (const b of bytes) this.io.out8(0x60, b);
  }
  mouse(...bytes: number[]): void {
    for (const b of bytes) this.cmd(0xd4, b);
  }
  /** reads every byte available */
  drain(): number[] {
    const out: number[] = [];
    while (this.status() & STAT_OBF) out.push(this.io.in8(0x60));
    return out;
  }
  setCommandByte(v: number): void {
    this.cmd(0x60, v);
  }
}

describe('i8042 controller', () => {
  let r: Rig;
  beforeEach(() => {
    r = new Rig();
  });

  it('passes its self-test and interface tests', () => {
    expect(r.status()).toBe(STAT_INH | STAT_SYS);
    r.cmd(0xaa);
    expect(r.status()).toBe(STAT_INH | STAT_SYS | STAT_A2 | STAT_OBF);
    expect(r.kbdLevel).toBe(true);
    expect(r.io.in8(0x60)).toBe(0x55);
    expect(r.kbdLevel).toBe(false);
    expect(r.status() & STAT_OBF).toBe(0);
    r.cmd(0xab);
    expect(r.drain()).toEqual([0x00]);
    r.cmd(0xa9);
    expect(r.drain()).toEqual([0x00]);
    expect(r.io.ownerOf(0x60)).toBe('i8042-data');
    expect(r.io.ownerOf(0x64)).toBe('i8042-cmd');
  });

  it('reads and writes the command byte and controller RAM', () => {
    r.cmd(0x20);
    expect(r.drain()).toEqual([0x47]);
    r.setCommandByte(0x03);
    expect(r.status() & STAT_SYS).toBe(0);
    expect(r.status() & STAT_A2).toBe(0); // the last write went to the data port
    r.cmd(0x20);
    expect(r.drain()).toEqual([0x03]);
    r.cmd(0x65, 0x99);
    r.cmd(0x25);
    expect(r.drain()).toEqual([0x99]);
    r.cmd(0xad);
    r.cmd(0xa7);
    r.cmd(0x20);
    expect(r.drain()).toEqual([0x33]);
    r.cmd(0xae);
    r.cmd(0xa8);
    r.cmd(0x20);
    expect(r.drain()).toEqual([0x03]);
  });

  it('holds keyboard bytes while the keyboard port is disabled', () => {
    r.setCommandByte(0x01);
    r.cmd(0xad);
    r.kbc.keyDown('KeyA');
    expect(r.status() & STAT_OBF).toBe(0);
    r.cmd(0xae);
    expect(r.drain()).toEqual([0x1c]);
    // a byte sent to the keyboard re-enables its port
    r.cmd(0xad);
    r.send(0xee);
    expect(r.drain()).toEqual([0xee]);
    r.cmd(0x20);
    expect(r.drain()).toEqual([0x01]);
  });

  it('passes 0xD2/0xD3 bytes as keyboard / mouse data', () => {
    r.cmd(0xd2, 0x42);
    expect(r.status() & (STAT_OBF | STAT_AUXB)).toBe(STAT_OBF);
    expect(r.kbdLevel).toBe(true);
    expect(r.drain()).toEqual([0x42]);
    r.cmd(0xd3, 0x43);
    expect(r.status() & (STAT_OBF | STAT_AUXB)).toBe(STAT_OBF | STAT_AUXB);
    expect(r.mouseLevel).toBe(true);
    expect(r.kbdLevel).toBe(false);
    expect(r.drain()).toEqual([0x43]);
    expect(r.mouseLevel).toBe(false);
  });

  it('drives A20 from the output port and 0xDD/0xDF', () => {
    r.cmd(0xd0);
    expect(r.drain()[0] & 0x03).toBe(0x03);
    r.cmd(0xd1, 0xdd);
    expect(r.mem.a20Enabled).toBe(false);
    r.cmd(0xd0);
    expect(r.drain()[0] & 0x03).toBe(0x01);
    r.cmd(0xd1, 0xdf);
    expect(r.mem.a20Enabled).toBe(true);
    r.cmd(0xdd);
    expect(r.mem.a20Enabled).toBe(false);
    r.cmd(0xdf);
    expect(r.mem.a20Enabled).toBe(true);
    expect(r.resets).toBe(0);
  });

  it('resets the machine through 0xFE and through output port bit 0', () => {
    r.cmd(0xff); // pulses nothing
    expect(r.resets).toBe(0);
    r.cmd(0xfe);
    expect(r.resets).toBe(1);
    r.cmd(0xd1, 0xde);
    expect(r.resets).toBe(2);
  });

  it('works with the real Memory as the A20 gate', () => {
    const io = new IoBus();
    const mem = new Memory(2 << 20);
    new I8042({ io, mem });
    new Port92({ io, mem }, () => {});
    io.out8(0x64, 0xd1);
    io.out8(0x60, 0xdd);
    expect(mem.a20Enabled).toBe(false);
    expect(io.in8(0x92) & 2).toBe(0);
    io.out8(0x92, 0x02);
    expect(mem.a20Enabled).toBe(true);
  });
});

describe('port 0x92', () => {
  it('gates A20 with bit 1 and resets with bit 0', () => {
    const r = new Rig();
    r.io.out8(0x92, 0x00);
    expect(r.mem.a20Enabled).toBe(false);
    expect(r.io.in8(0x92)).toBe(0x00);
    r.io.out8(0x92, 0x02);
    expect(r.mem.a20Enabled).toBe(true);
    expect(r.io.in8(0x92)).toBe(0x02);
    expect(r.resets).toBe(0);
    r.io.out8(0x92, 0x03);
    expect(r.resets).toBe(1);
    expect(r.io.in8(0x92)).toBe(0x03);
    r.io.out8(0x92, 0x03); // no new edge
    expect(r.resets).toBe(1);
    r.port92.reset();
    expect(r.io.in8(0x92)).toBe(0x02);
    // A20 changed through the 8042 reads back here
    r.cmd(0xdd);
    expect(r.io.in8(0x92)).toBe(0x00);
    const s = JSON.parse(JSON.stringify(r.port92.saveState()));
    r.io.out8(0x92, 0xc0);
    r.port92.loadState(s);
    expect(r.io.in8(0x92)).toBe(0x00);
  });
});

describe('PS/2 keyboard', () => {
  let r: Rig;
  beforeEach(() => {
    r = new Rig();
  });

  it('answers reset, echo, identify, LEDs, typematic and resend', () => {
    r.setCommandByte(0x01); // no translation
    r.send(0xff);
    expect(r.drain()).toEqual([0xfa, 0xaa]);
    r.send(0xee);
    expect(r.drain()).toEqual([0xee]);
    r.send(0xf2);
    expect(r.drain()).toEqual([0xfa, 0xab, 0x83]);
    r.send(0xed, 0x05);
    expect(r.drain()).toEqual([0xfa, 0xfa]);
    expect(r.kbc.leds).toBe(5);
    r.send(0xf3, 0x20);
    expect(r.drain()).toEqual([0xfa, 0xfa]);
    r.send(0xfe);
    expect(r.drain()).toEqual([0xfa]);
    r.send(0xab);
    expect(r.drain()).toEqual([0xfe]); // unknown command
    // disable scanning: keys are lost; enable again
    r.send(0xf5);
    r.kbc.keyDown('KeyA');
    expect(r.drain()).toEqual([0xfa]);
    r.send(0xf4);
    r.kbc.keyDown('KeyA');
    expect(r.drain()).toEqual([0xfa, 0x1c]);
    // defaults: LEDs off
    r.send(0xf6);
    expect(r.drain()).toEqual([0xfa]);
    expect(r.kbc.leds).toBe(0);
  });

  it('reports its ID and scancode set through the translating controller', () => {
    r.send(0xf2);
    expect(r.drain()).toEqual([0xfa, 0xab, 0x41]);
    r.send(0xf0, 0x00);
    expect(r.drain()).toEqual([0xfa, 0xfa, 0x41]); // set 2, translated as 0x41
    r.setCommandByte(0x01);
    r.send(0xf0, 0x00);
    expect(r.drain()).toEqual([0xfa, 0xfa, 0x02]);
    r.send(0xf0, 0x03);
    expect(r.drain()).toEqual([0xfa, 0xfe]); // set 3 not supported
  });

  it('sends set-2 scancodes without translation', () => {
    r.setCommandByte(0x01);
    const seq = (code: string): number[] => {
      r.kbc.keyDown(code);
      const make = r.drain();
      r.kbc.keyUp(code);
      return [...make, -1, ...r.drain()];
    };
    expect(seq('KeyA')).toEqual([0x1c, -1, 0xf0, 0x1c]);
    expect(seq('Enter')).toEqual([0x5a, -1, 0xf0, 0x5a]);
    expect(seq('ArrowUp')).toEqual([0xe0, 0x75, -1, 0xe0, 0xf0, 0x75]);
    expect(seq('F7')).toEqual([0x83, -1, 0xf0, 0x83]);
    expect(seq('PrintScreen')).toEqual([0xe0, 0x12, 0xe0, 0x7c, -1, 0xe0, 0xf0, 0x7c, 0xe0, 0xf0, 0x12]);
    expect(seq('Pause')).toEqual([0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77, -1]);
    expect(r.kbc.keyDown('NoSuchKey')).toBe(false);
    expect(r.drain()).toEqual([]);
  });

  it('translates to set 1 with command byte bit 6', () => {
    const seq = (code: string): number[] => {
      r.kbc.keyDown(code);
      r.kbc.keyUp(code);
      return r.drain();
    };
    expect(seq('KeyA')).toEqual([0x1e, 0x9e]);
    expect(seq('Escape')).toEqual([0x01, 0x81]);
    expect(seq('ArrowUp')).toEqual([0xe0, 0x48, 0xe0, 0xc8]);
    expect(seq('F7')).toEqual([0x41, 0xc1]);
    expect(seq('ControlRight')).toEqual([0xe0, 0x1d, 0xe0, 0x9d]);
    expect(seq('PrintScreen')).toEqual([0xe0, 0x2a, 0xe0, 0x37, 0xe0, 0xb7, 0xe0, 0xaa]);
    expect(seq('Pause')).toEqual([0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5]);
  });

  it('gives the same bytes for every key: set 2 translated, and set 1 sent natively', () => {
    const keys = [...Object.keys(KEYS), 'PrintScreen', 'Pause'];
    const viaXlate: number[][] = [];
    for (const k of keys) {
      r.kbc.keyDown(k);
      r.kbc.keyUp(k);
      viaXlate.push(r.drain());
    }
    r.setCommandByte(0x01);
    r.send(0xf0, 0x01);
    expect(r.drain()).toEqual([0xfa, 0xfa]);
    keys.forEach((k, i) => {
      r.kbc.keyDown(k);
      r.kbc.keyUp(k);
      expect(r.drain(), k).toEqual(viaXlate[i]);
    });
    // set-2 make codes are distinct
    const s2 = Object.values(KEYS).map(([, c]) => c);
    expect(new Set(s2).size).toBe(s2.length);
  });

  it('raises IRQ 1 once per byte, only when enabled in the command byte', () => {
    r.setCommandByte(0x01);
    r.kbc.keyDown('ArrowUp');
    expect(r.kbdRises).toBe(1);
    expect(r.io.in8(0x60)).toBe(0xe0);
    expect(r.kbdRises).toBe(2); // the next byte arrives with a new edge
    expect(r.kbdLevel).toBe(true);
    expect(r.io.in8(0x60)).toBe(0x75);
    expect(r.kbdLevel).toBe(false);
    r.setCommandByte(0x00);
    r.kbc.keyDown('KeyB');
    expect(r.kbdLevel).toBe(false);
    expect(r.status() & STAT_OBF).toBe(STAT_OBF);
    r.setCommandByte(0x01); // enabling the interrupt with a byte waiting raises it
    expect(r.kbdLevel).toBe(true);
    expect(r.drain()).toEqual([0x32]);
    expect(r.mouseRises).toBe(0);
    // reading the empty buffer returns the last byte again
    expect(r.io.in8(0x60)).toBe(0x32);
  });
});

describe('PS/2 mouse', () => {
  let r: Rig;
  beforeEach(() => {
    r = new Rig();
    r.setCommandByte(0x03);
  });

  it('answers reset, ID, status and settings commands on the aux port', () => {
    r.mouse(0xff);
    expect(r.status() & STAT_AUXB).toBe(STAT_AUXB);
    expect(r.mouseLevel).toBe(true);
    expect(r.drain()).toEqual([0xfa, 0xaa, 0x00]);
    expect(r.mouseRises).toBe(3);
    expect(r.kbdRises).toBe(0);
    r.mouse(0xf2);
    expect(r.drain()).toEqual([0xfa, 0x00]);
    r.mouse(0xe9);
    expect(r.drain()).toEqual([0xfa, 0x00, 0x02, 100]);
    r.mouse(0xf3, 40, 0xe8, 3, 0xe7, 0xf4);
    expect(r.drain()).toEqual([0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa]);
    r.mouse(0xe9);
    expect(r.drain()).toEqual([0xfa, 0x30, 0x03, 40]);
    r.mouse(0xf6);
    r.mouse(0xe9);
    expect(r.drain()).toEqual([0xfa, 0xfa, 0x00, 0x02, 100]);
    r.mouse(0x12);
    expect(r.drain()).toEqual([0xfe]);
    // wrap (echo) mode
    r.mouse(0xee, 0x33, 0xec, 0x33);
    expect(r.drain()).toEqual([0xfa, 0x33, 0xfa, 0xfe]);
  });

  it('streams movement packets once reporting is enabled', () => {
    r.kbc.mouseMove(3, 3, 0);
    expect(r.drain()).toEqual([]);
    r.mouse(0xf4);
    expect(r.drain()).toEqual([0xfa]);
    r.kbc.mouseMove(5, -3, 1); // right and up, left button
    expect(r.drain()).toEqual([0x09, 0x05, 0x03]);
    r.kbc.mouseMove(-10, 4, 0); // left and down
    expect(r.drain()).toEqual([0x38, 0xf6, 0xfc]);
    r.kbc.mouseMove(0, 0, 0); // nothing changed: no packet
    expect(r.drain()).toEqual([]);
    r.kbc.mouseMove(0, 0, 6); // right + middle pressed
    expect(r.drain()).toEqual([0x0e, 0x00, 0x00]);
    r.kbc.mouseMove(600, 0, 0); // split rather than overflow
    expect(r.drain()).toEqual([0x08, 0xff, 0x00, 0x08, 0xff, 0x00, 0x08, 90, 0x00]);
    r.mouse(0xe9);
    expect(r.drain()).toEqual([0xfa, 0x20, 0x02, 100]);
    // scaling 2:1
    r.mouse(0xe7);
    r.drain();
    r.kbc.mouseMove(4, 0, 0);
    expect(r.drain()).toEqual([0x08, 6, 0]);
    expect(r.kbdRises).toBe(0);
  });

  it('becomes an IntelliMouse after the 200/100/80 knock and an Explorer after 200/200/80', () => {
    r.mouse(0xf3, 200, 0xf3, 100, 0xf3, 80, 0xf2);
    expect(r.drain().slice(-2)).toEqual([0xfa, 0x03]);
    r.mouse(0xf4);
    r.drain();
    r.kbc.mouseMove(1, 0, 0, 2);
    expect(r.drain()).toEqual([0x08, 0x01, 0x00, 0x02]);
    r.kbc.mouseMove(0, 0, 0, -1);
    expect(r.drain()).toEqual([0x08, 0x00, 0x00, 0xff]);
    r.mouse(0xf3, 200, 0xf3, 200, 0xf3, 80, 0xf2);
    expect(r.drain().slice(-2)).toEqual([0xfa, 0x04]);
    r.kbc.mouseMove(0, 0, 8, 1);
    expect(r.drain()).toEqual([0x08, 0x00, 0x00, 0x11]);
    r.mouse(0xff);
    r.mouse(0xf2);
    expect(r.drain()).toEqual([0xfa, 0xaa, 0x00, 0xfa, 0x00]);
  });

  it('answers read-data in remote mode', () => {
    r.mouse(0xf0);
    r.kbc.mouseMove(7, -2, 2);
    expect(r.drain()).toEqual([0xfa]);
    r.mouse(0xeb);
    expect(r.drain()).toEqual([0xfa, 0x0a, 0x07, 0x02]);
    r.mouse(0xeb);
    expect(r.drain()).toEqual([0xfa, 0x0a, 0x00, 0x00]);
  });

  it('raises IRQ 12 only with command byte bit 1, and holds data while the aux port is disabled', () => {
    r.mouse(0xf4);
    r.drain();
    r.mouseRises = 0;
    r.setCommandByte(0x01);
    r.kbc.mouseMove(1, 1, 0);
    expect(r.mouseLevel).toBe(false);
    expect(r.status() & (STAT_OBF | STAT_AUXB)).toBe(STAT_OBF | STAT_AUXB);
    expect(r.drain()).toEqual([0x28, 0x01, 0xff]);
    r.setCommandByte(0x23); // aux disabled
    r.kbc.mouseMove(1, 0, 0);
    expect(r.status() & STAT_OBF).toBe(0);
    r.cmd(0xa8);
    expect(r.mouseLevel).toBe(true);
    expect(r.drain()).toEqual([0x08, 0x01, 0x00]);
    expect(r.mouseRises).toBe(3);
  });
});

describe('i8042 state', () => {
  it('round-trips through saveState/loadState mid-stream', () => {
    const a = new Rig();
    a.mouse(0xf3, 200, 0xf3, 100, 0xf3, 80, 0xf4);
    a.drain();
    a.kbc.keyDown('Delete');
    a.kbc.keyUp('Delete');
    a.kbc.mouseMove(-3, 9, 1, 1);
    a.send(0xed); // LED command waiting for its parameter
    a.io.in8(0x60);
    a.cmd(0xd4); // controller waiting for a mouse byte
    const snap = JSON.parse(JSON.stringify(a.kbc.saveState()));
    const b = new Rig();
    b.kbc.loadState(snap);
    expect(b.kbdLevel).toBe(a.kbdLevel);
    expect(b.mouseLevel).toBe(a.mouseLevel);
    expect(b.status()).toBe(a.status());
    for (const rig of [a, b]) {
      rig.send(0xf2);
      rig.send(0x02);
      rig.kbc.mouseMove(1, 0, 0);
    }
    const da = a.drain();
    expect(b.drain()).toEqual(da);
    expect(da.length).toBeGreaterThan(12);
    expect(b.kbc.leds).toBe(2);
    expect(b.kbc.saveState()).toEqual(a.kbc.saveState());
  });

  it('reset() restores the power-on state', () => {
    const r = new Rig();
    r.setCommandByte(0x00);
    r.kbc.keyDown('KeyA');
    r.kbc.reset();
    expect(r.status()).toBe(STAT_INH | STAT_SYS);
    expect(r.kbc.commandByte).toBe(0x47);
    expect(r.drain()).toEqual([]);
  });
});
