/**
 * Where weft records the cloud objects it owns. Neutron's router routes and address pairs have no IDs,
 * owners or tags, so ownership cannot live in the cloud: it lives in etcd beside the leases, under
 * `<prefix>/cloud/`, one key per (object, owning node). A weft agent removes a route or pair only if a
 * record says that it (or, when reaping, a dead node of the same cluster) created it.
 */
import type { Etcd3 } from 'etcd3';
import { EtcdLockFailedError } from 'etcd3';
import { WeftError } from '../util/errors.js';

export interface OwnershipStore {
  /** Writes (or overwrites) a record. */
  put(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  /** Every record whose key starts with `prefix`, key → value. */
  list(prefix: string): Promise<Map<string, string>>;
  /** Runs fn while holding a cluster-wide lock named `name` (waits up to waitMs to get it). */
  withLock<T>(name: string, fn: () => Promise<T>, waitMs?: number): Promise<T>;
}

export class CloudLockTimeout extends WeftError {
  constructor(name: string, waitMs: number) {
    super(`could not take the cloud lock ${name} within ${waitMs / 1000} s`, {
      hint: 'another weft agent holds it for too long or etcd is slow; it is released when that agent dies (30 s lease)',
    });
  }
}

/** The records in etcd, under `<prefix>/cloud/` (prefix e.g. "/coreos.com/network"). */
export class EtcdOwnershipStore implements OwnershipStore {
  readonly #client: Etcd3;
  readonly #root: string;

  constructor(client: Etcd3, prefix: string) {
    this.#client = client;
    this.#root = `${prefix.replace(/\/+$/, '')}/cloud/`;
  }

  get root(): string {
    return this.#root;
  }

  async put(key: string, value: string): Promise<void> {
    await this.#client.put(this.#root + key).value(value);
  }
  async delete(key: string): Promise<void> {
    await this.#client.delete().key(this.#root + key);
  }
  async list(prefix: string): Promise<Map<string, string>> {
    const all = await this.#client
      .getAll()
      .prefix(this.#root + prefix)
      .strings();
    const out = new Map<string, string>();
    for (const [k, v] of Object.entries(all)) out.set(k.slice(this.#root.length), v);
    return out;
  }
  async withLock<T>(name: string, fn: () => Promise<T>, waitMs = 60_000): Promise<T> {
    const deadline = Date.now() + waitMs;
    for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
      // etcd3's lock is a lease-bound create-if-absent key: it fails at once when held.
      const lock = this.#client.lock(`${this.#root}locks/${name}`).ttl(30);
      try {
        await lock.acquire();
      } catch (e) {
        if (!(e instanceof EtcdLockFailedError)) throw e;
        if (Date.now() > deadline) throw new CloudLockTimeout(name, waitMs);
        await sleep(delay / 2 + Math.random() * delay);
        continue;
      }
      try {
        return await fn();
      } finally {
        await lock.release().catch(() => undefined);
      }
    }
  }
}

/** In-process store, for unit tests and for a single agent without etcd. */
export class MemoryOwnershipStore implements OwnershipStore {
  readonly data = new Map<string, string>();
  readonly #locks = new Map<string, Promise<void>>();
  async put(key: string, value: string): Promise<void> {
    this.data.set(key, value);
  }
  async delete(key: string): Promise<void> {
    this.data.delete(key);
  }
  async list(prefix: string): Promise<Map<string, string>> {
    return new Map([...this.data].filter(([k]) => k.startsWith(prefix)));
  }
  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(name) ?? Promise.resolve();
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    this.#locks.set(
      name,
      prev.then(() => next),
    );
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
