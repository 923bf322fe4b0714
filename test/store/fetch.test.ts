import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { BlobStore } from '../../src/store/index.js';
import { VmimgError, isVmimgError } from '../../src/errors.js';
import { content, scriptedOpener, sha256, tempRoot } from './helpers.js';

const SIZE = 50_000;
const data = content(SIZE);
const digest = sha256(data);
const hex = digest.slice('sha256:'.length);
const fast = { retry: { baseDelayMs: 1 } };

async function partialSize(root: string): Promise<number | undefined> {
  try {
    return (await stat(join(root, 'partial', hex))).size;
  } catch {
    return undefined;
  }
}

async function leftovers(root: string): Promise<string[]> {
  try {
    return await readdir(join(root, 'partial'));
  } catch {
    return [];
  }
}

describe('fetchInto: downloads, resumes and retries', () => {
  it('downloads in one go and reports progress', async (t) => {
    const root = await tempRoot(t);
    const store = new BlobStore(root);
    const o = scriptedOpener(data);
    const progress: number[] = [];
    const res = await store.fetchInto({ digest, size: SIZE }, o.open, { onProgress: (n) => progress.push(n) });
    assert.deepEqual(res, { digest, size: SIZE, path: store.path(digest), fetched: true, resumedFrom: 0 });
    assert.deepEqual(o.calls, [0]);
    assert.equal(progress.at(-1), SIZE);
    assert.deepEqual(await readFile(store.path(digest)), data);
    assert.deepEqual(await leftovers(root), [], 'partial and lock are gone');
  });

  it('a present blob is not fetched again', async (t) => {
    const store = new BlobStore(await tempRoot(t));
    await store.putBytes(data, { digest, size: SIZE });
    const o = scriptedOpener(data);
    const res = await store.fetchInto({ digest, size: SIZE }, o.open);
    assert.equal(res.fetched, false);
    assert.deepEqual(o.calls, []);
  });

  // [name, script, expected open offsets]
  const retryCases: [string, Parameters<typeof scriptedOpener>[1], number[]][] = [
    ['body reset midway resumes from the byte reached', { failAfter: [12_345] }, [0, 12_345]],
    ['two resets', { failAfter: [10_000, 5_000] }, [0, 10_000, 15_000]],
    ['reset before the first byte', { failAfter: [0] }, [0, 0]],
    ['server ignores Range: starts over', { failAfter: [20_000], ignoreRange: true }, [0, 20_000]],
    ['open fails with a network error, then works', { openError: [new VmimgError('ERR_NETWORK', 'ECONNREFUSED')] }, [0, 0]],
    ['open fails with a plain ECONNRESET, then works', { openError: [Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })] }, [0, 0]],
  ];
  for (const [name, script, calls] of retryCases) {
    it(name, async (t) => {
      const root = await tempRoot(t);
      const store = new BlobStore(root);
      const o = scriptedOpener(data, script);
      const res = await store.fetchInto({ digest, size: SIZE }, o.open, fast);
      assert.equal(res.fetched, true);
      assert.deepEqual(o.calls, calls);
      assert.deepEqual(await readFile(store.path(digest)), data);
      assert.deepEqual(await leftovers(root), []);
    });
  }

  it('gives up after the attempts allowed in a row without progress, keeping the partial; a later call resumes it', async (t) => {
    const root = await tempRoot(t);
    const store = new BlobStore(root);
    const first = scriptedOpener(data, { failAfter: [3000, 0, 0] });
    await assert.rejects(store.fetchInto({ digest, size: SIZE }, first.open, { retry: { baseDelayMs: 1, attempts: 3 } }), /socket hang up/);
    assert.deepEqual(first.calls, [0, 3000, 3000], 'the first attempt made progress; the next two did not');
    assert.equal(await partialSize(root), 3000);
    assert.equal(await store.has(digest), false, 'an incomplete blob never looks complete');

    // A new store object (as a new process would) picks the partial up and rehashes it.
    const again = scriptedOpener(data);
    const res = await new BlobStore(root).fetchInto({ digest, size: SIZE }, again.open, fast);
    assert.equal(res.resumedFrom, 3000);
    assert.deepEqual(again.calls, [3000]);
    assert.deepEqual(await readFile(store.path(digest)), data);
  });

  it('a body that ends early is retried from where it stopped', async (t) => {
    const store = new BlobStore(await tempRoot(t));
    let calls = 0;
    const res = await store.fetchInto({ digest, size: SIZE }, async (offset) => {
      calls++;
      const end = calls === 1 ? 7000 : SIZE;
      return { stream: [data.subarray(offset, end)], offset };
    }, fast);
    assert.equal(res.fetched, true);
    assert.equal(calls, 2);
  });

  it('a complete partial left by a crash is verified and renamed without a request', async (t) => {
    const root = await tempRoot(t);
    await mkdir(join(root, 'partial'), { recursive: true });
    await writeFile(join(root, 'partial', hex), data);
    const o = scriptedOpener(data);
    const res = await new BlobStore(root).fetchInto({ digest, size: SIZE }, o.open, fast);
    assert.deepEqual(o.calls, []);
    assert.equal(res.resumedFrom, SIZE);
  });

  for (const hashHere of [false, true]) {
    it(`a corrupt partial is detected by the digest and refetched once from zero${hashHere ? ' (hashed on this thread)' : ''}`, async (t) => {
      const root = await tempRoot(t);
      await mkdir(join(root, 'partial'), { recursive: true });
      await writeFile(join(root, 'partial', hex), Buffer.alloc(4000, 7));
      const o = scriptedOpener(data);
      const res = await new BlobStore(root).fetchInto({ digest, size: SIZE }, o.open, { ...fast, hashHere });
      assert.deepEqual(o.calls, [4000, 0]);
      assert.equal(res.fetched, true);
      assert.deepEqual(await readFile(join(root, 'blobs', 'sha256', hex)), data);
    });
  }

  it('a partial longer than the blob is discarded', async (t) => {
    const root = await tempRoot(t);
    await mkdir(join(root, 'partial'), { recursive: true });
    await writeFile(join(root, 'partial', hex), Buffer.alloc(SIZE + 10));
    const o = scriptedOpener(data);
    await new BlobStore(root).fetchInto({ digest, size: SIZE }, o.open, fast);
    assert.deepEqual(o.calls, [0]);
  });
});

