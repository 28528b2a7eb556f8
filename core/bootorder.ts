/**
 * The boot order: QEMU's `-boot` option (letters a/b floppy, c hard disk, d CD-ROM, n network; default
 * "cad" on the PC machine) and per-device boot indexes, turned into what Debian's SeaBIOS (a QEMU build)
 * reads on our platform. Checked against QEMU 7.2 (a probe BIOS that dumps CMOS and fw_cfg, and boots of
 * images/build-bootiso.sh and build-bootdisk.sh under -boot c / -boot d) and SeaBIOS 1.16 src/boot.c:
 *
 * - CMOS 0x3D holds the first two devices (low nibble first) and the high nibble of 0x38 the third, as
 *   nibbles 1 floppy, 2 hard disk, 3 CD-ROM, 4 network (BEV option ROMs), 0 none. Bit 0 of 0x38 set
 *   means "do not check the floppy boot sector's 0xAA55 signature"; QEMU leaves it clear unless
 *   -no-fd-bootchk. SeaBIOS's boot_init() gives the listed device kinds the priorities 101, 102, 103 in
 *   order and every other kind 9999.
 * - The fw_cfg file "bootorder" lists OpenFirmware device paths, one per line, the last line ended by a
 *   NUL instead of a newline (QEMU writes it always; empty unless a device has a bootindex). A device whose
 *   path matches line i gets priority i, ahead of every letter. With strict=on QEMU appends "HALT": SeaBIOS
 *   then never tries the devices not listed.
 * - fw_cfg item 0x0E (boot menu) and the files "etc/boot-menu-wait" (QEMU's splash-time, ms) and
 *   "etc/boot-fail-wait" (reboot-timeout, ms; -1 = wait forever after "No bootable device.", QEMU's
 *   default; SeaBIOS's own default when the file is missing is to reboot after 60 s).
 * - The legacy fw_cfg item 0x0C (boot device) is not set by QEMU on the PC and not read by SeaBIOS.
 *
 * `once=` (the order for the first boot only; after a reset the machine boots in `order`) is done by a
 * small device that rewrites the CMOS bytes when the machine resets.
 */
import type { Device } from './machine';
import { FW_CFG_BOOT_MENU } from '../devices/fwcfg';

/** QEMU's default boot order for the PC machine: floppy, hard disk, CD-ROM */
export const DEFAULT_BOOT_ORDER = 'cad';
/** the PC's CMOS holds three boot devices */
export const PC_MAX_BOOT_DEVICES = 3;

export const CMOS_BOOT_FLAG1 = 0x38;
export const CMOS_BOOT_FLAG2 = 0x3d;

/** SeaBIOS's priority for a device kind the CMOS order does not name */
export const SEABIOS_DEFAULT_PRIO = 9999;

export class BootOrderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BootOrderError';
  }
}

export type BootKind = 'floppy' | 'disk' | 'cdrom' | 'network';

const NIBBLE: Record<string, number> = { a: 1, b: 1, c: 2, d: 3, n: 4 };
const KIND_OF_NIBBLE: (BootKind | null)[] = [null, 'floppy', 'disk', 'cdrom', 'network'];
const KIND_NAME: Record<BootKind, string> = { floppy: 'floppy', disk: 'hard disk', cdrom: 'CD-ROM', network: 'network' };

/**
 * Checks a string of boot letters as QEMU does for the PC machine and returns it in lower case: letters
 * a–p only, none twice (QEMU's validate_bootdevices), and then only a, b, c, d, n, at most three
 * (pc.c set_boot_dev). Throws BootOrderError with QEMU's wording otherwise.
 */
