/** Something the daemon started that has to be closed: a listener, the single-box guard. */
export interface Closeable {
  close(): Promise<void> | void;
}

/**
 * The daemon's one way down, taken at SIGTERM/SIGINT and when start-up fails
 * part-way: first no new work (`halt`: timers, the control socket), then the
 * work in progress (`drain`: the running reconcile) and every service that
 * started (closed newest first, one after another) finish, then the database
 * closes — also when a close fails. Running it again returns the same promise.
 */
export function createTeardown(closeDb: () => void) {
  let stopping = false;
  let done: Promise<void> | null = null;
  const halts: (() => void)[] = [];
  const drains: (() => Promise<void>)[] = [];
  const services: Closeable[] = [];
  return {
    /** True once teardown has begun: work that finishes now starts nothing new. */
    get stopping(): boolean {
      return stopping;
    },
    halt(f: () => void): void {
      halts.push(f);
    },
    drain(f: () => Promise<void>): void {
      drains.push(f);
    },
    /** Registers a service that started; null (turned off in the config) is passed through. */
    service<T extends Closeable>(s: T | null): T | null {
      if (s) services.push(s);
      return s;
    },
    run(): Promise<void> {
      if (done) return done;
      stopping = true;
      for (const h of halts) h();
      const closeServices = async (): Promise<void> => {
        for (const s of [...services].reverse()) await s.close();
      };
      done = Promise.all([...drains.map((d) => d()), closeServices()]).then(() => undefined).finally(closeDb);
      return done;
    },
  };
}

export type Teardown = ReturnType<typeof createTeardown>;
