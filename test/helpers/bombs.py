"""Resource-bomb images for the limit tests, written by python3's tarfile and zlib (never by vmimg).

usage: bombs.py OUT.tar KIND [ARGS...]  → an OCI archive (linux/amd64) with one image tagged "latest"
  sparse REALSIZE [NAME]                  one GNU sparse (PAX 0.1) file: "hello" at 0, the rest a hole
  zeros SIZE [zstd [ZSTD_ARGS...]]        one file of SIZE zero bytes, gzip -9 (or `zstd -3 ARGS`: a decompression bomb)
  xattrs ENTRIES PER_ENTRY VALUE_BYTES     entries carrying SCHILY.xattr.user.* records
  entries N                               N empty files in one layer
  based N                                 a small busybox-like base layer (hardlinks, symlinks), then N empty files
  passwd REALSIZE FIRST_LINE USER         /etc/passwd as a sparse file (FIRST_LINE, then a hole); config User
  layers N                                N layers of one small file each
Prints a JSON report: {"layers": [{"size": compressed bytes, "tarSize": ...}]}.
"""
import hashlib, io, json, os, subprocess, sys, tarfile, tempfile, zlib

BLOCK = 1 << 20


class Zeros(io.RawIOBase):
    """A file object of n zero bytes (tarfile copies it in blocks: nothing big in memory)."""
    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


class Sink(io.RawIOBase):
    """Hashes and counts the tar as tarfile writes it, gzips it into a temp file."""
    media_type = 'application/vnd.oci.image.layer.v1.tar+gzip'
    def __init__(self, level):
        self.tar_hash, self.tar_size = hashlib.sha256(), 0
        self.z = zlib.compressobj(level, zlib.DEFLATED, 31)
        self.out = tempfile.NamedTemporaryFile(delete=False)

    def writable(self):
        return True

    def write(self, b):
        self.tar_hash.update(b)
        self.tar_size += len(b)
        self.out.write(self.z.compress(bytes(b)))
        return len(b)

    def finish(self):
        self.out.write(self.z.flush())
        self.out.close()
        return self.out.name


class ZstdSink(Sink):
    """As Sink, but compressed by the zstd CLI (`zstd -3`) instead of zlib."""
    media_type = 'application/vnd.oci.image.layer.v1.tar+zstd'

    def __init__(self, args=()):
        super().__init__(0)
        self.proc = subprocess.Popen(['zstd', '-q', '-3', '-c', *args], stdin=subprocess.PIPE, stdout=self.out)

    def write(self, b):
        self.tar_hash.update(b)
        self.tar_size += len(b)
        self.proc.stdin.write(b)
        return len(b)

    def finish(self):
        self.proc.stdin.close()
        if self.proc.wait() != 0:
            raise SystemExit('zstd failed')
        self.out.close()
        return self.out.name


def sparse_member(t, name, realsize, data=b'hello'):
    ti = tarfile.TarInfo('GNUSparseFile.0/' + os.path.basename(name))
    ti.size = len(data)
    ti.pax_headers = {'GNU.sparse.realsize': str(realsize), 'GNU.sparse.map': f'0,{len(data)}', 'GNU.sparse.name': name}
    t.addfile(ti, io.BytesIO(data))


def file_member(t, name, data=b'', pax=None):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    if pax:
        ti.pax_headers = pax
    t.addfile(ti, io.BytesIO(data))


def layer(fill, level=6, sink=None):
    sink = sink or Sink(level)
    with tarfile.open(fileobj=sink, mode='w|', format=tarfile.PAX_FORMAT) as t:
        fill(t)
    return sink


