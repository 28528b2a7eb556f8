/**
 * Disk image files on Node: FileStore (a ByteStore over a file descriptor), NodeOpener (finds the
 * parents of differencing images) and the lock files that keep two x86vm processes from using one image
 * in conflicting ways.
 *
 * I/O is synchronous (fs.readSync/writeSync) inside async methods, so every Promise is settled when the
 * method returns: a Node disk never keeps the machine waiting. Files grow sparsely (writes past the end,
 * ftruncate); flush() is fsync.
 *
 * Locking. Node has no flock(), so x86vm uses lock files next to the image (the real path, symlinks
 * resolved), each holding one line of JSON: {"pid", "host", "start" (the process's start time from
 * /proc where there is one), "mode"}:
 * - read-write: IMAGE.lock, created atomically (written under a temporary name, then hard-linked, which
 *   fails if it exists); then no live reader may hold a read lock, else the writer backs off.
 * - read-only: IMAGE.lock.ro-PID, one per process; then no live writer may hold IMAGE.lock, else the
 *   reader backs off. Readers share.
 * Each side creates its own file before looking for the other's, so two processes racing cannot both win.
 * A lock whose process is gone (no such PID on this host, or a PID now used by a process started at
 * another time) is stale and taken over. Locks are released on close and when the process exits; a lock
 * from another host (a shared file system) is always taken as live. Within one process the same file may
 * be opened read-only any number of times, read-write only once and not together with read-only.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostname } from 'node:os';
import { DiskError, type ByteStore, type StoreOpener } from '../disk/block';
import { baseName, isWindowsAbsolute } from '../disk/util';

// ---------------------------------------------------------------------------------------------------
// locks

type LockMode = 'rw' | 'ro';

interface LockInfo {
  pid: number;
  host: string;
  start?: string;
  mode: LockMode;
}

interface Held {
  mode: LockMode;
  count: number;
  /** the lock file this process created (undefined where none could be made for a read-only open) */
  file?: string;
}

/** locks this process holds, by the image's real path */
const held = new Map<string, Held>();
let exitHookInstalled = false;

function procStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the fields after the command name (which may hold spaces and parentheses): starttime is field 22
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

const self: LockInfo = { pid: process.pid, host: hostname(), start: procStart(process.pid), mode: 'ro' };

function readLock(file: string): LockInfo | 'garbled' | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.host === 'string') {
      return { pid: v.pid, host: v.host, start: typeof v.start === 'string' ? v.start : undefined, mode: v.mode === 'rw' ? 'rw' : 'ro' };
    }
  } catch {
    // fall through
  }
  return 'garbled';
}

/** whether the process that wrote a lock still runs */
function lockAlive(info: LockInfo | 'garbled', file: string): boolean {
  if (info === 'garbled') {
    // being written right now by a process without hard links, or junk: give it a few seconds
    try {
      return Date.now() - fs.statSync(file).mtimeMs < 10_000;
    } catch {
      return false;
    }
  }
  if (info.host !== self.host) return true;
  if (info.pid === process.pid) {
    // ours only if this very process holds it (else: a leftover of an earlier process with our PID)
    return info.start === self.start && [...held.values()].some((h) => h.file === file);
  }
  try {
    process.kill(info.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (info.start !== undefined) {
    const now = procStart(info.pid);
    if (now !== undefined && now !== info.start) return false;
  }
  return true;
}

function lockText(mode: LockMode): string {
  return `${JSON.stringify({ ...self, mode })}\n`;
}

/** creates `file` holding `text`, atomically; false if it exists */
function createExclusive(file: string, text: string): boolean {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
    // no hard links on this file system: exclusive create, then write
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx');
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e2;
    }
    try {
      fs.writeSync(fd, text);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  } finally {
    try {
      fs.unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
}

function unlinkQuiet(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch {
    // already gone
  }
}

function holder(info: LockInfo | 'garbled'): string {
  if (info === 'garbled') return 'another x86vm process';
  if (info.pid === process.pid && info.host === self.host) return 'this x86vm process';
  return info.host === self.host ? `x86vm process ${info.pid}` : `x86vm process ${info.pid} on host ${info.host}`;
}

function inUse(name: string, info: LockInfo | 'garbled', mode: LockMode): DiskError {
  const how = mode === 'rw' ? 'read-write' : 'read-only';
  return new DiskError(name, `in use (${how}) by ${holder(info)}; a file open read-write cannot be shared`);
}

/** moves a stale writer lock out of the way, unless it turns out to be live after all */
function takeOver(file: string, stale: LockInfo | 'garbled'): void {
  const grave = `${file}.stale-${process.pid}-${Date.now()}`;
  try {
    fs.renameSync(file, grave);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  const moved = readLock(grave);
  const same =
    moved !== undefined &&
    (moved === 'garbled' ? stale === 'garbled' : stale !== 'garbled' && moved.pid === stale.pid && moved.start === stale.start);
  if (!same) {
    // someone else replaced it with a live lock in between: put it back
    try {
      fs.linkSync(grave, file);
    } catch {
      // it has been replaced again; ours to drop
    }
  }
  unlinkQuiet(grave);
}

function readerFiles(real: string): string[] {
  const dir = path.dirname(real);
  const prefix = `${path.basename(real)}.lock.ro-`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length))).map((n) => path.join(dir, n));
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const h of held.values()) if (h.file) unlinkQuiet(h.file);
    held.clear();
  });
}

