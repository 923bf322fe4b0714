/**
 * `vmimg`: parses arguments, runs one command, maps its outcome to an exit code (see exit-codes.ts).
 * Every failure is one coded line `vmimg: ERR_X: message` (+ `hint: …`), or one JSON object on stderr
 * with --json (report.ts); VMIMG_DEBUG=1 adds the stack and causes.
 */
import { setFlagsFromString } from 'node:v8';
import type yargs from 'yargs';
import { commandNames, loadCommands, type AnyCommand } from './commands/index.js';
import { setInterruptSignal } from './context.js';
import { ExitCode } from './exit-codes.js';
import { handleStopSignals, interruptedBy } from './signals.js';
import { removeTempFilesSync } from '../util/temp-files.js';
import { reportError } from './report.js';
import { ONE_PER_FLAG, firstWord, rewriteHelp, unknownCommand, usageError, wantsJson } from './usage.js';
import { argvBytes } from './argv.js';
import { loadYargs } from './yargs-lite.js';

/**
 * WebAssembly stays in V8's baseline compiler (Liftoff) in the CLI's process. undici parses HTTP with
 * llhttp compiled to wasm, and V8 otherwise recompiles that module with TurboFan on its helper threads:
 * ~300 ms of CPU in every command's first requests (`vmimg serve`'s first clients: fresh process 867-939
 * ms of CPU vs 582-632 with this, steady rounds 536-552 either way; session 11, bench/profile-serve.ts).
 * The bytes llhttp parses in undici are heads and small documents (blob bodies are read by node:http's
 * native parser, registry/direct-get.ts), so the optimized code would never pay for its compile. Set
 * before any wasm is compiled (undici compiles llhttp at its first connection); a library user's process
 * is left as it is.
 */
export const CLI_V8_FLAGS = '--liftoff-only';

const EPILOGUE = [
  'IMAGE is an image directory, an image tar (docker save / OCI archive), a cached image name or id,',
  'or a registry reference. Paths start with / ./ ../ ~, end in .tar .tar.gz .tgz, or exist; a missing',
  'path is not found (never pulled). docker://NAME forces a reference, oci-archive:PATH a tar.',
  'Cache: --cache-dir, else $VMIMG_CACHE_DIR, else',
  '$XDG_CACHE_HOME/vmimg, else ~/.cache/vmimg. Exit codes: 0 ok, 1 error, 2 usage, 3 not found,',
  '4 unauthorized, 5 platform mismatch, 6 integrity, 70 internal error (a bug), 130/143/129 interrupted',
  '(SIGINT/SIGTERM/SIGHUP: the command stops and removes its temp files).',
  'vmimg help COMMAND (or vmimg COMMAND --help) shows one command.',
].join('\n');

/** A command's name and usage line (`pull <ref>`), for usage errors. */
function commandInfo(commands: AnyCommand[], name: string | undefined): { name: string; usage: string } | undefined {
  const usage = commands.map((c) => String(c.command)).find((u) => u.split(' ')[0] === name);
  return name !== undefined && usage !== undefined ? { name, usage } : undefined;
}

function buildParser(yargsOf: typeof yargs, argv: string[], commands: AnyCommand[]) {
  const command = commandInfo(commands, firstWord(argv));
  let parser = yargsOf(argv)
    .scriptName('vmimg')
    .parserConfiguration({ 'populate--': true })
    .usage('$0 <command> [options]\n\nPrepare OCI/Docker container images for lightweight VMs.')
    .option('cache-dir', { type: 'string', describe: 'Cache directory', global: true })
    .option('arch', { type: 'string', describe: 'Architecture (amd64, arm64, ...)', global: true, conflicts: 'platform' })
    .option('platform', { type: 'string', describe: 'Platform os/arch[/variant] (linux/arm64/v8)', global: true, conflicts: 'arch' })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'No progress or informational output', global: true })
    .option('json', { type: 'boolean', describe: 'Machine-readable output (progress as JSON lines on stderr)', global: true })
    .option('username', { type: 'string', describe: 'Registry user name (with --password-stdin)', global: true, group: 'Registry options:' })
    .option('password-stdin', { type: 'boolean', describe: 'Read the registry password from stdin', global: true, group: 'Registry options:' })
    .option('insecure-registry', {
      type: 'string',
      array: true,
      ...ONE_PER_FLAG,
      describe: 'Registry host[:port] reached over plain HTTP (repeatable)',
      global: true,
      group: 'Registry options:',
    });
  for (const command of commands) parser = parser.command(command);
  // yargs' getOptions (untyped, in yargs 17-18): the options once the command's builder has run
  const declared = parser as unknown as { getOptions(): { array: string[]; boolean: string[] } };
  return parser
    .middleware((args) => refuseRepeats(args, declared.getOptions(), argv, command))
    .demandCommand(1, 'no command given')
    .strict()
    .example('$0 pull alpine:3.20 --arch arm64', 'Pull the arm64 image into the cache')
    .example('$0 load images/busybox-multiarch.oci.tar --arch amd64', 'Load an image tar into the cache')
    .example('$0 export ./vm-image', 'Export the most recent image as config.json + .idx/.contents')
    .example('$0 boot images/busybox-multiarch.oci.tar --arch arm64', 'Boot the sample under QEMU')
    .epilogue(EPILOGUE)
    .help()
    .alias('help', 'h')
    .version()
    .wrap(null)
    .exitProcess(false)
    .fail((msg: string | null, err: Error | undefined) => {
      // yargs' own parse errors (a flag missing its value) come as a YError: a usage error too
      if (err && err.name !== 'YError') throw err;
      throw usageError(msg ?? err?.message ?? 'invalid usage', argv, command);
    });
}

