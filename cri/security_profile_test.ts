// Table tests of the seccomp and AppArmor choices, structured fields and the deprecated strings.
import { assertEquals, assertStringIncludes, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { apparmorChoice, seccompChoice } from "./security_profile.ts";

Deno.test("seccomp: the structured field, else seccomp_profile_path", async (t) => {
  const path = "linux.security_context.seccomp_profile_path";
  const cases: [string, Record<string, unknown>, ReturnType<typeof seccompChoice>][] = [
    ["nothing: the default", { seccomp: null, seccomp_profile_path: "" }, { type: "RuntimeDefault" }],
    ["unconfined", { seccomp: null, seccomp_profile_path: "unconfined" }, { type: "Unconfined" }],
    ["runtime/default", { seccomp: null, seccomp_profile_path: "runtime/default" }, { type: "RuntimeDefault" }],
    ["docker/default", { seccomp_profile_path: "docker/default" }, { type: "RuntimeDefault" }],
    ["localhost/<absolute path> (the kubelet's form)", { seccomp_profile_path: "localhost//etc/p.json" }, {
      type: "Localhost",
      path: "/etc/p.json",
      field: path,
    }],
    ["structured wins over the path", {
      seccomp: { profile_type: "RuntimeDefault", localhost_ref: "" },
      seccomp_profile_path: "unconfined",
    }, { type: "RuntimeDefault" }],
    ["structured Unconfined", { seccomp: { profile_type: "Unconfined" } }, { type: "Unconfined" }],
    ["structured Localhost", { seccomp: { profile_type: "Localhost", localhost_ref: "/p.json" } }, {
      type: "Localhost",
      path: "/p.json",
      field: "linux.security_context.seccomp.localhost_ref",
    }],
  ];
  for (const [name, sc, want] of cases) await t.step(name, () => assertEquals(seccompChoice(sc), want));
  await t.step("anything else is an error naming the value", () => {
    for (const bad of ["Unconfined", "default", "localhost/", "localhost/rel.json", "/abs.json"]) {
      const err = assertThrows(() => seccompChoice({ seccomp_profile_path: bad }), InvalidArgument);
      assertStringIncludes(err.message, JSON.stringify(bad));
      assertStringIncludes(err.message, "seccomp_profile_path");
    }
  });
});

Deno.test("AppArmor: the structured field, else apparmor_profile", async (t) => {
  const cases: [string, Record<string, unknown>, ReturnType<typeof apparmorChoice>][] = [
    ["nothing", { apparmor: null, apparmor_profile: "" }, { type: "" }],
    ["unconfined", { apparmor_profile: "unconfined" }, { type: "Unconfined" }],
    ["runtime/default", { apparmor_profile: "runtime/default" }, { type: "RuntimeDefault" }],
    ["localhost/<name>", { apparmor_profile: "localhost/prof" }, { type: "Localhost", name: "prof" }],
    ["structured wins", { apparmor: { profile_type: "Unconfined" }, apparmor_profile: "runtime/default" }, {
      type: "Unconfined",
    }],
    ["structured Localhost", { apparmor: { profile_type: "Localhost", localhost_ref: "p" } }, {
      type: "Localhost",
      name: "p",
    }],
  ];
  for (const [name, sc, want] of cases) await t.step(name, () => assertEquals(apparmorChoice(sc), want));
  await t.step("anything else is an error naming the value", () => {
    for (const bad of ["docker-default", "localhost/"]) {
      const err = assertThrows(() => apparmorChoice({ apparmor_profile: bad }), InvalidArgument);
      assertStringIncludes(err.message, JSON.stringify(bad));
    }
  });
});
