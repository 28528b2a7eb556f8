/**
 * A read-only ByteStore over HTTP: the file is fetched lazily with Range requests, in aligned chunks kept
 * in an LRU cache, so a browser can boot a multi-GiB image without downloading it. Writes reject: the
 * caller puts a copy-on-write overlay (disk/overlay.ts) on top.
 *
 * Opening sends one `Range: bytes=0-(chunk-1)` GET: a 206 answer gives the size (Content-Range) and the
 * first chunk. A server that ignores Range answers 200 with the whole body: a small file (up to
 * `wholeFileLimit`, 16 MiB by default) is then kept in memory whole, a larger one is refused without
 * downloading it. Later misses fetch each run of consecutive missing chunks in one request; concurrent
 * reads of a chunk share one request. Every answer is checked (status 206, the range asked for, the same
 * total size and ETag as at open: a file replaced on the server mid-run is an error, not silent garbage).
 * Transient failures (network errors, 502/503/504) are retried twice. Errors are DiskErrors naming the URL.
 *
 * Uses only the global fetch (Node 18+, browsers; cross-origin servers must allow the Range request
 * header and expose Content-Range, or at least Content-Length for a HEAD fallback).
 */
import { DiskError, type ByteStore } from './block';

type FetchFn = typeof globalThis.fetch;

export interface HttpRangeOptions {
  /** the fetch to use (default: the global one) */
  fetch?: FetchFn;
  /** bytes per request and cache entry (default 256 KiB; a multiple of 512) */
  chunkSize?: number;
  /** cache bound in bytes (default 64 MiB) */
  maxCacheBytes?: number;
  /** largest file accepted whole from a server that ignores Range (default 16 MiB) */
  wholeFileLimit?: number;
  /** most chunks fetched in one request (default 64) */
  maxChunksPerRequest?: number;
}

const DEFAULT_CHUNK = 256 * 1024;
const DEFAULT_CACHE = 64 * 1024 * 1024;
const DEFAULT_WHOLE_LIMIT = 16 * 1024 * 1024;
const RETRIES = 2;
const RETRY_DELAY_MS = 200;

interface ContentRange {
  start: number;
  end: number;
  total: number;
}

function parseContentRange(value: string | null): ContentRange | null {
  if (!value) return null;
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (m) return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? -1 : Number(m[3]) };
  const u = /^\s*bytes\s+\*\/(\d+)\s*$/i.exec(value);
  if (u) return { start: -1, end: -1, total: Number(u[1]) };
  return null;
}

