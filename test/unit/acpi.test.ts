/**
 * ACPI: the table bytes (signatures, lengths, checksums, field offsets, MADT entries, DSDT AML well-formed
 * with \_S5), the linker/loader script run the way SeaBIOS runs it, and the PIIX4 PM function (PM timer
 * rate and wrap on a hand-driven clock, TMR_STS/SCI, power button, S5 power-off, PMBA relocation).
 */
import { describe, it, expect, beforeEach } from 'vitest';
import { IoBus } from '../../core/iobus';
import { Memory } from '../../core/memory';
import { IrqRouter } from '../../core/irq';
import type { StopReason } from '../../core/machine';
import {
  buildAcpiTables,
  checksum,
  decodeLoader,
  linkTables,
  amlPkgLength,
  amlEisaId,
  amlName,
  ACPI_TABLES_FILE,
  ACPI_RSDP_FILE,
  type AcpiBlobs,
} from '../../core/acpi-tables';
import {
  AcpiPm,
  PIIX4_ACPI_LAYOUT,
  ACPI_PM_BASE,
  PM_TIMER_HZ,
  SLP_TYP_S5,
  pmTicksAt,
  nsOfPmTick,
  PM1_TMR_STS,
  PM1_PWRBTN_STS,
} from '../../devices/acpi';
import { createPciHost, devfn } from '../../devices/pci';

const u16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
const sig = (b: Uint8Array, o: number, n = 4) => String.fromCharCode(...b.subarray(o, o + n));

function table(blobs: AcpiBlobs, name: keyof AcpiBlobs['offsets'], data = blobs.tables): Uint8Array {
  const { offset, length } = blobs.offsets[name];
  return data.subarray(offset, offset + length);
}

