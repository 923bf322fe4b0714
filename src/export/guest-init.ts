/**
 * The guest init vmimg puts into initramfs exports at /.vmimg/init (contract: docs/EXPORT.md).
 * A POSIX sh script (busybox ash, dash, bash): it needs the image's /bin/sh and nothing else;
 * switching to a non-root uid needs util-linux `setpriv`, coreutils `chroot --userspec`, or busybox `su`.
 */
import type { RuntimeConfig } from '../image/index.js';

export const GUEST_DIR = '.vmimg';
export const GUEST_INIT = '/.vmimg/init';
export const GUEST_CONFIG = '/.vmimg/config';
/** The line the guest prints when the command ends: `vmimg: exit status N`. */
export const EXIT_STATUS_RE = /^vmimg: exit status (\d+)\r?$/m;
/**
 * The environment variable a disk boot's stage one hands the guest init: the mount points it mounted
 * (space-separated), which the init then neither checks in /proc/mounts nor mounts again.
 */
export const MOUNTED_ENV = 'vmimg_mounted';
/** The line the guest prints just before running the command (after a newline of its own). */
export const START_LINE = 'vmimg: start';

/** Single-quotes a word for sh: safe for any bytes except NUL. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** argv as one line of sh words, for `eval "set -- $line"`. */
export function shWords(argv: readonly string[]): string {
  return argv.map(shQuote).join(' ');
}

