// The escape checker for exported archives (the test-suite form of the adversarial report's
// check_export.py). Lists every entry of a tar (read by python3's tarfile, an outside reader) or a
// newc cpio (parsed here, byte by byte, gzip or plain) and reports what would make an extraction
// write outside its directory, through a symlink, or stop early:
//   - a name that is absolute or has a `..` component;
//   - an entry below a symlink or any other non-directory of the same archive (tar -x, cpio -i and
//     the kernel's initramfs unpacker all follow such a symlink);
//   - an entry whose parent directory was not listed before it, or a name listed twice;
//   - a hardlink naming no earlier file;
//   - a cpio `TRAILER!!!` before the end (every cpio reader stops there).
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { run } from './tools.js';

export type ArchiveKind = 'file' | 'dir' | 'sym' | 'hard' | 'chr' | 'blk' | 'fifo' | 'other';

/** One archive entry; names and link targets as raw bytes. */
export interface ArchiveEntry {
  name: Buffer;
  kind: ArchiveKind;
  link?: Buffer;
}

export interface ArchiveListing {
  format: 'tar' | 'cpio';
  entries: ArchiveEntry[];
  /** cpio only: indexes (into entries) of in-band `TRAILER!!!` records, the final one excluded. */
  earlyTrailers: number[];
}

const PY_LIST_TAR = `
import base64, json, sys, tarfile
kinds = {tarfile.REGTYPE: 'file', tarfile.AREGTYPE: 'file', tarfile.CONTTYPE: 'file', tarfile.DIRTYPE: 'dir',
         tarfile.SYMTYPE: 'sym', tarfile.LNKTYPE: 'hard', tarfile.CHRTYPE: 'chr', tarfile.BLKTYPE: 'blk',
         tarfile.FIFOTYPE: 'fifo'}
b = lambda s: base64.b64encode(s.encode('utf-8', 'surrogateescape')).decode()
with tarfile.open(sys.argv[1], encoding='utf-8', errors='surrogateescape') as t:
    for m in t:
        print(json.dumps([b(m.name), kinds.get(m.type, 'other'), b(m.linkname)]))
`;

/** Every entry of the tar at `file`, as python3's tarfile reads it (pax, GNU long names, ustar). */
export async function listTar(file: string): Promise<ArchiveEntry[]> {
  const out = await run('python3', ['-c', PY_LIST_TAR, file]);
  return out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [name, kind, link] = JSON.parse(l) as [string, ArchiveKind, string];
      const e: ArchiveEntry = { name: Buffer.from(name, 'base64'), kind };
      if (kind === 'sym' || kind === 'hard') e.link = Buffer.from(link, 'base64');
      return e;
    });
}

const CPIO_KINDS: Record<number, ArchiveKind> = { 0o100000: 'file', 0o040000: 'dir', 0o120000: 'sym', 0o020000: 'chr', 0o060000: 'blk', 0o010000: 'fifo' };

/** Every record of a newc cpio (gzip or plain), trailers included, read to the end of the data. */
export function listCpio(data: Buffer): { entries: ArchiveEntry[]; earlyTrailers: number[] } {
  const bytes = data[0] === 0x1f && data[1] === 0x8b ? gunzipSync(data) : data;
  const entries: ArchiveEntry[] = [];
  const trailers: number[] = [];
  const firstName = new Map<number, Buffer>();
  const pad = (n: number): number => (n + 3) & ~3;
  let pos = 0;
  while (pos + 110 <= bytes.length && bytes.toString('latin1', pos, pos + 6) === '070701') {
    const field = (i: number): number => parseInt(bytes.toString('latin1', pos + 6 + 8 * i, pos + 14 + 8 * i), 16);
    const [ino, mode, nlink, size, namesize] = [field(0), field(1), field(4), field(6), field(11)];
    const name = bytes.subarray(pos + 110, pos + 110 + namesize - 1);
    const body = pad(pos + 110 + namesize);
    const data = bytes.subarray(body, body + size);
    pos = pad(body + size);
    if (name.toString('latin1') === 'TRAILER!!!') {
      trailers.push(entries.length);
      continue;
    }
    let kind = CPIO_KINDS[mode & 0o170000] ?? 'other';
    // newc hardlinks: the names of a shared inode carry its ino; readers link later names to the first
    const first = kind === 'file' && nlink > 1 ? firstName.get(ino) : undefined;
    if (first !== undefined) kind = 'hard';
    else if (kind === 'file' && nlink > 1) firstName.set(ino, name);
    entries.push({ name, kind, ...(kind === 'sym' ? { link: Buffer.from(data) } : first !== undefined ? { link: first } : {}) });
  }
  if (trailers.length === 0 || trailers[trailers.length - 1] !== entries.length) {
    throw new Error(`cpio: no trailer at the end (records end at byte ${pos} of ${bytes.length})`);
  }
  return { entries, earlyTrailers: trailers.slice(0, -1) };
}

