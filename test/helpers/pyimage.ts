// Test inputs written by python3's tarfile (test/helpers/mkimage.py), never by vmimg's own writer:
// layer tars, OCI layouts and archives, classic and Docker 25+ `docker save` tars, from one plan.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './cache.js';
import { run, tmpDir } from './tools.js';

/** One tar entry: `type` defaults to file; `name`/`link` may be `{ b64 }` for exact bytes. */
export interface PyEntry {
  name: string | { b64: string };
  type?: 'file' | 'dir' | 'sym' | 'hard' | 'chr' | 'blk' | 'fifo';
  data?: string;
  link?: string | { b64: string };
  mode?: number;
  uid?: number;
  gid?: number;
  major?: number;
  minor?: number;
  /** Seconds since the epoch (python float: a fraction and negatives go into pax records). */
  mtime?: number;
}

/** An image of the plan: layer names (bottom first, repeats allowed), how it is named. */
export interface PyImage {
  layers: string[];
  /** OCI ref name annotation in index.json (layouts, OCI archives, Docker 25+ saves). */
  tag?: string;
  /** manifest.json RepoTags (docker save); null or absent = untagged. */
  repoTags?: string[] | null;
  /** Listed in index.json (default true): Docker 25+ saves of digest-named images drop some. */
  inIndex?: boolean;
  arch?: string;
  /** Config label `which`, to tell images apart. */
  label?: string;
}

export interface PyPlan {
  layers: Record<string, PyEntry[]>;
  /** More layers: tar files written by another outside tool (GNU tar), by layer name. */
  layerFiles?: Record<string, string>;
  /** Writes every layer as `<tarDir>/<name>.tar` too. */
  tarDir?: string;
  layout?: { dir: string; images: PyImage[]; gzip?: boolean; archive?: string };
  dockerClassic?: { file: string; images: PyImage[] };
  dockerHybrid?: { file: string; images: PyImage[] };
}

export interface PyImageReport {
  manifestDigest?: string;
  configDigest: string;
  diffIds: string[];
  layerDigests?: string[];
}

export interface PyReport {
  layers: Record<string, { diffId: string }>;
  layout?: PyImageReport[];
  dockerClassic?: PyImageReport[];
  dockerHybrid?: PyImageReport[];
}

/** Runs mkimage.py on `plan`; paths in the plan are the caller's. */
export async function pyBuild(plan: PyPlan): Promise<PyReport> {
  const out = await run('python3', [join(REPO_ROOT, 'test', 'helpers', 'mkimage.py')], { input: JSON.stringify(plan) });
  return JSON.parse(out) as PyReport;
}

/** One layer's tar bytes, written by python3's tarfile. */
export async function pyLayerTar(entries: PyEntry[]): Promise<Buffer> {
  const dir = await tmpDir('vmimg-pytar-');
  await pyBuild({ layers: { l: entries }, tarDir: dir });
  return readFileSync(join(dir, 'l.tar'));
}

/** Shorthands for entries. */
export const py = {
  file: (name: string, data = '', extra: Partial<PyEntry> = {}): PyEntry => ({ name, data, ...extra }),
  dir: (name: string, extra: Partial<PyEntry> = {}): PyEntry => ({ name, type: 'dir', ...extra }),
  sym: (name: string, link: string): PyEntry => ({ name, type: 'sym', link }),
  hard: (name: string, link: string): PyEntry => ({ name, type: 'hard', link }),
};
