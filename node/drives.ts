/**
 * Disks and CD-ROMs on the command line: `--hda/--hdb/--hdc/--hdd FILE`, `--cdrom FILE` and QEMU's general
 * `--drive file=F,if=ide|virtio-blk|virtio-scsi,media=disk|cdrom[,format=…][,readonly=on][,index=N]
 * [,snapshot=on]`. parseDrive() validates the text; openDrives() opens the images (format detected from
 * the contents unless given; a differencing image finds its parent; a file in use by another x86vm is
 * refused) and attachDrives() plugs them into the PC's controllers (both in node/attach-drives.ts).
 */
import { UsageError } from './options';

export type DriveInterface = 'ide' | 'virtio-blk' | 'virtio-scsi';
export type DriveMedia = 'disk' | 'cdrom';

export interface DriveSpec {
  file: string;
  interface: DriveInterface;
  media: DriveMedia;
  /** image format; undefined = detect from the contents */
  format?: string;
  readOnly: boolean;
  /** IDE: 0 = primary master … 3 = secondary slave; virtio-scsi: the target number */
  index?: number;
  /** keep the guest's writes in memory; the image stays untouched */
  snapshot: boolean;
  /** the option as given, for messages */
  source: string;
}

export const DRIVE_FORMATS = ['raw', 'vhd', 'vdi', 'iso'];

/** the drive an --hdX or --cdrom flag stands for (as in QEMU) */
export function shorthandDrive(flag: string, file: string): DriveSpec {
  const source = `--${flag} ${file}`;
  if (!file) throw new UsageError(`${source}: a file name is needed`);
  if (flag === 'cdrom') return { file, interface: 'ide', media: 'cdrom', readOnly: true, index: 2, snapshot: false, source };
  const index = ['hda', 'hdb', 'hdc', 'hdd'].indexOf(flag);
  if (index < 0) throw new Error(`not a drive flag: ${flag}`);
  return { file, interface: 'ide', media: 'disk', readOnly: false, index, snapshot: false, source };
}

/** parses the text of one --drive option */
export function parseDrive(text: string): DriveSpec {
  const source = `--drive ${text}`;
  const fields = new Map<string, string>();
  // file names may contain commas when doubled (",,"), as in QEMU
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === ',' && text[i + 1] === ',') {
      cur += ',';
      i++;
    } else if (c === ',') {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`${source}: '${p}' is not key=value`);
    const key = p.slice(0, eq);
    if (fields.has(key)) throw new UsageError(`${source}: '${key}' given twice`);
    fields.set(key, p.slice(eq + 1));
  }
  const known = ['file', 'if', 'media', 'format', 'readonly', 'index', 'snapshot'];
  for (const k of fields.keys()) {
    if (!known.includes(k)) throw new UsageError(`${source}: unknown key '${k}' (known: ${known.join(', ')})`);
  }
  const file = fields.get('file');
  if (!file) throw new UsageError(`${source}: file=FILE is needed`);
  const iface = fields.get('if') ?? 'ide';
  if (iface !== 'ide' && iface !== 'virtio-blk' && iface !== 'virtio-scsi') {
    throw new UsageError(`${source}: if=${iface} is not one of ide, virtio-blk, virtio-scsi`);
  }
  const media = fields.get('media') ?? 'disk';
  if (media !== 'disk' && media !== 'cdrom') throw new UsageError(`${source}: media=${media} is not disk or cdrom`);
  if (media === 'cdrom' && iface === 'virtio-blk') throw new UsageError(`${source}: a CD-ROM needs if=ide or if=virtio-scsi`);
  const format = fields.get('format');
  if (format !== undefined && !DRIVE_FORMATS.includes(format)) {
    throw new UsageError(`${source}: format=${format} is not one of ${DRIVE_FORMATS.join(', ')}`);
  }
  const onOff = (key: string): boolean => {
    const v = fields.get(key);
    if (v === undefined) return false;
    if (v === 'on' || v === 'true' || v === 'yes') return true;
    if (v === 'off' || v === 'false' || v === 'no') return false;
    throw new UsageError(`${source}: ${key}=${v} should be on or off`);
  };
  let index: number | undefined;
  const idx = fields.get('index');
  if (idx !== undefined) {
    const max = iface === 'ide' ? 3 : iface === 'virtio-scsi' ? 7 : -1;
    if (max < 0) throw new UsageError(`${source}: index= applies to if=ide and if=virtio-scsi`);
    if (!/^\d+$/.test(idx) || Number(idx) > max) throw new UsageError(`${source}: index=${idx} should be 0–${max}`);
    index = Number(idx);
  }
  return {
    file,
    interface: iface,
    media,
    format,
    readOnly: media === 'cdrom' || onOff('readonly'),
    index,
    snapshot: onOff('snapshot'),
    source,
  };
}

/** gives IDE drives without an index the first free slot, and checks for two drives in one slot */
export function placeDrives(drives: DriveSpec[]): DriveSpec[] {
  const used = new Map<string, DriveSpec>();
  const out = drives.map((d) => ({ ...d }));
  for (const d of out) {
    if (d.index === undefined || d.interface === 'virtio-blk') continue;
    const key = `${d.interface}:${d.index}`;
    const other = used.get(key);
    if (other) throw new UsageError(`${d.source}: that slot is already taken by ${other.source}`);
    used.set(key, d);
  }
  for (const d of out) {
    if (d.index !== undefined || d.interface === 'virtio-blk') continue;
    const max = d.interface === 'ide' ? 3 : 7;
    let i = 0;
    while (i <= max && used.has(`${d.interface}:${i}`)) i++;
    if (i > max) throw new UsageError(`${d.source}: no free ${d.interface} slot left (${max + 1} in all)`);
    d.index = i;
    used.set(`${d.interface}:${i}`, d);
  }
  return out;
}

