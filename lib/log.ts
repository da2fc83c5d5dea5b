/**
 * Structured logging: one line per event on stderr, logfmt by default or JSON, filtered by a level that can change
 * at run time (SIGHUP reload).
 * @module
 */

/** Log levels in increasing severity, with CRI-O's names. */
export const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
/** One of {@link LEVELS}. */
export type Level = typeof LEVELS[number];
/** Output formats. */
export type LogFormat = "logfmt" | "json";

/** Fields attached to a log line. */
export type Fields = Record<string, unknown>;

interface Sink {
  level: number;
  format: LogFormat;
  write: (line: string) => void;
}

const encoder = new TextEncoder();
const sink: Sink = {
  level: LEVELS.indexOf("info"),
  format: "logfmt",
  write: (line) => {
    try {
      Deno.stderr.writeSync(encoder.encode(line + "\n"));
    } catch {
      // stderr closed (detached process): nothing sensible to do with a log line.
    }
  },
};

/** Returns true when `value` names a level. */
export function isLevel(value: string): value is Level {
  return (LEVELS as readonly string[]).includes(value);
}

/** Sets the process-wide minimum level and format. */
export function configureLogging(opts: { level?: Level; format?: LogFormat; write?: (line: string) => void }): void {
  if (opts.level) sink.level = LEVELS.indexOf(opts.level);
  if (opts.format) sink.format = opts.format;
  if (opts.write) sink.write = opts.write;
}

/** The current minimum level. */
export function currentLevel(): Level {
  return LEVELS[sink.level] ?? "info";
}

function logfmtValue(v: unknown): string {
  let s: string;
  if (v instanceof Error) s = v.message;
  else if (typeof v === "string") s = v;
  else if (v === undefined) s = "";
  else if (typeof v === "object" && v !== null) s = JSON.stringify(v);
  else s = String(v);
  return /^[^\s"=\\]+$/.test(s) ? s : JSON.stringify(s);
}

/** Renders one line (exported for tests). */
export function formatLine(format: LogFormat, time: Date, level: Level, msg: string, fields: Fields): string {
  if (format === "json") {
    const out: Record<string, unknown> = { time: time.toISOString(), level, msg };
    for (const [k, v] of Object.entries(fields)) out[k] = v instanceof Error ? v.message : v;
    return JSON.stringify(out);
  }
  let line = `time=${time.toISOString()} level=${level} msg=${logfmtValue(msg)}`;
  for (const [k, v] of Object.entries(fields)) line += ` ${k}=${logfmtValue(v)}`;
  return line;
}

/** A logger bound to a component name and base fields. */
export class Logger {
  readonly #fields: Fields;
  constructor(fields: Fields = {}) {
    this.#fields = fields;
  }
  /** A child logger with more base fields. */
  with(fields: Fields): Logger {
    return new Logger({ ...this.#fields, ...fields });
  }
  /** True when a line at `level` would be written (to skip building costly fields). */
  enabled(level: Level): boolean {
    return LEVELS.indexOf(level) >= sink.level;
  }
  #log(level: Level, msg: string, fields?: Fields): void {
    if (!this.enabled(level)) return;
    sink.write(formatLine(sink.format, new Date(), level, msg, fields ? { ...this.#fields, ...fields } : this.#fields));
  }
  trace(msg: string, fields?: Fields): void {
    this.#log("trace", msg, fields);
  }
  debug(msg: string, fields?: Fields): void {
    this.#log("debug", msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.#log("info", msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.#log("warn", msg, fields);
  }
  error(msg: string, fields?: Fields): void {
    this.#log("error", msg, fields);
  }
}

/** Returns a logger for one component (`component=<name>` on every line). */
export function logger(component: string): Logger {
  return new Logger({ component });
}
