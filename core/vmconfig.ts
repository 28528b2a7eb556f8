/**
 * vm.json: a VM described as a file. A VM is a folder holding its vm.json and its disk images (and, for a
 * direct kernel boot, its kernel and initrd); paths in vm.json are relative to the file, so the folder can
 * be moved, copied or zipped as a whole and runs wherever it lands.
 *
 * This is the one validator of the format, shared by the Node host (node/vmconfig.ts resolves the paths
 * and turns the result into run options) and the browser page (web/config.ts maps the paths to the files
 * of a picked folder). It knows nothing of Node or the DOM: it takes the file's text and name and returns
 * a typed description whose paths are still as written.
 *
 * Format (version 1; every field but "version" is optional):
 *   {
 *     "version": 1,
 *     "name": "demo",                       // shown in messages (default: the folder's name)
 *     "memory": "128M",                     // RAM: "640K", "128M", "1G", or a number of MiB (default 128M)
 *     "cpu": { "apic": true },              // false: 8259 PIC only (no local APIC / IOAPIC)
 *     "deterministic": false,               // guest time follows the instruction count
 *     "noReboot": false,                    // a guest reset ends the run
 *     "firmware": "default-guest"           // x86vm's own Linux guest (the default)
 *               | "seabios"                 // the host's SeaBIOS (/usr/share/seabios/bios.bin)
 *               | { "bios": "bios.bin" }    // a firmware image (64–256 KiB)
 *               | { "kernel": "bzImage", "initrd": "initramfs.cpio.gz", "append": "console=ttyS0" },
 *     "disks": [ { "file": "disk.vhd",      // required
 *                  "interface": "ide" | "virtio-blk" | "virtio-scsi",   // default ide
 *                  "media": "disk" | "cdrom",                           // default disk
 *                  "format": "raw" | "vhd" | "vdi" | "iso",             // default: from the contents
 *                  "slot": 0,                // IDE 0–3 (primary master … secondary slave), SCSI target 0–7
 *                  "readOnly": false,        // a CD-ROM is always read-only
 *                  "snapshot": false } ],    // the guest's writes stay in memory
 *     "cdrom": "debian.iso",                // shorthand for an IDE CD-ROM on the secondary master
 *     "nics": [ { "model": "ne2k" | "virtio",                 // required
 *                 "mac": "52:54:00:12:34:56",                 // a unicast MAC (default: QEMU's, counting up)
 *                 "link": "up" | "down",                      // at power-on (default up)
 *                 "pcap": "net.pcap",                         // capture the card's traffic to this file
 *                 "slot": 5,                                  // PCI slot 2–31 (default: the first free)
 *                 "switch": "unix:../sw.sock" | "tcp:127.0.0.1:PORT",   // join an `x86vm switch`
 *                 "user": true | { "allow": ["8080"], "hostfwd": ["tcp::2222-:22"], "dns": ["host:10.0.2.2"] }
 *               } ],                        // user-mode NAT; with neither switch nor user: no cable
 *     "boot": "cd",                         // firmware boot order, QEMU's letters (c disk, d CD, a floppy, n net)
 *     "serial": "stdio" | "none" | "file:console.log"     // COM1
 *   }
 * The NIC fields are those of `x86vm run --nic` (node/nics.ts), the allow/hostfwd/dns strings written
 * as on the command line. Every wrong field gets a one-line error naming the file, the field and what was
 * expected; unknown fields are errors too (a typo must not be silently ignored).
 */
import { MAX_RAM } from './memory';
import { parseMac } from './net';
import { BootOrderError, checkBootOrder } from './bootorder';

export const VM_CONFIG_VERSION = 1;
/** the name of the file in a VM folder */
export const VM_CONFIG_NAME = 'vm.json';

/** a problem with a vm.json; the message is one line and starts with the file's name */
export class VmConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VmConfigError';
  }
}

export type VmDiskInterface = 'ide' | 'virtio-blk' | 'virtio-scsi';
export type VmDiskMedia = 'disk' | 'cdrom';
export type VmDiskFormat = 'raw' | 'vhd' | 'vdi' | 'iso';
export type VmNicModel = 'ne2k' | 'virtio';

