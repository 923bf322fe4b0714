// Preloaded into a vmimg process (NODE_OPTIONS=--import) to make one file-system call fail the way the
// machine or a bug would: FAULT_FS_ERROR names the failure (an errno code such as EMFILE, or a JS error
// class such as RangeError), FAULT_FS_MATCH a substring of the path whose readdir/opendir/readFile/open fails.
// This is how the tests reach failures no real input produces on demand (EMFILE, an internal RangeError).
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const kind = process.env.FAULT_FS_ERROR;
const match = process.env.FAULT_FS_MATCH ?? '';

function fault(path) {
  if (kind === undefined || !String(path).includes(match)) return undefined;
  if (/^E[A-Z]+$/.test(kind)) {
    const err = new Error(`${kind}: injected failure, scandir '${path}'`);
    return Object.assign(err, { code: kind, errno: -1, syscall: 'scandir', path: String(path) });
  }
  const Ctor = globalThis[kind] ?? Error;
  return new Ctor('Invalid string length (injected)');
}

for (const name of ['readdir', 'opendir', 'readFile', 'open']) {
  const original = fs.promises[name];
  fs.promises[name] = function (path, ...rest) {
    const err = fault(path);
    return err ? Promise.reject(err) : original.call(this, path, ...rest);
  };
}
for (const name of ['readdirSync', 'opendirSync', 'readFileSync', 'openSync']) {
  const original = fs[name];
  fs[name] = function (path, ...rest) {
    const err = fault(path);
    if (err) throw err;
    return original.call(this, path, ...rest);
  };
}
syncBuiltinESMExports();
