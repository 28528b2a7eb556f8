#!/usr/bin/env bash
# Rebuilds the default guest (kernel and initramfs) from its recipes into a temporary directory and
# checks that the results are bit-identical to the committed images/default/ files.
#
#   images/check.sh                  both, the kernel from a fresh source tree (minutes on 2 cores)
#   images/check.sh initramfs        the initramfs only (seconds)
#   images/check.sh kernel           the kernel only
#
# KBUILD_DIR=... reuses a kernel tree (faster, but then only checks an incremental build).
# Exit status 0 when everything matches, 1 on a mismatch or a build failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
what="${1:-all}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
status=0

compare() {
  local name="$1" want got
  if [ ! -f "$HERE/default/$name" ]; then
    echo "check: images/default/$name is missing" >&2
    status=1
    return
  fi
  want="$(sha256sum < "$HERE/default/$name" | cut -d' ' -f1)"
  got="$(sha256sum < "$tmp/out/$name" | cut -d' ' -f1)"
  if [ "$want" = "$got" ]; then
    echo "check: $name OK ($got)"
  else
    echo "check: $name DIFFERS: committed $want, rebuilt $got" >&2
    status=1
  fi
  if [ -f "$HERE/SHA256SUMS" ] && ! grep -q "^$got  default/$name\$" "$HERE/SHA256SUMS"; then
    echo "check: $name: the rebuilt sum is not the one recorded in images/SHA256SUMS" >&2
    status=1
  fi
}

if [ "$what" = all ] || [ "$what" = initramfs ]; then
  "$HERE/build-initramfs.sh" "$tmp/out"
  compare initramfs.cpio.gz
fi
if [ "$what" = all ] || [ "$what" = kernel ]; then
  KBUILD_DIR="${KBUILD_DIR:-$tmp/kernel}" "$HERE/build-kernel.sh" "$tmp/out"
  compare bzImage
fi
exit $status
