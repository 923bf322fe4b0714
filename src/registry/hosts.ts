/**
 * Where to talk to a registry: origin and mirrors, in the order they are tried, with their scheme and
 * what each host is trusted to do. Pure: reads the environment it is given, never the network.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { isLoopback, originHost } from './names.js';

export interface HostCapabilities {
  /** Content by digest (manifests and blobs). */
  readonly pull: boolean;
  /** Tag → digest resolution. Only hosts trusted with tags get this. */
  readonly resolve: boolean;
}

export interface RegistryEndpoint {
  /** The registry as named in the reference (`docker.io`, `127.0.0.1:5000`). */
  readonly registry: string;
  /** The host dialled, `host[:port]` (`registry-1.docker.io`). */
  readonly host: string;
  readonly scheme: 'http' | 'https';
  /** Base URL without trailing slash; the API lives under `${url}/v2/`. */
  readonly url: string;
  readonly mirror: boolean;
  readonly capabilities: HostCapabilities;
  /** Key to look credentials up with: the registry name for the origin, the host for a mirror. */
  readonly credentialKey: string;
}

export interface MirrorSpec {
  /** `https://mirror.example`, `http://127.0.0.1:5001`, or a bare `host[:port]`. */
  readonly url: string;
  /** Trust this mirror with tag resolution too (default false: digests only). */
  readonly resolve?: boolean;
}

export interface HostOptions {
  /** Hosts (`host` or `host:port`) allowed to speak plain HTTP, on top of loopback ones. */
  readonly insecureRegistries?: readonly string[];
  /** Mirrors per registry name, tried in order before the origin. */
  readonly mirrors?: Readonly<Record<string, readonly (string | MirrorSpec)[]>>;
  /** Try the origin after the mirrors (default true). */
  readonly originFallback?: boolean;
  /** Environment read for VMIMG_INSECURE_REGISTRIES / VMIMG_MIRRORS (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

/** The endpoints for `registry`, in the order to try them. Throws ERR_INVALID_ARGUMENT on bad config. */
export function registryEndpoints(registry: string, options: HostOptions = {}): RegistryEndpoint[] {
  const env = options.env ?? process.env;
  const insecure = insecureSet(options, env);
  const mirrors = mirrorSpecs(registry, options, env);
  const endpoints = mirrors.map((spec) => mirrorEndpoint(registry, spec, insecure));
  if (options.originFallback !== false || endpoints.length === 0) {
    const host = originHost(registry);
    const scheme = plainHttpAllowed(host, insecure) || plainHttpAllowed(registry, insecure) ? 'http' : 'https';
    endpoints.push({
      registry,
      host,
      scheme,
      url: `${scheme}://${host}`,
      mirror: false,
      capabilities: { pull: true, resolve: true },
      credentialKey: registry,
    });
  }
  return endpoints;
}

/** Plain HTTP is allowed for loopback hosts and hosts the user marked insecure. */
export function plainHttpAllowed(host: string, insecure: ReadonlySet<string>): boolean {
  if (isLoopback(host)) return true;
  const lower = host.toLowerCase();
  return insecure.has(lower) || insecure.has(stripPort(lower));
}

/** `plainHttpAllowed` bound to the configured insecure hosts (options and VMIMG_INSECURE_REGISTRIES). */
export function plainHttpPolicy(options: HostOptions = {}): (host: string) => boolean {
  const insecure = insecureSet(options, options.env ?? process.env);
  return (host) => plainHttpAllowed(host, insecure);
}

function insecureSet(options: HostOptions, env: NodeJS.ProcessEnv): Set<string> {
  const fromEnv = (env.VMIMG_INSECURE_REGISTRIES ?? '').split(',');
  const all = [...(options.insecureRegistries ?? []), ...fromEnv];
  return new Set(all.map((h) => h.trim().toLowerCase().replace(/^https?:\/\//, '').replace(/\/.*$/, '')).filter(Boolean));
}

function mirrorSpecs(registry: string, options: HostOptions, env: NodeJS.ProcessEnv): MirrorSpec[] {
  const specs: (string | MirrorSpec)[] = [];
  const fromEnv = parseMirrorsEnv(env.VMIMG_MIRRORS);
  for (const table of [options.mirrors, fromEnv]) {
    if (table === undefined) continue;
    const list = table[registry] ?? table[registry.toLowerCase()];
    if (list !== undefined) specs.push(...list);
  }
  return specs.map((s) => (typeof s === 'string' ? { url: s } : s));
}

function parseMirrorsEnv(raw: string | undefined): Record<string, (string | MirrorSpec)[]> | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, 'VMIMG_MIRRORS is not valid JSON', {
      cause: err,
      hint: 'Set VMIMG_MIRRORS to {"docker.io": ["https://mirror.example"]}.',
    });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, 'VMIMG_MIRRORS must map registry names to lists of URLs');
  }
  const out: Record<string, (string | MirrorSpec)[]> = {};
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    const list = Array.isArray(value) ? value : [value];
    out[key] = list.map((item) => {
      if (typeof item === 'string') return item;
      if (item !== null && typeof item === 'object' && typeof (item as MirrorSpec).url === 'string') return item as MirrorSpec;
      throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `VMIMG_MIRRORS["${key}"] holds something that is not a URL`);
    });
  }
  return out;
}

function mirrorEndpoint(registry: string, spec: MirrorSpec, insecure: ReadonlySet<string>): RegistryEndpoint {
  const m = /^(?:(https?):\/\/)?([^/?#]+)\/?$/i.exec(spec.url.trim());
  if (m === null) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `mirror "${spec.url}" for ${registry} is not http(s)://HOST[:PORT]`);
  }
  const host = m[2]!.toLowerCase();
  const wanted = m[1]?.toLowerCase() as 'http' | 'https' | undefined;
  const allowed = plainHttpAllowed(host, insecure);
  if (wanted === 'http' && !allowed) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `mirror ${host} for ${registry} asks for plain HTTP`, {
      hint: `Only loopback hosts speak plain HTTP unless marked insecure (--insecure-registry ${host} or VMIMG_INSECURE_REGISTRIES).`,
    });
  }
  const scheme = wanted ?? (allowed ? 'http' : 'https');
  return {
    registry,
    host,
    scheme,
    url: `${scheme}://${host}`,
    mirror: true,
    capabilities: { pull: true, resolve: spec.resolve === true },
    credentialKey: host,
  };
}

function stripPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon > 0 && host.indexOf(':') === colon ? host.slice(0, colon) : host;
}
