/**
 * The PC platform builder: createPc() makes a Machine with the standard PC devices wired together, so
 * hosts (node/run.ts, web/, tests) do not repeat the wiring.
 *
 *   devices ── IrqLine ──► IrqRouter (wired-OR lines 0–23) ──► Pic8259 (IRQ 0–15) ── INT ──► cpu.setIntr
 *                                          └──────────────► (IOAPIC, when one is plugged in)
 *   cpu.pic = the 8259 pair (INTA cycles), cpu.tscSource = the machine clock at a fixed nominal rate.
 *
 * Standard devices: the 8259A pair (+ ELCR), the 8254 PIT (+ port 0x61), UARTs COM1–COM4, the POST-code
 * ports, isa-debug-exit, and the debug console when a sink is given.
 *
 * Extension points (devices being written now plug in here without changing this file's callers):
 * - `options.devices`: factories called in order after the standard devices; each gets the Pc (router,
 *   clock, io, mem, cpu, pic, …) and returns the device(s) to add to the machine.
 * - `pc.setIntrTarget(fn)`: where the PIC's INT output goes. A local APIC factory (devices/apic.ts) calls
 *   `pc.setIntrTarget((l) => lapic.setLint0(l))`, sets `cpu.hasApic = true` and `cpu.pic = lapic` (the
 *   LAPIC then forwards ExtINT acknowledges to `pc.pic.acknowledge()`).
 * - An IOAPIC factory (devices/ioapic.ts) attaches itself with `pc.irq.attach(ioapic)` and sees the same
 *   24 lines (ISA IRQ 0 is the PIT; the MADT's interrupt source override maps it to pin 2).
 * - RTC/CMOS (devices/rtc.ts): ports 0x70/0x71, `pc.irq.line(8)`, and `pc.clock` as its time base.
 * - i8042 (devices/i8042.ts): ports 0x60/0x64 (0x61 belongs to the PIT here), `pc.irq.line(1)` and
 *   `pc.irq.line(12)`, reset via `pc.machine.guestReset`, A20 via `pc.mem.setA20`.
 * - PCI (devices/pci.ts): 0xCF8–0xCFF; PIRQ routing drives `pc.irq.line(n)` for n in 9–11 (PIIX) or 16–23
 *   (IOAPIC). The ELCR at 0x4D0/0x4D1 is already served by the PIC device.
 * - ACPI (PM timer from `pc.clock`, SCI on `pc.irq.line(9)`) and fw_cfg (0x510/0x511): factories too;
 *   fw_cfg can read `pc.options` (memSize, cpu count, command line) to build its items.
 */
import { Machine, type Device } from './machine';
import { IrqRouter } from './irq';
import type { Cpu } from './cpu';
import type { Clock } from './clock';
import type { IoBus } from './iobus';
import type { Memory } from './memory';
import { NULL_SINK, type SerialSink } from './host';
import { Pic8259 } from '../devices/pic';
import { Pit8254 } from '../devices/pit';
import { Uart16550 } from '../devices/uart';
import { DebugCon, FIRMWARE_LOG_PORT } from '../devices/debugcon';
import { PostCodes } from '../devices/postcode';
import { DebugExit } from '../devices/debugexit';
import { Rtc } from '../devices/rtc';
import { I8042 } from '../devices/i8042';
import { Port92 } from '../devices/port92';
import { LocalApic } from '../devices/apic';
import { pcMemoryMap, type MemoryRegion } from './loader/multiboot';
import { createPciHost, assignPciIrqsLikeSeaBios, devfn, type PciBus, type I440fxHostBridge, type Piix3IsaBridge } from '../devices/pci';
import { AcpiPm, PIIX4_ACPI_LAYOUT } from '../devices/acpi';
import { buildAcpiTables, linkTables, type AcpiBlobs } from './acpi-tables';
import { FwCfg } from '../devices/fwcfg';
import { IoApic } from '../devices/ioapic';
import { addVga, type Vga, type VgaOptions } from '../devices/vga';
import { applyBootConfig, type BootConfig, type BootTarget } from './bootorder';

/** the nominal TSC rate: 1 GHz, so one TSC tick is one guest ns of the machine clock */
export const DEFAULT_TSC_HZ = 1_000_000_000;

