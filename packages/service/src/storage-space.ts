/**
 * A full disk as an operating condition, for a service whose data lives in SQLite in one data
 * directory. Two mechanisms:
 *
 * - **Refusing before storing.** Space available for new data is the filesystem's free bytes
 *   plus the free pages of the service's database (deleted rows leave free pages that SQLite
 *   reuses; the file does not shrink). Below `minFreeBytes` the service is "low": new writes
 *   (produce, commits, topic creation) are refused with STORAGE_FULL (507, retriable) before
 *   anything is queued, so no write the in-memory state depends on fails halfway.
 * - **A reserve the storage can release.** While space is fine the service keeps a file of
 *   `reserveBytes` in its data directory (`storage-reserve`). When space gets low, or when a
 *   write fails with SQLITE_FULL anyway (another process filled the disk), the file is deleted,
 *   so the writes already accepted and the writes that free space (deleting or purging a topic,
 *   retention) can still commit. When space returns (available ≥ minFreeBytes + reserveBytes)
 *   the file is written again and new writes are accepted again, by themselves.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TesseraError } from '@tessera/protocol';
import type { Logger } from './logger.js';

export const RESERVE_FILE = 'storage-reserve';

export interface StorageSpaceOptions {
  dataDir: string;
  /** Size of the reserve file (0: none). */
  reserveBytes: number;
  /** Below this many available bytes, new writes are refused with STORAGE_FULL. */
  minFreeBytes: number;
  /** Free bytes inside the database (free pages), counted as available. */
  databaseFreeBytes?: () => number;
  logger: Logger;
  /** How often space is checked in the background (it is also checked on demand, at most every 100 ms). */
  checkMs?: number;
}

/** What `sqliteFreePageBytes` needs of a better-sqlite3 database (the package is the services' own dependency, not this one's). */
export interface SqlitePragmas {
  pragma(source: string, options: { simple: true }): unknown;
}

/** Bytes of free pages in an open SQLite database: space deleted rows left, which new rows reuse. */
export function sqliteFreePageBytes(db: SqlitePragmas): number {
  const pages = db.pragma('freelist_count', { simple: true }) as number;
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  return pages * pageSize;
}

/** How long a measurement is trusted by `checkWritable`. */
const FRESH_MS = 100;

/** What a service's database offers the guard: its free pages, and a hook for a write that failed for lack of space. */
export interface GuardedDatabase {
  freePageBytes(): number;
  /** Called when a write failed with SQLITE_FULL; true when space was released and the write may run once more. */
  onFull: (() => boolean) | undefined;
}

export class StorageSpace {
  /**
   * Watches the data directory of `database` (started): its free pages count as available, and
   * a write of it that fails for lack of space releases the reserve (`why` is logged).
   */
  static guard(database: GuardedDatabase, options: Omit<StorageSpaceOptions, 'databaseFreeBytes'>, why: string): StorageSpace {
    const storage = new StorageSpace({ ...options, databaseFreeBytes: () => database.freePageBytes() });
    storage.start();
    database.onFull = () => storage.releaseReserve(why);
    return storage;
  }

  private lowValue = false;
  private availableBytes = Number.POSITIVE_INFINITY;
  private checkedAtMs = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private readonly reserveFile: string;

  constructor(private readonly options: StorageSpaceOptions) {
    this.reserveFile = path.join(options.dataDir, RESERVE_FILE);
  }

