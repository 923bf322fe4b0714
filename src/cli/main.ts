/**
 * `vmimg`: parses arguments, runs one command, maps its outcome to an exit code (see exit-codes.ts).
 * Errors print as `vmimg: <message>` (+ `hint: …`); VMIMG_DEBUG=1 adds the stack and causes.
 */
import yargs from 'yargs';
import { isVmimgError } from '../index.js';
import { commands } from './commands/index.js';
import { setInterruptSignal } from './context.js';
import { ExitCode, UsageError, exitCodeFor } from './exit-codes.js';
import { escapeTerminal } from './escape.js';

const EPILOGUE = [
  'IMAGE is an image directory, an image tar (docker save / OCI archive), a cached image name or id,',
  'or a registry reference, tried in that order. Cache: --cache-dir, else $VMIMG_CACHE_DIR, else',
  '$XDG_CACHE_HOME/vmimg, else ~/.cache/vmimg. Exit codes: 0 ok, 1 error, 2 usage, 3 not found,',
  '4 unauthorized, 5 platform mismatch, 6 integrity, 130 interrupted.',
].join('\n');

function buildParser(argv: string[]) {
  let parser = yargs(argv)
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
      describe: 'Registry host[:port] reached over plain HTTP (repeatable)',
      global: true,
      group: 'Registry options:',
    });
  for (const command of commands) parser = parser.command(command);
  return parser
    .demandCommand(1, 'name a command (vmimg --help lists them)')
    .recommendCommands()
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
      if (err) throw err;
      throw new UsageError(msg ?? 'invalid usage');
    });
}

export async function main(argv: string[]): Promise<void> {
  const controller = new AbortController();
  setInterruptSignal(controller.signal);
  const onSigint = (): void => {
    if (controller.signal.aborted) process.exit(ExitCode.INTERRUPTED); // second Ctrl-C: give up now
    process.stderr.write('\nvmimg: interrupted, cleaning up (Ctrl-C again to quit now)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  // The reader went away (`vmimg ls … | head`): stop quietly, like other Unix tools.
  // Any other stdout failure (EIO, ENOSPC) ends the command like other errors: one line, no stack.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitCode.OK);
    reportError(err.syscall !== undefined ? new Error(`writing to stdout: ${err.message}`, { cause: err }) : err);
    process.exit(exitCodeFor(err));
  });
  try {
    await buildParser(argv).parseAsync();
    if (controller.signal.aborted) process.exitCode = ExitCode.INTERRUPTED;
  } catch (err) {
    reportError(err);
    process.exitCode = controller.signal.aborted ? ExitCode.INTERRUPTED : exitCodeFor(err);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function reportError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`vmimg: ${escapeTerminal(message)}\n`);
  if (isVmimgError(err) && err.hint) process.stderr.write(`hint: ${escapeTerminal(err.hint)}\n`);
  else if (err instanceof UsageError) process.stderr.write('hint: vmimg --help shows the commands and options\n');
  if (process.env.VMIMG_DEBUG === '1') {
    let e: unknown = err;
    while (e instanceof Error) {
      process.stderr.write(`${e.stack ?? e.message}\n`);
      e = e.cause;
      if (e !== undefined) process.stderr.write('caused by: ');
    }
  }
}
