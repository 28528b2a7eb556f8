/**
 * What the page boots, from its address or from a VM folder (page side, but no DOM APIs: unit-tested in
 * Node).
 *
 * The URL query:
 *   (nothing)            the default guest (bzImage + initramfs.cpio.gz beside the page, console=ttyS0)
 *   kernel=URL           a Linux bzImage or Multiboot kernel; initrd=URL; append=TEXT (command line)
 *   bios=1               boot through SeaBIOS, served beside the page (bios.bin, with vgabios-stdvga.bin as
 *                        the VGA's option ROM): from the disks and CD given, e.g. ?bios=1&cdrom=boot.iso
 *   bios=URL             a firmware image (64–256 KiB); vgabios=URL: the VGA's option ROM to go with it
 *   bootorder=LETTERS    the firmware's boot order as QEMU's -boot: c hard disk, d CD-ROM (default "cad")
 *   mem=SIZE             RAM: 128, 128M, 1G (default 128 MiB)
 *   disk=URL             a disk image (raw, VHD, VDI, ISO; repeatable), loaded lazily by HTTP range
 *                        requests; the guest's writes stay in memory. cdrom=URL: an ISO as a CD-ROM.
 *   if=virtio-blk|ide|virtio-scsi   the controller for the disks (default: IDE)
 *   snapshot=URL         restore this snapshot instead of booting
 *   vga=1                a VGA display adapter, shown on the page's canvas (default: with bios= only)
 *   deterministic=1      guest time follows the instruction count
 *   boot=0               fill the page's controls but do not start
 *
 * A VM folder: the files of a folder holding a vm.json (the format core/vmconfig.ts documents), picked
 * with <input type=file webkitdirectory>; its paths are relative to the folder.
 */
import type { BootConfig, DiskInterface, DiskRequest, Source } from './protocol';
import { parseMemMiB } from './protocol';
import { BootOrderError, checkBootOrder } from '../core/bootorder';
import { validateVmConfig } from '../core/vmconfig';

/** the default guest's files, relative to the page */
export const DEFAULT_KERNEL = 'bzImage';
export const DEFAULT_INITRD = 'initramfs.cpio.gz';
export const DEFAULT_APPEND = 'console=ttyS0';

export function defaultGuest(): BootConfig {
  return {
    label: 'default guest',
    kernel: { url: DEFAULT_KERNEL },
    initrd: { url: DEFAULT_INITRD },
    append: DEFAULT_APPEND,
  };
}

/** SeaBIOS's files, copied beside the page by `npm run web` from Debian's seabios package */
export const SEABIOS_BIOS = 'bios.bin';
export const SEABIOS_VGABIOS = 'vgabios-stdvga.bin';
const SEABIOS_HINT = "SeaBIOS is served with the page only when the machine that built it has Debian's seabios package (apt-get install seabios, then npm run web again)";

/** the firmware and VGA BIOS for booting through SeaBIOS (bios=1), as served beside the page */
export function seabios(): Pick<BootConfig, 'bios' | 'vgaBios'> {
  return {
    bios: { url: SEABIOS_BIOS, name: 'SeaBIOS', hint: SEABIOS_HINT },
    vgaBios: { url: SEABIOS_VGABIOS, name: SEABIOS_VGABIOS, hint: SEABIOS_HINT },
  };
}

/** a bios= value that means "SeaBIOS from beside the page" rather than an address */
function isSeabiosFlag(v: string): boolean {
  return /^(1|true|yes|on|seabios)$/i.test(v);
}

export interface PageRequest {
  /** what to boot (null when a snapshot is to be restored instead) */
  boot: BootConfig | null;
  snapshot: Source | null;
  /** start at once */
  autostart: boolean;
}

const INTERFACES: DiskInterface[] = ['virtio-blk', 'ide', 'virtio-scsi'];
const FORMATS = ['raw', 'vhd', 'vdi', 'iso'];

