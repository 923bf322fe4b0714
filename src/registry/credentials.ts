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

export type CredentialLookup = (registryOrHost: string) => Promise<Credential | undefined>;

const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

/** A lookup function walking the chain; results are memoised per key for the lookup's lifetime. */
export function credentialChain(options: CredentialOptions = {}): CredentialLookup {
  const memo = new Map<string, Promise<Credential | undefined>>();
  return (key) => {
    const k = key.toLowerCase();
    let found = memo.get(k);
    if (found === undefined) {
      found = lookup(k, options);
      memo.set(k, found);
      found.catch(() => memo.delete(k));
    }
    return found;
  };
}

async function lookup(key: string, options: CredentialOptions): Promise<Credential | undefined> {
  const env = options.env ?? process.env;
  const explicit = findIn(options.credentials, key);
  if (explicit !== undefined) return normalise(explicit, 'option', key);
  const fromEnv = findIn(parseEnvAuth(env.VMIMG_REGISTRY_AUTH), key);
  if (fromEnv !== undefined) return normalise(envInput(fromEnv, key), 'env', key);
  return fromDockerConfig(key, options, env);
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

async function fromDockerConfig(key: string, options: CredentialOptions, env: NodeJS.ProcessEnv): Promise<Credential | undefined> {
  const config = await readDockerConfig(options, env);
  if (config === undefined) return undefined;
  const serverUrl = credentialKeyOf(key) === 'docker.io' ? DOCKER_HUB_KEY : credentialKeyOf(key);
  const helper = findIn(config.credHelpers, key);
  if (helper !== undefined && helper !== '') return runHelper(helper, serverUrl, options, env);
  const entry = findIn(config.auths, key);
  if (entry !== undefined) {
    const cred = fromAuthEntry(entry, key);
    if (cred !== undefined) return cred;
  }
  if (config.credsStore !== undefined && config.credsStore !== '') return runHelper(config.credsStore, serverUrl, options, env);
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
function runHelper(name: string, serverUrl: string, options: CredentialOptions, env: NodeJS.ProcessEnv): Promise<Credential | undefined> {
  const program = `docker-credential-${name}`;
  const fail = (why: string, cause?: unknown) =>
    new VmimgError(ErrorCode.UNAUTHORIZED, `credential helper ${program} failed for ${serverUrl}: ${why}`, {
      ...(cause !== undefined ? { cause } : {}),
      hint: `Check that ${program} is installed and on PATH, or remove it from your Docker config.`,
    });
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    // Our own timer, unref'd: spawn's `timeout` keeps the process alive when the program is missing.
    const timer = setTimeout(() => child.kill('SIGKILL'), options.helperTimeoutMs ?? 30_000);
    timer.unref();
    child.on('exit', () => clearTimeout(timer));
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => errOut.push(b));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(fail((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found on PATH' : 'could not start', err));
    });
    child.on('close', (code) => {
      const stdout = Buffer.concat(out).toString('utf8').trim();
      if (code !== 0) {
        if (/credentials not found/i.test(stdout) || /credentials not found/i.test(Buffer.concat(errOut).toString())) {
          resolve(undefined);
          return;
        }
        reject(fail(`exit status ${code}`));
        return;
      }
      try {
        const answer = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (!answer.Secret) return resolve(undefined);
        const source = `helper:${name}`;
        if (answer.Username === '<token>') return resolve({ source, identityToken: answer.Secret });
        resolve({ source, username: answer.Username ?? '', password: answer.Secret });
      } catch {
        reject(fail('answer is not JSON'));
      }
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(serverUrl);
  });
}
