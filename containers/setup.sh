#!/usr/bin/env bash
# Makes this machine able to run the shipped docker-compose.yml for real, in podman containers,
# without any container registry (CI, Debian 12, root): the test crates/mqtt-home/tests/containers.rs
# runs it first. Idempotent and cached; a second run only rebuilds what changed (seconds).
#
#   bash containers/setup.sh          then, with the two variables it prints on its last lines:
#   CONTAINERS_CONF=... PODMAN_COMPOSE=... ; "$PODMAN_COMPOSE" up -d ...
#
# What it does, each step skipped when already done:
#   1. apt-get install podman runc netavark aardvark-dns iptables debootstrap (apt-get update first, only
#      when one is missing);
#   2. writes containers.conf (runc, rlimits this machine allows) and podman-compose 1.6 in a venv
#      (Debian's 1.0.3 mishandles profiles, `!override` and exec-form healthchecks);
#   3. docker.io/library/debian:bookworm-slim from `debootstrap --variant=minbase bookworm` (the
#      rootfs tarball is cached, so a later run only imports it);
#   4. docker.io/library/eclipse-mosquitto:2, a stand-in from containers/mosquitto/Containerfile
#      (Debian's Mosquitto 2.0.11), unless a real one is there;
#   5. mqtt-home:latest from the shipped Dockerfile's `runtime-prebuilt` target, fed with the
#      daemons built on the host (`cargo build --workspace --bins`, excluding what the Dockerfile
#      excludes; debug, stripped): Debian's rustc cannot build this workspace and the Dockerfile's
#      rust image cannot be pulled.
#
# Cache: ${MQTT_HOME_CACHE:-$HOME/.cache/mqtt-home}/containers (one run at a time: flock).
# Environment: CARGO (default cargo), MQTT_HOME_CONTAINERS_PROFILE (debug|release, default debug).
# Output: progress and times on stderr; the last lines on stdout are CONTAINERS_CONF=... and
# PODMAN_COMPOSE=... (also written to $cache/env, to be sourced). Exit status 3: this machine
# cannot run containers (not root with packages missing, or podman fails); the test then skips.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(dirname "$here")"
cache="${MQTT_HOME_CACHE:-$HOME/.cache/mqtt-home}/containers"
compose_version=1.6.0
profile="${MQTT_HOME_CONTAINERS_PROFILE:-debug}"
cargo="${CARGO:-cargo}"