/** reads the page's query string; throws an Error naming the parameter that is wrong */
export function parseQuery(search: string): PageRequest {
  const q = new URLSearchParams(search);
  const known = ['kernel', 'initrd', 'append', 'bios', 'vgabios', 'bootorder', 'mem', 'disk', 'cdrom', 'if', 'format', 'snapshot', 'deterministic', 'vga', 'boot'];
  for (const k of q.keys()) {
    if (!known.includes(k)) throw new Error(`unknown parameter '${k}' in the page's address (known: ${known.join(', ')})`);
  }
  const one = (k: string): string | undefined => {
    const all = q.getAll(k);
    if (all.length > 1) throw new Error(`parameter '${k}' is given ${all.length} times in the page's address`);
    return all[0];
  };
  const flag = (k: string): boolean | undefined => {
    const v = one(k);
    if (v === undefined) return undefined;
    if (v === '' || v === '1' || v === 'true' || v === 'yes' || v === 'on') return true;
    if (v === '0' || v === 'false' || v === 'no' || v === 'off') return false;
    throw new Error(`parameter '${k}=${v}' should be 1 or 0`);
  };
  const autostart = flag('boot') ?? true;
  const snapshotUrl = one('snapshot');
  const kernel = one('kernel');
  const bios = one('bios');
  if (bios === '') throw new Error("parameter 'bios' needs an address, or 1 for SeaBIOS");
  const vgabios = one('vgabios');
  if (vgabios !== undefined) {
    if (!vgabios) throw new Error("parameter 'vgabios' needs an address");
    if (bios === undefined) throw new Error("parameter 'vgabios' needs a 'bios' (the firmware runs the VGA BIOS)");
    if (isSeabiosFlag(bios)) throw new Error("parameter 'vgabios' goes with 'bios=URL': 'bios=1' brings SeaBIOS's own VGA BIOS");
  }
  let bootOrder: string | undefined;
  const order = one('bootorder');
  if (order !== undefined) {
    if (bios === undefined) throw new Error("parameter 'bootorder' needs a 'bios' (the firmware follows it; a kernel given directly boots itself)");
    try {
      bootOrder = checkBootOrder(order);
    } catch (e) {
      if (e instanceof BootOrderError) throw new Error(`parameter 'bootorder=${order}': ${e.message}`);
      throw e;
    }
  }
  const iface = one('if');
  if (iface !== undefined && !INTERFACES.includes(iface as DiskInterface)) {
    throw new Error(`parameter 'if=${iface}' should be one of ${INTERFACES.join(', ')}`);
  }
  const format = one('format');
  if (format !== undefined && !FORMATS.includes(format)) throw new Error(`parameter 'format=${format}' should be one of ${FORMATS.join(', ')}`);
  const disks: DiskRequest[] = [];
  for (const url of q.getAll('disk')) {
    if (!url) throw new Error("parameter 'disk' needs an address");
    disks.push({ source: { url }, interface: iface as DiskInterface | undefined, format });
  }
  for (const url of q.getAll('cdrom')) {
    if (!url) throw new Error("parameter 'cdrom' needs an address");
    disks.push({ source: { url }, interface: iface as DiskInterface | undefined, media: 'cdrom', readOnly: true });
  }
  let memMiB: number | undefined;
  const mem = one('mem');
  if (mem !== undefined) {
    const m = parseMemMiB(mem);
    if (typeof m === 'string') throw new Error(`parameter 'mem': ${m}`);
    memMiB = m;
  }
  const deterministic = flag('deterministic');
  const vga = flag('vga');
  if (snapshotUrl !== undefined) {
    if (kernel !== undefined || bios !== undefined) throw new Error("give either 'snapshot' or 'kernel'/'bios' in the page's address, not both");
    return { boot: null, snapshot: { url: snapshotUrl }, autostart };
  }
  let boot: BootConfig;
  if (kernel === undefined && bios === undefined) {
    if (one('initrd') !== undefined) throw new Error("parameter 'initrd' needs a 'kernel'");
    boot = defaultGuest();
    const append = one('append');
    if (append !== undefined) boot.append = append;
  } else {
    const firstDisk = disks[0] && 'url' in disks[0].source ? baseName(disks[0].source.url) : undefined;
    const label =
      kernel !== undefined ? baseName(kernel) : isSeabiosFlag(bios!) ? (firstDisk ? `SeaBIOS: ${firstDisk}` : 'SeaBIOS') : baseName(bios!);
    boot = { label };
    if (kernel !== undefined) boot.kernel = { url: kernel, name: baseName(kernel) };
    const initrd = one('initrd');
    if (initrd !== undefined) {
      if (kernel === undefined) throw new Error("parameter 'initrd' needs a 'kernel'");
      boot.initrd = { url: initrd, name: baseName(initrd) };
    }
    if (bios !== undefined) {
      if (isSeabiosFlag(bios)) Object.assign(boot, seabios());
      else boot.bios = { url: bios, name: baseName(bios) };
    }
    if (vgabios !== undefined) boot.vgaBios = { url: vgabios, name: baseName(vgabios) };
    if (bootOrder !== undefined) boot.bootOrder = bootOrder;
    boot.append = one('append') ?? '';
  }
  if (memMiB !== undefined) boot.memMiB = memMiB;
  if (deterministic) boot.deterministic = true;
  if (vga !== undefined) boot.vga = vga;
  if (disks.length) boot.disks = disks;
  return { boot, snapshot: null, autostart };
}

