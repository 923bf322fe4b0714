/**
 * Reading the serial console of a boot: the guest command's output as it arrives (between the guest
 * init's start and exit-status lines), terminal escapes removed for machine output, and the cause of
 * a boot that ended without an exit status (kernel and QEMU message lines).
 */
import { START_LINE } from '../export/guest-init.js';

const EXIT_PREFIX = 'vmimg: exit status ';

/**
 * Splits a console stream into the command's own output, chunk by chunk, as it comes. Before the
 * start line nothing is passed on; after it, text goes out at once except what could still turn out
 * to be the init's `\nvmimg: exit status N` line (held back until the next chunk decides).
 * Newlines come out as LF (the serial line sends CRLF).
 */
export class GuestOutputSplitter {
  #before = '';
  #started = false;
  #ended = false;
  #held = '';

  /** The start line has been seen: the command is running. */
  get started(): boolean {
    return this.#started;
  }

  /** Feeds console text; returns the part of the command's output that is certain now. */
  push(text: string): string {
    if (this.#ended) return '';
    if (!this.#started) {
      this.#before = (this.#before + text).replace(/\r\n/g, '\n');
      const at = this.#before.indexOf(`\n${START_LINE}\n`);
      if (at < 0) {
        this.#before = this.#before.slice(-(START_LINE.length + 2));
        return '';
      }
      this.#started = true;
      text = this.#before.slice(at + START_LINE.length + 2);
      this.#before = '';
    }
    let s = (this.#held + text).replace(/\r\n/g, '\n');
    const end = s.search(/\nvmimg: exit status \d+\n/);
    if (end >= 0) {
      this.#ended = true;
      this.#held = '';
      return s.slice(0, end);
    }
    // hold back a trailing CR, and a last line that may still become "\nvmimg: exit status N\n"
    const nl = s.lastIndexOf('\n');
    let keep = s.endsWith('\r') ? s.length - 1 : s.length;
    if (nl >= 0 && couldBeExitLine(s.slice(nl + 1))) keep = Math.min(keep, nl);
    this.#held = s.slice(keep);
    s = s.slice(0, keep);
    return s;
  }

  /** What is still held when the console ends (the command's output had no exit line after it). */
  flush(): string {
    const rest = this.#ended || !this.#started ? '' : this.#held.replace(/\r$/, '');
    this.#held = '';
    return rest;
  }
}

function couldBeExitLine(line: string): boolean {
  const l = line.replace(/\r$/, '');
  if (l.length <= EXIT_PREFIX.length) return EXIT_PREFIX.startsWith(l);
  return l.startsWith(EXIT_PREFIX) && /^\d*$/.test(l.slice(EXIT_PREFIX.length));
}

// CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-byte escapes, C1 CSI, and
// control characters other than tab and newline.
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]|\x9b[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]/g;

/** Text with terminal escape sequences and control characters (except tab and LF) removed. */
export function stripTerminalEscapes(text: string): string {
  return text.replace(ESCAPES, '');
}

/** Console lines that say why a boot failed, in the order they appeared. */
const CAUSES: RegExp[] = [
  /^qemu-system-\S+: .*/,
  /Initramfs unpacking failed: .*/,
  /Kernel panic - not syncing: .*/,
  /Out of memory: .*/,
  /Failed to execute \S+ \(error -?\d+\)/,
  /No working init found.*/,
  /VFS: Unable to mount root fs.*/,
  /VFS: Cannot open root device.*/,
  /EXT4-fs \(\S+\): .*(?:error|unable|failed|couldn't).*/i,
  /Unable to handle kernel .*/,
  /^vmimg: (?!start$|exit status \d+$).*/,
];

/**
 * Why a boot ended without an exit status: the kernel, QEMU and guest-init lines that name a cause
 * (at most `max`, timestamps removed), else the console's last non-empty lines.
 */
export function bootFailureCause(output: string, max = 4): string[] {
  const lines = stripTerminalEscapes(output.replace(/\r/g, '')).split('\n').map((l) => l.replace(/^\[\s*\d+\.\d+\]\s*/, '').trim());
  const found: string[] = [];
  for (const line of lines) {
    for (const re of CAUSES) {
      const m = re.exec(line);
      if (m && !found.includes(m[0])) {
        found.push(m[0]);
        break;
      }
    }
  }
  if (found.length > 0) return found.slice(0, max);
  return lines.filter((l) => l !== '').slice(-max);
}

/** Whether the console shows the kernel running out of room for the initramfs. */
export function initramfsTooLarge(output: string): boolean {
  return /Initramfs unpacking failed|Out of memory|No space left on device/.test(output);
}
