# Shared by build-bootiso.sh and build-bootdisk.sh (sourced, not run): the pinned Debian packages, fetching
# and unpacking them, the boot loader configuration, and the steps that make the outputs bit-reproducible.
#
# Environment: DEB_CACHE (downloaded .debs, default ${TMPDIR:-/tmp}/x86vm-debs), SOURCE_DATE_EPOCH (every
# timestamp written into an image; default 2026-01-01 00:00:00 UTC, as the initramfs), BOOT_KERNEL and
# BOOT_INITRD (default images/default/bzImage and images/default/initramfs.cpio.gz), BOOT_APPEND (default
# "console=ttyS0 console=tty0").

# ---- pinned packages: name, version, architecture, sha256 of the .deb (bookworm, when this was written) ----
# When the mirror drops a version: 'apt-cache policy NAME', then update its line (version and sum).
SYSLINUX_VERSION='3:6.04~git20190206.bf6db5b4+dfsg1-3'
BOOT_DEBS=(
  "isolinux $SYSLINUX_VERSION all cb14af88adc2c3844976cd2de61571d2af94d2fb65c277fe4acf3dc8a5d25aae"
  "syslinux-common $SYSLINUX_VERSION all f7e4ead7fdfe5cb6117d8d2485d75e53570a8cf680c81a432f92c1774f878875"
  "syslinux $SYSLINUX_VERSION+b1 amd64 07a34a8b09e19ef44285d45c24aefd1119cf3c1580223cbca0dc58f8dd33ee33"
  "mtools 4.0.33-1+really4.0.32-1 amd64 972e0857ff43dbfc4c9255844c97b5d2cb0287720216d04c95b4e7fa483aec99"
  "dosfstools 4.2-1 amd64 71b0471242f7bb777264cdab55c141f1fc043b443105633a38708e125f90c4ea"
)

BOOT_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEB_CACHE="${DEB_CACHE:-${TMPDIR:-/tmp}/x86vm-debs}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1767225600}"
export LC_ALL=C TZ=UTC
BOOT_KERNEL="${BOOT_KERNEL:-$BOOT_HERE/default/bzImage}"
BOOT_INITRD="${BOOT_INITRD:-$BOOT_HERE/default/initramfs.cpio.gz}"
BOOT_APPEND="${BOOT_APPEND:-console=ttyS0 console=tty0}"

boot_die() { echo "${BOOT_TOOL:-lib-boot}: $*" >&2; exit 1; }

[[ "$SOURCE_DATE_EPOCH" =~ ^[0-9]+$ ]] || boot_die "SOURCE_DATE_EPOCH must be a number of seconds, not '$SOURCE_DATE_EPOCH'"
command -v dpkg >/dev/null || boot_die "needs dpkg and apt-get (a Debian host)"
for f in "$BOOT_KERNEL" "$BOOT_INITRD"; do
  [ -f "$f" ] || boot_die "missing $f (build the default guest first: images/README.md)"
done

# boot_fetch NAME...: downloads the pinned .debs of the named packages into $DEB_CACHE, checks their sums,
# and unpacks them all into the directory $BOOT_PKGS (which the caller sets).
boot_fetch() {
  local want name version arch sum line deb
  mkdir -p "$DEB_CACHE" "$BOOT_PKGS"
  for want in "$@"; do
    line=""
    for l in "${BOOT_DEBS[@]}"; do
      [ "${l%% *}" = "$want" ] && line="$l"
    done
    [ -n "$line" ] || boot_die "no pinned version for package $want"
    read -r name version arch sum <<<"$line"
    if [ "$arch" != all ] && [ "$(dpkg --print-architecture)" != "$arch" ]; then
      boot_die "$name is pinned for $arch (its tools run on the build host); this host is $(dpkg --print-architecture): pin the host's build of $name $version"
    fi
    deb="$DEB_CACHE/${name}_${version/:/%3a}_${arch}.deb"
    if [ ! -f "$deb" ] || ! echo "$sum  $deb" | sha256sum -c --status; then
      rm -f "$deb"
      if ! (cd "$DEB_CACHE" && apt-get download -q "$name:$arch=$version") >&2; then
        # the package lists may predate the pinned version: refresh once (as root)
        [ "$(id -u)" = 0 ] && { apt-get update -q >&2 || true; }
        (cd "$DEB_CACHE" && apt-get download -q "$name:$arch=$version") >&2 \
          || boot_die "apt-get download $name:$arch=$version failed (still on the mirror? 'apt-cache policy $name')"
      fi
    fi
    echo "$sum  $deb" | sha256sum -c --status || boot_die "sha256 mismatch for $deb"
    dpkg -x "$deb" "$BOOT_PKGS"
  done
}

