#!/usr/bin/env bash
# Installs Home Assistant Core (pinned in ha/requirements.txt) into a cached Python 3.11 venv for
# the integration tests (crates/testkit/src/home_assistant.rs). Idempotent: a venv whose recorded
# hash of requirements.txt matches is left alone (well under a second); otherwise it is built anew
# (~470 MB, about a minute). Prints where it is.
#
#   bash ha/install.sh                                    # -> $HOME/.cache/mqtt-home/ha-2024.1.6
#   MQTT_HOME_HA_VENV=/somewhere bash ha/install.sh       # the tests read the same variable
#   MQTT_HOME_HA_PYTHON=/usr/bin/python3.11 bash ha/install.sh         # which interpreter (3.11)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
requirements="$here/requirements.txt"
venv="${MQTT_HOME_HA_VENV:-$HOME/.cache/mqtt-home/ha-2024.1.6}"
python="${MQTT_HOME_HA_PYTHON:-python3.11}"
# Wheels only, except these, published as source only; all are pure Python and build with the
# venv's own setuptools (no compiler, no download at build time).
sdist_only="paho-mqtt,python-slugify,PyRIC,PyQRCode,PyTurboJPEG,psutil-home-assistant,fnvhash"

say() { echo "ha/install.sh: $*"; }

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
stamp="$venv/.mqtt-home-requirements.sha256"
mkdir -p "$(dirname "$venv")"

# One install at a time (two test runs starting together).
exec 9>"$venv.lock"
command -v flock >/dev/null 2>&1 && flock 9

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/hass" ]; then
  say "Home Assistant is installed in $venv ($(du -sh "$venv" | cut -f1))"
  exit 0
fi

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing $* with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    say "missing: $* (install it, e.g. apt-get install $*)" >&2
    exit 1
  fi
}

command -v "$python" >/dev/null 2>&1 || apt_install python3.11 python3.11-venv
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$version" != 3.11 ]; then
  say "$python is Python $version; Home Assistant 2024.1 needs 3.11 (set MQTT_HOME_HA_PYTHON=...)" >&2
  exit 1
fi
# Debian ships venv's ensurepip separately.
"$python" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3.11-venv

say "building the venv in $venv from $requirements"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --progress-bar off --disable-pip-version-check --no-deps \
  --only-binary=:all: --no-binary="$sdist_only" -r "$requirements"
"$venv/bin/pip" check --disable-pip-version-check >/dev/null
installed="$("$venv/bin/hass" --version)"
[ "$installed" = 2024.1.6 ] || { say "hass --version says '$installed', not 2024.1.6" >&2; exit 1; }
echo "$want" >"$stamp"
say "Home Assistant $installed is installed in $venv ($(du -sh "$venv" | cut -f1))"
