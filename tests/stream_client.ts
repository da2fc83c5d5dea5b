/**
 * The project's own clients of the streaming server, acting as kubectl and crictl do: SPDY/3.1 (remote command
 * v1..v5 and port-forward) and WebSocket (the channel protocols). Built on davit's own protocol modules; tests use
 * them against a real daemon.
 * @module
 */
import { continueReadable, readResponseHead } from "../cri/stream/http1.ts";
import { SpdySession } from "../cri/stream/spdy_session.ts";
import type { SpdyStream } from "../cri/stream/spdy_stream.ts";
import { connectWebSocket, type WebSocketConn } from "../cri/stream/websocket.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** What a finished remote command left. */
export interface RemoteResult {
  stdout: string;
  stderr: string;
  /** The raw error stream/channel content (a JSON Status from v4 on). */
  error: string;
  /** The exit code from a v4 Status (0 on Success), or undefined. */
  exitCode: number | undefined;
}

/** Exit code carried by a v4 Status. */
export function exitCodeOf(errorText: string): number | undefined {
  if (!errorText) return undefined;
  try {
    const s = JSON.parse(errorText);
    if (s.status === "Success") return 0;
    const cause = s.details?.causes?.find((c: { reason: string }) => c.reason === "ExitCode");
    return cause ? Number(cause.message) : undefined;
  } catch {
    return undefined;
  }
}

async function readAll(stream: ReadableStream<Uint8Array> | undefined): Promise<string> {
  if (!stream) return "";
  let out = "";
  try {
    for await (const c of stream) out += dec.decode(c, { stream: true });
  } catch {
    // reset
  }
  return out;
}

/** An upgraded SPDY connection from the client side. */
export interface SpdyClient {
  session: SpdySession;
  /** The protocol the server chose. */
  protocol: string;
  status: number;
  close(): Promise<void>;
}

/** Upgrades `url` to SPDY/3.1 offering `protocols`; throws with the status and body when refused. */
export async function spdyConnect(
  url: string,
  opts: { protocols: string[]; method?: string; flowControl?: boolean; caCerts?: string[] },
): Promise<SpdyClient> {
  const u = new URL(url);
  const conn = u.protocol === "https:"
    ? await Deno.connectTls({
      hostname: u.hostname,
      port: Number(u.port),
      ...(opts.caCerts ? { caCerts: opts.caCerts } : {}),
    })
    : await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  let head = `${opts.method ?? "POST"} ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\n` +
    "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n";
  for (const p of opts.protocols) head += `X-Stream-Protocol-Version: ${p}\r\n`;
  const writer = conn.writable.getWriter();
  await writer.write(enc.encode(head + "\r\n"));
  writer.releaseLock();
  const reader = conn.readable.getReader();
  const res = await readResponseHead(reader);
  if (res.status !== 101) {
    const body = await readAll(continueReadable(res.rest, reader));
    try {
      conn.close();
    } catch {
      // closed by the server
    }
    throw new Error(`upgrade refused: ${res.status} ${body.trim()}`);
  }
  const session = new SpdySession(
    { readable: continueReadable(res.rest, reader), writable: conn.writable },
    { role: "client", ...(opts.flowControl === false ? { flowControl: false } : {}) },
  );
  return {
    session,
    protocol: res.headers.get("x-stream-protocol-version") ?? "",
    status: res.status,
    close: () => session.close(),
  };
}

/** Options of a remote command session. */
export interface RemoteOptions {
  stdin?: Uint8Array | ReadableStream<Uint8Array>;
  stdout?: boolean;
  stderr?: boolean;
  tty?: boolean;
  /** Sizes sent on the resize stream/channel before stdin. */
  resize?: { Width: number; Height: number }[];
}

/** Runs an exec or attach over SPDY as client-go does: error, stdin, stdout, stderr, resize streams. */
export async function spdyRemote(
  url: string,
  opts: RemoteOptions & { protocols?: string[]; flowControl?: boolean; caCerts?: string[] },
): Promise<RemoteResult & { protocol: string }> {
  const c = await spdyConnect(url, {
    protocols: opts.protocols ?? ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"],
    ...(opts.flowControl === false ? { flowControl: false } : {}),
    ...(opts.caCerts ? { caCerts: opts.caCerts } : {}),
  });
  try {
    const open = (type: string) => c.session.openStream({ streamtype: type });
    const error = await open("error");
    const stdin = opts.stdin ? await open("stdin") : undefined;
    const stdout = opts.stdout ? await open("stdout") : undefined;
    const stderr = opts.stderr ? await open("stderr") : undefined;
    const resize = opts.tty ? await open("resize") : undefined;
    // client-go half-closes the output streams at once: only the server writes on them.
    for (const s of [error, stdout, stderr]) await s?.closeWrite();
    if (resize) {
      for (const r of opts.resize ?? []) await resize.write(enc.encode(JSON.stringify(r) + "\n"));
    }
    const feeding = stdin ? feed(stdin, opts.stdin!) : Promise.resolve();
    const [out, err, errText] = await Promise.all([
      readAll(stdout?.readable),
      readAll(stderr?.readable),
      readAll(error.readable),
    ]);
    await feeding.catch(() => {});
    return { stdout: out, stderr: err, error: errText, exitCode: exitCodeOf(errText), protocol: c.protocol };
  } finally {
    await c.close();
  }
}

