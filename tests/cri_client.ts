/**
 * The project's own small CRI client for tests and benchmarks: every RPC of runtime.v1 by name over a unix socket,
 * with plain-object messages as the daemon's handlers see them.
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { decodeMessage, encodeMessage, RPC_METHODS } from "../cri/codec.ts";

/** A decoded message. */
export type Msg = Record<string, any>;

/** A failed call: the gRPC status code and the server's message. */
export class CriCallError extends Error {
  constructor(readonly code: grpc.status, readonly details: string, readonly method: string) {
    super(`${method}: ${grpc.status[code]}: ${details}`);
  }
  /** The status code's name, e.g. `NOT_FOUND`. */
  get codeName(): string {
    return grpc.status[this.code] ?? String(this.code);
  }
}

/** Options for {@link CriClient}. */
export interface CriClientOptions {
  /** The `:authority` to send (grpc-js sends `localhost` for unix sockets by default). */
  authority?: string;
  /** Per-call deadline in milliseconds (default 30 s). */
  timeoutMs?: number;
}

/** A client for RuntimeService and ImageService on one socket. */
export class CriClient {
  readonly #client: grpc.Client;
  readonly #timeoutMs: number;

  constructor(readonly socketPath: string, opts: CriClientOptions = {}) {
    // Room for ExecSync answers of 16 MiB per stream (a kubelet's client takes 16 MiB in all).
    const options: grpc.ClientOptions = { "grpc.max_receive_message_length": 64 << 20 };
    if (opts.authority) options["grpc.default_authority"] = opts.authority;
    this.#client = new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure(), options);
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  #method(name: string) {
    const m = RPC_METHODS.find((x) => x.name === name);
    if (!m) throw new Error(`no CRI method ${name}`);
    return m;
  }

  /** Calls a unary RPC. */
  call(name: string, req: Msg = {}, opts: { timeoutMs?: number } = {}): Promise<Msg> {
    const m = this.#method(name);
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest<Msg, Msg>(
        m.path,
        (v) => Buffer.from(encodeMessage(m.requestType, v)),
        (b) => decodeMessage(m.responseType, b),
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + (opts.timeoutMs ?? this.#timeoutMs) },
        (err, res) => {
          if (err) reject(new CriCallError(err.code, err.details, name));
          else resolve(res!);
        },
      );
    });
  }

  /** Calls a server-streaming RPC and collects every message. */
  stream(name: string, req: Msg = {}, opts: { timeoutMs?: number } = {}): Promise<Msg[]> {
    const m = this.#method(name);
    return new Promise((resolve, reject) => {
      const out: Msg[] = [];
      const call = this.#client.makeServerStreamRequest<Msg, Msg>(
        m.path,
        (v) => Buffer.from(encodeMessage(m.requestType, v)),
        (b) => decodeMessage(m.responseType, b),
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + (opts.timeoutMs ?? this.#timeoutMs) },
      );
      call.on("data", (msg: Msg) => out.push(msg));
      call.on("error", (err: grpc.ServiceError) => reject(new CriCallError(err.code, err.details, name)));
      call.on("end", () => resolve(out));
    });
  }

  /** Closes the channel. */
  close(): void {
    this.#client.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
