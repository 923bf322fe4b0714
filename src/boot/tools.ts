/** Host tools the boot path drives (qemu, apt-get, dpkg-deb): find them, run them, say what to install. */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ErrorCode, VmimgError } from '../errors.js';

export function findBinary(name: string): string | undefined {
  const path = process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  for (const dir of path.split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // keep looking
    }
  }
  return undefined;
}

export function requireBinary(name: string, aptPackage: string): string {
  const found = findBinary(name);
  if (found) return found;
  throw new VmimgError(ErrorCode.NOT_FOUND, `${name} is not installed (not found on PATH)`, {
    hint: `install it: apt-get install ${aptPackage}`,
  });
}

/** Runs a tool to completion and returns its stdout; a failure carries its stderr. */
export function runTool(name: string, args: string[], aptPackage: string, opts: { cwd?: string } = {}): Promise<string> {
  const bin = requireBinary(name, aptPackage);
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) return resolve(Buffer.concat(out).toString('utf8'));
      const stderr = Buffer.concat(err).toString('utf8').trim();
      reject(new VmimgError(ErrorCode.NOT_FOUND, `${name} ${args.join(' ')} failed (exit ${code}): ${stderr}`));
    });
  });
}
