/**
 * What the page boots, from its address or from a VM folder (page side, but no DOM APIs: unit-tested in
 * Node).
 *
 * The URL query:
 *   (nothing)            the default guest (bzImage + initramfs.cpio.gz beside the page, console=ttyS0)
 *   kernel=URL           a Linux bzImage or Multiboot kernel; initrd=URL; append=TEXT (command line)
 *   bios=URL             a firmware image (64–256 KiB)
 *   mem=SIZE             RAM: 128, 128M, 1G (default 128 MiB)
 *   disk=URL             a disk image (raw, VHD, VDI, ISO; repeatable), loaded lazily by HTTP range
 *                        requests; the guest's writes stay in memory. cdrom=URL: an ISO as a CD-ROM.
 *   if=virtio-blk|ide|virtio-scsi   the controller for the disks (default: IDE)
 *   snapshot=URL         restore this snapshot instead of booting
 *   vga=1                a VGA display adapter, shown on the page's canvas (default: with bios= only)
 *   deterministic=1      guest time follows the instruction count
 *   boot=0               fill the page's controls but do not start
 *
 * A VM folder: the files of a folder holding a vm.json (the format node/vmconfig.ts documents), picked
 * with <input type=file webkitdirectory>; its paths are relative to the folder.
 */
import type { BootConfig, DiskInterface, DiskMedia, DiskRequest, Source } from './protocol';
import { parseMemMiB } from './protocol';

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
  const known = ['kernel', 'initrd', 'append', 'bios', 'mem', 'disk', 'cdrom', 'if', 'format', 'snapshot', 'deterministic', 'vga', 'boot'];
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
    boot = { label: kernel !== undefined ? baseName(kernel) : baseName(bios!) };
    if (kernel !== undefined) boot.kernel = { url: kernel, name: baseName(kernel) };
    const initrd = one('initrd');
    if (initrd !== undefined) {
      if (kernel === undefined) throw new Error("parameter 'initrd' needs a 'kernel'");
      boot.initrd = { url: initrd, name: baseName(initrd) };
    }
    if (bios !== undefined) boot.bios = { url: bios, name: baseName(bios) };
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

