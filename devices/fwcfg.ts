/**
 * QEMU's firmware configuration device (fw_cfg) on its x86 I/O ports, written from QEMU's
 * docs/specs/fw_cfg.rst and from what SeaBIOS (src/fw/paravirt.c) reads:
 * - 0x510 selector (16-bit write; resets the data offset), 0x511 data (8-bit reads, advancing through
 *   the selected item; reads past its end give 0; writes are ignored as on QEMU ≥ 2.4),
 * - 0x514–0x51B DMA address (64-bit, big-endian; the write of the last byte, i.e. of the low dword at
 *   0x518, starts the transfer). The 16-byte big-endian FWCfgDmaAccess {control, length, address} at
 *   that guest address is executed (SELECT, READ, SKIP; WRITE is refused with ERROR) and its control
 *   word is cleared on completion. Reading 0x514–0x51B gives the signature "QEMU CFG".
 * Items: signature "QEMU", interface ID (traditional + DMA), UUID, RAM size, CPU counts, NUMA (none), boot
 * menu, the kernel/initrd/command-line/setup items of a direct Linux boot, the file directory (0x19) and
 * files from 0x20 on: "etc/acpi/tables", "etc/acpi/rsdp", "etc/table-loader", "etc/e820", "bootorder"
 * (always there, empty unless devices have a boot index, as on QEMU), "etc/boot-fail-wait" (always; -1 =
 * wait forever after "No bootable device.", QEMU's default), "etc/boot-cpus", "etc/boot-menu-wait", and
 * whatever the platform adds (e.g. "genroms/…"). The legacy boot-device item 0x0C reads 0 unless given,
 * as on QEMU's PC (core/bootorder.ts has the boot order SeaBIOS reads, from CMOS and "bootorder").
 *
 * The items are configuration, rebuilt by the platform from the VM's settings, so saveState() holds only
 * the selector, the offset and the DMA address latch.
 */
import type { IoBus } from '../core/iobus';
import type { Device } from '../core/machine';
import type { AcpiBlobs } from '../core/acpi-tables';
import { ACPI_RSDP_FILE, ACPI_TABLES_FILE, TABLE_LOADER_FILE } from '../core/acpi-tables';

export const FW_CFG_PORT_SEL = 0x510;
export const FW_CFG_PORT_DATA = 0x511;
export const FW_CFG_PORT_DMA = 0x514;

export const FW_CFG_SIGNATURE = 0x00;
export const FW_CFG_ID = 0x01;
export const FW_CFG_UUID = 0x02;
export const FW_CFG_RAM_SIZE = 0x03;
export const FW_CFG_NOGRAPHIC = 0x04;
export const FW_CFG_NB_CPUS = 0x05;
export const FW_CFG_MACHINE_ID = 0x06;
export const FW_CFG_KERNEL_ADDR = 0x07;
export const FW_CFG_KERNEL_SIZE = 0x08;
export const FW_CFG_KERNEL_CMDLINE = 0x09;
export const FW_CFG_INITRD_ADDR = 0x0a;
export const FW_CFG_INITRD_SIZE = 0x0b;
export const FW_CFG_BOOT_DEVICE = 0x0c;
export const FW_CFG_NUMA = 0x0d;
export const FW_CFG_BOOT_MENU = 0x0e;
export const FW_CFG_MAX_CPUS = 0x0f;
export const FW_CFG_KERNEL_ENTRY = 0x10;
export const FW_CFG_KERNEL_DATA = 0x11;
export const FW_CFG_INITRD_DATA = 0x12;
export const FW_CFG_CMDLINE_ADDR = 0x13;
export const FW_CFG_CMDLINE_SIZE = 0x14;
export const FW_CFG_CMDLINE_DATA = 0x15;
export const FW_CFG_SETUP_ADDR = 0x16;
export const FW_CFG_SETUP_SIZE = 0x17;
export const FW_CFG_SETUP_DATA = 0x18;
export const FW_CFG_FILE_DIR = 0x19;
export const FW_CFG_FILE_FIRST = 0x20;
export const FW_CFG_WRITE_CHANNEL = 0x4000;
export const FW_CFG_ARCH_LOCAL = 0x8000;
export const FW_CFG_ACPI_TABLES = 0x8000;
export const FW_CFG_SMBIOS_ENTRIES = 0x8001;
export const FW_CFG_IRQ0_OVERRIDE = 0x8002;
export const FW_CFG_E820_TABLE = 0x8003;

