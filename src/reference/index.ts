/**
 * Image references following Docker's distribution/reference grammar, normalised the way
 * `docker pull` does (`alpine` → `docker.io/library/alpine:latest`). Pure: no I/O.
 */
import { isIP } from 'node:net';
import { validateDigest } from '../digest/index.js';
import { ErrorCode, VmimgError } from '../errors.js';
import type { Reference } from './types.js';

export type { Reference } from './types.js';

export const DEFAULT_REGISTRY = 'docker.io';
export const DEFAULT_TAG = 'latest';
/** Longest `registry/repository` accepted (distribution's NameTotalLengthMax). */
export const NAME_TOTAL_LENGTH_MAX = 255;

const TAG = /^[\w][\w.-]{0,127}$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const PORT = /^[0-9]+$/;
const IPV6_BRACKETED = /^\[[a-fA-F0-9:.]+\]$/;
const HEX64 = /^[a-f0-9]{64}$/;

/** Parses and normalises a reference; throws ERR_INVALID_REFERENCE saying which part is wrong. */
export function parseReference(s: string): Reference {
  if (typeof s !== 'string' || s.length === 0) throw invalid(String(s ?? ''), 'reference is empty');
  if (s.trim() !== s) throw invalid(s, 'reference must not contain surrounding whitespace');

  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      validateDigest(digest);
    } catch (err) {
      throw invalid(s, (err as Error).message, err); // already names the digest and what is wrong
    }
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw invalid(s, `bad tag "${tag}": tags are 1-128 characters of [A-Za-z0-9_.-] and must not start with "." or "-"`);
    }
  }

  if (rest.length === 0) throw invalid(s, 'repository name is empty');
  const { registry, path } = splitRegistry(s, rest);
  validatePath(s, path);
  const repository = registry === DEFAULT_REGISTRY && !path.includes('/') ? `library/${path}` : path;

  const fullName = `${registry}/${repository}`;
  if (fullName.length > NAME_TOTAL_LENGTH_MAX) {
    throw invalid(s, `repository name is ${fullName.length} characters long; at most ${NAME_TOTAL_LENGTH_MAX} are allowed`);
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return {
    registry,
    repository,
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined ? { digest } : {}),
  };
}

/** Canonical form: `docker.io/library/alpine:latest`, `host/a/b:tag@sha256:…`. */
export function formatReference(ref: Reference): string {
  return `${ref.registry}/${ref.repository}${suffix(ref)}`;
}

/** Short form for display, like `docker images` shows it: `alpine:latest`, `user/app:1`, `ghcr.io/o/r:t`. */
export function familiarName(ref: Reference): string {
  let name = `${ref.registry}/${ref.repository}`;
  if (ref.registry === DEFAULT_REGISTRY) {
    name = ref.repository.startsWith('library/') && ref.repository.split('/').length === 2
      ? ref.repository.slice('library/'.length)
      : ref.repository;
  }
  return `${name}${suffix(ref)}`;
}

/** The host that serves the registry API: Docker Hub's API lives at `registry-1.docker.io`. */
export function apiHost(registry: string): string {
  return registry === DEFAULT_REGISTRY ? 'registry-1.docker.io' : registry;
}

/** True for `localhost`, 127.0.0.0/8 and ::1, with or without a port (`[::1]:5000`, `127.0.0.1:5000`). */
export function isLoopbackHost(hostWithPort: string): boolean {
  const host = stripPort(hostWithPort).toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  if (family === 6) {
    if (host === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(host) || host === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
    return mapped !== null && mapped[1]!.startsWith('127.');
  }
  return false;
}

function suffix(ref: Reference): string {
  return `${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

function stripPort(hostWithPort: string): string {
  if (hostWithPort.startsWith('[')) {
    const end = hostWithPort.indexOf(']');
    return end < 0 ? hostWithPort : hostWithPort.slice(1, end);
  }
  const colons = hostWithPort.split(':').length - 1;
  if (colons === 1) return hostWithPort.slice(0, hostWithPort.indexOf(':'));
  return hostWithPort; // no port, or a bare IPv6 address
}

function splitRegistry(input: string, name: string): { registry: string; path: string } {
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  const isHost = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (!isHost) return { registry: DEFAULT_REGISTRY, path: name };
  validateDomain(input, first);
  const registry = first === 'index.docker.io' ? DEFAULT_REGISTRY : first;
  return { registry, path: name.slice(slash + 1) };
}

function validateDomain(input: string, domain: string): void {
  let host = domain;
  let port: string | undefined;
  if (domain.startsWith('[')) {
    const end = domain.indexOf(']');
    host = end < 0 ? domain : domain.slice(0, end + 1);
    const after = end < 0 ? '' : domain.slice(end + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw invalid(input, `bad registry "${domain}": unexpected "${after}" after the IPv6 address`);
      port = after.slice(1);
    }
    if (!IPV6_BRACKETED.test(host) || isIP(host.slice(1, -1)) !== 6) {
      throw invalid(input, `bad registry "${domain}": "${host}" is not a valid bracketed IPv6 address`);
    }
  } else {
    const c = domain.indexOf(':');
    if (c >= 0) {
      host = domain.slice(0, c);
      port = domain.slice(c + 1);
    }
    if (host === '' || !host.split('.').every((part) => DOMAIN_COMPONENT.test(part))) {
      throw invalid(input, `bad registry "${domain}": host names are dot-separated [A-Za-z0-9-] labels not starting or ending with "-"`);
    }
  }
  if (port !== undefined && (!PORT.test(port) || Number(port) > 65535)) {
    throw invalid(input, `bad registry "${domain}": port "${port}" must be a number 0-65535`);
  }
}

function validatePath(input: string, path: string): void {
  if (path.length === 0) throw invalid(input, 'repository path is empty');
  if (path !== path.toLowerCase()) {
    throw invalid(input, `repository "${path}" must be lowercase`);
  }
  for (const component of path.split('/')) {
    if (component.length === 0) throw invalid(input, `repository "${path}" has an empty path component`);
    if (!PATH_COMPONENT.test(component)) {
      throw invalid(
        input,
        `bad repository component "${component}": use [a-z0-9] separated by ".", "_", "__" or "-", not at the start or end`,
      );
    }
  }
  if (HEX64.test(path)) {
    throw invalid(input, `repository "${path}" looks like an image ID; a 64-hex-digit name is not allowed (use name@sha256:...)`);
  }
}

function invalid(input: string, why: string, cause?: unknown): VmimgError {
  const shown = input.length > 100 ? `${input.slice(0, 97)}...` : input;
  return new VmimgError(ErrorCode.INVALID_REFERENCE, `invalid reference "${shown}": ${why}`, {
    ...(cause !== undefined ? { cause } : {}),
    hint: 'references look like [registry[:port]/]name[:tag][@sha256:digest], e.g. alpine:3.20 or ghcr.io/org/app:1',
  });
}
