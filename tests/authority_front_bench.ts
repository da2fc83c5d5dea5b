/**
 * CPU cost of the `:authority` front's rewriter (`deno bench tests/authority_front_bench.ts`): one request header
 * block as grpc-go encodes it, first on a connection and later, and a DATA frame passing through. The end-to-end
 * latency through the front is measured by `tests/authority_front_latency.ts`.
 * @module
 */
import { encodeFrame, FrameType, headerBlockFrames, PREFACE } from "../cri/h2_frame.ts";
import { AuthorityRewriter } from "../cri/h2_front.ts";
import { type HeaderField, HpackDecoder, HpackEncoder } from "../cri/hpack.ts";

const SOCKET = "/run/containerd/containerd.sock";
const fields: HeaderField[] = [
  { name: ":method", value: "POST" },
  { name: ":scheme", value: "http" },
  { name: ":path", value: "/runtime.v1.RuntimeService/ListPodSandbox" },
  { name: ":authority", value: SOCKET },
  { name: "content-type", value: "application/grpc" },
  { name: "user-agent", value: "grpc-go/1.58.3" },
  { name: "te", value: "trailers" },
  { name: "grpc-timeout", value: "1999937u" },
];

// A client encoder like grpc-go's: the first block is literals with indexing, the next ones table references
// (except grpc-timeout, whose value changes every call).
const client = new HpackEncoder({ huffman: "auto", indexing: "incremental" });
const firstFrame = headerBlockFrames(1, client.encode(fields));
const laterFrame = headerBlockFrames(3, client.encode(fields));
const data1k = encodeFrame(FrameType.DATA, 0, 3, new Uint8Array(1024));

function primed(): AuthorityRewriter {
  const rw = new AuthorityRewriter();
  rw.push(PREFACE);
  rw.push(firstFrame);
  return rw;
}

const rwFirst = primed();
Deno.bench("rewrite: first request block (literals with indexing)", { group: "rewrite" }, () => {
  rwFirst.push(firstFrame);
});
const rwLater = primed();
Deno.bench("rewrite: later request block (dynamic-table references)", { group: "rewrite", baseline: true }, () => {
  rwLater.push(laterFrame);
});
const rwData = primed();
Deno.bench("rewrite: 1 KiB DATA frame (pass-through)", { group: "rewrite" }, () => {
  rwData.push(data1k);
});
const hd = new HpackDecoder();
const he = new HpackEncoder({ huffman: "never" });
const firstBlock = firstFrame.subarray(9);
Deno.bench("hpack: decode + re-encode the first block, no framing", { group: "rewrite" }, () => {
  he.encode(hd.decode(firstBlock).fields);
});
