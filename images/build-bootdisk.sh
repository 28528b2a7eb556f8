#!/usr/bin/env bash
# Builds a bootable, partitioned hard-disk image with SYSLINUX from Debian's syslinux, syslinux-common,
# mtools and dosfstools packages, holding the default guest's kernel and initramfs, as a dynamic VHD.
# Needs no root and no loop mounts: the file system is made and filled inside the image file at the
# partition's offset (mkfs.fat --offset, mtools' FILE@@OFFSET, syslinux --offset). Bit-reproducible.
#
#   images/build-bootdisk.sh [--raw] OUT_DIR   writes OUT_DIR/boot.vhd (and, with --raw, OUT_DIR/boot.img)
#
# The disk (65520 sectors = 32 MiB less 8 KiB: 65 cylinders of 16 heads x 63 sectors, the geometry an IDE
# disk of this size reports, so the partition's CHS fields agree with it):
#   sector 0            SYSLINUX's mbr.bin (boots the active partition), disk signature 0x4d563638,
#                       one partition entry: active, type 0x0e (FAT16, LBA), sectors 2048-65519
#                       (CHS 2/0/33 to 64/15/63)
#   sectors 2048-65519  FAT16 "X86VM", 2 KiB clusters:
#                         /syslinux/ldlinux.sys, /syslinux/ldlinux.c32   (syslinux --install)
#                         /syslinux/syslinux.cfg  boots /boot/bzImage + /boot/initramfs.cpio.gz with
#                                                 "console=ttyS0 console=tty0" (as the CD does)
#                         /boot/bzImage, /boot/initramfs.cpio.gz          images/default's files
# Every timestamp is SOURCE_DATE_EPOCH, the volume ID is fixed, and the VHD footer's time and unique ID are
# pinned (lib-boot.sh), so two builds of the same inputs are identical byte for byte.
#
# VHD_CONVERTER=qemu-img (default: qemu-img convert -O vpc -o subformat=dynamic) or VHD_CONVERTER=x86vm
# (x86vm disk convert --format vhd-dynamic, run as node $X86VM_CLI, default this repository's
# dist/x86vm.mjs: npm run build first).
#
# Boot it:  x86vm run --bios /usr/share/seabios/bios.bin --hda OUT_DIR/boot.vhd
#           qemu-system-i386 -drive file=OUT_DIR/boot.vhd,format=vpc -serial stdio
# Environment: see lib-boot.sh (DEB_CACHE, SOURCE_DATE_EPOCH, BOOT_KERNEL, BOOT_INITRD, BOOT_APPEND).
set -euo pipefail

BOOT_TOOL=build-bootdisk
# shellcheck source=lib-boot.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-boot.sh"

keep_raw=0
if [ "${1:-}" = --raw ]; then
  keep_raw=1
  shift
fi
[ $# -eq 1 ] || boot_die "usage: build-bootdisk.sh [--raw] OUT_DIR"
OUT="$1"
VHD_CONVERTER="${VHD_CONVERTER:-qemu-img}"
case "$VHD_CONVERTER" in
  qemu-img) command -v qemu-img >/dev/null || boot_die "needs qemu-img (apt-get install qemu-utils)" ;;
  x86vm)
    X86VM_CLI="${X86VM_CLI:-$BOOT_HERE/../dist/x86vm.mjs}"
    [ -f "$X86VM_CLI" ] || boot_die "VHD_CONVERTER=x86vm needs $X86VM_CLI (npm run build)" ;;
  *) boot_die "VHD_CONVERTER must be qemu-img or x86vm, not '$VHD_CONVERTER'" ;;
esac
command -v perl >/dev/null || boot_die "needs perl"

# ---- geometry ----
HEADS=16
SPT=63
CYLS=65
TOTAL=$((CYLS * HEADS * SPT))  # 65520 sectors
PART_START=2048                # 1 MiB, aligned
PART_SECTORS=$((TOTAL - PART_START))
PART_OFFSET=$((PART_START * 512))
DISK_ID=0x4d563638             # "86VM" read as a little-endian dword
VOLUME_ID=4d563638

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
BOOT_PKGS="$work/pkgs"
boot_fetch syslinux-common syslinux mtools dosfstools
# the unpacked tools come first; syslinux runs mcopy/mattrib from PATH
export PATH="$BOOT_PKGS/usr/bin:$BOOT_PKGS/sbin:$BOOT_PKGS/usr/sbin:$PATH"
# mtools: no host configuration (an empty MTOOLSRC), no geometry checks on image files
: >"$work/mtoolsrc"
export MTOOLSRC="$work/mtoolsrc" MTOOLS_SKIP_CHECK=1

