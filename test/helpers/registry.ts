// The real registry for tests: Debian's docker-registry (CNCF distribution 2.8.2) on a random loopback
// port with temp storage, optionally behind htpasswd Basic auth or token auth (token-issuer.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTokenIssuer, type TokenIssuer, type TokenIssuerOptions } from './token-issuer.js';
import { removeNow, run, tmpDir, whichSync } from './tools.js';

export type RegistryAuth = 'none' | 'htpasswd' | 'token';

export interface StartRegistryOptions {
  auth?: RegistryAuth;
  /** user → password for htpasswd and token modes (default {tester: 'secret'}). */
  users?: Record<string, string>;
  /** Options for the token issuer started in token mode (users are added). */
  issuer?: Omit<TokenIssuerOptions, 'users'>;
  /** Share storage with another registry (to serve the same content under other auth). */
  storageDir?: string;
  /** Keep the registry's access log (one line per request, read with `accessLog()`). */
  accessLog?: boolean;
  /** Run as a pull-through cache of this registry URL (distribution's proxy mode). */
  proxyOf?: string;
}

/** One request from the registry's access log (Apache combined format). */
export interface AccessLine {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly bytes: number;
}

export interface RunningRegistry {
  /** `127.0.0.1:PORT`, what references and skopeo take. */
  readonly host: string;
  readonly url: string;
  readonly storageDir: string;
  readonly users: Record<string, string>;
  readonly issuer?: TokenIssuer;
  /** `user:password` of the first user, for `skopeo --dest-creds`. */
  readonly creds?: string;
  /** The docker-registry process (e.g. for its CPU time in /proc). */
  readonly pid: number;
  /** The requests logged so far (empty unless started with `accessLog`). */
  accessLog(): AccessLine[];
  stop(): Promise<void>;
}

const BINARY = '/usr/bin/docker-registry';

// Registries still running when the test process exits (a crash, a forgotten stop()) die with it.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function registryBinary(): string {
  const found = whichSync('docker-registry') ?? (whichSync(BINARY) ? BINARY : undefined);
  if (found === undefined) {
    throw new Error('docker-registry not found: apt-get install docker-registry (Debian package; or run bash .ci/run)');
  }
  return found;
}

async function htpasswdLines(users: Record<string, string>): Promise<string> {
  const lines: string[] = [];
  for (const [user, pass] of Object.entries(users)) lines.push((await run('htpasswd', ['-Bbn', user, pass])).trim());
  return `${lines.join('\n')}\n`;
}

async function authSection(mode: RegistryAuth, dir: string, users: Record<string, string>, issuer?: TokenIssuer): Promise<string> {
  if (mode === 'htpasswd') {
    const file = join(dir, 'htpasswd');
    writeFileSync(file, await htpasswdLines(users));
    return `auth:\n  htpasswd:\n    realm: vmimg-test\n    path: ${file}\n`;
  }
  if (mode === 'token' && issuer !== undefined) {
    return `auth:\n  token:\n    realm: ${issuer.realm}\n    service: ${issuer.service}\n    issuer: ${issuer.issuer}\n    rootcertbundle: ${issuer.certPath}\n`;
  }
  return '';
}

export async function startRegistry(options: StartRegistryOptions = {}): Promise<RunningRegistry> {
  const bin = registryBinary();
  const mode = options.auth ?? 'none';
  const users = options.users ?? { tester: 'secret' };
  const dir = await tmpDir('vmimg-registry-');
  const storageDir = options.storageDir ?? join(dir, 'storage');
  const issuer = mode === 'token' ? await startTokenIssuer({ ...options.issuer, users }) : undefined;
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const config = join(dir, 'config.yml');
    writeFileSync(
      config,
      `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: ${options.accessLog !== true}\n${options.proxyOf !== undefined ? `proxy:\n  remoteurl: ${options.proxyOf}\n` : ''}storage:\n  filesystem:\n    rootdirectory: ${storageDir}\n  delete:\n    enabled: true\nhttp:\n  addr: ${host}\n  secret: vmimg-test-secret\n${await authSection(mode, dir, users, issuer)}`,
    );
    const child = spawn(bin, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    const access: string[] = [];
    let partial = '';
    child.stdout!.on('data', (b: Buffer) => {
      const lines = (partial + b.toString()).split('\n');
      partial = lines.pop()!;
      access.push(...lines);
    });
    running.add(child);
    child.once('exit', () => running.delete(child));
    const stderr: string[] = [];
    child.stderr!.on('data', (b: Buffer) => stderr.push(b.toString()));
    const up = await waitUntilUp(`http://${host}/v2/`, child);
    if (!up) {
      child.kill('SIGKILL');
      if (attempt < 2) continue; // port raced away; try another
      await issuer?.stop();
      throw new Error(`docker-registry did not come up on ${host}: ${stderr.join('').slice(-2000)}`);
    }
    const first = Object.entries(users)[0];
    return {
      host,
      url: `http://${host}`,
      storageDir,
      users,
      pid: child.pid!,
      ...(issuer !== undefined ? { issuer } : {}),
      ...(mode !== 'none' && first !== undefined ? { creds: `${first[0]}:${first[1]}` } : {}),
      accessLog: () => access.map(parseAccessLine).filter((l): l is AccessLine => l !== undefined),
      stop: async () => {
        await stopChild(child);
        await issuer?.stop();
        if (options.storageDir === undefined) removeNow(dir);
      },
    };
  }
}

/** `127.0.0.1 - - [date] "GET /v2/x HTTP/1.1" 200 123 "" "ua"` → its request, status and size. */
function parseAccessLine(line: string): AccessLine | undefined {
  const m = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) (\d+|-)/.exec(line);
  if (m === null) return undefined;
  return { method: m[1]!, path: m[2]!, status: Number(m[3]), bytes: m[4] === '-' ? 0 : Number(m[4]) };
}

async function waitUntilUp(url: string, child: ChildProcess): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) return false;
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return true;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  return false;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}