export function checkBootOrder(order: string): string {
  const s = order.toLowerCase();
  if (s.length === 0) throw new BootOrderError('empty boot order (use letters: a floppy, c hard disk, d CD-ROM, n network)');
  const seen = new Set<string>();
  for (const ch of s) {
    if (ch < 'a' || ch > 'p') throw new BootOrderError(`Invalid boot device '${ch}' (use letters: a floppy, c hard disk, d CD-ROM, n network)`);
    if (seen.has(ch)) throw new BootOrderError(`Boot device '${ch}' was given twice`);
    seen.add(ch);
  }
  if (s.length > PC_MAX_BOOT_DEVICES) throw new BootOrderError(`Too many boot devices for PC: '${s}' (at most ${PC_MAX_BOOT_DEVICES})`);
  for (const ch of s) {
    if (!(ch in NIBBLE)) throw new BootOrderError(`Invalid boot device for PC: '${ch}' (use a floppy, c hard disk, d CD-ROM, n network)`);
  }
  return s;
}

export interface CmosBootBytes {
  /** CMOS 0x3D: first device (bits 0–3), second (bits 4–7) */
  flag2: number;
  /** CMOS 0x38: third device (bits 4–7); bit 0 = skip the floppy boot signature check */
  flag1: number;
}

/**
 * The CMOS boot bytes for an order, as QEMU's set_boot_dev writes them. Lenient, for devices: letters it
 * does not know become "no device" and only the first three count (user input goes through
 * checkBootOrder first). `checkFloppySignature` false is QEMU's -no-fd-bootchk.
 */
export function cmosBootBytes(order: string, checkFloppySignature = true): CmosBootBytes {
  const s = order.toLowerCase();
  const n = (i: number): number => NIBBLE[s[i] ?? ''] ?? 0;
  return { flag2: (n(1) << 4) | n(0), flag1: (n(2) << 4) | (checkFloppySignature ? 0 : 1) };
}

/** SeaBIOS's reading of the CMOS bytes (boot_init): each kind's default priority, and the signature check */
export function seabiosCmosPriorities(flag1: number, flag2: number): { prio: Record<BootKind, number>; checkFloppySignature: boolean } {
  const prio: Record<BootKind, number> = { floppy: SEABIOS_DEFAULT_PRIO, disk: SEABIOS_DEFAULT_PRIO, cdrom: SEABIOS_DEFAULT_PRIO, network: SEABIOS_DEFAULT_PRIO };
  let bits = (flag2 & 0xff) | ((flag1 & 0xf0) << 4);
  for (let p = 101; p < 104; p++) {
    const kind = KIND_OF_NIBBLE[bits & 0x0f];
    bits >>= 4;
    if (kind) prio[kind] = p;
  }
  return { prio, checkFloppySignature: (flag1 & 1) === 0 };
}

/** the device kinds an order names, in order (for messages: "CD-ROM, hard disk") */
export function describeBootOrder(order: string): string {
  const kinds: string[] = [];
  for (const ch of order.toLowerCase()) {
    const k = KIND_OF_NIBBLE[NIBBLE[ch] ?? 0];
    if (k && !kinds.includes(KIND_NAME[k])) kinds.push(KIND_NAME[k]);
  }
  return kinds.join(', ');
}

// ---------------------------------------------------------------------------------------------------
// QEMU's -boot option

export interface BootConfig {
  /** boot letters, checked (default "cad") */
  order: string;
  /** letters for the first boot only; after a reset the machine boots in `order` */
  once?: string;
  /** offer SeaBIOS's boot menu ("Press ESC for boot menu") */
  menu?: boolean;
  /** how long the menu prompt waits, ms (QEMU's splash-time; 0–65535) */
  menuWaitMs?: number;
  /** boot only the devices of the bootorder list (QEMU's strict=on: "HALT" after them) */
  strict?: boolean;
  /** after "No bootable device.", reboot after this many ms; -1 = wait forever (QEMU's default) */
  rebootTimeoutMs?: number;
  /** check the 0xAA55 signature of a floppy boot sector (default true; QEMU's -no-fd-bootchk clears it) */
  checkFloppySignature?: boolean;
}

function onOff(key: string, v: string): boolean {
  if (v === 'on' || v === 'yes' || v === 'true') return true;
  if (v === 'off' || v === 'no' || v === 'false') return false;
  throw new BootOrderError(`boot option ${key}=${v}: expected on or off`);
}

function intIn(key: string, v: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(v)) throw new BootOrderError(`boot option ${key}=${v}: not a whole number`);
  const n = Number(v);
  if (n < min || n > max) throw new BootOrderError(`boot option ${key}=${v}: must be between ${min} and ${max}`);
  return n;
}

