/**
 * A plain layer tar that lies in a file (a `docker save` member, an OCI layout's blob) is read by the
 * flattener from its file straight into the tar's hash ring (tar-source.ts `readRegionToRing`), not
 * through the stream it was opened as. Here a python tarfile tar, larger than the ring and with a file
 * body larger than the ring, sits inside a bigger file: flattened from its region, it gives the same
 * `.idx` and `.contents` as flattened from a plain stream of its bytes, while the region's stream
 * yields no more than its head; a region past the file's end is ERR_INVALID_ARCHIVE, and a tar
 * damaged after the first ring's worth is reported as the digest mismatch it is.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { flattenLayer } from '../../src/layer/flatten.js';
import { withRegion, type FileRegion } from '../../src/util/file-region.js';
import { isVmimgError } from '../../src/errors.js';
import { run, tmpDir } from '../helpers/tools.js';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const MIB = 1 << 20;

// 300 small text files around three random ones (3, 9 and 4 MiB: the 9 MiB body is larger than any ring)
const PYTHON = `
import io, os, random, sys, tarfile
random.seed(7)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as t:
    for i in range(300):
        if i in (20, 150, 280):
            data = random.randbytes({20: 3, 150: 9, 280: 4}[i] << 20)
        else:
            data = ''.join(f'{i} line {n}\\n' for n in range(i % 50)).encode()
        info = tarfile.TarInfo(f'd{i % 7}/f{i:03}')
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
open(sys.argv[1], 'wb').write(buf.getvalue())
`;

let tar: Buffer;
let work: string;
before(async () => {
  work = await tmpDir('vmimg-region-');
  await run('python3', ['-c', PYTHON, join(work, 'layer.tar')]);
  tar = readFileSync(join(work, 'layer.tar'));
  assert.ok(tar.length > 16 * MIB, `${tar.length} bytes`);
});

/** `tar` (or `bytes`) inside a file, between 7000 and 3000 bytes of something else. */
function embedded(name: string, bytes = tar): FileRegion {
  const path = join(work, name);
  writeFileSync(path, Buffer.concat([Buffer.alloc(7000, 0x41), bytes, Buffer.alloc(3000, 0x42)]));
  return { path, offset: 7000, length: bytes.length };
}

function regionStream(region: FileRegion, length = region.length): Readable {
  return withRegion(createReadStream(region.path, { start: region.offset, end: region.offset + length - 1, highWaterMark: MIB }), region);
}

const layerFiles = (dir: string): Record<string, Buffer> => Object.fromEntries(readdirSync(dir).filter((n) => /\.(idx|contents)$/.test(n)).map((n) => [n, readFileSync(join(dir, n))]));

test('a plain tar in a file region flattens as its bytes do, read from the file, not its stream', async () => {
  const region = embedded('whole.bin');
  const stream = regionStream(region);
  const seen: number[] = [];
  const a = await flattenLayer(stream, { dir: join(work, 'a'), expectedDigest: sha(tar), expectedDiffId: sha(tar), onRead: (n) => seen.push(n) });
  const b = await flattenLayer(Readable.from([tar]), { dir: join(work, 'b'), expectedDigest: sha(tar), expectedDiffId: sha(tar) });
  assert.deepEqual({ ...a, indexPath: '', contentsPath: '' }, { ...b, indexPath: '', contentsPath: '' });
  assert.equal(a.compressedSize, tar.length);
  const [fa, fb] = [layerFiles(join(work, 'a')), layerFiles(join(work, 'b'))];
  assert.deepEqual(Object.keys(fa).sort(), Object.keys(fb).sort());
  for (const name of Object.keys(fb)) assert.ok(fa[name]!.equals(fb[name]!), `${name} differs`);
  assert.ok((stream as unknown as { bytesRead: number }).bytesRead <= 2 * MIB, `the stream gave ${(stream as unknown as { bytesRead: number }).bytesRead} bytes`);
  assert.equal(Math.max(...seen), tar.length, 'progress reaches the whole tar');
  assert.deepEqual(seen, [...seen].sort((x, y) => x - y), 'progress only grows');
});

test('a region past the end of its file is ERR_INVALID_ARCHIVE', async () => {
  const region = embedded('short.bin');
  const lying = { ...region, length: region.length + 20_000 }; // 3000 bytes follow the tar in the file
  await assert.rejects(flattenLayer(regionStream(lying, region.length), { dir: join(work, 'c') }), (e: unknown) => {
    assert.ok(isVmimgError(e, 'ERR_INVALID_ARCHIVE'), String(e));
    assert.match((e as Error).message, /ends inside a layer/);
    return true;
  });
});

test('a tar damaged past the first ring read from its region is ERR_DIGEST_MISMATCH, the rest hashed from the file', async () => {
  const bad = Buffer.from(tar);
  // the header of the last file, past the 9 MiB body: a checksum that fails makes the tar invalid
  const at = bad.lastIndexOf(Buffer.from('d0/f294'));
  assert.ok(at > 12 * MIB, `header at ${at}`);
  bad[at] = 0x65;
  const region = embedded('bad.bin', bad);
  await assert.rejects(flattenLayer(regionStream(region), { dir: join(work, 'd'), expectedDigest: sha(tar), expectedDiffId: sha(tar) }), (e: unknown) => {
    assert.ok(isVmimgError(e, 'ERR_DIGEST_MISMATCH'), String(e));
    assert.equal((e as { details?: { actual?: string } }).details?.actual, sha(bad), 'the whole damaged tar was hashed');
    return true;
  });
  // a docker save's layer comes with its diff_id alone: for a plain tar that is its digest too
  await assert.rejects(flattenLayer(regionStream(region), { dir: join(work, 'd2'), expectedDiffId: sha(tar) }), (e: unknown) => {
    assert.ok(isVmimgError(e, 'ERR_DIGEST_MISMATCH'), String(e));
    return true;
  });
});

test('an abort mid-read rejects with ERR_ABORTED and leaves the region file closed', async () => {
  const region = embedded('abort.bin');
  const controller = new AbortController();
  const dir = join(work, 'e');
  await assert.rejects(
    flattenLayer(regionStream(region), { dir, signal: controller.signal, onRead: (n) => n >= 8 * MIB && controller.abort() }),
    (e: unknown) => isVmimgError(e, 'ERR_ABORTED'),
  );
  const regionFds = (): string[] =>
    readdirSync('/proc/self/fd').flatMap((fd) => {
      try {
        const p = readlinkSync(`/proc/self/fd/${fd}`);
        return p === region.path ? [p] : [];
      } catch {
        return [];
      }
    });
  // a read in flight settles, then the handle closes: polled (a loaded host may take longer than a fixed wait), 10 s at most
  for (const deadline = Date.now() + 10_000; regionFds().length > 0 && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(regionFds(), [], 'no descriptor of the region file stays open');
  assert.deepEqual(readdirSync(dir).filter((n) => /\.(idx|contents)$/.test(n)), [], 'nothing flattened is left');
});
