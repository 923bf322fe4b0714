#!/usr/bin/env bash
# Rebuild the committed sample images in images/ from Debian's busybox-static
# packages with umoci and skopeo. Reproducible: every mtime is pinned to the
# epoch, history/config timestamps are fixed, tars are sorted, so the same
# .deb files give byte-identical outputs.
#
#   bash images/build.sh            # writes images/busybox-multiarch.oci.tar
#                                   #    and images/busybox-amd64.docker.tar
#   OUT=/some/dir bash images/build.sh
#
# Needs: umoci, skopeo, dpkg-deb, GNU tar, node (for JSON), sha256sum;
# apt-get (to fetch busybox-static:amd64 and :arm64 into test/.cache/debs
# unless they are there already; arm64 needs `dpkg --add-architecture arm64`).
set -euo pipefail
export SOURCE_DATE_EPOCH=0 LC_ALL=C TZ=UTC

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
out=${OUT:-$here}
debs=${VMIMG_DEB_CACHE:-$repo/test/.cache/debs}
epoch=1970-01-01T00:00:00Z
tag=latest

need() {
  command -v "$1" >/dev/null 2>&1 && return
  echo "images/build.sh: missing '$1' — apt-get install -y $2 (or: bash .ci/run)" >&2
  exit 1
}
need umoci umoci; need skopeo skopeo; need dpkg-deb dpkg; need tar tar
need node nodejs; need sha256sum coreutils

work=$(mktemp -d /tmp/vmimg-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Path of the busybox-static .deb for $1, downloading it into $debs if needed.
fetch_deb() {
  local arch=$1 deb
  mkdir -p "$debs"
  deb=$(ls "$debs"/busybox-static_*_"$arch".deb 2>/dev/null | sort | tail -n1 || true)
  if [[ -z $deb ]]; then
    (cd "$debs" && apt-get download "busybox-static:$arch") >&2 || {
      echo "apt-get download busybox-static:$arch failed (arm64: dpkg --add-architecture arm64 && apt-get update)" >&2
      exit 1
    }
    deb=$(ls "$debs"/busybox-static_*_"$arch".deb | sort | tail -n1)
  fi
  echo "$deb"
}

# Base rootfs for $1 (arch) in $2: busybox, applet links, users, /etc/arch.
make_rootfs() {
  local arch=$1 root=$2 x="$work/deb-$1" a
  dpkg-deb -x "$(fetch_deb "$arch")" "$x"
  mkdir -p "$root"/{bin,etc,dev,proc,sys,root,tmp,home/app}
  install -m 0755 "$x/bin/busybox" "$root/bin/busybox"
  ln -s /bin/busybox "$root/bin/sh"
  for a in cat echo env false grep head id ls mkdir mount poweroff ps readlink rm sed sleep \
           stat test true uname wc whoami; do
    ln -s busybox "$root/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf '%s\n' "$arch" >"$root/etc/arch"
  printf 'vmimg sample image (busybox, %s)\n' "$arch" >"$root/etc/issue"
  chmod 0700 "$root/root"; chmod 1777 "$root/tmp"
  chown 1000:1000 "$root/home/app" 2>/dev/null || true
}

# umoci insert of directory $2 at $3 into image $1, with epoch mtimes.
insert() {
  find "$2" -exec touch -h -d @0 {} +
  umoci insert --image "$1" --history.created "$epoch" --history.created_by "$4" "$2" "$3"
}

# Image $1:$2 (layout:tag) for arch $3 — three layers: base, add, whiteout.
build_image() {
  local layout=$1 itag=$2 arch=$3 ref="$1:$2"
  umoci new --image "$ref"
  make_rootfs "$arch" "$work/root-$arch"
  insert "$ref" "$work/root-$arch" / "busybox-static base"
  mkdir -p "$work/add-$arch/etc" "$work/add-$arch/usr/share/vmimg"
  printf 'Welcome to the vmimg sample (%s).\n' "$arch" >"$work/add-$arch/etc/motd"
  printf 'second layer\n' >"$work/add-$arch/usr/share/vmimg/layer2.txt"
  insert "$ref" "$work/add-$arch" / "add /etc/motd"
  umoci insert --image "$ref" --history.created "$epoch" --history.created_by "remove /etc/issue" \
    --whiteout /etc/issue
  umoci config --image "$ref" --no-history --created "$epoch" --architecture "$arch" --os linux \
    --config.entrypoint /bin/sh --config.cmd -c --config.cmd 'cat /etc/arch /etc/motd' \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env VMIMG_SAMPLE=1 --config.workingdir / --config.user root \
    --config.label org.opencontainers.image.title=vmimg-busybox-sample
}

# Add an OCI image index over the $tag-amd64 and $tag-arm64 images, tagged $tag.
write_index() {
  node - "$1" "$tag" <<'EOF'
const fs = require('fs'), crypto = require('crypto'), path = require('path');
const [layout, tag] = process.argv.slice(2);
const top = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
const ref = (t) => top.manifests.find((m) => m.annotations['org.opencontainers.image.ref.name'] === t);
const plat = { amd64: { architecture: 'amd64', os: 'linux' }, arm64: { architecture: 'arm64', os: 'linux', variant: 'v8' } };
const manifests = ['amd64', 'arm64'].map((a) => {
  const m = ref(`${tag}-${a}`);
  return { mediaType: m.mediaType, digest: m.digest, size: m.size, platform: plat[a] };
});
const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
const hex = crypto.createHash('sha256').update(bytes).digest('hex');
fs.writeFileSync(path.join(layout, 'blobs/sha256', hex), bytes);
top.manifests.push({ mediaType: 'application/vnd.oci.image.index.v1+json', digest: `sha256:${hex}`, size: bytes.length,
  annotations: { 'org.opencontainers.image.ref.name': tag } });
fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify(top));
EOF
}

# skopeo stamps its oci-archive entries with the current time: re-tar the same
# files with GNU tar, sorted, epoch mtimes, root ownership.
normalise_tar() {
  local file=$1 dir="$work/normalise"
  rm -rf "$dir"; mkdir "$dir"
  tar -xf "$file" -C "$dir"
  find "$dir" -exec touch -h -d @0 {} +
  (cd "$dir" && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=ustar \
     -cf "$file" $(ls -A | sort))
}

layout="$work/layout"
umoci init --layout "$layout"
build_image "$layout" "$tag-amd64" amd64
build_image "$layout" "$tag-arm64" arm64
write_index "$layout"

mkdir -p "$out"
rm -f "$out/busybox-multiarch.oci.tar" "$out/busybox-amd64.docker.tar"
skopeo copy --quiet --all "oci:$layout:$tag" "oci-archive:$out/busybox-multiarch.oci.tar:$tag"
normalise_tar "$out/busybox-multiarch.oci.tar"
skopeo copy --quiet "oci:$layout:$tag-amd64" "docker-archive:$out/busybox-amd64.docker.tar:vmimg/busybox:latest"

(cd "$out" && sha256sum busybox-multiarch.oci.tar busybox-amd64.docker.tar)
