/** Tests for davit's configuration: defaults, precedence, validation messages, flags, TOML output and helpers. */
import { parse } from "smol-toml";
import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "../tests/assert.ts";
import {
  type Config,
  ConfigError,
  configToToml,
  defaultConfig,
  describeFlags,
  describeKeys,
  loadConfig,
  parseByteSize,
  parseConfigFlags,
  parseDuration,
  reloadableDiff,
  resolveConfig,
} from "./config.ts";
import { flattenConfig } from "./config_layers.ts";
import { InvalidArgument } from "./errors.ts";

async function tempTree(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "davit-config-test-" });
  for (const [name, text] of Object.entries(files)) {
    const path = `${dir}/${name}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    if (name.endsWith("/")) continue;
    await Deno.writeTextFile(path, text);
  }
  return dir;
}

function resolveOne(text: string): Config {
  return resolveConfig([{ source: "x.toml", text }]);
}

Deno.test("defaultConfig", async (t) => {
  await t.step("holds the documented defaults", () => {
    const c = defaultConfig();
    assertEquals(c.davit.root, "/var/lib/davit");
    assertEquals(c.davit.runroot, "/run/davit");
    assertEquals(c.davit.log_level, "info");
    assertEquals(c.davit.api.listen, "/run/davit/davit.sock");
    assertEquals(c.davit.api.stream_port, "0");
    assertEquals(c.davit.api.grpc_max_send_msg_size, 83886080);
    assertEquals(c.davit.runtime.default_runtime, "runc");
    assertEquals(c.davit.runtime.default_capabilities.length, 9);
    assertEquals(c.davit.runtime.runtimes, {
      runc: { runtime_path: "", runtime_root: "/run/runc", runtime_type: "oci", runtime_args: [] },
      crun: { runtime_path: "", runtime_root: "/run/crun", runtime_type: "oci", runtime_args: [] },
    });
    assertEquals(c.davit.image.pause_image, "registry.k8s.io/pause:3.10");
    assertEquals(c.davit.network.plugin_dirs, ["/opt/cni/bin/", "/usr/lib/cni/"]);
    assertEquals(c.davit.metrics, { enable_metrics: false, metrics_host: "127.0.0.1", metrics_port: 9090 });
  });
  await t.step("returns a fresh object each call", () => {
    const a = defaultConfig();
    a.davit.runtime.default_capabilities.push("SYS_ADMIN");
    assertEquals(defaultConfig().davit.runtime.default_capabilities.length, 9);
  });
  await t.step("passes its own validation", () => {
    assertEquals(resolveConfig([]), defaultConfig());
    assertEquals(resolveOne(""), defaultConfig());
  });
});

Deno.test("loadConfig precedence: file < drop-ins in lexical order < flags", async (t) => {
  const dir = await tempTree({
    "davit.toml": `
[davit]
root = "/srv/davit"
log_level = "debug"
[davit.api]
listen = "/tmp/main.sock"
[davit.runtime.runtimes.runc]
runtime_path = "/usr/local/sbin/runc"
`,
    "conf.d/10-a.toml": `
[davit]
log_level = "warn"
[davit.runtime.runtimes.runc]
runtime_root = "/run/runc-a"
[davit.runtime.runtimes.runsc]
runtime_path = "/usr/bin/runsc"
`,
    "conf.d/20-b.toml": `davit.log_format = "json"\ndavit.log_level = "error"\n`,
    "conf.d/9-c.toml": `[davit]\nlog_level = "trace"\n[davit.network]\nplugin_dirs = ["/a/"]\n`,
    "conf.d/notes.conf": "not toml at all [",
    "conf.d/sub.toml/": "",
  });
  try {
    const configPath = `${dir}/davit.toml`;
    const configDir = `${dir}/conf.d`;
    await t.step("files are read in order and merged key by key", async () => {
      const { config, sources } = await loadConfig({ configPath, configDir });
      assertEquals(sources, [configPath, `${configDir}/10-a.toml`, `${configDir}/20-b.toml`, `${configDir}/9-c.toml`]);
      assertEquals(config.davit.log_level, "trace"); // 9-c sorts last ("9" > "2")
      assertEquals(config.davit.log_format, "json");
      assertEquals(config.davit.root, "/srv/davit"); // untouched by drop-ins
      assertEquals(config.davit.runroot, "/run/davit"); // untouched by anything
      assertEquals(config.davit.api.listen, "/tmp/main.sock");
      assertEquals(config.davit.api.stream_address, "127.0.0.1");
      assertEquals(config.davit.network.plugin_dirs, ["/a/"]);
      assertEquals(config.davit.runtime.runtimes, {
        runc: {
          runtime_path: "/usr/local/sbin/runc",
          runtime_root: "/run/runc-a",
          runtime_type: "oci",
          runtime_args: [],
        },
        crun: { runtime_path: "", runtime_root: "/run/crun", runtime_type: "oci", runtime_args: [] },
        runsc: {
          runtime_path: "/usr/bin/runsc",
          runtime_root: "/run/runsc",
          runtime_type: "oci",
          runtime_args: ["--platform=ptrace"],
        },
      });
    });
    await t.step("flags win over every file", async () => {
      const { overrides, configFiles } = parseConfigFlags([
        "--config",
        configPath,
        `--config-dir=${configDir}`,
        "--log-level=info",
        "--root",
        "/flag/root",
        "--plugin-dirs",
        "/x/,/y/",
      ]);
      const { config } = await loadConfig({ ...configFiles, flags: overrides });
      assertEquals(config.davit.log_level, "info");
      assertEquals(config.davit.root, "/flag/root");
      assertEquals(config.davit.network.plugin_dirs, ["/x/", "/y/"]);
      assertEquals(config.davit.log_format, "json");
    });
    await t.step("a missing default file and directory are fine", async () => {
      // The defaults (/etc/davit/...) are used for whichever of the two is not given.
      const exists = await Deno.stat("/etc/davit").then(() => true, () => false);
      if (exists) return;
      const { config, sources } = await loadConfig({ configDir });
      assertEquals(sources.length, 3);
      assertEquals(config.davit.root, "/var/lib/davit");
      assertEquals((await loadConfig({ configPath })).sources, [configPath]);
    });
    await t.step("an explicitly named missing file is an error", async () => {
      await assertRejects(
        () => loadConfig({ configPath: `${dir}/nope.toml`, configDir }),
        ConfigError,
        `${dir}/nope.toml: cannot read the configuration file: no such file`,
      );
    });
    await t.step("an explicitly named missing drop-in directory is an error", async () => {
      await assertRejects(
        () => loadConfig({ configPath, configDir: `${dir}/nope.d` }),
        ConfigError,
        `${dir}/nope.d: cannot read the drop-in directory: no such directory`,
      );
    });
    await t.step("errors name the drop-in that holds the bad value", async () => {
      await Deno.writeTextFile(`${configDir}/15-bad.toml`, `[davit.runtime]\nlog_size_max = "big"\n`);
      const err = await assertRejects(() => loadConfig({ configPath, configDir }), ConfigError);
      assertEquals(
        err.message,
        `${configDir}/15-bad.toml: key "davit.runtime.log_size_max": expected a negative integer (no limit) or an ` +
          `integer of at least 8192, got string "big"`,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("validation errors name the source, the dotted key and what was expected", async (t) => {
  const cases: { name: string; text: string; message: string | RegExp }[] = [
    {
      name: "invalid TOML",
      text: "[davit]\nroot = \n",
      message: /^x\.toml: invalid TOML at line 2, column \d+: .+/,
    },
    {
      name: "unknown key",
      text: '[davit.api]\nlisen = "/x"\n',
      message: 'x.toml: key "davit.api.lisen": unknown key (expected one of: listen, stream_address, stream_port, ' +
        "stream_idle_timeout, stream_token_ttl, stream_creation_timeout, stream_enable_tls, stream_tls_cert, " +
        "stream_tls_key, grpc_max_send_msg_size, grpc_max_recv_msg_size)",
    },
    {
      name: "unknown table",
      text: '[davit.storage]\ndriver = "overlay"\n',
      message: 'x.toml: key "davit.storage": unknown key (expected one of: root, runroot, log_dir, log_level, ' +
        "log_format, api, runtime, image, network, metrics)",
    },
    {
      name: "unknown key inside a runtime handler",
      text: '[davit.runtime.runtimes.runsc]\nruntime_pth = "/usr/bin/runsc"\n',
      message: 'x.toml: key "davit.runtime.runtimes.runsc.runtime_pth": unknown key (expected one of: ' +
        "runtime_path, runtime_root, runtime_type, runtime_args)",
    },
    {
      name: "a CRI-O file",
      text: '[crio.api]\nlisten = "/x"\n',
      message: 'x.toml: key "crio": unknown key (expected one of: davit); davit reads [davit] tables, rename ' +
        '"crio" to "davit"',
    },
    {
      name: "string for an integer",
      text: '[davit.metrics]\nmetrics_port = "9090"\n',
      message: 'x.toml: key "davit.metrics.metrics_port": expected an integer from 1 to 65535, got string "9090"',
    },
    {
      name: "float for an integer",
      text: "[davit.metrics]\nmetrics_port = 9090.0\n",
      message: 'x.toml: key "davit.metrics.metrics_port": expected an integer from 1 to 65535, got float 9090',
    },
    {
      name: "integer out of range",
      text: "[davit.runtime]\nlog_size_max = 100\n",
      message: 'x.toml: key "davit.runtime.log_size_max": expected a negative integer (no limit) or an integer of ' +
        "at least 8192, got integer 100",
    },
    {
      name: "bad enum value",
      text: '[davit]\nlog_level = "loud"\n',
      message: 'x.toml: key "davit.log_level": expected one of "trace", "debug", "info", "warn", "error", "fatal", ' +
        'got string "loud"',
    },
    {
      name: "bad cgroup manager",
      text: '[davit.runtime]\ncgroup_manager = "foo"\n',
      message: 'x.toml: key "davit.runtime.cgroup_manager": expected one of "cgroupfs", "systemd", got string "foo"',
    },
    {
      name: "boolean as a string",
      text: '[davit.metrics]\nenable_metrics = "yes"\n',
      message: 'x.toml: key "davit.metrics.enable_metrics": expected a boolean (true or false), got string "yes"',
    },
    {
      name: "bad duration",
      text: '[davit.api]\nstream_idle_timeout = "4 hours"\n',
      message: 'x.toml: key "davit.api.stream_idle_timeout": expected a duration such as "90s", "1m30s" or "4h", got ' +
        'string "4 hours"',
    },
    {
      name: "negative duration",
      text: '[davit.image]\npull_progress_timeout = "-1s"\n',
      message: 'x.toml: key "davit.image.pull_progress_timeout": expected a duration that is not negative, got ' +
        'string "-1s"',
    },
    {
      name: "bad byte size",
      text: '[davit.runtime]\nshm_size = "64MB"\n',
      message: 'x.toml: key "davit.runtime.shm_size": expected a byte size such as "64Mi", "1G" or "65536", got ' +
        'string "64MB"',
    },
    {
      name: "port number as an integer",
      text: "[davit.api]\nstream_port = 10010\n",
      message: 'x.toml: key "davit.api.stream_port": expected a port number from 0 to 65535 written as a string, ' +
        'such as "10010", got integer 10010',
    },
    {
      name: "relative path",
      text: '[davit]\nroot = "var/lib/davit"\n',
      message: 'x.toml: key "davit.root": expected an absolute path, got string "var/lib/davit"',
    },
    {
      name: "bad list item",
      text: '[davit.network]\nplugin_dirs = ["/opt/cni/bin", "opt/cni"]\n',
      message: 'x.toml: key "davit.network.plugin_dirs": expected an array of absolute paths, got string "opt/cni" ' +
        "at index 1",
    },
    {
      name: "string for a list",
      text: '[davit.image]\npinned_images = "pause"\n',
      message: 'x.toml: key "davit.image.pinned_images": expected an array of non-empty strings, got string "pause"',
    },
    {
      name: "value for a table",
      text: "[davit]\napi = 3\n",
      message: 'x.toml: key "davit.api": expected a table, got integer 3',
    },
    {
      name: "bad handler name",
      text: "[davit.runtime.runtimes.Kata_QEMU]\n",
      message: 'x.toml: key "davit.runtime.runtimes.Kata_QEMU": expected a runtime handler name of lowercase ' +
        `letters, digits and '-' (at most 63 characters), got "Kata_QEMU"`,
    },
    {
      name: "unsupported runtime type",
      text: '[davit.runtime.runtimes.kata]\nruntime_type = "vm"\n',
      message: 'x.toml: key "davit.runtime.runtimes.kata.runtime_type": expected one of "oci", got string "vm"',
    },
    {
      name: "default runtime without a handler table",
      text: '[davit.runtime]\ndefault_runtime = "kata"\n',
      message: 'x.toml: key "davit.runtime.default_runtime": expected the name of a configured runtime handler ' +
        '(one of: crun, runc), got string "kata"',
    },
    {
      name: "TLS without a certificate",
      text: '[davit.api]\nstream_enable_tls = true\nstream_tls_key = "/etc/k.pem"\n',
      message: 'x.toml: key "davit.api.stream_tls_cert": expected a path because davit.api.stream_enable_tls is ' +
        'true, got string ""',
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const err = assertThrows(() => resolveOne(c.text), ConfigError);
      assert(err instanceof InvalidArgument);
      if (typeof c.message === "string") assertEquals(err.message, c.message);
      else assertMatch(err.message, c.message);
    });
  }
  await t.step("accepted edge values", () => {
    const c = resolveOne(`
[davit.runtime]
log_size_max = 8192
default_capabilities = ["CAP_CHOWN", "KILL"]
default_runtime = "kata"
[davit.runtime.runtimes.kata]
[davit.api]
stream_port = "08080"
stream_idle_timeout = "0s"
`);
    assertEquals(c.davit.runtime.log_size_max, 8192);
    assertEquals(c.davit.runtime.default_capabilities, ["CHOWN", "KILL"]);
    assertEquals(c.davit.runtime.runtimes.kata, {
      runtime_path: "",
      runtime_root: "/run/kata",
      runtime_type: "oci",
      runtime_args: [],
    });
    assertEquals(c.davit.api.stream_port, "8080");
  });
  await t.step("a handler defined in a later drop-in satisfies default_runtime", () => {
    const c = resolveConfig([
      { source: "a.toml", text: 'davit.runtime.default_runtime = "runsc"' },
      { source: "b.toml", text: '[davit.runtime.runtimes.runsc]\nruntime_path = "/usr/bin/runsc"' },
    ]);
    assertEquals(c.davit.runtime.default_runtime, "runsc");
  });
  await t.step("rules spanning keys name the source that set the key", () => {
    assertThrows(
      () =>
        resolveConfig(
          [{ source: "a.toml", text: "" }],
          { "davit.runtime.default_runtime": "kata" },
          (k) => `flag ${k}`,
        ),
      ConfigError,
      'flag davit.runtime.default_runtime: key "davit.runtime.default_runtime"',
    );
  });
  await t.step("unknown override key", () => {
    assertThrows(() => resolveConfig([], { "davit.nope": 1 }), ConfigError, 'overrides: key "davit.nope": unknown key');
  });
});

Deno.test("parseConfigFlags", async (t) => {
  await t.step("both forms, every kind, and the rest", () => {
    const p = parseConfigFlags([
      "serve",
      "--listen",
      "/tmp/d.sock",
      "--stream-port=10010",
      "--metrics-port",
      "9191",
      "--enable-metrics",
      "--plugin-dirs=/a/, /b/,",
      "--config=/tmp/davit.toml",
      "--config-dir",
      "/tmp/davit.d",
      "extra",
      "--",
      "--not-a-flag",
    ]);
    assertEquals(p.overrides, {
      "davit.api.listen": "/tmp/d.sock",
      "davit.api.stream_port": "10010",
      "davit.metrics.metrics_port": 9191,
      "davit.metrics.enable_metrics": true,
      "davit.network.plugin_dirs": ["/a/", "/b/"],
    });
    assertEquals(p.configFiles, { configPath: "/tmp/davit.toml", configDir: "/tmp/davit.d" });
    assertEquals(p.rest, ["serve", "extra", "--not-a-flag"]);
  });
  await t.step("a boolean takes =false and does not swallow the next argument", () => {
    const p = parseConfigFlags(["--enable-metrics=false", "--enable-metrics", "x"]);
    assertEquals(p.overrides, { "davit.metrics.enable_metrics": true });
    assertEquals(p.rest, ["x"]);
    assertEquals(parseConfigFlags(["--enable-metrics=false"]).overrides, { "davit.metrics.enable_metrics": false });
  });
  await t.step("every listed flag parses", () => {
    const args = [
      "--root=/r",
      "--runroot=/rr",
      "--log-dir=/l",
      "--log-level=debug",
      "--log-format=json",
      "--default-runtime=crun",
      "--pause-image=example.com/pause:1",
      "--network-dir=/n",
      "--stream-address=0.0.0.0",
    ];
    assertEquals(Object.keys(parseConfigFlags(args).overrides).length, args.length);
  });
  await t.step("help flags are left for the caller", () => {
    assertEquals(parseConfigFlags(["-h", "--help"]).rest, ["-h", "--help"]);
  });
  const errors: { args: string[]; message: string }[] = [
    { args: ["--lissen", "/x"], message: 'unknown flag "--lissen" (see --help)' },
    { args: ["-v"], message: 'unknown flag "-v" (see --help)' },
    { args: ["--listen"], message: "flag --listen needs a value" },
    { args: ["--listen", "--root", "/r"], message: "flag --listen needs a value" },
    { args: ["--config="], message: "flag --config needs a value" },
    {
      args: ["--log-level", "loud"],
      message: 'flag --log-level: key "davit.log_level": expected one of "trace", "debug", "info", "warn", ' +
        '"error", "fatal", got string "loud"',
    },
    {
      args: ["--metrics-port=abc"],
      message: 'flag --metrics-port: key "davit.metrics.metrics_port": expected an integer from 1 to 65535, got ' +
        'string "abc"',
    },
    {
      args: ["--enable-metrics=yes"],
      message: 'flag --enable-metrics: key "davit.metrics.enable_metrics": expected a boolean (true or false), got ' +
        'string "yes"',
    },
  ];
  for (const c of errors) {
    await t.step(`rejects ${c.args.join(" ")}`, () => {
      const err = assertThrows(() => parseConfigFlags(c.args), InvalidArgument);
      assertEquals(err.message, c.message);
    });
  }
  await t.step("describeFlags lists every flag with its default", () => {
    const text = describeFlags();
    assertMatch(text, /--listen PATH +CRI socket path \(default \/run\/davit\/davit\.sock\)/);
    assertMatch(text, /--plugin-dirs DIRS .*\(default \/opt\/cni\/bin\/,\/usr\/lib\/cni\/\)/);
    assertMatch(text, /--enable-metrics\[=BOOL\]/);
  });
});

Deno.test("configToToml round-trips", async (t) => {
  const modified = defaultConfig();
  modified.davit.root = '/srv/da"v\\it\u00e9';
  modified.davit.image.pause_image = "example.com/pause:3.10\twith\u007fcontrol\nchars";
  modified.davit.runtime.default_sysctls = ["net.ipv4.ping_group_range=0 2147483647"];
  modified.davit.runtime.runtimes.runsc = {
    runtime_path: "/usr/bin/runsc",
    runtime_root: "/run/gvisor",
    runtime_type: "oci",
    runtime_args: ["--platform=ptrace", "--network=none"],
  };
  modified.davit.runtime.default_runtime = "runsc";
  modified.davit.image.pinned_images = Array.from({ length: 12 }, (_, i) => `registry.example.com/app-${i}:latest`);
  modified.davit.api.stream_enable_tls = true;
  modified.davit.api.stream_tls_cert = "/etc/davit/cert.pem";
  modified.davit.api.stream_tls_key = "/etc/davit/key.pem";
  for (const [name, config] of [["defaults", defaultConfig()], ["modified", modified]] as const) {
    for (const comments of [true, false]) {
      await t.step(`${name}, comments ${comments}`, () => {
        const text = configToToml(config, { comments });
        assertEquals(resolveOne(text), config);
        assert(text.startsWith("# davit configuration"));
        parse(text); // plain TOML, too
      });
    }
  }
  await t.step("keys appear under their tables with descriptions", () => {
    const text = configToToml(defaultConfig());
    assertMatch(text, /\n\[davit\.runtime\.runtimes\.runc\]\n# [^\n]+\n(# [^\n]+\n)*runtime_path = ""\n/);
    assertMatch(text, /\n\[davit\.api\]\n/);
    assertMatch(text, /\nlog_size_max = -1\n/);
  });
});

Deno.test("parseDuration", async (t) => {
  const ok: [string, number][] = [
    ["0", 0],
    ["0s", 0],
    ["90s", 90_000],
    ["1m30s", 90_000],
    ["4h", 14_400_000],
    ["1.5h", 5_400_000],
    ["2h45m", 9_900_000],
    ["300ms", 300],
    [".5s", 500],
    ["1.s", 1000],
    ["-2s", -2000],
    ["+5s", 5000],
    ["1us", 0.001],
    ["1µs", 0.001],
    ["1μs", 0.001],
    ["1000000ns", 1],
  ];
  for (const [s, ms] of ok) {
    await t.step(`"${s}" = ${ms} ms`, () => assertEquals(parseDuration(s), ms));
  }
  for (const s of ["", "10", "s", "1x", "1 s", "1h ", "-", ".s", "1e3s", "1h-2m", "4 hours", "1d"]) {
    await t.step(`rejects "${s}"`, () => {
      assertThrows(() => parseDuration(s), InvalidArgument, `invalid duration ${JSON.stringify(s)}`);
    });
  }
});

Deno.test("parseByteSize", async (t) => {
  const ok: [string, number][] = [
    ["65536", 65536],
    ["64Mi", 67_108_864],
    ["1Gi", 1_073_741_824],
    ["1.5G", 1_500_000_000],
    ["2k", 2000],
    ["0.5Ki", 512],
  ];
  for (const [s, n] of ok) await t.step(`"${s}" = ${n}`, () => assertEquals(parseByteSize(s), n));
  for (const s of ["", "64MB", "1.5", "-1", "Mi", "0.3Ki", "64 Mi"]) {
    await t.step(`rejects "${s}"`, () => void assertThrows(() => parseByteSize(s), InvalidArgument));
  }
});

Deno.test("describeKeys", async (t) => {
  const keys = describeKeys();
  const defaults = defaultConfig();
  const flat = flattenConfig(defaults);
  await t.step("every entry's default matches defaultConfig", () => {
    for (const k of keys) {
      if (!k.key.includes("<handler>")) {
        assert(flat.has(k.key), `${k.key} is not in defaultConfig`);
        assertEquals(k.default, flat.get(k.key), k.key);
        continue;
      }
      for (const name of Object.keys(defaults.davit.runtime.runtimes)) {
        const real = k.key.replace("<handler>", name);
        const expected = typeof k.default === "string" ? k.default.replace("<handler>", name) : k.default;
        assertEquals(expected, flat.get(real), real);
      }
    }
  });
  await t.step("every key of defaultConfig is described", () => {
    const described = new Set(keys.map((k) => k.key));
    for (const key of flat.keys()) {
      assert(
        described.has(key.replace(/^davit\.runtime\.runtimes\.[^.]+\./, "davit.runtime.runtimes.<handler>.")),
        key,
      );
    }
  });
  await t.step("descriptions are single sentences with a type", () => {
    for (const k of keys) {
      assert(k.type !== "", k.key);
      assertMatch(k.description, /^\S.*\.$/, k.key);
      assert(!/\.\s+[A-Z]/.test(k.description), `${k.key}: more than one sentence`);
    }
  });
  await t.step("only the log settings are reloadable", () => {
    assertEquals(keys.filter((k) => k.reloadable).map((k) => k.key), ["davit.log_level", "davit.log_format"]);
  });
});

Deno.test("reloadableDiff", async (t) => {
  await t.step("nothing changed", () => assertEquals(reloadableDiff(defaultConfig(), defaultConfig()), []));
  await t.step("lists changes in file order, handlers included", () => {
    const next = defaultConfig();
    next.davit.log_level = "debug";
    next.davit.root = "/srv/davit";
    next.davit.network.plugin_dirs = ["/opt/cni/bin/"];
    next.davit.runtime.runtimes.runsc = {
      runtime_path: "/usr/bin/runsc",
      runtime_root: "/run/runsc",
      runtime_type: "oci",
      runtime_args: [],
    };
    delete (next.davit.runtime.runtimes as Record<string, unknown>).crun;
    assertEquals(reloadableDiff(defaultConfig(), next), [
      { key: "davit.root", from: "/var/lib/davit", to: "/srv/davit", reloadable: false },
      { key: "davit.log_level", from: "info", to: "debug", reloadable: true },
      { key: "davit.runtime.runtimes.crun.runtime_path", from: "", to: undefined, reloadable: false },
      { key: "davit.runtime.runtimes.crun.runtime_root", from: "/run/crun", to: undefined, reloadable: false },
      { key: "davit.runtime.runtimes.crun.runtime_type", from: "oci", to: undefined, reloadable: false },
      { key: "davit.runtime.runtimes.crun.runtime_args", from: [], to: undefined, reloadable: false },
      { key: "davit.runtime.runtimes.runsc.runtime_path", from: undefined, to: "/usr/bin/runsc", reloadable: false },
      { key: "davit.runtime.runtimes.runsc.runtime_root", from: undefined, to: "/run/runsc", reloadable: false },
      { key: "davit.runtime.runtimes.runsc.runtime_type", from: undefined, to: "oci", reloadable: false },
      { key: "davit.runtime.runtimes.runsc.runtime_args", from: undefined, to: [], reloadable: false },
      {
        key: "davit.network.plugin_dirs",
        from: ["/opt/cni/bin/", "/usr/lib/cni/"],
        to: ["/opt/cni/bin/"],
        reloadable: false,
      },
    ]);
  });
});