/** takes the lock of `real` (an image's real path) for `mode`; throws a DiskError naming `name` */
function acquire(real: string, name: string, mode: LockMode): void {
  installExitHook();
  const mine = held.get(real);
  if (mine) {
    if (mode === 'ro' && mine.mode === 'ro') {
      mine.count++;
      return;
    }
    throw new DiskError(name, `already open${mine.mode === 'rw' ? ' read-write' : ''} in this x86vm process; a file open read-write cannot be shared`);
  }
  const writer = `${real}.lock`;
  if (mode === 'rw') {
    for (let attempt = 0; ; attempt++) {
      let created: boolean;
      try {
        created = createExclusive(writer, lockText('rw'));
      } catch (e) {
        throw new DiskError(name, `cannot create the lock file ${writer}: ${(e as Error).message}`);
      }
      if (created) break;
      const info = readLock(writer);
      if (info === undefined) continue;
      if (lockAlive(info, writer) || attempt >= 3) throw inUse(name, info, info === 'garbled' ? 'rw' : info.mode);
      takeOver(writer, info);
    }
    for (const r of readerFiles(real)) {
      const info = readLock(r);
      if (info === undefined) continue;
      if (lockAlive(info, r)) {
        unlinkQuiet(writer);
        throw inUse(name, info, 'ro');
      }
      unlinkQuiet(r);
    }
    held.set(real, { mode, count: 1, file: writer });
    return;
  }
  const reader = `${real}.lock.ro-${process.pid}`;
  let file: string | undefined = reader;
  try {
    fs.writeFileSync(reader, lockText('ro'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // a directory we may not write to (read-only media): readers go without a lock file of their own
    if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') {
      throw new DiskError(name, `cannot create the lock file ${reader}: ${(e as Error).message}`);
    }
    file = undefined;
  }
  const info = readLock(writer);
  if (info !== undefined && lockAlive(info, writer)) {
    if (file) unlinkQuiet(file);
    throw inUse(name, info, 'rw');
  }
  held.set(real, { mode, count: 1, file });
}

function release(real: string): void {
  const h = held.get(real);
  if (!h) return;
  if (--h.count > 0) return;
  held.delete(real);
  if (h.file) unlinkQuiet(h.file);
}

// ---------------------------------------------------------------------------------------------------
// the store

export interface FileStoreOptions {
  readOnly?: boolean;
  /** take the image lock (default true) */
  lock?: boolean;
  /** create the file: 'new' fails if it exists, 'truncate' empties an existing one */
  create?: 'new' | 'truncate';
}

function describeError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EROFS':
      return 'the file system is read-only';
    case 'EEXIST':
      return 'already exists';
    case 'EFBIG':
      return 'file too large for the file system';
    default:
      return err.message ?? String(e);
  }
}

export class FileStore implements ByteStore {
  readonly name: string;
  readonly readOnly: boolean;
  private fd: number;
  private length: number;
  private lockKey?: string;

  private constructor(name: string, fd: number, readOnly: boolean, lockKey?: string) {
    this.name = name;
    this.fd = fd;
    this.readOnly = readOnly;
    this.lockKey = lockKey;
    this.length = fs.fstatSync(fd).size;
  }