/** the legacy serial ports: base port and ISA IRQ */
export const COM_PORTS: readonly { port: number; irq: number }[] = [
  { port: 0x3f8, irq: 4 },
  { port: 0x2f8, irq: 3 },
  { port: 0x3e8, irq: 4 },
  { port: 0x2e8, irq: 3 },
];

/** makes one or more devices for the PC (extension point); may return nothing if it only wires things */
export type PcDeviceFactory = (pc: Pc) => Device | Device[] | void;

export interface PcOptions {
  /** RAM size in bytes */
  memSize: number;
  /** time follows the instruction count (reproducible runs) */
  deterministic?: boolean;
  /** a guest reset ends the run instead */
  noReboot?: boolean;
  /** COM1 output (default: discarded) */
  serial?: SerialSink;
  /** COM2–COM4 outputs (index 0 = COM2); missing ones are discarded */
  serialExtra?: (SerialSink | null | undefined)[];
  /** the debug console at 0xE9; omitted = no device on that port */
  debugcon?: SerialSink;
  /** SeaBIOS's debug log (a debug console at 0x402); omitted = no device on that port */
  firmwareLog?: SerialSink;
  /** where POST codes (ports 0x80, 0x190) go (default: discarded) */
  post?: SerialSink;
  /** QEMU's isa-debug-exit at 0xF4 (default true) */
  debugExit?: boolean;
  /** nominal TSC frequency in Hz (default 1 GHz); the TSC is derived from the machine clock */
  tscHz?: number;
  /** the RTC's time of day at power-on (ms since the epoch; default: host time, or 2026-01-01 when deterministic) */
  startTime?: Date | number;
  /** boot order for the CMOS/firmware in QEMU's letters (default "cad") */
  bootOrder?: string;
  /** a local APIC and an IOAPIC (default true); without them the 8259 drives the CPU directly */
  apic?: boolean;
  /** the PCI host (i440FX + PIIX3 + PIIX4 ACPI power management), ACPI tables and fw_cfg (default true) */
  pci?: boolean;
  /** firmware boot settings in QEMU's -boot terms (order, once, menu, strict, …) */
  boot?: Partial<BootConfig>;
  /** devices named in the fw_cfg "bootorder" file, most preferred first */
  bootTargets?: BootTarget[];
  /** the VGA (standard VGA + Bochs VBE on PCI; default: none); a VgaOptions carries the VGA BIOS image */
  vga?: boolean | VgaOptions;
  /** further devices (RTC, i8042, APIC, IOAPIC, PCI, ACPI, fw_cfg, …), built in order after the standard ones */
  devices?: PcDeviceFactory[];
}

export interface Pc {
  readonly options: PcOptions;
  readonly machine: Machine;
  readonly cpu: Cpu;
  readonly mem: Memory;
  readonly io: IoBus;
  readonly clock: Clock;
  /** the 24 interrupt request lines; devices get their IrqLine with irq.line(n) */
  readonly irq: IrqRouter;
  readonly pic: Pic8259;
  readonly pit: Pit8254;
  /** COM1–COM4 */
  readonly uarts: readonly Uart16550[];
  /** COM1, the console in headless runs */
  readonly com1: Uart16550;
  readonly debugcon: DebugCon | null;
  readonly post: PostCodes;
  readonly debugExit: DebugExit | null;
  readonly rtc: Rtc;
  readonly kbc: I8042;
  readonly apic: LocalApic | null;
  readonly ioapic: IoApic | null;
  readonly pci: PcPci | null;
  /** the VGA, when options.vga asked for one */
  readonly vga: Vga | null;
  /**
   * Does what firmware would for a kernel entered directly (no BIOS): enables the ACPI PM block, routes
   * PCI interrupts, and places the ACPI tables (tables near the top of RAM, reserved in the memory map;
   * the RSDP in the BIOS area where the OS scans for it).
   */
  prepareDirectBoot(): void;
  /** the TSC rate in Hz */
  readonly tscHz: number;
  /** redirects the PIC's INT output (default: cpu.setIntr); the line is driven to its current level */
  setIntrTarget(target: (level: boolean) => void): void;
  /** the e820 memory map of this PC (RAM, and the areas firmware tables occupy) */
  memoryMap(): MemoryRegion[];
  /** regions added to the memory map as reserved or ACPI (type 2 / 3) */
  readonly reservedRegions: MemoryRegion[];
}

export interface PcPci {
  bus: PciBus;
  hostBridge: I440fxHostBridge;
  isa: Piix3IsaBridge;
  pm: AcpiPm;
  acpi: AcpiBlobs;
  fwcfg: FwCfg;
}

