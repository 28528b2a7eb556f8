/**
 * Snapshots kept in the browser (page side): an IndexedDB object store of records holding the snapshot
 * file as a Blob with its name, date and size. IndexedDB is in every browser and in Workers, stores Blobs
 * without copying them into JavaScript memory, and survives reloads; the origin's storage quota applies
 * (a failure to store is reported, the download still happens).
 */

export interface StoredSnapshot {
  id: number;
  name: string;
  /** ms since the epoch */
  date: number;
  size: number;
  blob: Blob;
}

const DB_NAME = 'x86vm';
const DB_VERSION = 1;
const STORE = 'snapshots';

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

function storageWords(e: unknown): string {
  const err = e as DOMException | undefined;
  if (err?.name === 'QuotaExceededError') return "the browser's storage for this page is full (delete some snapshots)";
  return err?.message || String(e);
}

export class SnapshotStore {
  private db: Promise<IDBDatabase> | null = null;

  private open(): Promise<IDBDatabase> {
    if (!this.db) {
      this.db = new Promise<IDBDatabase>((resolve, reject) => {
        if (typeof indexedDB === 'undefined') {
          reject(new Error('this browser keeps no storage for the page (IndexedDB is not available)'));
          return;
        }
        const req = indexedDB.open(DB_NAME, DB_VERSION);
        req.onupgradeneeded = () => {
          const db = req.result;
          if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE, { keyPath: 'id', autoIncrement: true });
        };
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(new Error(`cannot open the browser's storage: ${storageWords(req.error)}`));
        req.onblocked = () => reject(new Error("the browser's storage is in use by an older version of this page in another tab"));
      });
      this.db.catch(() => {
        this.db = null;
      });
    }
    return this.db;
  }

  private async tx(mode: IDBTransactionMode): Promise<IDBObjectStore> {
    const db = await this.open();
    return db.transaction(STORE, mode).objectStore(STORE);
  }

  /** every stored snapshot, newest first */
  async list(): Promise<StoredSnapshot[]> {
    const all = (await request((await this.tx('readonly')).getAll())) as StoredSnapshot[];
    return all.sort((a, b) => b.date - a.date || b.id - a.id);
  }

  /** keeps a snapshot; returns its id */
  async add(name: string, blob: Blob, date = Date.now()): Promise<number> {
    try {
      const store = await this.tx('readwrite');
      const done = new Promise<void>((resolve, reject) => {
        store.transaction.oncomplete = () => resolve();
        store.transaction.onerror = () => reject(store.transaction.error);
        store.transaction.onabort = () => reject(store.transaction.error ?? new Error('aborted'));
      });
      const id = await request(store.add({ name, date, size: blob.size, blob }));
      await done;
      return id as number;
    } catch (e) {
      throw new Error(`the snapshot could not be kept in the browser: ${storageWords(e)}`);
    }
  }

  async get(id: number): Promise<StoredSnapshot | undefined> {
    return (await request((await this.tx('readonly')).get(id))) as StoredSnapshot | undefined;
  }

  async remove(id: number): Promise<void> {
    await request((await this.tx('readwrite')).delete(id));
  }
}