function baseName(url: string): string {
  const path = url.split(/[?#]/)[0];
  const leaf = path.slice(path.lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(leaf) || url;
  } catch {
    return leaf || url;
  }
}

// -------------------------------------------------------------------------------------------------
// vm.json folders

/** a picked file with its path inside the picked folder ("vm/disk.vhd") */
export interface FolderFile {
  path: string;
  blob: Blob;
}

/**
 * Builds a BootConfig from a VM folder: finds its vm.json (at the top of the folder), validates it, and
 * maps its relative paths to the picked files. Errors name vm.json, the field and what was expected.
 */
export async function configFromFolder(files: FolderFile[]): Promise<BootConfig> {
  const norm = files.map((f) => ({ path: f.path.replace(/\\/g, '/'), blob: f.blob }));
  const jsons = norm.filter((f) => /(^|\/)vm\.json$/.test(f.path)).sort((a, b) => a.path.split('/').length - b.path.split('/').length);
  if (!jsons.length) throw new Error('the folder picked holds no vm.json');
  const cfgFile = jsons[0];
  const dir = cfgFile.path.slice(0, cfgFile.path.length - 'vm.json'.length);
  const byPath = new Map<string, Blob>();
  for (const f of norm) if (f.path.startsWith(dir)) byPath.set(f.path.slice(dir.length), f.blob);
  let text: string;
  try {
    text = await cfgFile.blob.text();
  } catch (e) {
    throw new Error(`cannot read ${cfgFile.path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return parseVmJson(text, cfgFile.path, byPath);
}

/**
 * Maps a vm.json (validated by core/vmconfig.ts, the one validator of the format) to what the page boots:
 * its paths, relative to the file, name files of the picked folder. Fields the page has no use for are
 * checked all the same but not used: "noReboot", "serial", disk slots and "snapshot" (the page keeps
 * every disk write in memory anyway), and "nics" (the page has no network yet).
 */
export function parseVmJson(text: string, file: string, files: ReadonlyMap<string, Blob>): BootConfig {
  const cfg = validateVmConfig(text, file);
  const fileSource = (field: string, p: string): Source => {
    const path = folderPath(p);
    const blob = path === null ? undefined : files.get(path);
    if (!blob || path === null) throw new Error(`${file}: field '${field}': '${p}' is not in the folder picked`);
    return { blob, name: path };
  };
  const boot: BootConfig = { files: new Map(files) };
  if (cfg.name !== undefined) boot.label = cfg.name;
  if (cfg.memory !== undefined) boot.memMiB = cfg.memory / (1024 * 1024);
  if (cfg.cpu.apic !== undefined) boot.apic = cfg.cpu.apic;
  if (cfg.deterministic) boot.deterministic = true;
  const fw = cfg.firmware;
  if (fw.kind === 'default-guest') {
    Object.assign(boot, { ...defaultGuest(), label: boot.label ?? 'default guest' });
  } else if (fw.kind === 'seabios') {
    Object.assign(boot, seabios());
  } else if (fw.kind === 'bios') {
    boot.bios = fileSource('firmware.bios', fw.bios);
  } else {
    boot.kernel = fileSource('firmware.kernel', fw.kernel);
    if (fw.initrd !== undefined) boot.initrd = fileSource('firmware.initrd', fw.initrd);
    boot.append = fw.append ?? '';
  }
  boot.label ??= boot.kernel && 'name' in boot.kernel && boot.kernel.name ? boot.kernel.name : fw.kind === 'seabios' ? 'SeaBIOS' : 'vm.json';
  const disks: DiskRequest[] = cfg.disks.map((d, i) => {
    const req: DiskRequest = { source: fileSource(`disks[${i}].file`, d.file) };
    if (d.interface !== undefined) req.interface = d.interface;
    if (d.media !== undefined) req.media = d.media;
    if (d.format !== undefined) req.format = d.format;
    if (d.readOnly || d.media === 'cdrom') req.readOnly = true;
    return req;
  });
  if (cfg.cdrom !== undefined) disks.push({ source: fileSource('cdrom', cfg.cdrom), media: 'cdrom', readOnly: true });
  if (disks.length) boot.disks = disks;
  if (cfg.boot !== undefined) boot.bootOrder = cfg.boot;
  return boot;
}

/** a path relative to the vm.json as a path inside the picked folder ("./a/../b.vhd" is "b.vhd"); null if outside */
function folderPath(p: string): string | null {
  const parts: string[] = [];
  const slashed = p.replace(/\\/g, '/');
  if (slashed.startsWith('/') || /^[A-Za-z]:/.test(slashed)) return null;
  for (const part of slashed.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (!parts.length) return null;
      parts.pop();
    } else parts.push(part);
  }
  return parts.join('/');
}