/** where a direct boot puts the RSDP (in the reserved BIOS area the OS scans) */
export const DIRECT_BOOT_RSDP = 0xf0000;
/** bytes reserved at the top of RAM for the ACPI tables of a direct boot */
export const DIRECT_BOOT_ACPI_SIZE = 0x10000;

/** the TSC after `ns` guest nanoseconds at `hz` ticks per second (exact integer arithmetic) */
export function tscTicks(ns: number, hz: number): number {
  if (ns <= 0) return 0;
  const n = Math.floor(ns);
  if (hz === 1e9) return n;
  const s = Math.floor(n / 1e9);
  const r = n - s * 1e9;
  // r * hz stays below 2^53 for hz up to ~9 GHz
  const f = r * hz;
  return s * hz + (f - (f % 1e9)) / 1e9;
}

/** a Device wrapper saving the IRQ router's line levels with the machine */
function routerDevice(router: IrqRouter): Device {
  return {
    name: 'irq-router',
    saveState: () => router.saveState(),
    loadState: (s: unknown) => router.loadState(s as number[]),
  };
}

/** carves reserved regions (page aligned, inside RAM) out of a memory map's RAM entries */
export function mergeRegions(map: MemoryRegion[], reserved: MemoryRegion[]): MemoryRegion[] {
  let out = map.slice();
  for (const r of reserved) {
    const next: MemoryRegion[] = [];
    for (const m of out) {
      const mEnd = m.base + m.length;
      const rEnd = r.base + r.length;
      if (m.type !== 1 || rEnd <= m.base || r.base >= mEnd) {
        next.push(m);
        continue;
      }
      if (r.base > m.base) next.push({ base: m.base, length: r.base - m.base, type: 1 });
      if (rEnd < mEnd) next.push({ base: rEnd, length: mEnd - rEnd, type: 1 });
    }
    next.push(r);
    out = next;
  }
  return out.sort((a, b) => a.base - b.base);
}