/** the vm.json fields the page uses (others are accepted as documented, but a typo is an error) */
export function parseVmJson(text: string, file: string, files: ReadonlyMap<string, Blob>): BootConfig {
  const bad = (field: string, expected: string): Error => new Error(`${file}: field '${field}': ${expected}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  const known = ['version', 'name', 'memory', 'cpu', 'deterministic', 'noReboot', 'firmware', 'disks', 'cdrom', 'boot', 'serial'];
  for (const k of Object.keys(o)) if (!known.includes(k)) throw bad(k, `unknown field (known: ${known.join(', ')})`);
  if (o.version !== 1) throw bad('version', 'expected 1');
  const fileSource = (field: string, v: unknown): Source => {
    if (typeof v !== 'string' || !v) throw bad(field, 'expected a file name relative to vm.json');
    const path = v.replace(/\\/g, '/').replace(/^\.\//, '');
    const blob = files.get(path);
    if (!blob) throw bad(field, `'${v}' is not in the folder picked`);
    return { blob, name: path };
  };
  const cfg: BootConfig = { files: new Map(files) };
  if (o.name !== undefined) {
    if (typeof o.name !== 'string') throw bad('name', 'expected a string');
    cfg.label = o.name;
  }
  if (o.memory !== undefined) {
    const m = typeof o.memory === 'number' ? o.memory : typeof o.memory === 'string' ? parseMemMiB(o.memory) : 'expected a size like "128M" or a number of MiB';
    if (typeof m === 'string') throw bad('memory', m);
    cfg.memMiB = m;
  }
  if (o.cpu !== undefined) {
    if (typeof o.cpu !== 'object' || o.cpu === null) throw bad('cpu', 'expected an object like { "apic": true }');
    const cpu = o.cpu as Record<string, unknown>;
    for (const k of Object.keys(cpu)) if (k !== 'apic') throw bad(`cpu.${k}`, 'unknown field (known: apic)');
    if (cpu.apic !== undefined) {
      if (typeof cpu.apic !== 'boolean') throw bad('cpu.apic', 'expected true or false');
      cfg.apic = cpu.apic;
    }
  }
  for (const k of ['deterministic', 'noReboot'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw bad(k, 'expected true or false');
  }
  if (o.deterministic) cfg.deterministic = true;
  const fw = o.firmware ?? 'default-guest';
  if (fw === 'default-guest') {
    Object.assign(cfg, { ...defaultGuest(), label: cfg.label ?? 'default guest' });
  } else if (fw === 'seabios') {
    throw bad('firmware', 'SeaBIOS is not served with the page: put bios.bin in the folder and write { "bios": "bios.bin" }');
  } else if (typeof fw === 'object' && fw !== null && !Array.isArray(fw)) {
    const f = fw as Record<string, unknown>;
    if ('bios' in f) {
      for (const k of Object.keys(f)) if (k !== 'bios') throw bad(`firmware.${k}`, 'unknown field beside bios');
      cfg.bios = fileSource('firmware.bios', f.bios);
    } else if ('kernel' in f) {
      for (const k of Object.keys(f)) if (!['kernel', 'initrd', 'append'].includes(k)) throw bad(`firmware.${k}`, 'unknown field (known: kernel, initrd, append)');
      cfg.kernel = fileSource('firmware.kernel', f.kernel);
      if (f.initrd !== undefined) cfg.initrd = fileSource('firmware.initrd', f.initrd);
      if (f.append !== undefined && typeof f.append !== 'string') throw bad('firmware.append', 'expected a string');
      cfg.append = (f.append as string | undefined) ?? '';
    } else {
      throw bad('firmware', 'expected "default-guest", "seabios", { "bios": FILE } or { "kernel": FILE, "initrd": FILE, "append": TEXT }');
    }
  } else {
    throw bad('firmware', 'expected "default-guest", "seabios", { "bios": FILE } or { "kernel": FILE, "initrd": FILE, "append": TEXT }');
  }
  cfg.label ??= cfg.kernel ? (cfg.kernel as { name: string }).name : 'vm.json';
  const disks: DiskRequest[] = [];
  if (o.disks !== undefined) {
    if (!Array.isArray(o.disks)) throw bad('disks', 'expected a list');
    o.disks.forEach((d: unknown, i: number) => {
      const at = `disks[${i}]`;
      if (typeof d !== 'object' || d === null) throw bad(at, 'expected an object with "file"');
      const r = d as Record<string, unknown>;
      for (const k of Object.keys(r)) {
        if (!['file', 'interface', 'media', 'format', 'slot', 'readOnly', 'snapshot'].includes(k)) throw bad(`${at}.${k}`, 'unknown field');
      }
      const req: DiskRequest = { source: fileSource(`${at}.file`, r.file) };
      if (r.interface !== undefined) {
        if (!INTERFACES.includes(r.interface as DiskInterface)) throw bad(`${at}.interface`, `expected one of ${INTERFACES.join(', ')}`);
        req.interface = r.interface as DiskInterface;
      }
      if (r.media !== undefined) {
        if (r.media !== 'disk' && r.media !== 'cdrom') throw bad(`${at}.media`, 'expected "disk" or "cdrom"');
        req.media = r.media as DiskMedia;
      }
      if (r.format !== undefined) {
        if (!FORMATS.includes(r.format as string)) throw bad(`${at}.format`, `expected one of ${FORMATS.join(', ')}`);
        req.format = r.format as string;
      }
      if (r.readOnly !== undefined && typeof r.readOnly !== 'boolean') throw bad(`${at}.readOnly`, 'expected true or false');
      if (r.readOnly || req.media === 'cdrom') req.readOnly = true;
      disks.push(req);
    });
  }
  if (o.cdrom !== undefined) disks.push({ source: fileSource('cdrom', o.cdrom), media: 'cdrom', readOnly: true });
  if (disks.length) cfg.disks = disks;
  return cfg;
}
