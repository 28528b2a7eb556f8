/**
 * fw_cfg: the traditional port interface (signature, ID, RAM size, file directory, items read byte by
 * byte), the DMA interface with the big-endian access structure, the ACPI files and the linker/loader
 * script, the e820 map, and direct-boot items.
 */
import { describe, it, expect, beforeEach } from 'vitest';
import { IoBus } from '../../core/iobus';
import { Memory } from '../../core/memory';
import { buildAcpiTables, decodeLoader, runLoader, checksum, ACPI_TABLES_FILE, ACPI_RSDP_FILE, TABLE_LOADER_FILE } from '../../core/acpi-tables';
import { PIIX4_ACPI_LAYOUT } from '../../devices/acpi';
import {
  FwCfg,
  buildE820,
  encodeE820,
  E820_RAM,
  E820_RESERVED,
  FW_CFG_SIGNATURE,
  FW_CFG_ID,
  FW_CFG_RAM_SIZE,
  FW_CFG_NB_CPUS,
  FW_CFG_MAX_CPUS,
  FW_CFG_FILE_DIR,
  FW_CFG_KERNEL_SIZE,
  FW_CFG_KERNEL_DATA,
  FW_CFG_CMDLINE_SIZE,
  FW_CFG_CMDLINE_DATA,
  FW_CFG_INITRD_SIZE,
  FW_CFG_DMA_CTL_READ,
  FW_CFG_DMA_CTL_SELECT,
  FW_CFG_DMA_CTL_SKIP,
  FW_CFG_DMA_CTL_WRITE,
  FW_CFG_DMA_CTL_ERROR,
} from '../../devices/fwcfg';

const RAM = 128 * 1024 * 1024;

class Rig {
  io = new IoBus();
  mem = new Memory(4 * 1024 * 1024);
  acpi = buildAcpiTables({ layout: PIIX4_ACPI_LAYOUT });
  fw: FwCfg;
  constructor(opts: Partial<ConstructorParameters<typeof FwCfg>[1]> = {}) {
    this.fw = new FwCfg(this, { ramSize: RAM, acpi: this.acpi, bootOrder: ['/rom@genroms/linuxboot_dma.bin'], ...opts });
  }
  read(key: number, n: number): Uint8Array {
    this.io.out16(0x510, key);
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.io.in8(0x511);
    return out;
  }
  /** the directory as {name, size, select} */
  dir(): { name: string; size: number; select: number }[] {
    this.io.out16(0x510, FW_CFG_FILE_DIR);
    const b = () => this.io.in8(0x511);
    const be32 = () => ((b() << 24) | (b() << 16) | (b() << 8) | b()) >>> 0;
    const n = be32();
    const out = [];
    for (let i = 0; i < n; i++) {
      const size = be32();
      const select = (b() << 8) | b();
      b();
      b();
      let name = '';
      for (let c = 0; c < 56; c++) {
        const ch = b();
        if (ch) name += String.fromCharCode(ch);
      }
      out.push({ name, size, select });
    }
    return out;
  }
  file(name: string): Uint8Array {
    const e = this.dir().find((d) => d.name === name);
    if (!e) throw new Error(`no ${name}`);
    return this.read(e.select, e.size);
  }
}

const le = (b: Uint8Array) => b.reduceRight((acc, x) => acc * 256 + x, 0);