describe('ACPI tables', () => {
  const blobs = buildAcpiTables({ layout: PIIX4_ACPI_LAYOUT });

  it('lays out FACS first (64-byte aligned), then DSDT, FADT, MADT, RSDT, each with its signature and length', () => {
    expect(blobs.offsets.FACS.offset).toBe(0);
    for (const s of ['FACS', 'DSDT', 'FACP', 'APIC', 'RSDT'] as const) {
      const t = table(blobs, s);
      expect(sig(t, 0)).toBe(s);
      expect(u32(t, 4)).toBe(t.length);
    }
    expect(blobs.offsets.FACS.length).toBe(64);
    expect(blobs.offsets.FACP.length).toBe(244);
  });

  it('has correct checksums on every table with a header, and on the RSDP', () => {
    for (const s of ['DSDT', 'FACP', 'APIC', 'RSDT'] as const) expect(checksum(table(blobs, s))).toBe(0);
    expect(sig(blobs.rsdp, 0, 8)).toBe('RSD PTR ');
    expect(blobs.rsdp.length).toBe(20);
    expect(blobs.rsdp[15]).toBe(0); // revision 0 (ACPI 1.0 RSDP)
    expect(checksum(blobs.rsdp)).toBe(0);
  });

  it('fills the FADT fields Linux reads', () => {
    const f = table(blobs, 'FACP');
    expect(f[8]).toBe(3); // revision
    expect(u32(f, 36)).toBe(blobs.offsets.FACS.offset); // FIRMWARE_CTRL (unlinked: offset)
    expect(u32(f, 40)).toBe(blobs.offsets.DSDT.offset);
    expect(u16(f, 46)).toBe(9); // SCI_INT
    expect(u32(f, 48)).toBe(0xb2); // SMI_CMD
    expect(f[52]).toBe(0xf1);
    expect(f[53]).toBe(0xf0);
    expect(u32(f, 56)).toBe(0x600); // PM1a_EVT_BLK
    expect(u32(f, 64)).toBe(0x604); // PM1a_CNT_BLK
    expect(u32(f, 76)).toBe(0x608); // PM_TMR_BLK
    expect(u32(f, 80)).toBe(0xafe0); // GPE0_BLK
    expect([f[88], f[89], f[90], f[91], f[92]]).toEqual([4, 2, 0, 4, 4]);
    expect(u16(f, 96)).toBeGreaterThan(100); // no C2
    expect(u16(f, 98)).toBeGreaterThan(1000); // no C3
    expect(f[108]).toBe(0x32); // century
    expect(u16(f, 109) & 3).toBe(3); // legacy devices + 8042
    const flags = u32(f, 112);
    expect(flags & (1 << 10)).not.toBe(0); // RESET_REG_SUP
    expect(flags & (1 << 4)).toBe(0); // a fixed power button exists
    expect(flags & (1 << 8)).toBe(0); // 24-bit PM timer
    // RESET_REG: system I/O, 8 bits, port 0xCF9, value 6
    expect([f[116], f[117], f[118]]).toEqual([1, 8, 0]);
    expect(u32(f, 120)).toBe(0xcf9);
    expect(f[128]).toBe(6);
  });

  it('describes the local APIC, the IOAPIC, the IRQ0→GSI2 and SCI overrides and LINT1 NMI in the MADT', () => {
    const m = table(blobs, 'APIC');
    expect(u32(m, 36)).toBe(0xfee00000);
    expect(u32(m, 40) & 1).toBe(1);
    const entries: Uint8Array[] = [];
    for (let o = 44; o < m.length; o += m[o + 1]) {
      expect(m[o + 1]).toBeGreaterThan(0);
      entries.push(m.subarray(o, o + m[o + 1]));
    }
    const lapic = entries.filter((e) => e[0] === 0);
    expect(lapic.length).toBe(1);
    expect([lapic[0][1], lapic[0][2], lapic[0][3], u32(lapic[0], 4)]).toEqual([8, 0, 0, 1]);
    const io = entries.find((e) => e[0] === 1)!;
    expect([io[1], io[2], u32(io, 4), u32(io, 8)]).toEqual([12, 0, 0xfec00000, 0]);
    const iso = entries.filter((e) => e[0] === 2).map((e) => ({ bus: e[2], src: e[3], gsi: u32(e, 4), flags: u16(e, 8) }));
    expect(iso).toContainEqual({ bus: 0, src: 0, gsi: 2, flags: 0 });
    expect(iso).toContainEqual({ bus: 0, src: 9, gsi: 9, flags: 0x0d });
    const nmi = entries.find((e) => e[0] === 4)!;
    expect([nmi[1], nmi[2], u16(nmi, 3), nmi[5]]).toEqual([6, 0xff, 5, 1]);
  });

  it('puts one MADT processor entry per CPU', () => {
    const b = buildAcpiTables({ layout: PIIX4_ACPI_LAYOUT, cpus: 2 });
    const m = table(b, 'APIC');
    let n = 0;
    for (let o = 44; o < m.length; o += m[o + 1]) if (m[o] === 0) n++;
    expect(n).toBe(2);
    expect(checksum(m)).toBe(0);
  });

  it('encodes AML package lengths, names and EISA ids as the spec says', () => {
    expect(amlPkgLength(10)).toEqual([11]);
    expect(amlPkgLength(62)).toEqual([63]);
    expect(amlPkgLength(63)).toEqual([0x41, 0x04]); // 65 = 0x41: lead 0x40|1, then 0x04
    expect(amlPkgLength(0x1000)).toEqual([0x83, 0x00, 0x01]); // 0x1003: lead 0x80 | 3, then 0x00, 0x01
    expect(amlEisaId('PNP0A03')).toEqual([0x0c, 0x41, 0xd0, 0x0a, 0x03]);
    expect(amlName('\\_SB.PCI0')).toEqual([0x5c, 0x2e, ...'_SB_PCI0'.split('').map((c) => c.charCodeAt(0))]);
    expect(amlName('_S5')).toEqual([0x5f, 0x53, 0x35, 0x5f]);
  });

  it('writes a well-formed DSDT: PCI0 (PNP0A03) under \\_SB, a _PRT and \\_S5 with the PM device\'s S5 type', () => {
    const d = table(blobs, 'DSDT');
    const objects = walkAml(d, 36, d.length);
    const names = objects.map((o) => o.path);
    expect(names).toContain('\\_SB_');
    expect(names).toContain('\\_SB_/PCI0');
    expect(names).toContain('\\_SB_/PCI0/_HID');
    expect(names).toContain('\\_SB_/PCI0/_PRT');
    expect(names).toContain('\\_S5_');
    const s5 = objects.find((o) => o.path === '\\_S5_')!;
    expect(s5.pkg).toEqual([SLP_TYP_S5, SLP_TYP_S5, 0, 0]);
    const hid = objects.find((o) => o.path === '\\_SB_/PCI0/_HID')!;
    expect(hid.int).toBe(0x030ad041);
    const prta = objects.find((o) => o.path === '\\_SB_/PCI0/PRTA')!;
    expect(prta.count).toBe(31 * 4);
    // _CRS: the host bridge's windows (Linux places BARs only inside them)
    const crs = objects.find((o) => o.path === '\\_SB_/PCI0/_CRS')!.buf!;
    const windows: { type: number; min: number; max: number }[] = [];
    let i = 0;
    const u16 = (o: number) => crs[o] | (crs[o + 1] << 8);
    const u32 = (o: number) => (u16(o) | (u16(o + 2) << 16)) >>> 0;
    while (crs[i] !== 0x79) {
      const tag = crs[i];
      if (tag === 0x88) windows.push({ type: crs[i + 3], min: u16(i + 8), max: u16(i + 10) });
      else if (tag === 0x87) windows.push({ type: crs[i + 3], min: u32(i + 10), max: u32(i + 14) });
      else if (tag !== 0x47) throw new Error(`unexpected resource tag 0x${tag.toString(16)}`);
      i += tag & 0x80 ? 3 + u16(i + 1) : 1 + (tag & 7);
    }
    expect(i).toBe(crs.length - 2);
    expect(windows).toEqual([
      { type: 2, min: 0, max: 0xff },
      { type: 1, min: 0, max: 0xcf7 },
      { type: 1, min: 0xd00, max: 0xffff },
      { type: 0, min: 0xa0000, max: 0xbffff },
      { type: 0, min: 0x80000000, max: 0xfebfffff },
    ]);
  });

  it('links the way SeaBIOS does: pointers become addresses and checksums stay correct', () => {
    const script = decodeLoader(blobs.loader);
    expect(blobs.loader.length % 128).toBe(0);
    expect(script[0]).toEqual({ cmd: 'allocate', file: ACPI_TABLES_FILE, align: 64, zone: 'high' });
    expect(script).toContainEqual({ cmd: 'allocate', file: ACPI_RSDP_FILE, align: 16, zone: 'fseg' });
    // every file is allocated before a command refers to it
    const seen = new Set<string>();
    for (const c of script) {
      if (c.cmd === 'allocate') seen.add(c.file);
      else if (c.cmd === 'pointer') expect(seen.has(c.dest) && seen.has(c.src)).toBe(true);
      else expect(seen.has(c.file)).toBe(true);
    }
    const base = 0x07fe0000;
    const linked = linkTables(blobs, base, 0xf5a10);
    expect(u32(linked.rsdp, 16)).toBe(base + blobs.offsets.RSDT.offset);
    expect(checksum(linked.rsdp)).toBe(0);
    const rsdt = table(blobs, 'RSDT', linked.tables);
    expect(u32(rsdt, 36)).toBe(base + blobs.offsets.FACP.offset);
    expect(u32(rsdt, 40)).toBe(base + blobs.offsets.APIC.offset);
    const fadt = table(blobs, 'FACP', linked.tables);
    expect(u32(fadt, 36)).toBe(base + blobs.offsets.FACS.offset);
    expect(u32(fadt, 40)).toBe(base + blobs.offsets.DSDT.offset);
    for (const s of ['DSDT', 'FACP', 'APIC', 'RSDT'] as const) expect(checksum(table(blobs, s, linked.tables))).toBe(0);
    // the unlinked blobs are untouched
    expect(u32(blobs.rsdp, 16)).toBe(blobs.offsets.RSDT.offset);
  });
});

