/**
 * Where credentials come from, first hit wins: explicit option → VMIMG_REGISTRY_AUTH → Docker's config
 * (credHelpers, auths, credsStore) → anonymous. No HTTP here. Secrets never go into messages.
 *
 * VMIMG_REGISTRY_AUTH is a JSON object mapping a registry host to one of:
 *   {"username": "...", "password": "..."}   basic credentials (exchanged for a bearer token when challenged)
 *   {"identitytoken": "..."}                 an OAuth2 refresh token, as `identitytoken` in Docker's config.json
 *   {"registrytoken": "..."}                 a bearer token sent as-is, as `registrytoken` in Docker's config.json
 *   {"token": "..."}                         shorthand for identitytoken (kept for compatibility)
 * The camelCase spellings `identityToken` / `registryToken` are accepted too.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, VmimgError } from '../errors.js';
import { isDockerHub } from './names.js';

/** One credential. `identityToken` is an OAuth2 refresh token; `registryToken` a bearer sent as-is. */
export interface Credential {
  readonly username?: string;
  readonly password?: string;
  readonly identityToken?: string;
  readonly registryToken?: string;
  /** Where it came from (`option`, `env`, `docker-config`, `helper:NAME`), for diagnostics. */
  readonly source: string;
}

export type CredentialInput = Omit<Credential, 'source'> & { readonly token?: string };

export interface CredentialOptions {
  /** Explicit credentials per registry name (what `--username/--password-stdin` give). */
  readonly credentials?: Readonly<Record<string, CredentialInput>>;
  readonly env?: NodeJS.ProcessEnv;
  /** Directory holding config.json (default $DOCKER_CONFIG or ~/.docker). */
  readonly dockerConfigDir?: string;
  /** Kill a credential helper after this long (default 30 s). */
  readonly helperTimeoutMs?: number;
}

export type CredentialLookup = ((registryOrHost: string) => Promise<Credential | undefined>) & {
  /**
   * The credential helpers (`docker-credential-NAME`) running for this lookup right now: what a stalled
   * request is waiting on while a helper hangs (the stall notice names it, not the registry).
   */
  readonly running?: () => readonly string[];
};

const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

/** A lookup function walking the chain; results are memoised per key for the lookup's lifetime. */
export function credentialChain(options: CredentialOptions = {}): CredentialLookup {
  const memo = new Map<string, Promise<Credential | undefined>>();
  const running = new Map<string, number>();
  const track: Track = (program) => {
    running.set(program, (running.get(program) ?? 0) + 1);
    return () => {
      const n = running.get(program)! - 1;
      if (n === 0) running.delete(program);
      else running.set(program, n);
    };
  };
  const chain = (key: string): Promise<Credential | undefined> => {
    const k = key.toLowerCase();
    let found = memo.get(k);
    if (found === undefined) {
      found = lookup(k, options, track);
      memo.set(k, found);
      found.catch(() => memo.delete(k));
    }
    return found;
  };
  return Object.assign(chain, { running: () => [...running.keys()] });
}

/** Counts `program` as running until the returned function is called. */
type Track = (program: string) => () => void;

async function lookup(key: string, options: CredentialOptions, track: Track): Promise<Credential | undefined> {
  const env = options.env ?? process.env;
  const explicit = findIn(options.credentials, key);
  if (explicit !== undefined) return normalise(explicit, 'option', key);
  const fromEnv = findIn(parseEnvAuth(env.VMIMG_REGISTRY_AUTH), key);
  if (fromEnv !== undefined) return normalise(envInput(fromEnv, key), 'env', key);
  return fromDockerConfig(key, options, env, track);
}

/** Normalises a config key (`https://ghcr.io/v1/`, `docker.io`) to the host it names. */
export function credentialKeyOf(raw: string): string {
  const host = raw.trim().toLowerCase().replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
  return isDockerHub(host) ? 'docker.io' : host;
}

