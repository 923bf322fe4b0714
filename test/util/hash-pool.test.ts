/**
 * The worker-thread hash pool (src/util/hash-pool.ts): whole-stream and part digests judged by
 * coreutils' sha256sum and node:crypto, a ring smaller than the data, parts across the ring's wrap,
 * zero runs, a window that can never free (an error, not a hang), a long zero run stopped by
 * destroy, when a shared ring may serve another stream, and an idle pool that lets the process exit.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HashPool } from '../../src/util/hash-pool.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { run, runFull, tmpDir } from '../helpers/tools.js';

const sha = (...bufs: Uint8Array[]): string => {
  const h = createHash('sha256');
  for (const b of bufs) h.update(b);
  return h.digest('hex');
};

let dir: string;
let pool: HashPool;
before(async () => {
  dir = await tmpDir('vmimg-hash-pool-');
  pool = new HashPool({ threads: 2 });
});
after(() => pool.close());

describe('hash pool', () => {
  it('a whole-stream digest of 5 MiB pushed in odd chunks through a 256 KiB ring equals sha256sum', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 17);
    const file = join(dir, 'data');
    await writeFile(file, data);
    const s = pool.stream({ whole: true, ranges: false, ringBytes: 256 * 1024 });
    for (let at = 0; at < data.length; at += 100_003) await s.push(data.subarray(at, at + 100_003));
    assert.equal(await s.end(), (await run('sha256sum', [file])).split(' ')[0]);
    assert.equal(await pool.digest(data.subarray(0, 1000)), sha(data.subarray(0, 1000)));
  });

  it('parts over ranges that cross chunks and the ring wrap, with zero runs, match node:crypto', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const s = pool.stream({ whole: true, ringBytes: 1024 * 1024 });
    // "files" of varied sizes laid end to end, some with a hole in the middle
    const digests: Promise<string>[] = [];
    const expected: string[] = [];
    let start = 0;
    let pushed = 0;
    for (let i = 0; start < data.length; i++) {
      const size = Math.min([1, 511, 4096, 70_000, 300_001][i % 5]!, data.length - start);
      while (pushed < start + size) {
        await s.push(data.subarray(pushed, pushed + 65_536));
        pushed = Math.min(pushed + 65_536, data.length);
      }
      const p = s.part();
      const mid = start + Math.floor(size / 2);
      const hole = i % 3 === 0 ? 12_345 : 0;
      p.range(start, mid);
      p.zeros(hole);
      p.range(mid, start + size);
      digests.push(p.digest());
      expected.push(sha(data.subarray(start, mid), Buffer.alloc(hole), data.subarray(mid, start + size)));
      start += size;
      s.release(start);
    }
    assert.deepEqual(await Promise.all(digests), expected);
    assert.equal(await s.end(), sha(data));
    assert.ok(expected.length > 30, `${expected.length} parts`);
  });

  it('a push that could only fit by overwriting unreleased bytes fails instead of waiting forever', async () => {
    const s = pool.stream({ ringBytes: 64 * 1024 });
    await s.push(randomBytes(40 * 1024));
    await assert.rejects(s.push(randomBytes(40 * 1024)), (err: Error & { code?: string }) => err.code === 'ERR_INTERNAL' && /not released/.test(err.message));
    s.destroy();
  });

  it('destroy stops a part hashing a terabyte of zeros, and the worker goes on with other streams', { timeout: 60_000 }, async () => {
    const single = new HashPool({ threads: 1 });
    try {
      const s = single.stream();
      const p = s.part();
      p.zeros(2 ** 40);
      void p.digest();
      s.flush();
      await new Promise((r) => setTimeout(r, 50));
      s.destroy();
      assert.equal(await single.digest(Buffer.from('abc')), sha(Buffer.from('abc')));
    } finally {
      await single.close();
    }
  });

  it('an idle pool lets its cached rings and workers go (trim; its rings alone after a second with nothing queued) and starts again on demand', async () => {
    const idle = new HashPool({ threads: 1 });
    try {
      const ringOf = async (): Promise<SharedArrayBuffer> => {
        const s = idle.stream({ whole: true, ranges: false, ringBytes: 64 << 10 });
        await s.push(Buffer.from('abc'));
        assert.equal(await s.end(), sha(Buffer.from('abc')));
        return s.sharedRing.sab;
      };
      const first = await ringOf();
      assert.equal(await ringOf(), first, 'a busy pool reuses its ring');
      idle.trim();
      const second = await ringOf();
      assert.notEqual(second, first, 'trimmed: a new ring, hashed by a new worker');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.notEqual(await ringOf(), second, 'idle for a second: its rings dropped by itself');
    } finally {
      await idle.close();
    }
  });

  it('a shared ring serves a later stream only once the stream ended and its writer let go; a destroyed one never', async () => {
    const p = new HashPool({ threads: 1 });
    try {
      const opts = { whole: true, ranges: false, shared: true, ringBytes: 64 << 10 } as const;
      const a = p.stream(opts);
      await a.push(Buffer.from('abc'));
      assert.equal(await a.end(), sha(Buffer.from('abc')));
      const b = p.stream(opts);
      assert.notEqual(b.sharedRing.sab, a.sharedRing.sab, 'ended, but its writer has not let go');
      a.writerDone();
      a.writerDone(); // idempotent: the ring is cached once
      const c = p.stream(opts);
      const d = p.stream(opts);
      assert.equal(c.sharedRing.sab, a.sharedRing.sab, 'ended and let go: reused');
      assert.notEqual(d.sharedRing.sab, a.sharedRing.sab, 'cached once');
      b.writerDone();
      b.destroy();
      const e = p.stream(opts);
      assert.notEqual(e.sharedRing.sab, b.sharedRing.sab, 'destroyed: its writer may still be writing');
      for (const s of [c, d, e]) assert.equal(await s.end(), sha()); // every answer in before the pool closes
    } finally {
      await p.close();
    }
  });

  it('an idle pool does not keep the process alive', { timeout: 60_000 }, async () => {
    const script = join(dir, 'exit.mts');
    const src = JSON.stringify(join(REPO_ROOT, 'src', 'util', 'hash-pool.ts'));
    await writeFile(script, `import { sharedHashPool } from ${src};\nconsole.log(await sharedHashPool().digest(Buffer.from('abc')));\n`);
    const r = await runFull(process.execPath, ['--import', 'tsx', script], { cwd: REPO_ROOT, timeoutMs: 50_000 });
    assert.equal(r.stdout.trim(), sha(Buffer.from('abc')), r.stderr);
    // nor one whose worker never answered anything (a stream opened, then unused: an ext4 export refused
    // for its --size hung the CLI while the worker was ref'd by its 'message' listener)
    const opened = join(dir, 'opened.mts');
    await writeFile(opened, `import { sharedHashPool } from ${src};\nsharedHashPool().stream();\nconsole.log('opened');\n`);
    const o = await runFull(process.execPath, ['--import', 'tsx', opened], { cwd: REPO_ROOT, timeoutMs: 50_000 });
    assert.equal(o.stdout.trim(), 'opened', o.stderr);
  });
});