class Layout:
    def __init__(self):
        self.blobs = {}  # hex -> path or bytes

    def add(self, data=None, path=None):
        if path is not None:
            h = hashlib.sha256()
            with open(path, 'rb') as f:
                for chunk in iter(lambda: f.read(BLOCK), b''):
                    h.update(chunk)
            self.blobs[h.hexdigest()] = path
            return h.hexdigest(), os.path.getsize(path)
        hexd = hashlib.sha256(data).hexdigest()
        self.blobs[hexd] = data
        return hexd, len(data)

    def write(self, out, sinks, user=None):
        layers = []
        for s in sinks:
            hexd, size = self.add(path=s.finish())
            layers.append({'mediaType': s.media_type, 'digest': 'sha256:' + hexd, 'size': size,
                           'diff_id': 'sha256:' + s.tar_hash.hexdigest(), 'tarSize': s.tar_size})
        cfg = {'architecture': 'amd64', 'os': 'linux', 'config': {'Cmd': ['/bin/sh'], **({'User': user} if user else {})},
               'rootfs': {'type': 'layers', 'diff_ids': [l['diff_id'] for l in layers]}}
        chex, csize = self.add(json.dumps(cfg).encode())
        man = {'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
               'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': 'sha256:' + chex, 'size': csize},
               'layers': [{k: l[k] for k in ('mediaType', 'digest', 'size')} for l in layers]}
        mhex, msize = self.add(json.dumps(man).encode())
        index = {'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.index.v1+json',
                 'manifests': [{'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': 'sha256:' + mhex, 'size': msize,
                                'annotations': {'org.opencontainers.image.ref.name': 'latest'}}]}
        with tarfile.open(out, 'w', format=tarfile.GNU_FORMAT) as t:
            add_bytes(t, 'oci-layout', json.dumps({'imageLayoutVersion': '1.0.0'}).encode())
            add_bytes(t, 'index.json', json.dumps(index).encode())
            for hexd, blob in self.blobs.items():
                if isinstance(blob, bytes):
                    add_bytes(t, f'blobs/sha256/{hexd}', blob)
                else:
                    t.add(blob, arcname=f'blobs/sha256/{hexd}')
                    os.unlink(blob)
        print(json.dumps({'layers': [{'size': l['size'], 'tarSize': l['tarSize']} for l in layers]}))


def base_fill(t):
    """A busybox-shaped base: directories, one binary, 300 hardlinks to it, 100 symlinks, a few /etc files."""
    for d in ('bin', 'etc', 'usr', 'usr/bin', 'var', 'tmp', 'root', 'home'):
        ti = tarfile.TarInfo(d)
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        t.addfile(ti)
    file_member(t, 'bin/busybox', b'\x7fELF' + bytes(4092))
    for i in range(300):
        ti = tarfile.TarInfo(f'bin/applet{i:03d}')
        ti.type, ti.linkname = tarfile.LNKTYPE, 'bin/busybox'
        t.addfile(ti)
    for i in range(100):
        ti = tarfile.TarInfo(f'usr/bin/tool{i:03d}')
        ti.type, ti.linkname = tarfile.SYMTYPE, '../../bin/busybox'
        t.addfile(ti)
    for name in ('passwd', 'group', 'hostname'):
        file_member(t, f'etc/{name}', f'{name}\n'.encode())


def add_bytes(t, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))


def main(out, kind, *args):
    lay, user = Layout(), None
    if kind == 'sparse':
        sinks = [layer(lambda t: sparse_member(t, args[1] if len(args) > 1 else 'big', int(args[0])))]
    elif kind == 'zeros':
        def fill(t):
            ti = tarfile.TarInfo('zeros')
            ti.size = int(args[0])
            t.addfile(ti, Zeros(ti.size))
        sinks = [layer(fill, 9, ZstdSink(args[2:]) if args[1:2] == ('zstd',) else None)]
    elif kind == 'xattrs':
        n, per, size = map(int, args)
        value = 'V' * size
        sinks = [layer(lambda t: [file_member(t, f'f{i}', pax={f'SCHILY.xattr.user.x{j}': value for j in range(per)}) for i in range(n)])]
    elif kind == 'entries':
        sinks = [layer(lambda t: [file_member(t, f'd{i // 1000:05d}/f{i % 1000:03d}') for i in range(int(args[0]))])]
    elif kind == 'based':
        sinks = [layer(base_fill), layer(lambda t: [file_member(t, f'd{i // 1000:05d}/f{i % 1000:03d}') for i in range(int(args[0]))])]
    elif kind == 'passwd':
        realsize, first, user = int(args[0]), args[1].encode() + b'\n', args[2]
        sinks = [layer(lambda t: (file_member(t, 'bin/sh', b'#!\n'), sparse_member(t, 'etc/passwd', realsize, first)))]
    elif kind == 'layers':
        sinks = [layer(lambda t, i=i: file_member(t, f'l/{i}', str(i).encode())) for i in range(int(args[0]))]
    else:
        raise SystemExit(f'unknown kind {kind}')
    lay.write(out, sinks, user)


if __name__ == '__main__':
    main(*sys.argv[1:])
