/**
 * Registry credentials and authentication, without network I/O: containers-auth.json(5) / docker config.json
 * lookup, `WWW-Authenticate` challenge parsing (RFC 7235 section 2.1, several challenges in one header), the
 * distribution token request (docs "token authentication": GET with Basic credentials, or the OAuth2 refresh-token
 * POST when an identity token is held), and redaction of secrets from error text.
 *
 * Credential helpers (`credHelpers`, `credsStore`) are not run: an entry that only names a helper yields no
 * credentials.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";

/** Credentials for one registry; any combination the CRI AuthConfig can carry. */
export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token, exchanged at the token realm by POST. */
  identityToken?: string;
  /** A bearer token sent to the registry as is. */
  registryToken?: string;
}

/** A parsed auth file: normalised key (`host[:port]` or `host[:port]/namespace...`) -> credentials. */
export interface AuthFile {
  auths: Record<string, Credentials>;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** Decodes an `auth` field (base64 of `user:password`); throws InvalidArgument naming `where`, never the value. */
export function decodeAuthField(auth: string, where = "auth"): { username: string; password: string } {
  let text: string;
  try {
    text = dec.decode(Uint8Array.fromBase64(auth.trim()));
  } catch {
    throw new InvalidArgument(`${where}: "auth" is not valid base64 of user:password`);
  }
  const colon = text.indexOf(":");
  if (colon < 0) throw new InvalidArgument(`${where}: "auth" does not decode to user:password`);
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Encodes `user:password` as the `auth` field and Basic credentials do. */
export function encodeBasic(username: string, password: string): string {
  return enc.encode(`${username}:${password}`).toBase64();
}

/** Builds Credentials from CRI-AuthConfig-like fields, decoding `auth` when username/password are absent. */
export function credentialsFromAuthConfig(
  cfg: { username?: string; password?: string; auth?: string; identityToken?: string; registryToken?: string },
): Credentials | undefined {
  const out: Credentials = {};
  if (cfg.username || cfg.password) {
    out.username = cfg.username ?? "";
    out.password = cfg.password ?? "";
  } else if (cfg.auth) {
    Object.assign(out, decodeAuthField(cfg.auth, "AuthConfig"));
  }
  if (cfg.identityToken) out.identityToken = cfg.identityToken;
  if (cfg.registryToken) out.registryToken = cfg.registryToken;
  return Object.keys(out).length === 0 ? undefined : out;
}

const DOCKER_HUB_ALIASES = ["index.docker.io", "registry-1.docker.io"];

/**
 * The normalised form of an auth file key: a key written as a URL (`https://index.docker.io/v1/`, docker's legacy
 * form) keeps only its host; Docker Hub's other host names become `docker.io`.
 */
export function normalizeAuthKey(key: string): { key: string; legacy: boolean } {
  let k = key;
  let legacy = false;
  const scheme = /^https?:\/\//.exec(k);
  if (scheme) {
    legacy = true;
    k = k.slice(scheme[0].length);
    const slash = k.indexOf("/");
    if (slash >= 0) k = k.slice(0, slash);
  }
  const slash = k.indexOf("/");
  const host = slash < 0 ? k : k.slice(0, slash);
  if (DOCKER_HUB_ALIASES.includes(host)) k = "docker.io" + (slash < 0 ? "" : k.slice(slash));
  return { key: k, legacy };
}

/** Parses an auth file's text; `source` names it in errors. Secrets never appear in error messages. */
export function parseAuthFile(text: string, source: string): AuthFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new InvalidArgument(`${source}: not valid JSON`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new InvalidArgument(`${source}: not a JSON object`);
  }
  const auths = (doc as Record<string, unknown>).auths ?? {};
  if (typeof auths !== "object" || auths === null || Array.isArray(auths)) {
    throw new InvalidArgument(`${source}: "auths" is not an object`);
  }
  const out: AuthFile = { auths: {} };
  const fromLegacy = new Set<string>();
  for (const [rawKey, entry] of Object.entries(auths)) {
    const where = `${source}: auths["${rawKey}"]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new InvalidArgument(`${where}: not an object`);
    }
    const e = entry as Record<string, unknown>;
    const creds: Credentials = {};
    if (e.auth !== undefined && e.auth !== "") {
      if (typeof e.auth !== "string") throw new InvalidArgument(`${where}: "auth" is not a string`);
      Object.assign(creds, decodeAuthField(e.auth, where));
    }
    if (e.identitytoken !== undefined && e.identitytoken !== "") {
      if (typeof e.identitytoken !== "string") throw new InvalidArgument(`${where}: "identitytoken" is not a string`);
      creds.identityToken = e.identitytoken;
    }
    if (Object.keys(creds).length === 0) continue; // a helper-only entry such as `"localhost:5001": {}`
    const { key, legacy } = normalizeAuthKey(rawKey);
    // An exact modern key wins over a legacy URL key normalising to the same name.
    if (out.auths[key] !== undefined && legacy && !fromLegacy.has(key)) continue;
    out.auths[key] = creds;
    if (legacy) fromLegacy.add(key);
    else fromLegacy.delete(key);
  }
  return out;
}

/**
 * Finds credentials for `target`, a registry host (`quay.io`) or a repository (`quay.io/ns/app`): the most
 * specific key first (`quay.io/ns/app`, `quay.io/ns`, `quay.io`), as containers-auth.json(5) specifies.
 */
export function findCredentials(file: AuthFile, target: string): Credentials | undefined {
  let name = normalizeAuthKey(target).key;
  for (;;) {
    const hit = file.auths[name];
    if (hit !== undefined) return hit;
    const slash = name.lastIndexOf("/");
    if (slash < 0) return undefined;
    name = name.slice(0, slash);
  }
}

/** One challenge of a `WWW-Authenticate` header. */
export interface AuthChallenge {
  /** Lower-cased scheme: `bearer`, `basic`, ... */
  scheme: string;
  /** Parameters with lower-cased names and unescaped values. */
  params: Record<string, string>;
  /** The token68 form (`Negotiate abc==`), when used instead of parameters. */
  token68?: string;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*/;

/** Parses a `WWW-Authenticate` value into its challenges; malformed trailing text ends the list. */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  let i = 0;
  const n = header.length;
  const ws = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < n && TOKEN_CHAR.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  const quoted = (): string | undefined => {
    let s = "";
    i++; // opening quote
    while (i < n) {
      const c = header[i]!;
      if (c === "\\" && i + 1 < n) {
        s += header[i + 1];
        i += 2;
      } else if (c === '"') {
        i++;
        return s;
      } else {
        s += c;
        i++;
      }
    }
    return undefined; // unterminated
  };
  // True when the text at `i` starts a `name=` parameter rather than a new challenge.
  const atParam = (): boolean => {
    const save = i;
    const name = token();
    ws();
    const yes = name !== "" && header[i] === "=";
    i = save;
    return yes;
  };
  for (;;) {
    while (i < n && (header[i] === "," || header[i] === " " || header[i] === "\t")) i++;
    if (i >= n) break;
    const scheme = token();
    if (scheme === "") break;
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    ws();
    // token68 only when it is the whole challenge (`Basic abc=` is a token68; `Basic realm=x` a parameter).
    const t68 = TOKEN68.exec(header.slice(i));
    if (t68) {
      const after = i + t68[0].length;
      let j = after;
      while (j < n && (header[j] === " " || header[j] === "\t")) j++;
      if (j >= n || header[j] === ",") {
        challenge.token68 = t68[0];
        i = after;
        continue;
      }
    }
    while (i < n && atParam()) {
      const name = token().toLowerCase();
      ws();
      i++; // "="
      ws();
      let value: string | undefined;
      if (header[i] === '"') value = quoted();
      else {
        // RFC 7235 wants a token here; registries also send bare URLs, so read up to the next separator.
        const start = i;
        while (i < n && header[i] !== "," && header[i] !== " " && header[i] !== "\t") i++;
        value = header.slice(start, i);
      }
      if (value === undefined) return out;
      challenge.params[name] = value;
      ws();
      if (header[i] !== ",") break;
      i++;
      ws();
    }
  }
  return out;
}

/** The distribution scope for pulling (or other actions on) a repository: `repository:<repo>:pull`. */
export function repositoryScope(repository: string, actions: string[] = ["pull"]): string {
  return `repository:${repository}:${actions.join(",")}`;
}

/** The GET token URL for a Bearer challenge: `realm?service=...&scope=...` (one `scope` per entry). */
export function tokenRequestUrl(challenge: AuthChallenge, scopes: string[]): string {
  const realm = challenge.params.realm;
  if (realm === undefined || realm === "") throw new InvalidArgument("Bearer challenge has no realm");
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new InvalidArgument(`Bearer challenge realm "${realm}" is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new InvalidArgument(`Bearer challenge realm "${realm}" is not an http(s) URL`);
  }
  if (challenge.params.service !== undefined) url.searchParams.append("service", challenge.params.service);
  for (const scope of scopes) url.searchParams.append("scope", scope);
  return url.href;
}

/** A token request to send: the client adds nothing but a timeout. */
export interface TokenRequest {
  method: "GET" | "POST";
  url: string;
  headers: Record<string, string>;
  body?: string;
}

/**
 * The request fetching a bearer token for `challenge`: an OAuth2 `refresh_token` POST when an identity token is
 * held, otherwise a GET, with Basic credentials when a username/password is known, anonymous otherwise.
 */
export function tokenRequest(
  challenge: AuthChallenge,
  opts: { scopes: string[]; credentials?: Credentials | undefined; clientId?: string },
): TokenRequest {
  const creds = opts.credentials;
  if (creds?.identityToken) {
    const url = tokenRequestUrl({ ...challenge, params: { realm: challenge.params.realm ?? "" } }, []);
    const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: creds.identityToken });
    if (challenge.params.service !== undefined) form.set("service", challenge.params.service);
    form.set("client_id", opts.clientId ?? "davit");
    if (opts.scopes.length > 0) form.set("scope", opts.scopes.join(" "));
    return {
      method: "POST",
      url,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: form.toString(),
    };
  }
  const headers: Record<string, string> = {};
  if (creds?.username !== undefined && creds.username !== "") {
    headers.authorization = `Basic ${encodeBasic(creds.username, creds.password ?? "")}`;
  }
  return { method: "GET", url: tokenRequestUrl(challenge, opts.scopes), headers };
}