/**
 * An option given twice that takes one value: yargs makes it an array, which commands read as a string
 * (`--max-cache-size 2M --max-cache-size 3M` was ERR_INTERNAL, `--arch a --arch b` "a,b"). A usage
 * error instead; repeatable options (`array: true`) and flags are left alone.
 */
function refuseRepeats(args: Record<string, unknown>, options: { array: string[]; boolean: string[] }, argv: string[], command: { name: string; usage: string } | undefined): void {
  const { array, boolean } = options;
  const many = new Set([...array, ...boolean]);
  for (const [key, value] of Object.entries(args)) {
    if (key === '_' || key === '--' || !Array.isArray(value) || many.has(key) || /[A-Z]/.test(key)) continue;
    throw usageError(`${key.length === 1 ? '-' : '--'}${key} was given more than once; give it once`, argv, command);
  }
}

/**
 * yargs renders the whole help text as a command starts, in case its handler asks for it later (cliui's
 * string widths: 60-190 ms of every run); no vmimg handler does (usage errors print their own line),
 * so the render is skipped unless help was asked for. Reaches yargs' usage object through
 * `getInternalMethods`, which yargs 17-18 expose.
 */
function skipHelpCache(parser: object): void {
  const usage = (parser as { getInternalMethods(): { getUsageInstance(): { cacheHelpMessage(): void } } }).getInternalMethods().getUsageInstance();
  usage.cacheHelpMessage = () => {};
}

/** Unknown commands are refused before yargs (whose suggestions can be far-fetched: `run` → prune). */
function checkCommand(argv: string[]): void {
  const word = firstWord(argv);
  if (word !== undefined && !commandNames.includes(word)) throw unknownCommand(word, commandNames);
}

export async function main(rawArgv: string[]): Promise<void> {
  setFlagsFromString(CLI_V8_FLAGS);
  const argv = rewriteHelp(argvBytes(rawArgv)); // names in arguments keep their bytes
  const json = wantsJson(argv);
  const word = firstWord(argv);
  const command = word !== undefined && commandNames.includes(word) ? word : undefined;
  const arch = argv.some((a) => a === '--arch' || a.startsWith('--arch='));
  const report = (err: unknown): number => reportError(err, { json, arch, ...(command ? { command } : {}) }).exit;
  // Whatever way the process ends, the temp files exports registered go (process.exit included).
  process.on('exit', removeTempFilesSync);
  // An error thrown where no one awaits it (an event handler) is still one coded line, not a stack.
  const onUncaught = (err: unknown): void => process.exit(report(err));
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  const controller = new AbortController();
  setInterruptSignal(controller.signal);
  const stop = handleStopSignals(controller, process.stderr.isTTY === true && !json, (signal) => process.exit(report(interruptedBy(signal))));
  // The reader went away (`vmimg ls … | head`): stop quietly, like other Unix tools.
  // Any other stdout failure (EIO, ENOSPC) ends the command like other errors: one line, no stack.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitCode.OK);
    if (err.syscall !== undefined) err.message = `writing to stdout: ${err.message}`;
    process.exit(report(err));
  });
  try {
    checkCommand(argv);
    const help = argv.some((a) => a === '--help' || a === '-h');
    const [yargsOf, commands] = await Promise.all([loadYargs(argv), loadCommands(command, help)]);
    const parser = buildParser(yargsOf, argv, commands);
    if (!help) skipHelpCache(parser);
    await parser.parseAsync();
  } catch (err) {
    // a command stopped by a signal fails with an echo of the abort: the signal is the one thing to say
    if (stop.caught === undefined) process.exitCode = report(err);
  } finally {
    stop.dispose();
  }
  if (stop.caught !== undefined) process.exitCode = report(interruptedBy(stop.caught));
}