interface AmlObj {
  path: string;
  int?: number;
  pkg?: number[];
  count?: number;
  buf?: number[];
}

/**
 * A small AML walker for the subset the builder emits (Scope, Device, Name, Method, If, Return, Store,
 * Package, integers): checks that every PkgLength stays inside its parent and collects named objects.
 */
function walkAml(b: Uint8Array, start: number, end: number, scope = '', out: AmlObj[] = []): AmlObj[] {
  let p = start;
  const pkgLen = (): number => {
    const lead = b[p];
    const n = lead >> 6;
    let len = n === 0 ? lead & 0x3f : lead & 0x0f;
    for (let i = 1; i <= n; i++) len |= b[p + i] << (4 + 8 * (i - 1));
    const s = p;
    p += n + 1;
    const e = s + len;
    if (e > end) throw new Error(`PkgLength at ${s} runs past its parent (${e} > ${end})`);
    return e;
  };
  const name = (): string => {
    let s = '';
    if (b[p] === 0x5c) {
      s = '\\';
      p++;
    }
    while (b[p] === 0x5e) {
      s += '^';
      p++;
    }
    let segs = 1;
    if (b[p] === 0x2e) {
      segs = 2;
      p++;
    } else if (b[p] === 0x2f) {
      segs = b[p + 1];
      p += 2;
    } else if (b[p] === 0) {
      p++;
      return s;
    }
    const parts: string[] = [];
    for (let i = 0; i < segs; i++) {
      parts.push(String.fromCharCode(...b.subarray(p, p + 4)));
      p += 4;
    }
    return s + parts.join('/');
  };
  const full = (n: string) => (n.startsWith('\\') ? n : scope ? `${scope}/${n}` : n);
  const int = (): number | undefined => {
    const op = b[p++];
    if (op === 0x00) return 0;
    if (op === 0x01) return 1;
    if (op === 0x0a) return b[p++];
    if (op === 0x0b) {
      p += 2;
      return u16(b, p - 2);
    }
    if (op === 0x0c) {
      p += 4;
      return u32(b, p - 4);
    }
    p--;
    return undefined;
  };
  const pkg = (): { count: number; items: number[] } => {
    p++; // 0x12
    const e = pkgLen();
    const count = b[p++];
    const items: number[] = [];
    while (p < e) {
      if (b[p] === 0x12) {
        pkg();
        items.push(NaN);
        continue;
      }
      const v = int();
      if (v === undefined) throw new Error(`unexpected package element 0x${b[p].toString(16)} at ${p}`);
      items.push(v);
    }
    if (items.length !== count) throw new Error(`package count ${count} but ${items.length} elements`);
    return { count, items };
  };
  const termArg = (): void => {
    if (b[p] === 0x12) pkg();
    else if (b[p] >= 0x68 && b[p] <= 0x6e) p++;
    else if (int() === undefined) name();
  };
  while (p < end) {
    const op = b[p];
    if (op === 0x10) {
      p++;
      const e = pkgLen();
      const n = full(name());
      out.push({ path: n });
      walkAml(b, p, e, n, out);
      p = e;
    } else if (op === 0x5b && b[p + 1] === 0x82) {
      p += 2;
      const e = pkgLen();
      const n = full(name());
      out.push({ path: n });
      walkAml(b, p, e, n, out);
      p = e;
    } else if (op === 0x14) {
      p++;
      const e = pkgLen();
      const n = full(name());
      p++; // flags
      out.push({ path: n });
      walkAml(b, p, e, n, out);
      p = e;
    } else if (op === 0xa0) {
      p++;
      const e = pkgLen();
      termArg();
      walkAml(b, p, e, scope, out);
      p = e;
    } else if (op === 0xa4) {
      p++;
      termArg();
    } else if (op === 0x70) {
      p++;
      termArg();
      termArg();
    } else if (op === 0x08) {
      p++;
      const n = full(name());
      if (b[p] === 0x12) {
        const { count, items } = pkg();
        out.push({ path: n, pkg: items, count });
      } else if (b[p] === 0x11) {
        p++;
        const e = pkgLen();
        const size = int();
        if (size === undefined || p + size > e) throw new Error('bad Buffer');
        out.push({ path: n, buf: [...b.subarray(p, p + size)] });
        p = e;
      } else {
        const v = int();
        if (v === undefined) throw new Error(`unexpected Name value 0x${b[p].toString(16)}`);
        out.push({ path: n, int: v });
      }
    } else {
      throw new Error(`unexpected AML opcode 0x${op.toString(16)} at ${p}`);
    }
  }
  if (p !== end) throw new Error(`AML object overran its scope (${p} vs ${end})`);
  return out;
}

