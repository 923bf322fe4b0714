import type { CommandModule } from 'yargs';
import { prune } from '../../index.js';
import type { GlobalArgs } from '../context.js';
import { humanBytes } from '../format.js';
import { run } from './common.js';

export const pruneCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'prune',
  describe: 'Delete layers and blobs no cached image uses, and leftovers of interrupted runs',
  builder: (y) => y.example('$0 prune', 'Reports the space freed'),
  handler: run<object>(async (ctx) => {
    const result = await prune(ctx.cache);
    if (ctx.json) {
      ctx.out(JSON.stringify(result));
      return;
    }
    ctx.out(`freed ${humanBytes(result.bytesFreed)} (${result.removedLayers} layers, ${result.removedBlobs} blobs)`);
  }),
};
