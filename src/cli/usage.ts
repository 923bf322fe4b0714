/**
 * Usage errors as one coded line: yargs' parser messages rewritten to name the command and its usage,
 * unknown commands answered without far-fetched suggestions, and `vmimg help CMD`.
 */
import { UsageError } from './exit-codes.js';

/** Global options that take a value (their value is not a command name). */
const VALUE_OPTIONS = new Set(['--cache-dir', '--arch', '--platform', '--username', '--insecure-registry']);

/** The words before `--` (what vmimg itself parses). */
function ownArgs(argv: string[]): string[] {
  const end = argv.indexOf('--');
  return end === -1 ? argv : argv.slice(0, end);
}

/** The first positional word of argv (the command, when there is one). */
export function firstWord(argv: string[]): string | undefined {
  const args = ownArgs(argv);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (VALUE_OPTIONS.has(a)) i++;
    else if (!a.startsWith('-') || a === '-') return a;
  }
  return undefined;
}

/** True when --json was given (so even a parse failure is reported as JSON). */
export function wantsJson(argv: string[]): boolean {
  return ownArgs(argv).some((a) => a === '--json' || a === '--json=true');
}

/** `vmimg help` → `vmimg --help`; `vmimg help CMD` → `vmimg CMD --help`. */
export function rewriteHelp(argv: string[]): string[] {
  const i = argv.indexOf('help');
  if (i === -1 || firstWord(argv) !== 'help') return argv;
  const rest = argv.slice(i + 1);
  const target = firstWord(rest);
  return [...argv.slice(0, i), ...(target !== undefined ? [target] : []), '--help'];
}

/** An unknown command: a suggestion only when the word is a near miss (`pul` → pull, not `run` → prune). */
export function unknownCommand(word: string, known: string[]): UsageError {
  const allowed = Math.max(1, Math.floor(word.length / 3));
  const near = known.map((k) => ({ k, d: editDistance(word, k) })).filter((x) => x.d <= allowed).sort((a, b) => a.d - b.d)[0];
  const hint = `${near ? `did you mean "vmimg ${near.k}"? ` : ''}vmimg --help lists the commands`;
  return new UsageError(`unknown command "${word}"`, { hint });
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * yargs' message for a parse failure of `command` (whose usage is e.g. `pull <ref>`) as one line.
 * The hint (`vmimg CMD --help`) is added where the error is reported.
 */
export function usageError(msg: string, argv: string[], command?: { name: string; usage: string }): UsageError {
  const usage = command ? ` (usage: vmimg ${command.usage} [options])` : '';
  const who = command ? `${command.name}: ` : '';
  let m: RegExpMatchArray | null;
  if ((m = /^Not enough non-option arguments: got (\d+), need at least (\d+)/.exec(msg))) {
    const names = command ? [...command.usage.matchAll(/<([^>]+)>/g)].map((x) => x[1]!.replace(/\.\.$/, '')) : [];
    const missing = names.slice(Number(m[1]), Number(m[2])).map((n) => n.toUpperCase());
    return new UsageError(`${who}missing ${missing.length > 0 ? missing.join(' and ') : 'arguments'}${usage}`);
  }
  if ((m = /^Unknown arguments?: (.*)$/s.exec(msg))) {
    const words = m[1]!.split(', ');
    const options = words.filter((w) => argv.some((a) => a === `-${w}` || a === `--${w}` || a.startsWith(`--${w}=`)));
    const extra = words.filter((w) => !options.includes(w));
    const what = [
      ...(options.length > 0 ? [`unknown option ${options.map((w) => (w.length === 1 ? `-${w}` : `--${w}`)).join(', ')}`] : []),
      ...(extra.length > 0 ? [`unexpected argument ${extra.map((w) => JSON.stringify(w)).join(', ')}`] : []),
    ];
    return new UsageError(`${who}${what.join('; ')}${usage}`);
  }
  if ((m = /^Arguments (\S+) and (\S+) are mutually exclusive/.exec(msg))) return conflict(m[1]!, m[2]!);
  if ((m = /^Not enough arguments following: (\S+)/.exec(msg))) return new UsageError(`${who}--${m[1]} needs a value`);
  if ((m = /^Invalid values:\s+Argument: (\S+), Given: (.*), Choices: (.*)$/s.exec(msg))) {
    return new UsageError(`${who}--${m[1]} ${m[2]!.trim()} is not one of ${m[3]!.replace(/\s+/g, ' ').trim()}`);
  }
  return new UsageError(`${who}${msg.replace(/\s*\n\s*/g, '; ')}`);
}

function conflict(a: string, b: string): UsageError {
  if ([a, b].sort().join() === 'arch,platform') {
    return new UsageError('--arch and --platform cannot be used together', {
      hint: 'give one: --arch arm64, or --platform linux/arm64/v8 (which already names the architecture)',
    });
  }
  return new UsageError(`--${a} and --${b} cannot be used together`);
}

/**
 * Options for a repeatable (array) flag: one value per occurrence (`--flag a --flag b`). A bare
 * `array: true` makes yargs take every following word, positionals included (finding U1:
 * `pull --insecure-registry HOST REF` lost its REF); `nargs: 1` stops after one, `requiresArg` refuses none.
 */
export const ONE_PER_FLAG = { nargs: 1, requiresArg: true } as const;
