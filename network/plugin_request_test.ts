/** Tests for request configuration derivation, capability arguments, CNI_ARGS and the plugin environment. */
import { InvalidArgument } from "../lib/errors.ts";
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { type NetworkConfigList, parseNetworkConfigObject } from "./cni_config.ts";
import {
  type Attachment,
  capabilityArgs,
  formatCniArgs,
  kubernetesCniArgs,
  parsePodCidrs,
  pluginEnv,
  pluginRequest,
  portMappings,
} from "./plugin_request.ts";

function list(json: unknown): NetworkConfigList {
  const parsed = parseNetworkConfigObject(json);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.config;
}

const NET = list({
  cniVersion: "1.0.0",
  cniVersions: ["0.4.0"],
  name: "podnet",
  plugins: [
    {
      type: "bridge",
      name: "ignored",
      cniVersion: "0.1.0",
      bridge: "cni0",
      capabilities: { ipRanges: true },
      ipam: { type: "host-local" },
      "cni.dev/secret": 1,
    },
    { type: "portmap", capabilities: { portMappings: true, bandwidth: false }, snat: true },
    { type: "bandwidth", capabilities: { bandwidth: true }, runtimeConfig: { keep: 1 } },
  ],
});

const CAPS = capabilityArgs({
  portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "TCP" }],
  bandwidth: { ingressRate: 1000, ingressBurst: 2000 },
}, ["10.244.1.0/24"]);

Deno.test("pluginRequest", async (t) => {
  await t.step("name and cniVersion come from the list; capabilities and cni.dev/ keys are removed", () => {
    const conf = pluginRequest(NET, 0, { command: "ADD", version: "1.0.0", capabilityArgs: CAPS });
    assertEquals(conf, {
      type: "bridge",
      name: "podnet",
      cniVersion: "1.0.0",
      bridge: "cni0",
      ipam: { type: "host-local" },
      runtimeConfig: { ipRanges: [[{ subnet: "10.244.1.0/24" }]] },
    });
  });
  await t.step("only declared (true) capabilities are injected; prevResult is passed", () => {
    const prev = { cniVersion: "1.0.0", ips: [] };
    const conf = pluginRequest(NET, 1, { command: "ADD", version: "1.0.0", capabilityArgs: CAPS, prevResult: prev });
    assertEquals(conf.runtimeConfig, { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] });
    assertEquals(conf.prevResult, prev);
    assertEquals(conf.snat, true);
  });
  await t.step("runtimeConfig already present is merged", () => {
    const conf = pluginRequest(NET, 2, { command: "DEL", version: "0.4.0", capabilityArgs: CAPS });
    assertEquals(conf.runtimeConfig, { keep: 1, bandwidth: { ingressRate: 1000, ingressBurst: 2000 } });
    assertEquals(conf.cniVersion, "0.4.0");
  });
  await t.step("no capability arguments, no runtimeConfig", () => {
    const conf = pluginRequest(NET, 1, { command: "CHECK", version: "1.0.0" });
    assert(!("runtimeConfig" in conf));
  });
  await t.step("GC carries the valid attachments and no runtimeConfig", () => {
    const conf = pluginRequest(NET, 2, {
      command: "GC",
      version: "1.1.0",
      capabilityArgs: CAPS,
      validAttachments: [{ containerID: "c1", ifname: "eth0" }],
    });
    assertEquals(conf["cni.dev/valid-attachments"], [{ containerID: "c1", ifname: "eth0" }]);
    assert(!("runtimeConfig" in conf));
  });
  await t.step("the list itself is not modified", () => {
    assertEquals(NET.plugins[0]?.capabilities, { ipRanges: true });
    assertEquals(NET.plugins[2]?.runtimeConfig, { keep: 1 });
  });
});