function statusText(res: Response): string {
  if (res.status === 404) return 'not found (HTTP 404)';
  return `HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** reads a body of at most `limit` bytes; null when it is longer (the rest is not downloaded) */
async function readLimited(res: Response, limit: number): Promise<Uint8Array | null> {
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    parts.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export class HttpRangeStore implements ByteStore {
  readonly name: string;
  readonly readOnly = true;
  private readonly fetchFn: FetchFn;
  private readonly chunkSize: number;
  private readonly maxChunks: number;
  private readonly maxPerRequest: number;
  private length = 0;
  private etag: string | null = null;
  /** the whole file, when the server ignores Range and the file is small */
  private whole: Uint8Array | null = null;
  /** chunk index → bytes; Map order is the LRU order (oldest first) */
  private readonly cache = new Map<number, Uint8Array>();
  private readonly inflight = new Map<number, Promise<Uint8Array>>();
  private closed = false;
  /** requests sent (for tests and statistics) */
  requests = 0;

  private constructor(url: string, fetchFn: FetchFn, chunkSize: number, maxCacheBytes: number, maxPerRequest: number) {
    this.name = url;
    this.fetchFn = fetchFn;
    this.chunkSize = chunkSize;
    this.maxChunks = Math.max(2, Math.floor(maxCacheBytes / chunkSize));
    this.maxPerRequest = maxPerRequest;
  }

  /** opens `url`, learning its size (see the file comment) */
  static async open(url: string, options: HttpRangeOptions = {}): Promise<HttpRangeStore> {
    if (typeof (options.fetch ?? globalThis.fetch) !== 'function') throw new DiskError(url, 'no fetch() in this environment');
    // the global fetch is called unbound: a browser's throws "Illegal invocation" when called as a method of the store
    const fetchFn = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;
    if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0 || chunkSize % 512 !== 0) {
      throw new DiskError(url, `bad chunk size ${chunkSize} (a positive multiple of 512)`);
    }
    const maxPerRequest = Math.max(1, options.maxChunksPerRequest ?? 64);
    const store = new HttpRangeStore(url, fetchFn, chunkSize, options.maxCacheBytes ?? DEFAULT_CACHE, maxPerRequest);
    await store.init(options.wholeFileLimit ?? DEFAULT_WHOLE_LIMIT);
    return store;
  }

  private async send(init: RequestInit): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        this.requests++;
        res = await this.fetchFn(this.name, init);
      } catch (e) {
        if (attempt < RETRIES) {
          await sleep(RETRY_DELAY_MS);
          continue;
        }
        throw new DiskError(this.name, `cannot fetch: ${(e as Error).message ?? String(e)}`);
      }
      if ((res.status === 502 || res.status === 503 || res.status === 504) && attempt < RETRIES) {
        await res.body?.cancel().catch(() => undefined);
        await sleep(RETRY_DELAY_MS);
        continue;
      }
      return res;
    }
  }

  private async init(wholeFileLimit: number): Promise<void> {
    const res = await this.send({ headers: { Range: `bytes=0-${this.chunkSize - 1}` } });
    if (res.status === 206) {
      const cr = parseContentRange(res.headers.get('content-range'));
      let total = cr?.total ?? -1;
      if (total < 0) {
        // a cross-origin server that does not expose Content-Range: ask for the length
        await res.body?.cancel().catch(() => undefined);
        total = await this.headLength();
        if (total < 0) {
          throw new DiskError(
            this.name,
            'the server answered a Range request without a readable Content-Range or Content-Length ' +
              '(cross-origin: it must send Access-Control-Expose-Headers: Content-Range)',
          );
        }
        this.length = total;
        this.etag = res.headers.get('etag');
        return;
      }
      this.length = total;
      this.etag = res.headers.get('etag');
      const body = new Uint8Array(await res.arrayBuffer());
      const expect = Math.min(this.chunkSize, total);
      if (!cr || cr.start !== 0 || body.length !== expect || (expect > 0 && cr.end !== expect - 1)) {
        throw new DiskError(this.name, `the server answered bytes 0-${this.chunkSize - 1} with a different range (${res.headers.get('content-range')}, ${body.length} bytes)`);
      }
      if (total > 0) this.remember(0, body);
      return;
    }
    if (res.status === 200) {
      const declared = Number(res.headers.get('content-length') ?? NaN);
      const refuse = (size: string): DiskError =>
        new DiskError(
          this.name,
          `the server ignores HTTP Range requests and the file is ${size}, over the ${wholeFileLimit}-byte limit for ` +
            'downloading it whole: serve it from a server that supports Range',
        );
      if (Number.isFinite(declared) && declared > wholeFileLimit) {
        await res.body?.cancel().catch(() => undefined);
        throw refuse(`${declared} bytes`);
      }
      const body = await readLimited(res, wholeFileLimit);
      if (!body) throw refuse('larger');
      this.whole = body;
      this.length = body.length;
      return;
    }
    if (res.status === 416) {
      // an empty file has no byte 0
      const cr = parseContentRange(res.headers.get('content-range'));
      await res.body?.cancel().catch(() => undefined);
      if (cr && cr.total === 0) {
        this.length = 0;
        return;
      }
    }
    await res.body?.cancel().catch(() => undefined);
    throw new DiskError(this.name, statusText(res));
  }

  /** the Content-Length of a HEAD answer; -1 when unknown */
  private async headLength(): Promise<number> {
    const res = await this.send({ method: 'HEAD' });
    if (!res.ok) throw new DiskError(this.name, statusText(res));
    const n = Number(res.headers.get('content-length') ?? NaN);
    return Number.isSafeInteger(n) && n >= 0 ? n : -1;
  }

  size(): number {
    return this.length;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    if (this.closed) throw new DiskError(this.name, 'the store is closed');
    if (!Number.isSafeInteger(offset) || offset < 0) throw new DiskError(this.name, `bad offset ${offset}`);
    const end = Math.min(this.length, offset + buf.length);
    if (offset >= end) {
      buf.fill(0);
      return;
    }
    if (end - offset < buf.length) buf.fill(0, end - offset);
    if (this.whole) {
      buf.set(this.whole.subarray(offset, end));
      return;
    }
    const cs = this.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    const chunks: Promise<Uint8Array>[] = [];
    let missingFrom = -1;
    for (let c = first; c <= last + 1; c++) {
      const have = c <= last ? this.lookup(c) : null;
      const missing = c <= last && have === null;
      if (missing && missingFrom < 0) missingFrom = c;
      const runFull = missingFrom >= 0 && c - missingFrom >= this.maxPerRequest;
      if ((!missing || runFull) && missingFrom >= 0) {
        this.fetchRun(missingFrom, c - 1, chunks);
        missingFrom = missing ? c : -1;
      }
      if (c <= last && have) chunks.push(have);
    }
    // one promise per chunk, in chunk order
    const parts = await Promise.all(chunks);
    for (let c = first; c <= last; c++) {
      const data = parts[c - first];
      const chunkStart = c * cs;
      const from = Math.max(offset, chunkStart);
      const to = Math.min(end, chunkStart + data.length);
      if (to > from) buf.set(data.subarray(from - chunkStart, to - chunkStart), from - offset);
    }
  }

  /** a cached chunk (made most recent) or an in-flight one; null when it must be fetched */
  private lookup(c: number): Promise<Uint8Array> | null {
    const hit = this.cache.get(c);
    if (hit) {
      this.cache.delete(c);
      this.cache.set(c, hit);
      return Promise.resolve(hit);
    }
    return this.inflight.get(c) ?? null;
  }

  /** fetches chunks a..b in one request, pushing one promise per chunk onto `out` in order */
  private fetchRun(a: number, b: number, out: Promise<Uint8Array>[]): void {
    const cs = this.chunkSize;
    const start = a * cs;
    const stop = Math.min(this.length, (b + 1) * cs) - 1;
    const all = this.fetchRange(start, stop);
    for (let c = a; c <= b; c++) {
      const p = all.then((data) => {
        const off = (c - a) * cs;
        const chunk = data.subarray(off, Math.min(data.length, off + cs));
        this.remember(c, chunk);
        return chunk;
      });
      const tracked = p.finally(() => {
        if (this.inflight.get(c) === tracked) this.inflight.delete(c);
      });
      this.inflight.set(c, tracked);
      // keep an unobserved rejection of one chunk from being reported as unhandled
      tracked.catch(() => undefined);
      out.push(tracked);
    }
  }

  private async fetchRange(start: number, stop: number): Promise<Uint8Array> {
    const res = await this.send({ headers: { Range: `bytes=${start}-${stop}` } });
    if (res.status !== 206) {
      await res.body?.cancel().catch(() => undefined);
      if (res.status === 200) throw new DiskError(this.name, `the server ignored a Range request (bytes ${start}-${stop})`);
      throw new DiskError(this.name, `${statusText(res)} for bytes ${start}-${stop}`);
    }
    const cr = parseContentRange(res.headers.get('content-range'));
    const tag = res.headers.get('etag');
    if ((cr && cr.total >= 0 && cr.total !== this.length) || (tag && this.etag && tag !== this.etag)) {
      await res.body?.cancel().catch(() => undefined);
      throw new DiskError(this.name, 'the file changed on the server since it was opened');
    }
    if (cr && (cr.start !== start || cr.end !== stop)) {
      await res.body?.cancel().catch(() => undefined);
      throw new DiskError(this.name, `asked for bytes ${start}-${stop}, the server sent ${cr.start}-${cr.end}`);
    }
    const body = new Uint8Array(await res.arrayBuffer());
    if (body.length !== stop - start + 1) {
      throw new DiskError(this.name, `short answer: ${body.length} of ${stop - start + 1} bytes for bytes ${start}-${stop}`);
    }
    return body;
  }

  private remember(c: number, data: Uint8Array): void {
    if (this.closed) return;
    this.cache.delete(c);
    this.cache.set(c, data);
    while (this.cache.size > this.maxChunks) {
      const oldest = this.cache.keys().next().value as number;
      this.cache.delete(oldest);
    }
  }

  /** chunks held in the cache (for tests) */
  get cachedChunks(): number {
    return this.cache.size;
  }

  async write(_offset: number, _data: Uint8Array): Promise<void> {
    throw new DiskError(this.name, 'read-only (an HTTP image): writes go to an overlay');
  }

  async truncate(_size: number): Promise<void> {
    throw new DiskError(this.name, 'read-only (an HTTP image): writes go to an overlay');
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
    this.cache.clear();
    this.whole = null;
  }
}
