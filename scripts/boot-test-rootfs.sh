#!/usr/bin/env bash
# Prints the path of a tarball holding a minimal Debian trixie root file system for the
# boot test (test/system/boot.test.ts), building it with debootstrap when it is not cached.
#
# The tarball is kept in $IOT_AGENT_BOOT_CACHE (default /var/cache/iot-agent-boot-test),
# named after a hash of this script, so a change to the package list rebuilds it and a
# CI machine that keeps the directory reuses it. It holds systemd as init, and the .debs
# of iot-agent's dependencies already downloaded into apt's cache: the test still installs
# the package with apt, which resolves its dependencies from the archive's index, but does
# not fetch 40 MB of nodejs on every run.
#
# usage: scripts/boot-test-rootfs.sh        (as root; needs debootstrap)
set -euo pipefail

suite=trixie
mirror=http://deb.debian.org/debian
cache=${IOT_AGENT_BOOT_CACHE:-/var/cache/iot-agent-boot-test}
# Init, and what the test uses from outside through nsenter; everything else comes with iot-agent.
base_packages=systemd,systemd-sysv,dbus,iproute2,ca-certificates
# iot-agent's Depends and Recommends (packaging/debian/control): downloaded, not installed.
predownload=(nodejs iptables kmod procps tpm-udev polkitd)

if [ "$(id -u)" -ne 0 ]; then
  echo "boot-test-rootfs: run as root (debootstrap and chroot need it)" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  echo "boot-test-rootfs: debootstrap is missing: run scripts/setup.sh (Debian package debootstrap)" >&2
  exit 1
fi

key=$(sha256sum "$0" | cut -c1-12)
tarball="$cache/$suite-rootfs-$key.tar"
if [ -s "$tarball" ]; then
  echo "$tarball"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
cleanup() {
  # A chroot's /proc may still be mounted if apt failed half-way.
  umount -R "$work/root/proc" 2>/dev/null || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

start=$(date +%s)
echo "boot-test-rootfs: debootstrap $suite from $mirror (a few minutes, once)" >&2
debootstrap --variant=minbase --include="$base_packages" \
  --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
  "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 20 "$work/debootstrap.log" >&2
  echo "boot-test-rootfs: debootstrap failed (full log above, last 20 lines)" >&2
  exit 1
}

printf 'deb %s %s main\n' "$mirror" "$suite" >"$work/root/etc/apt/sources.list"
mount -t proc proc "$work/root/proc"
chroot "$work/root" apt-get update -qq
chroot "$work/root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only "${predownload[@]}" >/dev/null
umount "$work/root/proc"

# The container gets its name and machine id at boot; an empty machine-id makes systemd
# create one (and not run first-boot prompts).
: >"$work/root/etc/machine-id"
echo iot-board >"$work/root/etc/hostname"

tar --numeric-owner --xattrs -C "$work/root" -cf "$work/rootfs.tar" .
mv "$work/rootfs.tar" "$tarball"
# Older tarballs (another package list) are dead weight.
find "$cache" -maxdepth 1 -name "$suite-rootfs-*.tar" ! -path "$tarball" -delete
echo "boot-test-rootfs: built $tarball in $(( $(date +%s) - start )) s" >&2
echo "$tarball"