describe('fetchInto: verification failures leave nothing', () => {
  const other = content(SIZE, 'other');
  // [name, descriptor, served content, expected code]
  const cases: [string, { digest: string; size?: number }, Buffer, string][] = [
    ['wrong content, right size', { digest, size: SIZE }, other, 'ERR_DIGEST_MISMATCH'],
    ['wrong content, no size', { digest }, other, 'ERR_DIGEST_MISMATCH'],
    ['more bytes than the size', { digest, size: SIZE - 1 }, data, 'ERR_TOO_LARGE'],
  ];
  // both hashers: the hash pool's worker, and node:crypto on this thread (hashHere, as serve asks)
  for (const [name, desc, served, code] of cases) for (const hashHere of [false, true]) {
    it(`${name}${hashHere ? ' (hashed on this thread)' : ''}`, async (t) => {
      const root = await tempRoot(t);
      const store = new BlobStore(root);
      await assert.rejects(store.fetchInto(desc, scriptedOpener(served).open, { ...fast, hashHere }), (err: unknown) => {
        assert.ok(isVmimgError(err), String(err));
        assert.equal(err.code, code, err.message);
        return true;
      });
      assert.equal(await store.has(digest), false);
      assert.deepEqual(await leftovers(root), [], 'no partial, no lock');
    });
  }

  it('disk errors are never retried', async (t) => {
    const store = new BlobStore(await tempRoot(t));
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    const o = scriptedOpener(data, { openError: [full] });
    await assert.rejects(store.fetchInto({ digest, size: SIZE }, o.open, fast), /ENOSPC/);
    assert.deepEqual(o.calls, [0]);
  });

  it('non-retryable opener errors pass through at once', async (t) => {
    const store = new BlobStore(await tempRoot(t));
    const o = scriptedOpener(data, { openError: [new VmimgError('ERR_NOT_FOUND', 'blob unknown')] });
    await assert.rejects(store.fetchInto({ digest, size: SIZE }, o.open, fast), (err: unknown) => isVmimgError(err, 'ERR_NOT_FOUND'));
    assert.deepEqual(o.calls, [0]);
  });

  it('an opener claiming an offset beyond the partial is refused', async (t) => {
    const store = new BlobStore(await tempRoot(t));
    await assert.rejects(
      store.fetchInto({ digest, size: SIZE }, async () => ({ stream: [data], offset: 10 }), fast),
      (err: unknown) => isVmimgError(err, 'ERR_REGISTRY_ERROR'),
    );
  });

  it('abort keeps the partial for a later resume and says ERR_ABORTED', async (t) => {
    const root = await tempRoot(t);
    const store = new BlobStore(root);
    const ac = new AbortController();
    const o = scriptedOpener(data, { chunk: 1000 });
    const p = store.fetchInto({ digest, size: SIZE }, o.open, {
      ...fast,
      signal: ac.signal,
      onProgress: (n) => { if (n >= 5000) ac.abort(); },
    });
    await assert.rejects(p, (err: unknown) => isVmimgError(err, 'ERR_ABORTED'));
    assert.equal(await partialSize(root), 5000);
    assert.deepEqual(await leftovers(root), [hex], 'the lock is released');
  });
});

