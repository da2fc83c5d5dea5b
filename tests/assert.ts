/**
 * Assertions for the project's tests, in the shape of Deno's standard library (which lives on JSR, unreachable
 * here), built on node:assert.
 * @module
 */
import nodeAssert from "node:assert/strict";

/** Fails unless `value` is truthy. */
export function assert(value: unknown, message?: string): asserts value {
  nodeAssert.ok(value, message as string);
}

/** Deep, strict equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message as string);
}

/** Deep, strict inequality. */
export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, message as string);
}

/** Fails unless `text` contains `part`. */
export function assertStringIncludes(text: string, part: string, message?: string): void {
  if (!text.includes(part)) {
    nodeAssert.fail(message ?? `expected ${JSON.stringify(text)} to include ${JSON.stringify(part)}`);
  }
}

/** Fails unless `text` matches `re`. */
export function assertMatch(text: string, re: RegExp, message?: string): void {
  nodeAssert.match(text, re, message as string);
}

type ErrorClass = abstract new (...args: any[]) => Error;

function check(err: unknown, cls?: ErrorClass, includes?: string): Error {
  if (!(err instanceof Error)) nodeAssert.fail(`expected an Error to be thrown, got ${String(err)}`);
  if (cls && !(err instanceof cls)) {
    const e: Error = err;
    nodeAssert.fail(`expected ${cls.name}, got ${e.constructor.name}: ${e.message}`);
  }
  if (includes !== undefined && !err.message.includes(includes)) {
    nodeAssert.fail(
      `expected error message to include ${JSON.stringify(includes)}, got ${JSON.stringify(err.message)}`,
    );
  }
  return err;
}

/** Fails unless `fn` throws (an instance of `cls` whose message includes `includes`); returns the error. */
export function assertThrows(fn: () => unknown, cls?: ErrorClass, includes?: string): Error {
  try {
    fn();
  } catch (err) {
    return check(err, cls, includes);
  }
  return nodeAssert.fail("expected the function to throw");
}

/** Like {@link assertThrows} for a rejected promise. */
export async function assertRejects(fn: () => Promise<unknown>, cls?: ErrorClass, includes?: string): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    return check(err, cls, includes);
  }
  return nodeAssert.fail("expected the promise to reject");
}