say() { echo "containers/setup.sh: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
start="$(now)"

mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9

# 1. Packages.
missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
# netavark + aardvark-dns: the services find each other by name (`broker`). Without them podman 4.3
# falls back to CNI, whose networks have no DNS unless the dnsname plugin is installed.
[ -x /usr/lib/podman/netavark ] || missing+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || missing+=(aardvark-dns)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
# netavark sets up the compose network with iptables, which it does not depend on (a fresh Debian
# machine: "netavark: No such file or directory" at the first `up`).
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing+=(iptables)
command -v strip >/dev/null 2>&1 || missing+=(binutils)
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
  t="$(now)"
  # Exit 3: this machine cannot run the containers (the test skips, or fails under CI=true).
  [ "$(id -u)" = 0 ] || { say "cannot run containers here: ${missing[*]} missing and not root"; exit 3; }
  command -v apt-get >/dev/null 2>&1 || { say "cannot run containers here: ${missing[*]} missing and no apt-get"; exit 3; }
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "apt-get install: $(since "$t")"
fi
export PATH="$PATH:/usr/sbin:/sbin"

# 2. containers.conf and podman-compose.
conf="$cache/containers.conf"
cat >"$conf.tmp" <<'EOF'
# Written by containers/setup.sh (mqtt-home). Use with CONTAINERS_CONF=<this file>.
[containers]
# The machine lacks CAP_SYS_RESOURCE: podman's default rlimits fail ("setrlimit RLIMIT_NOFILE:
# Operation not permitted"); these are within what it has.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
# Compose networks need DNS between containers: netavark with aardvark-dns (installed above).
network_backend = "netavark"

[engine]
# crun 1.8 refuses the hybrid cgroup layout ("cgroups in hybrid mode not supported").
runtime = "runc"
EOF
if cmp -s "$conf.tmp" "$conf"; then rm "$conf.tmp"; else mv "$conf.tmp" "$conf"; fi
export CONTAINERS_CONF="$conf"

venv="$cache/podman-compose-$compose_version"
installed_compose() { "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("podman-compose"))' 2>/dev/null; }
if [ ! -x "$venv/bin/podman-compose" ] || [ "$(installed_compose)" != "$compose_version" ]; then
  t="$(now)"
  say "installing podman-compose $compose_version into $venv"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --progress-bar off --disable-pip-version-check "podman-compose==$compose_version"
  say "podman-compose: $(since "$t")"
fi
podman_compose="$venv/bin/podman-compose"

# Can podman work at all here? (exit 3: see above)
podman info >/dev/null 2>"$cache/podman-info.err" || {
  say "podman cannot run on this machine: $(tail -1 "$cache/podman-info.err")"
  exit 3
}

# 3. The base image.
base=docker.io/library/debian:bookworm-slim
if ! podman image exists "$base"; then
  rootfs="$cache/debian-bookworm-minbase.tar"
  if [ ! -s "$rootfs" ]; then
    t="$(now)"
    mirror="$(sed -n 's/^URIs: *\(http[^ ]*\/debian\/\?\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)"
    [ -n "$mirror" ] || mirror="$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    say "debootstrap --variant=minbase bookworm from $mirror"
    dir="$(mktemp -d "$cache/rootfs.XXXXXX")"
    debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { say "debootstrap failed: see $cache/debootstrap.log"; rm -rf "$dir"; exit 1; }
    # As the official slim image: no apt lists or caches in the layer.
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
    # The root as an image's: 0755, not the 0700 of the mktemp dir (it would lock out every user
    # but root of anything made from this tarball).
    chmod 755 "$dir"
    tar -C "$dir" -cf "$rootfs.tmp" .
    mv "$rootfs.tmp" "$rootfs"
    rm -rf "$dir"
    say "debootstrap: $(since "$t")"
  fi
  t="$(now)"
  podman import --quiet --change 'CMD ["bash"]' "$rootfs" "$base" >/dev/null
  say "imported $base: $(since "$t")"
fi

# Image builds (apt-get inside) use the host's network: no NAT, nor routes a CNI bridge left behind.
# Can it run a container? (No user namespaces, no cgroups, ...: exit 3.)
if ! podman run --rm --network none "$base" true >/dev/null 2>"$cache/podman-run.err"; then
  say "podman cannot run a container on this machine: $(tail -1 "$cache/podman-run.err")"
  exit 3
fi

# 4. The Mosquitto stand-in (rebuilt when its Containerfile changes; a real image is left alone).
mosquitto=docker.io/library/eclipse-mosquitto:2
standin_hash="$(sha256sum "$here/mosquitto/Containerfile" | cut -c1-16)"
label="$(podman image inspect --format '{{ index .Labels "io.mqtt-home.standin" }}' "$mosquitto" 2>/dev/null || echo absent)"
if [ "$label" = absent ] || { [ -n "$label" ] && [ "$label" != "<no value>" ] && [ "$label" != "$standin_hash" ]; }; then
  t="$(now)"
  say "building the Mosquitto stand-in $mosquitto"
  podman build --quiet --network host --label "io.mqtt-home.standin=$standin_hash" -t "$mosquitto" \
    -f "$here/mosquitto/Containerfile" "$here/mosquitto" >/dev/null
  say "Mosquitto stand-in: $(since "$t")"
fi

# 5. mqtt-home:latest from the host's binaries.
t="$(now)"
# The packages the Dockerfile's `build` stage excludes.
cargo_args=(build --workspace --bins --exclude mqtt-home --exclude testkit --exclude embedded-broker --exclude bench)
[ "$profile" = release ] && cargo_args+=(--release)
binaries="$(cd "$top" && "$cargo" "${cargo_args[@]}" --message-format=json-render-diagnostics \
  | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])')"
say "cargo build ($profile): $(since "$t")"
context="$cache/context"
mkdir -p "$context/prebuilt"
wanted=()
for binary in $binaries; do
  name="$(basename "$binary")"
  wanted+=("$name")
  # Stripped copies (debug binaries are 10x larger); redone only when cargo rebuilt one.
  if [ ! -f "$context/prebuilt/$name" ] || [ "$binary" -nt "$context/prebuilt/$name" ]; then
    strip -o "$context/prebuilt/$name.tmp" "$binary"
    mv "$context/prebuilt/$name.tmp" "$context/prebuilt/$name"
  fi
done
[ "${#wanted[@]}" -gt 0 ] || { say "cargo built no binaries"; exit 1; }
for staged in "$context/prebuilt"/*; do
  case " ${wanted[*]} " in *" $(basename "$staged") "*) ;; *) rm -f "$staged" ;; esac
done
t="$(now)"
podman build --quiet --network host --target runtime-prebuilt -t mqtt-home:latest -f "$top/Dockerfile" "$context" >/dev/null
say "mqtt-home:latest (${#wanted[@]} binaries, $(du -sh "$context/prebuilt" | cut -f1) stripped): $(since "$t")"
say "ready in $(since "$start")"

printf 'CONTAINERS_CONF=%s\nPODMAN_COMPOSE=%s\n' "$conf" "$podman_compose" >"$cache/env"
cat "$cache/env"
