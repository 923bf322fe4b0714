/**
 * Is an IMAGE argument a path or a name? Decided before anything is contacted, so a typo'd path is
 * "not found", never a request to docker.io. In order:
 *   1. a transport prefix forces the choice: `docker://REF` is a registry reference;
 *      `oci-archive:PATH` and `docker-archive:PATH` are image tars, `oci:DIR[:TAG]` an OCI image layout
 *      directory and the image its index.json names TAG (skopeo's spellings; DIR may hold `:` itself:
 *      see splitLayoutArg);
 *   2. `docker.io/…` is a registry reference;
 *   3. `/…`, `./…`, `../…`, `~`, `~/…`, `.` and `..` are paths; so is anything ending in `.tar`,
 *      `.tar.gz` or `.tgz`, and anything that names an existing file or directory (a directory is an
 *      image directory, or an OCI image layout when it holds `oci-layout`);
 *   4. everything else is a name: a cached image's name or id, else a registry reference.
 * A path that does not exist is ERR_NOT_FOUND naming it.
 */
import { access, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ErrorCode, VmimgError } from '../errors.js';

export type ImageArg =
  | { kind: 'path'; path: string; type: 'file' | 'dir' | 'layout'; forced?: 'oci-archive' | 'docker-archive' | 'oci'; tag?: string }
  | { kind: 'name'; name: string; forced: boolean };

const TAR_PREFIXES = ['oci-archive:', 'docker-archive:'] as const;
const REGISTRY_PREFIX = 'docker://';
const LAYOUT_PREFIX = 'oci:';
/** The transport prefixes that name a file or directory, not a registry (`oci:`, the two tar ones). */
export const PATH_PREFIXES: readonly string[] = [LAYOUT_PREFIX, ...TAR_PREFIXES];

/** True when `arg` must be read as a path (rule 3 without the file-system check). */
export function looksLikePath(arg: string): boolean {
  return /^(\.{1,2}|~)(\/|$)/.test(arg) || arg.startsWith('/') || /\.(tar|tar\.gz|tgz)$/.test(arg);
}

/** Classifies an IMAGE argument (see the module comment); a missing path is ERR_NOT_FOUND. */
export async function classifyImageArg(arg: string): Promise<ImageArg> {
  if (arg.startsWith(REGISTRY_PREFIX)) return { kind: 'name', name: arg.slice(REGISTRY_PREFIX.length), forced: true };
  if (arg.startsWith(LAYOUT_PREFIX)) return layoutArg(arg);
  if (arg.startsWith('docker.io/')) return { kind: 'name', name: arg, forced: true };
  const prefix = TAR_PREFIXES.find((p) => arg.startsWith(p));
  const path = expandHome(prefix ? arg.slice(prefix.length) : arg);
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
    throw err; // EACCES and friends: the CLI reports them as ERR_IO
  });
  if (st === undefined) {
    const pinned = await pinnedArchive(path);
    if (pinned !== undefined) return pinned;
    if (prefix || looksLikePath(arg)) throw missingPath(arg, path);
    return { kind: 'name', name: arg, forced: false };
  }
  const type = st.isDirectory() ? ((await isLayout(path)) ? 'layout' : 'dir') : 'file';
  if (prefix && type !== 'file') throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${arg}: ${prefix} needs an image tar, and ${path} is a directory`);
  return { kind: 'path', path, type, ...(prefix ? { forced: prefix.slice(0, -1) as 'oci-archive' | 'docker-archive' } : {}) };
}

/**
 * `<tar or layout>@sha256:<hex>` (how `images` names an unnamed image of a multi-image archive): the
 * archive, and the image its digest picks (as `--tag DIGEST`). Undefined when the part before `@`
 * names no file or layout.
 */
async function pinnedArchive(path: string): Promise<ImageArg | undefined> {
  const m = /^(.+)@(sha256:[0-9a-f]{64})$/.exec(path);
  if (!m) return undefined;
  const st = await stat(m[1]!).catch(() => undefined);
  const type = st?.isFile() ? 'file' : st?.isDirectory() && (await isLayout(m[1]!)) ? 'layout' : undefined;
  return type === undefined ? undefined : { kind: 'path', path: m[1]!, type, tag: m[2]! };
}

/**
 * The cache names a path-looking argument may be (`<path>:<ref name>`, `<path>@<digest>`, the path of
 * a tar loaded earlier): the argument and its absolute form, when nothing on disk has that name.
 * Undefined for arguments that are not path-like or that name a file: the file wins.
 */
export async function cachedPathNames(arg: string): Promise<string[] | undefined> {
  if (!looksLikePath(arg)) return undefined;
  const path = expandHome(arg);
  if ((await stat(path).catch(() => undefined)) !== undefined) return undefined;
  return [...new Set([arg, resolve(path)])];
}

/** `oci:DIR[:TAG]`: DIR must be an OCI image layout directory. */
async function layoutArg(arg: string): Promise<ImageArg> {
  const { dir, tag } = await splitLayoutArg(arg);
  if (!(await isDir(dir))) throw missingPath(arg, dir);
  if (!(await isLayout(dir))) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${arg}: ${dir} is not an OCI image layout (no oci-layout file)`, {
      hint: 'oci:DIR names a directory written by skopeo copy ... oci:DIR:TAG, umoci or buildah',
    });
  }
  return { kind: 'path', path: dir, type: 'layout', forced: 'oci', ...(tag ? { tag } : {}) };
}

