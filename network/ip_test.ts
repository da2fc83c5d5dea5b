/** Tests for IP and CIDR parsing. */
import { assertEquals } from "../tests/assert.ts";
import { parseCidr, parseIp } from "./ip.ts";

Deno.test("parseIp", async (t) => {
  const cases: [string, ReturnType<typeof parseIp>][] = [
    ["10.88.0.5", { family: 4, address: "10.88.0.5" }],
    ["255.255.255.255", { family: 4, address: "255.255.255.255" }],
    ["256.1.1.1", undefined],
    ["01.2.3.4", undefined],
    ["1.2.3", undefined],
    ["FD00:0:0::1", { family: 6, address: "fd00::1" }],
    ["::ffff:10.0.0.1", { family: 6, address: "::ffff:a00:1" }],
    ["fe80::1%eth0", undefined],
    ["1:2:3:4:5:6:7:8:9", undefined],
    ["", undefined],
    ["example.com", undefined],
  ];
  for (const [input, want] of cases) {
    await t.step(JSON.stringify(input), () => assertEquals(parseIp(input), want));
  }
});

Deno.test("parseCidr", async (t) => {
  const cases: [string, ReturnType<typeof parseCidr>][] = [
    ["10.88.0.5/16", { family: 4, address: "10.88.0.5", prefix: 16 }],
    ["10.88.0.5/33", undefined],
    ["10.88.0.5", undefined],
    ["fd00::5/64", { family: 6, address: "fd00::5", prefix: 64 }],
    ["fd00::5/129", undefined],
    ["fd00::5/", undefined],
    ["fd00::5/-1", undefined],
  ];
  for (const [input, want] of cases) {
    await t.step(JSON.stringify(input), () => assertEquals(parseCidr(input), want));
  }
});
