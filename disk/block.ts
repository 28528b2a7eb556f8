/**
 * The storage interfaces every disk image format and every disk controller share. No Node or DOM APIs:
 * the same code runs in Node, in a Node worker thread and in a browser Worker.
 *
 *   host file / HTTP range / memory ──► ByteStore ──► image format (raw, VHD, VDI, ISO, overlay)
 *                                                          │
 *                                                          ▼
 *                                   BlockDevice (sectors) ──► controller (IDE, ATAPI, virtio-blk/scsi)
 *
 * - A ByteStore is a flat, byte-addressed file. Hosts implement it: node/ with file descriptors, web/ with
 *   OPFS or HTTP range requests; MemoryStore below serves tests and in-memory overlays.
 * - A BlockDevice is what a guest sees: a number of 512-byte sectors, read and written in whole sectors.
 *   Every image format is a BlockDevice built over one or more ByteStores.
 * - All operations return Promises: a browser store completes later (a fetch), a Node file store at once.
 *   Controllers never wait on them inside the CPU loop; they use core/blockio.ts (completeIo), which
 *   delivers the completion at a guest time, and in deterministic mode makes the machine wait for the
 *   host if the data is late, so runs stay reproducible.
 * - Implementations serialise their own operations where ordering matters (allocation of a new block in
 *   a dynamic image, metadata after data), so callers may issue requests without waiting for earlier ones.
 */

export const SECTOR_SIZE = 512;

/** an error in an image file or a request: the message names the file and the problem */
export class DiskError extends Error {
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'DiskError';
    this.file = file;
  }
}

/** a flat file (the bytes under an image format) */
export interface ByteStore {
  /** the path or URL, used in error messages and to find the parents of differencing images */
  readonly name: string;
  readonly readOnly: boolean;
  /** current length in bytes */
  size(): number;
  /** fills `buf` from `offset`; bytes past the end of the file read as zeros */
  read(offset: number, buf: Uint8Array): Promise<void>;
  /** writes `data` at `offset`, growing the file if needed (rejects on a read-only store) */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** sets the length (grows with zeros, sparse where the host allows) */
  truncate(size: number): Promise<void>;
  /** makes every completed write durable */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** opens another file relative to an image (the parent of a differencing image); supplied by the host */
export interface StoreOpener {
  /** `path` as written in the image (absolute, or relative to `relativeTo`'s directory) */
  open(path: string, options: { readOnly: boolean; relativeTo?: string }): Promise<ByteStore>;
  /** whether a file exists (to try the several parent locators of a VHD in turn) */
  exists(path: string, relativeTo?: string): Promise<boolean>;
  /** the canonical name the opener would give `path` (for messages and the list of files in use) */
  resolve(path: string, relativeTo?: string): string;
}

/** what a guest sees: sectors of 512 bytes */
export interface BlockDevice {
  /** the file (or files) behind it, for messages */
  readonly name: string;
  /** the image format's name: 'raw', 'vhd-fixed', 'vhd-dynamic', 'vhd-differencing', 'vdi-static', … */
  readonly format: string;
  /** capacity in 512-byte sectors */
  readonly sectors: number;
  readonly readOnly: boolean;
  /** reads buf.length bytes (a multiple of 512) from `sector` */
  read(sector: number, buf: Uint8Array): Promise<void>;
  /** writes data.length bytes (a multiple of 512) at `sector` */
  write(sector: number, data: Uint8Array): Promise<void>;
  /** makes every completed write durable (metadata included) */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** a ByteStore in memory: tests, overlays, images built in a browser */
export class MemoryStore implements ByteStore {
  readonly name: string;
  readonly readOnly: boolean;
  private buf: Uint8Array;
  private length: number;

  constructor(name: string, data: Uint8Array = new Uint8Array(0), readOnly = false) {
    this.name = name;
    this.readOnly = readOnly;
    this.buf = data;
    this.length = data.length;
  }

  /** the file's bytes (a view; copy it to keep it) */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  size(): number {
    return this.length;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this.name, offset, buf.length);
    const end = Math.min(this.length, offset + buf.length);
    if (offset >= end) {
      buf.fill(0);
      return;
    }
    buf.set(this.buf.subarray(offset, end));
    buf.fill(0, end - offset);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.readOnly) throw new DiskError(this.name, 'the file is read-only');
    checkRange(this.name, offset, data.length);
    this.grow(offset + data.length);
    this.buf.set(data, offset);
  }

  async truncate(size: number): Promise<void> {
    if (this.readOnly) throw new DiskError(this.name, 'the file is read-only');
    if (size < this.length) this.buf.fill(0, size, this.length);
    else this.grow(size);
    this.length = size;
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}

  private grow(end: number): void {
    if (end > this.buf.length) {
      const next = new Uint8Array(Math.max(end, this.buf.length * 2, 4096));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
    }
    if (end > this.length) this.length = end;
  }
}

function checkRange(name: string, offset: number, length: number): void {
  if (!(Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(offset + length))) {
    throw new DiskError(name, `bad offset ${offset}`);
  }
}