/** Lists the tar or cpio (gzip or not) at `file`, by its leading bytes. */
export async function listArchive(file: string): Promise<ArchiveListing> {
  const data = readFileSync(file);
  const head = data[0] === 0x1f && data[1] === 0x8b ? gunzipSync(data.subarray(0, Math.min(data.length, 1 << 16)), { finishFlush: 2 }) : data;
  if (head.toString('latin1', 0, 6) === '070701') return { format: 'cpio', ...listCpio(data) };
  return { format: 'tar', entries: await listTar(file), earlyTrailers: [] };
}

/** `./a/b/` → `a/b`; '' for the root. */
function normalise(name: string): string {
  let n = name;
  while (n.startsWith('./')) n = n.slice(2);
  if (n === '.') return '';
  return n.replace(/\/+$/, '');
}

/** What is wrong with an archive's entries (empty: safe to extract). Names are compared as latin1 text (byte-exact). */
export function exportProblems(listing: ArchiveListing): string[] {
  const problems = listing.earlyTrailers.map((i) => `in-band TRAILER!!! after entry ${i} hides ${listing.entries.length - i} entries`);
  const kinds = new Map<string, ArchiveKind>([['', 'dir']]);
  let rootSeen = false;
  for (const e of listing.entries) {
    const raw = e.name.toString('latin1');
    const shown = JSON.stringify(e.name.toString('utf8'));
    const n = normalise(raw);
    const parts = n === '' ? [] : n.split('/');
    if (raw.startsWith('/') || parts.includes('..')) problems.push(`${shown} escapes the root`);
    if (parts.slice(raw.startsWith('/') ? 1 : 0).some((p) => p === '' || p === '.')) problems.push(`${shown} has an empty or '.' component`);
    // the parent alone: it passed this same check when it was listed (linear in the path bytes)
    if (parts.length > 1) {
      const parent = n.slice(0, n.lastIndexOf('/'));
      const k = kinds.get(parent);
      if (k === undefined) problems.push(`${shown}: its parent ${JSON.stringify(parent)} is not listed before it`);
      else if (k !== 'dir') problems.push(`${shown} is below ${k === 'sym' ? 'the symlink' : `the ${k}`} ${JSON.stringify(parent)}`);
    }
    if (n === '' ? rootSeen : kinds.has(n)) problems.push(`${shown} is listed twice`);
    if (n === '') rootSeen = true;
    if (e.kind === 'hard') {
      const t = normalise(e.link?.toString('latin1') ?? '');
      const tk = kinds.get(t);
      if (t === '' || e.link!.toString('latin1').startsWith('/') || t.split('/').includes('..')) problems.push(`${shown}: hardlink target escapes`);
      else if (tk !== 'file') problems.push(`${shown}: hardlink to ${JSON.stringify(t)}, which is no earlier file`);
    }
    // a later entry of the same name does not undo a symlink: tar -x and cpio -i keep following it
    if (kinds.get(n) !== 'sym') kinds.set(n, e.kind === 'hard' ? 'file' : e.kind);
  }
  return problems;
}

/** Lists and checks `file`; throws with every problem found. Returns the listing for further asserts. */
export async function assertSafeExport(file: string): Promise<ArchiveListing> {
  const listing = await listArchive(file);
  const problems = exportProblems(listing);
  if (problems.length > 0) {
    const shown = problems.slice(0, 20).join('\n  ');
    throw new Error(`${file} (${listing.format}, ${listing.entries.length} entries) is unsafe to extract:\n  ${shown}${problems.length > 20 ? `\n  … ${problems.length - 20} more` : ''}`);
  }
  return listing;
}

/** Entry names as text (`./` and trailing `/` removed), for asserts. */
export function entryNames(listing: ArchiveListing): string[] {
  return listing.entries.map((e) => normalise(e.name.toString('utf8')));
}
