/**
 * vm.json: a VM described as a file. A VM is a folder holding its vm.json and its disk images (and, for a
 * direct kernel boot, its kernel and initrd); every path in vm.json is relative to the file, so the folder
 * can be moved, copied or zipped as a whole and runs wherever it lands.
 *
 * Format (version 1; every field but "version" is optional):
 *   {
 *     "version": 1,
 *     "name": "demo",                       // shown in messages
 *     "memory": "128M",                     // or a number of MiB
 *     "cpu": { "apic": true },              // false: 8259 PIC only (no local APIC / IOAPIC)
 *     "deterministic": false,               // time follows the instruction count
 *     "noReboot": false,                    // a guest reset ends the run
 *     "firmware": { "kernel": "bzImage", "initrd": "initramfs.cpio.gz", "append": "console=ttyS0" }
 *              | { "bios": "bios.bin" } | "seabios" | "default-guest",
 *     "disks": [ { "file": "disk.vhd", "interface": "ide" | "virtio-blk" | "virtio-scsi",
 *                  "media": "disk" | "cdrom", "format": "raw" | "vhd" | "vdi" | "iso",
 *                  "slot": 0, "readOnly": false, "snapshot": false } ],
 *     "cdrom": "debian.iso",                // shorthand for an IDE CD-ROM on the secondary master
 *     "boot": "cd",                         // boot order for firmware, in QEMU's letters
 *     "serial": "stdio" | "none" | "file:console.log"
 *   }
 * Every wrong field gets a one-line error naming the file, the field and what was expected. Unknown
 * fields are errors too (a typo must not be silently ignored).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { UsageError, parseMemSize, parseSerial, type RunOptions } from './options';
import type { DriveInterface, DriveMedia, DriveSpec } from './drives';

export const VM_CONFIG_VERSION = 1;
export const SEABIOS_PATH = '/usr/share/seabios/bios.bin';

export interface VmDisk {
  file: string;
  interface?: DriveInterface;
  media?: DriveMedia;
  format?: string;
  slot?: number;
  readOnly?: boolean;
  snapshot?: boolean;
}

export interface VmConfig {
  version: number;
  name?: string;
  memory?: string | number;
  cpu?: { apic?: boolean };
  deterministic?: boolean;
  noReboot?: boolean;
  firmware?: 'seabios' | 'default-guest' | { bios: string } | { kernel: string; initrd?: string; append?: string };
  disks?: VmDisk[];
  cdrom?: string;
  boot?: string;
  serial?: string;
}

/** what a vm.json contributes to a run (the command line may add to it or override it) */
export interface VmRunSettings {
  /** the file, as given */
  file: string;
  name: string;
  memSize?: number;
  apic?: boolean;
  deterministic?: boolean;
  noReboot?: boolean;
  bios?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  defaultGuest?: boolean;
  drives: DriveSpec[];
  bootOrder?: string;
  serial?: RunOptions['serial'];
}

class Checker {
  constructor(private readonly file: string) {}

  fail(field: string, expected: string, got?: unknown): never {
    const shown = got === undefined ? '' : `, got ${JSON.stringify(got)?.slice(0, 60)}`;
    throw new UsageError(`${this.file}: field '${field}': expected ${expected}${shown}`);
  }

  object(v: unknown, field: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, 'an object', v);
    return v as Record<string, unknown>;
  }

  only(o: Record<string, unknown>, field: string, keys: string[]): void {
    for (const k of Object.keys(o)) {
      if (!keys.includes(k)) {
        const where = field ? `${field}.${k}` : k;
        throw new UsageError(`${this.file}: unknown field '${where}' (known here: ${keys.join(', ')})`);
      }
    }
  }

  str(v: unknown, field: string): string {
    if (typeof v !== 'string' || v === '') this.fail(field, 'a non-empty string', v);
    return v as string;
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
}

