/**
 * `x86vm create DIR [options]`: writes a new VM folder — a vm.json (core/vmconfig.ts documents it) plus
 * new disk images, and copies of the kernel, initrd or firmware image it boots — that `x86vm run DIR`
 * runs from anywhere, and that can be moved or zipped as a whole.
 *
 * What is copied and what is referenced:
 * - --kernel, --initrd and a --bios FILE are copied into the folder (they are small, and the folder then
 *   boots wherever it goes); --bios seabios names the host's SeaBIOS, which is not copied.
 * - --cdrom FILE is referenced by its absolute path: installation ISOs are large and read-only, so VMs
 *   share them; --copy-cdrom copies it into the folder instead, for a self-contained folder.
 * - --disk parent=IMAGE makes a differencing VHD over IMAGE, which stays where it is (the child finds it by
 *   its relative and its absolute path).
 * - Without --kernel or --bios the VM boots x86vm's own default guest ("firmware": "default-guest").
 *
 * Every argument is checked before anything is written. The folder is then built under a temporary name
 * beside DIR (files flushed to the disk) and renamed to DIR at the end: a failed or interrupted create
 * leaves nothing behind. DIR must not exist or be an empty folder (an existing non-empty one is refused);
 * its parent folder must exist.
 */
import { parseArgs } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DiskError, SECTOR_SIZE, type BlockDevice } from '../disk/block';
import { openImage } from '../disk/detect';
import { createRaw } from '../disk/raw';
import { createVhd, vhdRoundedSectors, VHD_MAX_SECTORS } from '../disk/vhd';
import { createVdi } from '../disk/vdi';
import { sizeText } from '../disk/util';
import { FileStore, NodeOpener } from './file-store';
import { parseDiskSize } from './disk-cli';
import { UsageError, parseMemSize, DEFAULT_MEM } from './options';
import { parseNicOption } from './nics';
import { placeDrives } from './drives';
import { parseVmConfig } from './vmconfig';
import { checkBiosSize } from '../core/loader/bios';
import { BootOrderError, checkBootOrder } from '../core/bootorder';
import { formatMac, randomMac } from '../core/net';
import { ramSizeText, VM_CONFIG_NAME, type VmDiskConfig, type VmDiskInterface, type VmJson, type VmNicConfig } from '../core/vmconfig';

export const CREATE_HELP = `Usage: x86vm create DIR [options]

Writes a new VM folder DIR: a vm.json describing the VM and its new disk images, for
'x86vm run DIR' (paths in vm.json are relative to it: the folder can be moved or zipped).
DIR must not exist, or be an empty folder; its parent folder must exist. The folder is
built under a temporary name and renamed at the end: a failed create leaves nothing.

  --name NAME             the VM's name (default: DIR's last component)
  --memory SIZE           RAM: 32M, 1G, or a number of MiB (default 128M); also --mem
  --disk SIZE             a new disk image in the folder: a dynamic VHD on IDE (repeatable)
  --disk size=SIZE[,format=vhd|vhd-fixed|vdi|vdi-static|raw][,interface=ide|virtio-blk|virtio-scsi]
         [,slot=N][,file=NAME]
                          the same with a format (vhd and vdi grow as written; vhd-fixed and
                          vdi-static are allocated in full; raw is sparse), a controller (if=
                          works too), an IDE slot 0-3 or SCSI target 0-7, and a file name
                          (default disk0.vhd, disk1.vdi, ...)
  --disk parent=IMAGE[,interface=...][,slot=N][,file=NAME]
                          a differencing VHD over an existing image (any format), which stays
                          where it is and is never written
  --cdrom FILE            an ISO as the IDE CD-ROM, referenced by its absolute path (not copied)
  --copy-cdrom            copy the --cdrom ISO into the folder instead (a self-contained folder)
  --kernel FILE           boot a Linux bzImage or Multiboot kernel directly; copied into the folder
  --initrd FILE           its initial ramdisk; copied into the folder
  --append TEXT           its command line
  --bios seabios|FILE     boot through firmware: 'seabios' is the host's SeaBIOS
                          (/usr/share/seabios/bios.bin, not copied); a FILE is copied in
  --nic SPEC              a network card, as x86vm run --nic (repeatable); without mac= the
                          card gets a random 52:54:00:xx:xx:xx, written to vm.json so it stays
  --boot ORDER            firmware boot order letters: c disk, d CD-ROM, n network (e.g. dc)
  --deterministic         guest time follows the instruction count
  --no-reboot             a guest reset ends the run
  -h, --help              show this help

With neither --kernel nor --bios the VM boots x86vm's default Linux guest. Edit vm.json for
the rest (x86vm run --help; the format is documented in core/vmconfig.ts).

Exit status: 0 created, 2 bad usage or the folder could not be written (one line on stderr).
`;

