# Describes a directory tree by exact bytes (names, link targets, xattr names), for comparing trees whose
# names are not UTF-8: {b64(path): {kind, mode, size, sha256, link, xattrs}} as JSON on stdout.
# Usage: python3 bytes-tree.py ROOT [--no-xattrs]
import base64, hashlib, json, os, stat, sys

def b64(b): return base64.b64encode(b).decode()

root = os.fsencode(sys.argv[1])
want_xattrs = '--no-xattrs' not in sys.argv
out = {}
for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        full = os.path.join(dirpath, name)
        rel = os.path.relpath(full, root)
        st = os.lstat(full)
        d = {'mode': oct(stat.S_IMODE(st.st_mode))}
        if stat.S_ISDIR(st.st_mode): d['kind'] = 'dir'
        elif stat.S_ISLNK(st.st_mode): d['kind'] = 'symlink'; d['link'] = b64(os.readlink(full))
        elif stat.S_ISREG(st.st_mode):
            with open(full, 'rb') as f: d.update(kind='file', size=st.st_size, sha256=hashlib.sha256(f.read()).hexdigest())
        else: d['kind'] = 'other'
        if want_xattrs and not stat.S_ISLNK(st.st_mode):
            d['xattrs'] = {b64(os.fsencode(x)): b64(os.getxattr(full, x, follow_symlinks=False)) for x in sorted(os.listxattr(full, follow_symlinks=False))}
        out[b64(rel)] = d
json.dump(out, sys.stdout, sort_keys=True)