// ---------------------------------------------------------------------------------------------------

class FakeClock {
  t = 0;
  timers: { id: number; at: number; cb: (n: number) => void }[] = [];
  private next = 1;
  now(): number {
    return this.t;
  }
  at(deadline: number, cb: (n: number) => void): number {
    const id = this.next++;
    this.timers.push({ id, at: deadline, cb });
    return id;
  }
  cancel(id: number): void {
    this.timers = this.timers.filter((t) => t.id !== id);
  }
  /** moves time to t, firing due timers in order */
  advanceTo(t: number): void {
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const first = this.timers[0];
      if (!first || first.at > t) break;
      this.timers.shift();
      this.t = Math.max(this.t, first.at);
      first.cb(this.t);
    }
    this.t = t;
  }
}

class PmRig {
  io = new IoBus();
  mem = new Memory(1024 * 1024);
  clock = new FakeClock();
  router = new IrqRouter();
  stops: StopReason[] = [];
  sci: boolean[] = [];
  pm: AcpiPm;
  constructor() {
    this.pm = new AcpiPm({ io: this.io, clock: this.clock, stop: (r) => this.stops.push(r) }, (l) => this.sci.push(l));
  }
}

describe('PM timer arithmetic', () => {
  it('counts 3579545 ticks per second and maps ticks back to the first ns that reaches them', () => {
    expect(pmTicksAt(0)).toBe(0);
    expect(pmTicksAt(1e9)).toBe(PM_TIMER_HZ);
    expect(pmTicksAt(3600e9)).toBe(3600 * PM_TIMER_HZ);
    expect(pmTicksAt(279)).toBe(0);
    expect(pmTicksAt(280)).toBe(1); // 1 tick = 279.37 ns
    for (const tick of [1, 2, 1 << 23, (1 << 24) + 5, 123456789012]) {
      const ns = nsOfPmTick(tick);
      expect(pmTicksAt(ns)).toBe(tick);
      expect(pmTicksAt(ns - 1)).toBe(tick - 1);
    }
  });
});

