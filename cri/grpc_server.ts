/**
 * The gRPC edge: registers every RPC of runtime.v1 on a grpc-js server, runs each call through one wrapper that
 * logs it with its duration, turns domain errors into gRPC status codes and strips secrets, and answers
 * UNIMPLEMENTED for RPCs that have no handler yet. This is the only file that imports the gRPC library's server.
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { DavitError, type ErrorKind, errorMessage } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { decodeMessage, encodeMessage, RPC_METHODS } from "./codec.ts";

/** A decoded CRI message: snake_case fields, enums by name. */
export type Message = Record<string, any>;

/** What a handler learns about the call it serves. */
export interface CallContext {
  /** Method name, e.g. `PullImage`. */
  method: string;
  /** Aborted when the client cancels or its deadline passes. */
  signal: AbortSignal;
  /** Milliseconds since the epoch at which the client gives up, when it set a deadline. */
  deadline?: number;
  log: Logger;
}

/** Answers a unary RPC. */
export type UnaryHandler = (req: Message, ctx: CallContext) => Promise<Message> | Message;
/** Answers a server-streaming RPC with a sequence of messages. */
export type StreamHandler = (req: Message, ctx: CallContext) => AsyncIterable<Message>;
/** Handlers by method name; a method without one answers UNIMPLEMENTED. */
export type Handlers = Partial<Record<string, UnaryHandler | StreamHandler>>;

const CODES: Record<ErrorKind, grpc.status> = {
  InvalidArgument: grpc.status.INVALID_ARGUMENT,
  NotFound: grpc.status.NOT_FOUND,
  AlreadyExists: grpc.status.ALREADY_EXISTS,
  FailedPrecondition: grpc.status.FAILED_PRECONDITION,
  DeadlineExceeded: grpc.status.DEADLINE_EXCEEDED,
  Unavailable: grpc.status.UNAVAILABLE,
  Unimplemented: grpc.status.UNIMPLEMENTED,
  PermissionDenied: grpc.status.PERMISSION_DENIED,
  ResourceExhausted: grpc.status.RESOURCE_EXHAUSTED,
  Internal: grpc.status.INTERNAL,
};

/** The gRPC status for a thrown value: domain errors by kind, anything else INTERNAL. */
export function statusFor(err: unknown): grpc.status {
  return err instanceof DavitError ? CODES[err.kind] : grpc.status.INTERNAL;
}

/** Options for {@link CriGrpcServer}. */
export interface CriGrpcServerOptions {
  handlers: Handlers;
  log: Logger;
  /** Removes secrets (registry credentials) from an error message before it leaves the daemon. */
  redact?: (message: string, req: Message) => string;
  maxRecvMessageSize?: number;
  maxSendMessageSize?: number;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

interface CancellableCall {
  on(event: "cancelled", listener: () => void): unknown;
  removeListener(event: "cancelled", listener: () => void): unknown;
  getDeadline(): grpc.Deadline;
}

function callContext(method: string, call: CancellableCall, log: Logger): { ctx: CallContext; done: () => void } {
  const controller = new AbortController();
  const onCancel = () =>
    controller.abort(
      new DavitError("DeadlineExceeded", `${method}: the client cancelled the call or its deadline passed`),
    );
  call.on("cancelled", onCancel);
  const ctx: CallContext = { method, signal: controller.signal, log };
  const deadline = call.getDeadline();
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (deadline instanceof Date || (typeof deadline === "number" && Number.isFinite(deadline))) {
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    ctx.deadline = at;
    timer = setTimeout(onCancel, Math.max(0, at - Date.now()));
  }
  return {
    ctx,
    done: () => {
      if (timer !== undefined) clearTimeout(timer);
      call.removeListener("cancelled", onCancel);
    },
  };
}

/** A grpc-js server carrying RuntimeService and ImageService on one unix socket. */
export class CriGrpcServer {
  readonly #server: grpc.Server;
  readonly #opts: CriGrpcServerOptions;
  #inFlight = 0;

