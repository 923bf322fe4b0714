import type { CommandModule } from 'yargs';
import { prune, type PruneResult } from '../../image/prune.js';
import type { GlobalArgs } from '../context.js';
import { humanBytes } from '../format.js';
import { run } from './common.js';

interface Args {
  partials?: boolean;
}

export const pruneCommand: CommandModule<GlobalArgs, GlobalArgs & Args> = {
  command: 'prune',
  describe: 'Delete layers and blobs no cached image uses, and leftovers of interrupted runs',
  builder: (y) =>
    y
      .option('partials', { type: 'boolean', describe: 'Also delete partial downloads of interrupted pulls and the upload sessions of interrupted pushes (a rerun would resume them)' })
      .example('$0 prune', 'Reports the space freed and what was kept, and why')
      .example('$0 prune --partials', 'Also drop what interrupted pulls downloaded so far'),
  handler: run<Args>(async (ctx, args) => {
    const result = await prune(ctx.cache, { partials: args.partials === true, signal: ctx.signal });
    if (ctx.json) {
      ctx.out(JSON.stringify(result));
      return;
    }
    if (!ctx.quiet) for (const line of pruneReport(result)) ctx.out(line);
  }),
};

/** What prune freed, then one line per reason something was kept, each saying how to free it. */
export function pruneReport(r: PruneResult): string[] {
  const leftovers = r.removedLeftovers > 0 ? `, ${plural(r.removedLeftovers, 'leftover')} of interrupted runs` : '';
  const lines = [`freed ${humanBytes(r.bytesFreed)} (${plural(r.removedLayers, 'layer')}, ${plural(r.removedBlobs, 'blob')}${leftovers})`];
  const { linked, inUse, partials } = r.kept;
  if (linked.files > 0) {
    lines.push(
      `kept ${humanBytes(linked.bytes)} in ${plural(linked.files, 'layer file')} no cached image uses: they are also hard-linked ` +
        'from outside the cache (directories written by vmimg export); delete those exports to free it',
    );
  }
  if (partials.files > 0) {
    lines.push(
      `kept ${humanBytes(partials.bytes)} in ${plural(partials.files, 'partial download')} of interrupted pulls: ` +
        'rerunning the pull resumes from them; vmimg prune --partials deletes them',
    );
  }
  if (inUse.files > 0 || inUse.owners.length > 0) {
    const who = inUse.owners.length > 0 ? ` (pid ${inUse.owners.join(', ')})` : '';
    lines.push(`kept ${humanBytes(inUse.bytes)} in ${plural(inUse.files, 'file')} in use by a running vmimg pull, load or serve${who}: prune again when it ends`);
  }
  return lines;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
