/**
 * Raw images: the file is the disk, byte for byte.
 *
 * A file whose length is not a multiple of 512 is a disk of ceil(length / 512) sectors, as in QEMU: the
 * missing bytes of the last sector read as zeros, and a write to that sector extends the file to the whole
 * sector (so what the guest wrote reads back). Nothing else about the file changes its length.
 */
import { DiskError, SECTOR_SIZE, type BlockDevice, type ByteStore } from './block';
import { checkRequest } from './util';

export class RawImage implements BlockDevice {
  readonly format = 'raw';
  readonly name: string;
  readonly sectors: number;
  readonly readOnly: boolean;

  constructor(
    readonly store: ByteStore,
    readOnly = false,
  ) {
    this.name = store.name;
    this.sectors = Math.ceil(store.size() / SECTOR_SIZE);
    this.readOnly = readOnly || store.readOnly;
  }

  async read(sector: number, buf: Uint8Array): Promise<void> {
    checkRequest(this, sector, buf.length);
    // ByteStore reads past the end of the file as zeros: the last partial sector is zero-padded
    await this.store.read(sector * SECTOR_SIZE, buf);
  }

  async write(sector: number, data: Uint8Array): Promise<void> {
    if (this.readOnly) throw new DiskError(this.name, 'the disk is read-only');
    checkRequest(this, sector, data.length);
    await this.store.write(sector * SECTOR_SIZE, data);
  }

  async flush(): Promise<void> {
    if (!this.readOnly) await this.store.flush();
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  /** the whole file is data (a raw image has no allocation map) */
  async extent(sector: number, count: number): Promise<{ allocated: boolean; sectors: number }> {
    return { allocated: true, sectors: Math.min(count, this.sectors - sector) };
  }
}

export function openRaw(store: ByteStore, options: { readOnly?: boolean } = {}): RawImage {
  return new RawImage(store, !!options.readOnly);
}

/** makes `store` an empty raw disk of `bytes` bytes (sparse where the host allows) */
export async function createRaw(store: ByteStore, bytes: number): Promise<RawImage> {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new DiskError(store.name, `bad disk size ${bytes}`);
  await store.truncate(0);
  await store.truncate(bytes);
  return new RawImage(store);
}
