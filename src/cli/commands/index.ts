/** Every command module, in the order `vmimg --help` lists them. */
import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../context.js';
import { bootCommand } from './boot.js';
import { catCommand } from './cat.js';
import { exportCommand } from './export.js';
import { imagesCommand } from './images.js';
import { indexCommand } from './layer-index.js';
import { inspectCommand } from './inspect.js';
import { loadCommand } from './load.js';
import { lsCommand } from './ls.js';
import { pruneCommand } from './prune.js';
import { pullCommand } from './pull.js';
import { pushCommand } from './push.js';
import { resolveCommand } from './resolve.js';
import { rmCommand } from './rm.js';
import { serveCommand } from './serve.js';
import { validateCommand } from './validate.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<GlobalArgs, any>[] = [
  pullCommand,
  pushCommand,
  loadCommand,
  exportCommand,
  inspectCommand,
  imagesCommand,
  lsCommand,
  catCommand,
  resolveCommand,
  rmCommand,
  pruneCommand,
  validateCommand,
  bootCommand,
  serveCommand,
  indexCommand,
];