export function createPc(options: PcOptions): Pc {
  const machine = new Machine({
    memSize: options.memSize,
    deterministic: options.deterministic,
    noReboot: options.noReboot,
  });
  const { cpu, clock, io, mem } = machine;

  // one time base: the TSC is the machine clock at a fixed nominal rate, like the PIT's 1.193182 MHz
  const tscHz = options.tscHz ?? DEFAULT_TSC_HZ;
  if (!(tscHz > 0 && tscHz <= 9e9)) throw new RangeError(`bad TSC frequency ${tscHz}`);
  cpu.tscSource = () => tscTicks(clock.now(), tscHz);

  const irq = new IrqRouter();
  machine.addDevice(routerDevice(irq));

  let intrTarget: (level: boolean) => void = (level) => cpu.setIntr(level);
  const pic = machine.addDevice(new Pic8259(machine, (level) => intrTarget(level)));
  irq.attach(pic);
  cpu.pic = pic;

  const pit = machine.addDevice(new Pit8254(machine));
  pit.connectIrq(irq.line(0));

  const uarts: Uart16550[] = [];
  COM_PORTS.forEach(({ port, irq: n }, i) => {
    const sink = i === 0 ? options.serial : options.serialExtra?.[i - 1];
    const uart = machine.addDevice(new Uart16550(machine, { port, sink: sink ?? NULL_SINK }));
    uart.connectIrq(irq.line(n));
    uarts.push(uart);
  });

  const rtc = machine.addDevice(
    new Rtc(machine, { irq: irq.line(8), memSize: options.memSize, startTime: options.startTime, bootOrder: options.bootOrder }),
  );
  const kbc = machine.addDevice(
    new I8042(machine, {
      irqKbd: irq.line(1),
      irqMouse: irq.line(12),
      onReset: () => machine.guestReset('keyboard controller reset'),
    }),
  );
  machine.addDevice(new Port92(machine, () => machine.guestReset('port 0x92 fast reset')));

  const debugcon = options.debugcon ? machine.addDevice(new DebugCon(machine, options.debugcon)) : null;
  // the firmware log is an output only (no state): registered on the I/O bus but not a machine device, so a
  // snapshot's device list does not depend on whether the log was being written
  if (options.firmwareLog) new DebugCon(machine, options.firmwareLog, FIRMWARE_LOG_PORT, 'firmware-log');
  const post = machine.addDevice(new PostCodes(machine, options.post ?? NULL_SINK));
  const debugExit = options.debugExit === false ? null : machine.addDevice(new DebugExit(machine));

  const pc: Pc = {
    options,
    machine,
    cpu,
    mem,
    io,
    clock,
    irq,
    pic,
    pit,
    uarts,
    com1: uarts[0],
    debugcon,
    post,
    debugExit,
    rtc,
    kbc,
    apic: null,
    ioapic: null,
    pci: null,
    vga: null,
    prepareDirectBoot() {
      const pci = this.pci;
      if (!pci) return;
      pci.pm.enableAt();
      const levels = assignPciIrqsLikeSeaBios(pci.bus, pci.isa);
      // the SCI (9) and the PCI interrupts are level-triggered: set them in the ELCR
      let elcr = 0;
      for (const n of [9, ...levels]) elcr |= 1 << n;
      io.out8(0x4d0, elcr & 0xff);
      io.out8(0x4d1, elcr >> 8);
      const tablesAddr = options.memSize - DIRECT_BOOT_ACPI_SIZE;
      const linked = linkTables(pci.acpi, tablesAddr, DIRECT_BOOT_RSDP);
      if (linked.tables.length > DIRECT_BOOT_ACPI_SIZE) throw new Error('ACPI tables too large');
      mem.load(tablesAddr, linked.tables);
      mem.load(DIRECT_BOOT_RSDP, linked.rsdp);
      this.reservedRegions.push({ base: tablesAddr, length: DIRECT_BOOT_ACPI_SIZE, type: 3 });
    },
    tscHz,
    reservedRegions: [],
    memoryMap() {
      const map = pcMemoryMap(options.memSize);
      return mergeRegions(map, this.reservedRegions);
    },
    setIntrTarget(target) {
      intrTarget = target;
      target(pic.output);
    },
  };

  // local APIC (the CPU's interrupt controller; the 8259 reaches it through LINT0 in ExtINT mode, or
  // straight through while the APIC is disabled) and the IOAPIC (ISA IRQ0 arrives on pin 2, as the MADT's
  // interrupt source override says; line 2 is the 8259 cascade)
  if (options.apic !== false) {
    const apic = machine.addDevice(new LocalApic(machine, { pic }));
    pc.setIntrTarget((level) => apic.setPicOutput(level));
    const ioapic = machine.addDevice(new IoApic(machine, { target: apic }));
    irq.attach({
      setIrq: (n, level) => {
        if (n !== 2) ioapic.setIrq(n === 0 ? 2 : n, level);
      },
    });
    (pc as { apic: LocalApic | null }).apic = apic;
    (pc as { ioapic: IoApic | null }).ioapic = ioapic;
  }

  // PCI: host bridge, ISA bridge, ACPI power management; the ACPI tables and fw_cfg for firmware
  if (options.pci !== false) {
    const { bus, hostBridge, isa } = createPciHost(machine, irq);
    bus.onReset = (message) => machine.guestReset(message);
    machine.addDevice(bus);
    const pm = bus.add(new AcpiPm(machine, irq.line(9)), devfn(1, 3));
    const acpi = buildAcpiTables({
      layout: PIIX4_ACPI_LAYOUT,
      ioapicId: pc.ioapic ? 1 : 0,
      levelIrqs: [9, 10, 11],
      prt: true,
    });
    const fwcfg = machine.addDevice(new FwCfg(machine, { ramSize: options.memSize, acpi }));
    (pc as { pci: PcPci | null }).pci = { bus, hostBridge, isa, pm, acpi, fwcfg };
  }

  if (options.vga) (pc as { vga: Vga | null }).vga = addVga(pc, options.vga === true ? {} : options.vga);

  // ---- extension point: RTC, i8042, local APIC + IOAPIC, PCI, ACPI, fw_cfg, disks, NICs, VGA ----
  for (const make of options.devices ?? []) {
    const made = make(pc);
    if (!made) continue;
    for (const d of Array.isArray(made) ? made : [made]) {
      if (!machine.devices.includes(d)) machine.addDevice(d);
    }
  }
  if (options.boot || options.bootTargets?.length || options.bootOrder) {
    applyBootConfig(pc, { ...options.boot, order: options.boot?.order ?? options.bootOrder }, options.bootTargets ?? []);
  }
  return pc;
}
