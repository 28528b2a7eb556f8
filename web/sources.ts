/**
 * Getting bytes into the worker: whole files (kernel, initrd, firmware, snapshot) fetched from a URL, read
 * from a picked file or handed over as bytes; and disk images opened lazily — a URL through HTTP range
 * requests (disk/http-store.ts), a picked file through Blob.slice — so a multi-GiB image is never copied
 * whole. Every failure becomes a SourceError whose message says in plain words which file and what went
 * wrong ("could not download http://…/bzImage: not found (HTTP 404)").
 *
 * Browser and Node alike (fetch, Blob, URL are global in both); no DOM APIs.
 */
import { DiskError, MemoryStore, type ByteStore, type StoreOpener } from '../disk/block';
import { HttpRangeStore } from '../disk/http-store';
import { sourceName, sizeText, type Source } from './protocol';

/** a failure to get a file, in words for the page */
export class SourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SourceError';
  }
}

/** opens a URL as a lazily read HTTP range store (it calls the global fetch unbound, as browsers require) */
function openRange(url: string): Promise<HttpRangeStore> {
  return HttpRangeStore.open(url);
}

/** the largest whole file we load into memory (a kernel, initrd or snapshot) */
export const MAX_WHOLE_FILE = 1536 * 1024 * 1024;

/** resolves a URL against the page's address (the worker gets it as `base`) */
export function resolveUrl(url: string, base?: string): string {
  try {
    return new URL(url, base).href;
  } catch {
    throw new SourceError(`'${url}' is not a valid address`);
  }
}

function networkWords(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // browsers say "Failed to fetch" / "NetworkError when attempting to fetch resource"; Node says "fetch failed"
  return /fetch/i.test(msg) ? 'the server could not be reached (network error, or the server does not allow this page to read it)' : msg;
}

function httpWords(status: number, statusText: string): string {
  if (status === 404) return 'not found (HTTP 404)';
  if (status === 403) return 'access denied (HTTP 403)';
  return `the server answered HTTP ${status}${statusText ? ' ' + statusText : ''}`;
}