const CREATE_OPTIONS = {
  name: { type: 'string' },
  memory: { type: 'string' },
  mem: { type: 'string' },
  disk: { type: 'string', multiple: true },
  cdrom: { type: 'string' },
  'copy-cdrom': { type: 'boolean' },
  kernel: { type: 'string' },
  initrd: { type: 'string' },
  append: { type: 'string' },
  bios: { type: 'string' },
  nic: { type: 'string', multiple: true },
  boot: { type: 'string' },
  deterministic: { type: 'boolean' },
  'no-reboot': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type CreateFormat = 'raw' | 'vhd-dynamic' | 'vhd-fixed' | 'vdi-dynamic' | 'vdi-static';

const FORMAT_NAMES: Record<string, CreateFormat> = {
  raw: 'raw',
  vhd: 'vhd-dynamic',
  'vhd-dynamic': 'vhd-dynamic',
  'vhd-fixed': 'vhd-fixed',
  vdi: 'vdi-dynamic',
  'vdi-dynamic': 'vdi-dynamic',
  'vdi-static': 'vdi-static',
};

const EXTENSION: Record<CreateFormat, string> = {
  raw: 'raw',
  'vhd-dynamic': 'vhd',
  'vhd-fixed': 'vhd',
  'vdi-dynamic': 'vdi',
  'vdi-static': 'vdi',
};

/** a disk to create */
export interface NewDisk {
  /** the option as given */
  source: string;
  /** the file's name in the folder */
  file: string;
  format: CreateFormat | 'vhd-differencing';
  /** bytes asked for (a VHD rounds up to a whole CHS geometry) */
  bytes?: number;
  /** the existing image a differencing VHD is made over (absolute) */
  parent?: string;
  interface: VmDiskInterface;
  slot?: number;
}

/** a file copied into the folder */
interface Copy {
  from: string;
  name: string;
}

export interface CreatePlan {
  /** the VM folder (absolute) */
  dir: string;
  json: VmJson;
  disks: NewDisk[];
  copies: Copy[];
}

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** runs `x86vm create ARGS`; returns the exit status */
export async function createMain(argv: string[], io: Io = defaultIo()): Promise<number> {
  try {
    const plan = planCreate(argv);
    if (plan === null) {
      io.out(CREATE_HELP.trimEnd());
      return 0;
    }
    await writeVmFolder(plan);
    const parts = [VM_CONFIG_NAME, ...plan.disks.map((d) => d.file), ...plan.copies.map((c) => c.name)];
    io.out(`created ${plan.dir}: ${parts.join(', ')}`);
    for (const d of plan.disks) io.out(`  ${d.file}: ${describeDisk(d)}`);
    io.out(`run it with: x86vm run ${path.relative(process.cwd(), plan.dir) || '.'}`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError || e instanceof DiskError) {
      io.err(`x86vm: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

function defaultIo(): Io {
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  };
}

function describeDisk(d: NewDisk): string {
  const where = `${d.interface}${d.slot !== undefined ? ` slot ${d.slot}` : ''}`;
  if (d.parent !== undefined) return `vhd-differencing over ${d.parent}, ${where}`;
  return `${d.format}, ${sizeText(diskBytes(d))}, ${where}`;
}

function diskBytes(d: NewDisk): number {
  const sectors = d.bytes! / SECTOR_SIZE;
  return (d.format === 'vhd-dynamic' || d.format === 'vhd-fixed' ? vhdRoundedSectors(sectors) : sectors) * SECTOR_SIZE;
}

function fail(message: string): never {
  throw new UsageError(message);
}

/** a readable regular file, or a one-line error naming the option */
function inputFile(option: string, file: string): string {
  if (file === '') fail(`${option}: the file name is empty`);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(`${option} '${file}': ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (!st.isFile()) fail(`${option} '${file}': not a regular file`);
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch {
    fail(`${option} '${file}': permission denied`);
  }
  return path.resolve(file);
}

/** a file name inside the VM folder: no folders, no dot files */
function plainName(option: string, name: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/.test(name) || name === VM_CONFIG_NAME) {
    fail(`${option}: file=${name} is not a plain file name for the VM folder (letters, digits, . _ + -; not ${VM_CONFIG_NAME})`);
  }
  return name;
}

/** parses one --disk option */
export function parseDiskOption(text: string, index: number): NewDisk {
  const source = `--disk ${text}`;
  const fields = new Map<string, string>();
  if (/^[\d.]+\s*[KMGT]?(?:i?B)?$/i.test(text)) fields.set('size', text);
  else {
    for (const part of text.split(',')) {
      const eq = part.indexOf('=');
      if (eq <= 0) fail(`${source}: '${part}' is not key=value (e.g. --disk 2G or --disk size=2G,format=vdi)`);
      let key = part.slice(0, eq);
      if (key === 'if') key = 'interface';
      if (fields.has(key)) fail(`${source}: '${key}' given twice`);
      fields.set(key, part.slice(eq + 1));
    }
  }
  const known = ['size', 'format', 'interface', 'slot', 'file', 'parent'];
  for (const k of fields.keys()) if (!known.includes(k)) fail(`${source}: unknown key '${k}' (known: ${known.join(', ')}, if)`);
  const iface = fields.get('interface') ?? 'ide';
  if (iface !== 'ide' && iface !== 'virtio-blk' && iface !== 'virtio-scsi') fail(`${source}: interface=${iface} is not one of ide, virtio-blk, virtio-scsi`);
  let slot: number | undefined;
  const s = fields.get('slot');
  if (s !== undefined) {
    const max = iface === 'ide' ? 3 : iface === 'virtio-scsi' ? 7 : -1;
    if (max < 0) fail(`${source}: slot= applies to interface=ide and interface=virtio-scsi`);
    if (!/^\d+$/.test(s) || Number(s) > max) fail(`${source}: slot=${s} should be 0–${max}`);
    slot = Number(s);
  }
  const parent = fields.get('parent');
  const file = fields.get('file');
  if (parent !== undefined) {
    if (fields.has('size')) fail(`${source}: a differencing disk has its parent's size (leave size= out)`);
    if (fields.has('format') && fields.get('format') !== 'vhd') fail(`${source}: parent= makes a differencing VHD (format=${fields.get('format')} does not go with it)`);
    return {
      source,
      file: file !== undefined ? plainName(source, file) : `disk${index}.vhd`,
      format: 'vhd-differencing',
      parent: inputFile(`${source}: parent`, parent),
      interface: iface,
      slot,
    };
  }
  const sizeText = fields.get('size');
  if (sizeText === undefined) fail(`${source}: size= is needed (e.g. --disk 2G or --disk size=2G,format=vdi), or parent=IMAGE`);
  let bytes: number;
  try {
    bytes = parseDiskSize(sizeText!);
  } catch (e) {
    fail(`${source}: ${(e as Error).message}`);
  }
  const formatText = fields.get('format') ?? 'vhd';
  const format = FORMAT_NAMES[formatText];
  if (!format) fail(`${source}: format=${formatText} is not one of ${Object.keys(FORMAT_NAMES).join(', ')}`);
  if ((format === 'vhd-dynamic' || format === 'vhd-fixed') && vhdRoundedSectors(bytes! / SECTOR_SIZE) > VHD_MAX_SECTORS) {
    fail(`${source}: a VHD holds at most 2040 GiB`);
  }
  if ((format === 'vdi-dynamic' || format === 'vdi-static') && bytes! > 2 ** 52) fail(`${source}: too large for a VDI`);
  return { source, file: file !== undefined ? plainName(source, file) : `disk${index}.${EXTENSION[format]}`, format, bytes: bytes!, interface: iface, slot };
}

/** the vm.json entry for a --nic option (checked by parseNicOption), with a MAC that stays */
export function nicConfigFromOption(text: string, random: () => number = Math.random): VmNicConfig {
  const spec = parseNicOption(text);
  const nic: VmNicConfig = { model: spec.model, mac: formatMac(spec.mac ?? randomMac(random)) };
  if (!spec.link) nic.link = 'down';
  const user: { allow: string[]; hostfwd: string[]; dns: string[] } = { allow: [], hostfwd: [], dns: [] };
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    if (key === 'pcap') nic.pcap = path.resolve(value);
    else if (key === 'slot') nic.slot = Number(value);
    else if (key === 'switch') nic.switch = value.startsWith('unix:') ? `unix:${path.resolve(value.slice(5))}` : value;
    else if (key === 'allow' || key === 'hostfwd' || key === 'dns') user[key].push(value);
  }
  if (spec.backend.kind === 'user') {
    const u: VmNicConfig['user'] = {};
    for (const k of ['allow', 'hostfwd', 'dns'] as const) if (user[k].length) u[k] = user[k];
    nic.user = Object.keys(u).length ? u : true;
  }
  return nic;
}

/** reads the command line into a plan, checking everything; null for --help */
export function planCreate(argv: string[]): CreatePlan | null {
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: CREATE_OPTIONS, strict: true, allowPositionals: true }));
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0].replace(/\. .*$/, '').replace(/\.\s*$/, '');
    fail(`create: ${msg.charAt(0).toLowerCase()}${msg.slice(1)} (x86vm create --help)`);
  }
  if (values.help) return null;
  if (positionals.length !== 1 || positionals[0] === '') {
    fail(`create: expected one folder, got ${positionals.length ? positionals.map((p) => `'${p}'`).join(' ') : 'nothing'} (x86vm create DIR [options])`);
  }
  const dir = path.resolve(positionals[0]);
  checkTarget(dir);
  const str = (k: string): string | undefined => values[k] as string | undefined;
  if (str('memory') !== undefined && str('mem') !== undefined) fail('create: give --memory or --mem, not both');
  const memText = str('memory') ?? str('mem');
  const memory = memText !== undefined ? parseMemSize(memText, str('memory') !== undefined ? '--memory' : '--mem') : DEFAULT_MEM;
  const json: VmJson = { version: 1, name: str('name') ?? path.basename(dir), memory: ramSizeText(memory) };
  if (json.name === '') fail('--name: the name is empty');

  const used = new Set<string>([VM_CONFIG_NAME]);
  const disks = ((values.disk as string[] | undefined) ?? []).map((t, i) => parseDiskOption(t, i));
  for (const d of disks) {
    if (used.has(d.file)) fail(`${d.source}: the folder already gets a file named ${d.file}`);
    used.add(d.file);
  }
  const copies: Copy[] = [];
  const copyIn = (option: string, file: string): string => {
    const from = inputFile(option, file);
    let name = path.basename(from).replace(/[^A-Za-z0-9_.+-]/g, '_').replace(/^\./, '_');
    if (used.has(name)) {
      const ext = path.extname(name);
      const stem = name.slice(0, name.length - ext.length);
      let i = 2;
      while (used.has(`${stem}-${i}${ext}`)) i++;
      name = `${stem}-${i}${ext}`;
    }
    used.add(name);
    copies.push({ from, name });
    return name;
  };

  const kernel = str('kernel');
  const bios = str('bios');
  if (kernel !== undefined && bios !== undefined) fail('create: give --kernel or --bios, not both');
  if (str('initrd') !== undefined && kernel === undefined) fail('--initrd needs --kernel');
  if (str('append') !== undefined && kernel === undefined) fail('--append needs --kernel');
  if (kernel !== undefined) {
    const fw: { kernel: string; initrd?: string; append?: string } = { kernel: copyIn('--kernel', kernel) };
    if (str('initrd') !== undefined) fw.initrd = copyIn('--initrd', str('initrd')!);
    if (str('append') !== undefined) fw.append = str('append');
    json.firmware = fw;
  } else if (bios === 'seabios') {
    json.firmware = 'seabios';
  } else if (bios !== undefined) {
    const from = inputFile('--bios', bios);
    const problem = checkBiosSize(fs.statSync(from).size);
    if (problem) fail(`--bios '${bios}': ${problem}`);
    json.firmware = { bios: copyIn('--bios', bios) };
  } else {
    json.firmware = 'default-guest';
  }

  const diskEntries: VmDiskConfig[] = disks.map((d) => {
    const e: VmDiskConfig = { file: d.file, interface: d.interface, format: d.format === 'raw' ? 'raw' : d.format.startsWith('vdi') ? 'vdi' : 'vhd' };
    if (d.slot !== undefined) e.slot = d.slot;
    return e;
  });
  if (diskEntries.length) json.disks = diskEntries;
  const cdrom = str('cdrom');
  if (values['copy-cdrom'] && cdrom === undefined) fail('--copy-cdrom needs --cdrom FILE');
  if (cdrom !== undefined) json.cdrom = values['copy-cdrom'] ? copyIn('--cdrom', cdrom) : inputFile('--cdrom', cdrom);

  const nics = ((values.nic as string[] | undefined) ?? []).map((t) => nicConfigFromOption(t));
  if (nics.length) json.nics = nics;
  const boot = str('boot');
  if (boot !== undefined) {
    try {
      json.boot = checkBootOrder(boot);
    } catch (e) {
      if (e instanceof BootOrderError) fail(`--boot: ${e.message}`);
      throw e;
    }
  }
  if (values.deterministic) json.deterministic = true;
  if (values['no-reboot']) json.noReboot = true;

  // what `x86vm run DIR` will read: the same validation, and the disks must fit their controllers
  const file = path.join(dir, VM_CONFIG_NAME);
  const settings = parseVmConfig(vmJsonText(json), file);
  const drives = settings.drives.map((d) => {
    const disk = disks.find((x) => path.join(dir, x.file) === d.file);
    return { ...d, source: disk ? disk.source : d.source.startsWith(`${file} cdrom`) ? `--cdrom ${cdrom}` : d.source };
  });
  placeDrives(drives);
  return { dir, json, disks, copies };
}

