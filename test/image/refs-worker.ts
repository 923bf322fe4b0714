/**
 * Child process for the refs.json race test (not a test file itself).
 * argv: <cache root> <prefix> <count>: records `count` names `<prefix>-<i>` one after another.
 */
import { CacheLayout } from '../../src/image/cache.js';
import { recordImage } from '../../src/image/refs.js';

async function main(): Promise<void> {
  const [root, prefix, count] = process.argv.slice(2);
  if (!root || !prefix || !count) throw new Error('usage: refs-worker <root> <prefix> <count>');
  const cache = new CacheLayout(root);
  for (let i = 0; i < Number(count); i++) await recordImage(cache, `${prefix}-${i}`, `sha256:${'0'.repeat(63)}${i % 10}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
