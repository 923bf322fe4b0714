/**
 * serve's PendingCommits (src/serve/commits.ts): manifests answered before their commit are served
 * from memory until it ends, one commit per digest, a failure goes to its handler, and past the byte
 * bound a miss waits for its own commit. Commits here are promises the test ends (what is tested is
 * the bookkeeping; test/serve/faults.test.ts and full-disk.test.ts run real commits).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PendingCommits } from '../../src/serve/commits.js';

const manifest = (digest: string, bytes: number) => ({ digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes: Buffer.alloc(bytes) });
const tick = () => new Promise((r) => setImmediate(r));

/** A commit the test ends, and whether it ran. */
function gate(): { run: () => Promise<void>; end: (err?: Error) => void; calls: () => number } {
  let calls = 0;
  let end!: (err?: Error) => void;
  const p = new Promise<void>((resolve, reject) => (end = (err) => (err ? reject(err) : resolve())));
  return { run: () => (calls++, p), end, calls: () => calls };
}

describe('serve: manifests committing after their answer', () => {
  it('serves each from memory until its commit ends, commits a digest once, and past the bound waits for the commit', async () => {
    const commits = new PendingCommits(15);
    const a = gate();
    const failures: unknown[] = [];
    let answered = false;
    await commits.start(manifest('a', 10), a.run, (e) => failures.push(e)).then(() => (answered = true));
    assert.ok(answered, 'under the bound: answered at once');
    assert.equal(commits.get('a')?.bytes.length, 10);
    await commits.start(manifest('a', 10), a.run, (e) => failures.push(e));
    assert.equal(a.calls(), 1, 'one commit per digest');

    const b = gate();
    let bDone = false;
    const bAnswer = commits.start(manifest('b', 10), b.run, (e) => failures.push(e)).then(() => (bDone = true));
    await tick();
    assert.equal(bDone, false, 'over the bound: the answer waits for its commit');
    assert.ok(commits.get('b'), 'and it is served from memory meanwhile');
    b.end(new Error('ENOSPC'));
    await bAnswer;
    assert.deepEqual(failures.map((e) => (e as Error).message), ['ENOSPC']);
    assert.equal(commits.get('b'), undefined);

    let idle = false;
    const waiting = commits.idle().then(() => (idle = true));
    await tick();
    assert.equal(idle, false, 'a commit still runs');
    a.end();
    await waiting;
    await commits.committed('a');
    assert.equal(commits.get('a'), undefined);
    let c = false;
    await commits.start(manifest('c', 15), gate().run, () => undefined).then(() => (c = true));
    assert.ok(c, 'the bytes of ended commits are given back');
  });
});
