/**
 * Kernel modules made cheap to load under TCG, for the stage-one initramfs of a disk boot. Profiled
 * with QEMU `-icount` and the guest's function_graph tracer (Debian 6.1, amd64), loading the disk's
 * eleven modules cost ~9 s of guest time, of which ext4.ko alone 5.6 s: the signature check (sha512 of
 * each module and an RSA verify, in plain C without the host's SHA instructions), sorting the module's
 * ORC unwind table (13 800 entries), an ftrace record per function (a linear symbol lookup each) and a
 * tracefs directory per trace event. Without them the same modules load in ~0.5 s. None of that serves a
 * throwaway guest that boots one command, and the modules come from the Debian package apt verified.
 * Cost: the guest kernel is tainted 'E' (unsigned module: a notice, hidden by `quiet`), its stack traces
 * through these modules are guesses (no ORC), and their functions and events cannot be traced.
 */

/** The marker the kernel's module signing appends after the signature (scripts/sign-file). */
const SIG_MAGIC = Buffer.from('~Module signature appended~\n');
/** struct module_signature, before the marker; its last 4 bytes are the signature's length, big-endian. */
const SIG_INFO = 12;
const SHF_ALLOC = 2n;

/**
 * Sections the kernel only spends load time on, hidden by clearing SHF_ALLOC (the loader neither
 * copies nor relocates a section without it, and `find_sec` skips it) and emptying the name (x86's
 * module_finalize finds the ORC tables by name alone).
 */
export const HIDDEN_SECTIONS = ['.orc_unwind', '.orc_unwind_ip', '__mcount_loc', '__patchable_function_entries', '_ftrace_events'];

/** `ko` without its appended signature (unchanged when unsigned). */
export function stripSignature(ko: Buffer): Buffer {
  if (ko.length < SIG_MAGIC.length + SIG_INFO || !ko.subarray(ko.length - SIG_MAGIC.length).equals(SIG_MAGIC)) return ko;
  const sigLen = ko.readUInt32BE(ko.length - SIG_MAGIC.length - 4);
  const end = ko.length - SIG_MAGIC.length - SIG_INFO - sigLen;
  return end > 0 ? ko.subarray(0, end) : ko;
}

/**
 * A copy of the module `ko` (a 64-bit little-endian ELF relocatable: amd64, arm64) that loads fast:
 * no signature, HIDDEN_SECTIONS hidden. Anything else (another ELF class, a truncated file) is returned
 * as it came, signature stripped: the kernel judges it as before.
 */
export function trimModule(ko: Buffer): Buffer {
  const out = Buffer.from(stripSignature(ko));
  const elf64le = out.length >= 64 && out.readUInt32BE(0) === 0x7f454c46 && out[4] === 2 && out[5] === 1;
  if (!elf64le) return out;
  const shoff = Number(out.readBigUInt64LE(0x28));
  const [shentsize, shnum, shstrndx] = [out.readUInt16LE(0x3a), out.readUInt16LE(0x3c), out.readUInt16LE(0x3e)];
  if (shentsize < 64 || shstrndx >= shnum || shoff + shnum * shentsize > out.length) return out;
  const strOff = Number(out.readBigUInt64LE(shoff + shstrndx * shentsize + 0x18));
  const hidden = new Set(HIDDEN_SECTIONS);
  for (let i = 1; i < shnum; i++) {
    const h = shoff + i * shentsize;
    const nameAt = strOff + out.readUInt32LE(h);
    const nul = out.indexOf(0, nameAt);
    if (nameAt >= out.length || nul < 0 || !hidden.has(out.toString('latin1', nameAt, nul))) continue;
    out.writeBigUInt64LE(out.readBigUInt64LE(h + 8) & ~SHF_ALLOC, h + 8);
    out.writeUInt32LE(0, h);
  }
  return out;
}
