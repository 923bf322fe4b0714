// A small loopback token server for docker-registry's `auth: token` mode: RS256 JWTs whose header
// carries a self-signed certificate (made by `openssl`) in x5c. Records every request so tests can
// assert the flow (challenge → token → retry, POST first with credentials, reuse within expiry).
import { createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { run, tmpDir } from './tools.js';

export interface TokenRequest {
  readonly method: string;
  /** Query (GET) or form (POST) parameters; `scope` joined with spaces. */
  readonly params: Readonly<Record<string, string>>;
  /** User from a Basic header, if any (the password is never recorded). */
  readonly basicUser?: string;
  readonly grantType?: string;
  readonly status: number;
}

export interface TokenIssuerOptions {
  /** user → password; anyone else is anonymous. */
  users?: Record<string, string>;
  /** Grant `pull` to anonymous requests (default true). */
  anonymousPull?: boolean;
  service?: string;
  issuer?: string;
  /** Seconds sent as expires_in; `null` leaves the field out (default 300). */
  expiresIn?: number | null;
  /** Answer POSTs with this status instead (404/405: a server without the OAuth2 endpoint). */
  postStatus?: number;
  /** refresh token → user, accepted by `grant_type=refresh_token`. */
  refreshTokens?: Record<string, string>;
}

export interface TokenIssuer {
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** PEM certificate for the registry's `rootcertbundle`. */
  readonly certPath: string;
  readonly requests: TokenRequest[];
  readonly options: TokenIssuerOptions;
  stop(): Promise<void>;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

async function makeKeyPair(): Promise<{ key: KeyObject; certPath: string; certDer: string }> {
  const dir = await tmpDir('vmimg-issuer-');
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=vmimg-test-issuer']);
  const cert = new X509Certificate(readFileSync(certPath));
  return { key: createPrivateKey(readFileSync(keyPath)), certPath, certDer: cert.raw.toString('base64') };
}

function jwt(key: KeyObject, certDer: string, claims: Record<string, unknown>): string {
  const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [certDer] }));
  const body = b64url(JSON.stringify(claims));
  const signature = sign('RSA-SHA256', Buffer.from(`${head}.${body}`), key);
  return `${head}.${body}.${b64url(signature)}`;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startTokenIssuer(options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
  const { key, certPath, certDer } = await makeKeyPair();
  const service = options.service ?? 'vmimg-test-registry';
  const issuer = options.issuer ?? 'vmimg-test-issuer';
  const requests: TokenRequest[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    let params: Record<string, string> = {};
    let user: string | undefined;
    let authenticated = false;
    const auth = req.headers.authorization;
    let basicUser: string | undefined;
    if (auth?.startsWith('Basic ')) {
      const [u, ...rest] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
      basicUser = u;
      if (u !== undefined && options.users?.[u] === rest.join(':')) [user, authenticated] = [u, true];
    }
    const scopes: string[] = [];
    if (req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      params = Object.fromEntries(form.entries());
      scopes.push(...(form.get('scope') ?? '').split(' ').filter(Boolean));
    } else {
      params = Object.fromEntries(url.searchParams.entries());
      scopes.push(...url.searchParams.getAll('scope'));
      params.scope = scopes.join(' ');
    }
    const grantType = params.grant_type;
    const answer = (status: number, body: unknown) => {
      requests.push({ method: req.method ?? '', params: redact(params), ...(basicUser ? { basicUser } : {}), ...(grantType ? { grantType } : {}), status });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'POST') {
      if (options.postStatus !== undefined) return answer(options.postStatus, { error: 'unsupported' });
      if (grantType === 'password' && options.users?.[params.username ?? ''] === params.password) [user, authenticated] = [params.username, true];
      else if (grantType === 'refresh_token' && options.refreshTokens?.[params.refresh_token ?? ''] !== undefined) {
        [user, authenticated] = [options.refreshTokens[params.refresh_token!], true];
      } else return answer(401, { error: 'invalid_grant' });
    } else if (auth !== undefined && !authenticated) return answer(401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] });
    const access = scopes.flatMap((s) => grant(s, authenticated, options.anonymousPull !== false));
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = options.expiresIn === undefined ? 300 : options.expiresIn;
    const token = jwt(key, certDer, {
      iss: issuer,
      sub: user ?? '',
      aud: service,
      exp: now + (expiresIn ?? 60) + 5,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    });
    const body: Record<string, unknown> = req.method === 'POST' ? { access_token: token } : { token };
    if (expiresIn !== null) body.expires_in = expiresIn;
    answer(200, body);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    requests,
    options,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** `repository:NAME:pull,push` → the access claim: all asked actions for users, pull for anonymous. */
function grant(scope: string, authenticated: boolean, anonymousPull: boolean): { type: string; name: string; actions: string[] }[] {
  const parts = scope.split(':');
  if (parts.length < 3) return [];
  const actions = parts.pop()!.split(',');
  const type = parts.shift()!;
  const name = parts.join(':');
  const allowed = authenticated ? actions : anonymousPull ? actions.filter((a) => a === 'pull') : [];
  return allowed.length > 0 ? [{ type, name, actions: allowed }] : [];
}

function redact(params: Record<string, string>): Record<string, string> {
  const out = { ...params };
  for (const k of ['password', 'refresh_token']) if (k in out) out[k] = '<redacted>';
  return out;
}
