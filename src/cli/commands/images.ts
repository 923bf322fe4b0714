import type { CommandModule } from 'yargs';
import { listImages } from '../../image/catalog.js';
import type { GlobalArgs } from '../context.js';
import { humanBytes, platformText, shortDigest, table } from '../format.js';
import { run } from './common.js';
import { escapeTerminal } from '../escape.js';

export const imagesCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'images',
  describe: 'List cached images, most recent first',
  builder: (y) => y.example('$0 images --json', 'As a JSON array'),
  handler: run<object>(async (ctx) => {
    const images = await listImages(ctx.cache);
    if (ctx.json) {
      ctx.out(JSON.stringify(images));
      return;
    }
    const rows = [['NAME', 'ID', 'PLATFORM', 'SIZE', 'CREATED']];
    for (const i of images) {
      rows.push([escapeTerminal(i.names.join(',')) || '<none>', shortDigest(i.id), platformText(i.platform), humanBytes(i.size), i.createdAt]);
    }
    for (const line of table(rows)) ctx.out(line);
  }),
};