describe('fetchInto: concurrency and locks', () => {
  it('two concurrent calls in one process share one fetch', async (t) => {
    const store = new BlobStore(await tempRoot(t));
    const o = scriptedOpener(data, { chunk: 500 });
    const [a, b] = await Promise.all([
      store.fetchInto({ digest, size: SIZE }, o.open, fast),
      new BlobStore(store.root).fetchInto({ digest, size: SIZE }, o.open, fast),
    ]);
    assert.deepEqual(o.calls, [0]);
    assert.deepEqual([a.fetched, b.fetched].sort(), [false, true]);
    assert.deepEqual(await readFile(store.path(digest)), data);
  });

  it('a waiter whose leader aborts fetches on its own', async (t) => {
    const store = new BlobStore(await tempRoot(t));
    const ac = new AbortController();
    const o = scriptedOpener(data, { chunk: 1000 });
    const leader = store.fetchInto({ digest, size: SIZE }, o.open, {
      ...fast, signal: ac.signal, onProgress: (n) => { if (n >= 3000) ac.abort(); },
    });
    const follower = store.fetchInto({ digest, size: SIZE }, o.open, fast);
    await assert.rejects(leader, (err: unknown) => isVmimgError(err, 'ERR_ABORTED'));
    const res = await follower;
    assert.equal(res.fetched, true);
    assert.equal(res.resumedFrom, 3000);
    assert.deepEqual(await readFile(store.path(digest)), data);
  });

  it('waits while a live lock is held and returns the blob another writer stored', async (t) => {
    const root = await tempRoot(t);
    const store = new BlobStore(root);
    await mkdir(join(root, 'partial'), { recursive: true });
    const lock = join(root, 'partial', `${hex}.lock`);
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname(), token: 'other', created: Date.now() }));
    const o = scriptedOpener(data);
    const waiting = store.fetchInto({ digest, size: SIZE }, o.open, fast);
    await new BlobStore(root).putBytes(data, { digest, size: SIZE });
    const res = await waiting;
    assert.equal(res.fetched, false);
    assert.deepEqual(o.calls, []);
    assert.equal(JSON.parse(await readFile(lock, 'utf8')).token, 'other', 'someone else\'s lock is left alone');
  });

  it('breaks a lock whose process is gone', async (t) => {
    const root = await tempRoot(t);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const pid = Number(dead.stdout);
    assert.ok(pid > 0, 'child pid');
    await mkdir(join(root, 'partial'), { recursive: true });
    await writeFile(join(root, 'partial', `${hex}.lock`), JSON.stringify({ pid, host: hostname(), token: 'dead', created: 0 }));
    const o = scriptedOpener(data);
    const res = await new BlobStore(root).fetchInto({ digest, size: SIZE }, o.open, fast);
    assert.equal(res.fetched, true);
    assert.deepEqual(await leftovers(root), []);
  });

  it('breaks a lock not touched for staleLockMs (another host, or a frozen holder)', async (t) => {
    const root = await tempRoot(t);
    await mkdir(join(root, 'partial'), { recursive: true });
    const lock = join(root, 'partial', `${hex}.lock`);
    await writeFile(lock, JSON.stringify({ pid: 1, host: 'elsewhere', token: 'old', created: 0 }));
    const old = new Date(Date.now() - 3_600_000);
    await utimes(lock, old, old);
    const res = await new BlobStore(root).fetchInto({ digest, size: SIZE }, scriptedOpener(data).open, { ...fast, staleLockMs: 60_000 });
    assert.equal(res.fetched, true);
  });

  it('an aborted waiter stops waiting with ERR_ABORTED', async (t) => {
    const root = await tempRoot(t);
    await mkdir(join(root, 'partial'), { recursive: true });
    await writeFile(join(root, 'partial', `${hex}.lock`), JSON.stringify({ pid: process.pid, host: hostname(), token: 'x', created: 0 }));
    const ac = new AbortController();
    const p = new BlobStore(root).fetchInto({ digest, size: SIZE }, scriptedOpener(data).open, { signal: ac.signal });
    setImmediate(() => ac.abort());
    await assert.rejects(p, (err: unknown) => isVmimgError(err, 'ERR_ABORTED'));
  });
});
