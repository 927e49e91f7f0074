# mqtt-home recipes. `just --list` shows this menu; each recipe is one plain command you can also
# type yourself. Install just: `cargo install just` or `pip install rust-just`.
#
# Recipes that talk to a broker use $MQTT_BROKER_URL (default mqtt://127.0.0.1:1883) and, for the
# compose broker, MQTT_USERNAME=operator MQTT_PASSWORD=demo-operator (see .env).

broker_url := env_var_or_default("MQTT_BROKER_URL", "mqtt://127.0.0.1:1883")
home := "cargo run --release -q -p mqtt-home --"
# The compose tool: `docker compose` (default), or `COMPOSE=podman-compose just up` without Docker
compose := env_var_or_default("COMPOSE", "docker compose")

# The whole home on an embedded broker: no Docker, no Mosquitto needed
[group('run')]
demo:
    cargo run --release -p mqtt-home

# Every test (installs what the tests talk to on the first run); brokers start on free ports
[group('develop')]
test *args:
    scripts/test.sh {{args}}

# Every decoder of network and file input fed generated input, CASES each (CI runs 256), and the
# whole home fed MESSAGES fuzzed MQTT messages (CI: 3000)
[group('develop')]
fuzz cases="1000000" messages="100000":
    PROPTEST_CASES={{cases}} FUZZ_MQTT_MESSAGES={{messages}} cargo test --release -p mqtt-home --test fuzz -- --nocapture

# Format check and lints, as CI runs them
[group('develop')]
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Intrusion latency (bare / minimal controller / panel, idle and at 1000 msg/s) and panel memory, issue #8
[group('develop')]
bench *flags:
    cargo build --release -p security-controller -p alarm-actuator
    cargo bench -p bench --bench intrusion -- {{flags}}

# Recorder ingest (messages/s committed, durability full and normal) and memory, issue #9
[group('develop')]
bench-recorder *flags:
    cargo build --release -p recorder
    cargo bench -p bench --bench recorder -- {{flags}}

# Window OPEN -> siren through the bridge (a Zigbee2MQTT contact) vs the home's own topic, issue #11
[group('develop')]
bench-adapter *flags:
    cargo bench -p bench --bench adapter -- {{flags}}

# The panel at 10, 1 000 and 10 000 sensors: arm command latency, CPU per reading, issue #12
[group('develop')]
bench-scale *flags:
    cargo build --release -p security-controller
    cargo bench -p bench --bench scale -- {{flags}}

# Simulated devices at scale against $MQTT_BROKER_URL, each its own connection: connections,
# events/s and memory per device (e.g. `just fleet 10000`)
[group('develop')]
fleet devices="10000" *flags:
    {{home}} --broker {{broker_url}} fleet --devices {{devices}} --rate 1000 --duration 60s {{flags}}

# Window OPEN -> the notifier's webhook received (the panel's triggered), issue #11
[group('develop')]
bench-notify *flags:
    cargo bench -p bench --bench notify -- {{flags}}

# Window OPEN → burglary report at a monitoring centre's receiver (pysiaalarm), and reports/s, issue 22
[group('develop')]
bench-sia *flags:
    cargo bench -p bench --bench sia -- {{flags}}

# Siren latency with the dashboard under attack (idle-socket flood, parallel-login storm), mqtt-home's files and memory, issue 19
[group('develop')]
bench-attack *flags:
    cargo build --release -p mqtt-home
    cargo bench -p bench --bench attack -- {{flags}}

# Door opening -> Home Assistant's state API, p50 over 100 openings (needs `bash ha/install.sh`)
[group('develop')]
bench-ha *flags:
    bash ha/install.sh
    cargo bench -p bench --bench home_assistant -- {{flags}}

# --- docker compose: Mosquitto with per-device users and ACLs, one container per daemon ---

# Build the image and start the broker and every daemon in the background
[group('compose')]
up:
    {{compose}} up -d --build

# Stop and remove the containers (the broker's data and the panel's state stay in their volumes)
[group('compose')]
down:
    {{compose}} down

# Follow the logs of every service
[group('compose')]
logs:
    {{compose}} logs -f

# A local Mosquitto with the repository's config, users and ACL, no Docker (BROKER_PORT=1884 for another port)
[group('broker')]
broker:
    mosquitto/run-local.sh

# Make a local CA and a server certificate for the TLS listener (mosquitto/certs/)
[group('broker')]
certs:
    mosquitto/make-certs.sh

# New random passwords for every MQTT user: mosquitto/passwd and .env (run before exposing the broker)
[group('broker')]
rotate-credentials:
    mosquitto/rotate-credentials.sh

# A three-node NATS Server cluster speaking MQTT on 127.0.0.1:1884-1886 (nats/cluster.sh); run the
# home on it with `MQTT_BROKER_URL=<the printed list> just demo`
[group('broker')]
cluster:
    bash nats/cluster.sh start

# Stop the local NATS cluster
[group('broker')]
cluster-stop:
    bash nats/cluster.sh stop

