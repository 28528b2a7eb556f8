#!/usr/bin/env bash
# Builds the default guest's initramfs (images/default/initramfs.cpio.gz) from Debian's busybox-static
# (i386), bit for bit reproducibly: sorted entries, fixed mtimes, owner 0:0, fixed modes, gzip -n.
#
#   images/build-initramfs.sh [OUT_DIR]     writes OUT_DIR/initramfs.cpio.gz (default images/default)
#
# Environment: DEB_CACHE (downloaded .debs, default ${TMPDIR:-/tmp}/x86vm-debs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/default}"

BUSYBOX_PKG=busybox-static
BUSYBOX_ARCH=i386
BUSYBOX_VERSION=1:1.35.0-4+deb12u1+b1
BUSYBOX_DEB_SHA256=725ef9e6fbac4ab79b353165b05005e8c140d6e42177ebbc202ff1e13ded8b7c
EPOCH=1767225600 # 2026-01-01 00:00:00 UTC, every file's mtime

DEB_CACHE="${DEB_CACHE:-${TMPDIR:-/tmp}/x86vm-debs}"
export LC_ALL=C TZ=UTC

die() { echo "build-initramfs: $*" >&2; exit 1; }

for tool in cpio gzip dpkg; do
  if ! command -v $tool >/dev/null; then
    [ "$(id -u)" = 0 ] || die "missing $tool (apt-get install $tool)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $tool >&2
  fi
done

# ---- busybox-static:i386, pinned and checked ----
mkdir -p "$DEB_CACHE"
deb="$DEB_CACHE/${BUSYBOX_PKG}_${BUSYBOX_VERSION/:/%3a}_${BUSYBOX_ARCH}.deb"
if [ ! -f "$deb" ] || ! echo "$BUSYBOX_DEB_SHA256  $deb" | sha256sum -c --status; then
  rm -f "$deb"
  if ! dpkg --print-foreign-architectures | grep -qx i386 && [ "$(dpkg --print-architecture)" != i386 ]; then
    [ "$(id -u)" = 0 ] || die "dpkg --add-architecture i386 && apt-get update needed (as root)"
    dpkg --add-architecture i386
    apt-get update -q >&2 || true
  fi
  (cd "$DEB_CACHE" && apt-get download -q "${BUSYBOX_PKG}:${BUSYBOX_ARCH}=${BUSYBOX_VERSION}") >&2 \
    || die "apt-get download ${BUSYBOX_PKG}:${BUSYBOX_ARCH}=${BUSYBOX_VERSION} failed"
fi
echo "$BUSYBOX_DEB_SHA256  $deb" | sha256sum -c --status || die "sha256 mismatch for $deb"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dpkg -x "$deb" "$work/deb"
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,mnt}
install -m 0755 "$work/deb/bin/busybox" "$root/bin/busybox"

# ---- one symlink per applet; the applet list is kept in the repo so the build never runs the binary ----
while IFS= read -r applet; do
  case "$applet" in ''|'#'*) continue ;; esac
  [ "$applet" = bin/busybox ] && continue
  ln -s /bin/busybox "$root/$applet"
done < "$HERE/initramfs/applets.txt"

# ---- /init and friends ----
install -m 0755 "$HERE/initramfs/init" "$root/init"
install -m 0644 "$HERE/initramfs/profile" "$root/etc/profile"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
printf 'x86vm\n' > "$root/etc/hostname"
chmod 0644 "$root"/etc/{passwd,group,hostname}
chmod 0755 "$root" "$root"/{bin,sbin,usr,usr/bin,usr/sbin,etc,proc,sys,dev,root,mnt}
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"

# ---- a deterministic archive ----
find "$root" -exec touch -h -d "@$EPOCH" {} +
mkdir -p "$OUT"
(cd "$root" && find . -mindepth 1 | sed 's|^\./||' | sort \
  | cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -9 > "$OUT/initramfs.cpio.gz.tmp"
mv "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
echo "build-initramfs: $(sha256sum "$OUT/initramfs.cpio.gz")" >&2
