# Builds test inputs with python3's tarfile only (an outside writer, not vmimg's): layer tars, OCI
# layouts, OCI archives and `docker save` tars (classic and Docker 25+), from a JSON plan on stdin.
# Prints a JSON report (digests per image) on stdout. Driven by test/helpers/pyimage.ts.
import base64, gzip, hashlib, io, json, os, subprocess, sys, tarfile

MT_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
MT_CONFIG = 'application/vnd.oci.image.config.v1+json'
MT_INDEX = 'application/vnd.oci.image.index.v1+json'
KINDS = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'sym': tarfile.SYMTYPE, 'hard': tarfile.LNKTYPE,
         'chr': tarfile.CHRTYPE, 'blk': tarfile.BLKTYPE, 'fifo': tarfile.FIFOTYPE}


def sha(b): return hashlib.sha256(b).hexdigest()


def raw(s):
    """Names and link targets: text, or {"b64": ...} for exact bytes."""
    return base64.b64decode(s['b64']).decode('utf-8', 'surrogateescape') if isinstance(s, dict) else s


def layer_tar(entries):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode='w', format=tarfile.PAX_FORMAT, encoding='utf-8', errors='surrogateescape') as tf:
        for e in entries:
            kind = e.get('type', 'file')
            t = tarfile.TarInfo(raw(e['name']))
            t.type = KINDS[kind]
            t.mode = e.get('mode', 0o755 if kind == 'dir' else 0o777 if kind == 'sym' else 0o644)
            t.uid, t.gid, t.mtime = e.get('uid', 0), e.get('gid', 0), e.get('mtime', 1700000000)
            t.uname = t.gname = ''
            t.linkname = raw(e.get('link', ''))
            t.devmajor, t.devminor = e.get('major', 0), e.get('minor', 0)
            data = e.get('data', '').encode() if kind == 'file' else None
            if data is not None: t.size = len(data)
            tf.addfile(t, io.BytesIO(data) if data is not None else None)
    return bio.getvalue()


def gz(b):
    bio = io.BytesIO()
    with gzip.GzipFile(fileobj=bio, mode='wb', mtime=0) as g: g.write(b)
    return bio.getvalue()


class Blobs:
    def __init__(self, d):
        self.d = d
        os.makedirs(f'{d}/blobs/sha256', exist_ok=True)

    def put(self, b):
        h = sha(b)
        with open(f'{self.d}/blobs/sha256/{h}', 'wb') as f: f.write(b)
        return 'sha256:' + h


def config_bytes(img, diff_ids):
    c = {'architecture': img.get('arch', 'amd64'), 'os': 'linux',
         'config': {'Env': ['PATH=/usr/bin:/bin'], 'Labels': {'which': img.get('label', '')}},
         'rootfs': {'type': 'layers', 'diff_ids': diff_ids}}
    return json.dumps(c).encode()


def oci_image(blobs, layers, img, compress):
    """Writes layer, config and manifest blobs; returns (manifest descriptor, report)."""
    descs, dids = [], []
    for name in img['layers']:
        tar = layers[name]
        blob = gz(tar) if compress else tar
        mt = 'application/vnd.oci.image.layer.v1.tar' + ('+gzip' if compress else '')
        descs.append({'mediaType': mt, 'digest': blobs.put(blob), 'size': len(blob)})
        dids.append('sha256:' + sha(tar))
    cb = config_bytes(img, dids)
    man = {'schemaVersion': 2, 'mediaType': MT_MANIFEST,
           'config': {'mediaType': MT_CONFIG, 'digest': blobs.put(cb), 'size': len(cb)}, 'layers': descs}
    mb = json.dumps(man).encode()
    desc = {'mediaType': MT_MANIFEST, 'digest': blobs.put(mb), 'size': len(mb),
            'platform': {'architecture': img.get('arch', 'amd64'), 'os': 'linux'}}
    report = {'manifestDigest': desc['digest'], 'configDigest': man['config']['digest'], 'diffIds': dids,
              'layerDigests': [d['digest'] for d in descs]}
    return desc, report


def index_entry(desc, img):
    e = dict(desc)
    if img.get('tag'): e['annotations'] = {'org.opencontainers.image.ref.name': img['tag']}
    return e


