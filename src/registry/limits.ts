/** Size caps and the Accept list for manifests, and reading a body without ever truncating it. */
import { ErrorCode, VmimgError } from '../errors.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from '../manifest/media-types.js';
import { header, type HttpResponse } from './transport.js';

export { MAX_MANIFEST_BYTES };
export const DEFAULT_MANIFEST_ACCEPT: readonly string[] = MANIFEST_ACCEPT;

/** The whole body, or ERR_TOO_LARGE as soon as it is known to exceed `cap` (never a truncated prefix). */
export async function readCapped(res: HttpResponse, cap: number, what: string): Promise<Buffer> {
  const tooLarge = (size: string) =>
    new VmimgError(ErrorCode.TOO_LARGE, `${what}: ${size} is over the ${cap}-byte limit`, { details: { limit: cap } });
  const length = Number(header(res, 'content-length') ?? NaN);
  if (Number.isSafeInteger(length) && length > cap) {
    res.body.destroy();
    throw tooLarge(`${length} bytes`);
  }
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > cap) {
      res.body.destroy();
      throw tooLarge('the body');
    }
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts, size);
}
