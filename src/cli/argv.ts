/**
 * Command-line arguments with their exact bytes. Node decodes argv as UTF-8 and replaces invalid
 * bytes with U+FFFD, so `vmimg cat IMG $'/data/\xe4'` would name a different file (or several files
 * at once). On Linux /proc/self/cmdline holds the bytes: its last entries are our arguments, decoded
 * here losslessly (util/byte-names.ts) so they match image names exactly.
 */
import { readFileSync } from 'node:fs';
import { decodeName } from '../util/byte-names.js';

/** `argv` (process.argv.slice(2)) with each argument replaced by its lossless decoding when the bytes are known. */
export function argvBytes(argv: readonly string[], cmdline: () => Buffer = readCmdline): string[] {
  if (!argv.some((a) => a.includes('\ufffd'))) return [...argv]; // nothing was lost
  let raw: Buffer[];
  try {
    raw = splitNul(cmdline());
  } catch {
    return [...argv]; // no /proc: keep what Node gave
  }
  if (raw.length < argv.length) return [...argv];
  const tail = raw.slice(raw.length - argv.length);
  // only when the tail is exactly our arguments (Node's lossy decoding of the same bytes)
  if (!tail.every((b, i) => b.toString('utf8') === argv[i])) return [...argv];
  return tail.map((b) => decodeName(b));
}

function readCmdline(): Buffer {
  return readFileSync('/proc/self/cmdline');
}

function splitNul(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = buf.indexOf(0); i >= 0; i = buf.indexOf(0, start)) {
    out.push(buf.subarray(start, i));
    start = i + 1;
  }
  if (start < buf.length) out.push(buf.subarray(start));
  return out;
}
