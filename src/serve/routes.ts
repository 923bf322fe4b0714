/**
 * Which upstream registry a repository goes to: `--route PREFIX=URL` (the longest matching prefix
 * wins, and is stripped: `/v2/PREFIX/repo/...` asks the upstream for `repo`), else `--upstream URL`
 * for everything unprefixed; containerd's `?ns=HOST` mirror parameter names a route (its PREFIX or its
 * host). Nothing else is reachable: serve is never an open proxy to hosts a client names.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { isLoopbackHost } from '../reference/index.js';
import { isDockerHub } from '../registry/names.js';
import { ServeError } from './errors.js';
import { checkName } from './paths.js';

/** One upstream registry serve reads from. */
export interface Upstream {
  /** The URL as configured, without a trailing slash (`https://registry-1.docker.io`). */
  readonly url: string;
  /** The registry name the client and credential chain use (`docker.io`, `127.0.0.1:5000`). */
  readonly registry: string;
  /** True when the URL asks for plain HTTP. */
  readonly plainHttp: boolean;
}

/** Where a request's repository goes. */
export interface RouteTarget {
  readonly upstream: Upstream;
  /** The repository name at the upstream. */
  readonly repository: string;
  /** The route's prefix ('' for the default upstream), for rewriting `Link` headers. */
  readonly prefix: string;
}

/** Parses `http(s)://HOST[:PORT]` (no path); ERR_INVALID_ARGUMENT naming `what` otherwise. */
export function parseUpstream(url: string, what: string): Upstream {
  const m = /^(https?):\/\/([^/?#@\s]+)\/?$/i.exec(url.trim());
  if (m === null) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${what}: "${url}" is not http(s)://HOST[:PORT]`);
  const scheme = m[1]!.toLowerCase();
  const host = m[2]!.toLowerCase();
  const registry = isDockerHub(host) ? 'docker.io' : host;
  return { url: `${scheme}://${host}`, registry, plainHttp: scheme === 'http' };
}

/** The routing table: a default upstream and prefix routes. */
export class Router {
  private readonly routes: { prefix: string; upstream: Upstream }[];

  /** `routes` as `PREFIX=URL` strings; ERR_INVALID_ARGUMENT on a bad one or when there is nothing to serve. */
  constructor(
    readonly fallback: Upstream | undefined,
    routes: readonly string[],
  ) {
    this.routes = routes.map((r) => {
      const eq = r.indexOf('=');
      if (eq <= 0) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--route "${r}" is not PREFIX=URL`);
      const prefix = r.slice(0, eq).replace(/\/+$/, '');
      try {
        checkName(prefix);
      } catch {
        // a host name as prefix (docker.io, ghcr.io, localhost:5000) is fine too: ?ns= names hosts
        if (!/^[a-z0-9.-]+(:\d+)?$/.test(prefix)) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--route "${r}": "${prefix}" is not a repository prefix`);
      }
      return { prefix, upstream: parseUpstream(r.slice(eq + 1), `--route ${prefix}`) };
    });
    this.routes.sort((a, b) => b.prefix.length - a.prefix.length);
    if (fallback === undefined && this.routes.length === 0) {
      throw new VmimgError(ErrorCode.INVALID_ARGUMENT, 'nothing to serve: give --upstream URL and/or --route PREFIX=URL');
    }
  }

  /** Every upstream, for plain-HTTP permissions and messages. */
  upstreams(): Upstream[] {
    return [...(this.fallback ? [this.fallback] : []), ...this.routes.map((r) => r.upstream)];
  }

  /** The upstream for repository `name`; `ns` is containerd's `?ns=HOST`. A 404 NAME_UNKNOWN when none. */
  resolve(name: string, ns?: string): RouteTarget {
    if (ns !== undefined && ns !== '') return this.byNamespace(name, ns.toLowerCase());
    for (const r of this.routes) {
      if (name.startsWith(`${r.prefix}/`)) return { upstream: r.upstream, repository: name.slice(r.prefix.length + 1), prefix: r.prefix };
    }
    if (this.fallback !== undefined) return { upstream: this.fallback, repository: name, prefix: '' };
    throw new ServeError(404, 'NAME_UNKNOWN', `repository ${name} is outside every route of this server`);
  }

  private byNamespace(name: string, ns: string): RouteTarget {
    const hub = isDockerHub(ns);
    const all = [...this.routes, ...(this.fallback ? [{ prefix: '', upstream: this.fallback }] : [])];
    const match = all.find((r) => r.prefix === ns || r.upstream.registry === ns || (hub && r.upstream.registry === 'docker.io'));
    if (match === undefined) throw new ServeError(404, 'NAME_UNKNOWN', `ns=${ns} is not an upstream of this server`);
    return { upstream: match.upstream, repository: name, prefix: '' };
  }
}

/** Upstream hosts to allow plain HTTP to (those whose URL says http://, beyond loopback). */
export function plainHttpHosts(upstreams: readonly Upstream[]): string[] {
  return upstreams.filter((u) => u.plainHttp && !isLoopbackHost(u.registry)).map((u) => u.registry);
}
