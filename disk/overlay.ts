/**
 * A copy-on-write overlay in memory over any BlockDevice (`--snapshot` mode): the guest's writes are kept
 * here and reads merge them over the base, which is never written.
 *
 * Writes are kept per 4 KiB cluster (8 sectors) with a bitmap of the sectors written, so a 512-byte write
 * costs one 4 KiB buffer and a read of a cluster half written takes the other half from the base.
 * A read goes to the base once for the whole request (unless every sector in it was written) and then
 * copies the written sectors over it.
 *
 * For snapshots: writtenSpans() lists the written sectors as maximal runs (no data), copyWritten() copies
 * the bytes of written sectors out (a snapshot copies them straight into its compression chunks, at the
 * instant of the capture), writtenRuns() does both at once, restore() puts such runs back (into an empty
 * overlay, or over the current writes), clear() drops every write.
 */
import { DiskError, SECTOR_SIZE, type BlockDevice } from './block';
import { checkRequest } from './util';

const CLUSTER_SECTORS = 8;
const CLUSTER_BYTES = CLUSTER_SECTORS * SECTOR_SIZE;
const FULL = (1 << CLUSTER_SECTORS) - 1;

interface Cluster {
  /** bit i set: sector i of the cluster was written */
  mask: number;
  data: Uint8Array;
}

/** a run of written sectors */
export interface WrittenSpan {
  sector: number;
  count: number;
}

/** a run of written sectors and their bytes (data.length = count * 512) */
export interface WrittenRun {
  sector: number;
  data: Uint8Array;
}

export class CowOverlay implements BlockDevice {
  readonly name: string;
  readonly format: string;
  readonly sectors: number;
  readonly readOnly = false;
  private readonly clusters = new Map<number, Cluster>();

  constructor(readonly base: BlockDevice) {
    this.name = base.name;
    this.format = base.format;
    this.sectors = base.sectors;
  }

  /** sectors written so far */
  get writtenSectors(): number {
    let n = 0;
    for (const c of this.clusters.values()) n += popcount(c.mask);
    return n;
  }

  async read(sector: number, buf: Uint8Array): Promise<void> {
    checkRequest(this, sector, buf.length);
    const count = buf.length / SECTOR_SIZE;
    if (count === 0) return;
    if (!this.fullyWritten(sector, count)) await this.base.read(sector, buf);
    if (this.clusters.size === 0) return;
    let s = sector;
    const end = sector + count;
    while (s < end) {
      const ci = Math.floor(s / CLUSTER_SECTORS);
      const first = s - ci * CLUSTER_SECTORS;
      const n = Math.min(end - s, CLUSTER_SECTORS - first);
      const c = this.clusters.get(ci);
      if (c) {
        let i = first;
        while (i < first + n) {
          if (!(c.mask & (1 << i))) {
            i++;
            continue;
          }
          let j = i + 1;
          while (j < first + n && c.mask & (1 << j)) j++;
          const at = (ci * CLUSTER_SECTORS + i - sector) * SECTOR_SIZE;
          buf.set(c.data.subarray(i * SECTOR_SIZE, j * SECTOR_SIZE), at);
          i = j;
        }
      }
      s += n;
    }
  }

  private fullyWritten(sector: number, count: number): boolean {
    let s = sector;
    const end = sector + count;
    while (s < end) {
      const ci = Math.floor(s / CLUSTER_SECTORS);
      const first = s - ci * CLUSTER_SECTORS;
      const n = Math.min(end - s, CLUSTER_SECTORS - first);
      const want = ((1 << n) - 1) << first;
      const c = this.clusters.get(ci);
      if (!c || (c.mask & want) !== want) return false;
      s += n;
    }
    return true;
  }

  async write(sector: number, data: Uint8Array): Promise<void> {
    checkRequest(this, sector, data.length);
    this.put(sector, data);
  }

