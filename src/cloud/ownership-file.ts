/**
 * Ownership records in a local JSON file, for a `weft cloud-routes` that has no etcd (its source is a
 * nodes file). The records must outlive the process: without them a restarted coordinator would take
 * its own routes and pairs for someone else's and never remove them. One coordinator per file: the
 * lock is in-process only (taken with an exclusive lock file, so a second coordinator on the same
 * state directory refuses to start instead of racing).
 */
import { mkdirSync, openSync, closeSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../util/errors.js';
import { MemoryOwnershipStore } from './ownership.js';

export class FileOwnershipStore extends MemoryOwnershipStore {
  readonly path: string;
  readonly #lockPath: string;

  constructor(dir: string) {
    super();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, 'ownership.json');
    this.#lockPath = join(dir, 'ownership.lock');
    try {
      closeSync(openSync(this.#lockPath, 'wx', 0o600));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(this.#lockPath, 'utf8').trim());
      if (pid && pidAlive(pid)) {
        throw new WeftError(`another weft cloud-routes (pid ${pid}) uses the state directory ${dir}`, {
          hint: 'run one coordinator per state directory, or pass another --state-dir',
        });
      }
    }
    writeFileSync(this.#lockPath, `${process.pid}\n`);
    let text: string | undefined;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (text !== undefined) {
      let records: unknown;
      try {
        records = JSON.parse(text);
      } catch {
        throw new WeftError(`the ownership records ${this.path} are not JSON`, {
          hint: 'restore the file from a backup; without it weft cannot tell its routes from others',
        });
      }
      for (const [k, v] of Object.entries(records as Record<string, unknown>))
        if (typeof v === 'string') this.data.set(k, v);
    }
  }

  override async put(key: string, value: string): Promise<void> {
    await super.put(key, value);
    this.#save();
  }
  override async delete(key: string): Promise<void> {
    await super.delete(key);
    this.#save();
  }

  /** Releases the state directory (the records stay). */
  close(): void {
    rmSync(this.#lockPath, { force: true });
  }

  /** Atomically (rename), so that a crash leaves the old records or the new ones, never half. */
  #save(): void {
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries([...this.data].sort()), null, 1), {
      mode: 0o600,
    });
    renameSync(tmp, this.path);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