describe('fw_cfg port interface', () => {
  let r: Rig;
  beforeEach(() => {
    r = new Rig();
  });

  it('answers the signature "QEMU" and an ID with the DMA bit', () => {
    expect(String.fromCharCode(...r.read(FW_CFG_SIGNATURE, 4))).toBe('QEMU');
    expect(le(r.read(FW_CFG_ID, 4))).toBe(3);
    expect(new Rig({ dma: false }).read(FW_CFG_ID, 4)).toEqual(Uint8Array.from([1, 0, 0, 0]));
  });

  it('gives the RAM size as u64 and the CPU counts as u16', () => {
    expect(le(r.read(FW_CFG_RAM_SIZE, 8))).toBe(RAM);
    expect(le(r.read(FW_CFG_NB_CPUS, 2))).toBe(1);
    expect(le(r.read(FW_CFG_MAX_CPUS, 2))).toBe(1);
  });

  it('reads zeros past the end of an item and of unknown items; selecting rewinds', () => {
    r.read(FW_CFG_SIGNATURE, 4);
    expect(r.io.in8(0x511)).toBe(0);
    expect(r.read(0x1234, 2)).toEqual(new Uint8Array(2));
    expect(String.fromCharCode(...r.read(FW_CFG_SIGNATURE, 2))).toBe('QE');
    // selector byte-wide writes and data-port writes do no harm
    r.io.out8(0x511, 0x55);
    expect(String.fromCharCode(r.io.in8(0x511))).toBe('M');
  });

  it('lists the files in a sorted big-endian directory with selectors from 0x20', () => {
    const d = r.dir();
    const names = d.map((e) => e.name);
    expect(names).toEqual([...names].sort());
    for (const n of ['bootorder', 'etc/acpi/rsdp', 'etc/acpi/tables', 'etc/boot-cpus', 'etc/e820', 'etc/table-loader']) {
      expect(names).toContain(n);
    }
    for (const e of d) expect(e.select).toBeGreaterThanOrEqual(0x20);
    expect(d.find((e) => e.name === ACPI_TABLES_FILE)!.size).toBe(r.acpi.tables.length);
  });

  it('serves the ACPI files and a table-loader that links them', () => {
    expect(r.file(ACPI_TABLES_FILE)).toEqual(r.acpi.tables);
    expect(r.file(ACPI_RSDP_FILE)).toEqual(r.acpi.rsdp);
    const loader = r.file(TABLE_LOADER_FILE);
    expect(loader).toEqual(r.acpi.loader);
    const cmds = decodeLoader(loader);
    expect(cmds.filter((c) => c.cmd === 'allocate').length).toBe(2);
    const files = { [ACPI_TABLES_FILE]: r.file(ACPI_TABLES_FILE), [ACPI_RSDP_FILE]: r.file(ACPI_RSDP_FILE) };
    const out = runLoader(loader, files, (_f, _size, _align, zone) => (zone === 'fseg' ? 0xf6000 : 0x7ff0000));
    expect(out.addr[ACPI_RSDP_FILE]).toBe(0xf6000);
    expect(checksum(out.data[ACPI_RSDP_FILE])).toBe(0);
  });

  it('has the e820 map with RAM below 640 KiB and from 1 MiB, and a bootorder file', () => {
    const e = r.file('etc/e820');
    expect(e.length).toBe(40);
    expect(le(e.subarray(0, 8))).toBe(0);
    expect(le(e.subarray(8, 16))).toBe(0xa0000);
    expect(le(e.subarray(16, 20))).toBe(E820_RAM);
    expect(le(e.subarray(20, 28))).toBe(0x100000);
    expect(le(e.subarray(28, 36))).toBe(RAM - 0x100000);
    expect(String.fromCharCode(...r.file('bootorder'))).toBe('/rom@genroms/linuxboot_dma.bin\0');
    expect(le(r.file('etc/boot-cpus'))).toBe(1);
  });

  it('replaces a file in place, keeping its selector', () => {
    const sel = r.fw.fileSelector('bootorder');
    expect(r.fw.addFile('bootorder', Uint8Array.from([0x41, 0]))).toBe(sel);
    expect(r.file('bootorder')).toEqual(Uint8Array.from([0x41, 0]));
  });

  it('carries direct-boot items', () => {
    const kernel = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
    r.fw.setDirectBoot({ kernel, cmdline: 'console=ttyS0' });
    expect(le(r.read(FW_CFG_KERNEL_SIZE, 4))).toBe(1000);
    expect(r.read(FW_CFG_KERNEL_DATA, 1000)).toEqual(kernel);
    expect(le(r.read(FW_CFG_CMDLINE_SIZE, 4))).toBe(14);
    expect(String.fromCharCode(...r.read(FW_CFG_CMDLINE_DATA, 14))).toBe('console=ttyS0\0');
    expect(le(r.read(FW_CFG_INITRD_SIZE, 4))).toBe(0);
  });

  it('saves and restores the selector and offset', () => {
    r.io.out16(0x510, FW_CFG_SIGNATURE);
    r.io.in8(0x511);
    const s = JSON.parse(JSON.stringify(r.fw.saveState()));
    const r2 = new Rig();
    r2.fw.loadState(s);
    expect(String.fromCharCode(r2.io.in8(0x511))).toBe('E');
  });
});

