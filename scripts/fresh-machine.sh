#!/usr/bin/env bash
# Runs the README's test command on a fresh machine: a Debian 12 root made by
# `debootstrap --variant=minbase bookworm` with nothing in it but the host's Rust toolchain (rustup's
# default toolchain, copied), the host's CA bundle and apt sources (this network inspects TLS), and
# a clone of this repository's HEAD. No Mosquitto, Python, Chromium, C compiler, cargo registry
# cache or venv: scripts/test.sh must bring them. Prints the wall time.
#
#   sudo scripts/fresh-machine.sh [DIR]        # DIR: where the root goes [/var/tmp/mqtt-home-fresh]
#
# It is a root of its own in a mount namespace of its own (pivot_root), not a VM: it shares the
# host's kernel, processes and network (tests use free ports, never 1883). Not part of CI: it takes as long as a first build and test run (see the README).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
root="${1:-/var/tmp/mqtt-home-fresh}"
cache="${MQTT_HOME_CACHE:-$HOME/.cache/mqtt-home}/containers"
rootfs="$cache/debian-bookworm-minbase.tar"
say() { echo "scripts/fresh-machine.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "needs root (mounts, pivot_root)"; exit 1; }

cleanup() {
  # Everything mounted at or below the root (podman's overlays too), deepest first.
  awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup
rm -rf "$root"
mkdir -p "$root"
if [ -s "$rootfs" ]; then
  tar -C "$root" -xf "$rootfs"
  # A root of 0700 (the mktemp dir debootstrap ran in) would lock every other user out of the
  # machine: Mosquitto, dropping to its user, could not open its files.
  chmod 755 "$root"
else
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
fi
# What every machine of this workplace has: its apt sources and CA bundle.
cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
rm -f "$root/etc/apt/sources.list"
cp /etc/apt/apt.conf.d/99artifact-registry "$root/etc/apt/apt.conf.d/" 2>/dev/null || true
mkdir -p "$root/etc/ssl/certs" "$root/usr/local/share/ca-certificates"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
# The local CAs too, so that installing ca-certificates (a dependency) keeps them in the bundle.
find /usr/local/share/ca-certificates /usr/share/ca-certificates -maxdepth 1 -name '*.crt' \
  -exec cp {} "$root/usr/local/share/ca-certificates/" \;
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Every installed machine has these; debootstrap does not write them (without /etc/hosts,
# `localhost` is left to DNS, and chromedriver cannot reach the browser it started).
cp /etc/hosts "$root/etc/hosts"
cp /etc/hostname "$root/etc/hostname" 2>/dev/null || true
# The Rust toolchain, nothing else of ~/.cargo (no registry cache).
toolchain="$(rustup show active-toolchain | cut -d' ' -f1)"
mkdir -p "$root/root/.rustup/toolchains" "$root/root/.cargo/bin"
cp -a "$HOME/.rustup/toolchains/$toolchain" "$root/root/.rustup/toolchains/"
cp -a "$HOME/.rustup/settings.toml" "$root/root/.rustup/" 2>/dev/null || true
cp -a "$HOME/.cargo/bin/." "$root/root/.cargo/bin/"
git clone -q "$top" "$root/root/mqtt-home"

# The root a mount point of its own, as a machine's is: podman's storage remounts / (in a plain
# chroot that fails with "remount /: invalid argument").
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/tmp"
mount -t tmpfs tmpfs "$root/run"

say "running scripts/test.sh in $root (HEAD $(git -C "$top" rev-parse --short HEAD))"
start="$(date +%s)"
set +e
# Not `chroot`: in a chroot, `podman exec` (and so every compose healthcheck) cannot enter the
# container's mount namespace, and runs its command in the chroot instead (runc: "chdir to cwd
# (\"/app\") ... no such file or directory"). A mount namespace of its own whose root is the fresh
# root (pivot_root, as a container runtime does it) is what a machine's root is to podman.
mkdir -p "$root/.oldroot"
unshare --mount --propagation private /bin/bash -c '
  set -e
  cd "$1"
  pivot_root . .oldroot
  umount -l /.oldroot
  cd /
  exec /usr/bin/env -i HOME=/root CI=true PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    /bin/bash -c "cd /root/mqtt-home && scripts/test.sh"
' fresh-machine "$root"
code=$?
set -e
say "scripts/test.sh exited $code after $(( $(date +%s) - start )) s"
# A passing run leaves nothing behind (the root holds a build, venvs and images: ~20 GB); a failing
# one keeps it to look into (`unshare --mount` + pivot_root into it again, as above).
if [ "$code" = 0 ]; then
  cleanup
  rm -rf "$root"
else
  say "kept $root for a look (remove it with: rm -rf $root, after unmounting what is below it)"
fi
exit "$code"
