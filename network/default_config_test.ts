/** Tests for the default network configuration. */
import { assert, assertEquals } from "../tests/assert.ts";
import { parseNetworkConfig } from "./cni_config.ts";
import { defaultNetworkConfig } from "./default_config.ts";

Deno.test("defaultNetworkConfig", async (t) => {
  await t.step("a valid bridge + portmap list on 10.88.0.0/16", () => {
    const parsed = parseNetworkConfig(defaultNetworkConfig());
    assert(parsed.ok);
    assertEquals(parsed.config.name, "davit");
    assertEquals(parsed.config.versions, ["1.0.0"]);
    assertEquals(parsed.config.plugins.map((p) => p.type), ["bridge", "portmap"]);
    const bridge = parsed.config.plugins[0]!;
    assertEquals([bridge.bridge, bridge.isGateway, bridge.ipMasq, bridge.hairpinMode], ["cni0", true, true, true]);
    assertEquals((bridge.ipam as { ranges: unknown }).ranges, [[{ subnet: "10.88.0.0/16" }]]);
    assertEquals(parsed.config.plugins[1]!.capabilities, { portMappings: true });
  });
  await t.step("dual stack on request", () => {
    const parsed = parseNetworkConfig(defaultNetworkConfig({ ipv6Subnet: "fd00:10:88::/64", bridge: "davit0" }));
    assert(parsed.ok);
    const ipam = parsed.config.plugins[0]!.ipam as { ranges: unknown; routes: unknown };
    assertEquals(ipam.ranges, [[{ subnet: "10.88.0.0/16" }], [{ subnet: "fd00:10:88::/64" }]]);
    assertEquals(ipam.routes, [{ dst: "0.0.0.0/0" }, { dst: "::/0" }]);
  });
});
