/**
 * Waiting for something that changes asynchronously (a shutdown in progress, a server coming back), for the demo,
 * the tests and the chaos runs. Not for workflow code, which waits with condition().
 */
export interface PollOptions {
  /** What we are waiting for, for the timeout message. */
  what: string;
  timeoutMs: number;
  intervalMs?: number;
  /** Treat a failed read as "not yet" (e.g. while a server restarts) instead of failing. */
  tolerateErrors?: boolean;
}

/** Reads until `done(value)` holds; throws with the last value seen once `timeoutMs` has passed. */
export async function pollUntil<T>(read: () => Promise<T> | T, done: (value: T) => boolean, options: PollOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    let value: T | undefined;
    try {
      value = await read();
    } catch (err) {
      if (!options.tolerateErrors) throw err;
    }
    if (value !== undefined && done(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.what}; last value: ${JSON.stringify(value)?.slice(0, 500)}`);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
  }
}