Deno.test("capability arguments", async (t) => {
  await t.step("port mappings: published only, protocol lower-case, hostIP kept when set", () => {
    assertEquals(
      portMappings([
        { hostPort: 0, containerPort: 53 },
        { hostPort: 5353, containerPort: 53, protocol: "UDP", hostIP: "127.0.0.1" },
        { hostPort: 8443, containerPort: 443, protocol: "SCTP", hostIP: "" },
        { hostPort: 8080, containerPort: 80 },
      ]),
      [
        { hostPort: 5353, containerPort: 53, protocol: "udp", hostIP: "127.0.0.1" },
        { hostPort: 8443, containerPort: 443, protocol: "sctp" },
        { hostPort: 8080, containerPort: 80, protocol: "tcp" },
      ],
    );
  });
  await t.step("bad port mappings", () => {
    assertThrows(
      () => portMappings([{ hostPort: 1, containerPort: 1, protocol: "icmp" }]),
      InvalidArgument,
      "protocol",
    );
    assertThrows(() => portMappings([{ hostPort: 70000, containerPort: 1 }]), InvalidArgument, "hostPort 70000");
    assertThrows(() => portMappings([{ hostPort: 1, containerPort: 0 }]), InvalidArgument, "containerPort 0");
    assertThrows(() => portMappings([{ hostPort: 1, containerPort: 1, hostIP: "x" }]), InvalidArgument, "hostIP");
  });
  await t.step("empty inputs give no capability arguments", () => {
    assertEquals(capabilityArgs({ portMappings: [{ hostPort: 0, containerPort: 80 }], dns: {} }, []), {});
  });
  await t.step("dual-stack pod CIDRs give one range set per family; dns and cgroupPath pass", () => {
    assertEquals(
      capabilityArgs({ dns: { servers: ["10.96.0.10"], searches: ["svc"] }, cgroupPath: "/kubepods/pod1" }, [
        "10.244.1.0/24",
        "fd00:1::/64",
      ]),
      {
        ipRanges: [[{ subnet: "10.244.1.0/24" }], [{ subnet: "fd00:1::/64" }]],
        dns: { servers: ["10.96.0.10"], searches: ["svc"] },
        cgroupPath: "/kubepods/pod1",
      },
    );
  });
  await t.step("parsePodCidrs", () => {
    assertEquals(parsePodCidrs(""), []);
    assertEquals(parsePodCidrs("10.244.1.0/24, fd00:1::/64"), ["10.244.1.0/24", "fd00:1::/64"]);
    assertThrows(() => parsePodCidrs("10.244.1.0"), InvalidArgument, "CIDR");
  });
});

Deno.test("CNI_ARGS and environment", async (t) => {
  const pod = { id: "abc123", name: "web-0", namespace: "default", uid: "9f1c-11" };
  await t.step("Kubernetes CNI_ARGS, IgnoreUnknown first", () => {
    assertEquals(
      formatCniArgs(kubernetesCniArgs(pod)),
      "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=9f1c-11",
    );
  });
  await t.step("values that would break the format are refused", () => {
    assertThrows(() => kubernetesCniArgs({ ...pod, name: "a;b" }), InvalidArgument, "K8S_POD_NAME");
    assertThrows(() => kubernetesCniArgs({ ...pod, namespace: "a=b" }), InvalidArgument, "K8S_POD_NAMESPACE");
  });
  const attachment: Attachment = {
    containerId: "abc123",
    netns: "/run/netns/x",
    ifname: "eth0",
    cniArgs: [["IgnoreUnknown", "1"]],
    capabilityArgs: {},
  };
  const dirs = ["/opt/cni/bin", "/usr/lib/cni"];
  await t.step("ADD gets every parameter and nothing else", () => {
    assertEquals(pluginEnv("ADD", { attachment, pluginDirs: dirs, path: "/usr/bin" }), {
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "abc123",
      CNI_NETNS: "/run/netns/x",
      CNI_IFNAME: "eth0",
      CNI_ARGS: "IgnoreUnknown=1",
      CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
      PATH: "/usr/bin",
    });
  });
  await t.step("DEL without a namespace leaves CNI_NETNS out", () => {
    const env = pluginEnv("DEL", { attachment: { ...attachment, netns: "" }, pluginDirs: dirs, path: "/usr/bin" });
    assert(!("CNI_NETNS" in env));
    assertEquals(env.CNI_CONTAINERID, "abc123");
  });
  await t.step("GC and VERSION", () => {
    assertEquals(pluginEnv("GC", { pluginDirs: dirs, path: "/p" }), {
      CNI_COMMAND: "GC",
      CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
      PATH: "/p",
    });
    assertEquals(pluginEnv("VERSION", { pluginDirs: dirs, path: "/p" }), { CNI_COMMAND: "VERSION", PATH: "/p" });
  });
});
