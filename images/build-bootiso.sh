#!/usr/bin/env bash
# Builds a bootable CD image (El Torito, no emulation) with ISOLINUX from Debian's isolinux and
# syslinux-common packages, holding the default guest's kernel and initramfs. Bit-reproducible.
#
#   images/build-bootiso.sh OUT_DIR     writes OUT_DIR/boot.iso
#
# Layout of the CD:
#   /isolinux/isolinux.bin    boot image (4 sectors loaded; genisoimage writes the boot info table into it)
#   /isolinux/ldlinux.c32     ISOLINUX's core module
#   /isolinux/isolinux.cfg    boots /boot/bzImage + /boot/initramfs.cpio.gz with "console=ttyS0 console=tty0"
#   /isolinux/boot.cat        El Torito boot catalog
#   /boot/bzImage, /boot/initramfs.cpio.gz   images/default's files
# ISO 9660 with Rock Ridge (the names as written) and Joliet. Every timestamp is SOURCE_DATE_EPOCH (default
# 2026-01-01 00:00:00 UTC), so two builds of the same inputs are identical byte for byte.
#
# Boot it:  x86vm run --bios /usr/share/seabios/bios.bin --cdrom OUT_DIR/boot.iso
#           qemu-system-i386 -cdrom OUT_DIR/boot.iso -serial stdio
# Environment: see lib-boot.sh (DEB_CACHE, SOURCE_DATE_EPOCH, BOOT_KERNEL, BOOT_INITRD, BOOT_APPEND).
# E.g. BOOT_APPEND="console=ttyS0 console=tty0 vga=0x314" makes the kernel's real-mode setup ask the VGA
# BIOS for VESA mode 0x114 (800x600, 16 bpp; 0x315 24 bpp, 0x343 32 bpp, 0x303 8 bpp), and vesafb + fbcon
# take the console on the linear framebuffer (test/vbe-guest.test.ts).
set -euo pipefail

BOOT_TOOL=build-bootiso
# shellcheck source=lib-boot.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-boot.sh"

[ $# -eq 1 ] || boot_die "usage: build-bootiso.sh OUT_DIR"
OUT="$1"
command -v genisoimage >/dev/null || boot_die "needs genisoimage (apt-get install genisoimage)"
command -v perl >/dev/null || boot_die "needs perl"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
BOOT_PKGS="$work/pkgs"
boot_fetch isolinux syslinux-common

root="$work/root"
mkdir -p "$root/isolinux" "$root/boot"
install -m 0644 "$BOOT_PKGS/usr/lib/ISOLINUX/isolinux.bin" "$root/isolinux/isolinux.bin"
install -m 0644 "$BOOT_PKGS/usr/lib/syslinux/modules/bios/ldlinux.c32" "$root/isolinux/ldlinux.c32"
boot_config CD "$root/isolinux/isolinux.cfg"
install -m 0644 "$BOOT_KERNEL" "$root/boot/bzImage"
install -m 0644 "$BOOT_INITRD" "$root/boot/initramfs.cpio.gz"
chmod 0755 "$root" "$root/isolinux" "$root/boot"
chmod 0644 "$root/isolinux/isolinux.cfg"
boot_stamp "$root"

# -r: Rock Ridge with owner 0:0 and normalized modes; -J: Joliet; the volume ID and the other text fields
# are fixed; -sort is not needed (genisoimage lays files out in name order).
genisoimage -quiet -o "$work/boot.iso" \
  -r -J -V X86VM_BOOT -A "x86vm boot CD" -p "images/build-bootiso.sh" -publisher x86vm -sysid LINUX \
  -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
  "$root" || boot_die "genisoimage failed"
boot_iso_fix_dates "$work/boot.iso"

mkdir -p "$OUT" 2>/dev/null || boot_die "cannot create the output directory $OUT"
boot_install "$work/boot.iso" "$OUT/boot.iso"
echo "build-bootiso: $(sha256sum "$OUT/boot.iso" | cut -d' ' -f1)  $OUT/boot.iso" >&2
