// Table tests of pod config validation: quantities for the bandwidth annotations, names, namespaces.
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { parseQuantity, podReservedName, validatePodConfig } from "./pod_config.ts";

const base = { metadata: { name: "p", namespace: "n", uid: "u", attempt: 1 } };

Deno.test("pod config", async (t) => {
  await t.step("quantities", () => {
    for (
      const [text, want] of [["10", 10], ["10k", 10_000], ["1.5M", 1_500_000], ["2Mi", 2_097_152], ["1G", 1e9]] as const
    ) {
      assertEquals(parseQuantity(text, "x"), want);
    }
    assertThrows(() => parseQuantity("fast", "x"), InvalidArgument, '"fast"');
  });
  await t.step("bandwidth annotations become rates in bits per second", () => {
    const spec = validatePodConfig({
      ...base,
      annotations: { "kubernetes.io/ingress-bandwidth": "10M", "kubernetes.io/egress-bandwidth": "1Mi" },
    });
    assertEquals(spec.bandwidth, { ingressRate: 10_000_000, egressRate: 1_048_576 });
    assertThrows(
      () => validatePodConfig({ ...base, annotations: { "kubernetes.io/ingress-bandwidth": "lots" } }),
      InvalidArgument,
      "kubernetes.io/ingress-bandwidth",
    );
  });
  await t.step("defaults: hostname from the name, POD namespaces, reserved name", () => {
    const spec = validatePodConfig(base);
    assertEquals([spec.hostname, spec.network, spec.ipc], ["p", "POD", "POD"]);
    assertEquals(podReservedName(spec), "p_n_u_1");
  });
  await t.step("pid: CONTAINER without namespace_options, else as asked (proto3's default POD included)", () => {
    const sc = (ns: Record<string, unknown>) => ({ ...base, linux: { security_context: { namespace_options: ns } } });
    assertEquals(validatePodConfig(base).pid, "CONTAINER");
    assertEquals(validatePodConfig({ ...base, linux: { security_context: {} } }).pid, "CONTAINER");
    assertEquals(validatePodConfig(sc({ pid: "POD" })).pid, "POD");
    assertEquals(validatePodConfig(sc({ network: "NODE" })).pid, "POD");
    assertEquals(validatePodConfig(sc({ pid: "NODE" })).pid, "NODE");
    assertEquals(validatePodConfig(sc({ pid: "CONTAINER" })).pid, "CONTAINER");
    assertThrows(() => validatePodConfig(sc({ pid: "TARGET" })), InvalidArgument, "pid TARGET");
  });
  await t.step("refusals name the field", () => {
    assertThrows(
      () => validatePodConfig({ metadata: { name: "p", namespace: "", uid: "u" } }),
      InvalidArgument,
      "namespace",
    );
    assertThrows(
      () => validatePodConfig({ ...base, port_mappings: [{ container_port: 70000 }] }),
      InvalidArgument,
      "config.port_mappings[0].container_port",
    );
    assertThrows(
      () => validatePodConfig({ ...base, linux: { security_context: { namespace_options: { network: "TARGET" } } } }),
      InvalidArgument,
      "namespace_options.network",
    );
  });
});
