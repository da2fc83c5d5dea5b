/** Tests for interpreting a plugin's exit: results, error results, timeouts, garbage. */
import { assert, assertEquals, assertStringIncludes, assertThrows } from "../tests/assert.ts";
import { CniPluginError, interpretOutput, type PluginContext, type PluginOutput } from "./cni_errors.ts";

const CTX: PluginContext = { plugin: "bridge", command: "ADD", network: "podnet", containerId: "c1", timeoutMs: 1500 };

function out(o: Partial<PluginOutput>): PluginOutput {
  return { code: 0, signal: null, stdout: "", stderr: "", timedOut: false, ...o };
}

Deno.test("interpretOutput", async (t) => {
  await t.step("success returns the JSON; empty output is undefined", () => {
    assertEquals(interpretOutput(out({ stdout: '{"cniVersion":"1.0.0"}\n' }), CTX), { cniVersion: "1.0.0" });
    assertEquals(interpretOutput(out({}), CTX), undefined);
  });
  const failures: { name: string; o: Partial<PluginOutput>; kind: string; code?: number; includes: string[] }[] = [
    {
      name: "an error result names plugin, its message, details and code",
      o: { code: 1, stdout: '{"cniVersion":"1.0.0","code":7,"msg":"Invalid Configuration","details":"too small"}' },
      kind: "Internal",
      code: 7,
      includes: [
        'CNI plugin "bridge" ADD on network "podnet" for container "c1" failed',
        "Invalid Configuration: too small",
        "code 7, invalid network config",
      ],
    },
    {
      name: "an error result on stderr",
      o: { code: 1, stderr: 'some log\n{"code":100,"msg":"no luck"}' },
      kind: "Internal",
      code: 100,
      includes: ["no luck (CNI error code 100)"],
    },
    {
      name: "try again later is Unavailable",
      o: { code: 1, stdout: '{"code":11,"msg":"busy"}' },
      kind: "Unavailable",
      code: 11,
      includes: ["busy", "try again later"],
    },
    {
      name: "non-zero exit without JSON",
      o: { code: 3, stdout: "oops", stderr: "panic: x" },
      kind: "Internal",
      includes: ["exited with code 3 without a CNI error result", 'stdout: "oops"', 'stderr: "panic: x"'],
    },
    {
      name: "killed by a signal",
      o: { code: 139, signal: "SIGSEGV" },
      kind: "Internal",
      includes: ["was killed by SIGSEGV"],
    },
    {
      name: "a timeout",
      o: { code: 137, signal: "SIGKILL", timedOut: true, stderr: "waiting" },
      kind: "DeadlineExceeded",
      includes: ["did not finish within 1500 ms and was killed", 'stderr: "waiting"'],
    },
    {
      name: "garbage on success",
      o: { stdout: "hello, world" },
      kind: "Internal",
      includes: ['succeeded but printed output that is not JSON: "hello, world"'],
    },
  ];
  for (const f of failures) {
    await t.step(f.name, () => {
      const err = assertThrows(() => interpretOutput(out(f.o), CTX), CniPluginError) as CniPluginError;
      assertEquals(err.kind, f.kind);
      assertEquals(err.code, f.code);
      assertEquals([err.plugin, err.command, err.network], ["bridge", "ADD", "podnet"]);
      for (const s of f.includes) assertStringIncludes(err.message, s);
      assert(err.msg.length > 0);
    });
  }
});
