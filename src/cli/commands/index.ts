/**
 * Every command, in the order `vmimg --help` lists them, as a loader: a command's module (and the
 * library code it imports) is imported only when that command runs or its help is shown. Importing
 * all of them cost every `vmimg` process ~0.5 CPU-s (issue 13). A new command is one line here.
 */
import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../context.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyCommand = CommandModule<GlobalArgs, any>;

/** Command name (the first word of its `command` string) → the import of its module. */
export const commandLoaders: Record<string, () => Promise<AnyCommand>> = {
  pull: async () => (await import('./pull.js')).pullCommand,
  push: async () => (await import('./push.js')).pushCommand,
  load: async () => (await import('./load.js')).loadCommand,
  export: async () => (await import('./export.js')).exportCommand,
  inspect: async () => (await import('./inspect.js')).inspectCommand,
  images: async () => (await import('./images.js')).imagesCommand,
  ls: async () => (await import('./ls.js')).lsCommand,
  cat: async () => (await import('./cat.js')).catCommand,
  resolve: async () => (await import('./resolve.js')).resolveCommand,
  rm: async () => (await import('./rm.js')).rmCommand,
  prune: async () => (await import('./prune.js')).pruneCommand,
  validate: async () => (await import('./validate.js')).validateCommand,
  boot: async () => (await import('./boot.js')).bootCommand,
  serve: async () => (await import('./serve.js')).serveCommand,
  index: async () => (await import('./layer-index.js')).indexCommand,
  stats: async () => (await import('./stats.js')).statsCommand,
};

/** The command names, in help order. */
export const commandNames: string[] = Object.keys(commandLoaders);

/**
 * The command modules yargs needs for this run: only `name`'s when a command is given (its run and
 * its `--help`), every one for the program's own help (which lists them all), none otherwise
 * (`--version`, a missing command).
 */
export async function loadCommands(name: string | undefined, help: boolean): Promise<AnyCommand[]> {
  const names = name !== undefined ? (commandLoaders[name] ? [name] : []) : help ? commandNames : [];
  return Promise.all(names.map((n) => commandLoaders[n]!()));
}
