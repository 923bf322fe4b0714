/**
 * serve's TLS files, checked before anything starts: each must be readable, the certificate a PEM
 * X.509 certificate, the key a PEM private key, and the two a pair. Any failure is one
 * ERR_INVALID_ARGUMENT naming the option and file (node's TLS layer would otherwise throw a raw
 * OpenSSL error such as `error:0480006C:PEM routines::no start line` from deep inside createServer).
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ErrorCode, VmimgError } from '../errors.js';

/** The PEM bytes of `--tls-cert` and `--tls-key`, checked to be a certificate and its private key. */
export function loadTlsFiles(files: { readonly cert: string; readonly key: string }): { cert: Buffer; key: Buffer } {
  const cert = readTlsFile(files.cert, '--tls-cert');
  const key = readTlsFile(files.key, '--tls-key');
  const x509 = parsed(files.cert, '--tls-cert', 'a PEM certificate', () => new X509Certificate(cert));
  const pkey = parsed(files.key, '--tls-key', 'a PEM private key', () => createPrivateKey(key));
  if (!x509.checkPrivateKey(pkey)) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--tls-key ${files.key} is not the private key of --tls-cert ${files.cert}`, {
      hint: 'Give the key the certificate was issued for.',
    });
  }
  return { cert, key };
}

/** A TLS file's bytes; one coded line naming the option when it cannot be read (not node's raw ENOENT). */
function readTlsFile(path: string, option: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${option} ${path}: cannot read it (${why})`, { hint: `Give ${option} a readable PEM file.`, cause: err });
  }
}

function parsed<T>(path: string, option: string, what: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    const why = ((err as Error).message ?? String(err)).replace(/^error:[0-9A-F]+:/, '');
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `${option} ${path}: not ${what} (${why})`, { hint: `Give ${option} ${what} file.`, cause: err });
  }
}