describe('PIIX4 power management function', () => {
  let r: PmRig;
  beforeEach(() => {
    r = new PmRig();
    r.pm.enableAt(ACPI_PM_BASE);
  });

  it('does not decode its registers until PMBA and PMREGMISC are programmed', () => {
    const r2 = new PmRig();
    expect(r2.io.ownerOf(0x608)).toBeUndefined();
    expect(r2.pm.pmBase).toBe(-1);
    r2.pm.writeConfig(0x40, 0xb001, 4);
    expect(r2.io.ownerOf(0xb008)).toBeUndefined();
    r2.pm.writeConfig(0x80, 1, 1);
    expect(r2.io.ownerOf(0xb008)).toBe('acpi-pm');
    expect(r2.pm.readConfig(0x40, 4)).toBe(0xb001);
    // relocation
    r2.pm.writeConfig(0x40, 0x601, 4);
    expect(r2.io.ownerOf(0xb008)).toBeUndefined();
    expect(r2.io.ownerOf(0x608)).toBe('acpi-pm');
  });

  it('is 8086:7113 at 00:01.3 beside the PIIX3, with SMM marked initialised and SCI line 9', () => {
    const io = new IoBus();
    const mem = new Memory(1024 * 1024);
    const { bus } = createPciHost({ io, mem }, new IrqRouter());
    const pm = bus.add(new AcpiPm({ io, clock: new FakeClock(), stop: () => {} }, null), devfn(1, 3));
    expect(bus.configRead(devfn(1, 3), 0, 4)).toBe(0x71138086);
    expect(bus.configRead(devfn(1, 3), 0x5b, 1)).toBe(0x02);
    expect(bus.configRead(devfn(1, 0), 0x0e, 1) & 0x80).toBe(0x80);
    pm.enableAt();
    expect(bus.configRead(devfn(1, 3), 0x3c, 1)).toBe(9);
    expect(io.ownerOf(0x600)).toBe('acpi-pm');
  });

  it('runs the PM timer at 3.579545 MHz from the clock and wraps at 24 bits', () => {
    expect(r.io.in32(0x608)).toBe(0);
    r.clock.advanceTo(1e9);
    expect(r.io.in32(0x608)).toBe(PM_TIMER_HZ);
    r.clock.advanceTo(2e9);
    expect(r.io.in32(0x608)).toBe(2 * PM_TIMER_HZ);
    r.clock.advanceTo(nsOfPmTick((1 << 24) + 5));
    expect(r.io.in32(0x608)).toBe(5);
    // byte reads see the same counter
    const v = r.io.in32(0x608);
    expect(r.io.in8(0x608) | (r.io.in8(0x609) << 8) | (r.io.in8(0x60a) << 16)).toBe(v);
    expect(r.io.in8(0x60b)).toBe(0);
  });

  it('sets TMR_STS when bit 23 toggles, clears it on a write of 1, and raises the SCI when enabled', () => {
    expect(r.io.in16(0x600) & PM1_TMR_STS).toBe(0);
    r.io.out16(0x602, 0x0001); // TMR_EN
    r.io.out8(0xb2, 0xf1); // ACPI enable → SCI_EN
    expect(r.io.in16(0x604) & 1).toBe(1);
    const toggle = nsOfPmTick(1 << 23);
    r.clock.advanceTo(toggle - 1);
    expect(r.pm.sciAsserted).toBe(false);
    r.clock.advanceTo(toggle);
    expect(r.io.in16(0x600) & PM1_TMR_STS).toBe(PM1_TMR_STS);
    expect(r.pm.sciAsserted).toBe(true);
    expect(r.sci).toEqual([true]);
    r.io.out16(0x600, PM1_TMR_STS);
    expect(r.io.in16(0x600) & PM1_TMR_STS).toBe(0);
    expect(r.sci).toEqual([true, false]);
    // next toggle (bit 23 falls at 2^24 ticks) raises it again
    r.clock.advanceTo(nsOfPmTick(1 << 24));
    expect(r.sci).toEqual([true, false, true]);
  });

  it('keeps the SCI low while SCI_EN is clear, and counts TMR_STS without TMR_EN', () => {
    r.io.out16(0x602, 0x0001);
    r.clock.advanceTo(nsOfPmTick(1 << 23));
    expect(r.io.in16(0x600) & PM1_TMR_STS).toBe(PM1_TMR_STS);
    expect(r.sci).toEqual([]);
    r.io.out8(0xb2, 0xf1);
    expect(r.sci).toEqual([true]);
    r.io.out8(0xb2, 0xf0);
    expect(r.sci).toEqual([true, false]);
    expect(r.io.in8(0xb2)).toBe(0xf0);
  });

  it('reports the power button and raises the SCI when PWRBTN_EN is set', () => {
    r.io.out8(0xb2, 0xf1);
    r.pm.powerButton();
    expect(r.io.in16(0x600) & PM1_PWRBTN_STS).toBe(PM1_PWRBTN_STS);
    expect(r.sci).toEqual([]);
    r.io.out16(0x602, 0x0100);
    expect(r.sci).toEqual([true]);
    r.io.out16(0x600, 0xffff);
    expect(r.io.in16(0x600)).toBe(0);
    expect(r.sci).toEqual([true, false]);
  });

  it('powers off on SLP_EN with the S5 type, ignores other sleep types, never reads SLP_EN back', () => {
    r.io.out16(0x604, (1 << 10) | (1 << 13) | 1);
    expect(r.stops).toEqual([]);
    expect(r.io.in16(0x604)).toBe((1 << 10) | 1);
    r.io.out16(0x604, (SLP_TYP_S5 << 10) | 1); // type first, as ACPICA does
    expect(r.stops).toEqual([]);
    r.io.out16(0x604, (SLP_TYP_S5 << 10) | (1 << 13) | 1);
    expect(r.stops).toEqual([{ kind: 'poweroff' }]);
  });

  it('has a GPE0 block at 0xAFE0 with write-1-to-clear status', () => {
    r.io.out8(0xb2, 0xf1);
    r.pm.raiseGpe(1);
    expect(r.io.in8(0xafe0)).toBe(2);
    r.io.out8(0xafe2, 2);
    expect(r.sci).toEqual([true]);
    r.io.out8(0xafe0, 2);
    expect(r.io.in8(0xafe0)).toBe(0);
    expect(r.sci).toEqual([true, false]);
  });

  it('saves and restores its registers and mapping as JSON', () => {
    r.io.out16(0x602, 0x0100);
    r.io.out8(0xb2, 0xf1);
    r.pm.powerButton();
    const saved = JSON.parse(JSON.stringify(r.pm.saveState()));
    const r2 = new PmRig();
    r2.pm.loadState(saved);
    expect(r2.io.ownerOf(0x600)).toBe('acpi-pm');
    expect(r2.io.in16(0x600) & PM1_PWRBTN_STS).toBe(PM1_PWRBTN_STS);
    expect(r2.io.in16(0x602)).toBe(0x0100);
    expect(r2.pm.sciAsserted).toBe(true);
    r2.pm.reset();
    expect(r2.io.ownerOf(0x600)).toBeUndefined();
    expect(r2.sci[r2.sci.length - 1]).toBe(false);
  });
});
