#!/usr/bin/env bash
# A three-node NATS Server cluster (n1, n2, n3) on this machine that speaks MQTT 3.1.1: a broker
# for the home that survives the loss of any one node. Each node runs nats/node.conf (the same
# file testkit's NatsCluster uses) with JetStream, routes to the other two and an MQTT listener;
# the MQTT streams (sessions, retained messages, QoS 1 messages) are replicated on all three.
# Everything listens on 127.0.0.1 only.
#
#   nats/cluster.sh [start] [DIR]   # starts the nodes, waits until they are ready, prints the brokers
#   nats/cluster.sh stop [DIR]      # stops them (SIGTERM, then SIGKILL after 10 s)
#   nats/cluster.sh status [DIR]    # which nodes run
#
# DIR (default ./.nats-cluster, or $NATS_CLUSTER_DIR) holds each node's JetStream store (DIR/n1/…),
# log (DIR/n1.log) and pid file (DIR/n1.pid); starting again on the same DIR keeps the retained
# messages and sessions. The daemons take the printed list as their broker URL list, e.g.
#
#   MQTT_BROKER_URL=mqtt://127.0.0.1:1884,mqtt://127.0.0.1:1885,mqtt://127.0.0.1:1886
#
# Ports (defaults in brackets; the standard ones, 1883/4222/6222/8222, are left alone):
#   NATS_N1_MQTT_PORT [1884]     NATS_N2_MQTT_PORT [1885]     NATS_N3_MQTT_PORT [1886]
#   NATS_N1_CLIENT_PORT [4223]   NATS_N2_CLIENT_PORT [4224]   NATS_N3_CLIENT_PORT [4225]
#   NATS_N1_CLUSTER_PORT [6223]  NATS_N2_CLUSTER_PORT [6224]  NATS_N3_CLUSTER_PORT [6225]
#   NATS_N1_HTTP_PORT [8223]     NATS_N2_HTTP_PORT [8224]     NATS_N3_HTTP_PORT [8225]   (monitoring)
#
# The server: $MQTT_HOME_NATS_SERVER, else the one nats/install.sh installs (and installs if need
# be). A nats-server on PATH is never used: distributions ship releases too old for this.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
conf="$here/node.conf"

command="start"
case "${1:-}" in
  start | stop | status) command="$1"; shift ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
dir="${1:-${NATS_CLUSTER_DIR:-./.nats-cluster}}"

say() { echo "nats/cluster.sh: $*" >&2; }

nodes=(n1 n2 n3)
declare -A mqtt_port=([n1]="${NATS_N1_MQTT_PORT:-1884}" [n2]="${NATS_N2_MQTT_PORT:-1885}" [n3]="${NATS_N3_MQTT_PORT:-1886}")
declare -A client_port=([n1]="${NATS_N1_CLIENT_PORT:-4223}" [n2]="${NATS_N2_CLIENT_PORT:-4224}" [n3]="${NATS_N3_CLIENT_PORT:-4225}")
declare -A cluster_port=([n1]="${NATS_N1_CLUSTER_PORT:-6223}" [n2]="${NATS_N2_CLUSTER_PORT:-6224}" [n3]="${NATS_N3_CLUSTER_PORT:-6225}")
declare -A http_port=([n1]="${NATS_N1_HTTP_PORT:-8223}" [n2]="${NATS_N2_HTTP_PORT:-8224}" [n3]="${NATS_N3_HTTP_PORT:-8225}")

brokers() {
  local list=() n
  for n in "${nodes[@]}"; do list+=("mqtt://127.0.0.1:${mqtt_port[$n]}"); done
  (IFS=,; echo "${list[*]}")
}

# The pid in DIR/NODE.pid if that process is alive and is a nats-server (a pid file left by a
# crash may name a pid that now belongs to something else).
running_pid() {
  local pidfile="$dir/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q nats-server || return 1
  echo "$pid"
}

# The HTTP status of GET /healthz on a monitoring port (000 when nothing answers), with bash's own
# /dev/tcp so that no HTTP client needs to be installed.
healthz() {
  local status
  status="$(
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || exit 0
    printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    timeout 2 head -n 1 <&3
  )" 2>/dev/null || true
  set -- $status
  echo "${2:-000}"
}

stop() {
  local n pid waited
  for n in "${nodes[@]}"; do
    if pid="$(running_pid "$n")"; then
      say "stopping $n (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for n in "${nodes[@]}"; do
    waited=0
    while pid="$(running_pid "$n")"; do
      if [ "$waited" -ge 100 ]; then
        say "$n did not stop within 10 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
        break
      fi
      sleep 0.1
      waited=$((waited + 1))
    done
    rm -f "$dir/$n.pid"
  done
}

status() {
  local n pid any=1
  for n in "${nodes[@]}"; do
    if pid="$(running_pid "$n")"; then
      echo "$n: running (pid $pid), mqtt://127.0.0.1:${mqtt_port[$n]}, /healthz $(healthz "${http_port[$n]}")"
      any=0
    else
      echo "$n: stopped"
    fi
  done
  return "$any"
}

start() {
  local binary n routes=() pid deadline
  if [ -n "${MQTT_HOME_NATS_SERVER:-}" ]; then
    binary="$MQTT_HOME_NATS_SERVER"
  else
    binary="$(bash "$here/install.sh" | tail -n 1)"
  fi
  [ -x "$binary" ] || { say "no nats-server at $binary"; exit 1; }
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  for n in "${nodes[@]}"; do routes+=("nats-route://127.0.0.1:${cluster_port[$n]}"); done

  for n in "${nodes[@]}"; do
    if pid="$(running_pid "$n")"; then
      say "$n is already running (pid $pid)"
      continue
    fi
    mkdir -p "$dir/$n"
    # The store path goes into the config as a quoted string (see nats/node.conf).
    NATS_CLUSTER=mqtt-home NATS_NODE="$n" \
      NATS_CLIENT_PORT="${client_port[$n]}" \
      NATS_HTTP_PORT="${http_port[$n]}" \
      NATS_CLUSTER_PORT="${cluster_port[$n]}" \
      NATS_MQTT_PORT="${mqtt_port[$n]}" \
      NATS_STORE_DIR="\"$dir/$n\"" \
      NATS_ROUTE_1="${routes[0]}" NATS_ROUTE_2="${routes[1]}" NATS_ROUTE_3="${routes[2]}" \
      nohup "$binary" -c "$conf" >>"$dir/$n.log" 2>&1 </dev/null &
    echo $! >"$dir/$n.pid"
    say "started $n (pid $!): mqtt 127.0.0.1:${mqtt_port[$n]}, client ${client_port[$n]}," \
      "cluster ${cluster_port[$n]}, monitoring ${http_port[$n]}; log $dir/$n.log"
  done

  # Ready: every node answers /healthz with 200, which it does once the JetStream meta group has a
  # leader and the node is current with it.
  deadline=$((SECONDS + 60))
  for n in "${nodes[@]}"; do
    while [ "$(healthz "${http_port[$n]}")" != 200 ]; do
      if ! running_pid "$n" >/dev/null; then
        say "$n exited; the end of its log:"
        tail -n 20 "$dir/$n.log" >&2
        stop
        exit 1
      fi
      if [ "$SECONDS" -ge "$deadline" ]; then
        say "$n is not healthy after 60 s; the end of its log:"
        tail -n 20 "$dir/$n.log" >&2
        exit 1
      fi
      sleep 0.2
    done
  done
  say "ready; the brokers:"
  brokers
}

case "$command" in
  start) start ;;
  stop) stop ;;
  status) status ;;
esac