  /** opens (or creates) a file; the name becomes the absolute path. Failures are DiskErrors. */
  static open(file: string, options: FileStoreOptions = {}): FileStore {
    const name = path.resolve(file);
    const readOnly = !!options.readOnly && !options.create;
    let flags: string;
    if (options.create === 'new') flags = 'wx+';
    else if (options.create === 'truncate') flags = 'w+';
    else flags = readOnly ? 'r' : 'r+';
    let lockKey: string | undefined;
    if (options.lock !== false) {
      let real: string;
      try {
        real = options.create ? path.join(fs.realpathSync(path.dirname(name)), path.basename(name)) : fs.realpathSync(name);
      } catch (e) {
        throw new DiskError(name, describeError(e));
      }
      acquire(real, name, readOnly ? 'ro' : 'rw');
      lockKey = real;
    }
    let fd: number;
    try {
      fd = fs.openSync(name, flags);
      if (fs.fstatSync(fd).isDirectory()) {
        fs.closeSync(fd);
        throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      }
    } catch (e) {
      if (lockKey) release(lockKey);
      throw new DiskError(name, describeError(e));
    }
    return new FileStore(name, fd, readOnly, lockKey);
  }

  size(): number {
    return this.length;
  }

  private live(): number {
    if (this.fd < 0) throw new DiskError(this.name, 'the file is closed');
    return this.fd;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    const fd = this.live();
    let done = 0;
    try {
      while (done < buf.length) {
        const n = fs.readSync(fd, buf, done, buf.length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
    } catch (e) {
      throw new DiskError(this.name, `read at offset ${offset} failed: ${describeError(e)}`);
    }
    if (done < buf.length) buf.fill(0, done);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    const fd = this.live();
    if (this.readOnly) throw new DiskError(this.name, 'the file is open read-only');
    let done = 0;
    try {
      while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, offset + done);
    } catch (e) {
      throw new DiskError(this.name, `write at offset ${offset} failed: ${describeError(e)}`);
    }
    if (offset + data.length > this.length) this.length = offset + data.length;
  }

  async truncate(size: number): Promise<void> {
    const fd = this.live();
    if (this.readOnly) throw new DiskError(this.name, 'the file is open read-only');
    try {
      fs.ftruncateSync(fd, size);
    } catch (e) {
      throw new DiskError(this.name, `cannot set the file size to ${size}: ${describeError(e)}`);
    }
    this.length = size;
  }

  async flush(): Promise<void> {
    const fd = this.live();
    if (this.readOnly) return;
    try {
      fs.fsyncSync(fd);
    } catch (e) {
      throw new DiskError(this.name, `flush failed: ${describeError(e)}`);
    }
  }

  async close(): Promise<void> {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    try {
      fs.closeSync(fd);
    } finally {
      if (this.lockKey) release(this.lockKey);
      this.lockKey = undefined;
    }
  }

  /** bytes the file occupies on the host's disk (its allocated blocks) */
  allocatedBytes(): number {
    const st = fs.fstatSync(this.live());
    return st.blocks !== undefined ? st.blocks * 512 : st.size;
  }
}

// ---------------------------------------------------------------------------------------------------
// finding parents

/**
 * Opens the files a differencing image names. Relative paths are taken from the child's directory, '\'
 * separators (Windows locators) are accepted, and an absolute path that does not exist here (a Windows
 * path, or a tree that moved) falls back to its file name in the child's directory; the image formats
 * check the parent's identity (unique ID / UUID) either way.
 */
export class NodeOpener implements StoreOpener {
  private readonly lock: boolean;

  constructor(options: { lock?: boolean } = {}) {
    this.lock = options.lock !== false;
  }

  resolve(p: string, relativeTo?: string): string {
    const dir = relativeTo !== undefined ? path.dirname(path.resolve(relativeTo)) : process.cwd();
    const winAbs = isWindowsAbsolute(p);
    if (path.sep === '/' && winAbs) return path.join(dir, baseName(p));
    const local = path.sep === '/' ? p.replace(/\\/g, '/') : p;
    const abs = path.resolve(dir, local);
    if (path.isAbsolute(local) && !fs.existsSync(abs)) return path.join(dir, baseName(p));
    return abs;
  }

  async exists(p: string, relativeTo?: string): Promise<boolean> {
    try {
      return fs.statSync(this.resolve(p, relativeTo)).isFile();
    } catch {
      return false;
    }
  }

  async open(p: string, options: { readOnly: boolean; relativeTo?: string }): Promise<ByteStore> {
    return FileStore.open(this.resolve(p, options.relativeTo), { readOnly: options.readOnly, lock: this.lock });
  }

  /** the other VDI files in the directory of `name` (candidates for a VDI differencing image's parent) */
  listSiblings(name: string): string[] {
    const dir = path.dirname(path.resolve(name));
    const me = path.resolve(name);
    try {
      return fs
        .readdirSync(dir)
        .filter((n) => /\.vdi$/i.test(n))
        .map((n) => path.join(dir, n))
        .filter((p) => p !== me)
        .sort();
    } catch {
      return [];
    }
  }
}
