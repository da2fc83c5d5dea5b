/**
 * Value rules for davit's configuration: Go-style durations, byte sizes, and the small checkers each key is
 * validated with. Every checker returns the (normalised) value or throws {@link Expected}, which the layer loader
 * turns into a {@link ConfigError} naming the file and the dotted key.
 * @module
 */
import { InvalidArgument } from "./errors.ts";

/**
 * A configuration file, drop-in, flag or override holds a value davit cannot accept. The message names the source,
 * the dotted key and what was expected, e.g.
 * `/etc/davit/davit.conf.d/10-x.toml: key "davit.runtime.log_size_max": expected an integer, got string "big"`.
 */
export class ConfigError extends InvalidArgument {}

/** Thrown by a checker: what the key expects, and optionally a more precise description of what was found. */
export class Expected extends Error {
  readonly expected: string;
  readonly got: string | undefined;
  constructor(expected: string, got?: string) {
    super(expected);
    this.expected = expected;
    this.got = got;
  }
}

/** A TOML float. The loader parses integers as bigint, so any plain number coming from a file is a float. */
export class TomlFloat {
  constructor(readonly value: number) {}
}

/** Validates one value and returns it, normalised, or throws {@link Expected}. */
export type Check = (value: unknown) => unknown;

/** Describes a value for the "got ..." half of an error message. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") {
    const s = value.length > 80 ? value.slice(0, 77) + "..." : value;
    return `string ${JSON.stringify(s)}`;
  }
  if (typeof value === "bigint") return `integer ${value}`;
  if (typeof value === "number") return Number.isInteger(value) ? `integer ${value}` : `float ${value}`;
  if (value instanceof TomlFloat) return `float ${value.value}`;
  if (typeof value === "boolean") return `boolean ${value}`;
  if (Array.isArray(value)) return value.length === 0 ? "an empty array" : `an array of ${value.length} items`;
  if (value instanceof Date) return `date-time ${value.toISOString()}`;
  if (value === null || value === undefined) return "nothing";
  if (typeof value === "object") return "a table";
  return typeof value;
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3, // U+00B5 micro sign
  "μs": 1e-3, // U+03BC Greek small letter mu
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};
const DURATION_PART = /^(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/;

/**
 * Parses a Go `time.ParseDuration` string ("300ms", "1.5h", "1m30s", "-2s", "0") into milliseconds, which may be
 * fractional for ns and us. Throws {@link InvalidArgument} for anything else, including a number without a unit.
 */
export function parseDuration(s: string): number {
  const bad = () =>
    new InvalidArgument(
      `invalid duration ${
        JSON.stringify(s)
      }: expected numbers with units (ns, us, ms, s, m, h), such as "90s" or "1m30s"`,
    );
  let rest = s;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    if (rest.startsWith("-")) sign = -1;
    rest = rest.slice(1);
  }
  // Go accepts a bare zero, and only zero, without a unit.
  if (rest === "0") return 0;
  if (rest === "") throw bad();
  let total = 0;
  while (rest !== "") {
    const m = DURATION_PART.exec(rest);
    if (!m) throw bad();
    const [whole, int = "", frac] = m;
    if (int === "" && !frac) throw bad();
    const unit = DURATION_UNITS[m[3] ?? ""] ?? 0;
    total += Number(`${int || "0"}.${frac || "0"}`) * unit;
    rest = rest.slice(whole.length);
  }
  return sign * total;
}