async function feed(s: SpdyStream, input: Uint8Array | ReadableStream<Uint8Array>): Promise<void> {
  if (input instanceof Uint8Array) {
    if (input.length > 0) await s.write(input);
  } else {
    for await (const chunk of input) await s.write(chunk);
  }
  await s.closeWrite();
}

/** Runs an exec or attach over WebSocket with a channel protocol. */
export async function wsRemote(
  url: string,
  opts: RemoteOptions & { protocols?: string[]; caCerts?: string[] },
): Promise<RemoteResult & { protocol: string; channels: number[] }> {
  const { ws, protocol } = await connectWebSocket(url.replace(/^http/, "ws"), {
    protocols: opts.protocols ?? ["v5.channel.k8s.io", "v4.channel.k8s.io"],
    ...(opts.caCerts ? { tls: { caCerts: opts.caCerts } } : {}),
  });
  const base64 = protocol.includes("base64");
  const send = (ch: number, data: Uint8Array) =>
    base64 ? ws.send(String.fromCharCode(48 + ch) + btoa(String.fromCharCode(...data))) : ws.send(prefix(ch, data));
  const out: Record<number, string> = { 1: "", 2: "", 3: "" };
  const channels: number[] = [];
  const reading = (async () => {
    for await (const m of ws.messages) {
      let ch: number;
      let data: Uint8Array;
      if (base64 && !m.binary) {
        const t = dec.decode(m.data);
        ch = t.charCodeAt(0) - 48;
        data = Uint8Array.from(atob(t.slice(1)), (c) => c.charCodeAt(0));
      } else {
        ch = m.data[0]!;
        data = m.data.subarray(1);
      }
      channels.push(ch);
      out[ch] = (out[ch] ?? "") + dec.decode(data);
    }
  })();
  for (const r of opts.resize ?? []) await send(4, enc.encode(JSON.stringify(r)));
  if (opts.stdin instanceof Uint8Array) {
    if (opts.stdin.length > 0) await send(0, opts.stdin);
    if (protocol === "v5.channel.k8s.io") await ws.send(new Uint8Array([255, 0]));
  } else if (opts.stdin) {
    for await (const chunk of opts.stdin) await send(0, chunk);
    if (protocol === "v5.channel.k8s.io") await ws.send(new Uint8Array([255, 0]));
  }
  await reading;
  await ws.closed;
  return {
    stdout: out[1] ?? "",
    stderr: out[2] ?? "",
    error: out[3] ?? "",
    exitCode: exitCodeOf(out[3] ?? ""),
    protocol,
    channels,
  };
}

function prefix(ch: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(data.length + 1);
  b[0] = ch;
  b.set(data, 1);
  return b;
}

/** A forwarded connection over SPDY: the data and error streams of one request ID. */
export interface SpdyForward {
  data: SpdyStream;
  error: SpdyStream;
}

/** Opens one forwarded connection on a port-forward session, as kubectl does (error stream first). */
export async function spdyForward(c: SpdyClient, port: number, requestId: number): Promise<SpdyForward> {
  const headers = { port: String(port), requestid: String(requestId) };
  const error = await c.session.openStream({ ...headers, streamtype: "error" });
  await error.closeWrite();
  const data = await c.session.openStream({ ...headers, streamtype: "data" });
  return { data, error };
}

/** Sends `input`, half-closes, and reads the data and error streams to their ends. */
export async function spdyRoundTrip(f: SpdyForward, input: Uint8Array): Promise<{ data: string; error: string }> {
  await f.data.write(input);
  await f.data.closeWrite();
  const [data, error] = await Promise.all([readAll(f.data.readable), readAll(f.error.readable)]);
  return { data, error };
}

/** A port-forward WebSocket: per port, the data channel 2i and error channel 2i+1. */
export async function wsPortForward(url: string): Promise<{ ws: WebSocketConn; protocol: string }> {
  return await connectWebSocket(url.replace(/^http/, "ws"), { protocols: ["v4.channel.k8s.io"] });
}