function findIn<T>(table: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  if (table === undefined) return undefined;
  const wanted = credentialKeyOf(key);
  for (const [k, v] of Object.entries(table)) if (credentialKeyOf(k) === wanted) return v;
  return undefined;
}

function normalise(input: CredentialInput, source: string, key: string): Credential {
  const { username, password, identityToken, registryToken, token } = input;
  const cred: Credential = {
    source,
    ...(username !== undefined && username !== '' ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(identityToken !== undefined && identityToken !== '' ? { identityToken } : {}),
    ...(token !== undefined && token !== '' ? { identityToken: token } : {}),
    ...(registryToken !== undefined && registryToken !== '' ? { registryToken } : {}),
  };
  if (cred.username === undefined && cred.identityToken === undefined && cred.registryToken === undefined) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `credentials for ${key} from ${source} name no username or token`);
  }
  return cred;
}

const ENV_KEYS: Record<string, keyof CredentialInput> = {
  username: 'username',
  password: 'password',
  token: 'token',
  identitytoken: 'identityToken',
  registrytoken: 'registryToken',
};

/** One VMIMG_REGISTRY_AUTH entry → CredentialInput: Docker's lowercase key names or camelCase, string values only. */
function envInput(entry: unknown, key: string): CredentialInput {
  const out: Record<string, string> = {};
  if (entry !== null && typeof entry === 'object' && !Array.isArray(entry)) {
    for (const [k, v] of Object.entries(entry)) {
      const name = ENV_KEYS[k.toLowerCase()];
      if (name === undefined) continue;
      if (typeof v !== 'string') throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `VMIMG_REGISTRY_AUTH["${key}"].${k} is not a string`);
      out[name] = v;
    }
  }
  return out;
}

function parseEnvAuth(raw: string | undefined): Record<string, unknown> | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  try {
    const parsed = JSON.parse(raw) as unknown;
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // fall through: the message must not echo the (secret) content
  }
  throw new VmimgError(ErrorCode.INVALID_ARGUMENT, 'VMIMG_REGISTRY_AUTH is not a JSON object', {
    hint: 'Set it to {"HOST": {"username": "...", "password": "..."}} or {"HOST": {"identitytoken": "..."}} or {"HOST": {"registrytoken": "..."}}.',
  });
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; identitytoken?: string; username?: string; password?: string; registrytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

