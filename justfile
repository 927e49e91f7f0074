# mqtt-home recipes: `just --list` shows this menu. Install just with `cargo install just`
# or `pip install rust-just`. Each recipe prints nothing you could not type yourself.

broker_url := env_var_or_default("MQTT_BROKER_URL", "mqtt://127.0.0.1:1883")

# Run the whole home on an embedded broker (no Docker, no Mosquitto needed)
demo:
    cargo run --release -p mqtt-home

# Run every test (brokers are started by the tests on free ports)
test:
    cargo test --workspace

# Format check and lints, as CI runs them
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Watch every message of the home (needs mosquitto-clients)
watch:
    mosquitto_sub -L "{{broker_url}}/home/#" -v
