/**
 * Exec and attach over WebSocket (the channel protocols: a channel byte, or a digit and base64, before each
 * message). Channels: 0 stdin, 1 stdout, 2 stderr, 3 error (the final status), 4 resize; with v5 a message on
 * channel 255 says the client closed the channel named by its first byte. Once upgraded, the server sends an empty
 * message on the lowest output channel the session has, so the client knows the session is up.
 * @module
 */
import { pushStream } from "./push_stream.ts";
import {
  CHANNEL,
  decodeChannel,
  encodeChannel,
  encodeStatus,
  type ProtocolRules,
  protocolRules,
  ResizeDecoder,
  type TerminalSize,
} from "./remotecommand.ts";
import { type ByteSink, outcomeStatus, type SessionIo, type SessionOutcome } from "./session.ts";
import type { WebSocketConn } from "./websocket.ts";

/** Which channels a session has. */
export interface StreamFlags {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** A running WebSocket exec/attach session: its I/O for the backend and how to end it. */
export interface WsSession {
  io: SessionIo;
  /** Writes the final status (when the protocol has one for `outcome`) and closes the WebSocket. */
  finish(outcome: SessionOutcome): Promise<void>;
}

/** Sets up the channels of an exec or attach on an upgraded WebSocket. */
export async function openWsSession(
  ws: WebSocketConn,
  protocol: string,
  flags: StreamFlags,
  signal: AbortSignal,
): Promise<WsSession> {
  const rules: ProtocolRules = protocolRules(protocol);
  const gone = new AbortController();
  const onOuter = () => gone.abort();
  signal.addEventListener("abort", onOuter, { once: true });
  const stdin = flags.stdin ? pushStream<Uint8Array>() : undefined;
  const resizes = flags.tty ? pushStream<TerminalSize>() : undefined;
  const sink = (channel: number): ByteSink => ({
    write: (data) => ws.send(encodeChannel(rules, channel, data)),
    // Channels have no end of their own: the session's end is the WebSocket's close.
    close: () => Promise.resolve(),
  });

  // Read loop: demultiplex the client's channels until the WebSocket closes.
  void (async () => {
    const decoder = new ResizeDecoder();
    try {
      for await (const msg of ws.messages) {
        const m = decodeChannel(rules, msg);
        if (m.channel === CHANNEL.stdin) await stdin?.push(m.data);
        else if (m.channel === CHANNEL.resize) {
          for (const size of decoder.push(m.data)) await resizes?.push(size);
        } else if (m.channel === CHANNEL.close && rules.closeSignal && m.data[0] === CHANNEL.stdin) stdin?.close();
      }
    } catch {
      // a malformed message ends the session
    } finally {
      stdin?.close();
      resizes?.close();
      gone.abort();
      signal.removeEventListener("abort", onOuter);
    }
  })();

  const first = flags.stdout ? CHANNEL.stdout : flags.stderr ? CHANNEL.stderr : CHANNEL.error;
  await ws.send(encodeChannel(rules, first, new Uint8Array()));
  return {
    io: {
      stdin: stdin?.readable ?? null,
      stdout: flags.stdout ? sink(CHANNEL.stdout) : null,
      stderr: flags.stderr && !flags.tty ? sink(CHANNEL.stderr) : null,
      resizes: resizes?.readable ?? null,
      signal: gone.signal,
    },
    async finish(outcome: SessionOutcome): Promise<void> {
      const status = outcomeStatus(outcome);
      const bytes = status && encodeStatus(rules, status);
      if (bytes) await ws.send(encodeChannel(rules, CHANNEL.error, bytes)).catch(() => {});
      await ws.close(1000).catch(() => {});
      gone.abort();
    },
  };
}