/** listed in this order in messages */
export const VM_DISK_INTERFACES: readonly VmDiskInterface[] = ['virtio-blk', 'ide', 'virtio-scsi'];
export const VM_DISK_FORMATS: readonly VmDiskFormat[] = ['raw', 'vhd', 'vdi', 'iso'];
export const VM_NIC_MODELS: readonly VmNicModel[] = ['ne2k', 'virtio'];

/** a disk as written (fields left out stay undefined: each host has its defaults) */
export interface VmDiskConfig {
  /** relative to the vm.json, or absolute */
  file: string;
  interface?: VmDiskInterface;
  media?: VmDiskMedia;
  format?: VmDiskFormat;
  slot?: number;
  readOnly?: boolean;
  snapshot?: boolean;
}

export type VmFirmware =
  | { kind: 'default-guest' }
  | { kind: 'seabios' }
  | { kind: 'bios'; bios: string }
  | { kind: 'kernel'; kernel: string; initrd?: string; append?: string };

export interface VmNicUser {
  allow?: string[];
  hostfwd?: string[];
  dns?: string[];
}

/** a network card as written (the vocabulary of --nic) */
export interface VmNicConfig {
  model: VmNicModel;
  /** checked: a unicast MAC address */
  mac?: string;
  link?: 'up' | 'down';
  /** a capture file, relative to the vm.json */
  pcap?: string;
  slot?: number;
  /** "unix:PATH" (PATH relative to the vm.json) or "tcp:HOST:PORT" */
  switch?: string;
  user?: true | VmNicUser;
}

export type VmSerial = { kind: 'stdio' } | { kind: 'none' } | { kind: 'file'; path: string };

/** a validated vm.json; paths as written (relative to the file unless absolute) */
export interface VmConfig {
  /** the file's name, as given to the validator */
  file: string;
  version: number;
  name?: string;
  /** RAM in bytes */
  memory?: number;
  cpu: { apic?: boolean };
  deterministic?: boolean;
  noReboot?: boolean;
  /** "default-guest" when the file names none */
  firmware: VmFirmware;
  disks: VmDiskConfig[];
  cdrom?: string;
  nics: VmNicConfig[];
  /** boot letters, checked and in lower case */
  boot?: string;
  serial?: VmSerial;
}

/** what the file holds, as JSON (what `x86vm create` writes) */
export interface VmJson {
  version: number;
  name?: string;
  memory?: string | number;
  cpu?: { apic?: boolean };
  deterministic?: boolean;
  noReboot?: boolean;
  firmware?: 'default-guest' | 'seabios' | { bios: string } | { kernel: string; initrd?: string; append?: string };
  disks?: VmDiskConfig[];
  cdrom?: string;
  nics?: VmNicConfig[];
  boot?: string;
  serial?: string;
}

/**
 * Parses a RAM size: "32M", "1G", "640K", "512MiB", "1048576B", or a plain number of MiB. Returns the
 * bytes, or a short reason why not ("not a size", "RAM must be between 1 MiB and 1984 MiB", …).
 */
export function parseRamSize(text: string): number | string {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([KMGT])(?:i?B)?|B)?\s*$/i.exec(text);
  if (!m) return 'not a size';
  const unit = m[2]?.toUpperCase();
  const bytesUnit = !unit && /B\s*$/i.test(text);
  const scale = unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : unit === 'T' ? 1024 ** 4 : bytesUnit ? 1 : 1024 ** 2;
  const bytes = Number(m[1]) * scale;
  if (!Number.isInteger(bytes)) return 'not a whole number of bytes';
  if (bytes < 1024 * 1024 || bytes > MAX_RAM) return `RAM must be between 1 MiB and ${MAX_RAM / 1024 / 1024} MiB`;
  if (bytes % 4096 !== 0) return 'RAM must be a multiple of 4 KiB';
  return bytes;
}

class Checker {
  constructor(readonly file: string) {}

  fail(field: string, expected: string, got?: unknown): never {
    const shown = got === undefined ? '' : `, got ${String(JSON.stringify(got)).slice(0, 60)}`;
    throw new VmConfigError(`${this.file}: field '${field}': expected ${expected}${shown}`);
  }

