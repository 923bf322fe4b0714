import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { BlobStore } from '../../src/store/index.js';
import { isVmimgError } from '../../src/errors.js';
import { content, sha256, tempRoot } from './helpers.js';

async function listTree(root: string, sub: string): Promise<string[]> {
  try {
    return await readdir(join(root, sub));
  } catch {
    return [];
  }
}

describe('BlobStore basics', () => {
  it('put stores at blobs/<alg>/<hex>; has, open, readBytes, walk, delete', async (t) => {
    const root = await tempRoot(t);
    const store = new BlobStore(root);
    const data = Buffer.from('hello, blob\n');
    const digest = sha256(data);
    assert.equal(await store.has(digest), false);
    const res = await store.put(Readable.from([data]), { digest, size: data.length });
    assert.deepEqual(res, { digest, size: data.length, path: join(root, 'blobs', 'sha256', digest.slice(7)), existed: false });
    assert.equal(await store.has(digest), true);
    assert.equal(await store.has(digest, data.length), true);
    assert.equal(await store.has(digest, data.length + 1), false);
    assert.equal(store.path(digest), res.path);
    assert.equal(await text(await store.open(digest)), 'hello, blob\n');
    assert.deepEqual(await store.readBytes(digest), data);
    const walked = [];
    for await (const b of store.walk()) walked.push(b);
    assert.deepEqual(walked, [{ digest, size: data.length }]);
    assert.deepEqual(await listTree(root, 'tmp'), [], 'no temp files left');
    assert.equal(await store.delete(digest), true);
    assert.equal(await store.delete(digest), false);
    assert.equal(await store.has(digest), false);
  });

  it('put without a size, from an async iterable of many chunks', async (t) => {
    const store = new BlobStore(await tempRoot(t));
    const data = content(300_000);
    async function* gen(): AsyncGenerator<Buffer> {
      for (let i = 0; i < data.length; i += 4096) yield data.subarray(i, i + 4096);
    }
    const res = await store.put(gen(), { digest: sha256(data) });
    assert.equal(res.size, data.length);
    assert.deepEqual(await store.readBytes(res.digest), data);
  });

  it('"already exists" is a success and does not read the source', async (t) => {
    const store = new BlobStore(await tempRoot(t));
    const data = Buffer.from('x');
    await store.putBytes(data, { digest: sha256(data), size: 1 });
    let read = false;
    const source = new Readable({ read() { read = true; this.push(null); } });
    const res = await store.put(source, { digest: sha256(data), size: 1 });
    assert.equal(res.existed, true);
    assert.equal(read, false);
    assert.equal(source.destroyed, true);
  });

  it('walk skips foreign names and temp/partial files', async (t) => {
    const root = await tempRoot(t);
    const store = new BlobStore(root);
    const a = Buffer.from('a');
    await store.putBytes(a, { digest: sha256(a) });
    await writeFile(join(root, 'blobs', 'sha256', 'not-a-digest'), 'x');
    await mkdir(join(root, 'partial'), { recursive: true });
    await writeFile(join(root, 'partial', 'f'.repeat(64)), 'x');
    const walked = [];
    for await (const b of store.walk()) walked.push(b.digest);
    assert.deepEqual(walked, [sha256(a)]);
  });

  it('an empty store walks to nothing', async (t) => {
    const store = new BlobStore(await tempRoot(t));
    const walked = [];
    for await (const b of store.walk()) walked.push(b);
    assert.deepEqual(walked, []);
  });
});

