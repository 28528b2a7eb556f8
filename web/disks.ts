/**
 * Disks in the browser: images given by URL (loaded lazily by HTTP range requests) or picked on the
 * computer (read through Blob.slice), in any format disk/detect.ts reads (raw, VHD, VDI, ISO). The page can
 * never write an image back, so a writable disk gets a copy-on-write overlay in memory (disk/overlay.ts):
 * the guest sees its writes, the file or URL stays untouched, and a snapshot can carry the overlay.
 *
 * Controllers (one of each at most, as on the command line): the PIIX3 IDE controller (devices/ide.ts:
 * disks and ATAPI CD-ROMs in slots 0–3 = primary master/slave, secondary master/slave; a CD-ROM prefers
 * the secondary master, as QEMU's -cdrom), virtio-blk (one PCI function a disk; an ISO on it is a
 * read-only disk) and virtio-scsi (devices/virtio-scsi.ts with devices/scsi.ts's disk and CD-ROM targets,
 * one target a drive).
 */
import type { Pc } from '../core/pc';
import { DiskError, type BlockDevice } from '../disk/block';
import { openImage } from '../disk/detect';
import { CowOverlay } from '../disk/overlay';
import { addVirtioBlk } from '../devices/virtio-blk';
import { addIde, type IdeController } from '../devices/ide';
import { addVirtioScsi, type VirtioScsi } from '../devices/virtio-scsi';
import { ScsiCdrom, ScsiDisk } from '../devices/scsi';
import type { DiskInterface, DiskMedia, DiskRequest } from './protocol';
import { SourceError, WebOpener, openDiskStore, sourceName } from './sources';

export interface OpenDisk {
  request: DiskRequest;
  dev: BlockDevice;
  interface: DiskInterface;
  media: DiskMedia;
}

/** the controllers of one PC, made when the first drive needs them */
interface Controllers {
  ide?: IdeController;
  scsi?: VirtioScsi;
  ideUsed: Set<number>;
  scsiNext: number;
}

/** the controllers this build has, and how a disk is plugged into each */
const CONTROLLERS: Partial<Record<DiskInterface, (pc: Pc, disk: OpenDisk, c: Controllers) => void>> = {
  'virtio-blk': (pc, d) => {
    addVirtioBlk(pc, d.dev);
  },
  ide: (pc, d, c) => {
    const order = d.media === 'cdrom' ? [2, 3, 1, 0] : [0, 1, 2, 3];
    const slot = order.find((i) => !c.ideUsed.has(i));
    if (slot === undefined) throw new SourceError(`disk '${d.dev.name}': all four IDE slots are taken`);
    c.ideUsed.add(slot);
    c.ide ??= addIde(pc);
    c.ide.attach((slot >> 1) as 0 | 1, (slot & 1) as 0 | 1, d.media === 'cdrom' ? { kind: 'cdrom', dev: d.dev } : { kind: 'disk', dev: d.dev });
  },
  'virtio-scsi': (pc, d, c) => {
    c.scsi ??= addVirtioScsi(pc);
    c.scsi.attach(c.scsiNext++, 0, d.media === 'cdrom' ? new ScsiCdrom(d.dev) : new ScsiDisk(d.dev));
  },
};

/** the controllers available in this build */
export function diskInterfaces(): DiskInterface[] {
  return Object.keys(CONTROLLERS) as DiskInterface[];
}

/**
 * Opens every disk image (format detected unless given). Errors name the image and the fault in plain
 * words; images opened before a failure are closed again.
 */
export async function openDisks(requests: DiskRequest[], base?: string, files?: ReadonlyMap<string, Blob>): Promise<OpenDisk[]> {
  const opened: OpenDisk[] = [];
  try {
    for (const request of requests) {
      const name = sourceName(request.source);
      const iface = request.interface ?? (CONTROLLERS.ide ? 'ide' : 'virtio-blk');
      if (!CONTROLLERS[iface]) {
        throw new SourceError(`disk '${name}': the ${iface} controller is not in this build (available: ${diskInterfaces().join(', ')})`);
      }
      const store = await openDiskStore(request.source, base);
      let dev: BlockDevice;
      try {
        dev = await openImage(store, new WebOpener(files, base), { format: request.format, readOnly: true });
      } catch (e) {
        await store.close().catch(() => undefined);
        if (e instanceof DiskError) throw new SourceError(`disk image ${e.message}`);
        throw new SourceError(`disk image '${name}': ${e instanceof Error ? e.message : String(e)}`);
      }
      const media: DiskMedia = request.media ?? (dev.format === 'iso' ? 'cdrom' : 'disk');
      // (virtio-blk has no CD-ROM: an ISO there is a read-only disk, mountable all the same)
      if (!request.readOnly && media === 'disk') dev = new CowOverlay(dev);
      opened.push({ request, dev, interface: iface, media });
    }
  } catch (e) {
    await closeDisks(opened);
    throw e;
  }
  return opened;
}

/** plugs opened disks into the PC's controllers */
export function attachDisks(pc: Pc, disks: OpenDisk[]): void {
  const c: Controllers = { ideUsed: new Set(), scsiNext: 0 };
  for (const d of disks) CONTROLLERS[d.interface]!(pc, d, c);
}

export async function closeDisks(disks: OpenDisk[]): Promise<void> {
  for (const d of disks) await d.dev.close().catch(() => undefined);
}
