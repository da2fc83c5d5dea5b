// Table tests of CreateContainer config validation: the security context's user fields.
import { assertEquals, assertStringIncludes, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { validateContainerConfig } from "./container_config.ts";

const config = (security_context: Record<string, unknown>) => ({
  metadata: { name: "c" },
  image: { image: "busybox" },
  linux: { security_context },
});

Deno.test("run_as_group needs run_as_user or run_as_username", async (t) => {
  const ok: [string, Record<string, unknown>][] = [
    ["neither", { run_as_user: null, run_as_group: null, run_as_username: "" }],
    ["run_as_user alone", { run_as_user: { value: 5 } }],
    ["with run_as_user", { run_as_user: { value: 5 }, run_as_group: { value: 6 } }],
    ["with run_as_user 0", { run_as_user: { value: 0 }, run_as_group: { value: 6 } }],
    ["with run_as_username", { run_as_username: "app", run_as_group: { value: 6 } }],
  ];
  for (const [name, sc] of ok) {
    await t.step(`accepted: ${name}`, () => assertEquals(validateContainerConfig(config(sc)).name, "c"));
  }
  for (const sc of [{ run_as_group: { value: 6 } }, { run_as_group: { value: 0 }, run_as_username: "" }]) {
    await t.step(`refused: ${JSON.stringify(sc)}`, () => {
      const err = assertThrows(() => validateContainerConfig(config(sc)), InvalidArgument);
      for (const f of ["run_as_group", "run_as_user", "run_as_username"]) assertStringIncludes(err.message, f);
    });
  }
});