describe('BlobStore verification failures leave nothing behind', () => {
  const data = content(10_000);
  // [name, descriptor, body, expected code]
  const cases: [string, { digest: string; size?: number }, Buffer, string][] = [
    ['wrong digest', { digest: sha256(Buffer.from('other')) }, data, 'ERR_DIGEST_MISMATCH'],
    ['wrong digest, right size', { digest: sha256(Buffer.from('other')), size: data.length }, data, 'ERR_DIGEST_MISMATCH'],
    ['too many bytes', { digest: sha256(data), size: data.length - 1 }, data, 'ERR_TOO_LARGE'],
    ['too few bytes', { digest: sha256(data), size: data.length + 1 }, data, 'ERR_DIGEST_MISMATCH'],
    ['truncated body', { digest: sha256(data), size: data.length }, data.subarray(0, 5000), 'ERR_DIGEST_MISMATCH'],
  ];
  for (const [name, desc, body, code] of cases) {
    it(name, async (t) => {
      const root = await tempRoot(t);
      const store = new BlobStore(root);
      await assert.rejects(store.put(Readable.from([body.subarray(0, 4000), body.subarray(4000)]), desc), (err: unknown) => {
        assert.ok(isVmimgError(err), `not a VmimgError: ${String(err)}`);
        assert.equal(err.code, code, err.message);
        return true;
      });
      assert.equal(await store.has(desc.digest), false);
      assert.deepEqual(await listTree(root, 'tmp'), []);
      assert.deepEqual(await listTree(root, 'blobs/sha256'), []);
    });
  }

  it('a source that errors midway leaves nothing', async (t) => {
    const root = await tempRoot(t);
    const store = new BlobStore(root);
    async function* broken(): AsyncGenerator<Buffer> {
      yield data.subarray(0, 100);
      throw new Error('connection reset');
    }
    await assert.rejects(store.put(broken(), { digest: sha256(data) }), /connection reset/);
    assert.deepEqual(await listTree(root, 'tmp'), []);
    assert.equal(await store.has(sha256(data)), false);
  });

  it('an aborted put is ERR_ABORTED and leaves nothing', async (t) => {
    const root = await tempRoot(t);
    const store = new BlobStore(root);
    const ac = new AbortController();
    async function* slow(): AsyncGenerator<Buffer> {
      yield data.subarray(0, 100);
      ac.abort();
      await new Promise((r) => setImmediate(r));
      yield data.subarray(100);
    }
    await assert.rejects(store.put(slow(), { digest: sha256(data) }, { signal: ac.signal }), (err: unknown) =>
      isVmimgError(err, 'ERR_ABORTED'));
    assert.deepEqual(await listTree(root, 'tmp'), []);
  });
});

describe('BlobStore digests and reads', () => {
  const bad = ['sha256:../../etc/passwd', 'sha256:ABC', `md5:${'a'.repeat(32)}`, '../x', ''];
  for (const digest of bad) {
    it(`refuses digest ${JSON.stringify(digest)} before touching a file`, async (t) => {
      const store = new BlobStore(await tempRoot(t));
      assert.throws(() => store.path(digest), (err: unknown) => isVmimgError(err, 'ERR_INVALID_DIGEST'));
      await assert.rejects(store.has(digest), (err: unknown) => isVmimgError(err, 'ERR_INVALID_DIGEST'));
      await assert.rejects(store.put(Readable.from([Buffer.from('x')]), { digest }), (err: unknown) => isVmimgError(err, 'ERR_INVALID_DIGEST'));
      await assert.rejects(store.fetchInto({ digest }, async () => { throw new Error('not called'); }), (err: unknown) =>
        isVmimgError(err, 'ERR_INVALID_DIGEST'));
    });
  }

  it('open and readBytes of a missing blob are ERR_NOT_FOUND', async (t) => {
    const store = new BlobStore(await tempRoot(t));
    const digest = sha256(Buffer.from('missing'));
    await assert.rejects(store.open(digest), (err: unknown) => isVmimgError(err, 'ERR_NOT_FOUND'));
    await assert.rejects(store.readBytes(digest), (err: unknown) => isVmimgError(err, 'ERR_NOT_FOUND'));
  });

  it('readBytes enforces maxBytes and detects on-disk corruption', async (t) => {
    const store = new BlobStore(await tempRoot(t));
    const data = content(2000);
    const { path, digest } = await store.putBytes(data, { digest: sha256(data), size: data.length });
    await assert.rejects(store.readBytes(digest, 1999), (err: unknown) => isVmimgError(err, 'ERR_TOO_LARGE'));
    assert.equal((await store.readBytes(digest, 2000)).length, 2000);
    const corrupt = Buffer.from(await readFile(path));
    corrupt[0] = corrupt[0]! ^ 0xff;
    await writeFile(path, corrupt);
    await assert.rejects(store.readBytes(digest), (err: unknown) => isVmimgError(err, 'ERR_DIGEST_MISMATCH'));
    assert.equal((await stat(path)).size, 2000);
  });
});
