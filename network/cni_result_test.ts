/** Tests for CNI result parsing, version conversion and pod IP derivation. */
import { assert, assertEquals, assertStringIncludes } from "../tests/assert.ts";
import { type CniResult, convertResult, parseResult, podIps } from "./cni_result.ts";

const NS = "/run/davit/netns/p1";

const RESULT_031 = {
  cniVersion: "0.3.1",
  interfaces: [{ name: "cni0", mac: "aa:bb:cc:dd:ee:01" }, { name: "veth1", mac: "aa:bb:cc:dd:ee:02" }, {
    name: "eth0",
    mac: "aa:bb:cc:dd:ee:03",
    sandbox: NS,
  }],
  ips: [{ version: "4", address: "10.88.0.5/16", gateway: "10.88.0.1", interface: 2 }],
  routes: [{ dst: "0.0.0.0/0" }],
  dns: {},
};

const RESULT_100 = {
  cniVersion: "1.0.0",
  interfaces: [{ name: "eth0", mac: "aa:bb:cc:dd:ee:03", mtu: 1500, sandbox: NS }],
  ips: [
    { address: "fd00::5/64", gateway: "fd00::1", interface: 0 },
    { address: "10.88.0.5/16", gateway: "10.88.0.1", interface: 0 },
  ],
  routes: [{ dst: "0.0.0.0/0", gw: "10.88.0.1", priority: 10 }, { dst: "::/0" }],
  dns: { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"], options: ["ndots:5"] },
};

Deno.test("parseResult normalises every supported version to the 1.x shape", async (t) => {
  await t.step("0.3.1 drops ips[].version", () => {
    const r = parseResult(RESULT_031);
    assert(r.ok, r.ok ? "" : r.reason);
    assertEquals(r.result.ips, [{ address: "10.88.0.5/16", gateway: "10.88.0.1", interface: 2 }]);
    assertEquals(r.result.interfaces[2], { name: "eth0", mac: "aa:bb:cc:dd:ee:03", sandbox: NS });
    assertEquals(r.result.routes, [{ dst: "0.0.0.0/0" }]);
    assertEquals(r.result.dns, {});
  });
  for (const v of ["0.3.0", "0.4.0"]) {
    await t.step(`${v} is read like 0.3.1`, () => {
      const r = parseResult({ ...RESULT_031, cniVersion: v });
      assert(r.ok);
      assertEquals(r.result.cniVersion, v);
    });
  }
  for (const v of ["1.0.0", "1.1.0"]) {
    await t.step(`${v} keeps every field`, () => {
      const r = parseResult({ ...RESULT_100, cniVersion: v });
      assert(r.ok, r.ok ? "" : r.reason);
      assertEquals(r.result.routes[0], { dst: "0.0.0.0/0", gw: "10.88.0.1", priority: 10 });
      assertEquals(r.result.dns.search, ["svc.cluster.local"]);
      assertEquals(r.result.interfaces[0]?.mtu, 1500);
    });
  }
  await t.step("an IPAM-style result without interfaces", () => {
    const r = parseResult({ cniVersion: "1.0.0", ips: [{ address: "10.1.0.2/24", gateway: "10.1.0.1" }] });
    assert(r.ok);
    assertEquals(r.result.interfaces, []);
    assertEquals(r.result.ips, [{ address: "10.1.0.2/24", gateway: "10.1.0.1" }]);
  });
});

Deno.test("parseResult refuses", async (t) => {
  const cases: [string, unknown, string][] = [
    ["a non-object", "x", "not a JSON object"],
    ["no version", { ips: [] }, 'no "cniVersion"'],
    ["0.2.0", { cniVersion: "0.2.0", ip4: { ip: "10.0.0.2/24" } }, "0.2.0 is not supported"],
    ["an address without prefix", { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2" }] }, "ips[0].address"],
    ["a bad gateway", { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24", gateway: "x" }] }, "ips[0].gateway"],
    [
      "an interface index out of range",
      { cniVersion: "1.0.0", interfaces: [{ name: "eth0" }], ips: [{ address: "10.0.0.2/24", interface: 1 }] },
      "out of range",
    ],
    [
      "a version/family mismatch",
      { cniVersion: "0.4.0", ips: [{ version: "6", address: "10.0.0.2/24" }] },
      "does not match",
    ],
    ["a bad route", { cniVersion: "1.0.0", routes: [{ dst: "default" }] }, "routes[0].dst"],
    ["ips not a list", { cniVersion: "1.0.0", ips: {} }, '"ips" is not a list'],
    ["bad dns", { cniVersion: "1.0.0", dns: { nameservers: "1.1.1.1" } }, "dns.nameservers"],
  ];
  for (const [name, json, reason] of cases) {
    await t.step(name, () => {
      const r = parseResult(json);
      assert(!r.ok);
      assertStringIncludes(r.reason, reason);
    });
  }
});

Deno.test("convertResult", async (t) => {
  await t.step("0.3.1 to 1.0.0 drops ips[].version and keeps the rest", () => {
    const out = convertResult(RESULT_031, "1.0.0");
    assertEquals(out.cniVersion, "1.0.0");
    assertEquals(out.ips, [{ address: "10.88.0.5/16", gateway: "10.88.0.1", interface: 2 }]);
    assertEquals(out.interfaces, RESULT_031.interfaces);
  });
  await t.step("1.0.0 to 0.4.0 adds ips[].version from the address family", () => {
    const out = convertResult(RESULT_100, "0.4.0");
    assertEquals((out.ips as { version: string }[]).map((i) => i.version), ["6", "4"]);
    assert(parseResult(out).ok);
  });
  await t.step("the input is not modified", () => {
    const copy = structuredClone(RESULT_031);
    convertResult(copy, "1.0.0");
    assertEquals(copy, RESULT_031);
  });
});

Deno.test("podIps", async (t) => {
  const base: CniResult = { cniVersion: "1.0.0", interfaces: [], ips: [], routes: [], dns: {} };
  const cases: { name: string; result: CniResult; want: ReturnType<typeof podIps> }[] = [
    { name: "no IPs", result: base, want: { additional: [], all: [] } },
    {
      name: "IPv4 is primary even when IPv6 comes first",
      result: parseResultOrThrow(RESULT_100),
      want: { primary: "10.88.0.5", additional: ["fd00::5"], all: ["10.88.0.5", "fd00::5"] },
    },
    {
      name: "IPv6 only",
      result: { ...base, ips: [{ address: "fd00::5/64" }, { address: "FD00::6/64" }] },
      want: { primary: "fd00::5", additional: ["fd00::6"], all: ["fd00::5", "fd00::6"] },
    },
    {
      name: "host-side interface addresses are skipped, unbound ones count, duplicates dropped",
      result: {
        ...base,
        interfaces: [{ name: "cni0" }, { name: "eth0", sandbox: NS }],
        ips: [
          { address: "10.88.0.1/16", interface: 0 },
          { address: "10.88.0.7/16", interface: 1 },
          { address: "10.88.0.7/16" },
          { address: "10.99.0.7/16" },
        ],
      },
      want: { primary: "10.88.0.7", additional: ["10.99.0.7"], all: ["10.88.0.7", "10.99.0.7"] },
    },
  ];
  for (const c of cases) await t.step(c.name, () => assertEquals(podIps(c.result), c.want));
});

function parseResultOrThrow(json: unknown): CniResult {
  const r = parseResult(json);
  if (!r.ok) throw new Error(r.reason);
  return r.result;
}
