# The strata image: the `strata` binary alone on a small Debian base, run as a non-root user.
#   docker build -t strata:dev .
# Build stage: the workspace's pinned toolchain (rust-version 1.95) and Cargo.lock.
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config perl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p strata \
 && strip target/release/strata

# Runtime stage: CA certificates for S3 over TLS, a shell for the pod-index wrapper.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/strata --create-home strata
COPY --from=build /src/target/release/strata /usr/local/bin/strata
USER 10001:10001
WORKDIR /var/lib/strata
VOLUME ["/var/lib/strata"]
# Kafka clients, the controller quorum, and /metrics /healthz /readyz.
EXPOSE 9092 9093 9644
ENTRYPOINT ["/usr/local/bin/strata"]
CMD ["server", "--data-dir", "/var/lib/strata", "--kafka-listen", "0.0.0.0:9092", "--admin-listen", "0.0.0.0:9644"]