/** The kernel command-line parameter that overrides the command: `vmimg.cmd=<base64 of shWords(argv)>`. */
export function kernelCmdParam(argv: readonly string[]): string {
  return `vmimg.cmd=${Buffer.from(shWords(argv), 'utf8').toString('base64')}`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `/.vmimg/config`: shell assignments the init sources. */
export function guestConfig(config: RuntimeConfig, argv: readonly string[]): string {
  const envLines: string[] = [];
  for (const kv of config.env) {
    const eq = kv.indexOf('=');
    const name = eq < 0 ? kv : kv.slice(0, eq);
    // names sh cannot export (dots, dashes) are skipped: the init has no `env -i` to lean on
    if (eq < 0 || !ENV_NAME.test(name)) continue;
    envLines.push(`  export ${name}=${shQuote(kv.slice(eq + 1))}`);
  }
  return [
    '# vmimg runtime config (sourced by /.vmimg/init)',
    `vmimg_argv=${shQuote(shWords(argv))}`,
    `vmimg_workdir=${shQuote(config.workingDir || '/')}`,
    `vmimg_uid=${config.uid}`,
    `vmimg_gid=${config.gid}`,
    `vmimg_user=${shQuote(config.user)}`,
    `vmimg_arch=${shQuote(config.architecture)}`,
    'vmimg_env() {',
    '  :',
    ...envLines,
    '}',
    '',
  ].join('\n');
}

/** The init script itself. Constant: everything image-specific is in /.vmimg/config. */
export const GUEST_INIT_SCRIPT = `#!/bin/sh
# vmimg guest init: mount the basics, apply the image's runtime config, run its command,
# print "vmimg: exit status N", power off. Contract: docs/EXPORT.md.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
say() { echo "vmimg: $*"; }

# a tool from PATH, else the applet of the image's busybox (whose symlinks may be missing)
vmimg_has() {
  command -v "$1" >/dev/null 2>&1 && return 0
  command -v busybox >/dev/null 2>&1 || return 1
  busybox --list 2>/dev/null | { while read -r a; do [ "$a" = "$1" ] && exit 0; done; exit 1; }
}
vmimg_tool() { if command -v "$1" >/dev/null 2>&1; then "$@"; else busybox "$@"; fi; }
vmimg_username() {
  [ -r /etc/passwd ] || return 1
  while IFS=: read -r n _x u _rest; do [ "$u" = "$vmimg_uid" ] && { echo "$n"; return 0; }; done < /etc/passwd
  return 1
}

# HOME as Docker sets it: the run user's passwd entry (by name, or by uid), else /
vmimg_home() {
  vmimg_u=\${vmimg_user%%:*}; [ -n "$vmimg_u" ] || vmimg_u=0
  [ -r /etc/passwd ] && while IFS=: read -r n _x id _g _gecos h _rest; do
    case "$vmimg_u" in *[!0-9]*) [ "$n" = "$vmimg_u" ] ;; *) [ "$id" = "$vmimg_u" ] ;; esac && { echo "\${h:-/}"; return 0; }
  done < /etc/passwd
  echo /
}

# what a disk boot's stage one mounted ($${MOUNTED_ENV}) needs no look at /proc/mounts (read a byte per syscall)
mounted() {
  case " $${MOUNTED_ENV} " in *" $1 "*) return 0 ;; esac
  [ -r /proc/mounts ] && while read -r _d m _r; do [ "$m" = "$1" ] && return 0; done < /proc/mounts; return 1
}
[ -d /proc ] || vmimg_tool mkdir -p /proc
[ -r /proc/self/stat ] || vmimg_tool mount -t proc proc /proc || say "cannot mount /proc"
[ -d /sys ] || vmimg_tool mkdir -p /sys
mounted /sys || vmimg_tool mount -t sysfs sysfs /sys || say "cannot mount /sys"
[ -d /dev ] || vmimg_tool mkdir -p /dev
mounted /dev || vmimg_tool mount -t devtmpfs devtmpfs /dev || say "cannot mount /dev"
[ -d /dev/pts ] || vmimg_tool mkdir -p /dev/pts 2>/dev/null
mounted /dev/pts || vmimg_tool mount -t devpts devpts /dev/pts 2>/dev/null
[ -d /tmp ] || vmimg_tool mkdir -p /tmp
mounted /tmp || vmimg_tool mount -t tmpfs -o mode=1777 tmpfs /tmp || say "cannot mount /tmp"
[ -d /run ] && { mounted /run || vmimg_tool mount -t tmpfs -o mode=0755 tmpfs /run; }

. /.vmimg/config || { say "cannot read /.vmimg/config"; vmimg_argv="'/bin/sh'"; }

vmimg_halt() {
  printf '\\nvmimg: exit status %s\\n' "$1"
  sync
  vmimg_tool poweroff -f 2>/dev/null
  # no poweroff binary: ask the kernel directly, then let init exit (panic=-1 + -no-reboot ends QEMU)
  echo 1 > /proc/sys/kernel/sysrq 2>/dev/null && echo o > /proc/sysrq-trigger 2>/dev/null
  vmimg_tool sleep 5 2>/dev/null
  exit "$1"
}

# vmimg.cmd=<base64 of sh words> on the kernel command line replaces the command
# (shell builtins, not cat or hostname: each exec of a dynamic binary is slow under TCG)
vmimg_cmdline=; { read -r vmimg_cmdline < /proc/cmdline; } 2>/dev/null
for arg in $vmimg_cmdline; do
  case "$arg" in
    vmimg.stdin=1) vmimg_stdin=1 ;;
    vmimg.cmd=*)
      if decoded=$(echo "\${arg#vmimg.cmd=}" | vmimg_tool base64 -d 2>/dev/null); then vmimg_argv=$decoded
      else say "vmimg.cmd= given but the image has no working base64; keeping the built-in command"; fi ;;
  esac
done

{ echo vmimg > /proc/sys/kernel/hostname; } 2>/dev/null || vmimg_tool hostname vmimg 2>/dev/null
unset arg decoded vmimg_cmdline ${MOUNTED_ENV}
HOME=$(vmimg_home)
TERM=\${TERM:-linux}
export HOME TERM
vmimg_env
eval "set -- $vmimg_argv"
[ $# -gt 0 ] || { say "no command: the image has no entrypoint or cmd"; vmimg_halt 127; }
[ -d "$vmimg_workdir" ] || vmimg_tool mkdir -p "$vmimg_workdir"
cd "$vmimg_workdir" || { say "cannot cd to $vmimg_workdir"; vmimg_halt 126; }

# the console is no input for the command unless asked (vmimg.stdin=1): an interactive shell ends at once
[ "$vmimg_stdin" = 1 ] || { [ -c /dev/null ] && exec </dev/null; }
# on a line of its own whatever the firmware or kernel left on the console
printf '\\nvmimg: start\\n'
if [ "$vmimg_uid" = 0 ] && [ "$vmimg_gid" = 0 ]; then
  "$@"
elif vmimg_has setpriv && case "$(vmimg_tool setpriv --help 2>&1)" in *--reuid*) true ;; *) false ;; esac; then
  vmimg_tool setpriv --reuid="$vmimg_uid" --regid="$vmimg_gid" --clear-groups -- "$@"
elif vmimg_has chroot && case "$(vmimg_tool chroot --help 2>&1)" in *--userspec*) true ;; *) false ;; esac; then
  vmimg_tool chroot --userspec="$vmimg_uid:$vmimg_gid" / "$@"
elif command -v busybox >/dev/null 2>&1 && vmimg_has su && name=$(vmimg_username); then
  # busybox su: the uid's passwd name, its passwd group; -p keeps the image env
  busybox su -p -s /bin/sh -c 'exec "$0" "$@"' "$name" "$@"
else
  say "the image has no setpriv --reuid, chroot --userspec or busybox su to run as $vmimg_uid:$vmimg_gid"
  vmimg_halt 126
fi
vmimg_halt $?
`;
