/** CRC-32 (IEEE, as zlib): native `zlib.crc32` where this Node has it (>= 20.15), a table otherwise. */
import * as zlib from 'node:zlib';

/** `value`: the CRC-32 of the bytes before `data`, to continue it (0 to start). */
type Crc32 = (data: Uint8Array, value?: number) => number;

let table: Uint32Array | undefined;

function tableCrc32(data: Uint8Array, value = 0): number {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = (value ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const native = (zlib as unknown as { crc32?: Crc32 }).crc32;

export const crc32: Crc32 = typeof native === 'function' ? (d, v = 0) => native(d, v) >>> 0 : tableCrc32;
export { tableCrc32 };
