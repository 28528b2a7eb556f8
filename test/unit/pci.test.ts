/**
 * PCI bus: configuration mechanism #1 through the I/O ports, BAR sizing/mapping, command-register decode
 * enables, i440FX PAM shadow control, PIIX3 PIRQ routing to the ISA IRQs and IOAPIC inputs 16–19, and
 * the 0xCF9 reset control. A real IoBus, Memory and IrqRouter; no CPU.
 */
import { describe, it, expect, beforeEach } from 'vitest';
import { IoBus } from '../../core/iobus';
import { Memory } from '../../core/memory';
import { IrqRouter } from '../../core/irq';
import {
  PciDevice,
  createPciHost,
  devfn,
  pirqOf,
  assignPciIrqsLikeSeaBios,
  PCI_COMMAND,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_COMMAND_INTX_DISABLE,
  PCI_INTERRUPT_LINE,
  type PciBus,
  type I440fxHostBridge,
  type Piix3IsaBridge,
} from '../../devices/pci';

class Rig {
  io = new IoBus();
  mem = new Memory(2 * 1024 * 1024);
  router = new IrqRouter();
  bus: PciBus;
  host: I440fxHostBridge;
  isa: Piix3IsaBridge;
  resets: string[] = [];
  constructor() {
    const h = createPciHost(this, this.router);
    this.bus = h.bus;
    this.host = h.hostBridge;
    this.isa = h.isa;
    this.bus.onReset = (m) => this.resets.push(m);
  }
  addr(df: number, reg: number): void {
    this.io.out32(0xcf8, (0x80000000 | (df << 8) | (reg & 0xfc)) >>> 0);
  }
  read32(df: number, reg: number): number {
    this.addr(df, reg);
    return this.io.in32(0xcfc) >>> 0;
  }
  read16(df: number, reg: number): number {
    this.addr(df, reg);
    return this.io.in16(0xcfc + (reg & 2));
  }
  read8(df: number, reg: number): number {
    this.addr(df, reg);
    return this.io.in8(0xcfc + (reg & 3));
  }
  write32(df: number, reg: number, v: number): void {
    this.addr(df, reg);
    this.io.out32(0xcfc, v);
  }
  write16(df: number, reg: number, v: number): void {
    this.addr(df, reg);
    this.io.out16(0xcfc + (reg & 2), v);
  }
  write8(df: number, reg: number, v: number): void {
    this.addr(df, reg);
    this.io.out8(0xcfc + (reg & 3), v);
  }
}

/** a test function with one I/O BAR (16 bytes) and one memory BAR (8 KiB) */
class TestDev extends PciDevice {
  ioLog: [number, number][] = [];
  mapped: [number, number][] = [];
  regs = new Uint8Array(8192);
  constructor() {
    super({
      name: 'testdev',
      vendorId: 0x1234,
      deviceId: 0x5678,
      classCode: 0x020000,
      revision: 7,
      interruptPin: 1,
      bars: [
        {
          size: 16,
          kind: 'io',
          handler: {
            read8: (o) => 0xa0 + o,
            write8: (o, v) => this.ioLog.push([o, v]),
          },
        },
        null,
        {
          size: 8192,
          kind: 'mem',
          handler: {
            read8: (o) => this.regs[o],
            write8: (o, v) => {
              this.regs[o] = v;
            },
          },
        },
      ],
    });
  }
  override barMapped(i: number, base: number): void {
    this.mapped.push([i, base]);
  }
}