# boot_config KIND FILE: the ISOLINUX/SYSLINUX configuration. The loader prints its banner on the screen
# and (the serial directive) on COM1 at 115200 baud, with its "Loading ..." lines; the say line, naming
# the image, appears on the screen only. It boots the default guest at once (no prompt; the 1 s timeout
# only applies if a key held down brings the prompt up).
boot_config() {
  local kind="$1" file="$2"
  cat >"$file" <<EOF
# x86vm bootable $kind image: boots the default guest (images/default) at once
serial 0 115200
say x86vm $kind boot: loading /boot/bzImage and /boot/initramfs.cpio.gz
default linux
prompt 0
timeout 10
label linux
  kernel /boot/bzImage
  initrd /boot/initramfs.cpio.gz
  append $BOOT_APPEND
EOF
}

# boot_stamp DIR: every file and directory under DIR gets the mtime SOURCE_DATE_EPOCH
boot_stamp() {
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# boot_iso_fix_dates ISO: genisoimage has no option to pin its dates; it writes the time of the run into
# the volume descriptors' dates, the boot catalog's directory records, and Rock Ridge TF entries (which
# also carry each source file's ctime, which touch cannot set). This rewrites every one of those dates
# (volume descriptors; every directory record of the ISO 9660 and Joliet trees; TF timestamps in the
# System Use areas, following CE continuations) to SOURCE_DATE_EPOCH in place: fixed-size fields, so the
# layout does not change. The expiration date is left "not specified".
boot_iso_fix_dates() {
  perl -e '
    use strict; use warnings;
    my ($file, $epoch) = @ARGV;
    open(my $fh, "+<:raw", $file) or die "cannot open $file: $!\n";
    my @t = gmtime($epoch);
    my $long = sprintf("%04d%02d%02d%02d%02d%02d00", $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0]) . "\0";
    my $short = pack("C7", $t[5], $t[4] + 1, $t[3], $t[2], $t[1], $t[0], 0);
    my %seen;
    sub rd { my ($off, $len) = @_; my $b; seek($fh, $off, 0) or die; read($fh, $b, $len) == $len or die "$file: short read at $off\n"; return $b; }
    sub wr { my ($off, $data) = @_; seek($fh, $off, 0) or die; print $fh $data or die "$file: write failed\n"; }
    # the SUSP entries in [off, off+len): TF timestamps, CE continuation areas
    sub susp {
      my ($off, $len) = @_;
      my $area = rd($off, $len);
      my $p = 0;
      while ($p + 4 <= $len) {
        my ($sig, $l) = (substr($area, $p, 2), ord(substr($area, $p + 2, 1)));
        last if $l < 4 || $p + $l > $len;
        if ($sig eq "TF") {
          my $flags = ord(substr($area, $p + 4, 1));
          my $size = ($flags & 0x80) ? 17 : 7;
          my $q = $p + 5;
          for my $bit (0 .. 6) {
            next unless $flags & (1 << $bit);
            die "$file: bad TF entry\n" if $q + $size > $p + $l;
            wr($off + $q, $size == 17 ? $long : $short);
            $q += $size;
          }
        } elsif ($sig eq "CE") {
          my ($blk, $o, $n) = (unpack("V", substr($area, $p + 4, 4)), unpack("V", substr($area, $p + 12, 4)), unpack("V", substr($area, $p + 20, 4)));
          susp($blk * 2048 + $o, $n) unless $seen{"ce$blk.$o"}++;
        } elsif ($sig eq "ST") {
          last;
        }
        $p += $l;
      }
    }
    # the directory at extent/size: every record gets the date; subdirectories are walked
    sub walk {
      my ($extent, $size) = @_;
      return if $seen{"dir$extent"}++;
      my $base = $extent * 2048;
      my $p = 0;
      while ($p < $size) {
        my $len = ord(rd($base + $p, 1));
        if ($len == 0) { $p = ($p - ($p % 2048)) + 2048; next; }
        my $rec = rd($base + $p, $len);
        wr($base + $p + 18, $short);
        my $namelen = ord(substr($rec, 32, 1));
        my $su = 33 + $namelen + (($namelen % 2) ? 0 : 1);
        susp($base + $p + $su, $len - $su) if $len - $su >= 4;
        my $flags = ord(substr($rec, 25, 1));
        my $name = substr($rec, 33, $namelen);
        if (($flags & 2) && $name ne "\0" && $name ne "\1") {
          walk(unpack("V", substr($rec, 2, 4)), unpack("V", substr($rec, 10, 4)));
        }
        $p += $len;
      }
    }
    for (my $s = 16; $s < 64; $s++) {
      my $vd = rd($s * 2048, 2048);
      die "$file: no ISO 9660 volume descriptor at sector $s\n" unless substr($vd, 1, 5) eq "CD001";
      my $type = ord($vd);
      last if $type == 255;
      next unless $type == 1 || $type == 2;
      wr($s * 2048 + $_, $long) for (813, 830, 864);
      wr($s * 2048 + 156 + 18, $short);
      walk(unpack("V", substr($vd, 158, 4)), unpack("V", substr($vd, 166, 4)));
    }
    close($fh) or die "$file: $!\n";
  ' "$1" "$SOURCE_DATE_EPOCH" || boot_die "could not pin the dates in $1"
}