/** the text create writes: the JSON with two-space indents and a final newline */
export function vmJsonText(json: VmJson): string {
  return `${JSON.stringify(json, null, 2)}\n`;
}

/** DIR must not exist, or be an empty folder, and its parent folder must exist */
function checkTarget(dir: string): void {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') fail(`create: '${dir}': ${(e as Error).message}`);
  }
  if (st) {
    if (!st.isDirectory()) fail(`create: '${dir}' exists and is not a folder`);
    if (fs.readdirSync(dir).length) fail(`create: '${dir}' exists and is not empty (x86vm create never writes into an existing VM)`);
    return;
  }
  const parent = path.dirname(dir);
  let pst: fs.Stats;
  try {
    pst = fs.statSync(parent);
  } catch {
    fail(`create: the folder '${parent}' (where '${path.basename(dir)}' would go) does not exist`);
  }
  if (!pst.isDirectory()) fail(`create: '${parent}' is not a folder`);
}

/** temporary folders being built; removed if the process is interrupted */
const building = new Set<string>();
let signalsHooked = false;

function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  const onSignal = (code: number) => () => {
    for (const t of building) fs.rmSync(t, { recursive: true, force: true });
    process.exit(code);
  };
  process.on('SIGINT', onSignal(130));
  process.on('SIGTERM', onSignal(143));
  process.on('SIGHUP', onSignal(129));
}

