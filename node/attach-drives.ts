/**
 * Opening the images of the drives given on the command line (or recorded in a snapshot), and plugging
 * them into the PC's controllers (IDE, virtio-blk, virtio-scsi).
 *
 * What snapshots need from here (node/snapshot.ts): each drive's ID ("ide0"–"ide3" by IDE slot,
 * "virtio-blk0"… in the order given, "virtio-scsiN" by target), the files under it (the image, then the
 * parents a differencing image opened, nearest first — found by watching what the image opened and kept
 * open), its copy-on-write overlay when its writes stay in memory, and, for a drive written directly, a
 * one-shot hook on the guest's next write (an interactive snapshot holds such a disk by reference and is
 * stale once the guest writes it again).
 */
import { UsageError } from './options';
import type { Pc } from '../core/pc';
import type { FileFingerprint } from '../core/snapshot';
import type { BlockDevice, ByteStore, StoreOpener } from '../disk/block';
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
  /** what the controller sees: the overlay, or the image (behind a write watch when written directly) */
  dev: BlockDevice;
  /** "ide0", "virtio-blk0", "virtio-scsi3": the drive's name in snapshots */
  id: string;
  /** the image file as the user named it (spec.file, or a restored snapshot's name for it) */
  file: string;
  /** the opened image under any overlay */
  image: BlockDevice;
  /** the in-memory overlay holding the guest's writes (snapshot=on, --snapshot), or null */
  overlay: CowOverlay | null;
  /** the files under the drive now: the image's absolute path, then the parents it keeps open */
  files(): string[];
  /** fingerprints of files that cannot change while open (opened read-only, locked), made once */
  fingerprints: Map<string, FileFingerprint>;
  /** a directly-written drive's write watch (null otherwise) */
  watch: WriteWatch | null;
}

/** a BlockDevice that calls `onWrite` (once, then forgets it) when the guest next writes */
export class WriteWatch implements BlockDevice {
  onWrite: (() => void) | null = null;
  constructor(readonly inner: BlockDevice) {}
  get name(): string {
    return this.inner.name;
  }
  get format(): string {
    return this.inner.format;
  }
  get sectors(): number {
    return this.inner.sectors;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  read(sector: number, buf: Uint8Array): Promise<void> {
    return this.inner.read(sector, buf);
  }
  write(sector: number, data: Uint8Array): Promise<void> {
    const f = this.onWrite;
    if (f) {
      this.onWrite = null;
      f();
    }
    return this.inner.write(sector, data);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** a store that remembers whether it was closed (to tell the parents an image kept from those it probed) */
class TrackedStore implements ByteStore {
  closed = false;
  constructor(private readonly inner: ByteStore) {}
  get name(): string {
    return this.inner.name;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  size(): number {
    return this.inner.size();
  }
  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.inner.read(offset, buf);
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    return this.inner.write(offset, data);
  }
  truncate(size: number): Promise<void> {
    return this.inner.truncate(size);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  close(): Promise<void> {
    this.closed = true;
    return this.inner.close();
  }
}

/** NodeOpener, noting every file it opens */
class TrackingOpener implements StoreOpener {
  readonly opened: TrackedStore[] = [];
  private readonly inner = new NodeOpener();
  resolve(path: string, relativeTo?: string): string {
    return this.inner.resolve(path, relativeTo);
  }
  exists(path: string, relativeTo?: string): Promise<boolean> {
    return this.inner.exists(path, relativeTo);
  }
  async open(path: string, options: { readOnly: boolean; relativeTo?: string }): Promise<ByteStore> {
    const store = new TrackedStore(await this.inner.open(path, options));
    this.opened.push(store);
    return store;
  }
  /** openImage looks for this (VDI parents are found among the siblings) */
  listSiblings(name: string): string[] {
    return this.inner.listSiblings(name);
  }
}

/** the snapshot IDs of placed drives, in order */
export function driveIds(specs: DriveSpec[]): string[] {
  let blk = 0;
  return specs.map((s) => (s.interface === 'virtio-blk' ? `virtio-blk${blk++}` : `${s.interface}${s.index ?? 0}`));
}

/**
 * Opens every drive's image. Errors (missing file, damaged image, a file in use) become UsageErrors with
 * one line naming the drive and the fault; images opened before the failure are closed again. `names`
 * gives the files' names for messages and snapshots when they differ from spec.file (a restore).
 */
export async function openDrives(drives: DriveSpec[], globalSnapshot: boolean, names?: string[]): Promise<OpenDrive[]> {
  const opened: OpenDrive[] = [];
  try {
    const placed = placeDrives(drives);
    const ids = driveIds(placed);
    for (let n = 0; n < placed.length; n++) {
      const spec = placed[n];
      const cow = spec.snapshot || globalSnapshot;
      // with a copy-on-write overlay the image itself is only read
      const readOnly = spec.readOnly || cow;
      const opener = new TrackingOpener();
      let image: BlockDevice;
      let store: FileStore;
      try {
        store = await FileStore.open(spec.file, { readOnly });
        try {
          image = await openImage(store, opener, { format: spec.format, readOnly });
        } catch (e) {
          await store.close();
          throw e;
        }
      } catch (e) {
        if (e instanceof DiskError) throw new UsageError(`${spec.source}: ${e.message}`);
        if (e instanceof Error) throw new UsageError(`${spec.source}: ${e.message}`);
        throw e;
      }
      const overlay = cow && !spec.readOnly ? new CowOverlay(image) : null;
      const watch = !overlay && !image.readOnly ? new WriteWatch(image) : null;
      const top = store.name;
      opened.push({
        spec,
        dev: overlay ?? watch ?? image,
        id: ids[n],
        file: names?.[n] ?? spec.file,
        image,
        overlay,
        files: () => [top, ...opener.opened.filter((s) => !s.closed).map((s) => s.name)],
        fingerprints: new Map(),
        watch,
      });
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