/**
 * Parses QEMU's -boot syntax: "dc" (the order), or "order=dc,once=d,menu=on,splash-time=2000,
 * strict=on,reboot-timeout=5000" (any subset; a bare first item is the order). Throws BootOrderError.
 */
export function parseBootOption(text: string): BootConfig {
  const cfg: BootConfig = { order: DEFAULT_BOOT_ORDER };
  const items = text.split(',');
  items.forEach((item, i) => {
    const eq = item.indexOf('=');
    if (eq < 0) {
      if (i === 0 && item !== '') {
        cfg.order = checkBootOrder(item);
        return;
      }
      throw new BootOrderError(`boot option '${item}': expected key=value (order, once, menu, splash-time, strict, reboot-timeout)`);
    }
    const key = item.slice(0, eq);
    const v = item.slice(eq + 1);
    switch (key) {
      case 'order':
        cfg.order = checkBootOrder(v);
        break;
      case 'once':
        cfg.once = checkBootOrder(v);
        break;
      case 'menu':
        cfg.menu = onOff(key, v);
        break;
      case 'splash-time':
        cfg.menuWaitMs = intIn(key, v, 0, 0xffff);
        break;
      case 'strict':
        cfg.strict = onOff(key, v);
        break;
      case 'reboot-timeout':
        cfg.rebootTimeoutMs = intIn(key, v, -1, 0xffff);
        break;
      default:
        throw new BootOrderError(`unknown boot option '${key}' (order, once, menu, splash-time, strict, reboot-timeout)`);
    }
  });
  return cfg;
}

// ---------------------------------------------------------------------------------------------------
// device paths for the "bootorder" file (what QEMU writes for a device with a bootindex)

export type BootTarget =
  /** an IDE disk or CD-ROM on the PIIX3 IDE function (00:01.1): channel 0/1, unit 0 (master) / 1 (slave) */
  | { kind: 'ide'; channel: number; unit: number }
  /** a floppy drive on the ISA controller at 0x3F0 behind the PIIX3 ISA bridge (00:01.0) */
  | { kind: 'floppy'; unit: number }
  /** a virtio-blk PCI function */
  | { kind: 'virtio-blk'; slot: number; fn?: number }
  /** a disk or CD-ROM on a SCSI HBA (virtio-scsi) in a PCI slot */
  | { kind: 'scsi'; slot: number; fn?: number; target: number; lun?: number }
  /** a PCI device's option ROM (a NIC's PXE ROM) */
  | { kind: 'pci-rom'; slot: number; fn?: number; name?: string }
  /** a ROM SeaBIOS loads from fw_cfg "genroms/NAME" (e.g. linuxboot_dma.bin) */
  | { kind: 'named-rom'; name: string };

const hex = (n: number): string => (n >>> 0).toString(16);

function pciPath(name: string, slot: number, fn = 0): string {
  if (!(slot >= 0 && slot < 32 && fn >= 0 && fn < 8)) throw new BootOrderError(`no PCI device ${slot}.${fn}`);
  return `/pci@i0cf8/${name}@${hex(slot)}${fn ? ',' + hex(fn) : ''}`;
}

/** the OpenFirmware path QEMU 7.2 puts in "bootorder" for a device (SeaBIOS matches it with globs) */
export function bootDevicePath(t: BootTarget): string {
  switch (t.kind) {
    case 'ide':
      if (!(t.channel === 0 || t.channel === 1) || !(t.unit === 0 || t.unit === 1)) {
        throw new BootOrderError(`no IDE channel ${t.channel} unit ${t.unit}`);
      }
      return `${pciPath('ide', 1, 1)}/drive@${t.channel}/disk@${t.unit}`;
    case 'floppy':
      if (!(t.unit === 0 || t.unit === 1)) throw new BootOrderError(`no floppy unit ${t.unit}`);
      return `${pciPath('isa', 1)}/fdc@03f0/floppy@${t.unit}`;
    case 'virtio-blk':
      return `${pciPath('scsi', t.slot, t.fn)}/disk@0,0`;
    case 'scsi':
      return `${pciPath('scsi', t.slot, t.fn)}/channel@0/disk@${hex(t.target)},${hex(t.lun ?? 0)}`;
    case 'pci-rom':
      return pciPath(t.name ?? 'ethernet', t.slot, t.fn);
    case 'named-rom':
      return `/rom@genroms/${t.name}`;
  }
}