def layout(plan, layers):
    d = plan['dir']
    blobs = Blobs(d)
    with open(f'{d}/oci-layout', 'w') as f: json.dump({'imageLayoutVersion': '1.0.0'}, f)
    manifests, reports = [], []
    for img in plan['images']:
        desc, rep = oci_image(blobs, layers, img, plan.get('gzip', True))
        if img.get('inIndex', True): manifests.append(index_entry(desc, img))
        reports.append(rep)
    with open(f'{d}/index.json', 'w') as f:
        json.dump({'schemaVersion': 2, 'mediaType': MT_INDEX, 'manifests': manifests}, f)
    if plan.get('archive'):
        subprocess.run(['tar', '-C', d, '--owner=0', '--group=0', '--numeric-owner', '-cf', plan['archive'],
                        'oci-layout', 'index.json', 'blobs'], check=True)
    return reports


class Members:
    def __init__(self): self.items = []

    def add(self, name, data=None, link=None):
        t = tarfile.TarInfo(name); t.mtime = 1700000000
        if link is not None: t.type, t.linkname, t.mode = tarfile.SYMTYPE, link, 0o777
        elif data is None: t.type, t.mode = tarfile.DIRTYPE, 0o755
        else: t.size, t.mode = len(data), 0o644
        self.items.append((t, data))

    def write(self, path):
        with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as tf:
            for t, d in self.items: tf.addfile(t, io.BytesIO(d) if d is not None else None)


def docker_classic(plan, layers):
    """Classic `docker save`: <id>/layer.tar per layer position; a repeated layer is a symlink to the first."""
    m, entries, reports, first = Members(), [], [], {}
    for n, img in enumerate(plan['images']):
        dids, paths, parent = [], [], ''
        for name in img['layers']:
            tar = layers[name]
            did = 'sha256:' + sha(tar)
            lid = sha((parent + did + str(n)).encode()); parent = lid
            m.add(f'{lid}/'); m.add(f'{lid}/VERSION', b'1.0')
            m.add(f'{lid}/json', json.dumps({'id': lid}).encode())
            if did in first: m.add(f'{lid}/layer.tar', link=f'../{first[did]}/layer.tar')
            else: m.add(f'{lid}/layer.tar', tar); first[did] = lid
            dids.append(did); paths.append(f'{lid}/layer.tar')
        cb = config_bytes(img, dids); ch = sha(cb)
        m.add(f'{ch}.json', cb)
        entries.append({'Config': f'{ch}.json', 'RepoTags': img.get('repoTags'), 'Layers': paths})
        reports.append({'configDigest': 'sha256:' + ch, 'diffIds': dids})
    m.add('manifest.json', json.dumps(entries).encode())
    m.write(plan['file'])
    return reports


def docker_hybrid(plan, layers):
    """Docker 25+ `docker save`: an OCI layout (uncompressed layers) plus manifest.json pointing into it."""
    tmp = plan['file'] + '.d'
    blobs = Blobs(tmp)
    entries, manifests, reports = [], [], []
    for img in plan['images']:
        desc, rep = oci_image(blobs, layers, img, False)
        cfg = rep['configDigest'].split(':')[1]
        entries.append({'Config': f'blobs/sha256/{cfg}', 'RepoTags': img.get('repoTags'),
                        'Layers': ['blobs/sha256/' + d.split(':')[1] for d in rep['layerDigests']]})
        if img.get('inIndex', True): manifests.append(index_entry(desc, img))
        reports.append(rep)
    m = Members(); m.add('blobs/'); m.add('blobs/sha256/')
    for h in sorted(os.listdir(f'{tmp}/blobs/sha256')):
        with open(f'{tmp}/blobs/sha256/{h}', 'rb') as f: m.add(f'blobs/sha256/{h}', f.read())
    m.add('index.json', json.dumps({'schemaVersion': 2, 'mediaType': MT_INDEX, 'manifests': manifests}).encode())
    m.add('manifest.json', json.dumps(entries).encode())
    m.add('oci-layout', b'{"imageLayoutVersion": "1.0.0"}')
    m.write(plan['file'])
    return reports


def main():
    plan = json.load(sys.stdin)
    layers = {name: layer_tar(entries) for name, entries in plan.get('layers', {}).items()}
    for name, path in plan.get('layerFiles', {}).items():  # layer tars written by another tool (GNU tar)
        with open(path, 'rb') as f: layers[name] = f.read()
    out = {'layers': {n: {'diffId': 'sha256:' + sha(t)} for n, t in layers.items()}}
    for name, t in layers.items():
        if plan.get('tarDir'):
            with open(f"{plan['tarDir']}/{name}.tar", 'wb') as f: f.write(t)
    if 'layout' in plan: out['layout'] = layout(plan['layout'], layers)
    if 'dockerClassic' in plan: out['dockerClassic'] = docker_classic(plan['dockerClassic'], layers)
    if 'dockerHybrid' in plan: out['dockerHybrid'] = docker_hybrid(plan['dockerHybrid'], layers)
    json.dump(out, sys.stdout)


main()
