/**
 * vm.json on the Node host: reads the file, validates it with the one validator of the format
 * (core/vmconfig.ts, which documents the fields), resolves its paths against the file's folder (whatever
 * the current directory), and turns it into what `x86vm run vm.json` needs. applyVmSettings() merges it
 * with the command line:
 *
 * - the command line overrides: --mem, --serial, --boot; --kernel or --bios replaces the whole firmware
 *   of the file (its initrd and command line too); otherwise --initrd and --append replace the file's
 *   ones; --cdrom replaces the file's "cdrom";
 * - the command line adds: --hda…--hdd and --drive after the file's disks (a slot both want is an
 *   error naming both), --nic after the file's cards; --deterministic, --no-reboot and --snapshot switch
 *   those on whatever the file says;
 * - with --restore, the snapshot holds the machine: the file's memory, CPU, firmware, deterministic and
 *   noReboot are not used (its disks and cards are).
 */
import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { UsageError, type RunOptions, type SerialOption } from './options';
import type { DriveSpec } from './drives';
import { parseNicConfig, type NicSpec } from './nics';
import { validateVmConfig, VmConfigError, VM_CONFIG_NAME, type VmConfig } from '../core/vmconfig';

export { VM_CONFIG_VERSION } from '../core/vmconfig';
export const SEABIOS_PATH = '/usr/share/seabios/bios.bin';

/** what a vm.json contributes to a run (the command line may add to it or override it) */
export interface VmRunSettings {
  /** the file, as given */
  file: string;
  /** the validated description (paths as written) */
  config: VmConfig;
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
  /** the disks, then the "cdrom" shorthand (its source ends in " cdrom") */
  drives: DriveSpec[];
  nics: NicSpec[];
  bootOrder?: string;
  serial?: SerialOption;
}

/** validates the text of a vm.json and resolves its paths against the file's directory */
export function parseVmConfig(text: string, file: string): VmRunSettings {
  let cfg: VmConfig;
  try {
    cfg = validateVmConfig(text, file);
  } catch (e) {
    if (e instanceof VmConfigError) throw new UsageError(e.message);
    throw e;
  }
  const base = dirname(resolve(file));
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const out: VmRunSettings = { file, config: cfg, name: cfg.name ?? basename(base), drives: [], nics: [] };
  if (cfg.memory !== undefined) out.memSize = cfg.memory;
  if (cfg.cpu.apic !== undefined) out.apic = cfg.cpu.apic;
  if (cfg.deterministic !== undefined) out.deterministic = cfg.deterministic;
  if (cfg.noReboot !== undefined) out.noReboot = cfg.noReboot;
  const fw = cfg.firmware;
  if (fw.kind === 'default-guest') out.defaultGuest = true;
  else if (fw.kind === 'seabios') out.bios = SEABIOS_PATH;
  else if (fw.kind === 'bios') out.bios = path(fw.bios);
  else {
    out.kernel = path(fw.kernel);
    if (fw.initrd !== undefined) out.initrd = path(fw.initrd);
    if (fw.append !== undefined) out.append = fw.append;
  }
  cfg.disks.forEach((d, i) => {
    const media = d.media ?? 'disk';
    out.drives.push({
      file: path(d.file),
      interface: d.interface ?? 'ide',
      media,
      format: d.format,
      readOnly: !!d.readOnly || media === 'cdrom',
      index: d.slot,
      snapshot: !!d.snapshot,
      source: `${file} disks[${i}]`,
    });
  });
  if (cfg.cdrom !== undefined) {
    out.drives.push({ file: path(cfg.cdrom), interface: 'ide', media: 'cdrom', readOnly: true, index: 2, snapshot: false, source: `${file} cdrom` });
  }
  cfg.nics.forEach((n, i) => {
    // node/nics.ts checks what only the Node host knows (the user-mode NAT's allow/hostfwd rules)
    const field = `${file}: field 'nics[${i}]'`;
    out.nics.push({ ...parseNicConfig(n, field, path), source: `${file} nics[${i}]` });
  });
  if (cfg.boot !== undefined) out.bootOrder = cfg.boot;
  if (cfg.serial !== undefined) out.serial = cfg.serial.kind === 'file' ? { kind: 'file', path: path(cfg.serial.path) } : cfg.serial;
  return out;
}

/** the vm.json a `x86vm run` argument names: the file itself, or DIR/vm.json */
export function vmFileOf(arg: string): string {
  let st;
  try {
    st = statSync(arg);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read VM '${arg}': ${code === 'ENOENT' ? 'no such file or folder' : (e as Error).message}`);
  }
  if (!st.isDirectory()) return arg;
  const file = join(arg, VM_CONFIG_NAME);
  try {
    statSync(file);
  } catch {
    throw new UsageError(`'${arg}' is a folder without a ${VM_CONFIG_NAME} (x86vm create DIR makes a VM folder)`);
  }
  return file;
}

/** reads and validates a vm.json file */
export function loadVmConfig(file: string): VmRunSettings {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read VM file '${file}': ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder' : (e as Error).message}`);
  }
  try {
    return parseVmConfig(text, file);
  } catch (e) {
    if (e instanceof UsageError && !/\.json$/i.test(file) && e.message.startsWith(`${file}: not valid JSON`)) {
      throw new UsageError(`${e.message}; x86vm run VM takes a vm.json (or its folder): a kernel goes after --kernel`);
    }
    throw e;
  }
}

/** which run options the command line gave (the others may come from the vm.json) */
export interface GivenOptions {
  mem: boolean;
  serial: boolean;
}

/** merges a vm.json under the command line's options (the rules are in the file comment) */
export function applyVmSettings(options: RunOptions, vm: VmRunSettings, given: GivenOptions): RunOptions {
  const o: RunOptions = { ...options, vmName: vm.name, vmFile: vm.file };
  const restoring = options.restore !== undefined;
  if (!restoring) {
    if (!given.mem && vm.memSize !== undefined) o.memSize = vm.memSize;
    if (vm.apic !== undefined) o.apic = vm.apic;
    if (vm.deterministic) o.deterministic = true;
    if (vm.noReboot) o.noReboot = true;
    if (options.kernel === undefined && options.bios === undefined) {
      // the file's firmware; --initrd and --append replace its parts
      if (vm.bios !== undefined) o.bios = vm.bios;
      if (vm.kernel !== undefined) {
        o.kernel = vm.kernel;
        o.initrd = options.initrd ?? vm.initrd;
        o.append = options.append ?? vm.append;
      }
    }
  }
  const cliCdrom = options.drives.some((d) => d.source.startsWith('--cdrom '));
  const fromFile = vm.drives.filter((d) => !(cliCdrom && d.source === `${vm.file} cdrom`));
  o.drives = [...fromFile, ...options.drives];
  o.nics = [...vm.nics, ...(options.nics ?? [])];
  if (o.boot === undefined && vm.bootOrder !== undefined) o.boot = { order: vm.bootOrder };
  if (!given.serial && vm.serial !== undefined) o.serial = vm.serial;
  return o;
}