describe('PCI configuration mechanism #1', () => {
  let r: Rig;
  beforeEach(() => {
    r = new Rig();
  });

  it('reads the host bridge and ISA bridge IDs with dword, word and byte accesses', () => {
    expect(r.read32(0, 0)).toBe(0x12378086);
    expect(r.read16(0, 2)).toBe(0x1237);
    expect(r.read8(0, 3)).toBe(0x12);
    expect(r.read8(0, 1)).toBe(0x80);
    expect(r.read32(devfn(1), 0)).toBe(0x70008086);
    // class codes: host bridge 06 00 00, ISA bridge 06 01 00
    expect(r.read32(0, 8) >>> 8).toBe(0x060000);
    expect(r.read32(devfn(1), 8) >>> 8).toBe(0x060100);
    // QEMU subsystem IDs (SeaBIOS checks them)
    expect(r.read32(0, 0x2c)).toBe(0x11001af4);
  });

  it('latches the address register as written (bits 1:0 zero) and ignores data accesses without the enable bit', () => {
    r.io.out32(0xcf8, 0x80000813);
    expect(r.io.in32(0xcf8) >>> 0).toBe(0x80000810);
    r.io.out32(0xcf8, 0x00000000);
    expect(r.io.in32(0xcfc) >>> 0).toBe(0xffffffff);
  });

  it('returns all ones for absent functions and other buses', () => {
    expect(r.read32(devfn(5), 0)).toBe(0xffffffff);
    expect(r.read16(devfn(5), 0)).toBe(0xffff);
    expect(r.read8(devfn(5), 0)).toBe(0xff);
    r.io.out32(0xcf8, 0x80010000); // bus 1
    expect(r.io.in32(0xcfc) >>> 0).toBe(0xffffffff);
  });

  it('reports the multi-function bit on function 0 once a second function shares the slot', () => {
    expect(r.read8(devfn(1), 0x0e)).toBe(0x00);
    r.bus.add(new PciDevice({ name: 'fn3', vendorId: 0x8086, deviceId: 0x7113, classCode: 0x068000 }), devfn(1, 3));
    expect(r.read8(devfn(1), 0x0e)).toBe(0x80);
    expect(r.read8(devfn(1, 3), 0x0e)).toBe(0x00);
  });

  it('rejects two functions at the same address', () => {
    expect(() => r.bus.add(new TestDev(), devfn(0))).toThrow(/taken/);
  });

  it('writes only writable bits: IDs are read-only, the interrupt line is writable', () => {
    const d = r.bus.add(new TestDev(), devfn(3));
    r.write32(devfn(3), 0, 0xdeadbeef);
    expect(r.read32(devfn(3), 0)).toBe(0x56781234);
    r.write8(devfn(3), PCI_INTERRUPT_LINE, 11);
    expect(r.read8(devfn(3), PCI_INTERRUPT_LINE)).toBe(11);
    expect(r.read8(devfn(3), 0x3d)).toBe(1);
    expect(d.config[PCI_INTERRUPT_LINE]).toBe(11);
  });
});