/** A token endpoint's answer. */
export interface TokenResponse {
  token: string;
  /** Lifetime in seconds (60 when the server does not say, per the distribution token spec). */
  expiresIn: number;
  issuedAt?: string;
  /** A refresh token returned by the OAuth2 flow. */
  refreshToken?: string;
}

/** Parses a token endpoint's JSON answer (`token` or `access_token`). */
export function parseTokenResponse(json: unknown): TokenResponse {
  if (typeof json !== "object" || json === null) throw new InvalidArgument("token response is not a JSON object");
  const j = json as Record<string, unknown>;
  const token = typeof j.token === "string" && j.token !== "" ? j.token : j.access_token;
  if (typeof token !== "string" || token === "") throw new InvalidArgument("token response has no token");
  const out: TokenResponse = {
    token,
    expiresIn: typeof j.expires_in === "number" && j.expires_in > 0 ? j.expires_in : 60,
  };
  if (typeof j.issued_at === "string") out.issuedAt = j.issued_at;
  if (typeof j.refresh_token === "string" && j.refresh_token !== "") out.refreshToken = j.refresh_token;
  return out;
}

/**
 * Removes every secret of `creds` (password, tokens, and their Basic and URL-encoded forms) from `text`, for error
 * messages that may quote a URL, a header or a server's answer. The username is not a secret and stays.
 */
export function redactCredentials(text: string, creds: Credentials | Credentials[] | undefined): string {
  const list = creds === undefined ? [] : Array.isArray(creds) ? creds : [creds];
  const secrets = new Set<string>();
  for (const c of list) {
    for (const s of [c.password, c.identityToken, c.registryToken]) {
      if (s === undefined || s === "") continue;
      secrets.add(s);
      secrets.add(encodeURIComponent(s));
      secrets.add(new URLSearchParams({ s }).toString().slice(2));
    }
    if (c.password) secrets.add(encodeBasic(c.username ?? "", c.password));
  }
  // Longest first, so a secret containing another is removed whole.
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join("[REDACTED]");
  return out;
}
