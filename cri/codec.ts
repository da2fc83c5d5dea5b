/**
 * The CRI contract loaded from the embedded descriptor: one entry per RPC with its gRPC path, streaming kind and
 * the protobuf types that encode and decode it. Messages cross into handlers as plain objects with the proto's
 * snake_case field names, enums as their names and int64 as numbers (requests) or numbers/strings (responses).
 * @module
 */
import protobuf from "protobufjs";
import { CRI_DESCRIPTOR } from "./api_descriptor.ts";

/** The CRI API version davit speaks. */
export const CRI_API_VERSION = "v1";

/** One RPC of the contract. */
export interface RpcMethod {
  /** `RuntimeService` or `ImageService`. */
  service: string;
  /** Method name, e.g. `Version`. */
  name: string;
  /** gRPC path, e.g. `/runtime.v1.RuntimeService/Version`. */
  path: string;
  responseStream: boolean;
  requestType: protobuf.Type;
  responseType: protobuf.Type;
}

// deno-lint-ignore no-explicit-any
const root = protobuf.Root.fromJSON(CRI_DESCRIPTOR as any);

const DECODE_OPTIONS: protobuf.IConversionOptions = {
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
};

function collect(): RpcMethod[] {
  const out: RpcMethod[] = [];
  for (const service of ["RuntimeService", "ImageService"]) {
    const svc = root.lookupService(`runtime.v1.${service}`);
    for (const method of svc.methodsArray) {
      method.resolve();
      out.push({
        service,
        name: method.name,
        path: `/runtime.v1.${service}/${method.name}`,
        responseStream: Boolean(method.responseStream),
        requestType: method.resolvedRequestType!,
        responseType: method.resolvedResponseType!,
      });
    }
  }
  return out;
}

/** Every RPC of runtime.v1, RuntimeService first, in the contract's order. */
export const RPC_METHODS: readonly RpcMethod[] = collect();

/** Decodes a message into a plain object (missing fields get their proto3 defaults, absent messages are null). */
export function decodeMessage(type: protobuf.Type, bytes: Uint8Array): Record<string, any> {
  return type.toObject(type.decode(bytes), DECODE_OPTIONS);
}

/** Encodes a plain object; unknown fields are ignored, enum names and numbers are both accepted. */
export function encodeMessage(type: protobuf.Type, value: Record<string, unknown>): Uint8Array {
  return type.encode(type.fromObject(value)).finish();
}

/** Looks up a message type by its short name (`VersionRequest`). */
export function messageType(name: string): protobuf.Type {
  return root.lookupType(`runtime.v1.${name}`);
}