  object(v: unknown, field: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, 'an object', v);
    return v as Record<string, unknown>;
  }

  only(o: Record<string, unknown>, field: string, keys: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!keys.includes(k)) {
        const where = field ? `${field}.${k}` : k;
        throw new VmConfigError(`${this.file}: field '${where}': unknown field (known here: ${keys.join(', ')})`);
      }
    }
  }

  str(v: unknown, field: string, what = 'a non-empty string'): string {
    if (typeof v !== 'string' || v === '') this.fail(field, what, v);
    return v as string;
  }

  path(v: unknown, field: string): string {
    const p = this.str(v, field, `a file name (relative to ${VM_CONFIG_NAME}, or absolute)`);
    if (p.includes('\0')) this.fail(field, 'a file name without NUL characters');
    return p;
  }

  bool(v: unknown, field: string): boolean {
    if (typeof v !== 'boolean') this.fail(field, 'true or false', v);
    return v as boolean;
  }

  oneOf<T extends string>(v: unknown, field: string, values: readonly T[]): T {
    if (typeof v !== 'string' || !values.includes(v as T)) this.fail(field, `one of ${values.join(', ')}`, v);
    return v as T;
  }

  int(v: unknown, field: string, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(field, `a whole number from ${min} to ${max}`, v);
    return v as number;
  }

  strings(v: unknown, field: string, what: string): string[] {
    if (!Array.isArray(v)) this.fail(field, `a list of ${what}`, v);
    (v as unknown[]).forEach((x, i) => {
      if (typeof x !== 'string' || x === '' || x.includes(',')) this.fail(`${field}[${i}]`, `${what.replace(/s$/, '')} (a string without commas)`, x);
    });
    return [...(v as string[])];
  }
}

const TOP_FIELDS = ['$schema', 'version', 'name', 'memory', 'cpu', 'deterministic', 'noReboot', 'firmware', 'disks', 'cdrom', 'nics', 'boot', 'serial'];
const DISK_FIELDS = ['file', 'interface', 'media', 'format', 'slot', 'readOnly', 'snapshot'];
const NIC_FIELDS = ['model', 'mac', 'link', 'pcap', 'slot', 'switch', 'user'];
const FIRMWARE_EXPECTED = '"default-guest", "seabios", { "bios": FILE } or { "kernel": FILE, "initrd": FILE, "append": TEXT }';

/**
 * Validates the text of a vm.json. `file` names it in messages. Throws VmConfigError (one line: the
 * file, the field, what was expected and what was found).
 */