  /** Measures once, writes the reserve file when there is room, and checks every `checkMs` from now on. */
  start(): void {
    this.check();
    this.timer = setInterval(() => this.check(), this.options.checkMs ?? 500);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  /** True while new writes are refused. */
  get isLow(): boolean {
    // Measured on demand, but the reserve (megabytes and an fsync) is written back only by the
    // timer, never inside the request that asked.
    if (performance.now() - this.checkedAtMs > FRESH_MS) this.measure(false);
    return this.lowValue;
  }

  /** Bytes available for new data at the last check. */
  get available(): number {
    return this.availableBytes;
  }

  get reserveHeld(): boolean {
    return fs.existsSync(this.reserveFile);
  }

  /** Throws STORAGE_FULL (retriable) while space is low; `what` names the refused write. */
  checkWritable(what: string): void {
    if (!this.isLow) return;
    throw new TesseraError(
      'STORAGE_FULL',
      `${what} refused: ${this.availableBytes} bytes available for data in ${this.options.dataDir}, below the ${this.options.minFreeBytes} kept free`,
    );
  }

  /**
   * Deletes the reserve file so a write can commit (after a SQLITE_FULL); true when there was one
   * to delete. New writes stay refused until space returns.
   */
  releaseReserve(why: string): boolean {
    this.lowValue = true;
    try {
      fs.unlinkSync(this.reserveFile);
    } catch {
      return false;
    }
    this.options.logger.warn({ dataDir: this.options.dataDir, reserveBytes: this.options.reserveBytes, why }, 'storage reserve released: new writes refused until space returns');
    return true;
  }

  /** Measures the space, moves between "fine" and "low" (see the module comment) and writes the reserve back where it fits. */
  check(): void {
    this.measure(true);
  }

  private measure(mayWriteReserve: boolean): void {
    this.checkedAtMs = performance.now();
    let filesystemFree: number;
    let available: number;
    try {
      const stats = fs.statfsSync(this.options.dataDir);
      filesystemFree = stats.bavail * stats.bsize;
      available = filesystemFree + (this.options.databaseFreeBytes?.() ?? 0);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'cannot measure free space; keeping the last state');
      return;
    }
    this.availableBytes = available;
    const { minFreeBytes, reserveBytes, logger, dataDir } = this.options;
    // The reserve is written back only where it fits beside the space kept free.
    const reserveFits = filesystemFree >= reserveBytes && available - reserveBytes >= minFreeBytes;
    if (!this.lowValue) {
      if (available >= minFreeBytes) {
        if (mayWriteReserve && !this.reserveHeld && reserveFits) this.writeReserve();
        return;
      }
      logger.warn({ dataDir, available, minFreeBytes }, 'storage low: new writes refused with STORAGE_FULL');
      this.releaseReserve('space low');
      return;
    }
    // Back to normal only with room for the reserve again, so the service does not flap at the
    // threshold. Free pages of the database count: a purge frees pages, not filesystem blocks.
    if (available >= minFreeBytes + reserveBytes) {
      if (mayWriteReserve && reserveFits) this.writeReserve();
      this.lowValue = false;
      logger.info({ dataDir, available, reserveHeld: this.reserveHeld }, 'storage space returned: writes accepted again');
    }
  }

  private writeReserve(): boolean {
    if (this.options.reserveBytes <= 0) return true;
    if (this.reserveHeld) return true;
    const partial = `${this.reserveFile}.tmp`;
    try {
      // Real zero bytes, not a sparse file: the blocks must be taken for the reserve to free any.
      const fd = fs.openSync(partial, 'w');
      try {
        const chunk = Buffer.alloc(Math.min(1 << 20, this.options.reserveBytes));
        for (let written = 0; written < this.options.reserveBytes; written += chunk.length) {
          fs.writeSync(fd, chunk, 0, Math.min(chunk.length, this.options.reserveBytes - written));
        }
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(partial, this.reserveFile);
      return true;
    } catch (error) {
      fs.rmSync(partial, { force: true });
      this.options.logger.warn({ err: (error as Error).message }, 'cannot write the storage reserve yet');
      return false;
    }
  }
}

/** True when `error` (or its cause) is SQLite's "database or disk is full". */
export function isStorageFull(error: unknown): boolean {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined; e !== undefined && e !== null; e = e.cause as typeof e) {
    if (e.code === 'SQLITE_FULL' || e.code === 'ENOSPC') return true;
  }
  return false;
}
