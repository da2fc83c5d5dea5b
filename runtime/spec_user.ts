/**
 * Resolving the user a container runs as from the image's USER or the CRI security context, against the
 * container's own /etc/passwd and /etc/group (passed in as text: this file does no I/O).
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";

/** The resolved user. */
export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  username?: string;
}

/** What decides the user. */
export interface UserRequest {
  /** Image config `User`: `name`, `uid`, `uid:gid`, `name:group`, `uid:group`. */
  imageUser?: string;
  runAsUser?: number;
  runAsUsername?: string;
  runAsGroup?: number;
  supplementalGroups?: number[];
  /** Merge (default): groups listing the user in /etc/group are added; Strict: only the requested ones. */
  policy?: "Merge" | "Strict";
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Parses /etc/passwd lines (pure; malformed lines are skipped). */
export function parsePasswd(text: string | undefined): PasswdEntry[] {
  return (text ?? "").split("\n").flatMap((line) => {
    const f = line.split(":");
    if (f.length < 4 || line.startsWith("#") || !/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!)) return [];
    return [{ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) }];
  });
}

/** Parses /etc/group lines (pure; malformed lines are skipped). */
export function parseGroup(text: string | undefined): GroupEntry[] {
  return (text ?? "").split("\n").flatMap((line) => {
    const f = line.split(":");
    if (f.length < 3 || line.startsWith("#") || !/^\d+$/.test(f[2]!)) return [];
    return [{ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? "").split(",").filter(Boolean) }];
  });
}

/** Resolves the user and groups a container runs as. */
export function resolveUser(req: UserRequest, passwdText?: string, groupText?: string): ResolvedUser {
  const passwd = parsePasswd(passwdText);
  const groups = parseGroup(groupText);
  let uid: number;
  let gid: number | undefined;
  let username: string | undefined;
  const byName = (name: string, what: string) => {
    const e = passwd.find((p) => p.name === name);
    if (!e) throw new InvalidArgument(`${what} "${name}" is not in the container's /etc/passwd`);
    return e;
  };
  if (req.runAsUsername) {
    const e = byName(req.runAsUsername, "run_as_username");
    uid = e.uid;
    gid = e.gid;
    username = e.name;
  } else if (req.runAsUser !== undefined) {
    uid = req.runAsUser;
    const e = passwd.find((p) => p.uid === uid);
    gid = e?.gid;
    username = e?.name;
  } else {
    const spec = (req.imageUser ?? "").trim();
    const [u = "", g] = spec.split(":");
    if (u === "") uid = 0;
    else if (/^\d+$/.test(u)) uid = Number(u);
    else {
      const e = byName(u, "image user");
      uid = e.uid;
      gid = e.gid;
    }
    const e = passwd.find((p) => p.uid === uid);
    username = e?.name ?? (u !== "" && !/^\d+$/.test(u) ? u : undefined);
    gid ??= e?.gid;
    if (g !== undefined && g !== "") {
      if (/^\d+$/.test(g)) gid = Number(g);
      else {
        const ge = groups.find((x) => x.name === g);
        if (!ge) throw new InvalidArgument(`image group "${g}" is not in the container's /etc/group`);
        gid = ge.gid;
      }
    }
  }
  if (req.runAsGroup !== undefined) gid = req.runAsGroup;
  gid ??= 0;
  const extra = new Set<number>(req.supplementalGroups ?? []);
  if ((req.policy ?? "Merge") === "Merge" && username) {
    for (const g of groups) if (g.members.includes(username)) extra.add(g.gid);
  }
  extra.delete(gid);
  const out: ResolvedUser = { uid, gid, additionalGids: [...extra].sort((a, b) => a - b) };
  if (username) out.username = username;
  return out;
}

/**
 * The process arguments Kubernetes documents: `command` replaces the image Entrypoint (and then the image Cmd is
 * not used), `args` replaces Cmd; an empty result is an error naming the container.
 */
export function computeArgs(
  name: string,
  req: { command: string[]; args: string[] },
  image: { entrypoint?: string[] | undefined; cmd?: string[] | undefined },
): string[] {
  let argv: string[];
  if (req.command.length > 0) argv = [...req.command, ...req.args];
  else argv = [...(image.entrypoint ?? []), ...(req.args.length > 0 ? req.args : image.cmd ?? [])];
  if (argv.length === 0) {
    throw new InvalidArgument(`container "${name}": no command specified and the image has no Entrypoint or Cmd`);
  }
  return argv;
}

/** Image env then CRI env (CRI wins per name), with a default PATH when neither sets one. */
export function mergeEnv(
  imageEnv: string[] | undefined,
  criEnv: [string, string][],
  extra: [string, string][] = [],
): string[] {
  const out = new Map<string, string>();
  for (const kv of imageEnv ?? []) {
    const i = kv.indexOf("=");
    if (i > 0) out.set(kv.slice(0, i), kv.slice(i + 1));
  }
  for (const [k, v] of [...extra, ...criEnv]) out.set(k, v);
  if (!out.has("PATH")) out.set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  return [...out].map(([k, v]) => `${k}=${v}`);
}
