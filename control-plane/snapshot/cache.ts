// The snapshot cache: the latest consistent snapshot per proxy, and who to tell when it changes.
// The xDS server sees only this small interface.
import { checkConsistency, SnapshotError, type Snapshot } from './snapshot.js';

export interface SnapshotCache {
  /** The latest snapshot for a proxy, or undefined before the first one. Called per request. */
  get(proxyId: string): Snapshot | undefined;
  /** Calls `fn` after every later `set` for that proxy; returns the unsubscribe function. */
  watch(proxyId: string, fn: (snapshot: Snapshot) => void): () => void;
}

export class MemorySnapshotCache implements SnapshotCache {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly watchers = new Map<string, Set<(s: Snapshot) => void>>();

  get(proxyId: string): Snapshot | undefined {
    return this.snapshots.get(proxyId);
  }

  /** Publishes a snapshot after checking it; an inconsistent one throws and the last good stays. */
  set(proxyId: string, snapshot: Snapshot): void {
    // Snapshots share their parts (snapshot.ts): an unchanged one is the same object.
    if (this.snapshots.get(proxyId) === snapshot) return;
    const problems = checkConsistency(snapshot);
    if (problems.length > 0) throw new SnapshotError(problems);
    this.snapshots.set(proxyId, snapshot);
    for (const fn of [...(this.watchers.get(proxyId) ?? [])]) fn(snapshot);
  }

  delete(proxyId: string): void {
    this.snapshots.delete(proxyId);
  }

  watch(proxyId: string, fn: (snapshot: Snapshot) => void): () => void {
    let set = this.watchers.get(proxyId);
    if (!set) this.watchers.set(proxyId, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.watchers.delete(proxyId);
    };
  }
}
