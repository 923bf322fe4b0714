/**
 * A worker thread that checks bcrypt hashes for serve's client auth (bcrypt-pool.ts): bcryptjs's
 * synchronous compare, since this thread has nothing else to do, while the main thread keeps serving.
 */
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

/** One check: the password against a bcrypt hash; answered `{ id, ok }`. */
interface Check {
  id: number;
  password: string;
  hash: string;
}

parentPort!.on('message', (m: Check) => {
  let ok = false;
  try {
    ok = bcrypt.compareSync(m.password, m.hash);
  } catch {
    ok = false; // a hash bcryptjs cannot read matches nothing (load() admits only well-formed ones)
  }
  parentPort!.postMessage({ id: m.id, ok });
});
