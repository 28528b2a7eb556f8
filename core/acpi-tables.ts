/**
 * The ACPI tables of the x86vm PC, built as bytes: RSDP (v0), RSDT, FADT (revision 3), FACS, MADT and a
 * small hand-written DSDT in AML; plus the QEMU/SeaBIOS linker-loader script ("etc/table-loader") that
 * tells the firmware where to place them and which pointers and checksums to patch.
 *
 * Written from the ACPI specification (5.2: RSDP, RSDT, FADT, FACS, MADT; 20: AML encoding) and the
 * linker/loader format that SeaBIOS executes (src/fw/romfile_loader.c) and QEMU emits
 * (hw/acpi/bios-linker-loader.c): 128-byte little-endian commands ALLOCATE (file, alignment, zone
 * HIGH/FSEG), ADD_POINTER (add the address of a source file to a 1/2/4/8-byte field of a destination
 * file) and ADD_CHECKSUM (subtract the byte sum of a range from a checksum byte).
 *
 * The blobs are "unlinked": every pointer holds the offset of its target within the target's file, and
 * checksums are correct for that state. linkTables() runs the same script for a given placement (boots
 * without SeaBIOS, and tests).
 *
 * The DSDT holds \_SB.PCI0 (PNP0A03, _ADR 0, _BBN 0, _UID 0) with a _PRT that, in APIC mode (after
 * \_PIC(1)), routes slot S pin P to GSI 16 + ((S + P - 2) & 3) — the PIIX's PIRQ lines on IOAPIC inputs
 * 16–19 — and in PIC mode returns no entries, so the OS uses the interrupt line register the firmware
 * programmed from the PIRQ routing; and \_S5 = {SLP_TYP, SLP_TYP, 0, 0} with the value the PM device
 * decodes as soft-off.
 */

// ---------------------------------------------------------------------------------------------------
// what the tables describe

export interface AcpiLayout {
  /** PM1a event block (PM1_STS, PM1_EN): 4 bytes */
  pm1aEvt: number;
  /** PM1a control block: 2 bytes */
  pm1aCnt: number;
  /** PM timer: 4 bytes (24-bit counter) */
  pmTmr: number;
  /** GPE0 block and its length (0 = none) */
  gpe0: number;
  gpe0Len: number;
  sciIrq: number;
  /** SMI command port and the values that switch ACPI mode on/off (0 = always in ACPI mode) */
  smiCmd: number;
  acpiEnable: number;
  acpiDisable: number;
  /** FADT reset register: an I/O port write of resetValue */
  resetPort: number;
  resetValue: number;
  /** SLP_TYP for \_S5 */
  slpTypS5: number;
}

export interface AcpiTablesConfig {
  layout: AcpiLayout;
  /** number of CPUs (local APIC IDs 0..cpus-1) */
  cpus?: number;
  lapicBase?: number;
  ioapicBase?: number;
  ioapicId?: number;
  /** ISA IRQs that are level-triggered active-high (SCI, PCI): MADT interrupt source overrides */
  levelIrqs?: number[];
  /** emit a _PRT for the PCI slots (APIC mode: GSI 16–19) */
  prt?: boolean;
  oemId?: string;
  oemTableId?: string;
}

// ---------------------------------------------------------------------------------------------------
// AML

/** an AML byte sequence */
export type AmlBytes = number[];

/** PkgLength encoding of a body of `bodyLen` bytes (the length counts its own encoding) */
export function amlPkgLength(bodyLen: number): AmlBytes {
  if (bodyLen + 1 < 0x40) return [bodyLen + 1];
  for (let n = 2; n <= 4; n++) {
    const total = bodyLen + n;
    if (total < 1 << (4 + 8 * (n - 1))) {
      const out = [((n - 1) << 6) | (total & 0x0f)];
      for (let i = 1; i < n; i++) out.push((total >> (4 + 8 * (i - 1))) & 0xff);
      return out;
    }
  }
  throw new RangeError(`AML package too long: ${bodyLen}`);
}

