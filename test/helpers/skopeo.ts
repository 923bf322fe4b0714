// skopeo wrappers: push an OCI layout to a registry, or turn it into archives.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run, tmpDir, removeNow } from './tools.js';

/** `layout:tag` string, or an object with layout and tag (e.g. a BuiltImage). */
export type LayoutRef = string | { layout: string; tag: string };

export function layoutRefString(ref: LayoutRef): string {
  return typeof ref === 'string' ? ref : `${ref.layout}:${ref.tag}`;
}

export interface PushOptions {
  /** Copy the whole image index (`--all`), not just the host platform's image. */
  all?: boolean;
  /** Manifest format at the destination: 'v2s2' turns an OCI index into a Docker manifest list. */
  format?: 'oci' | 'v2s2';
  /** `user:password` for the registry. */
  creds?: string;
}

/**
 * `skopeo copy --dest-tls-verify=false [--all] [--format F] oci:LAYOUT:TAG
 * docker://HOST/REPO:TAG`. Resolves with the pushed manifest (or index) digest.
 */
export async function pushLayout(
  layoutRef: LayoutRef,
  registryHost: string,
  repoTag: string,
  opts: PushOptions = {},
): Promise<string> {
  const tmp = await tmpDir('vmimg-push-');
  const digestFile = join(tmp, 'digest');
  const args = ['copy', '--quiet', '--dest-tls-verify=false', '--digestfile', digestFile];
  if (opts.all) args.push('--all');
  if (opts.format) args.push('--format', opts.format);
  if (opts.creds) args.push('--dest-creds', opts.creds);
  args.push(`oci:${layoutRefString(layoutRef)}`, `docker://${registryHost}/${repoTag}`);
  try {
    await run('skopeo', args);
    return readFileSync(digestFile, 'utf8').trim();
  } finally {
    removeNow(tmp);
  }
}

/** Classic `docker save` tar: `skopeo copy oci:… docker-archive:FILE:name:tag`. */
export async function toDockerArchive(layoutRef: LayoutRef, file: string, nameTag: string): Promise<string> {
  rmSync(file, { force: true }); // skopeo refuses to add to an existing docker-archive
  await run('skopeo', ['copy', '--quiet', `oci:${layoutRefString(layoutRef)}`, `docker-archive:${file}:${nameTag}`]);
  return file;
}

/** OCI archive (a tarred OCI layout): `skopeo copy [--all] oci:… oci-archive:FILE:tag`. */
export async function toOciArchive(
  layoutRef: LayoutRef,
  file: string,
  tag: string,
  opts: { all?: boolean } = {},
): Promise<string> {
  rmSync(file, { force: true });
  const args = ['copy', '--quiet'];
  if (opts.all) args.push('--all');
  await run('skopeo', [...args, `oci:${layoutRefString(layoutRef)}`, `oci-archive:${file}:${tag}`]);
  return file;
}
