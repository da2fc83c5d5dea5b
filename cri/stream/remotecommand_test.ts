// Table tests of the shared remote command facts: negotiation, status encoding per version, resize messages,
// WebSocket channel framing and port parsing.
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  decodeChannel,
  encodeChannel,
  encodeStatus,
  errorStatus,
  exitCodeStatus,
  negotiate,
  parsePort,
  protocolRules,
  ResizeDecoder,
  SPDY_REMOTECOMMAND_PROTOCOLS,
  successStatus,
} from "./remotecommand.ts";

const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);

Deno.test("remote command protocol facts", async (t) => {
  await t.step("negotiation follows the server's preference among what the client offered", () => {
    const cases: [string[], string | undefined][] = [
      [["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"], "v4.channel.k8s.io"],
      [["channel.k8s.io", "v5.channel.k8s.io"], "v5.channel.k8s.io"],
      [["v2.channel.k8s.io, v3.channel.k8s.io"], "v3.channel.k8s.io"],
      [[], ""],
      [["v9.channel.k8s.io"], undefined],
    ];
    for (const [offered, want] of cases) {
      const got = negotiate(offered, SPDY_REMOTECOMMAND_PROTOCOLS);
      assertEquals(got.ok ? got.protocol : undefined, want, offered.join());
    }
    const refused = negotiate(["v9.channel.k8s.io"], SPDY_REMOTECOMMAND_PROTOCOLS);
    assertEquals(refused.ok, false);
    if (!refused.ok) assertEquals(refused.message.includes("client supports [v9.channel.k8s.io]"), true);
    assertEquals(negotiate([], ["portforward.k8s.io"], false).ok, false);
  });

  await t.step("status: JSON from v4 on, plain text for failures before, nothing for an earlier success", () => {
    const v4 = protocolRules("v4.channel.k8s.io");
    const v3 = protocolRules("v3.channel.k8s.io");
    assertEquals(JSON.parse(text(encodeStatus(v4, successStatus()))!), {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Success",
    });
    const failed = JSON.parse(text(encodeStatus(v4, exitCodeStatus(3)))!);
    assertEquals(failed.status, "Failure");
    assertEquals(failed.reason, "NonZeroExitCode");
    assertEquals(failed.details, { causes: [{ reason: "ExitCode", message: "3" }] });
    assertEquals(encodeStatus(v3, successStatus()), undefined);
    assertEquals(text(encodeStatus(v3, errorStatus("no such file"))), "no such file");
    assertEquals(protocolRules("v5.channel.k8s.io").closeSignal, true);
    assertEquals(protocolRules("v2.channel.k8s.io").resize, false);
    assertEquals(protocolRules("").legacyV1, true);
  });

  await t.step("resize messages split across chunks and packed together", () => {
    const d = new ResizeDecoder();
    const enc = new TextEncoder();
    assertEquals(d.push(enc.encode('{"Width":80,')), []);
    assertEquals(d.push(enc.encode('"Height":24}\n{"Width":100,"Height":50}\n{"Wid')), [
      { cols: 80, rows: 24 },
      { cols: 100, rows: 50 },
    ]);
    assertEquals(d.push(enc.encode('th":1,"Height":2}')), [{ cols: 1, rows: 2 }]);
    // Bad sizes are skipped, braces inside strings do not confuse the framing.
    assertEquals(d.push(enc.encode('{"Width":-1,"Height":2}{"x":"}{","Width":3,"Height":4}')), [{ cols: 3, rows: 4 }]);
    assertThrows(() => d.push(enc.encode("{" + " ".repeat(5000))), Error, "longer than 4096");
  });

  await t.step("channel framing: a leading byte, or a digit and base64", () => {
    const data = new Uint8Array([0, 1, 2, 255]);
    const bin = encodeChannel({ base64: false }, 1, data);
    assertEquals(bin, new Uint8Array([1, 0, 1, 2, 255]));
    assertEquals(decodeChannel({ base64: false }, { binary: true, data: bin as Uint8Array }), { channel: 1, data });
    const b64 = encodeChannel({ base64: true }, 2, data);
    assertEquals(b64, "2AAEC/w==");
    assertEquals(
      decodeChannel({ base64: true }, { binary: false, data: new TextEncoder().encode(b64 as string) }),
      { channel: 2, data },
    );
    assertThrows(() => decodeChannel({ base64: false }, { binary: true, data: new Uint8Array() }), Error, "empty");
  });

  await t.step("ports", () => {
    assertEquals(parsePort("8080"), 8080);
    for (const bad of ["0", "65536", "-1", "80a", "", "123456"]) assertThrows(() => parsePort(bad), Error);
  });
});
