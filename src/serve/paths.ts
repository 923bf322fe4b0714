/**
 * The read side of the distribution API's URL grammar (OCI distribution spec, "Endpoints"): which
 * endpoint a request path names, with the repository name, tag and digest checked by pure string rules
 * before anything touches the store or the network (a name or digest becomes a file name or an
 * upstream URL). Percent-escapes, `..`, upper case and empty components fail the name grammar.
 */
import { isValidDigest } from '../digest/index.js';
import { ServeError } from './errors.js';

/** One path component of a repository name (distribution's reference grammar). */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
/** distribution's limit on a repository name's length. */
export const MAX_NAME_LENGTH = 255;

/** What a request path asks for. */
export type ApiPath =
  | { readonly kind: 'base' }
  | { readonly kind: 'manifest'; readonly name: string; readonly tag?: string; readonly digest?: string }
  | { readonly kind: 'blob'; readonly name: string; readonly digest: string }
  | { readonly kind: 'tags'; readonly name: string }
  | { readonly kind: 'referrers'; readonly name: string; readonly digest: string };

/** Parses the path part of a request URL (no query); throws a ServeError (NAME_INVALID, DIGEST_INVALID, ...). */
export function parseApiPath(path: string): ApiPath {
  if (path === '/v2' || path === '/v2/') return { kind: 'base' };
  if (!path.startsWith('/v2/')) throw new ServeError(404, 'NOT_FOUND', `no such endpoint: ${clip(path)}`);
  const rest = path.slice(4);
  const m = /^(.+)\/(manifests|blobs|referrers)\/([^/]+)$/.exec(rest) ?? /^(.+)\/(tags)\/(list)$/.exec(rest);
  if (m === null) throw new ServeError(404, 'NOT_FOUND', `no such endpoint: ${clip(path)}`);
  const name = checkName(m[1]!);
  const target = m[3]!;
  switch (m[2]) {
    case 'tags':
      return { kind: 'tags', name };
    case 'blobs':
      return { kind: 'blob', name, digest: checkDigest(target) };
    case 'referrers':
      return { kind: 'referrers', name, digest: checkDigest(target) };
    default:
      if (target.includes(':')) return { kind: 'manifest', name, digest: checkDigest(target) };
      if (!TAG.test(target)) throw new ServeError(400, 'TAG_INVALID', `invalid tag ${JSON.stringify(clip(target))}`);
      return { kind: 'manifest', name, tag: target };
  }
}

/** A repository name by the reference grammar: lower-case components joined by `/`, 255 characters at most. */
export function checkName(name: string): string {
  if (name.length > MAX_NAME_LENGTH) {
    throw new ServeError(400, 'NAME_INVALID', `repository name is ${name.length} characters; the limit is ${MAX_NAME_LENGTH}`);
  }
  if (!name.split('/').every((c) => COMPONENT.test(c))) {
    throw new ServeError(400, 'NAME_INVALID', `invalid repository name ${JSON.stringify(clip(name))}`);
  }
  return name;
}

function checkDigest(digest: string): string {
  if (!isValidDigest(digest)) throw new ServeError(400, 'DIGEST_INVALID', `invalid digest ${JSON.stringify(clip(digest))}`);
  return digest;
}

/** At most 200 characters of something a client sent, for messages. */
export function clip(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}
