#!/usr/bin/env bash
# Builds the default guest's kernel (images/default/bzImage) from Debian's linux-source-6.1, with the
# config kept in images/kernel/config, bit for bit reproducibly.
#
#   images/build-kernel.sh [OUT_DIR]        build; writes OUT_DIR/bzImage (default images/default)
#   images/build-kernel.sh --regen-config   tinyconfig + images/kernel/x86vm.fragment -> images/kernel/config
#
# Environment: KBUILD_DIR (source/build tree, kept for fast incremental rebuilds; default
# ${TMPDIR:-/tmp}/x86vm-kernel), DEB_CACHE (downloaded .debs), JOBS (make -j, default 2),
# NICE (nice level, default 10).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Pinned inputs. The .deb's sha256 is checked before use.
LINUX_PKG=linux-source-6.1
LINUX_PKG_VERSION=6.1.192-2
LINUX_DEB_SHA256=ae95fe63d4c553f8d0e6c86cb1ab566f3894a43743eb19ab585cd97d82f26514
# Everything the kernel embeds about its build, pinned.
export KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026'
export KBUILD_BUILD_USER=x86vm
export KBUILD_BUILD_HOST=x86vm
export KBUILD_BUILD_VERSION=1
export LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH=1767225600

KBUILD_DIR="${KBUILD_DIR:-${TMPDIR:-/tmp}/x86vm-kernel}"
DEB_CACHE="${DEB_CACHE:-${TMPDIR:-/tmp}/x86vm-debs}"
JOBS="${JOBS:-2}"
NICE="${NICE:-10}"

die() { echo "build-kernel: $*" >&2; exit 1; }

need_tools() {
  local missing=()
  command -v flex >/dev/null || missing+=(flex)
  command -v bison >/dev/null || missing+=(bison)
  command -v bc >/dev/null || missing+=(bc)
  command -v gcc >/dev/null || missing+=(gcc)
  command -v make >/dev/null || missing+=(make)
  command -v perl >/dev/null || missing+=(perl)
  command -v cpio >/dev/null || missing+=(cpio)
  [ -e /usr/include/libelf.h ] || missing+=(libelf-dev)
  [ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "build-kernel: installing ${missing[*]}" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 \
        || { apt-get update -q >&2 || true; DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; }
    else
      die "missing build tools: ${missing[*]} (apt-get install them)"
    fi
  fi
}

fetch_source() {
  mkdir -p "$DEB_CACHE"
  local deb="$DEB_CACHE/${LINUX_PKG}_${LINUX_PKG_VERSION}_all.deb"
  if [ ! -f "$deb" ] || ! echo "$LINUX_DEB_SHA256  $deb" | sha256sum -c --status; then
    rm -f "$deb"
    (cd "$DEB_CACHE" && apt-get download -q "${LINUX_PKG}=${LINUX_PKG_VERSION}") >&2 \
      || die "apt-get download ${LINUX_PKG}=${LINUX_PKG_VERSION} failed (is the version still on the mirror? 'apt-cache policy ${LINUX_PKG}')"
  fi
  echo "$LINUX_DEB_SHA256  $deb" | sha256sum -c --status || die "sha256 mismatch for $deb"
  local stamp="$KBUILD_DIR/.x86vm-source"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$LINUX_DEB_SHA256" ] && [ -f "$KBUILD_DIR/linux/Makefile" ]; then
    return
  fi
  echo "build-kernel: unpacking $LINUX_PKG $LINUX_PKG_VERSION into $KBUILD_DIR" >&2
  rm -rf "$KBUILD_DIR"
  mkdir -p "$KBUILD_DIR/deb"
  dpkg -x "$deb" "$KBUILD_DIR/deb"
  local tarball
  tarball="$(ls "$KBUILD_DIR"/deb/usr/src/linux-source-6.1.tar.*)"
  mkdir -p "$KBUILD_DIR/linux"
  tar -xf "$tarball" -C "$KBUILD_DIR/linux" --strip-components=1
  rm -rf "$KBUILD_DIR/deb"
  echo "$LINUX_DEB_SHA256" > "$stamp"
}

kmake() { nice -n "$NICE" make -C "$KBUILD_DIR/linux" ARCH=i386 "$@"; }

regen_config() {
  kmake tinyconfig >&2
  (cd "$KBUILD_DIR/linux" && ARCH=i386 ./scripts/kconfig/merge_config.sh -m .config "$HERE/kernel/x86vm.fragment") >&2
  kmake olddefconfig >&2
  # Every line of the fragment must have survived.
  local bad=0 line name want got
  while IFS= read -r line; do
    case "$line" in
      CONFIG_*=*) name="${line%%=*}"; want="$line" ;;
      "# CONFIG_"*" is not set") name="${line#\# }"; name="${name%% *}"; want="" ;;
      *) continue ;;
    esac
    got="$(grep -E "^(# )?${name}[= ]" "$KBUILD_DIR/linux/.config" || true)"
    if [ -n "$want" ]; then
      [ "$got" = "$want" ] || { echo "build-kernel: $want did not stick (got: ${got:-absent})" >&2; bad=1; }
    else
      case "$got" in ''|"# $name is not set") ;; *) echo "build-kernel: $name should be off (got: $got)" >&2; bad=1 ;; esac
    fi
  done < "$HERE/kernel/x86vm.fragment"
  [ $bad = 0 ] || die "the fragment does not resolve cleanly"
  cp "$KBUILD_DIR/linux/.config" "$HERE/kernel/config"
  echo "build-kernel: wrote $HERE/kernel/config" >&2
}

build() {
  local out="$1"
  cp "$HERE/kernel/config" "$KBUILD_DIR/linux/.config"
  kmake olddefconfig >&2
  if ! cmp -s "$HERE/kernel/config" "$KBUILD_DIR/linux/.config"; then
    diff "$HERE/kernel/config" "$KBUILD_DIR/linux/.config" >&2 || true
    die "images/kernel/config is not stable under olddefconfig (run --regen-config)"
  fi
  kmake -j"$JOBS" bzImage >&2
  mkdir -p "$out"
  cp "$KBUILD_DIR/linux/arch/x86/boot/bzImage" "$out/bzImage"
  echo "build-kernel: $(sha256sum "$out/bzImage")" >&2
}

need_tools
fetch_source
case "${1:-}" in
  --regen-config) regen_config ;;
  *) build "${1:-$HERE/default}" ;;
esac