function nameSeg(s: string): AmlBytes {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(s)) throw new Error(`bad AML name segment ${s}`);
  const p = s.padEnd(4, '_');
  return [...p].map((c) => c.charCodeAt(0));
}

/** a NameString: "\\_SB.PCI0", "^FOO", "_S5" */
export function amlName(path: string): AmlBytes {
  const out: AmlBytes = [];
  let i = 0;
  if (path[0] === '\\') {
    out.push(0x5c);
    i = 1;
  }
  while (path[i] === '^') {
    out.push(0x5e);
    i++;
  }
  const rest = path.slice(i);
  const segs = rest === '' ? [] : rest.split('.');
  if (segs.length === 0) out.push(0x00);
  else if (segs.length === 2) out.push(0x2e);
  else if (segs.length > 2) out.push(0x2f, segs.length);
  for (const s of segs) out.push(...nameSeg(s));
  return out;
}

export function amlInt(v: number): AmlBytes {
  if (v === 0) return [0x00];
  if (v === 1) return [0x01];
  if (v < 0 || !Number.isInteger(v) || v > 0xffffffff) throw new RangeError(`AML integer ${v}`);
  if (v <= 0xff) return [0x0a, v];
  if (v <= 0xffff) return [0x0b, v & 0xff, v >> 8];
  return [0x0c, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
}

export function amlString(s: string): AmlBytes {
  return [0x0d, ...[...s].map((c) => c.charCodeAt(0) & 0x7f), 0x00];
}

/** EISA ID compression ("PNP0A03" → 0x030AD041) as an AML DWord constant */
export function amlEisaId(id: string): AmlBytes {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new Error(`bad EISA id ${id}`);
  const l = (k: number) => (id.charCodeAt(k) - 0x40) & 0x1f;
  const w = (l(0) << 10) | (l(1) << 5) | l(2);
  const d = parseInt(id.slice(3), 16);
  return [0x0c, w >> 8, w & 0xff, d >> 8, d & 0xff];
}

export function amlPackage(elements: AmlBytes[]): AmlBytes {
  if (elements.length > 255) throw new RangeError('AML package with more than 255 elements');
  const body = [elements.length, ...elements.flat()];
  return [0x12, ...amlPkgLength(body.length), ...body];
}

export function amlNameDecl(name: string, value: AmlBytes): AmlBytes {
  return [0x08, ...amlName(name), ...value];
}

export function amlScope(name: string, body: AmlBytes[]): AmlBytes {
  const b = [...amlName(name), ...body.flat()];
  return [0x10, ...amlPkgLength(b.length), ...b];
}

export function amlDevice(name: string, body: AmlBytes[]): AmlBytes {
  const b = [...amlName(name), ...body.flat()];
  return [0x5b, 0x82, ...amlPkgLength(b.length), ...b];
}

export function amlMethod(name: string, argc: number, serialized: boolean, body: AmlBytes[]): AmlBytes {
  const b = [...amlName(name), (argc & 7) | (serialized ? 8 : 0), ...body.flat()];
  return [0x14, ...amlPkgLength(b.length), ...b];
}

export function amlIf(predicate: AmlBytes, body: AmlBytes[]): AmlBytes {
  const b = [...predicate, ...body.flat()];
  return [0xa0, ...amlPkgLength(b.length), ...b];
}

export function amlReturn(value: AmlBytes): AmlBytes {
  return [0xa4, ...value];
}

export function amlStore(src: AmlBytes, dst: AmlBytes): AmlBytes {
  return [0x70, ...src, ...dst];
}

/** Buffer (n) {bytes} */
export function amlBuffer(bytes: AmlBytes): AmlBytes {
  const b = [...amlInt(bytes.length), ...bytes];
  return [0x11, ...amlPkgLength(b.length), ...b];
}

/**
 * The PCI host bridge's windows as an ACPI resource template (ACPI 6.4.3): bus numbers 0–255, the
 * configuration ports 0xCF8–0xCFF, I/O 0x0000–0x0CF7 and 0x0D00–0xFFFF, the legacy VGA window
 * 0xA0000–0xBFFFF and a 32-bit window for BARs, 0x80000000–0xFEBFFFFF (above any RAM size x86vm allows,
 * below the IOAPIC). Without it Linux finds no window to put unassigned BARs in.
 */
export function pciHostResources(): AmlBytes {
  const w16 = (v: number): number[] => [v & 0xff, (v >> 8) & 0xff];
  const w32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
  // Word Address Space descriptor: type 0 memory, 1 I/O, 2 bus number; general flags 0x0C (MinFixed, MaxFixed)
  const word = (type: number, typeFlags: number, min: number, max: number): number[] => [
    0x88, 0x0d, 0x00, type, 0x0c, typeFlags, ...w16(0), ...w16(min), ...w16(max), ...w16(0), ...w16(max - min + 1),
  ];
  // DWord Memory: type-specific flags 0x03 = cacheable, read-write
  const dwordMem = (min: number, max: number): number[] => [
    0x87, 0x17, 0x00, 0x00, 0x0c, 0x03, ...w32(0), ...w32(min), ...w32(max), ...w32(0), ...w32(max - min + 1),
  ];
  return [
    ...word(2, 0, 0x00, 0xff),
    0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08, // IO (Decode16, 0xCF8, 0xCF8, 1, 8)
    ...word(1, 0x03, 0x0000, 0x0cf7),
    ...word(1, 0x03, 0x0d00, 0xffff),
    ...dwordMem(0x000a0000, 0x000bffff),
    ...dwordMem(0x80000000, 0xfebfffff),
    0x79, 0x00, // End Tag
  ];
}

export function amlArg(n: number): AmlBytes {
  return [0x68 + n];
}

// ---------------------------------------------------------------------------------------------------
// table helpers

export function checksum(data: Uint8Array, start = 0, len = data.length - start): number {
  let s = 0;
  for (let i = start; i < start + len; i++) s = (s + data[i]) & 0xff;
  return s;
}

class Writer {
  buf: number[] = [];
  get length(): number {
    return this.buf.length;
  }
  u8(v: number): this {
    this.buf.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.u8(v).u8(v >> 8);
  }
  u32(v: number): this {
    return this.u16(v & 0xffff).u16(v >>> 16);
  }
  u64(v: number): this {
    return this.u32(v % 0x100000000).u32(Math.floor(v / 0x100000000));
  }
  ascii(s: string, len: number): this {
    for (let i = 0; i < len; i++) this.u8(i < s.length ? s.charCodeAt(i) : 0x20);
    return this;
  }
  bytes(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.u8(b[i]);
    return this;
  }
  zeros(n: number): this {
    for (let i = 0; i < n; i++) this.u8(0);
    return this;
  }
  /** generic address structure for an I/O port register */
  gasIo(port: number, bits: number, accessSize: number): this {
    if (port === 0) return this.zeros(12);
    return this.u8(1).u8(bits).u8(0).u8(accessSize).u64(port);
  }
  setU32(off: number, v: number): void {
    for (let i = 0; i < 4; i++) this.buf[off + i] = (v >>> (8 * i)) & 0xff;
  }
}

const ACPI_HEADER_LEN = 36;

function header(w: Writer, sig: string, rev: number, cfg: AcpiTablesConfig): void {
  w.ascii(sig, 4).u32(0).u8(rev).u8(0);
  w.ascii(cfg.oemId ?? 'X86VM', 6).ascii(cfg.oemTableId ?? 'X86VMPC', 8).u32(1);
  w.ascii('XVM ', 4).u32(1);
}

/** fills length and checksum of a finished table */
function finish(w: Writer): Uint8Array {
  w.setU32(4, w.length);
  const out = Uint8Array.from(w.buf);
  out[9] = (0x100 - checksum(out)) & 0xff;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// the tables

export const FADT_FLAG_WBINVD = 1 << 0;
export const FADT_FLAG_PROC_C1 = 1 << 2;
export const FADT_FLAG_SLP_BUTTON = 1 << 5;
export const FADT_FLAG_RESET_REG_SUP = 1 << 10;
export const IAPC_LEGACY_DEVICES = 1 << 0;
export const IAPC_8042 = 1 << 1;
export const FADT_LEN = 244;
export const FADT_OFF_FACS = 36;
export const FADT_OFF_DSDT = 40;

export function buildDsdt(cfg: AcpiTablesConfig): Uint8Array {
  const w = new Writer();
  header(w, 'DSDT', 1, cfg);
  const pci0: AmlBytes[] = [
    amlNameDecl('_HID', amlEisaId('PNP0A03')),
    amlNameDecl('_ADR', amlInt(0)),
    amlNameDecl('_BBN', amlInt(0)),
    amlNameDecl('_UID', amlInt(0)),
    amlNameDecl('_CRS', amlBuffer(pciHostResources())),
  ];
  const body: AmlBytes[] = [];
  if (cfg.prt ?? true) {
    const entries: AmlBytes[] = [];
    for (let slot = 1; slot < 32; slot++) {
      for (let pin = 1; pin <= 4; pin++) {
        const gsi = 16 + ((slot + pin - 2) & 3);
        entries.push(amlPackage([amlInt(((slot << 16) | 0xffff) >>> 0), amlInt(pin - 1), amlInt(0), amlInt(gsi)]));
      }
    }
    // PRTA has 124 entries (< 256, so a plain Package)
    pci0.push(amlNameDecl('PRTA', amlPackage(entries)));
    pci0.push(
      amlMethod('_PRT', 0, false, [amlIf(amlName('\\PICF'), [amlReturn(amlName('PRTA'))]), amlReturn(amlPackage([]))]),
    );
    body.push(amlNameDecl('PICF', amlInt(0)));
    body.push(amlMethod('_PIC', 1, false, [amlStore(amlArg(0), amlName('PICF'))]));
  }
  body.push(amlScope('\\_SB', [amlDevice('PCI0', pci0)]));
  const s5 = cfg.layout.slpTypS5;
  body.push(amlNameDecl('\\_S5', amlPackage([amlInt(s5), amlInt(s5), amlInt(0), amlInt(0)])));
  w.bytes(body.flat());
  return finish(w);
}

export function buildFacs(): Uint8Array {
  const w = new Writer();
  w.ascii('FACS', 4).u32(64).u32(0).u32(0).u32(0).u32(0).u64(0).u8(1).zeros(64 - 33);
  return Uint8Array.from(w.buf);
}

/** FADT revision 3 with the FACS and DSDT pointers given (offsets in the unlinked blob) */
export function buildFadt(cfg: AcpiTablesConfig, facsPtr: number, dsdtPtr: number): Uint8Array {
  const L = cfg.layout;
  const w = new Writer();
  header(w, 'FACP', 3, cfg);
  w.u32(facsPtr).u32(dsdtPtr);
  w.u8(1); // 44: INT_MODEL in ACPI 1.0 (multiple APIC); reserved later
  w.u8(0); // 45: preferred PM profile: unspecified
  w.u16(L.sciIrq);
  w.u32(L.smiCmd).u8(L.acpiEnable).u8(L.acpiDisable).u8(0).u8(0);
  w.u32(L.pm1aEvt).u32(0).u32(L.pm1aCnt).u32(0).u32(0).u32(L.pmTmr).u32(L.gpe0).u32(0);
  w.u8(4).u8(2).u8(0).u8(4).u8(L.gpe0 ? L.gpe0Len : 0).u8(0).u8(0).u8(0);
  w.u16(0x0fff).u16(0x0fff); // P_LVL2/3 latency: C2 and C3 not supported
  w.u16(0).u16(0).u8(0).u8(0);
  w.u8(0).u8(0).u8(0x32); // day alarm, month alarm, century (CMOS 0x32)
  w.u16(IAPC_LEGACY_DEVICES | IAPC_8042).u8(0);
  w.u32(FADT_FLAG_WBINVD | FADT_FLAG_PROC_C1 | FADT_FLAG_SLP_BUTTON | (L.resetPort ? FADT_FLAG_RESET_REG_SUP : 0));
  w.gasIo(L.resetPort, 8, 1).u8(L.resetValue).zeros(3);
  // X_FIRMWARE_CTRL, X_DSDT and the X_ register blocks stay zero: the OS uses the 32-bit fields
  w.zeros(FADT_LEN - w.length);
  return finish(w);
}

export const MADT_FLAG_PCAT_COMPAT = 1;

export function buildMadt(cfg: AcpiTablesConfig): Uint8Array {
  const w = new Writer();
  header(w, 'APIC', 1, cfg);
  w.u32(cfg.lapicBase ?? 0xfee00000).u32(MADT_FLAG_PCAT_COMPAT);
  const cpus = cfg.cpus ?? 1;
  for (let i = 0; i < cpus; i++) w.u8(0).u8(8).u8(i).u8(i).u32(1);
  w.u8(1).u8(12).u8(cfg.ioapicId ?? 0).u8(0).u32(cfg.ioapicBase ?? 0xfec00000).u32(0);
  // ISA IRQ 0 (the PIT) is IOAPIC input 2; conforming polarity and trigger
  w.u8(2).u8(10).u8(0).u8(0).u32(2).u16(0);
  for (const irq of cfg.levelIrqs ?? [cfg.layout.sciIrq, 10, 11]) {
    w.u8(2).u8(10).u8(0).u8(irq).u32(irq).u16(0x000d); // active high, level
  }
  // LINT1 of every processor is NMI (edge, high)
  w.u8(4).u8(6).u8(0xff).u16(0x0005).u8(1);
  return finish(w);
}

export function buildRsdt(cfg: AcpiTablesConfig, entries: number[]): Uint8Array {
  const w = new Writer();
  header(w, 'RSDT', 1, cfg);
  for (const e of entries) w.u32(e);
  return finish(w);
}

export function buildRsdp(cfg: AcpiTablesConfig, rsdtPtr: number): Uint8Array {
  const w = new Writer();
  w.ascii('RSD PTR ', 8).u8(0).ascii(cfg.oemId ?? 'X86VM', 6).u8(0).u32(rsdtPtr);
  const out = Uint8Array.from(w.buf);
  out[8] = (0x100 - checksum(out)) & 0xff;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// linker/loader

export const LOADER_ENTRY_SIZE = 128;
export const LOADER_FILESZ = 56;
export const LOADER_ALLOCATE = 1;
export const LOADER_ADD_POINTER = 2;
export const LOADER_ADD_CHECKSUM = 3;
export const LOADER_ZONE_HIGH = 1;
export const LOADER_ZONE_FSEG = 2;

export const ACPI_TABLES_FILE = 'etc/acpi/tables';
export const ACPI_RSDP_FILE = 'etc/acpi/rsdp';
export const TABLE_LOADER_FILE = 'etc/table-loader';

export type LoaderCommand =
  | { cmd: 'allocate'; file: string; align: number; zone: 'high' | 'fseg' }
  | { cmd: 'pointer'; dest: string; src: string; offset: number; size: 1 | 2 | 4 | 8 }
  | { cmd: 'checksum'; file: string; offset: number; start: number; length: number };

function putName(e: Uint8Array, at: number, name: string): void {
  if (name.length >= LOADER_FILESZ) throw new Error(`loader file name too long: ${name}`);
  for (let i = 0; i < name.length; i++) e[at + i] = name.charCodeAt(i);
}

function putU32(e: Uint8Array, at: number, v: number): void {
  for (let i = 0; i < 4; i++) e[at + i] = (v >>> (8 * i)) & 0xff;
}

function getU32(e: Uint8Array, at: number): number {
  return (e[at] | (e[at + 1] << 8) | (e[at + 2] << 16) | (e[at + 3] << 24)) >>> 0;
}

function getName(e: Uint8Array, at: number): string {
  let s = '';
  for (let i = 0; i < LOADER_FILESZ && e[at + i] !== 0; i++) s += String.fromCharCode(e[at + i]);
  return s;
}

/** the 128-byte-per-command script SeaBIOS executes */
export function encodeLoader(cmds: LoaderCommand[]): Uint8Array {
  const out = new Uint8Array(cmds.length * LOADER_ENTRY_SIZE);
  cmds.forEach((c, i) => {
    const e = out.subarray(i * LOADER_ENTRY_SIZE, (i + 1) * LOADER_ENTRY_SIZE);
    if (c.cmd === 'allocate') {
      putU32(e, 0, LOADER_ALLOCATE);
      putName(e, 4, c.file);
      putU32(e, 4 + LOADER_FILESZ, c.align);
      e[8 + LOADER_FILESZ] = c.zone === 'high' ? LOADER_ZONE_HIGH : LOADER_ZONE_FSEG;
    } else if (c.cmd === 'pointer') {
      putU32(e, 0, LOADER_ADD_POINTER);
      putName(e, 4, c.dest);
      putName(e, 4 + LOADER_FILESZ, c.src);
      putU32(e, 4 + 2 * LOADER_FILESZ, c.offset);
      e[8 + 2 * LOADER_FILESZ] = c.size;
    } else {
      putU32(e, 0, LOADER_ADD_CHECKSUM);
      putName(e, 4, c.file);
      putU32(e, 4 + LOADER_FILESZ, c.offset);
      putU32(e, 8 + LOADER_FILESZ, c.start);
      putU32(e, 12 + LOADER_FILESZ, c.length);
    }
  });
  return out;
}

/** parses a loader script back into commands (unknown commands are skipped, as SeaBIOS does) */
export function decodeLoader(script: Uint8Array): LoaderCommand[] {
  const cmds: LoaderCommand[] = [];
  for (let off = 0; off + LOADER_ENTRY_SIZE <= script.length; off += LOADER_ENTRY_SIZE) {
    const e = script.subarray(off, off + LOADER_ENTRY_SIZE);
    const kind = getU32(e, 0);
    if (kind === LOADER_ALLOCATE) {
      cmds.push({ cmd: 'allocate', file: getName(e, 4), align: getU32(e, 60), zone: e[64] === LOADER_ZONE_FSEG ? 'fseg' : 'high' });
    } else if (kind === LOADER_ADD_POINTER) {
      cmds.push({ cmd: 'pointer', dest: getName(e, 4), src: getName(e, 60), offset: getU32(e, 116), size: e[120] as 1 | 2 | 4 | 8 });
    } else if (kind === LOADER_ADD_CHECKSUM) {
      cmds.push({ cmd: 'checksum', file: getName(e, 4), offset: getU32(e, 60), start: getU32(e, 64), length: getU32(e, 68) });
    }
  }
  return cmds;
}

/**
 * Executes a loader script the way SeaBIOS does: `place(file, size, align, zone)` returns the physical
 * address chosen for each allocated file; returns the patched copies of the files, by name.
 */
export function runLoader(
  script: Uint8Array,
  files: Record<string, Uint8Array>,
  place: (file: string, size: number, align: number, zone: 'high' | 'fseg') => number,
): { data: Record<string, Uint8Array>; addr: Record<string, number> } {
  const data: Record<string, Uint8Array> = {};
  const addr: Record<string, number> = {};
  for (const c of decodeLoader(script)) {
    if (c.cmd === 'allocate') {
      const f = files[c.file];
      if (!f) continue;
      data[c.file] = f.slice();
      addr[c.file] = place(c.file, f.length, c.align, c.zone);
    } else if (c.cmd === 'pointer') {
      const d = data[c.dest];
      if (!d || addr[c.src] === undefined) throw new Error(`loader: pointer between unallocated files ${c.dest} ← ${c.src}`);
      let v = 0;
      for (let i = c.size - 1; i >= 0; i--) v = v * 256 + d[c.offset + i];
      v += addr[c.src];
      for (let i = 0; i < c.size; i++) {
        d[c.offset + i] = v % 256;
        v = Math.floor(v / 256);
      }
    } else {
      const d = data[c.file];
      if (!d) throw new Error(`loader: checksum of unallocated file ${c.file}`);
      d[c.offset] = (d[c.offset] - checksum(d, c.start, c.length)) & 0xff;
    }
  }
  return { data, addr };
}

// ---------------------------------------------------------------------------------------------------
// the whole set

export interface AcpiBlobs {
  /** "etc/acpi/tables": FACS, DSDT, FADT, MADT, RSDT (unlinked) */
  tables: Uint8Array;
  /** "etc/acpi/rsdp" (unlinked: its RSDT address is the RSDT's offset in tables) */
  rsdp: Uint8Array;
  /** "etc/table-loader" */
  loader: Uint8Array;
  /** each table's offset and length in `tables` */
  offsets: Record<'FACS' | 'DSDT' | 'FACP' | 'APIC' | 'RSDT', { offset: number; length: number }>;
}

export function buildAcpiTables(cfg: AcpiTablesConfig): AcpiBlobs {
  const parts: Uint8Array[] = [];
  let size = 0;
  const offsets = {} as AcpiBlobs['offsets'];
  const add = (sig: keyof AcpiBlobs['offsets'], t: Uint8Array): number => {
    const off = size;
    parts.push(t);
    offsets[sig] = { offset: off, length: t.length };
    size += t.length;
    const pad = (4 - (size & 3)) & 3;
    if (pad) {
      parts.push(new Uint8Array(pad));
      size += pad;
    }
    return off;
  };
  const facs = add('FACS', buildFacs()); // first: the blob is allocated 64-byte aligned
  const dsdt = add('DSDT', buildDsdt(cfg));
  const fadt = add('FACP', buildFadt(cfg, facs, dsdt));
  const madt = add('APIC', buildMadt(cfg));
  const rsdt = add('RSDT', buildRsdt(cfg, [fadt, madt]));
  const tables = new Uint8Array(size);
  let o = 0;
  for (const p of parts) {
    tables.set(p, o);
    o += p.length;
  }
  const rsdp = buildRsdp(cfg, rsdt);

  const T = ACPI_TABLES_FILE;
  const cmds: LoaderCommand[] = [{ cmd: 'allocate', file: T, align: 64, zone: 'high' }];
  cmds.push({ cmd: 'pointer', dest: T, src: T, offset: fadt + FADT_OFF_FACS, size: 4 });
  cmds.push({ cmd: 'pointer', dest: T, src: T, offset: fadt + FADT_OFF_DSDT, size: 4 });
  for (const [sig, { offset, length }] of Object.entries(offsets)) {
    if (sig === 'FACS') continue;
    if (sig === 'RSDT') {
      for (let i = 0; i < 2; i++) cmds.push({ cmd: 'pointer', dest: T, src: T, offset: rsdt + ACPI_HEADER_LEN + 4 * i, size: 4 });
    }
    cmds.push({ cmd: 'checksum', file: T, offset: offset + 9, start: offset, length });
  }
  cmds.push({ cmd: 'allocate', file: ACPI_RSDP_FILE, align: 16, zone: 'fseg' });
  cmds.push({ cmd: 'pointer', dest: ACPI_RSDP_FILE, src: T, offset: 16, size: 4 });
  cmds.push({ cmd: 'checksum', file: ACPI_RSDP_FILE, offset: 8, start: 0, length: 20 });
  return { tables, rsdp, loader: encodeLoader(cmds), offsets };
}

/**
 * Links the tables for a placement chosen by the caller (boots without SeaBIOS): tables at tablesAddr
 * (64-byte aligned, e.g. near the top of RAM, reserved in e820), RSDP at rsdpAddr (16-byte aligned, in
 * 0xE0000–0xFFFFF so the OS's scan finds it). Returns the bytes to copy there.
 */
export function linkTables(b: AcpiBlobs, tablesAddr: number, rsdpAddr: number): { tables: Uint8Array; rsdp: Uint8Array } {
  if (tablesAddr % 64 || rsdpAddr % 16) throw new RangeError('ACPI tables need 64-byte, RSDP 16-byte alignment');
  const r = runLoader(b.loader, { [ACPI_TABLES_FILE]: b.tables, [ACPI_RSDP_FILE]: b.rsdp }, (f) =>
    f === ACPI_TABLES_FILE ? tablesAddr : rsdpAddr,
  );
  return { tables: r.data[ACPI_TABLES_FILE], rsdp: r.data[ACPI_RSDP_FILE] };
}