export const FW_CFG_VERSION = 0x01;
export const FW_CFG_VERSION_DMA = 0x02;

export const FW_CFG_DMA_CTL_ERROR = 0x01;
export const FW_CFG_DMA_CTL_READ = 0x02;
export const FW_CFG_DMA_CTL_SKIP = 0x04;
export const FW_CFG_DMA_CTL_SELECT = 0x08;
export const FW_CFG_DMA_CTL_WRITE = 0x10;

const DMA_SIGNATURE = 'QEMU CFG';
export const FW_CFG_FILE_NAME_LEN = 56;

export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

/** 20 bytes per entry: u64 address, u64 length, u32 type (little-endian), as in "etc/e820" */
export function encodeE820(entries: E820Entry[]): Uint8Array {
  const out = new Uint8Array(entries.length * 20);
  const dv = new DataView(out.buffer);
  entries.forEach((e, i) => {
    dv.setUint32(i * 20, e.addr % 0x100000000, true);
    dv.setUint32(i * 20 + 4, Math.floor(e.addr / 0x100000000), true);
    dv.setUint32(i * 20 + 8, e.size % 0x100000000, true);
    dv.setUint32(i * 20 + 12, Math.floor(e.size / 0x100000000), true);
    dv.setUint32(i * 20 + 16, e.type, true);
  });
  return out;
}

/**
 * The PC memory map for a RAM size: RAM 0–0x9FC00, reserved EBDA 0x9FC00–0xA0000, reserved BIOS
 * 0xF0000–0x100000, RAM from 1 MiB to the end of RAM; `reserved` ranges (ACPI tables at the top of
 * RAM, the IOAPIC/LAPIC pages, …) are carved out of RAM or appended. Sorted, without overlaps. This is
 * what a firmware hands the OS (boot_params.e820 on a direct Linux boot).
 */
export function buildE820(ramSize: number, reserved: E820Entry[] = []): E820Entry[] {
  const base: E820Entry[] = [
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x9fc00, size: 0x400, type: E820_RESERVED },
    { addr: 0xf0000, size: 0x10000, type: E820_RESERVED },
  ];
  if (ramSize > 0x100000) base.push({ addr: 0x100000, size: ramSize - 0x100000, type: E820_RAM });
  let map = base;
  for (const r of reserved) {
    const next: E820Entry[] = [];
    for (const e of map) {
      const end = e.addr + e.size;
      const rEnd = r.addr + r.size;
      if (rEnd <= e.addr || r.addr >= end) {
        next.push(e);
        continue;
      }
      if (r.addr > e.addr) next.push({ addr: e.addr, size: r.addr - e.addr, type: e.type });
      if (rEnd < end) next.push({ addr: rEnd, size: end - rEnd, type: e.type });
    }
    next.push({ ...r });
    map = next;
  }
  return map.sort((a, b) => a.addr - b.addr);
}

/** the guest memory the DMA interface reads and writes (core/memory's Memory satisfies it) */
export interface FwCfgMemory {
  read8(addr: number): number;
  write8(addr: number, value: number): void;
}