/**
 * The "bootorder" file: the devices' paths in boot order, "HALT" last when strict, lines separated by
 * "\n" and the whole ended by a NUL (QEMU's get_boot_devices_list). Empty (0 bytes) with no devices.
 */
export function bootorderFile(targets: BootTarget[], strict = false): Uint8Array {
  const lines = targets.map(bootDevicePath);
  if (strict && lines.length) lines.push('HALT');
  if (!lines.length) return new Uint8Array(0);
  const text = lines.join('\n') + '\0';
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// applying it to a PC

/** the parts of a PC the boot configuration touches (core/pc.ts's Pc satisfies it) */
export interface BootablePc {
  readonly machine: { addDevice<T extends Device>(d: T): T };
  readonly rtc: { setBootOrder(order: string, checkFloppySignature?: boolean): void };
  readonly pci: {
    fwcfg: { addFile(name: string, data: Uint8Array): number; setItem(key: number, data: Uint8Array): void };
  } | null;
}

function le(n: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (n >>> (8 * i)) & 0xff;
  return out;
}

/** the device that turns a `once=` order back into the normal one at the first reset */
class BootOnce implements Device {
  readonly name = 'boot-once';
  private pending = true;
  constructor(
    private readonly rtc: BootablePc['rtc'],
    private readonly order: string,
    private readonly check: boolean,
  ) {}
  reset(): void {
    if (!this.pending) return;
    this.pending = false;
    this.rtc.setBootOrder(this.order, this.check);
  }
  saveState(): { pending: boolean } {
    return { pending: this.pending };
  }
  loadState(state: unknown): void {
    this.pending = !!(state as { pending?: boolean } | null)?.pending;
  }
}

/**
 * Sets a PC up to boot as `cfg` and `targets` say, the way QEMU sets up SeaBIOS: the CMOS boot bytes,
 * and on a PC with fw_cfg the boot-menu item and the "bootorder", "etc/boot-fail-wait" and (with a menu
 * wait) "etc/boot-menu-wait" files. `targets` are devices with a boot index, highest priority first.
 * Call it after the devices are added and before the firmware runs.
 */
export function applyBootConfig(pc: BootablePc, cfg: Partial<BootConfig> = {}, targets: BootTarget[] = []): void {
  const order = checkBootOrder(cfg.order ?? DEFAULT_BOOT_ORDER);
  const once = cfg.once !== undefined ? checkBootOrder(cfg.once) : undefined;
  const check = cfg.checkFloppySignature ?? true;
  pc.rtc.setBootOrder(once ?? order, check);
  if (once !== undefined) pc.machine.addDevice(new BootOnce(pc.rtc, order, check));
  const fw = pc.pci?.fwcfg;
  if (!fw) return;
  fw.setItem(FW_CFG_BOOT_MENU, le(cfg.menu ? 1 : 0, 2));
  if (cfg.menuWaitMs !== undefined) {
    if (!(Number.isInteger(cfg.menuWaitMs) && cfg.menuWaitMs >= 0 && cfg.menuWaitMs <= 0xffff)) {
      throw new BootOrderError(`boot menu wait ${cfg.menuWaitMs} ms: must be 0–65535`);
    }
    fw.addFile('etc/boot-menu-wait', le(cfg.menuWaitMs, 2));
  }
  const reboot = cfg.rebootTimeoutMs ?? -1;
  if (!(Number.isInteger(reboot) && reboot >= -1 && reboot <= 0xffff)) throw new BootOrderError(`reboot timeout ${reboot} ms: must be -1–65535`);
  fw.addFile('etc/boot-fail-wait', le(reboot, 4));
  fw.addFile('bootorder', bootorderFile(targets, cfg.strict));
}