describe('BARs', () => {
  let r: Rig;
  let d: TestDev;
  const DF = devfn(3);
  beforeEach(() => {
    r = new Rig();
    d = r.bus.add(new TestDev(), DF);
  });

  it('sizes BARs: all ones read back as the size mask with the type bits', () => {
    expect(r.read32(DF, 0x10)).toBe(0x00000001);
    r.write32(DF, 0x10, 0xffffffff);
    expect(r.read32(DF, 0x10)).toBe(0xfffffff1);
    r.write32(DF, 0x18, 0xffffffff);
    expect(r.read32(DF, 0x18)).toBe(0xffffe000);
    // unused BAR stays zero
    r.write32(DF, 0x14, 0xffffffff);
    expect(r.read32(DF, 0x14)).toBe(0);
    // the expansion ROM BAR is not implemented
    r.write32(DF, 0x30, 0xffffffff);
    expect(r.read32(DF, 0x30)).toBe(0);
  });

  it('maps an I/O BAR only while the command register enables I/O, and moves it', () => {
    r.write32(DF, 0x10, 0xc000);
    expect(r.io.in8(0xc003)).toBe(0xff);
    r.write16(DF, PCI_COMMAND, PCI_COMMAND_IO);
    expect(r.io.in8(0xc003)).toBe(0xa3);
    r.io.out8(0xc00f, 0x5a);
    expect(d.ioLog).toEqual([[15, 0x5a]]);
    expect(r.io.ownerOf(0xc000)).toBe('testdev BAR0');
    // move: old range released, new one decoded
    r.write32(DF, 0x10, 0xc100);
    expect(r.io.ownerOf(0xc000)).toBeUndefined();
    expect(r.io.in8(0xc101)).toBe(0xa1);
    r.write16(DF, PCI_COMMAND, 0);
    expect(r.io.ownerOf(0xc100)).toBeUndefined();
    expect(d.mapped).toEqual([
      [0, 0xc000],
      [0, -1],
      [0, 0xc100],
      [0, -1],
    ]);
  });

  it('maps a memory BAR as MMIO and unmaps it when memory decode is turned off', () => {
    r.write32(DF, 0x18, 0xfebf0000);
    r.write16(DF, PCI_COMMAND, PCI_COMMAND_MEMORY);
    r.mem.write8(0xfebf1234, 0x77);
    expect(d.regs[0x1234]).toBe(0x77);
    expect(r.mem.read8(0xfebf1234)).toBe(0x77);
    r.write16(DF, PCI_COMMAND, 0);
    expect(r.mem.read8(0xfebf1234)).toBe(0xff);
  });

  it('leaves a BAR unmapped while its range is all ones (sizing with decode on) or overlaps another MMIO range', () => {
    r.write16(DF, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    r.write32(DF, 0x10, 0xffffffff); // I/O base 0xFFF0 with upper bits set: beyond 64 KiB
    expect(d.mappedAt[0]).toBe(-1);
    r.mem.mapMmio(0xfe000000, 0x1000, { name: 'other', read8: () => 0x11, write8: () => {} });
    r.write32(DF, 0x18, 0xfe000000);
    expect(d.mappedAt[2]).toBe(-1);
    expect(r.mem.read8(0xfe000000)).toBe(0x11);
    r.write32(DF, 0x18, 0xfe002000);
    expect(d.mappedAt[2]).toBe(0xfe002000);
  });

  it('restores BAR mappings from saved state and unmaps on reset', () => {
    r.write32(DF, 0x10, 0xd000);
    r.write16(DF, PCI_COMMAND, PCI_COMMAND_IO);
    const saved = JSON.parse(JSON.stringify(d.saveState()));
    const r2 = new Rig();
    const d2 = r2.bus.add(new TestDev(), DF);
    d2.loadState(saved);
    expect(r2.io.in8(0xd002)).toBe(0xa2);
    d2.reset();
    expect(r2.io.ownerOf(0xd000)).toBeUndefined();
    expect(r2.read32(DF, 0x10)).toBe(1);
  });
});

describe('i440FX PAM registers', () => {
  it('starts with 0xC0000–0xFFFFF write-protected and follows the write-enable bits per segment', () => {
    const r = new Rig();
    r.mem.mem8[0xf1000] = 0x42;
    r.mem.write8(0xf1000, 0x99);
    expect(r.mem.read8(0xf1000)).toBe(0x42);
    r.mem.write8(0xc0000, 0x99);
    expect(r.mem.read8(0xc0000)).toBe(0);
    // PAM0 high nibble = 3: F segment read/write
    r.write8(0, 0x59, 0x30);
    r.mem.write8(0xf1000, 0x99);
    expect(r.mem.read8(0xf1000)).toBe(0x99);
    // PAM1 = 0x31: C0000–C3FFF read-only, C4000–C7FFF read/write
    r.write8(0, 0x5a, 0x31);
    r.mem.write8(0xc0000, 0x55);
    r.mem.write8(0xc4000, 0x66);
    expect(r.mem.read8(0xc0000)).toBe(0);
    expect(r.mem.read8(0xc4000)).toBe(0x66);
    expect(r.host.pamWritable(0xc4000)).toBe(true);
    expect(r.host.pamWritable(0xc0000)).toBe(false);
    // PAM6 high nibble: EC000–EFFFF; a dword write covering 0x5C–0x5F (SeaBIOS writes PAM as dwords)
    r.write32(0, 0x5c, 0x33333333);
    r.mem.write8(0xef000, 0x12);
    expect(r.mem.read8(0xef000)).toBe(0x12);
    expect(r.read32(0, 0x5c)).toBe(0x33333333);
    // back to read-only: writes ignored again
    r.write8(0, 0x59, 0x10);
    r.mem.write8(0xf1000, 0x01);
    expect(r.mem.read8(0xf1000)).toBe(0x99);
    // reserved bits are not writable
    r.write8(0, 0x59, 0xff);
    expect(r.read8(0, 0x59)).toBe(0x30);
  });

  it('re-applies PAM after a reset and a state restore', () => {
    const r = new Rig();
    r.write8(0, 0x59, 0x30);
    const saved = JSON.parse(JSON.stringify(r.host.saveState()));
    r.host.reset();
    r.mem.write8(0xf0000, 0x77);
    expect(r.mem.read8(0xf0000)).toBe(0);
    r.host.loadState(saved);
    r.mem.write8(0xf0000, 0x77);
    expect(r.mem.read8(0xf0000)).toBe(0x77);
  });
});

describe('INTx routing through the PIIX3 PIRQ registers', () => {
  it('swizzles slot and pin onto PIRQA–D as the PIIX board does', () => {
    expect(pirqOf(1, 1)).toBe(0);
    expect(pirqOf(2, 1)).toBe(1);
    expect(pirqOf(3, 1)).toBe(2);
    expect(pirqOf(3, 2)).toBe(3);
    expect(pirqOf(4, 1)).toBe(3);
    expect(pirqOf(5, 1)).toBe(0);
  });

  it('drives the programmed ISA IRQ and IOAPIC input 16+n, follows reprogramming and the disable bit', () => {
    const r = new Rig();
    const d = r.bus.add(new TestDev(), devfn(3)); // INTA of slot 3 → PIRQC
    expect(r.read32(devfn(1), 0x60)).toBe(0x80808080);
    d.setIrq(true);
    expect(r.router.level(18)).toBe(true);
    for (let i = 0; i < 16; i++) expect(r.router.level(i)).toBe(false);
    r.write8(devfn(1), 0x62, 11);
    expect(r.router.level(11)).toBe(true);
    r.write8(devfn(1), 0x62, 10);
    expect(r.router.level(11)).toBe(false);
    expect(r.router.level(10)).toBe(true);
    // reserved IRQ (2) means no ISA routing
    r.write8(devfn(1), 0x62, 2);
    expect(r.router.level(10)).toBe(false);
    expect(r.router.level(2)).toBe(false);
    r.write8(devfn(1), 0x62, 0x8a);
    expect(r.router.level(10)).toBe(false);
    expect(r.router.level(18)).toBe(true);
    r.write8(devfn(1), 0x62, 10);
    expect(r.read16(DFstatus(3), 6) & 0x08).toBe(0x08);
    d.setIrq(false);
    expect(r.router.level(10)).toBe(false);
    expect(r.router.level(18)).toBe(false);
    expect(r.read16(DFstatus(3), 6) & 0x08).toBe(0);
  });

  it('wire-ORs two functions sharing a PIRQ and honours the INTx disable bit', () => {
    const r = new Rig();
    const a = r.bus.add(new TestDev(), devfn(3)); // PIRQC
    const b = r.bus.add(new TestDev(), devfn(7)); // (7+1-2)&3 = 2: PIRQC too
    r.write8(devfn(1), 0x62, 11);
    a.setIrq(true);
    b.setIrq(true);
    a.setIrq(false);
    expect(r.router.level(11)).toBe(true);
    r.write16(devfn(7), PCI_COMMAND, PCI_COMMAND_INTX_DISABLE);
    expect(r.router.level(11)).toBe(false);
    expect(r.router.level(18)).toBe(false);
    r.write16(devfn(7), PCI_COMMAND, 0);
    expect(r.router.level(11)).toBe(true);
  });

  it('two PIRQs routed to the same IRQ keep it asserted until both drop', () => {
    const r = new Rig();
    const a = r.bus.add(new TestDev(), devfn(2)); // PIRQB
    const b = r.bus.add(new TestDev(), devfn(3)); // PIRQC
    r.write8(devfn(1), 0x61, 10);
    r.write8(devfn(1), 0x62, 10);
    a.setIrq(true);
    b.setIrq(true);
    a.setIrq(false);
    expect(r.router.level(10)).toBe(true);
    b.setIrq(false);
    expect(r.router.level(10)).toBe(false);
  });

  it('assigns PIRQs and interrupt lines like SeaBIOS for BIOS-less boots', () => {
    const r = new Rig();
    r.bus.add(new TestDev(), devfn(3));
    r.bus.add(new TestDev(), devfn(4));
    expect(assignPciIrqsLikeSeaBios(r.bus, r.isa)).toEqual([10, 11]);
    expect(r.read32(devfn(1), 0x60)).toBe(0x0b0b0a0a);
    expect(r.read8(devfn(3), PCI_INTERRUPT_LINE)).toBe(11); // PIRQC
    expect(r.read8(devfn(4), PCI_INTERRUPT_LINE)).toBe(11); // PIRQD
  });
});

function DFstatus(slot: number): number {
  return devfn(slot);
}

describe('reset control register 0xCF9', () => {
  it('resets on a write with bit 2 set and reads back bit 1', () => {
    const r = new Rig();
    r.io.out8(0xcf9, 0x02);
    expect(r.resets).toEqual([]);
    expect(r.io.in8(0xcf9)).toBe(0x02);
    r.io.out8(0xcf9, 0x06);
    expect(r.resets.length).toBe(1);
  });

  it('does not disturb the address register (byte accesses to 0xCF8–0xCFB are not config cycles)', () => {
    const r = new Rig();
    r.io.out32(0xcf8, 0x80000000);
    r.io.out8(0xcf9, 0x00);
    expect(r.io.in32(0xcf8) >>> 0).toBe(0x80000000);
    expect(r.io.in8(0xcf8)).toBe(0xff);
  });
});

describe('bus state', () => {
  it('saves every function with the bus and restores mappings, PAM and routing', () => {
    const r = new Rig();
    const d = r.bus.add(new TestDev(), devfn(3));
    r.write32(devfn(3), 0x10, 0xc000);
    r.write16(devfn(3), PCI_COMMAND, PCI_COMMAND_IO);
    r.write8(0, 0x59, 0x30);
    r.write8(devfn(1), 0x62, 11);
    d.setIrq(true);
    r.io.out32(0xcf8, 0x80001800);
    const saved = JSON.parse(JSON.stringify(r.bus.saveState()));
    const r2 = new Rig();
    const d2 = r2.bus.add(new TestDev(), devfn(3));
    r2.bus.loadState(saved);
    expect(r2.io.in32(0xcf8) >>> 0).toBe(0x80001800);
    expect(r2.io.in8(0xc001)).toBe(0xa1);
    r2.mem.write8(0xf0000, 0x5a);
    expect(r2.mem.read8(0xf0000)).toBe(0x5a);
    expect(d2.irqLevel).toBe(true);
    expect(r2.router.level(11)).toBe(true);
    expect(r2.router.level(18)).toBe(true);
    r2.bus.reset();
    expect(r2.io.ownerOf(0xc000)).toBeUndefined();
    expect(r2.router.level(11)).toBe(false);
  });
});
