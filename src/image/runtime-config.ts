/**
 * The runtime config an image directory's `config.json` holds: what a launcher needs to start the
 * image (layers in order, env, entrypoint, cmd, working dir, user → uid/gid, platform, source).
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { DEFAULT_LIMITS, formatBytes, tooLarge } from '../layer/limits.js';
import type { ImageConfig } from '../manifest/index.js';

export const RUNTIME_CONFIG_VERSION = 1;

export interface LayerRecord {
  /** Uncompressed digest (the config's `rootfs.diff_ids` entry); names the `.idx`/`.contents` pair. */
  diffId: string;
  /** Compressed digest as distributed, when known. */
  digest?: string;
  /** Compressed size in bytes, when known. */
  compressedSize?: number;
  /** Bytes of file content in `.contents` (excluding alignment padding). */
  size: number;
  /** Entries in the layer's index. */
  entries: number;
  /** Pulled lazily (`pull --lazy`): the image directory holds its `.spans`; reads fill its `.contents`. */
  lazy?: boolean;
  /** With `lazy`: the blob has a `.zran` (in the image directory); without one it is fetched whole on first read. */
  checkpoints?: boolean;
}

export interface ImageSourceInfo {
  /** How the image arrived. */
  kind: 'registry' | 'docker-archive' | 'oci-archive' | 'oci-layout' | 'store';
  /** Canonical reference or tar path. */
  reference?: string;
  /** A tar's or OCI layout directory's absolute path (local sources): where its layer blobs still are. */
  path?: string;
  /** Digest of the platform-specific manifest, when there was one. */
  manifestDigest?: string;
  /** Digest of the (top) index the manifest was chosen from, when there was one. */
  indexDigest?: string;
  /** Nested indexes only: every index from the top down to the manifest's (the store keeps them all). */
  indexDigests?: string[];
  /** Digest of the image config blob: also the image's id. */
  configDigest: string;
  /** `os/arch[/variant]` of the image. */
  platform: string;
  /** ISO time the image was prepared. */
  createdAt: string;
}

export interface RuntimeConfig {
  schemaVersion: typeof RUNTIME_CONFIG_VERSION;
  /** Diff ids of the layers, bottom first. */
  layers: string[];
  env: string[];
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  /** The image's `User` as written (`name`, `uid`, `name:group`, `uid:gid`, or empty for root). */
  user: string;
  uid: number;
  gid: number;
  labels: Record<string, string>;
  architecture: string;
  os: string;
  variant?: string;
  source: ImageSourceInfo;
  layerDetails: LayerRecord[];
}

/**
 * Reads up to `length` bytes at `offset` of a file in the flattened image (following symlinks inside
 * it): fewer only at its end; undefined when the file is absent. Callers read only what they need.
 */
export type ImageFileReader = (path: string, offset: number, length: number) => Promise<Buffer | undefined>;

export async function buildRuntimeConfig(
  config: ImageConfig,
  layers: LayerRecord[],
  source: ImageSourceInfo,
  readImageFile: ImageFileReader,
  maxUserFileBytes = DEFAULT_LIMITS.maxUserFileBytes,
): Promise<RuntimeConfig> {
  const c = config.config ?? {};
  const user = c.User ?? '';
  const { uid, gid } = await resolveUser(user, readImageFile, maxUserFileBytes);
  const runtime: RuntimeConfig = {
    schemaVersion: RUNTIME_CONFIG_VERSION,
    layers: layers.map((l) => l.diffId),
    env: [...(c.Env ?? [])],
    entrypoint: [...(c.Entrypoint ?? [])],
    cmd: [...(c.Cmd ?? [])],
    workingDir: c.WorkingDir || '/',
    user,
    uid,
    gid,
    labels: { ...(c.Labels ?? {}) },
    architecture: config.architecture,
    os: config.os,
    source,
    layerDetails: layers,
  };
  if (config.variant) runtime.variant = config.variant;
  return runtime;
}

/** The command line a launcher runs: entrypoint + (override or cmd). */
export function commandLine(config: Pick<RuntimeConfig, 'entrypoint' | 'cmd'>, override?: string[]): string[] {
  const args = override && override.length > 0 ? override : config.cmd;
  return [...config.entrypoint, ...args];
}

