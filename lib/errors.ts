/**
 * Domain errors shared by every folder. Lower folders throw these; only `cri/` turns them into gRPC status codes.
 * Messages say what was attempted and what state was found, and wrapping always keeps `{ cause }`.
 * @module
 */

/** The gRPC-independent names of the failure kinds davit distinguishes. */
export type ErrorKind =
  | "InvalidArgument"
  | "NotFound"
  | "AlreadyExists"
  | "FailedPrecondition"
  | "DeadlineExceeded"
  | "Unavailable"
  | "Unimplemented"
  | "PermissionDenied"
  | "ResourceExhausted"
  | "Internal";

/** Base class: every domain error carries a kind that the gRPC edge maps to a status code. */
export class DavitError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.kind = kind;
    this.name = `${kind}Error`;
  }
}

/** A request field or input value is malformed. */
export class InvalidArgument extends DavitError {
  constructor(message: string, options?: ErrorOptions) {
    super("InvalidArgument", message, options);
  }
}

/** The named object does not exist. */
export class NotFound extends DavitError {
  constructor(message: string, options?: ErrorOptions) {
    super("NotFound", message, options);
  }
}

/** An object with that name or ID already exists. */
export class AlreadyExists extends DavitError {
  constructor(message: string, options?: ErrorOptions) {
    super("AlreadyExists", message, options);
  }
}

/** The object exists but is in a state that does not allow the operation. */
export class FailedPrecondition extends DavitError {
  constructor(message: string, options?: ErrorOptions) {
    super("FailedPrecondition", message, options);
  }
}

/** An operation ran out of time. */
export class DeadlineExceeded extends DavitError {
  constructor(message: string, options?: ErrorOptions) {
    super("DeadlineExceeded", message, options);
  }
}

/** A dependency (registry, OCI runtime, plugin) cannot be reached right now. */
export class Unavailable extends DavitError {
  constructor(message: string, options?: ErrorOptions) {
    super("Unavailable", message, options);
  }
}

/** The operation is not built (yet) or not supported on this host. */
export class Unimplemented extends DavitError {
  constructor(message: string, options?: ErrorOptions) {
    super("Unimplemented", message, options);
  }
}

/** Credentials or policy refused the operation. */
export class PermissionDenied extends DavitError {
  constructor(message: string, options?: ErrorOptions) {
    super("PermissionDenied", message, options);
  }
}

/** A bounded resource (memory cap, queue, disk) is exhausted. */
export class ResourceExhausted extends DavitError {
  constructor(message: string, options?: ErrorOptions) {
    super("ResourceExhausted", message, options);
  }
}

/** Returns the error's message whatever was thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
