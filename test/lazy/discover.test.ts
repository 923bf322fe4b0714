// pull --lazy's discovery over a hostile referrers list (breaker4 F10): a sha256-<hex> fallback tag, PUT
// with curl into the CNCF registry, lists the image's own manifest 60 times and another image's once,
// each claiming vmimg's artifact type. Neither is a lazy index (both are skipped); each distinct digest
// is asked once, and at most limits.maxReferrerCandidates of them (the registry's access log counts).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findPublishedIndex } from '../../src/lazy/discover.js';
import { ARTIFACT_TYPE } from '../../src/lazy/publish.js';
import { setDocumentLimits } from '../../src/manifest/limits.js';
import { parseReference } from '../../src/reference/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, runBuffer, tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
const client = new RegistryClient();
const digests: string[] = [];

before(async () => {
  requireTools(['skopeo', 'curl']);
  registry = await startRegistry({ accessLog: true });
  const [one, two] = await Promise.all([
    buildBusyboxLayout({ arch: 'amd64', tag: 'disc1' }),
    buildBusyboxLayout({ arch: 'amd64', tag: 'disc2', extraLayers: [{ files: { 'etc/two': '2\n' } }] }),
  ]);
  digests.push(await pushLayout(one.ref, registry.host, 'lazy/disc:1'), await pushLayout(two.ref, registry.host, 'lazy/disc:2'));
  const sizes = await Promise.all(['1', '2'].map(async (t) => (await runBuffer('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/lazy/disc:${t}`])).length));
  const entry = (i: number) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digests[i]!, size: sizes[i]!, artifactType: ARTIFACT_TYPE });
  const list = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [...Array.from({ length: 60 }, () => entry(0)), entry(1)] };
  const file = join(await tmpDir('vmimg-discover-'), 'index.json');
  writeFileSync(file, JSON.stringify(list));
  const url = `${registry.url}/v2/lazy/disc/manifests/sha256-${digests[0]!.slice(7)}`;
  const status = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '-H', 'Content-Type: application/vnd.oci.image.index.v1+json', '--data-binary', `@${file}`, url]);
  assert.equal(status.trim(), '201', 'the registry took the hostile list');
});

after(async () => {
  setDocumentLimits({});
  await client.close();
  await registry?.stop();
});

/** GETs of the two listed manifests by digest since `from` requests. */
const manifestGets = (from: number): number =>
  registry
    .accessLog()
    .slice(from)
    .filter((l) => l.method === 'GET' && digests.some((d) => l.path.endsWith(`/manifests/${d}`))).length;

describe('pull --lazy: the referrers list', () => {
  test('candidates are de-duplicated by digest and capped by limits.maxReferrerCandidates', async () => {
    const repo = parseReference(`${registry.host}/lazy/disc:1`);
    let from = registry.accessLog().length;
    assert.equal(await findPublishedIndex(client, repo, digests[0]!), undefined, 'no candidate is a lazy index');
    assert.equal(manifestGets(from), 2, 'one GET per distinct digest');
    setDocumentLimits({ maxReferrerCandidates: 1 });
    from = registry.accessLog().length;
    assert.equal(await findPublishedIndex(client, repo, digests[0]!), undefined);
    assert.equal(manifestGets(from), 1, 'the cap holds');
  });
});