async function readDockerConfig(options: CredentialOptions, env: NodeJS.ProcessEnv): Promise<DockerConfig | undefined> {
  const dir = options.dockerConfigDir ?? env.DOCKER_CONFIG ?? join(env.HOME ?? homedir(), '.docker');
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `cannot read ${file}`, { cause: err });
  }
  try {
    return JSON.parse(text) as DockerConfig;
  } catch {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${file} is not valid JSON`);
  }
}

async function fromDockerConfig(key: string, options: CredentialOptions, env: NodeJS.ProcessEnv, track: Track): Promise<Credential | undefined> {
  const config = await readDockerConfig(options, env);
  if (config === undefined) return undefined;
  const serverUrl = credentialKeyOf(key) === 'docker.io' ? DOCKER_HUB_KEY : credentialKeyOf(key);
  const helper = findIn(config.credHelpers, key);
  if (helper !== undefined && helper !== '') return runHelper(helper, serverUrl, options, env, track);
  const entry = findIn(config.auths, key);
  if (entry !== undefined) {
    const cred = fromAuthEntry(entry, key);
    if (cred !== undefined) return cred;
  }
  if (config.credsStore !== undefined && config.credsStore !== '') return runHelper(config.credsStore, serverUrl, options, env, track);
  return undefined;
}

function fromAuthEntry(entry: NonNullable<DockerConfig['auths']>[string], key: string): Credential | undefined {
  if (entry.registrytoken) return { source: 'docker-config', registryToken: entry.registrytoken };
  let username = entry.username;
  let password = entry.password;
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `docker config "auth" for ${key} is not base64(user:password)`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (entry.identitytoken) return { source: 'docker-config', identityToken: entry.identitytoken, ...(username ? { username } : {}) };
  if (username) return { source: 'docker-config', username, password: password ?? '' };
  return undefined;
}

/** Runs `docker-credential-NAME get`, server URL on stdin. "Not found" is no credential, not an error. */
async function runHelper(name: string, serverUrl: string, options: CredentialOptions, env: NodeJS.ProcessEnv, track: Track): Promise<Credential | undefined> {
  const program = `docker-credential-${name}`;
  const limitMs = options.helperTimeoutMs ?? 30_000;
  const fail = (why: string, cause?: unknown, hint = `Check that ${program} is installed and on PATH, or remove it from your Docker config.`) =>
    new VmimgError(ErrorCode.UNAUTHORIZED, `credential helper ${program} failed for ${serverUrl}: ${why}`, {
      ...(cause !== undefined ? { cause } : {}),
      hint,
      details: { helper: program },
    });
  const done = track(program);
  const run = await runBounded(program, serverUrl, env, limitMs).finally(done);
  if (run.kind === 'spawn-error') throw fail((run.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found on PATH' : 'could not start', run.error);
  if (run.kind === 'timeout') {
    const hint = `Make ${program} answer faster, or raise "credentialHelperTimeoutSeconds" in the vmimg config file.`;
    throw fail(`no answer within ${Math.round(limitMs / 100) / 10} s (killed)`, undefined, hint);
  }
  if (run.code !== 0) {
    if (/credentials not found/i.test(run.stdout) || /credentials not found/i.test(run.stderr)) return undefined;
    throw fail(`exit status ${run.code}`);
  }
  let parsed: { Username?: string; Secret?: string };
  try {
    parsed = JSON.parse(run.stdout.trim()) as typeof parsed;
  } catch {
    throw fail('answer is not JSON');
  }
  if (!parsed.Secret) return undefined;
  const source = `helper:${name}`;
  if (parsed.Username === '<token>') return { source, identityToken: parsed.Secret };
  return { source, username: parsed.Username ?? '', password: parsed.Secret };
}

type HelperRun =
  | { kind: 'exited'; code: number | null; stdout: string; stderr: string }
  | { kind: 'timeout' }
  | { kind: 'spawn-error'; error: unknown };

/** How long the pipes may stay open after the helper exited (its output is written by then). */
const EXIT_GRACE_MS = 200;

/**
 * Runs `program get` with `input` on stdin, bounded in time. The helper leads its own process group:
 * at the deadline the whole group is killed and the pipes dropped, so a child it left behind (a `sleep`,
 * an agent) holding the pipes cannot keep us waiting; after the helper exits, the pipes get a short grace.
 */
function runBounded(program: string, input: string, env: NodeJS.ProcessEnv, limitMs: number): Promise<HelperRun> {
  return new Promise((resolve) => {
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    let settled = false;
    /** `kill`: something of the helper's group still holds on (deadline, or pipes open after exit). */
    const finish = (run: HelperRun, kill = false): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (kill) killGroup(child.pid);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve(run);
    };
    const exited = (code: number | null): HelperRun => ({
      kind: 'exited',
      code,
      stdout: Buffer.concat(out).toString('utf8'),
      stderr: Buffer.concat(errOut).toString('utf8'),
    });
    // Our own timer, unref'd: spawn's `timeout` keeps the process alive when the program is missing.
    const timer = setTimeout(() => finish({ kind: 'timeout' }, true), limitMs);
    timer.unref();
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => errOut.push(b));
    child.on('error', (error) => finish({ kind: 'spawn-error', error }));
    child.on('exit', (code) => setTimeout(() => finish(exited(code), true), EXIT_GRACE_MS).unref());
    child.on('close', (code) => finish(exited(code)));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** SIGKILL to the helper's process group (it leads one: spawned detached); a group already gone is fine. */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the group has exited already
  }
}