# boot_vhd_pin VHD SEED: qemu-img (and x86vm disk convert) stamp a VHD footer with the time of the run and
# a random unique ID. This sets the timestamp to SOURCE_DATE_EPOCH and the unique ID to one derived from
# SEED (the sha256 of the raw image: a different disk gets a different ID), with the checksum, in the
# footer at the end and in its copy at the start (dynamic VHDs).
boot_vhd_pin() {
  perl -e '
    use strict; use warnings;
    my ($file, $epoch, $seed) = @ARGV;
    open(my $fh, "+<:raw", $file) or die "cannot open $file: $!\n";
    my $size = -s $file;
    my $uuid = pack("H32", substr($seed, 0, 32));
    substr($uuid, 6, 1) = chr((ord(substr($uuid, 6, 1)) & 0x0f) | 0x40); # version 4 layout
    substr($uuid, 8, 1) = chr((ord(substr($uuid, 8, 1)) & 0x3f) | 0x80); # RFC 4122 variant
    my $stamp = $epoch - 946684800; # the VHD epoch is 2000-01-01 00:00:00 UTC
    die "SOURCE_DATE_EPOCH is before 2000\n" if $stamp < 0;
    my @at = ($size - 512);
    push @at, 0 if $size >= 1024;
    my $n = 0;
    for my $off (@at) {
      my $f; seek($fh, $off, 0) or die; read($fh, $f, 512) == 512 or die "$file: short read\n";
      next unless substr($f, 0, 8) eq "conectix";
      substr($f, 24, 4) = pack("N", $stamp);
      substr($f, 68, 16) = $uuid;
      substr($f, 64, 4) = "\0\0\0\0";
      my $sum = 0; $sum += $_ for unpack("C*", $f);
      substr($f, 64, 4) = pack("N", (~$sum) & 0xffffffff);
      seek($fh, $off, 0) or die; print $fh $f or die "$file: write failed\n";
      $n++;
    }
    die "$file: no VHD footer found\n" unless $n;
    close($fh) or die "$file: $!\n";
  ' "$1" "$SOURCE_DATE_EPOCH" "$2" || boot_die "could not pin the VHD footer of $1"
}

# boot_install SRC DEST: writes DEST through a temporary name in its directory and a rename, so an
# interrupted build never leaves a half-written file under the final name
boot_install() {
  local tmp="$2.tmp.$$"
  cp "$1" "$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$2" || { rm -f "$tmp"; boot_die "cannot write $2"; }
}