  private put(sector: number, data: Uint8Array): void {
    let s = sector;
    const end = sector + data.length / SECTOR_SIZE;
    while (s < end) {
      const ci = Math.floor(s / CLUSTER_SECTORS);
      const first = s - ci * CLUSTER_SECTORS;
      const n = Math.min(end - s, CLUSTER_SECTORS - first);
      let c = this.clusters.get(ci);
      if (!c) {
        c = { mask: 0, data: new Uint8Array(CLUSTER_BYTES) };
        this.clusters.set(ci, c);
      }
      const from = (s - sector) * SECTOR_SIZE;
      c.data.set(data.subarray(from, from + n * SECTOR_SIZE), first * SECTOR_SIZE);
      c.mask |= ((1 << n) - 1) << first;
      s += n;
    }
  }

  /** nothing to make durable: the writes live in memory until the overlay is dropped */
  async flush(): Promise<void> {}

  /** closes the base (the writes are discarded) */
  async close(): Promise<void> {
    this.clusters.clear();
    await this.base.close();
  }

  /** the written sectors as maximal runs in ascending order, with copies of their data */
  writtenRuns(): WrittenRun[] {
    return this.writtenSpans().map(({ sector, count }) => {
      const data = new Uint8Array(count * SECTOR_SIZE);
      this.copyOut(sector, data);
      return { sector, data };
    });
  }

  /** the written sectors as maximal runs in ascending order (sector numbers and counts only) */
  writtenSpans(): WrittenSpan[] {
    const keys = [...this.clusters.keys()].sort((a, b) => a - b);
    const spans: WrittenSpan[] = [];
    for (const ci of keys) {
      const mask = this.clusters.get(ci)!.mask;
      let i = 0;
      while (i < CLUSTER_SECTORS) {
        if (!(mask & (1 << i))) {
          i++;
          continue;
        }
        let j = i + 1;
        while (j < CLUSTER_SECTORS && mask & (1 << j)) j++;
        const sector = ci * CLUSTER_SECTORS + i;
        const last = spans[spans.length - 1];
        if (last && last.sector + last.count === sector) last.count += j - i;
        else spans.push({ sector, count: j - i });
        i = j;
      }
    }
    return spans;
  }

  /**
   * Copies the bytes of `out.length / 512` written sectors from `sector` into `out`; every one of them must
   * have been written (a part of a span from writtenSpans()).
   */
  copyWritten(sector: number, out: Uint8Array): void {
    if (out.length % SECTOR_SIZE !== 0 || !this.fullyWritten(sector, out.length / SECTOR_SIZE)) {
      throw new DiskError(this.name, `overlay: sectors ${sector}+${out.length / SECTOR_SIZE} were not all written`);
    }
    this.copyOut(sector, out);
  }

  private copyOut(sector: number, out: Uint8Array): void {
    let s = sector;
    const end = sector + out.length / SECTOR_SIZE;
    while (s < end) {
      const ci = Math.floor(s / CLUSTER_SECTORS);
      const first = s - ci * CLUSTER_SECTORS;
      const n = Math.min(end - s, CLUSTER_SECTORS - first);
      const c = this.clusters.get(ci)!;
      out.set(c.data.subarray(first * SECTOR_SIZE, (first + n) * SECTOR_SIZE), (s - sector) * SECTOR_SIZE);
      s += n;
    }
  }

  /** puts written runs (from writtenRuns, maybe of a saved snapshot) back in */
  restore(runs: readonly WrittenRun[]): void {
    for (const r of runs) {
      if (r.data.length % SECTOR_SIZE !== 0 || r.sector < 0 || r.sector + r.data.length / SECTOR_SIZE > this.sectors) {
        throw new DiskError(this.name, `overlay restore: a run at sector ${r.sector} (${r.data.length} bytes) does not fit the disk`);
      }
      this.put(r.sector, r.data);
    }
  }

  /** drops every write (the guest sees the base again) */
  clear(): void {
    this.clusters.clear();
  }
}

function popcount(x: number): number {
  let n = 0;
  while (x) {
    x &= x - 1;
    n++;
  }
  return n;
}

/** wraps `base` in a copy-on-write overlay */
export function createOverlay(base: BlockDevice): CowOverlay {
  return new CowOverlay(base);
}