export interface FwCfgOptions {
  ramSize: number;
  cpus?: number;
  maxCpus?: number;
  /** enable the DMA interface (default true) */
  dma?: boolean;
  /** 16 bytes */
  uuid?: Uint8Array;
  nographic?: boolean;
  /** legacy boot device letter for item 0x0C ('c' disk, 'd' CD-ROM, 'n' network); QEMU's PC leaves it 0 */
  bootDevice?: string;
  /** show SeaBIOS's boot menu, with this timeout in ms */
  bootMenu?: boolean;
  bootMenuTimeout?: number;
  /** OpenFirmware device paths, one per line in the "bootorder" file (e.g. "/pci@i0cf8/ide@1,1/drive@0/disk@0");
   *  core/bootorder.ts makes them. Default: an empty file */
  bootOrder?: string[];
  /** "etc/boot-fail-wait": ms SeaBIOS waits after "No bootable device." before rebooting; -1 (default, as
   *  QEMU) = forever */
  bootFailWait?: number;
  acpi?: AcpiBlobs;
  /** "etc/e820" entries (default: RAM below 640 KiB and from 1 MiB, as QEMU gives SeaBIOS) */
  e820?: E820Entry[];
}

export interface DirectBoot {
  /** real-mode setup part of a bzImage and where the option ROM should put it */
  setup?: Uint8Array;
  setupAddr?: number;
  /** protected-mode kernel (or a whole image) and its load address */
  kernel: Uint8Array;
  kernelAddr?: number;
  kernelEntry?: number;
  initrd?: Uint8Array;
  initrdAddr?: number;
  cmdline?: string;
  cmdlineAddr?: number;
}

interface FileEntry {
  name: string;
  select: number;
}

export interface FwCfgState {
  selector: number;
  offset: number;
  dmaAddr: number[];
}

function le(n: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let v = n;
  for (let i = 0; i < bytes; i++) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}

export class FwCfg implements Device {
  readonly name = 'fw_cfg';
  private readonly mem: FwCfgMemory | null;
  private readonly items = new Map<number, Uint8Array>();
  private readonly files: FileEntry[] = [];
  private selector = 0;
  private offset = 0;
  private readonly dmaAddr = new Uint8Array(8);
  private readonly dmaEnabled: boolean;

  constructor(machine: { readonly io: IoBus; readonly mem?: FwCfgMemory }, options: FwCfgOptions) {
    this.mem = machine.mem ?? null;
    this.dmaEnabled = (options.dma ?? true) && this.mem !== null;
    machine.io.register(this.name, FW_CFG_PORT_SEL, 2, {
      read8: (p) => (p === FW_CFG_PORT_DATA ? this.readData() : 0),
      write8: (p, v) => {
        if (p === FW_CFG_PORT_SEL) this.select(v);
      },
      write16: (p, v) => {
        if (p === FW_CFG_PORT_SEL) this.select(v);
      },
    });
    if (this.dmaEnabled) {
      machine.io.register('fw_cfg-dma', FW_CFG_PORT_DMA, 8, {
        read8: (p) => DMA_SIGNATURE.charCodeAt(p - FW_CFG_PORT_DMA),
        write8: (p, v) => {
          this.dmaAddr[p - FW_CFG_PORT_DMA] = v;
          if (p === FW_CFG_PORT_DMA + 7) this.startDma();
        },
      });
    }
    this.configure(options);
  }