# ---- the files, with pinned times ----
files="$work/files"
mkdir -p "$files/boot" "$files/syslinux"
install -m 0644 "$BOOT_KERNEL" "$files/boot/bzImage"
install -m 0644 "$BOOT_INITRD" "$files/boot/initramfs.cpio.gz"
boot_config disk "$files/syslinux/syslinux.cfg"
boot_stamp "$files"

# ---- MBR: boot code, disk signature, one active partition ----
raw="$work/boot.img"
truncate -s $((TOTAL * 512)) "$raw"
mbr="$BOOT_PKGS/usr/lib/syslinux/mbr/mbr.bin"
[ "$(stat -c %s "$mbr")" -le 440 ] || boot_die "$mbr is larger than 440 bytes"
dd if="$mbr" of="$raw" conv=notrunc status=none
# chs LBA: the three CHS bytes of a partition entry (head; sector | cylinder bits 8-9 << 6; cylinder low)
chs() {
  local lba=$1 c h s
  c=$((lba / (HEADS * SPT)))
  h=$(((lba / SPT) % HEADS))
  s=$((lba % SPT + 1))
  printf '\\x%02x\\x%02x\\x%02x' "$h" $((s | ((c >> 8) << 6))) $((c & 0xff))
}
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 0xff)) $((($1 >> 8) & 0xff)) $((($1 >> 16) & 0xff)) $((($1 >> 24) & 0xff)); }
{
  printf "$(le32 $DISK_ID)"'\x00\x00'
  printf '\x80'"$(chs $PART_START)"'\x0e'"$(chs $((TOTAL - 1)))$(le32 $PART_START)$(le32 $PART_SECTORS)"
  head -c 48 /dev/zero
  printf '\x55\xaa'
} | dd of="$raw" bs=1 seek=440 conv=notrunc status=none

# ---- FAT16 in the partition ----
# --invariant pins mkfs.fat's times (it does not read SOURCE_DATE_EPOCH); the -i after it sets our volume ID
mkfs.fat -F 16 --offset=$PART_START -h $PART_START -g $HEADS/$SPT -S 512 -s 4 --invariant -i $VOLUME_ID \
  -n X86VM "$raw" $((PART_SECTORS / 2)) >/dev/null || boot_die "mkfs.fat failed"
img="$raw@@$PART_OFFSET"
mmd -i "$img" ::/boot ::/syslinux || boot_die "mmd failed"
mcopy -m -i "$img" "$files/boot/bzImage" "$files/boot/initramfs.cpio.gz" ::/boot/ || boot_die "mcopy failed"
mcopy -m -i "$img" "$files/syslinux/syslinux.cfg" ::/syslinux/ || boot_die "mcopy failed"
# the boot sector, ldlinux.sys and ldlinux.c32 (syslinux uses mtools on the image at the offset)
syslinux --offset $PART_OFFSET --directory /syslinux --install "$raw" || boot_die "syslinux --install failed"
for f in /syslinux/ldlinux.sys /syslinux/ldlinux.c32 /syslinux/syslinux.cfg /boot/bzImage /boot/initramfs.cpio.gz; do
  mdir -a -i "$img" "::$f" >/dev/null 2>&1 || boot_die "$f is missing from the file system"
done

# ---- dynamic VHD ----
raw_sum="$(sha256sum "$raw" | cut -d' ' -f1)"
case "$VHD_CONVERTER" in
  qemu-img) qemu-img convert -q -f raw -O vpc -o subformat=dynamic "$raw" "$work/boot.vhd" || boot_die "qemu-img convert failed" ;;
  x86vm) node "$X86VM_CLI" disk convert --format vhd-dynamic "$raw" "$work/boot.vhd" >/dev/null \
    || boot_die "x86vm disk convert failed" ;;
esac
boot_vhd_pin "$work/boot.vhd" "$raw_sum"

mkdir -p "$OUT" 2>/dev/null || boot_die "cannot create the output directory $OUT"
boot_install "$work/boot.vhd" "$OUT/boot.vhd"
[ $keep_raw = 1 ] && boot_install "$raw" "$OUT/boot.img"
echo "build-bootdisk: $(sha256sum "$OUT/boot.vhd" | cut -d' ' -f1)  $OUT/boot.vhd (raw image $raw_sum)" >&2
