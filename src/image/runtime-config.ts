/**
 * The runtime config an image directory's `config.json` holds: what a launcher needs to start the
 * image (layers in order, env, entrypoint, cmd, working dir, user → uid/gid, platform, source).
 */
import { ErrorCode, VmimgError } from '../errors.js';
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
}

export interface ImageSourceInfo {
  /** How the image arrived. */
  kind: 'registry' | 'docker-archive' | 'oci-archive';
  /** Canonical reference or tar path. */
  reference?: string;
  /** Digest of the platform-specific manifest, when there was one. */
  manifestDigest?: string;
  /** Digest of the index the manifest was chosen from, when there was one. */
  indexDigest?: string;
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

/** Reads a file from the flattened image (following symlinks inside it), or undefined when absent. */
export type ImageFileReader = (path: string) => Promise<Buffer | undefined>;

export async function buildRuntimeConfig(
  config: ImageConfig,
  layers: LayerRecord[],
  source: ImageSourceInfo,
  readImageFile: ImageFileReader,
): Promise<RuntimeConfig> {
  const c = config.config ?? {};
  const user = c.User ?? '';
  const { uid, gid } = await resolveUser(user, readImageFile);
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
 * name is an error now rather than at boot.
 */
export async function resolveUser(user: string, readImageFile: ImageFileReader): Promise<{ uid: number; gid: number }> {
  if (user === '') return { uid: 0, gid: 0 };
  const colon = user.indexOf(':');
  const userPart = colon < 0 ? user : user.slice(0, colon);
  const groupPart = colon < 0 ? undefined : user.slice(colon + 1);

  let uid: number;
  let gid = 0;
  const numericUser = parseId(userPart);
  // Even a numeric uid consults /etc/passwd for its primary gid.
  const passwd = await readTable(readImageFile, '/etc/passwd');
  const pwEntry = passwd.find((f) => (numericUser === undefined ? f[0] === userPart : parseId(f[2] ?? '') === numericUser));
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
      const groups = await readTable(readImageFile, '/etc/group');
      const grEntry = groups.find((f) => f[0] === groupPart);
      if (!grEntry) throw unknownUser(user, `no group "${groupPart}" in the image's /etc/group`);
      gid = parseId(grEntry[2] ?? '') ?? fail(user, `bad gid for "${groupPart}" in /etc/group`);
    }
  }
  return { uid, gid };
}

async function readTable(readImageFile: ImageFileReader, path: string): Promise<string[][]> {
  const bytes = await readImageFile(path);
  if (!bytes) return [];
  return bytes
    .toString('utf8')
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.split(':'));
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