const SIZE_SUFFIXES: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};
const SIZE = /^(\d+(?:\.\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$/;

/**
 * Parses a byte quantity in the Kubernetes style: a number with an optional decimal (k, M, G, T) or binary (Ki, Mi,
 * Gi, Ti) suffix, e.g. "64Mi" = 67108864 or "1.5G" = 1500000000. The result must be a whole number of bytes.
 */
export function parseByteSize(s: string): number {
  const m = SIZE.exec(s);
  const n = m ? Number(m[1]) * (SIZE_SUFFIXES[m[2] ?? ""] ?? 1) : NaN;
  const rounded = Math.round(n);
  if (!Number.isFinite(n) || Math.abs(n - rounded) > 1e-6 || !Number.isSafeInteger(rounded)) {
    throw new InvalidArgument(
      `invalid byte size ${JSON.stringify(s)}: expected a whole number of bytes with an optional suffix ` +
        `(k, M, G, T, Ki, Mi, Gi, Ti), such as "64Mi"`,
    );
  }
  return rounded;
}

/** Any string (non-empty when `nonEmpty`). */
export function str(opts: { nonEmpty?: boolean } = {}): Check {
  const expected = opts.nonEmpty ? "a non-empty string" : "a string";
  return (v) => {
    if (typeof v !== "string" || (opts.nonEmpty && v === "")) throw new Expected(expected);
    return v;
  };
}

/** An absolute path; with `optional`, the empty string is accepted too (each key documents what it means). */
export function path(opts: { optional?: boolean } = {}): Check {
  const expected = opts.optional ? "an absolute path or an empty string" : "an absolute path";
  return (v) => {
    if (typeof v !== "string") throw new Expected(expected);
    if (v === "" && opts.optional) return v;
    if (!v.startsWith("/") || v.includes("\0")) throw new Expected(expected);
    return v;
  };
}

/** true or false. */
export function bool(): Check {
  return (v) => {
    if (typeof v !== "boolean") throw new Expected("a boolean (true or false)");
    return v;
  };
}

/** An integer, optionally within [min, max]; `rule` replaces the wording of the range for unusual ranges. */
export function int(opts: { min?: number; max?: number; rule?: string; accept?: (n: number) => boolean } = {}): Check {
  const { min, max } = opts;
  const expected = opts.rule ??
    (min !== undefined && max !== undefined
      ? `an integer from ${min} to ${max}`
      : min !== undefined
      ? `an integer of at least ${min}`
      : "an integer");
  return (v) => {
    let b: bigint;
    if (typeof v === "bigint") b = v;
    else if (typeof v === "number" && Number.isSafeInteger(v)) b = BigInt(v);
    else throw new Expected(expected);
    if (b > BigInt(Number.MAX_SAFE_INTEGER) || b < BigInt(Number.MIN_SAFE_INTEGER)) throw new Expected(expected);
    const n = Number(b);
    if ((min !== undefined && n < min) || (max !== undefined && n > max)) throw new Expected(expected);
    if (opts.accept && !opts.accept(n)) throw new Expected(expected);
    return n;
  };
}

/** One of a fixed set of strings. */
export function oneOf(values: readonly string[]): Check {
  const expected = `one of ${values.map((x) => JSON.stringify(x)).join(", ")}`;
  return (v) => {
    if (typeof v !== "string" || !values.includes(v)) throw new Expected(expected);
    return v;
  };
}

/** A non-negative Go-style duration string; kept as written so `davit config` shows what the operator wrote. */
export function duration(): Check {
  const expected = 'a duration such as "90s", "1m30s" or "4h"';
  return (v) => {
    if (typeof v !== "string") throw new Expected(expected);
    let ms: number;
    try {
      ms = parseDuration(v);
    } catch {
      throw new Expected(expected);
    }
    if (ms < 0) throw new Expected("a duration that is not negative");
    return v;
  };
}

/** A positive byte size string such as "64Mi". */
export function byteSize(): Check {
  const expected = 'a byte size such as "64Mi", "1G" or "65536"';
  return (v) => {
    if (typeof v !== "string") throw new Expected(expected);
    let n: number;
    try {
      n = parseByteSize(v);
    } catch {
      throw new Expected(expected);
    }
    if (n <= 0) throw new Expected("a byte size greater than zero");
    return v;
  };
}

/** A TCP port written as a string ("0" to "65535"), the way CRI-O's stream_port is written. */
export function portString(): Check {
  const expected = 'a port number from 0 to 65535 written as a string, such as "10010"';
  return (v) => {
    if (typeof v !== "string" || !/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new Expected(expected);
    return String(Number(v));
  };
}

/** An array whose items each pass `item`; `what` names the items in messages ("absolute paths"). */
export function list(item: Check, what: string): Check {
  const expected = `an array of ${what}`;
  return (v) => {
    if (!Array.isArray(v)) throw new Expected(expected);
    return v.map((x, i) => {
      try {
        return item(x);
      } catch (err) {
        if (!(err instanceof Expected)) throw err;
        throw new Expected(expected, `${describeValue(x)} at index ${i}`);
      }
    });
  };
}

/** A string matching `re`, described as `what`. */
export function matching(re: RegExp, what: string, normalise: (s: string) => string = (s) => s): Check {
  return (v) => {
    if (typeof v !== "string" || !re.test(v)) throw new Expected(what);
    return normalise(v);
  };
}
