/**
 * HttpRangeStore against a real node:http server on 127.0.0.1: ranged reads across chunk boundaries,
 * the chunk cache (LRU bound, shared in-flight requests, one request per run of missing chunks), servers
 * that ignore Range (small file accepted whole, large refused), errors (404, refused connection, a file
 * changed on the server), retries of 503, the HEAD fallback when Content-Range is hidden, and a VDI image
 * read over HTTP.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DiskError, MemoryStore } from '../../disk/block';
import { HttpRangeStore } from '../../disk/http-store';
import { createVdi, openVdi } from '../../disk/vdi';

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

const KiB = 1024;
const fileData = pattern(1024 * KiB + 1234, 1);
const smallData = pattern(10 * KiB + 5, 2);
const bigData = pattern(3 * 1024 * KiB, 3);
let changing = pattern(200 * KiB, 4);
let vdiBytes: Uint8Array;
let flakyFailures = 0;
/** GET requests per path, and the Range header of each */
const log: { path: string; method: string; range: string | undefined }[] = [];

/** answers a request for `data` honouring a single "bytes=a-b" / "bytes=a-" range */
function serveRanged(req: IncomingMessage, res: ServerResponse, data: Uint8Array, opts: { contentRange?: boolean; etag?: string } = {}): void {
  const headers: Record<string, string> = { 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream' };
  if (opts.etag) headers.ETag = opts.etag;
  const range = req.headers.range;
  if (req.method === 'HEAD') {
    res.writeHead(200, { ...headers, 'Content-Length': String(data.length) });
    res.end();
    return;
  }
  const m = range ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
  if (!m) {
    res.writeHead(200, { ...headers, 'Content-Length': String(data.length) });
    res.end(data);
    return;
  }
  const start = Number(m[1]);
  if (start >= data.length) {
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${data.length}` });
    res.end();
    return;
  }
  const end = Math.min(data.length - 1, m[2] === '' ? data.length - 1 : Number(m[2]));
  const body = data.subarray(start, end + 1);
  if (opts.contentRange !== false) headers['Content-Range'] = `bytes ${start}-${end}/${data.length}`;
  res.writeHead(206, { ...headers, 'Content-Length': String(body.length) });
  res.end(body);
}

let server: Server;
let base: string;

beforeAll(async () => {
  const vstore = new MemoryStore('v.vdi');
  const vdev = await createVdi(vstore, { sectors: (3 * 1024 * KiB) / 512, type: 'dynamic' });
  await vdev.write(0, pattern(4096, 5));
  await vdev.write((2 * 1024 * KiB + 512) / 512, pattern(8192, 6));
  vdiBytes = vstore.bytes().slice();

  server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    log.push({ path, method: req.method ?? '', range: req.headers.range });
    switch (path) {
      case '/file.bin':
        return serveRanged(req, res, fileData, { etag: '"v1"' });
      case '/image.vdi':
        return serveRanged(req, res, vdiBytes);
      case '/empty.bin':
        return serveRanged(req, res, new Uint8Array(0));
      case '/hidden-range.bin':
        return serveRanged(req, res, smallData, { contentRange: false });
      case '/changing.bin':
        return serveRanged(req, res, changing);
      case '/flaky.bin':
        if (flakyFailures > 0) {
          flakyFailures--;
          res.writeHead(503);
          res.end('busy');
          return;
        }
        return serveRanged(req, res, smallData);
      case '/norange-small.bin':
        res.writeHead(200, { 'Content-Length': String(smallData.length) });
        res.end(smallData);
        return;
      case '/norange-big.bin':
        res.writeHead(200, { 'Content-Length': String(bigData.length) });
        res.end(bigData);
        return;
      case '/norange-chunked.bin': {
        // no Content-Length: the body arrives in pieces until it is too long
        res.writeHead(200, { 'Transfer-Encoding': 'chunked' });
        let sent = 0;
        const more = (): void => {
          if (sent >= bigData.length || res.destroyed) {
            res.end();
            return;
          }
          res.write(bigData.subarray(sent, sent + 64 * KiB), () => setImmediate(more));
          sent += 64 * KiB;
        };
        more();
        return;
      }
      default:
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('no such file');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const gets = (path: string): number => log.filter((e) => e.path === path && e.method === 'GET').length;

describe('HttpRangeStore', () => {
  it('opens with one ranged GET and reads byte ranges across chunk boundaries', async () => {
    const url = `${base}/file.bin`;
    const before = gets('/file.bin');
    const store = await HttpRangeStore.open(url, { chunkSize: 64 * KiB });
    expect(gets('/file.bin') - before).toBe(1);
    expect(store.size()).toBe(fileData.length);
    expect(store.readOnly).toBe(true);
    expect(store.name).toBe(url);
    const cases: [number, number][] = [
      [0, 100],
      [64 * KiB - 10, 20], // across one boundary
      [100 * KiB + 3, 300 * KiB], // across several
      [fileData.length - 50, 50], // the tail of the last, short chunk
      [12345, 1],
    ];
    for (const [off, len] of cases) {
      const buf = new Uint8Array(len);
      await store.read(off, buf);
      expect(same(buf, fileData.subarray(off, off + len))).toBe(true);
    }
    // past the end: zeros
    const tail = new Uint8Array(1000).fill(0xee);
    await store.read(fileData.length - 10, tail);
    expect(same(tail.subarray(0, 10), fileData.subarray(fileData.length - 10))).toBe(true);
    expect(tail.subarray(10).every((b) => b === 0)).toBe(true);
    const beyond = new Uint8Array(64).fill(1);
    await store.read(fileData.length + 5000, beyond);
    expect(beyond.every((b) => b === 0)).toBe(true);
    // everything read so far is cached: no new requests
    const n = gets('/file.bin');
    for (const [off, len] of cases) await store.read(off, new Uint8Array(len));
    expect(gets('/file.bin')).toBe(n);
    await store.close();
  });

  it('fetches a run of missing chunks in one request, and shares in-flight chunks between reads', async () => {
    const store = await HttpRangeStore.open(`${base}/file.bin`, { chunkSize: 16 * KiB });
    let n = gets('/file.bin');
    await store.read(32 * KiB, new Uint8Array(5 * 16 * KiB)); // chunks 2..6, all missing
    expect(gets('/file.bin') - n).toBe(1);
    expect(log[log.length - 1].range).toBe(`bytes=${32 * KiB}-${7 * 16 * KiB - 1}`);
    n = gets('/file.bin');
    // chunks 8 and 9 fetched by the first read; the two concurrent reads after it wait for that request
    const bufs = [new Uint8Array(100), new Uint8Array(16 * KiB), new Uint8Array(2 * 16 * KiB)];
    await Promise.all([
      store.read(8 * 16 * KiB, bufs[2]),
      store.read(8 * 16 * KiB + 5, bufs[0]),
      store.read(8 * 16 * KiB + 8 * KiB, bufs[1]),
    ]);
    expect(gets('/file.bin') - n).toBe(1);
    expect(same(bufs[0], fileData.subarray(8 * 16 * KiB + 5, 8 * 16 * KiB + 105))).toBe(true);
    expect(same(bufs[1], fileData.subarray(8 * 16 * KiB + 8 * KiB, 9 * 16 * KiB + 8 * KiB))).toBe(true);
    expect(same(bufs[2], fileData.subarray(8 * 16 * KiB, 10 * 16 * KiB))).toBe(true);
    // a read with cached chunks in the middle fetches only the gaps
    n = gets('/file.bin');
    const wide = new Uint8Array(12 * 16 * KiB);
    await store.read(0, wide); // chunks 0..11: 0 cached (open), 1 missing, 2..6 cached, 7 missing, 8..9 cached, 10..11 missing
    expect(gets('/file.bin') - n).toBe(3);
    expect(same(wide, fileData.subarray(0, 12 * 16 * KiB))).toBe(true);
    await store.close();
  });

  it('keeps the cache within its bound, least recently used out first', async () => {
    const store = await HttpRangeStore.open(`${base}/file.bin`, { chunkSize: 16 * KiB, maxCacheBytes: 4 * 16 * KiB });
    for (let c = 0; c < 10; c++) await store.read(c * 16 * KiB, new Uint8Array(16));
    expect(store.cachedChunks).toBe(4);
    let n = gets('/file.bin');
    await store.read(9 * 16 * KiB, new Uint8Array(16)); // recent: cached
    expect(gets('/file.bin')).toBe(n);
    await store.read(0, new Uint8Array(16)); // evicted long ago: fetched again
    expect(gets('/file.bin')).toBe(n + 1);
    n = gets('/file.bin');
    await store.read(6 * 16 * KiB, new Uint8Array(16)); // 6 was evicted by chunk 0
    expect(gets('/file.bin')).toBe(n + 1);
    expect(store.cachedChunks).toBe(4);
    await store.close();
  });

  it('writes and truncation reject: the caller puts an overlay on top', async () => {
    const store = await HttpRangeStore.open(`${base}/file.bin`);
    await expect(store.write(0, new Uint8Array(1))).rejects.toThrow(/file\.bin: read-only .*overlay/);
    await expect(store.truncate(0)).rejects.toBeInstanceOf(DiskError);
    await store.close();
  });

  it('a server that ignores Range: a small file is taken whole', async () => {
    const store = await HttpRangeStore.open(`${base}/norange-small.bin`, { chunkSize: 4 * KiB });
    expect(store.size()).toBe(smallData.length);
    const n = gets('/norange-small.bin');
    const buf = new Uint8Array(6000);
    await store.read(3000, buf);
    expect(same(buf, smallData.subarray(3000, 9000))).toBe(true);
    expect(gets('/norange-small.bin')).toBe(n);
  });

  it('a server that ignores Range: a large file is refused with a clear error', async () => {
    const url = `${base}/norange-big.bin`;
    const err = await HttpRangeStore.open(url, { wholeFileLimit: 1024 * KiB }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskError);
    expect((err as Error).message).toBe(
      `${url}: the server ignores HTTP Range requests and the file is ${bigData.length} bytes, over the ${1024 * KiB}-byte limit ` +
        'for downloading it whole: serve it from a server that supports Range',
    );
    const chunked = `${base}/norange-chunked.bin`;
    await expect(HttpRangeStore.open(chunked, { wholeFileLimit: 512 * KiB })).rejects.toThrow(
      new RegExp(`^${chunked.replace(/[.]/g, '\\.')}: the server ignores HTTP Range requests and the file is larger`),
    );
  });

  it('404 and a refused connection are DiskErrors naming the URL', async () => {
    const url = `${base}/nothing-here.img`;
    await expect(HttpRangeStore.open(url)).rejects.toThrow(`${url}: not found (HTTP 404)`);
    // a port with nothing listening
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const dead = `http://127.0.0.1:${port}/x.img`;
    const err = await HttpRangeStore.open(dead).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskError);
    expect((err as Error).message).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${port}/x\\.img: cannot fetch`));
  });

  it('retries a 503, and an empty file has size 0', async () => {
    flakyFailures = 2;
    const store = await HttpRangeStore.open(`${base}/flaky.bin`, { chunkSize: 4 * KiB });
    expect(flakyFailures).toBe(0);
    expect(store.size()).toBe(smallData.length);
    const empty = await HttpRangeStore.open(`${base}/empty.bin`);
    expect(empty.size()).toBe(0);
    const buf = new Uint8Array(10).fill(3);
    await empty.read(0, buf);
    expect(buf.every((b) => b === 0)).toBe(true);
  });

  it('without a readable Content-Range, the size comes from HEAD', async () => {
    const store = await HttpRangeStore.open(`${base}/hidden-range.bin`, { chunkSize: 4 * KiB });
    expect(store.size()).toBe(smallData.length);
    expect(log.some((e) => e.path === '/hidden-range.bin' && e.method === 'HEAD')).toBe(true);
    const buf = new Uint8Array(7000);
    await store.read(1000, buf);
    expect(same(buf, smallData.subarray(1000, 8000))).toBe(true);
  });

  it('a file replaced on the server after open is an error, not silent garbage', async () => {
    const url = `${base}/changing.bin`;
    const store = await HttpRangeStore.open(url, { chunkSize: 16 * KiB });
    changing = pattern(300 * KiB, 5);
    await expect(store.read(100 * KiB, new Uint8Array(10))).rejects.toThrow(`${url}: the file changed on the server since it was opened`);
  });

  it('a VDI image read over HTTP', async () => {
    const store = await HttpRangeStore.open(`${base}/image.vdi`, { chunkSize: 64 * KiB });
    const dev = await openVdi(store, null, { readOnly: true });
    expect(dev.format).toBe('vdi-dynamic');
    const a = new Uint8Array(4096);
    await dev.read(0, a);
    expect(same(a, pattern(4096, 5))).toBe(true);
    const b = new Uint8Array(8192 + 1024);
    await dev.read((2 * 1024 * KiB) / 512, b);
    expect(b.subarray(0, 512).every((x) => x === 0)).toBe(true);
    expect(same(b.subarray(512, 512 + 8192), pattern(8192, 6))).toBe(true);
    await expect(dev.write(0, new Uint8Array(512))).rejects.toThrow(/read-only/);
    await dev.close();
  });
});