  constructor(opts: CriGrpcServerOptions) {
    this.#opts = opts;
    this.#server = new grpc.Server({
      "grpc.max_receive_message_length": opts.maxRecvMessageSize ?? 16 * 1024 * 1024,
      "grpc.max_send_message_length": opts.maxSendMessageSize ?? 16 * 1024 * 1024,
    });
    for (const service of ["RuntimeService", "ImageService"]) {
      const definition: Record<string, grpc.MethodDefinition<Message, Message>> = {};
      const implementation: grpc.UntypedServiceImplementation = {};
      for (const m of RPC_METHODS.filter((x) => x.service === service)) {
        definition[m.name] = {
          path: m.path,
          requestStream: false,
          responseStream: m.responseStream,
          requestSerialize: (v: Message) => toBuffer(encodeMessage(m.requestType, v)),
          requestDeserialize: (b: Buffer) => decodeMessage(m.requestType, b),
          responseSerialize: (v: Message) => toBuffer(encodeMessage(m.responseType, v)),
          responseDeserialize: (b: Buffer) => decodeMessage(m.responseType, b),
        };
        implementation[m.name] = m.responseStream ? this.#streaming(m.name) : this.#unary(m.name);
      }
      this.#server.addService(definition as grpc.ServiceDefinition, implementation);
    }
  }

  /** Calls being served right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  #fail(method: string, err: unknown, req: Message, started: number): grpc.ServiceError {
    const code = statusFor(err);
    let message = errorMessage(err);
    if (this.#opts.redact) message = this.#opts.redact(message, req);
    const fields = {
      method,
      code: grpc.status[code],
      duration_ms: (performance.now() - started).toFixed(2),
      error: message,
    };
    if (code === grpc.status.INTERNAL) this.#opts.log.error("rpc failed", fields);
    else this.#opts.log.debug("rpc failed", fields);
    const e = new Error(message) as grpc.ServiceError;
    e.code = code;
    e.details = message;
    e.metadata = new grpc.Metadata();
    return e;
  }

  #unary(method: string): grpc.handleUnaryCall<Message, Message> {
    return async (call, callback) => {
      const handler = this.#opts.handlers[method] as UnaryHandler | undefined;
      const started = performance.now();
      this.#inFlight++;
      const { ctx, done } = callContext(method, call, this.#opts.log);
      try {
        if (!handler) throw new DavitError("Unimplemented", `method ${method} is not implemented by davit yet`);
        const res = await handler(call.request, ctx);
        this.#opts.log.debug("rpc", { method, duration_ms: (performance.now() - started).toFixed(2) });
        callback(null, res);
      } catch (err) {
        callback(this.#fail(method, err, call.request, started));
      } finally {
        done();
        this.#inFlight--;
      }
    };
  }

  #streaming(method: string): grpc.handleServerStreamingCall<Message, Message> {
    return async (call) => {
      const handler = this.#opts.handlers[method] as StreamHandler | undefined;
      const started = performance.now();
      this.#inFlight++;
      const { ctx, done } = callContext(method, call, this.#opts.log);
      try {
        if (!handler) throw new DavitError("Unimplemented", `method ${method} is not implemented by davit yet`);
        let count = 0;
        for await (const msg of handler(call.request, ctx)) {
          if (ctx.signal.aborted) break;
          if (!call.write(msg)) await new Promise((resolve) => call.once("drain", resolve));
          count++;
        }
        this.#opts.log.debug("rpc", { method, messages: count, duration_ms: (performance.now() - started).toFixed(2) });
        call.end();
      } catch (err) {
        call.emit("error", this.#fail(method, err, call.request, started));
      } finally {
        done();
        this.#inFlight--;
      }
    };
  }

  /** Binds the server to a unix socket path. */
  bind(socketPath: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => {
        if (err) {
          reject(new DavitError("Unavailable", `Cannot listen on ${socketPath}: ${err.message}`, { cause: err }));
        } else resolve();
      });
    });
  }

  /** Stops taking new calls, lets in-flight calls finish for up to `graceMs`, then cuts the rest. */
  async shutdown(graceMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graceful = new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), graceMs));
    const outcome = await Promise.race([graceful, timeout]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      this.#opts.log.warn("calls still running at shutdown were cut", { in_flight: this.#inFlight });
      this.#server.forceShutdown();
    }
  }
}
