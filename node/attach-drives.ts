/**
 * Opening the images of the drives given on the command line, and plugging them into the PC's
 * controllers (IDE, virtio-blk, virtio-scsi).
 */
import { UsageError } from './options';
import type { Pc } from '../core/pc';
import type { BlockDevice } from '../disk/block';
import { DiskError } from '../disk/block';
import { openImage } from '../disk/detect';
import { CowOverlay } from '../disk/overlay';
import { FileStore, NodeOpener } from './file-store';
import { addIde, type IdeController } from '../devices/ide';
import { addVirtioBlk } from '../devices/virtio-blk';
import { addVirtioScsi } from '../devices/virtio-scsi';
import { ScsiCdrom, ScsiDisk } from '../devices/scsi';
import { placeDrives, type DriveSpec } from './drives';

export interface OpenDrive {
  spec: DriveSpec;
  dev: BlockDevice;
}

/**
 * Opens every drive's image. Errors (missing file, damaged image, a file in use) become UsageErrors with
 * one line naming the drive and the fault; images opened before the failure are closed again.
 */
export async function openDrives(drives: DriveSpec[], globalSnapshot: boolean): Promise<OpenDrive[]> {
  const opener = new NodeOpener();
  const opened: OpenDrive[] = [];
  try {
    for (const spec of placeDrives(drives)) {
      const cow = spec.snapshot || globalSnapshot;
      // with a copy-on-write overlay the image itself is only read
      const readOnly = spec.readOnly || cow;
      let dev: BlockDevice;
      try {
        const store = await FileStore.open(spec.file, { readOnly });
        try {
          dev = await openImage(store, opener, { format: spec.format, readOnly });
        } catch (e) {
          await store.close();
          throw e;
        }
      } catch (e) {
        if (e instanceof DiskError) throw new UsageError(`${spec.source}: ${e.message}`);
        if (e instanceof Error) throw new UsageError(`${spec.source}: ${e.message}`);
        throw e;
      }
      if (cow && !spec.readOnly) dev = new CowOverlay(dev);
      opened.push({ spec, dev });
    }
  } catch (e) {
    await closeDrives(opened);
    throw e;
  }
  return opened;
}

/** flushes and closes the drives (releases their locks); errors are returned as messages */
export async function closeDrives(drives: OpenDrive[]): Promise<string[]> {
  const problems: string[] = [];
  for (const d of drives) {
    try {
      if (!d.dev.readOnly) await d.dev.flush();
      await d.dev.close();
    } catch (e) {
      problems.push(`${d.spec.source}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return problems;
}

/** plugs opened drives into the PC: one IDE controller, one virtio-blk device each, one virtio-scsi HBA */
export function attachDrives(pc: Pc, drives: OpenDrive[], warn: (message: string) => void = (m) => void process.stderr.write(`x86vm: ${m}\n`)): void {
  let ide: IdeController | null = null;
  let scsi: ReturnType<typeof addVirtioScsi> | null = null;
  for (const { spec, dev } of drives) {
    if (spec.interface === 'ide') {
      ide ??= addIde(pc, { onWarning: (m) => warn(m) });
      const index = spec.index ?? 0;
      const channel = (index >> 1) as 0 | 1;
      const slot = (index & 1) as 0 | 1;
      ide.attach(channel, slot, spec.media === 'cdrom' ? { kind: 'cdrom', dev } : { kind: 'disk', dev });
    } else if (spec.interface === 'virtio-blk') {
      addVirtioBlk(pc, dev);
    } else {
      scsi ??= addVirtioScsi(pc);
      scsi.attach(spec.index ?? 0, 0, spec.media === 'cdrom' ? new ScsiCdrom(dev) : new ScsiDisk(dev));
    }
  }
}
