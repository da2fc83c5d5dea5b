/**
 * Turning a plugin's exit into success or a precise error (SPEC.md section 5 "Error", error codes): a CNI error
 * result is surfaced with the plugin's name, its message and code; a timeout, a signal, a non-zero exit without an
 * error result and output that is not JSON each get their own message. Pure.
 * @module
 */
import { DavitError, type ErrorKind } from "../lib/errors.ts";
import type { CniCommand } from "./plugin_request.ts";

/** What a finished (or killed) plugin process left behind. */
export interface PluginOutput {
  /** Exit code; 128+n when killed by signal n. */
  code: number;
  /** The signal that ended the process, if any. */
  signal: string | null;
  stdout: string;
  stderr: string;
  /** True when the runtime killed the plugin because it ran past its timeout. */
  timedOut: boolean;
}

/** Which invocation an output belongs to, for messages. */
export interface PluginContext {
  /** The plugin's `type`. */
  plugin: string;
  command: CniCommand;
  network: string;
  containerId?: string;
  timeoutMs: number;
}

/** Well-known CNI error codes (SPEC.md "Error"). */
export const CNI_ERROR_CODES: Readonly<Record<number, string>> = {
  1: "incompatible CNI version",
  2: "unsupported field in network configuration",
  3: "container unknown or does not exist",
  4: "invalid necessary environment variables",
  5: "I/O failure",
  6: "failed to decode content",
  7: "invalid network config",
  11: "try again later",
  50: "the plugin is not available",
  51: "the plugin is not available, existing containers may have limited connectivity",
};

/** A plugin invocation failed; `code`, `msg` and `details` are the plugin's own when it returned an error result. */
export class CniPluginError extends DavitError {
  readonly plugin: string;
  readonly command: CniCommand;
  readonly network: string;
  /** The CNI error code, when the plugin printed an error result. */
  readonly code: number | undefined;
  /** The plugin's `msg`, or a description of what went wrong. */
  readonly msg: string;
  readonly details: string | undefined;
  constructor(
    kind: ErrorKind,
    message: string,
    fields: { ctx: PluginContext; code?: number; msg: string; details?: string },
    options?: ErrorOptions,
  ) {
    super(kind, message, options);
    this.name = "CniPluginError";
    this.plugin = fields.ctx.plugin;
    this.command = fields.ctx.command;
    this.network = fields.ctx.network;
    this.code = fields.code;
    this.msg = fields.msg;
    this.details = fields.details;
  }
}

const TAIL = 400;

function tail(text: string): string {
  const t = text.trim();
  return t.length > TAIL ? `...${t.slice(-TAIL)}` : t;
}

/** `CNI plugin "bridge" ADD on network "n" for container "c"`: the subject of every message. */
export function describeInvocation(ctx: PluginContext): string {
  const container = ctx.containerId ? ` for container ${JSON.stringify(ctx.containerId)}` : "";
  return `CNI plugin ${JSON.stringify(ctx.plugin)} ${ctx.command} on network ${
    JSON.stringify(ctx.network)
  }${container}`;
}

/** The CNI error result in `text`, if it holds one. */
export function parseErrorResult(text: string): { code: number; msg: string; details?: string } | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof json !== "object" || json === null) return undefined;
  const e = json as Record<string, unknown>;
  if (typeof e.code !== "number" || (typeof e.msg !== "string" && typeof e.details !== "string")) return undefined;
  const out: { code: number; msg: string; details?: string } = { code: e.code, msg: String(e.msg ?? "") };
  if (typeof e.details === "string" && e.details !== "") out.details = e.details;
  return out;
}

function errorKind(code: number): ErrorKind {
  return code === 11 || code === 50 || code === 51 ? "Unavailable" : "Internal";
}

/**
 * Checks a plugin's output: returns the parsed JSON of a successful run (undefined when it printed nothing) or
 * throws a {@link CniPluginError} saying exactly what happened.
 */
export function interpretOutput(out: PluginOutput, ctx: PluginContext): unknown {
  const subject = describeInvocation(ctx);
  const stderr = tail(out.stderr);
  const stderrNote = stderr ? `; stderr: ${JSON.stringify(stderr)}` : "";
  if (out.timedOut) {
    const msg = `did not finish within ${ctx.timeoutMs} ms and was killed`;
    throw new CniPluginError("DeadlineExceeded", `${subject} ${msg}${stderrNote}`, { ctx, msg });
  }
  const stdout = out.stdout.trim();
  if (out.code !== 0) {
    // SPEC.md says the error result goes to stdout; some plugins print it on stderr, so look there too.
    const lastErrLine = out.stderr.trim().split("\n").at(-1) ?? "";
    const err = parseErrorResult(stdout) ?? parseErrorResult(lastErrLine);
    if (err) {
      const known = CNI_ERROR_CODES[err.code];
      const text = [err.msg, err.details].filter((s) => s).join(": ") || known || "no message";
      const codeNote = known ? `CNI error code ${err.code}, ${known}` : `CNI error code ${err.code}`;
      throw new CniPluginError(errorKind(err.code), `${subject} failed: ${text} (${codeNote})`, { ctx, ...err });
    }
    const how = out.signal ? `was killed by ${out.signal}` : `exited with code ${out.code}`;
    const outNote = stdout ? `; stdout: ${JSON.stringify(tail(stdout))}` : "";
    const msg = `${how} without a CNI error result`;
    throw new CniPluginError("Internal", `${subject} ${msg}${outNote}${stderrNote}`, { ctx, msg });
  }
  if (stdout === "") return undefined;
  try {
    return JSON.parse(stdout);
  } catch {
    const msg = "succeeded but printed output that is not JSON";
    throw new CniPluginError("Internal", `${subject} ${msg}: ${JSON.stringify(tail(stdout))}`, { ctx, msg });
  }
}