  private configure(o: FwCfgOptions): void {
    this.setItem(FW_CFG_SIGNATURE, Uint8Array.from([0x51, 0x45, 0x4d, 0x55]));
    this.setItem(FW_CFG_ID, le(FW_CFG_VERSION | (this.dmaEnabled ? FW_CFG_VERSION_DMA : 0), 4));
    this.setItem(FW_CFG_UUID, o.uuid ? o.uuid.slice(0, 16) : new Uint8Array(16));
    this.setItem(FW_CFG_RAM_SIZE, le(o.ramSize, 8));
    this.setItem(FW_CFG_NOGRAPHIC, le(o.nographic ? 1 : 0, 2));
    const cpus = o.cpus ?? 1;
    this.setItem(FW_CFG_NB_CPUS, le(cpus, 2));
    this.setItem(FW_CFG_MAX_CPUS, le(o.maxCpus ?? cpus, 2));
    this.setItem(FW_CFG_MACHINE_ID, le(0, 4));
    this.setItem(FW_CFG_BOOT_DEVICE, le(o.bootDevice ? o.bootDevice.charCodeAt(0) : 0, 2));
    this.setItem(FW_CFG_NUMA, le(0, 8));
    this.setItem(FW_CFG_BOOT_MENU, le(o.bootMenu ? 1 : 0, 2));
    this.setItem(FW_CFG_IRQ0_OVERRIDE, le(1, 1));
    this.setItem(FW_CFG_ACPI_TABLES, le(0, 2));
    this.setItem(FW_CFG_SMBIOS_ENTRIES, le(0, 2));
    this.setItem(FW_CFG_E820_TABLE, le(0, 4));
    for (const k of [FW_CFG_KERNEL_ADDR, FW_CFG_KERNEL_SIZE, FW_CFG_INITRD_ADDR, FW_CFG_INITRD_SIZE, FW_CFG_KERNEL_ENTRY, FW_CFG_CMDLINE_ADDR, FW_CFG_CMDLINE_SIZE, FW_CFG_SETUP_ADDR, FW_CFG_SETUP_SIZE]) {
      this.setItem(k, le(0, 4));
    }
    this.addFile('etc/boot-cpus', le(cpus, 2));
    if (o.bootMenu && o.bootMenuTimeout !== undefined) this.addFile('etc/boot-menu-wait', le(o.bootMenuTimeout, 2));
    this.addFile('bootorder', o.bootOrder && o.bootOrder.length ? ascii(o.bootOrder.join('\n') + '\0') : new Uint8Array(0));
    this.addFile('etc/boot-fail-wait', le((o.bootFailWait ?? -1) >>> 0, 4));
    const e820 = o.e820 ?? [
      { addr: 0, size: 0xa0000, type: E820_RAM },
      { addr: 0x100000, size: o.ramSize - 0x100000, type: E820_RAM },
    ];
    this.addFile('etc/e820', encodeE820(e820));
    if (o.acpi) {
      this.addFile(ACPI_TABLES_FILE, o.acpi.tables);
      this.addFile(ACPI_RSDP_FILE, o.acpi.rsdp);
      this.addFile(TABLE_LOADER_FILE, o.acpi.loader);
    }
  }

  /** sets (or replaces) a numbered item */
  setItem(key: number, data: Uint8Array): void {
    this.items.set(key, data);
  }

  /** the bytes of an item, if present */
  getItem(key: number): Uint8Array | undefined {
    return this.items.get(key);
  }

  /** adds (or replaces) a named file; returns its selector */
  addFile(name: string, data: Uint8Array): number {
    if (name.length >= FW_CFG_FILE_NAME_LEN) throw new Error(`fw_cfg file name too long: ${name}`);
    let f = this.files.find((e) => e.name === name);
    if (!f) {
      f = { name, select: FW_CFG_FILE_FIRST + this.files.length };
      this.files.push(f);
    }
    this.items.set(f.select, data);
    this.rebuildDirectory();
    return f.select;
  }

  /** the selector of a named file, or -1 */
  fileSelector(name: string): number {
    return this.files.find((e) => e.name === name)?.select ?? -1;
  }