/** parses and validates the text of a vm.json; paths are resolved against the file's directory */
export function parseVmConfig(text: string, file: string): VmRunSettings {
  const c = new Checker(file);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const o = c.object(raw, '(top level)');
  c.only(o, '', ['$schema', 'version', 'name', 'memory', 'cpu', 'deterministic', 'noReboot', 'firmware', 'disks', 'cdrom', 'boot', 'serial', 'nics']);
  if (o.version === undefined) c.fail('version', `${VM_CONFIG_VERSION}`);
  const version = c.int(o.version, 'version', 1, Number.MAX_SAFE_INTEGER);
  if (version > VM_CONFIG_VERSION) {
    throw new UsageError(`${file}: version ${version} is newer than this x86vm understands (${VM_CONFIG_VERSION}); upgrade x86vm`);
  }
  const base = dirname(resolve(file));
  const path = (v: unknown, field: string): string => {
    const p = c.str(v, field);
    return isAbsolute(p) ? p : resolve(base, p);
  };
  const out: VmRunSettings = { file, name: o.name === undefined ? base.split('/').pop() ?? 'vm' : c.str(o.name, 'name'), drives: [] };

  if (o.memory !== undefined) {
    const m = o.memory;
    if (typeof m !== 'number' && typeof m !== 'string') c.fail('memory', 'a size like "128M" or a number of MiB', m);
    const text = String(m);
    try {
      out.memSize = parseMemSize(text);
    } catch (e) {
      const why = (e as Error).message.replace(/^--mem: /, '').replace(/ \(got .*$/, '');
      c.fail('memory', `a RAM size like "128M" or a number of MiB (${why})`, m);
    }
  }
  if (o.cpu !== undefined) {
    const cpu = c.object(o.cpu, 'cpu');
    c.only(cpu, 'cpu', ['apic']);
    if (cpu.apic !== undefined) out.apic = c.bool(cpu.apic, 'cpu.apic');
  }
  if (o.deterministic !== undefined) out.deterministic = c.bool(o.deterministic, 'deterministic');
  if (o.noReboot !== undefined) out.noReboot = c.bool(o.noReboot, 'noReboot');

  const fw = o.firmware;
  if (fw === undefined || fw === 'default-guest') out.defaultGuest = true;
  else if (fw === 'seabios') out.bios = SEABIOS_PATH;
  else if (typeof fw === 'object' && fw !== null && !Array.isArray(fw)) {
    const f = fw as Record<string, unknown>;
    if ('bios' in f) {
      c.only(f, 'firmware', ['bios']);
      out.bios = path(f.bios, 'firmware.bios');
    } else if ('kernel' in f) {
      c.only(f, 'firmware', ['kernel', 'initrd', 'append']);
      out.kernel = path(f.kernel, 'firmware.kernel');
      if (f.initrd !== undefined) out.initrd = path(f.initrd, 'firmware.initrd');
      if (f.append !== undefined) {
        if (typeof f.append !== 'string') c.fail('firmware.append', 'a string', f.append);
        out.append = f.append as string;
      }
    } else c.fail('firmware', '{ "kernel": … } or { "bios": … }', fw);
  } else c.fail('firmware', '"seabios", "default-guest", { "kernel": … } or { "bios": … }', fw);

  if (o.disks !== undefined) {
    if (!Array.isArray(o.disks)) c.fail('disks', 'an array', o.disks);
    (o.disks as unknown[]).forEach((d, i) => {
      const field = `disks[${i}]`;
      const disk = c.object(d, field);
      c.only(disk, field, ['file', 'interface', 'media', 'format', 'slot', 'readOnly', 'snapshot']);
      const iface = disk.interface === undefined ? 'ide' : c.oneOf(disk.interface, `${field}.interface`, ['ide', 'virtio-blk', 'virtio-scsi'] as const);
      const media = disk.media === undefined ? 'disk' : c.oneOf(disk.media, `${field}.media`, ['disk', 'cdrom'] as const);
      if (media === 'cdrom' && iface === 'virtio-blk') c.fail(`${field}.media`, 'disk for interface virtio-blk (a CD-ROM needs ide or virtio-scsi)', media);
      const format = disk.format === undefined ? undefined : c.oneOf(disk.format, `${field}.format`, ['raw', 'vhd', 'vdi', 'iso'] as const);
      let slot: number | undefined;
      if (disk.slot !== undefined) {
        if (iface === 'virtio-blk') c.fail(`${field}.slot`, 'no slot for interface virtio-blk', disk.slot);
        slot = c.int(disk.slot, `${field}.slot`, 0, iface === 'ide' ? 3 : 7);
      }
      const readOnly = disk.readOnly === undefined ? false : c.bool(disk.readOnly, `${field}.readOnly`);
      const snapshot = disk.snapshot === undefined ? false : c.bool(disk.snapshot, `${field}.snapshot`);
      out.drives.push({
        file: path(disk.file, `${field}.file`),
        interface: iface,
        media,
        format,
        readOnly: readOnly || media === 'cdrom',
        index: slot,
        snapshot,
        source: `${file} ${field}`,
      });
    });
  }
  if (o.cdrom !== undefined) {
    out.drives.push({ file: path(o.cdrom, 'cdrom'), interface: 'ide', media: 'cdrom', readOnly: true, index: 2, snapshot: false, source: `${file} cdrom` });
  }
  if (o.nics !== undefined) {
    if (!Array.isArray(o.nics) || o.nics.length) c.fail('nics', 'an empty array (network cards are not supported yet)', o.nics);
  }
  if (o.boot !== undefined) {
    const b = c.str(o.boot, 'boot');
    if (!/^[acdn]{1,4}$/.test(b)) c.fail('boot', 'boot order letters: a (floppy), c (disk), d (CD), n (network)', b);
    out.bootOrder = b;
  }
  if (o.serial !== undefined) {
    const s = c.str(o.serial, 'serial');
    try {
      const parsed = parseSerial(s);
      out.serial = parsed.kind === 'file' ? { kind: 'file', path: path(parsed.path, 'serial') } : parsed;
    } catch (e) {
      c.fail('serial', '"stdio", "none" or "file:PATH"', s);
    }
  }
  return out;
}

/** reads and validates a vm.json file */
export function loadVmConfig(file: string): VmRunSettings {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read VM file '${file}': ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return parseVmConfig(text, file);
}
