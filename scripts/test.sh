#!/usr/bin/env bash
# The one test command: puts in place, once, the real programs the tests talk to, then runs every
# test of the workspace. A second run finds everything cached and goes straight to `cargo test`.
#
#   scripts/test.sh                    # every test (what CI runs)
#   scripts/test.sh -p recorder        # arguments go to `cargo test --workspace --locked`
#   scripts/test.sh --parts-only       # only install the parts
#
# The parts, and where they come from:
# - Debian packages: Mosquitto and its clients (a test broker on a free port), openssl (test
#   certificates), docker-compose 1.29 (reads docker-compose.yml for the process-level compose
#   test), Chromium and chromedriver (the dashboard's browser test), Prometheus 2.42 (scrapes the
#   home's metrics in their test), Python 3.11 with venv, and a C compiler (SQLite and ring are
#   built from C);
# - PyPI, in cached venvs under ~/.cache/mqtt-home: Home Assistant Core 2024.1.6 (ha/install.sh),
#   NATS Server (nats/install.sh), aiosmtpd 1.4.6 (the notifier's STARTTLS test), pysiaalarm
#   3.1.1 (the SIA DC-09 receiver of the transmitter's tests, as Home Assistant 2024.1.6 pins it);
# - podman, runc, podman-compose and locally built images for the real `docker compose up` test:
#   that test runs containers/setup.sh itself (cached; no registry is needed), after cargo has
#   built the binaries its image is made of.
# Without root, missing Debian packages are installed with sudo when it is there; otherwise the
# script names them and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "scripts/test.sh: $*" >&2; }

parts_only=false
if [ "${1:-}" = --parts-only ]; then
  parts_only=true
  shift
fi

# --- Debian packages: one apt-get for whatever is missing ---
declare -A needs=(
  [mosquitto]=mosquitto [mosquitto_sub]=mosquitto-clients [openssl]=openssl
  [docker-compose]=docker-compose [chromium]=chromium [chromedriver]=chromium-driver
  [python3]=python3 [python3.11]=python3.11 [cc]=gcc [flock]=util-linux [prometheus]=prometheus
)
missing=()
for program in "${!needs[@]}"; do
  command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || missing+=("${needs[$program]}")
done
python3.11 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3.11-venv)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
[ -e /usr/include/stdio.h ] || missing+=(libc6-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { say "missing Debian packages: ${missing[*]}; install them (as root: apt-get install ${missing[*]})"; exit 1; }
    sudo=sudo
  fi
  say "installing ${missing[*]} (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- PyPI, cached venvs: no-ops when up to date ---
bash ha/install.sh
bash nats/install.sh >/dev/null
smtp_venv="${MQTT_HOME_AIOSMTPD_VENV:-$HOME/.cache/mqtt-home/aiosmtpd-1.4.6}"
if ! "$smtp_venv/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
  say "installing aiosmtpd 1.4.6 into $smtp_venv"
  python3.11 -m venv "$smtp_venv"
  "$smtp_venv/bin/pip" install -q --disable-pip-version-check aiosmtpd==1.4.6
fi
sia_venv="${MQTT_HOME_PYSIAALARM_VENV:-$HOME/.cache/mqtt-home/pysiaalarm-3.1.1}"
if ! "$sia_venv/bin/python" -c 'import pysiaalarm' >/dev/null 2>&1; then
  say "installing pysiaalarm 3.1.1 into $sia_venv"
  python3.11 -m venv "$sia_venv"
  "$sia_venv/bin/pip" install -q --disable-pip-version-check pysiaalarm==3.1.1
fi

if "$parts_only"; then
  say "every part is in place"
  exit 0
fi
say "cargo test --workspace --locked $*"
exec cargo test --workspace --locked "$@"