/**
 * `oci:PATH[:TAG]` → the directory and the tag. A path may hold `:` itself: the whole of PATH when it
 * names a directory, else the longest part before a `:` that names one, else the split at the last `:`
 * (a directory yet to be written, as an export's destination). `oci:` alone is ERR_INVALID_ARGUMENT.
 */
export async function splitLayoutArg(arg: string): Promise<{ dir: string; tag?: string }> {
  const rest = arg.startsWith(LAYOUT_PREFIX) ? arg.slice(LAYOUT_PREFIX.length) : arg;
  if (rest === '' || rest.startsWith(':')) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${arg}: oci: needs a directory (oci:DIR or oci:DIR:TAG)`);
  }
  if (await isDir(expandHome(rest))) return { dir: expandHome(rest) };
  const colons = [...rest.matchAll(/:/g)].map((m) => m.index!).reverse();
  for (const at of colons) {
    if (await isDir(expandHome(rest.slice(0, at)))) return { dir: expandHome(rest.slice(0, at)), tag: rest.slice(at + 1) };
  }
  const last = colons[0];
  return last === undefined ? { dir: expandHome(rest) } : { dir: expandHome(rest.slice(0, last)), tag: rest.slice(last + 1) };
}

async function isDir(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

/** An OCI image layout directory holds an `oci-layout` file (what makes it one, by the spec). */
async function isLayout(dir: string): Promise<boolean> {
  return access(join(dir, 'oci-layout')).then(
    () => true,
    () => false,
  );
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p;
}

function missingPath(arg: string, path: string): VmimgError {
  // Only the file-name ending made it a path: the user may have meant an image called that.
  const byEnding = !/^(\/|\.{1,2}(\/|$)|~|[a-z-]+:)/.test(arg);
  return new VmimgError(ErrorCode.NOT_FOUND, `${path}: no such file or directory`, {
    ...(byEnding ? { hint: `for a registry image of that name write docker://${arg}` } : {}),
    details: { path },
  });
}

/** `pull`'s REF: a registry reference (a `docker://` prefix is dropped); a path is a usage error. */
export async function referenceArg(arg: string): Promise<string> {
  const a = await classifyImageArg(arg);
  if (a.kind === 'name') return a.name;
  throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${arg} is a ${a.type === 'file' ? 'file' : 'directory'}, not a registry reference`, {
    hint:
      a.type === 'file'
        ? `vmimg load ${arg} reads an image tar`
        : a.type === 'layout'
          ? `vmimg load ${arg} reads an OCI image layout directory`
          : 'commands taking IMAGE read an image directory in place',
  });
}

/**
 * `load`'s SOURCE: an existing image tar (`oci-archive:`/`docker-archive:` prefixes and `~` allowed) or
 * an OCI image layout directory (`oci:DIR[:TAG]`, or a directory holding `oci-layout`).
 */
export async function loadArg(arg: string): Promise<{ path: string; type: 'file' | 'layout'; tag?: string }> {
  const a = await classifyImageArg(arg);
  if (a.kind === 'path' && (a.type === 'file' || a.type === 'layout')) return { path: a.path, type: a.type, ...(a.tag ? { tag: a.tag } : {}) };
  if (a.kind === 'path') {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${a.path} is a directory, not an image tar`, { hint: 'commands taking IMAGE read an image directory in place' });
  }
  if (a.forced) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${arg} is a registry reference, not an image tar`, { hint: `vmimg pull ${a.name}` });
  throw new VmimgError(ErrorCode.NOT_FOUND, `${arg}: no such file or directory`, { details: { path: arg } });
}
