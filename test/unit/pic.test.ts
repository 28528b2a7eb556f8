/**
 * Unit tests of the 8259A pair (devices/pic.ts) on a bare I/O bus: initialisation, priorities, masking,
 * EOI variants, rotation, AEOI, cascade, ELCR level triggering, poll mode, special mask mode, spurious
 * IRQ7/IRQ15, and save/load.
 */
import { describe, it, expect, beforeEach } from 'vitest';
import { IoBus } from '../../core/iobus';
import { IrqRouter } from '../../core/irq';
import { Pic8259 } from '../../devices/pic';

class Rig {
  io = new IoBus();
  router = new IrqRouter();
  intr = false;
  edges = 0;
  pic: Pic8259;
  lines: ((l: boolean) => void)[] = [];
  constructor() {
    this.pic = new Pic8259(this, (l) => {
      this.intr = l;
      if (l) this.edges++;
    });
    this.router.attach(this.pic);
    for (let n = 0; n < 16; n++) this.lines.push(this.router.line(n));
  }
  /** the usual PC init: master at 0x08 (or base), slave at 0x70, cascade on IR2, 8086 mode */
  init(masterBase = 0x20, slaveBase = 0x28, icw4 = 0x01): void {
    const io = this.io;
    io.out8(0x20, 0x11);
    io.out8(0x21, masterBase);
    io.out8(0x21, 0x04);
    io.out8(0x21, icw4);
    io.out8(0xa0, 0x11);
    io.out8(0xa1, slaveBase);
    io.out8(0xa1, 0x02);
    io.out8(0xa1, icw4);
  }
  pulse(n: number): void {
    this.lines[n](true);
    this.lines[n](false);
  }
  eoiMaster(): void {
    this.io.out8(0x20, 0x20);
  }
  eoiSlave(): void {
    this.io.out8(0xa0, 0x20);
  }
  readIsr(port: number): number {
    this.io.out8(port, 0x0b);
    const v = this.io.in8(port);
    this.io.out8(port, 0x0a);
    return v;
  }
}

