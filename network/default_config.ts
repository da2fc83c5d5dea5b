/**
 * davit's default CNI network configuration, printed or installed by `davit network default [--write]`: a bridge
 * network like CRI-O's example (bridge `cni0`, gateway, masquerade, hairpin, host-local IPAM on 10.88.0.0/16,
 * portmap for hostPort). The pod's loopback interface is not part of it: davit brings `lo` up itself through the
 * loopback plugin for every pod.
 * @module
 */

/** The file name the default configuration is installed under in the network directory. */
export const DEFAULT_NETWORK_FILE = "10-davit-bridge.conflist";

/** Knobs for {@link defaultNetworkConfig}. */
export interface DefaultNetworkOptions {
  /** Network name; default "davit". */
  name?: string;
  /** Bridge device; default "cni0". */
  bridge?: string;
  /** IPv4 pod subnet; default 10.88.0.0/16. */
  subnet?: string;
  /** An IPv6 pod subnet for dual stack (e.g. fd00:10:88::/64); none by default, as hosts often lack IPv6 routing. */
  ipv6Subnet?: string;
}

/**
 * The default configuration list as pretty-printed JSON. The bridge declares the `ipRanges` capability, so once
 * the kubelet sets the node's pod CIDR (UpdateRuntimeConfig) host-local allocates from it instead of `ranges`.
 */
export function defaultNetworkConfig(opts: DefaultNetworkOptions = {}): string {
  const ranges: { subnet: string }[][] = [[{ subnet: opts.subnet ?? "10.88.0.0/16" }]];
  const routes: { dst: string }[] = [{ dst: "0.0.0.0/0" }];
  if (opts.ipv6Subnet) {
    ranges.push([{ subnet: opts.ipv6Subnet }]);
    routes.push({ dst: "::/0" });
  }
  const list = {
    cniVersion: "1.0.0",
    name: opts.name ?? "davit",
    plugins: [
      {
        type: "bridge",
        bridge: opts.bridge ?? "cni0",
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        capabilities: { ipRanges: true },
        ipam: { type: "host-local", routes, ranges },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  };
  return JSON.stringify(list, null, 2) + "\n";
}
