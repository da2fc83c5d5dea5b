/**
 * A readable stream fed by pushes, with back-pressure: `push` waits while the consumer has not taken what is
 * queued, so a transport's read loop slows down (and TCP with it) instead of buffering without bound.
 * @module
 */

/** The writing side of {@link pushStream}. */
export interface PushStream<T> {
  readonly readable: ReadableStream<T>;
  /** Queues a value; resolves when there is room for more. Ignored after `close`. */
  push(value: T): Promise<void>;
  /** Ends the stream (idempotent). */
  close(): void;
}

/** A stream that holds up to `highWaterMark` values (default 8) before `push` waits. */
export function pushStream<T>(highWaterMark = 8): PushStream<T> {
  let controller!: ReadableStreamDefaultController<T>;
  let closed = false;
  let wake: (() => void) | undefined;
  const readable = new ReadableStream<T>({
    start(c) {
      controller = c;
    },
    pull() {
      wake?.();
      wake = undefined;
    },
    cancel() {
      closed = true;
      wake?.();
      wake = undefined;
    },
  }, { highWaterMark });
  return {
    readable,
    async push(value: T): Promise<void> {
      if (closed) return;
      controller.enqueue(value);
      while (!closed && (controller.desiredSize ?? 0) <= 0) {
        await new Promise<void>((r) => wake = r);
      }
    },
    close(): void {
      if (closed) return;
      closed = true;
      try {
        controller.close();
      } catch {
        // cancelled by the consumer
      }
      wake?.();
      wake = undefined;
    },
  };
}