  private rebuildDirectory(): void {
    const sorted = [...this.files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const dir = new Uint8Array(4 + 64 * sorted.length);
    const dv = new DataView(dir.buffer);
    dv.setUint32(0, sorted.length, false);
    sorted.forEach((f, i) => {
      const at = 4 + 64 * i;
      dv.setUint32(at, this.items.get(f.select)!.length, false);
      dv.setUint16(at + 4, f.select, false);
      for (let c = 0; c < f.name.length; c++) dir[at + 8 + c] = f.name.charCodeAt(c);
    });
    this.items.set(FW_CFG_FILE_DIR, dir);
  }

  /** the items of a direct kernel boot (QEMU -kernel/-initrd/-append) for an option ROM to load */
  setDirectBoot(b: DirectBoot): void {
    this.setItem(FW_CFG_KERNEL_ADDR, le(b.kernelAddr ?? 0x100000, 4));
    this.setItem(FW_CFG_KERNEL_SIZE, le(b.kernel.length, 4));
    this.setItem(FW_CFG_KERNEL_DATA, b.kernel);
    this.setItem(FW_CFG_KERNEL_ENTRY, le(b.kernelEntry ?? 0, 4));
    const initrd = b.initrd ?? new Uint8Array(0);
    this.setItem(FW_CFG_INITRD_ADDR, le(initrd.length ? (b.initrdAddr ?? 0) : 0, 4));
    this.setItem(FW_CFG_INITRD_SIZE, le(initrd.length, 4));
    this.setItem(FW_CFG_INITRD_DATA, initrd);
    const cmd = ascii((b.cmdline ?? '') + '\0');
    this.setItem(FW_CFG_CMDLINE_ADDR, le(b.cmdlineAddr ?? 0x20000, 4));
    this.setItem(FW_CFG_KERNEL_CMDLINE, le(b.cmdlineAddr ?? 0x20000, 4));
    this.setItem(FW_CFG_CMDLINE_SIZE, le(cmd.length, 4));
    this.setItem(FW_CFG_CMDLINE_DATA, cmd);
    const setup = b.setup ?? new Uint8Array(0);
    this.setItem(FW_CFG_SETUP_ADDR, le(setup.length ? (b.setupAddr ?? 0x10000) : 0, 4));
    this.setItem(FW_CFG_SETUP_SIZE, le(setup.length, 4));
    this.setItem(FW_CFG_SETUP_DATA, setup);
  }

  // ---- the traditional interface ----

  private select(key: number): void {
    this.selector = key & 0xffff;
    this.offset = 0;
  }

  private current(): Uint8Array | undefined {
    return this.items.get(this.selector & ~FW_CFG_WRITE_CHANNEL);
  }

  private readData(): number {
    const d = this.current();
    if (!d || this.offset >= d.length) return 0;
    return d[this.offset++];
  }

  // ---- DMA ----

  private startDma(): void {
    let addr = 0;
    for (let i = 0; i < 8; i++) addr = addr * 256 + this.dmaAddr[i];
    this.dmaAddr.fill(0);
    if (!this.mem || addr === 0) return;
    const m = this.mem;
    const rd32 = (a: number) => ((m.read8(a) << 24) | (m.read8(a + 1) << 16) | (m.read8(a + 2) << 8) | m.read8(a + 3)) >>> 0;
    const control = rd32(addr);
    const length = rd32(addr + 4);
    const target = rd32(addr + 8) * 0x100000000 + rd32(addr + 12);
    let status = 0;
    if (control & FW_CFG_DMA_CTL_SELECT) this.select(control >>> 16);
    if (control & FW_CFG_DMA_CTL_WRITE) {
      status = FW_CFG_DMA_CTL_ERROR;
    } else if (control & (FW_CFG_DMA_CTL_READ | FW_CFG_DMA_CTL_SKIP)) {
      const d = this.current();
      const read = (control & FW_CFG_DMA_CTL_READ) !== 0;
      for (let i = 0; i < length; i++) {
        const b = d && this.offset < d.length ? d[this.offset] : 0;
        if (d && this.offset < d.length) this.offset++;
        if (read) m.write8(target + i, b);
      }
    }
    for (let i = 0; i < 4; i++) m.write8(addr + i, (status >>> (24 - 8 * i)) & 0xff);
  }

  reset(): void {
    this.selector = 0;
    this.offset = 0;
    this.dmaAddr.fill(0);
  }

  saveState(): FwCfgState {
    return { selector: this.selector, offset: this.offset, dmaAddr: Array.from(this.dmaAddr) };
  }

  loadState(state: unknown): void {
    const s = state as FwCfgState;
    this.selector = s.selector & 0xffff;
    this.offset = s.offset >>> 0;
    this.dmaAddr.set(s.dmaAddr.slice(0, 8));
  }
}

function ascii(s: string): Uint8Array {
  return Uint8Array.from([...s].map((c) => c.charCodeAt(0) & 0xff));
}