/** reads a whole Source into memory; `what` names it in messages ("kernel", "initrd", "snapshot") */
export async function loadWhole(source: Source, what: string, base?: string): Promise<Uint8Array> {
  if ('bytes' in source) return source.bytes;
  if ('blob' in source) {
    if (source.blob.size > MAX_WHOLE_FILE) {
      throw new SourceError(`${what} '${source.name}' is too large (${sizeText(source.blob.size)}) to load into memory`);
    }
    try {
      return new Uint8Array(await source.blob.arrayBuffer());
    } catch (e) {
      throw new SourceError(`could not read ${what} '${source.name}': ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const url = resolveUrl(source.url, base);
  const hint = source.hint ? `; ${source.hint}` : '';
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new SourceError(`could not download ${what} ${url}: ${networkWords(e)}${hint}`);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new SourceError(`could not download ${what} ${url}: ${httpWords(res.status, res.statusText)}${hint}`);
  }
  const length = Number(res.headers.get('content-length') ?? NaN);
  if (length > MAX_WHOLE_FILE) {
    await res.body?.cancel().catch(() => undefined);
    throw new SourceError(`${what} ${url} is too large (${sizeText(length)}) to load into memory`);
  }
  try {
    return new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    throw new SourceError(`could not download ${what} ${url}: the transfer broke off (${networkWords(e)})`);
  }
}

/** a read-only ByteStore over a Blob (a file picked on the computer): reads only what is asked for */
export class BlobStore implements ByteStore {
  readonly readOnly = true;
  constructor(
    readonly name: string,
    private readonly blob: Blob,
  ) {}

  size(): number {
    return this.blob.size;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    const size = this.blob.size;
    if (!(Number.isSafeInteger(offset) && offset >= 0)) throw new DiskError(this.name, `bad offset ${offset}`);
    const end = Math.min(size, offset + buf.length);
    if (offset >= end) {
      buf.fill(0);
      return;
    }
    let data: ArrayBuffer;
    try {
      data = await this.blob.slice(offset, end).arrayBuffer();
    } catch (e) {
      throw new DiskError(this.name, `cannot read the file (${e instanceof Error ? e.message : String(e)}); was it changed or removed?`);
    }
    buf.set(new Uint8Array(data));
    if (end - offset < buf.length) buf.fill(0, end - offset);
  }

  async write(): Promise<void> {
    throw new DiskError(this.name, 'the file is read-only');
  }

  async truncate(): Promise<void> {
    throw new DiskError(this.name, 'the file is read-only');
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}
}

/**
 * Opens the files a disk image refers to (a differencing image's parent): URLs are resolved against the
 * image's URL; names of picked files are looked up among the files picked with it (a folder).
 * Every file is opened read-only: the browser never writes an image.
 */
export class WebOpener implements StoreOpener {
  constructor(
    private readonly files: ReadonlyMap<string, Blob> = new Map(),
    private readonly base?: string,
  ) {}

  private isUrl(path: string, relativeTo?: string): boolean {
    return /^[a-z][a-z0-9+.-]*:\/\//i.test(path) || (relativeTo !== undefined && /^[a-z][a-z0-9+.-]*:\/\//i.test(relativeTo));
  }

  resolve(path: string, relativeTo?: string): string {
    const p = path.replace(/\\/g, '/');
    if (this.isUrl(p, relativeTo)) return resolveUrl(p, relativeTo ?? this.base);
    if (p.startsWith('/') || /^[a-z]:\//i.test(p) || !relativeTo) return normalise(p);
    const dir = relativeTo.includes('/') ? relativeTo.slice(0, relativeTo.lastIndexOf('/') + 1) : '';
    return normalise(dir + p);
  }

  private lookup(name: string): Blob | undefined {
    const exact = this.files.get(name);
    if (exact) return exact;
    // an absolute path written by the machine that made the image: try its last component
    const leaf = name.slice(name.lastIndexOf('/') + 1);
    return this.files.get(leaf);
  }

  async exists(path: string, relativeTo?: string): Promise<boolean> {
    const name = this.resolve(path, relativeTo);
    if (this.isUrl(name)) {
      try {
        const res = await fetch(name, { method: 'HEAD' });
        return res.ok;
      } catch {
        return false;
      }
    }
    return this.lookup(name) !== undefined;
  }

  async open(path: string, options: { readOnly: boolean; relativeTo?: string }): Promise<ByteStore> {
    const name = this.resolve(path, options.relativeTo);
    if (!options.readOnly) throw new DiskError(name, 'a browser page cannot write to an image file');
    if (this.isUrl(name)) return openRange(name);
    const blob = this.lookup(name);
    if (!blob) throw new DiskError(name, 'no such file among the files picked (pick the folder that holds the image and its parent)');
    return new BlobStore(name, blob);
  }
}

/** "a/./b/../c" → "a/c" */
function normalise(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '.' || (part === '' && out.length > 0)) continue;
    if (part === '..' && out.length > 0 && out[out.length - 1] !== '..' && out[out.length - 1] !== '') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

/** opens a disk image's bytes as a ByteStore (lazily) */
export async function openDiskStore(source: Source, base?: string): Promise<ByteStore> {
  if ('bytes' in source) return new MemoryStore(source.name, source.bytes, true);
  if ('blob' in source) return new BlobStore(source.name, source.blob);
  const url = resolveUrl(source.url, base);
  try {
    return await openRange(url);
  } catch (e) {
    if (e instanceof DiskError) throw new SourceError(`could not open disk image ${url}: ${e.message.startsWith(url) ? e.message.slice(url.length + 2) : e.message}`);
    throw new SourceError(`could not open disk image ${url}: ${networkWords(e)}`);
  }
}

export { sourceName };