describe('fw_cfg DMA', () => {
  /** writes a big-endian FWCfgDmaAccess at `at` and starts it the way SeaBIOS does (outl of the BE address to 0x518) */
  function dma(r: Rig, at: number, control: number, length: number, addr: number): number {
    const dv = new DataView(r.mem.mem8.buffer);
    dv.setUint32(at, control >>> 0, false);
    dv.setUint32(at + 4, length, false);
    dv.setUint32(at + 8, 0, false);
    dv.setUint32(at + 12, addr, false);
    const be = ((at >>> 24) | ((at >>> 8) & 0xff00) | ((at << 8) & 0xff0000) | (at << 24)) >>> 0;
    r.io.out32(0x518, be | 0);
    return dv.getUint32(at, false);
  }

  it('answers "QEMU CFG" on the DMA port', () => {
    const r = new Rig();
    let s = '';
    for (let i = 0; i < 8; i++) s += String.fromCharCode(r.io.in8(0x514 + i));
    expect(s).toBe('QEMU CFG');
  });

  it('selects and reads an item into guest memory, then clears the control word', () => {
    const r = new Rig();
    const sel = r.fw.fileSelector(ACPI_TABLES_FILE);
    const n = r.acpi.tables.length;
    const ctl = dma(r, 0x1000, (sel << 16) | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ, n, 0x20000);
    expect(ctl).toBe(0);
    expect(r.mem.mem8.subarray(0x20000, 0x20000 + n)).toEqual(r.acpi.tables);
  });

  it('skips, continues reading where the port interface would, and pads past the end with zeros', () => {
    const r = new Rig();
    dma(r, 0x1000, (FW_CFG_SIGNATURE << 16) | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_SKIP, 1, 0);
    r.mem.mem8.fill(0xee, 0x3000, 0x3010);
    expect(dma(r, 0x1000, FW_CFG_DMA_CTL_READ, 5, 0x3000)).toBe(0);
    expect(Array.from(r.mem.mem8.subarray(0x3000, 0x3006))).toEqual([0x45, 0x4d, 0x55, 0, 0, 0xee]);
  });

  it('refuses writes with the error bit', () => {
    const r = new Rig();
    expect(dma(r, 0x1000, (FW_CFG_RAM_SIZE << 16) | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_WRITE, 8, 0x3000)).toBe(FW_CFG_DMA_CTL_ERROR);
    expect(le(r.read(FW_CFG_RAM_SIZE, 8))).toBe(RAM);
  });
});

