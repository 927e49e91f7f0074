# One small image with every mqtt-home binary; each compose service runs one of them.
#   docker build .                                       the binaries built from source here (release)
#   docker build --target runtime-prebuilt -t mqtt-home CONTEXT
#                                                        binaries built elsewhere, taken from
#                                                        CONTEXT/prebuilt/ (containers/setup.sh does
#                                                        this with the host's cargo build)
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY crates ./crates
# The daemons only: the all-in-one `mqtt-home` (with its embedded broker) is not needed in compose.
RUN cargo build --release --locked --workspace --exclude mqtt-home --exclude testkit --exclude embedded-broker --exclude bench --bins \
 && mkdir /out \
 && find target/release -maxdepth 1 -type f -executable -exec cp {} /out/ \;

# Everything but the binaries.
FROM debian:bookworm-slim AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin mqtthome \
 && mkdir -p /app /var/lib/mqtt-home \
 && chown mqtthome /var/lib/mqtt-home
WORKDIR /app
USER mqtthome
ENV MQTT_HEALTH_FILE=/tmp/mqtt-connected
CMD ["light-bulb", "--help"]

# Binaries built on the host (glibc-compatible with bookworm), copied from the build context; the
# `build` stage above is not run for this target.
FROM runtime-base AS runtime-prebuilt
COPY prebuilt/ /usr/local/bin/

# The default (last) stage: the binaries built from source above.
FROM runtime-base AS runtime
COPY --from=build /out/ /usr/local/bin/
