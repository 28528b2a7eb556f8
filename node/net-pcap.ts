/**
 * A pcap capture file written as traffic passes (core/pcap.ts makes the bytes). Records are written
 * whole, in batches (every FLUSH_MS and on close), so the file is a valid capture at every moment, and a
 * crash loses at most the last batch. Opening truncates the file and writes the header at once.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { PcapWriter } from '../core/pcap';

export const FLUSH_MS = 200;

export class PcapFileError extends Error {}

export class PcapFile {
  readonly path: string;
  private fd: number;
  private readonly writer = new PcapWriter();
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** the first write error (capture stops then; the network goes on) */
  error: string | null = null;

  constructor(path: string) {
    this.path = path;
    try {
      this.fd = openSync(path, 'w');
    } catch (e) {
      throw new PcapFileError(`cannot open capture file '${path}': ${(e as Error).message}`);
    }
    this.flush();
  }

  get records(): number {
    return this.writer.count;
  }

  /** one frame at host time `timeMs` (ms since the epoch; default now) */
  add(frame: Uint8Array, timeMs = Date.now()): void {
    if (this.fd < 0) return;
    this.writer.add(frame, timeMs);
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush();
      }, FLUSH_MS);
      this.timer.unref?.();
    }
  }

  flush(): void {
    if (this.fd < 0 || this.writer.pending === 0) return;
    const bytes = this.writer.take();
    try {
      let off = 0;
      while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
    } catch (e) {
      this.error = `capture file '${this.path}': ${(e as Error).message}`;
      this.closeFd();
    }
  }

  private closeFd(): void {
    if (this.fd < 0) return;
    try {
      closeSync(this.fd);
    } catch {
      // nothing more to do
    }
    this.fd = -1;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.flush();
    this.closeFd();
  }
}