describe('e820', () => {
  it('builds the PC map and carves reserved ranges out of RAM', () => {
    const m = buildE820(RAM, [{ addr: RAM - 0x10000, size: 0x10000, type: 3 }, { addr: 0xfec00000, size: 0x1000, type: E820_RESERVED }]);
    expect(m).toEqual([
      { addr: 0, size: 0x9fc00, type: E820_RAM },
      { addr: 0x9fc00, size: 0x400, type: E820_RESERVED },
      { addr: 0xf0000, size: 0x10000, type: E820_RESERVED },
      { addr: 0x100000, size: RAM - 0x110000, type: E820_RAM },
      { addr: RAM - 0x10000, size: 0x10000, type: 3 },
      { addr: 0xfec00000, size: 0x1000, type: E820_RESERVED },
    ]);
    const enc = encodeE820([{ addr: 0x100000000, size: 0x1000, type: 2 }]);
    expect(Array.from(enc)).toEqual([0, 0, 0, 0, 1, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
  });
});

// ---------------------------------------------------------------------------------------------------
// Debian's SeaBIOS on a Machine with these devices and the PIC/PIT/RTC

import { existsSync, readFileSync } from 'node:fs';
import { Machine } from '../../core/machine';
import { IrqRouter } from '../../core/irq';
import { BufferSink } from '../../core/host';
import { loadBios } from '../../core/loader/bios';
import { DebugCon } from '../../devices/debugcon';
import { Pic8259 } from '../../devices/pic';
import { Pit8254 } from '../../devices/pit';
import { Rtc } from '../../devices/rtc';
import { createPciHost, devfn } from '../../devices/pci';
import { AcpiPm } from '../../devices/acpi';

const BIOS = '/usr/share/seabios/bios.bin';

describe.skipIf(!existsSync(BIOS))("Debian's SeaBIOS", () => {
  it('finds fw_cfg, the PIIX4 PM at 0x600 and the ACPI tables', () => {
    const ram = 64 * 1024 * 1024;
    const m = new Machine({ memSize: ram, deterministic: true, noReboot: true });
    const router = new IrqRouter();
    const pic = m.addDevice(new Pic8259(m, (l) => m.cpu.setIntr(l)));
    m.cpu.pic = pic;
    router.attach(pic);
    m.addDevice(new Pit8254(m, router.line(0)));
    m.addDevice(new Rtc(m, { irq: router.line(8), memSize: ram }));
    const out = new BufferSink();
    m.addDevice(new DebugCon(m, out, 0x402));
    const { bus } = createPciHost(m, router);
    bus.onReset = (msg) => m.guestReset(msg);
    m.addDevice(bus);
    const pm = bus.add(new AcpiPm(m, router.line(9)), devfn(1, 3));
    const acpi = buildAcpiTables({ layout: PIIX4_ACPI_LAYOUT });
    m.addDevice(new FwCfg(m, { ramSize: ram, acpi }));
    loadBios(m.mem, new Uint8Array(readFileSync(BIOS)));
    m.cpu.reset();
    for (let i = 0; i < 400 && !m.stopReason; i++) {
      m.run(1_000_000);
      if (/Booting from|No bootable device/.test(out.text())) break;
    }
    const log = out.text();
    expect(log).toMatch(/SeaBIOS \(version/);
    expect(log).toMatch(/Running on QEMU \(i440fx\)/);
    expect(log).toMatch(/Found QEMU fw_cfg/);
    expect(log).toMatch(/QEMU fw_cfg DMA interface supported/);
    expect(log).toMatch(/Moving pm_base to 0x600/);
    expect(log).toMatch(/Using pmtimer, ioport 0x608/);
    expect(log).toMatch(/PCI: init bdf=00:01.3 id=8086:7113/);
    expect(log).toMatch(/3: 0000000000100000 - 0000000003fff000 = 1 RAM/);
    expect(log).toMatch(/Booting from|No bootable device/);
    expect(pm.pmBase).toBe(0x600);
    // the RSDP SeaBIOS placed in the F segment leads to our linked tables with valid checksums
    const mem = m.mem.mem8;
    let rsdp = -1;
    for (let a = 0xe0000; a < 0x100000; a += 16) {
      if (String.fromCharCode(...mem.subarray(a, a + 8)) === 'RSD PTR ') {
        rsdp = a;
        break;
      }
    }
    expect(rsdp).toBeGreaterThan(0);
    expect(checksum(mem, rsdp, 20)).toBe(0);
    const rd32 = (a: number) => (mem[a] | (mem[a + 1] << 8) | (mem[a + 2] << 16) | (mem[a + 3] << 24)) >>> 0;
    const rsdt = rd32(rsdp + 16);
    expect(String.fromCharCode(...mem.subarray(rsdt, rsdt + 4))).toBe('RSDT');
    const sigs: string[] = [];
    for (let e = rsdt + 36; e < rsdt + rd32(rsdt + 4); e += 4) {
      const t = rd32(e);
      sigs.push(String.fromCharCode(...mem.subarray(t, t + 4)));
      expect(checksum(mem, t, rd32(t + 4))).toBe(0);
      if (sigs[sigs.length - 1] === 'FACP') {
        expect(String.fromCharCode(...mem.subarray(rd32(t + 40), rd32(t + 40) + 4))).toBe('DSDT');
        expect(String.fromCharCode(...mem.subarray(rd32(t + 36), rd32(t + 36) + 4))).toBe('FACS');
      }
    }
    expect(sigs).toEqual(['FACP', 'APIC']);
  });
});
