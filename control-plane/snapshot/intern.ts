// Interning of values shared by many proxies (resources, type sets, subscriptions): one object
// per distinct key, let go of once nothing else holds it.

/** A table of shared values by key that lets go of a value once nothing else holds it. */
export class WeakInterner<T extends object> {
  private readonly map = new Map<string, WeakRef<T>>();
  private readonly cleanup = new FinalizationRegistry<string>((key) => {
    if (this.map.get(key)?.deref() === undefined) this.map.delete(key);
  });

  /** The value already held for `key`, else `make()`'s, which is then held. */
  intern(key: string, make: () => T): T {
    const held = this.map.get(key)?.deref();
    if (held) return held;
    const value = make();
    this.map.set(key, new WeakRef(value));
    this.cleanup.register(value, key);
    return value;
  }
}

