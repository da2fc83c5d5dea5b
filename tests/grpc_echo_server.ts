/**
 * A tiny grpc-js server for tests and benchmarks of the socket edge: one unary method,
 * `/runtime.v1.RuntimeService/Version`, that answers `echo:` followed by the raw request bytes (no protobuf).
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";

/** The one method's path. */
export const ECHO_PATH = "/runtime.v1.RuntimeService/Version";

const raw = (b: Buffer) => b;
const ECHO_SERVICE: grpc.ServiceDefinition = {
  Version: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

/** A running echo server. */
export interface EchoServer extends AsyncDisposable {
  readonly socketPath: string;
  /** Calls answered. */
  readonly calls: () => number;
  close(): Promise<void>;
}

/** Starts the echo server on the unix socket `socketPath`. */
export async function startEchoServer(socketPath: string): Promise<EchoServer> {
  const server = new grpc.Server();
  let calls = 0;
  server.addService(ECHO_SERVICE, {
    Version: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      calls++;
      cb(null, Buffer.concat([Buffer.from("echo:"), call.request]));
    },
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (e) => e ? reject(e) : resolve())
  );
  const close = async () => {
    server.forceShutdown();
    // grpc-js closes its listener asynchronously; give its callbacks a turn.
    await new Promise((r) => setTimeout(r, 10));
  };
  return { socketPath, calls: () => calls, close, [Symbol.asyncDispose]: close };
}

/** A grpc-js client for the echo method (`authority` sets `grpc.default_authority`). */
export function echoClient(socketPath: string, authority?: string): {
  call: (body: Uint8Array) => Promise<Uint8Array>;
  close: () => void;
} {
  const options: grpc.ClientOptions = authority ? { "grpc.default_authority": authority } : {};
  const client = new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure(), options);
  return {
    call: (body) =>
      new Promise((resolve, reject) =>
        client.makeUnaryRequest(ECHO_PATH, raw, raw, Buffer.from(body), (err, res) => {
          if (err) reject(err);
          else resolve(new Uint8Array(res!));
        })
      ),
    close: () => client.close(),
  };
}
