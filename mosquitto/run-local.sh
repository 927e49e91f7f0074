#!/usr/bin/env bash
# Runs Mosquitto in the foreground with the repository's own config, password file and ACL, as the
# compose broker does, but without Docker: the container paths are rewritten to a temporary
# directory and the listener to 127.0.0.1:${BROKER_PORT:-1883}. Denied publishes are logged
# ("Denied PUBLISH"), as they are not on the compose broker (debug level).
#   mosquitto/run-local.sh                 BROKER_PORT=1884 mosquitto/run-local.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${BROKER_PORT:-1883}"
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { echo "run-local: mosquitto not found (apt-get install mosquitto)" >&2; exit 1; }
dir="$(mktemp -d /tmp/mqtt-home-broker.XXXXXX)"
chmod 0777 "$dir"; mkdir -p "$dir/data"; chmod 0777 "$dir/data"
trap 'rm -rf "$dir"' EXIT
cp "$here/passwd" "$here/acl" "$dir/"; chmod 0644 "$dir/passwd" "$dir/acl"
sed -e "s|^listener 1883$|listener $port 127.0.0.1|" \
    -e "s|/mosquitto/config/certs/|$here/certs/|g" \
    -e "s|/mosquitto/config/|$dir/|g" \
    -e "s|/mosquitto/data/|$dir/data/|g" \
    "$here/mosquitto.conf" >"$dir/mosquitto.conf"
echo "log_type debug" >>"$dir/mosquitto.conf"
echo "run-local: Mosquitto with mosquitto/ on 127.0.0.1:$port (users and passwords: .env); Ctrl-C stops it" >&2
PATH="$PATH:/usr/sbin" exec mosquitto -c "$dir/mosquitto.conf"