function fsyncPath(p: string): void {
  try {
    const fd = fs.openSync(p, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // not every platform can fsync a folder
  }
}

function describeFsError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOTEMPTY':
    case 'EEXIST':
      return 'it appeared meanwhile and is not empty';
    default:
      return err?.message ?? String(e);
  }
}

/** builds the folder of `plan` under a temporary name beside it, then renames it into place */
export async function writeVmFolder(plan: CreatePlan): Promise<void> {
  const { dir } = plan;
  const tmp = path.join(path.dirname(dir), `.${path.basename(dir)}.create-${process.pid}`);
  hookSignals();
  try {
    fs.mkdirSync(tmp);
  } catch (e) {
    fail(`create: cannot make a folder beside '${dir}': ${describeFsError(e)}`);
  }
  building.add(tmp);
  try {
    for (const d of plan.disks) await writeDisk(d, path.join(tmp, d.file));
    for (const c of plan.copies) {
      const to = path.join(tmp, c.name);
      try {
        fs.copyFileSync(c.from, to, fs.constants.COPYFILE_EXCL);
      } catch (e) {
        fail(`create: cannot copy '${c.from}' into the VM folder: ${describeFsError(e)}`);
      }
      fsyncPath(to);
    }
    const cfg = path.join(tmp, VM_CONFIG_NAME);
    try {
      const fd = fs.openSync(cfg, 'wx');
      try {
        fs.writeFileSync(fd, vmJsonText(plan.json));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      fail(`create: cannot write ${VM_CONFIG_NAME}: ${describeFsError(e)}`);
    }
    fsyncPath(tmp);
    try {
      // replaces DIR only if it is (still) an empty folder
      fs.renameSync(tmp, dir);
    } catch (e) {
      fail(`create: cannot make '${dir}': ${describeFsError(e)}`);
    }
    building.delete(tmp);
    fsyncPath(path.dirname(dir));
  } catch (e) {
    building.delete(tmp);
    fs.rmSync(tmp, { recursive: true, force: true });
    if (e instanceof DiskError) {
      // name the image by its final place, not the temporary one
      throw new UsageError(e.message.split(tmp).join(dir));
    }
    throw e;
  }
}

async function writeDisk(d: NewDisk, file: string): Promise<void> {
  const store = FileStore.open(file, { create: 'new', lock: false });
  let dev: BlockDevice | undefined;
  try {
    if (d.parent !== undefined) {
      const pstore = FileStore.open(d.parent, { readOnly: true });
      let parent: BlockDevice;
      try {
        parent = await openImage(pstore, new NodeOpener(), { readOnly: true });
      } catch (e) {
        await pstore.close();
        throw e;
      }
      try {
        dev = await createVhd(store, { type: 'differencing', parent });
      } catch (e) {
        await parent.close();
        throw e;
      }
    } else {
      const sectors = d.bytes! / SECTOR_SIZE;
      switch (d.format) {
        case 'raw':
          dev = await createRaw(store, d.bytes!);
          break;
        case 'vhd-dynamic':
        case 'vhd-fixed':
          dev = await createVhd(store, { sectors: vhdRoundedSectors(sectors), type: d.format === 'vhd-fixed' ? 'fixed' : 'dynamic' });
          break;
        default:
          dev = await createVdi(store, { sectors, type: d.format === 'vdi-static' ? 'static' : 'dynamic' });
      }
    }
    await dev.flush();
  } finally {
    // closes the store (and a differencing disk's parent)
    if (dev) await dev.close();
    else await store.close();
  }
}
