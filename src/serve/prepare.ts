/**
 * `vmimg serve --prepare`: images pulled through are flattened into the cache as they pass, so `vmimg
 * pull` on the serving host finds them complete (layers, image dir and name), and their layer indexes —
 * the lazy-index artifact of src/lazy/publish.ts (`.idx` + `.zran` per layer, `subject` = the image
 * manifest) — are answered on the referrers endpoint, for `vmimg pull --lazy` through serve.
 * An image manifest sent to a client queues its image: blobs not in the store yet join (or start) their
 * one download, then the prepare pipeline runs over the store, checkpoints included. One image at a
 * time, in the background: no client waits for it, and a failure is reported, never answered.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { StoreBlobReader } from '../content/store.js';
import { digestHex } from '../digest/index.js';
import type { CacheLayout } from '../image/cache.js';
import { loadFromDir } from '../image/image-dir.js';
import { prepareImage } from '../image/prepare.js';
import { openReaderSource } from '../image/reader-source.js';
import { buildLazyArtifact } from '../lazy/publish.js';
import { MediaType, parseManifestDocument, type ImageManifest } from '../manifest/index.js';
import type { Descriptor } from '../manifest/types.js';
import { createLimiter } from '../util/limiter.js';
import { joinFill } from './blobs.js';
import type { RouteTarget } from './routes.js';
import type { ServeState } from './state.js';

/** Manifest digests remembered per table (names of index children, prepared images, artifacts). */
export const MAX_PREPARE_MEMORY = 10_000;

/** One image `--prepare` finished (or failed to): a line for the log beside the access records. */
export interface PrepareRecord {
  readonly time: string;
  readonly event: 'prepared' | 'prepare-failed';
  /** The name recorded in the cache: `REGISTRY/REPOSITORY:TAG`, or `@DIGEST` when asked by digest alone. */
  readonly name: string;
  readonly manifest: string;
  readonly ms: number;
  readonly error?: string;
}

interface Served {
  readonly digest: string;
  readonly bytes: Buffer;
}

/** The `--prepare` work of one server. */
export class Prebaker {
  /** Child manifest digest → the name of the tag whose index listed it. */
  private readonly names = new Map<string, string>();
  /** Manifest digests queued, running or done (not run twice while remembered). */
  private readonly seen = new Map<string, Promise<void>>();
  private readonly artifacts = new Map<string, Descriptor>();
  private readonly limit = createLimiter(1);

  constructor(
    private readonly cache: CacheLayout,
    private readonly signal: AbortSignal,
    private readonly report?: (r: PrepareRecord) => void,
  ) {}

  /**
   * A manifest went to a client (by `tag`, or by digest; `head`: only its headers). A tag names the
   * manifest (containerd HEADs the tag, then GETs the digest), an index passes its name to its children,
   * and an image manifest whose body was sent is queued.
   */
  served(s: ServeState, t: RouteTarget, m: Served, tag?: string, head = false): void {
    if (tag !== undefined) remember(this.names, m.digest, `${t.upstream.registry}/${t.repository}:${tag}`);
    if (head) return;
    let doc;
    try {
      doc = parseManifestDocument(m.bytes);
    } catch {
      return; // not a manifest vmimg reads: nothing to prepare
    }
    const known = this.names.get(m.digest);
    if (doc.kind === 'index') {
      if (known !== undefined) for (const d of doc.index.manifests) remember(this.names, d.digest, known);
      return;
    }
    const config = doc.manifest.config.mediaType;
    if ((config !== MediaType.OCI_CONFIG && config !== MediaType.DOCKER_CONFIG) || this.seen.has(m.digest)) return; // artifacts are not images
    const name = known ?? `${t.upstream.registry}/${t.repository}@${m.digest}`;
    const job = this.limit(() => this.run(s, t, m.digest, doc.manifest, name));
    remember(this.seen, m.digest, job);
  }

  /** Resolves when every queued image is prepared (or failed). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.seen.values()]);
  }

  /**
   * The lazy-index artifact of image manifest `subject` once its image is prepared (else undefined):
   * built from the cache's `.idx`/`.zran` files, its blobs and manifest put in the store, so clients
   * fetch them from serve by digest like any other blob.
   */
  async referrer(s: ServeState, subject: string): Promise<Descriptor | undefined> {
    const known = this.artifacts.get(subject);
    await s.commits.committed(subject); // a manifest just answered may still be on its way into the store
    if (known !== undefined || !(await s.store.has(subject))) return known;
    const bytes = await s.store.readBytes(subject, s.maxManifestBytes);
    const doc = parseManifestDocument(bytes);
    if (doc.kind !== 'manifest') return undefined;
    const dir = this.cache.imageDir(doc.manifest.config.digest);
    if (!existsSync(join(dir, 'config.json'))) return undefined; // not prepared (yet)
    const image = await loadFromDir(dir);
    const layers = doc.manifest.layers.map((l, i) => ({ digest: l.digest, diffId: image.layers[i]!.diffId, indexPath: join(this.cache.layersDir, `${digestHex(image.layers[i]!.diffId)}.idx`) }));
    const built = await buildLazyArtifact({ mediaType: doc.manifest.mediaType, digest: subject, size: bytes.length }, layers, this.cache.root);
    const blobs = [built.config, ...built.blobs, { desc: built.artifact, bytes: built.bytes }];
    await s.held.add(blobs.map((b) => b.desc.digest));
    for (const b of blobs) if (!(await s.store.has(b.desc.digest, b.desc.size))) await s.store.putBytes(b.bytes, { digest: b.desc.digest, size: b.desc.size });
    s.mediaTypes.set(built.artifact.digest, built.artifact.mediaType);
    remember(this.artifacts, subject, built.artifact);
    return built.artifact;
  }

  private async run(s: ServeState, t: RouteTarget, digest: string, manifest: ImageManifest, name: string): Promise<void> {
    const began = Date.now();
    const record = { time: new Date(began).toISOString(), name, manifest: digest };
    try {
      // what clients did not fetch (they had it already) is fetched once, joining downloads in flight
      await Promise.all([manifest.config, ...manifest.layers].map(async (d) => {
        if (!(await s.store.has(d.digest, d.size))) await joinFill(s, t, d.digest, d.size).finished();
      }));
      await s.commits.committed(digest); // the manifest is answered before it is stored
      const reader = await StoreBlobReader.forDigests(s.store, [{ digest, names: [name] }]);
      const source = await openReaderSource(reader, { reference: name, signal: this.signal });
      try {
        await prepareImage(source, { cache: this.cache, name, checkpoints: true, signal: this.signal });
      } finally {
        await source.close?.();
      }
      s.metrics.prepared.ok++;
      this.report?.({ ...record, event: 'prepared', ms: Date.now() - began });
    } catch (err) {
      s.metrics.prepared.failed++;
      this.seen.delete(digest); // a later request tries again
      this.report?.({ ...record, event: 'prepare-failed', ms: Date.now() - began, error: err instanceof Error ? err.message : String(err) });
    }
  }
}

/** Sets `key` in a bounded map (the oldest entry goes past MAX_PREPARE_MEMORY). */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.set(key, value);
  if (map.size > MAX_PREPARE_MEMORY) map.delete(map.keys().next().value!);
}
