/**
 * Port-forward over WebSocket: one connection per requested port for the life of the WebSocket. Port `i` has the
 * data channel `2i` (both ways) and the error channel `2i+1` (server to client); the server first writes the port
 * as a little-endian uint16 on both, then relays. A connection error is written as text on the error channel.
 * @module
 */
import { errorMessage } from "../../lib/errors.ts";
import { pushStream } from "./push_stream.ts";
import { decodeChannel, encodeChannel, protocolRules } from "./remotecommand.ts";
import { type PodConnection, type PodDialer, pump } from "./session.ts";
import type { WebSocketConn } from "./websocket.ts";

/** Serves a port-forward WebSocket until the client closes it or every connection ended. */
export async function serveWsPortForward(
  ws: WebSocketConn,
  protocol: string,
  ports: readonly number[],
  dialer: PodDialer,
  signal: AbortSignal,
): Promise<void> {
  const rules = protocolRules(protocol);
  const inputs = ports.map(() => pushStream<Uint8Array>());
  const conns: (PodConnection | undefined)[] = ports.map(() => undefined);
  const closeAll = () => {
    for (const i of inputs) i.close();
    for (const c of conns) c?.close();
  };
  signal.addEventListener("abort", closeAll, { once: true });

  const reading = (async () => {
    try {
      for await (const msg of ws.messages) {
        const m = decodeChannel(rules, msg);
        // Only even (data) channels of known ports carry client bytes; anything else is ignored.
        if (m.channel % 2 === 0) await inputs[m.channel / 2]?.push(m.data);
      }
    } catch {
      // a malformed message ends the session
    } finally {
      closeAll();
    }
  })();

  const relays = ports.map(async (port, i) => {
    const prefix = new Uint8Array([port & 0xff, port >> 8]);
    await ws.send(encodeChannel(rules, 2 * i, prefix));
    await ws.send(encodeChannel(rules, 2 * i + 1, prefix));
    let conn: PodConnection;
    try {
      conn = await dialer.connect(port);
    } catch (err) {
      await ws.send(encodeChannel(rules, 2 * i + 1, new TextEncoder().encode(errorMessage(err)))).catch(() => {});
      return;
    }
    conns[i] = conn;
    const toPod = pump(inputs[i]!.readable, { write: (d) => conn.write(d), close: () => conn.closeWrite() }, {
      closeSink: true,
    });
    await pump(conn.readable, { write: (d) => ws.send(encodeChannel(rules, 2 * i, d)), close: async () => {} }, {
      closeSink: false,
    });
    inputs[i]!.close();
    await toPod;
    conn.close();
  });
  await Promise.all(relays).catch(() => {});
  closeAll();
  await ws.close(1000).catch(() => {});
  await reading;
  signal.removeEventListener("abort", closeAll);
}
