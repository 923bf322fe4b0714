/**
 * Image file content in the order it lies in the layers (layer, then offset in its `.contents`),
 * read in spans of up to 2 MiB that hold many small files: one read through the layer's content
 * reader per span instead of one per file, and no buffer per file. A profile of the Debian bench
 * image's export showed the per-file reads (a thread-pool round trip and a fresh buffer each, ~5 000
 * files) as the largest cost after sha256; `.contents` keeps each file 4 KiB aligned in tar order, so
 * neighbours in a span are neighbours on disk too.
 */
import type { ContainerFS } from '../../vfs/index.js';
import { containerInternals } from '../../vfs/container-fs.js';
import type { PlanNode } from './plan.js';

/** Largest read; files bigger than this are read in pieces of this size. */
export const SPAN_BYTES = 2 << 20;
/** Bytes of other content (hidden by upper layers, alignment) a span may read past to take the next file. */
const MAX_GAP = 64 << 10;
/** Spans read ahead of the one being written: on a busy host each read waits to be scheduled, so several overlap. */
const READ_AHEAD = 6;

/** One file's bytes `[fileOffset, fileOffset + length)`, at `at` in its span's buffer. */
export interface Piece {
  node: PlanNode;
  fileOffset: number;
  length: number;
  at: number;
}

export interface Span {
  layer: number;
  position: number;
  length: number;
  pieces: Piece[];
}

/** Where each image file's bytes are: its layer and offset in that layer's content. */
function located(fs: ContainerFS, nodes: readonly PlanNode[]): { node: PlanNode; layer: number; offset: number }[] {
  const { table } = containerInternals(fs);
  return nodes
    .map((node) => ({ node, layer: table.layer[node.src!]!, offset: table.offset(node.src!) }))
    .sort((a, b) => a.layer - b.layer || a.offset - b.offset || a.node.ino - b.node.ino);
}

/** Groups the files (non-empty, from the image) into spans in content order. */
export function planSpans(fs: ContainerFS, nodes: readonly PlanNode[]): Span[] {
  const spans: Span[] = [];
  let cur: Span | undefined;
  for (const { node, layer, offset } of located(fs, nodes)) {
    if (node.size > SPAN_BYTES) {
      for (let done = 0; done < node.size; done += SPAN_BYTES) {
        const length = Math.min(SPAN_BYTES, node.size - done);
        spans.push({ layer, position: offset + done, length, pieces: [{ node, fileOffset: done, length, at: 0 }] });
      }
      cur = undefined;
      continue;
    }
    const end = offset + node.size;
    const joins = cur && cur.layer === layer && offset >= cur.position && offset <= cur.position + cur.length + MAX_GAP && Math.max(end, cur.position + cur.length) - cur.position <= SPAN_BYTES;
    if (!joins || !cur) {
      cur = { layer, position: offset, length: 0, pieces: [] };
      spans.push(cur);
    }
    cur.pieces.push({ node, fileOffset: 0, length: node.size, at: offset - cur.position });
    cur.length = Math.max(cur.length, end - cur.position);
  }
  return spans;
}

/**
 * Span buffers, reused once the writer has written their bytes: fresh buffers per span cost
 * page faults and, through V8's external-memory accounting, frequent full GCs (a quarter of the
 * export's main-thread time in the profile).
 */
export class SpanBuffers {
  readonly #free: Buffer[] = [];
  readonly #held: { buf: Buffer; until: number }[] = [];

  /** A buffer of SPAN_BYTES; `written`: writes finished so far (held buffers up to it come back). */
  take(written: number): Buffer {
    while (this.#held.length > 0 && this.#held[0]!.until <= written) this.#free.push(this.#held.shift()!.buf);
    return this.#free.pop() ?? Buffer.allocUnsafe(SPAN_BYTES);
  }

  /** `buf` is in use until `until` writes have finished. */
  hold(buf: Buffer, until: number): void {
    this.#held.push({ buf, until });
  }

  /** `buf` is not in use (nothing queued views it): the next `take` may have it. */
  free(buf: Buffer): void {
    this.#free.push(buf);
  }
}

/** Reads the spans in order, a few ahead, into buffers from `take`, yielding each span's bytes and pieces. */
export async function* readSpans(fs: ContainerFS, spans: readonly Span[], take: () => Buffer): AsyncGenerator<{ buf: Buffer; bytes: Buffer; pieces: Piece[] }> {
  const { files } = containerInternals(fs);
  const started: Promise<Buffer>[] = [];
  const start = (i: number): void => {
    const s = spans[i];
    if (!s) return;
    const buf = take();
    const p = files[s.layer]!.readInto(buf, 0, s.length, s.position).then(() => buf);
    p.catch(() => undefined); // a failure surfaces when the span's turn comes
    started.push(p);
  };
  for (let i = 0; i < READ_AHEAD; i++) start(i);
  for (let i = 0; i < spans.length; i++) {
    const buf = await started.shift()!;
    start(i + READ_AHEAD);
    yield { buf, bytes: buf.subarray(0, spans[i]!.length), pieces: spans[i]!.pieces };
  }
}
