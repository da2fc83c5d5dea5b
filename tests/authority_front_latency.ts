/**
 * End-to-end latency of unary gRPC calls through the `:authority` front against direct calls to grpc-js, with the
 * client in its own process as kubelet would be: `deno run -A tests/authority_front_latency.ts [calls]`.
 * This process runs grpc-js and the front (as the daemon does); a child process makes interleaved calls with the
 * project's raw client (grpc-go style encoding, raw socket path authority through the front) and with grpc-js's
 * client, and reports percentiles in microseconds.
 * @module
 */
import { startAuthorityFront } from "../cri/h2_front.ts";
import { configureLogging } from "../lib/log.ts";
import { ECHO_PATH, echoClient, startEchoServer } from "./grpc_echo_server.ts";
import { RawH2Client } from "./raw_h2_client.ts";

type Stats = Record<string, { p50: number; p90: number; p99: number; mean: number }>;

function summarize(samples: number[]): { p50: number; p90: number; p99: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 1000);
  return {
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    mean: Math.round(s.reduce((a, b) => a + b, 0) / s.length * 1000),
  };
}

async function client(backendPath: string, publicPath: string, calls: number): Promise<Stats> {
  const body = new Uint8Array(64);
  const rawDirect = await RawH2Client.connect(backendPath);
  const rawFront = await RawH2Client.connect(publicPath);
  const grpcDirect = echoClient(backendPath);
  const grpcFront = echoClient(publicPath);
  const runs: [string, () => Promise<unknown>][] = [
    ["raw client, direct (localhost)", () => rawDirect.call({ authority: "localhost", path: ECHO_PATH, body })],
    ["raw client, front (raw path)", () => rawFront.call({ authority: publicPath, path: ECHO_PATH, body })],
    ["grpc-js client, direct", () => grpcDirect.call(body)],
    ["grpc-js client, front", () => grpcFront.call(body)],
  ];
  const samples = runs.map(() => [] as number[]);
  for (let round = -200; round < calls; round++) {
    // Interleaved, so that drift in machine load hits every variant alike; the first 200 rounds warm up.
    for (const [k, [, run]] of runs.entries()) {
      const t0 = performance.now();
      await run();
      if (round >= 0) samples[k]!.push(performance.now() - t0);
    }
  }
  await rawDirect.close();
  await rawFront.close();
  grpcDirect.close();
  grpcFront.close();
  return Object.fromEntries(runs.map(([name], k) => [name, summarize(samples[k]!)]));
}

if (Deno.args[0] === "client") {
  const [, backendPath, publicPath, calls] = Deno.args;
  console.log(JSON.stringify(await client(backendPath!, publicPath!, Number(calls))));
  Deno.exit(0);
}

configureLogging({ level: "error" });
const calls = Number(Deno.args[0] ?? 2000);
const dir = await Deno.makeTempDir({ prefix: "davit-latency-" });
const backendPath = `${dir}/grpc.sock`;
const publicPath = `${dir}/davit.sock`;
const server = await startEchoServer(backendPath);
const front = await startAuthorityFront({ publicPath, backendPath });
try {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "client", backendPath, publicPath, String(calls)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const out = await child.output();
  if (!out.success) throw new Error("the client process failed");
  const stats: Stats = JSON.parse(new TextDecoder().decode(out.stdout));
  console.log(`${calls} calls each, microseconds per call (client in its own process)`);
  console.table(stats);
  console.log("front counters:", front.stats());
} finally {
  await front.close();
  await server.close();
  await Deno.remove(dir, { recursive: true });
}
