/**
 * The two pieces of undici vmimg uses (the Agent and `request`), loaded without the rest: undici's
 * entry point requires 110 modules (fetch, websockets, caches, mocks, proxies...) where these need 31,
 * and every vmimg process that talks to a registry paid for all of them: ~130-160 ms of CPU at load
 * ~10 (50 for the parts), plus TurboFan compiling the module loader's hot paths on V8's helper threads
 * while a fresh `vmimg serve` answered its first clients. The paths are undici's own files (its
 * package has no `exports` map); the version is pinned by package-lock, and every registry test goes
 * through them, so an upgrade that moves them fails at once.
 */
import { createRequire } from 'node:module';
import type { Agent as UndiciAgent, Dispatcher } from 'undici';

const load = createRequire(import.meta.url);
const DispatcherClass = load('undici/lib/dispatcher/dispatcher') as { prototype: object };
// what undici's index.js does: the request API lives on every dispatcher (Agent.prototype.request)
Object.assign(DispatcherClass.prototype, load('undici/lib/api') as object);

/** undici's Agent (keep-alive connection pools per origin). */
export const Agent = load('undici/lib/dispatcher/agent') as typeof UndiciAgent;

/** undici's `request(url, { dispatcher, ... })`, for a dispatcher given explicitly (vmimg always gives one). */
export function request(url: string, options: Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & { dispatcher: Dispatcher }): Promise<Dispatcher.ResponseData> {
  const { dispatcher, ...rest } = options;
  const u = new URL(url);
  return dispatcher.request({ ...rest, origin: u.origin, path: `${u.pathname}${u.search}`, method: rest.method ?? 'GET' });
}
