// Watch<T>: a current value plus subscribers told of every change. The single way state flows
// from a producer (an xDS stream, a file watcher) to its consumers inside one process.

export type Unsubscribe = () => void;

export class Watch<T> {
  private listeners = new Set<(value: T) => void>();
  constructor(private current: T) {}

  get(): T {
    return this.current;
  }

  set(value: T): void {
    this.current = value;
    for (const l of [...this.listeners]) l(value);
  }

  /** Calls `listener` on every later change (not with the current value). */
  subscribe(listener: (value: T) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