export function validateVmConfig(text: string, file: string): VmConfig {
  const c = new Checker(file);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new VmConfigError(`${file}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new VmConfigError(`${file}: expected a JSON object ({ "version": ${VM_CONFIG_VERSION}, … }), got ${String(JSON.stringify(raw)).slice(0, 60)}`);
  }
  const o = raw as Record<string, unknown>;
  c.only(o, '', TOP_FIELDS);
  if (o.version === undefined) c.fail('version', `${VM_CONFIG_VERSION}`);
  if (typeof o.version === 'number' && Number.isInteger(o.version) && o.version > VM_CONFIG_VERSION) {
    throw new VmConfigError(
      `${file}: field 'version': expected ${VM_CONFIG_VERSION} (version ${o.version} is newer than this x86vm understands; upgrade x86vm)`,
    );
  }
  if (o.version !== VM_CONFIG_VERSION) c.fail('version', `${VM_CONFIG_VERSION}`, o.version);
  if (o.$schema !== undefined) c.str(o.$schema, '$schema');

  const cfg: VmConfig = { file, version: VM_CONFIG_VERSION, cpu: {}, firmware: { kind: 'default-guest' }, disks: [], nics: [] };
  if (o.name !== undefined) cfg.name = c.str(o.name, 'name');

  if (o.memory !== undefined) {
    const m = o.memory;
    if (typeof m !== 'number' && typeof m !== 'string') c.fail('memory', 'a size like "128M" or a number of MiB', m);
    if (typeof m === 'number' && !(Number.isInteger(m) && m > 0)) c.fail('memory', 'a size like "128M" or a whole number of MiB', m);
    const bytes = parseRamSize(String(m));
    if (typeof bytes === 'string') c.fail('memory', `a RAM size like "128M" or a number of MiB (${bytes})`, m);
    cfg.memory = bytes as number;
  }
  if (o.cpu !== undefined) {
    const cpu = c.object(o.cpu, 'cpu');
    c.only(cpu, 'cpu', ['apic']);
    if (cpu.apic !== undefined) cfg.cpu.apic = c.bool(cpu.apic, 'cpu.apic');
  }
  if (o.deterministic !== undefined) cfg.deterministic = c.bool(o.deterministic, 'deterministic');
  if (o.noReboot !== undefined) cfg.noReboot = c.bool(o.noReboot, 'noReboot');

  const fw = o.firmware;
  if (fw === undefined || fw === 'default-guest') cfg.firmware = { kind: 'default-guest' };
  else if (fw === 'seabios') cfg.firmware = { kind: 'seabios' };
  else if (typeof fw === 'object' && fw !== null && !Array.isArray(fw)) {
    const f = fw as Record<string, unknown>;
    if ('bios' in f) {
      c.only(f, 'firmware', ['bios']);
      cfg.firmware = { kind: 'bios', bios: c.path(f.bios, 'firmware.bios') };
    } else if ('kernel' in f) {
      c.only(f, 'firmware', ['kernel', 'initrd', 'append']);
      const k: VmFirmware = { kind: 'kernel', kernel: c.path(f.kernel, 'firmware.kernel') };
      if (f.initrd !== undefined) k.initrd = c.path(f.initrd, 'firmware.initrd');
      if (f.append !== undefined) {
        if (typeof f.append !== 'string') c.fail('firmware.append', 'a string (the kernel command line)', f.append);
        k.append = f.append as string;
      }
      cfg.firmware = k;
    } else c.fail('firmware', FIRMWARE_EXPECTED, fw);
  } else c.fail('firmware', FIRMWARE_EXPECTED, fw);

  if (o.disks !== undefined) {
    if (!Array.isArray(o.disks)) c.fail('disks', 'a list of disks ([{ "file": … }])', o.disks);
    (o.disks as unknown[]).forEach((d, i) => {
      const field = `disks[${i}]`;
      const disk = c.object(d, field);
      c.only(disk, field, DISK_FIELDS);
      if (disk.file === undefined) c.fail(`${field}.file`, `a file name (relative to ${VM_CONFIG_NAME}, or absolute)`);
      const out: VmDiskConfig = { file: c.path(disk.file, `${field}.file`) };
      if (disk.interface !== undefined) out.interface = c.oneOf(disk.interface, `${field}.interface`, VM_DISK_INTERFACES);
      if (disk.media !== undefined) out.media = c.oneOf(disk.media, `${field}.media`, ['disk', 'cdrom'] as const);
      const iface = out.interface ?? 'ide';
      if (out.media === 'cdrom' && iface === 'virtio-blk') c.fail(`${field}.media`, 'disk for interface virtio-blk (a CD-ROM needs ide or virtio-scsi)', out.media);
      if (disk.format !== undefined) out.format = c.oneOf(disk.format, `${field}.format`, VM_DISK_FORMATS);
      if (disk.slot !== undefined) {
        if (iface === 'virtio-blk') c.fail(`${field}.slot`, 'no slot for interface virtio-blk (slots are for ide and virtio-scsi)', disk.slot);
        out.slot = c.int(disk.slot, `${field}.slot`, 0, iface === 'ide' ? 3 : 7);
      }
      if (disk.readOnly !== undefined) out.readOnly = c.bool(disk.readOnly, `${field}.readOnly`);
      if (disk.snapshot !== undefined) out.snapshot = c.bool(disk.snapshot, `${field}.snapshot`);
      cfg.disks.push(out);
    });
  }
  if (o.cdrom !== undefined) cfg.cdrom = c.path(o.cdrom, 'cdrom');

  if (o.nics !== undefined) {
    if (!Array.isArray(o.nics)) c.fail('nics', 'a list of network cards ([{ "model": "virtio" }])', o.nics);
    (o.nics as unknown[]).forEach((n, i) => cfg.nics.push(checkNic(c, n, `nics[${i}]`)));
  }

  if (o.boot !== undefined) {
    const b = c.str(o.boot, 'boot', 'boot order letters (c disk, d CD-ROM, a floppy, n network; at most 3)');
    try {
      cfg.boot = checkBootOrder(b);
    } catch (e) {
      if (!(e instanceof BootOrderError)) throw e;
      c.fail('boot', `boot order letters (c disk, d CD-ROM, a floppy, n network; at most 3, none twice)`, b);
    }
  }
  if (o.serial !== undefined) {
    const s = c.str(o.serial, 'serial', '"stdio", "none" or "file:PATH"');
    if (s === 'stdio') cfg.serial = { kind: 'stdio' };
    else if (s === 'none') cfg.serial = { kind: 'none' };
    else if (s.startsWith('file:') && s.length > 5) cfg.serial = { kind: 'file', path: s.slice(5) };
    else c.fail('serial', '"stdio", "none" or "file:PATH"', s);
  }
  return cfg;
}

function checkNic(c: Checker, v: unknown, field: string): VmNicConfig {
  const o = c.object(v, field);
  c.only(o, field, NIC_FIELDS);
  if (o.model === undefined) c.fail(`${field}.model`, `one of ${VM_NIC_MODELS.join(', ')}`);
  const nic: VmNicConfig = { model: c.oneOf(o.model, `${field}.model`, VM_NIC_MODELS) };
  if (o.mac !== undefined) {
    const mac = c.str(o.mac, `${field}.mac`, 'a MAC address like "52:54:00:12:34:56"');
    try {
      parseMac(mac);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      c.fail(`${field}.mac`, /multicast/.test(e.message) ? 'a unicast MAC address (the first byte even), like "52:54:00:12:34:56"' : 'a MAC address like "52:54:00:12:34:56"', mac);
    }
    nic.mac = mac.trim().toLowerCase();
  }
  if (o.link !== undefined) nic.link = c.oneOf(o.link, `${field}.link`, ['up', 'down'] as const);
  if (o.pcap !== undefined) {
    nic.pcap = c.path(o.pcap, `${field}.pcap`);
    if (nic.pcap.includes(',')) c.fail(`${field}.pcap`, 'a file name without commas', nic.pcap);
  }
  if (o.slot !== undefined) nic.slot = c.int(o.slot, `${field}.slot`, 2, 31);
  if (o.switch !== undefined) {
    const sw = c.str(o.switch, `${field}.switch`, 'an x86vm switch address: "unix:PATH" or "tcp:127.0.0.1:PORT"');
    const unix = /^unix:[^,]+$/.test(sw);
    const tcp = /^tcp:(?:\[[^\]]+\]|[^:,]+):\d{1,5}$/.test(sw);
    if (!unix && !tcp) c.fail(`${field}.switch`, 'an x86vm switch address: "unix:PATH" or "tcp:127.0.0.1:PORT"', sw);
    nic.switch = sw;
  }
  if (o.user !== undefined) {
    if (o.user === true) nic.user = true;
    else if (o.user === false) {
      // the same as leaving it out
    } else {
      const u = c.object(o.user, `${field}.user`);
      c.only(u, `${field}.user`, ['allow', 'hostfwd', 'dns']);
      const user: VmNicUser = {};
      if (u.allow !== undefined) user.allow = c.strings(u.allow, `${field}.user.allow`, 'rules like "8080", "tcp:10.0.2.2:80" or "udp:5000-5010"');
      if (u.hostfwd !== undefined) user.hostfwd = c.strings(u.hostfwd, `${field}.user.hostfwd`, 'forwards like "tcp::2222-:22"');
      if (u.dns !== undefined) {
        user.dns = c.strings(u.dns, `${field}.user.dns`, 'names like "host:10.0.2.2"');
        user.dns.forEach((d, i) => {
          if (!/^[A-Za-z0-9][A-Za-z0-9.-]*:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(d)) c.fail(`${field}.user.dns[${i}]`, 'NAME:A.B.C.D', d);
        });
      }
      nic.user = user;
    }
  }
  if (nic.switch !== undefined && nic.user !== undefined) c.fail(`${field}.user`, `no "user" beside "switch" (a card is on a switch or on the user-mode NAT)`, o.user);
  return nic;
}

/** the memory size as vm.json writes it: "128M", "1G", "1536K" */
export function ramSizeText(bytes: number): string {
  if (bytes % (1024 ** 3) === 0) return `${bytes / 1024 ** 3}G`;
  if (bytes % (1024 ** 2) === 0) return `${bytes / 1024 ** 2}M`;
  return `${bytes / 1024}K`;
}