describe('Pic8259', () => {
  let r: Rig;
  let io: IoBus;
  beforeEach(() => {
    r = new Rig();
    io = r.io;
    r.init();
  });

  it('registers its ports and keeps the mask', () => {
    expect(io.ownerOf(0x20)).toBe('pic-master');
    expect(io.ownerOf(0xa1)).toBe('pic-slave');
    expect(io.ownerOf(0x4d0)).toBe('elcr');
    expect(io.in8(0x21)).toBe(0); // ICW1 clears the mask
    io.out8(0x21, 0xa5);
    io.out8(0xa1, 0x5a);
    expect(io.in8(0x21)).toBe(0xa5);
    expect(io.in8(0xa1)).toBe(0x5a);
  });

  it('delivers an edge IRQ with the ICW2 vector, sets ISR and clears IRR', () => {
    r.pulse(1);
    expect(r.intr).toBe(true);
    expect(io.in8(0x20)).toBe(0x02); // IRR
    expect(r.pic.acknowledge()).toBe(0x21);
    expect(r.intr).toBe(false);
    expect(io.in8(0x20)).toBe(0x00);
    expect(r.readIsr(0x20)).toBe(0x02);
    r.eoiMaster();
    expect(r.readIsr(0x20)).toBe(0);
  });

  it('resolves priority and nests higher-priority requests', () => {
    r.pulse(5);
    r.pulse(3);
    expect(r.pic.acknowledge()).toBe(0x23);
    // IR5 is lower than IR3 in service: held back
    expect(r.intr).toBe(false);
    r.pulse(0);
    expect(r.intr).toBe(true); // IR0 is higher: nests
    expect(r.pic.acknowledge()).toBe(0x20);
    expect(r.readIsr(0x20)).toBe(0x09);
    r.eoiMaster(); // non-specific EOI clears the highest in service (IR0)
    expect(r.readIsr(0x20)).toBe(0x08);
    expect(r.intr).toBe(false);
    r.eoiMaster();
    expect(r.intr).toBe(true);
    expect(r.pic.acknowledge()).toBe(0x25);
  });

  it('masks with OCW1 and delivers when unmasked', () => {
    io.out8(0x21, 0x01);
    r.pulse(0);
    expect(r.intr).toBe(false);
    expect(io.in8(0x20) & 1).toBe(1);
    io.out8(0x21, 0x00);
    expect(r.intr).toBe(true);
    expect(r.pic.acknowledge()).toBe(0x20);
  });

  it('supports specific EOI, rotation and set-priority', () => {
    r.pulse(4);
    r.pulse(6);
    expect(r.pic.acknowledge()).toBe(0x24);
    io.out8(0x20, 0x64); // specific EOI for IR4
    expect(r.readIsr(0x20)).toBe(0);
    expect(r.pic.acknowledge()).toBe(0x26);
    io.out8(0x20, 0xa0); // rotate on non-specific EOI: IR6 becomes lowest, IR7 highest
    expect(r.readIsr(0x20)).toBe(0);
    r.pulse(0);
    r.pulse(7);
    expect(r.pic.acknowledge()).toBe(0x27);
    io.out8(0x20, 0x67);
    expect(r.pic.acknowledge()).toBe(0x20);
    io.out8(0x20, 0x60);
    io.out8(0x20, 0xc3); // set priority: IR3 lowest, IR4 highest
    r.pulse(2);
    r.pulse(4);
    expect(r.pic.acknowledge()).toBe(0x24);
    io.out8(0x20, 0xe4); // rotate on specific EOI 4: IR4 lowest, IR5 highest
    r.pulse(5);
    expect(r.pic.acknowledge()).toBe(0x25);
  });

  it('handles automatic EOI (ICW4 bit 1) and rotation in AEOI mode', () => {
    r.init(0x20, 0x28, 0x03);
    r.pulse(3);
    r.pulse(1);
    expect(r.pic.acknowledge()).toBe(0x21);
    expect(r.readIsr(0x20)).toBe(0);
    expect(r.pic.acknowledge()).toBe(0x23);
    io.out8(0x20, 0x80); // rotate in AEOI: the serviced level becomes lowest
    r.pulse(1);
    expect(r.pic.acknowledge()).toBe(0x21);
    r.pulse(0);
    r.pulse(2 + 1);
    expect(r.pic.acknowledge()).toBe(0x23); // IR2 is now highest, then IR3
  });

  it('cascades the slave through IR2', () => {
    r.pulse(12);
    expect(r.intr).toBe(true);
    expect(io.in8(0xa0)).toBe(0x10);
    expect(r.pic.acknowledge()).toBe(0x2c);
    expect(r.readIsr(0xa0)).toBe(0x10);
    expect(r.readIsr(0x20)).toBe(0x04);
    // another slave request at lower priority waits until both EOIs
    r.pulse(14);
    expect(r.intr).toBe(false);
    r.eoiSlave();
    expect(r.intr).toBe(false); // master IR2 still in service
    r.eoiMaster();
    expect(r.intr).toBe(true);
    expect(r.pic.acknowledge()).toBe(0x2e);
    // masking IR2 on the master masks the whole slave
    r.eoiSlave();
    r.eoiMaster();
    io.out8(0x21, 0x04);
    r.pulse(8);
    expect(r.intr).toBe(false);
    io.out8(0x21, 0x00);
    expect(r.pic.acknowledge()).toBe(0x28);
  });

  it('keeps asking the master while the slave has several requests (slave AEOI)', () => {
    r.init(0x20, 0x28, 0x01);
    io.out8(0xa0, 0x11);
    io.out8(0xa1, 0x28);
    io.out8(0xa1, 0x02);
    io.out8(0xa1, 0x03); // slave in AEOI
    r.pulse(9);
    r.pulse(10);
    expect(r.pic.acknowledge()).toBe(0x29);
    r.eoiMaster();
    expect(r.intr).toBe(true);
    expect(r.pic.acknowledge()).toBe(0x2a);
  });

  it('honours the ELCR: level-triggered inputs follow the line', () => {
    expect(io.in8(0x4d0)).toBe(0);
    io.out8(0x4d0, 0xff);
    io.out8(0x4d1, 0xff);
    expect(io.in8(0x4d0)).toBe(0xf8); // IRQ 0, 1, 2 are always edge
    expect(io.in8(0x4d1)).toBe(0xde); // IRQ 8, 13 are always edge
    r.lines[11](true);
    expect(r.pic.acknowledge()).toBe(0x2b);
    r.eoiSlave();
    r.eoiMaster();
    // still asserted: asks again
    expect(r.intr).toBe(true);
    expect(r.pic.acknowledge()).toBe(0x2b);
    r.eoiSlave();
    r.eoiMaster();
    r.lines[11](false);
    expect(r.intr).toBe(false);
    expect(io.in8(0xa0)).toBe(0);
    // an edge input latches the pulse; a level input forgets it
    r.pulse(5);
    r.pulse(3);
    expect(io.in8(0x20) & 0x28).toBe(0x00);
    io.out8(0x4d0, 0x00);
    r.pulse(5);
    expect(io.in8(0x20) & 0x20).toBe(0x20);
  });

  it('gives the spurious vector IRQ7 when the request vanished before INTA', () => {
    io.out8(0x4d0, 0x20);
    r.lines[5](true);
    expect(r.intr).toBe(true);
    r.lines[5](false); // dropped before the CPU acknowledged
    expect(r.pic.acknowledge()).toBe(0x27);
    expect(r.readIsr(0x20)).toBe(0); // a spurious IRQ7 does not set ISR
  });

  it('drops the cascade request with the slave\'s: no stale IR2 request, no spurious IRQ15', () => {
    io.out8(0x4d1, 0x08); // IRQ 11 level
    r.lines[11](true);
    r.lines[11](false);
    // the master's cascade input dropped too, so this INTA is a master spurious one
    expect(r.pic.acknowledge()).toBe(0x27);
    // now a mask race: the slave asks, the master acks IR2, the slave's request vanished meanwhile
    r.lines[11](true);
    io.out8(0xa1, 0x08); // masked on the slave: its INT drops
    expect(r.intr).toBe(false);
    io.out8(0xa1, 0x00);
    expect(r.intr).toBe(true);
    expect(r.pic.acknowledge()).toBe(0x2b);
  });

  it('polls (OCW3 P): the read acts as INTA', () => {
    r.pulse(6);
    io.out8(0x20, 0x0c);
    expect(io.in8(0x20)).toBe(0x86);
    expect(r.readIsr(0x20)).toBe(0x40);
    expect(r.intr).toBe(false);
    io.out8(0x20, 0x66);
    io.out8(0x20, 0x0c);
    expect(io.in8(0x20)).toBe(0x00); // nothing pending
    // the slave polled on its own
    r.pulse(13);
    io.out8(0xa0, 0x0c);
    expect(io.in8(0xa0)).toBe(0x85);
    expect(r.readIsr(0xa0)).toBe(0x20);
  });

  it('special mask mode lets lower priorities through a masked level in service', () => {
    r.pulse(3);
    expect(r.pic.acknowledge()).toBe(0x23);
    r.pulse(5);
    expect(r.intr).toBe(false);
    io.out8(0x21, 0x08); // mask IR3 ...
    io.out8(0x20, 0x68); // ... and enter special mask mode
    expect(r.intr).toBe(true);
    expect(r.pic.acknowledge()).toBe(0x25);
    io.out8(0x20, 0x65);
    io.out8(0x20, 0x48); // leave special mask mode
    r.pulse(6);
    expect(r.intr).toBe(false); // IR3 in service blocks again
    io.out8(0x20, 0x63);
    io.out8(0x21, 0x00);
    expect(r.pic.acknowledge()).toBe(0x26);
  });

  it('single mode (ICW1.SNGL) skips ICW3 and makes IR2 an ordinary input', () => {
    io.out8(0x20, 0x13);
    io.out8(0x21, 0x40);
    io.out8(0x21, 0x01); // this is ICW4, not ICW3
    expect(io.in8(0x21)).toBe(0);
    io.out8(0x21, 0xfe);
    expect(io.in8(0x21)).toBe(0xfe);
    r.pulse(0);
    expect(r.pic.acknowledge()).toBe(0x40);
  });

  it('without ICW4 the init ends after ICW3', () => {
    io.out8(0x20, 0x10);
    io.out8(0x21, 0x50);
    io.out8(0x21, 0x04);
    io.out8(0x21, 0x3c); // OCW1
    expect(io.in8(0x21)).toBe(0x3c);
  });

  it('saves and restores its state exactly', () => {
    io.out8(0x4d1, 0x08);
    io.out8(0x21, 0x10);
    r.pulse(4);
    r.pulse(3);
    r.lines[11](true);
    const s = JSON.parse(JSON.stringify(r.pic.saveState()));
    const r2 = new Rig();
    r2.pic.loadState(s);
    expect(r2.intr).toBe(true);
    expect(r2.io.in8(0x21)).toBe(0x10);
    expect(r2.pic.acknowledge()).toBe(0x2b); // IRQ 11 via IR2 outranks IR3
    r2.io.out8(0xa1, 0x08);
    r2.io.out8(0xa0, 0x20);
    r2.io.out8(0x20, 0x20);
    expect(r2.pic.acknowledge()).toBe(0x23);
    expect(JSON.stringify(r.pic.saveState())).toBe(JSON.stringify(s));
  });

  it('reset returns to the power-on state', () => {
    r.pulse(1);
    r.pic.reset();
    expect(r.intr).toBe(false);
    expect(io.in8(0x20)).toBe(0);
    expect(io.in8(0x21)).toBe(0);
  });
});