# A monitoring centre's alarm receiver on 127.0.0.1:12128 (pysiaalarm, as Home Assistant's `sia`
# uses it), account 1234, printing each report: what config/sia-transmitter.toml reports to. Then
# `just demo` with `sia_transmitter = true` in home.toml, or run `sia-transmitter` itself.
[group('broker')]
sia-receiver port="12128" account="1234":
    #!/usr/bin/env bash
    set -euo pipefail
    venv="${MQTT_HOME_PYSIAALARM_VENV:-$HOME/.cache/mqtt-home/pysiaalarm-3.1.1}"
    "$venv/bin/python" -c 'import pysiaalarm' 2>/dev/null || { python3 -m venv "$venv" && "$venv/bin/pip" install -q pysiaalarm==3.1.1; }
    exec "$venv/bin/python" -u scripts/sia-receiver.py {{port}} TCP {{account}}

# Print the Argon2id hash of a PIN for [[panel.users]] in config/security-controller.toml
[group('broker')]
hash-pin:
    cargo run --release -q -p security-controller -- hash-pin

# --- Scenarios: each starts a quiet home on an embedded broker, runs, stops it ---

# The original lighting day: sunrise 50 %, morning 100 %, sunset 30 %, night 5 %
[group('scenarios')]
scenario-lighting-day:
    {{home}} scenario --with-home scenarios/lighting-day.toml

# Motion at night: the kitchen to 100 %, back to 5 % after the motion timeout (about a minute)
[group('scenarios')]
scenario-motion:
    {{home}} scenario --with-home scenarios/motion-lighting.toml

# Armed away, a window opens: alarm, siren, lights flash; the right code disarms
[group('scenarios')]
scenario-intrusion:
    {{home}} scenario --with-home scenarios/intrusion.toml

# Five wrong codes lock the keypad out; the right code is refused until the lockout ends
[group('scenarios')]
scenario-lockout:
    {{home}} scenario --with-home scenarios/lockout.toml

# A duress code disarms visibly, sends a silent duress event, sounds no siren
[group('scenarios')]
scenario-duress:
    {{home}} scenario --with-home scenarios/duress.toml

# People: the cleaner's code without the right is refused with its reason; alice switches home -> away -> home
[group('scenarios')]
scenario-people:
    {{home}} scenario --with-home scenarios/people.toml

# A Zigbee2MQTT keypad arms and shows the panel's mode; a wrong code shows invalid_code; a tag disarms
[group('scenarios')]
scenario-keypad:
    {{home}} scenario --with-home scenarios/keypad.toml

# Areas: the garage arms on its own, its window trips only it, gina's code works only there, and
# the house panel arms every area (the home with config/security-controller.areas.toml)
[group('scenarios')]
scenario-areas:
    #!/usr/bin/env bash
    set -euo pipefail
    dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
    cp config/*.toml "$dir"/
    sed -i 's/security-controller.demo.toml/security-controller.areas.toml/' "$dir/home.toml"
    {{home}} scenario --with-home --config-dir "$dir" scenarios/areas/two-areas.toml

# Foreign devices through the bridge, one scenario per profile: Zigbee2MQTT, Tasmota, ESPHome,
# Shelly, the original project's iot/lights, generic (two wait out the motion timeout)
[group('scenarios')]
scenario-bridge:
    {{home}} scenario --with-home scenarios/bridge-*.toml

# Every scenario, one after another
[group('scenarios')]
scenarios:
    {{home}} scenario --with-home scenarios/*.toml

# Run a scenario file against a home that is already running at $MQTT_BROKER_URL
[group('scenarios')]
scenario file:
    {{home}} --broker {{broker_url}} scenario {{file}}

# --- Control a running home ($MQTT_BROKER_URL) ---

# The web dashboard against a running home ($MQTT_BROKER_URL), on http://127.0.0.1:8080
[group('control')]
dashboard:
    cargo run --release -q -p dashboard -- --broker {{broker_url}}

# What happened since SINCE (1h, 24h, 7d): the recorder's log in mqtt-home.db
[group('control')]
history since="24h":
    {{home}} history --since {{since}}

# Arm the panel: away, home or night
[group('control')]
arm mode="away":
    {{home}} --broker {{broker_url}} arm {{mode}}

# Disarm (PIN asked without echo, or from MQTT_HOME_PIN; the demo PIN is 1234)
[group('control')]
disarm:
    {{home}} --broker {{broker_url}} disarm

# The home at a glance: the panel, each sensor, light and device, the siren
[group('control')]
status:
    {{home}} --broker {{broker_url}} status

# Open a door (then `just door-close`)
[group('control')]
door-open id="front":
    {{home}} --broker {{broker_url}} set door {{id}} open

# Close a door
[group('control')]
door-close id="front":
    {{home}} --broker {{broker_url}} set door {{id}} closed

# Report motion on a motion sensor
[group('control')]
motion id="hall-motion":
    {{home}} --broker {{broker_url}} set motion {{id}}

# A live view of the whole home
[group('control')]
watch:
    {{home}} --broker {{broker_url}} watch
