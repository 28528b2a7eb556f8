#!/usr/bin/env bash
# Builds the "stock Debian kernel" guest: Debian's own linux-image-6.1.0-*-686 (i386, non-PAE) with the
# default guest's busybox initramfs. Built on demand, never committed.
#
#   images/build-stock-guest.sh [OUT_DIR]   writes OUT_DIR/vmlinuz and OUT_DIR/initramfs.cpio.gz
#                                           (default images/stock, gitignored)
#
# Boot it with:
#   x86vm run --kernel OUT_DIR/vmlinuz --initrd OUT_DIR/initramfs.cpio.gz \
#             --append "console=ttyS0 cryptomgr.notests"
#
# No kernel modules are added: everything this machine's serial-console shell needs (8250/16550 console,
# initramfs with gzip, devtmpfs, ELF, ptys) is built into Debian's 686 kernel. The script checks that
# against the config file shipped in the .deb and fails if a later kernel turns one of them into a module.
#
# Environment: DEB_CACHE (downloaded .debs, default ${TMPDIR:-/tmp}/x86vm-debs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/stock}"

# Pinned: the version on Debian's bookworm mirror when this was written. When the mirror drops it, pick the
# current one ('apt-cache search --names-only ^linux-image-6.1.0-.*-686$', 'apt-cache policy PKG:i386'),
# then update all three lines.
KERNEL_PKG=linux-image-6.1.0-50-686
KERNEL_VERSION=6.1.176-1
KERNEL_DEB_SHA256=526c469c5148a2b61c4241c3f6575427096575e0ffef9541b6729351c600b3e4
KERNEL_ARCH=i386
KREL="${KERNEL_PKG#linux-image-}" # 6.1.0-50-686

# What the guest needs built in (=y) for a shell on ttyS0 from our initramfs.
NEEDED_CONFIG=(SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP DEVTMPFS BINFMT_ELF BINFMT_SCRIPT
  TTY UNIX98_PTYS PROC_FS SYSFS TMPFS)

DEB_CACHE="${DEB_CACHE:-${TMPDIR:-/tmp}/x86vm-debs}"
export LC_ALL=C TZ=UTC

die() { echo "build-stock-guest: $*" >&2; exit 1; }

command -v dpkg >/dev/null || die "needs dpkg (a Debian host)"
[ -f "$HERE/default/initramfs.cpio.gz" ] || die "missing $HERE/default/initramfs.cpio.gz"

# ---- the kernel .deb, pinned and checked ----
mkdir -p "$DEB_CACHE"
deb="$DEB_CACHE/${KERNEL_PKG}_${KERNEL_VERSION}_${KERNEL_ARCH}.deb"
if [ ! -f "$deb" ] || ! echo "$KERNEL_DEB_SHA256  $deb" | sha256sum -c --status; then
  rm -f "$deb"
  if ! dpkg --print-foreign-architectures | grep -qx "$KERNEL_ARCH" \
      && [ "$(dpkg --print-architecture)" != "$KERNEL_ARCH" ]; then
    [ "$(id -u)" = 0 ] || die "needs the $KERNEL_ARCH architecture: dpkg --add-architecture $KERNEL_ARCH && apt-get update (as root)"
    dpkg --add-architecture "$KERNEL_ARCH"
    apt-get update -q >&2 || true
  fi
  if ! (cd "$DEB_CACHE" && apt-get download -q "${KERNEL_PKG}:${KERNEL_ARCH}=${KERNEL_VERSION}") >&2; then
    # The package lists may predate the pinned version (or the i386 architecture): refresh once.
    [ "$(id -u)" = 0 ] && { apt-get update -q >&2 || true; }
    (cd "$DEB_CACHE" && apt-get download -q "${KERNEL_PKG}:${KERNEL_ARCH}=${KERNEL_VERSION}") >&2 \
      || die "apt-get download ${KERNEL_PKG}:${KERNEL_ARCH}=${KERNEL_VERSION} failed (still on the mirror? 'apt-cache policy ${KERNEL_PKG}:${KERNEL_ARCH}')"
  fi
fi
echo "$KERNEL_DEB_SHA256  $deb" | sha256sum -c --status || die "sha256 mismatch for $deb"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dpkg -x "$deb" "$work/deb"
vmlinuz="$work/deb/boot/vmlinuz-$KREL"
config="$work/deb/boot/config-$KREL"
[ -f "$vmlinuz" ] || die "no boot/vmlinuz-$KREL in $deb"
[ -f "$config" ] || die "no boot/config-$KREL in $deb"

# ---- no modules needed: check that the drivers are built in ----
for opt in "${NEEDED_CONFIG[@]}"; do
  grep -qx "CONFIG_$opt=y" "$config" \
    || die "CONFIG_$opt is not built into $KREL ($(grep -E "^(# )?CONFIG_$opt[= ]" "$config" || echo unset)); the initramfs would need its module"
done

# ---- output ----
mkdir -p "$OUT"
install -m 0644 "$vmlinuz" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
install -m 0644 "$config" "$OUT/config"
install -m 0644 "$HERE/default/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz.tmp"
mv "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
printf '%s\n' "$KERNEL_PKG $KERNEL_VERSION $KERNEL_ARCH" > "$OUT/VERSION"
echo "build-stock-guest: $OUT/vmlinuz ($KERNEL_PKG $KERNEL_VERSION), $OUT/initramfs.cpio.gz" >&2
