/**
 * Where an image directory goes: checks a destination before anything is written, and moves the
 * finished temp directory's files into it. `--force` replaces only what vmimg wrote there before
 * (`config.json` that is a vmimg runtime config, and `<hex>.idx` / `<hex>.contents` layer files):
 * any other file is the user's, and refuses the export (ERR_DESTINATION_EXISTS naming it).
 */
import { lstat, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ErrorCode, VmimgError } from '../errors.js';
import { RUNTIME_CONFIG_VERSION } from './runtime-config.js';

const CONFIG_FILE = 'config.json';
const LAYER_FILE = /^[0-9a-f]{64}\.(idx|contents|spans|zran)$/; // .spans/.zran: a lazy layer's

/**
 * Checks `dst` (absolute) and returns the names it holds now; undefined when it does not exist (its
 * parent is then created). Not empty without `force`, or holding anything vmimg did not write: ERR_DESTINATION_EXISTS.
 */
export async function checkDirDestination(dst: string, force: boolean): Promise<string[] | undefined> {
  let entries: string[];
  try {
    entries = await readdir(dst);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      await mkdir(dirname(dst), { recursive: true });
      return undefined;
    }
    if (code === 'ENOTDIR') throw new VmimgError(ErrorCode.DESTINATION_EXISTS, `${dst} exists and is not a directory`);
    throw err;
  }
  if (entries.length === 0) return entries;
  if (!force) {
    throw new VmimgError(ErrorCode.DESTINATION_EXISTS, `${dst} is not empty`, {
      hint: 'choose an empty or new directory, or pass --force to replace an image directory vmimg wrote there',
    });
  }
  const foreign = await firstForeign(dst, entries);
  if (foreign !== undefined) {
    throw new VmimgError(ErrorCode.DESTINATION_EXISTS, `${dst} holds ${JSON.stringify(foreign)}, which vmimg did not write: --force replaces only an image directory (config.json and layer files)`, {
      hint: 'choose an empty or new directory, or move those files away first',
      details: { path: join(dst, foreign) },
    });
  }
  return entries;
}

/** The first entry of `dir` that is not part of a vmimg image directory, if any. */
async function firstForeign(dir: string, entries: string[]): Promise<string | undefined> {
  if (!entries.includes(CONFIG_FILE)) return entries.sort()[0];
  for (const name of entries.sort()) {
    const st = await lstat(join(dir, name));
    if (!st.isFile()) return name;
    if (name === CONFIG_FILE ? !(await isRuntimeConfig(join(dir, name), st.size)) : !LAYER_FILE.test(name)) return name;
  }
  return undefined;
}

async function isRuntimeConfig(path: string, size: number): Promise<boolean> {
  if (size > 16 << 20) return false; // a runtime config is a few KiB
  try {
    const c = JSON.parse(await readFile(path, 'utf8')) as { schemaVersion?: unknown; layers?: unknown } | null;
    return c?.schemaVersion === RUNTIME_CONFIG_VERSION && Array.isArray(c.layers);
  } catch {
    return false;
  }
}

/**
 * Moves the files of the finished `tmp` into the existing `dst` (checked: empty or vmimg's), the
 * directory itself kept (a shell whose working directory it is stays there): layer files first,
 * `config.json` last, then removes the old layer files the new config no longer lists. Every moment
 * leaves a consistent directory: layer files are named by content, and a config's layers are there
 * before it is.
 */
export async function replaceInPlace(tmp: string, dst: string, old: readonly string[]): Promise<void> {
  const fresh = await readdir(tmp);
  for (const name of fresh) if (name !== CONFIG_FILE) await rename(join(tmp, name), join(dst, name));
  await rename(join(tmp, CONFIG_FILE), join(dst, CONFIG_FILE));
  const keep = new Set(fresh);
  for (const name of old) if (!keep.has(name)) await rm(join(dst, name), { force: true });
  await rm(tmp, { recursive: true, force: true });
}