/**
 * Resolves `user` as runc does: `name` / `uid` / `name:group` / `uid:gid`, names through the image's
 * own /etc/passwd and /etc/group. A numeric uid without a passwd entry gets gid 0. An unknown
 * name is an error now rather than at boot. The files are scanned line by line up to the first match
 * and at most `maxBytes` of each is read (ERR_TOO_LARGE past that: a 1 GiB sparse /etc/passwd costs
 * nothing to refuse).
 */
export async function resolveUser(
  user: string,
  readImageFile: ImageFileReader,
  maxBytes = DEFAULT_LIMITS.maxUserFileBytes,
): Promise<{ uid: number; gid: number }> {
  if (user === '') return { uid: 0, gid: 0 };
  const colon = user.indexOf(':');
  const userPart = colon < 0 ? user : user.slice(0, colon);
  const groupPart = colon < 0 ? undefined : user.slice(colon + 1);

  let uid: number;
  let gid = 0;
  const numericUser = parseId(userPart);
  // Even a numeric uid consults /etc/passwd for its primary gid.
  const table = { read: readImageFile, maxBytes };
  const pwEntry = await findLine(table, '/etc/passwd', (f) => (numericUser === undefined ? f[0] === userPart : parseId(f[2] ?? '') === numericUser));
  if (numericUser !== undefined) {
    uid = numericUser;
  } else {
    if (!pwEntry) throw unknownUser(user, `no user "${userPart}" in the image's /etc/passwd`);
    uid = parseId(pwEntry[2] ?? '') ?? fail(user, `bad uid for "${userPart}" in /etc/passwd`);
  }
  if (pwEntry) gid = parseId(pwEntry[3] ?? '') ?? 0;

  if (groupPart !== undefined && groupPart !== '') {
    const numericGroup = parseId(groupPart);
    if (numericGroup !== undefined) {
      gid = numericGroup;
    } else {
      const grEntry = await findLine(table, '/etc/group', (f) => f[0] === groupPart);
      if (!grEntry) throw unknownUser(user, `no group "${groupPart}" in the image's /etc/group`);
      gid = parseId(grEntry[2] ?? '') ?? fail(user, `bad gid for "${groupPart}" in /etc/group`);
    }
  }
  return { uid, gid };
}

const CHUNK = 64 * 1024;

/** The first line of a colon-separated table (passwd, group) whose fields match, reading chunk by chunk. */
async function findLine(
  table: { read: ImageFileReader; maxBytes: number },
  path: string,
  match: (fields: string[]) => boolean,
): Promise<string[] | undefined> {
  let carry = Buffer.alloc(0);
  for (let offset = 0; ; ) {
    const chunk = await table.read(path, offset, Math.min(CHUNK, table.maxBytes - offset));
    if (chunk === undefined) return undefined;
    offset += chunk.length;
    const atEnd = chunk.length === 0 || offset >= table.maxBytes;
    const text = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    let start = 0;
    for (let nl = text.indexOf(0x0a); nl >= 0; nl = text.indexOf(0x0a, start)) {
      const fields = tableFields(text.toString('utf8', start, nl));
      start = nl + 1;
      if (fields !== undefined && match(fields)) return fields;
    }
    carry = Buffer.from(text.subarray(start));
    if (!atEnd) continue;
    const last = tableFields(carry.toString('utf8'));
    if (last !== undefined && match(last)) return last;
    if (chunk.length === 0 || (await table.read(path, offset, 1))?.length === 0) return undefined;
    throw tooLarge('maxUserFileBytes', `the image's ${path} has no matching line in its first ${formatBytes(table.maxBytes)}`);
  }
}

function tableFields(line: string): string[] | undefined {
  return line === '' || line.startsWith('#') ? undefined : line.split(':');
}

function parseId(s: string): number | undefined {
  if (!/^\d{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffffffff ? n : undefined;
}

function unknownUser(user: string, why: string): VmimgError {
  return new VmimgError(ErrorCode.UNKNOWN_USER, `image user "${user}": ${why}`, {
    hint: 'the image config names a user its own /etc/passwd does not define',
  });
}

function fail(user: string, why: string): never {
  throw unknownUser(user, why);
}
