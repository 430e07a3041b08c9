/**
 * Loops fed by promises (an async iterator over messages already buffered) run on microtasks
 * only: left alone, a backlog holds the event loop until it is drained, and meanwhile no
 * socket is written (corked frames wait for the next turn), no timer fires and no NATS
 * heartbeat is read. A time slicer tells such a loop when to give the event loop back.
 */
export interface TimeSlicer {
  /** Resolves at once within the slice; past it, after one turn of the event loop. */
  maybeYield(): Promise<void>;
}

export function timeSlicer(sliceMs: number, now: () => number = () => performance.now()): TimeSlicer {
  let start = now();
  return {
    async maybeYield() {
      if (now() - start < sliceMs) return;
      await new Promise<void>((r) => setImmediate(r));
      start = now();
    },
  };
}
