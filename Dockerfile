# pullstorm as a container image, for users who can pull from Docker Hub: a multi-stage
# build, the release binary built in the official Rust image and copied into debian-slim
# with the CA certificates an https target needs.
#
#   docker build -t pullstorm:local .
#   docker run --rm pullstorm:local run /scenarios/x.toml ...
#
# This file is not built by the project's tests: the machines they run on have no image
# registry. The tests build the same image name without one, from the lab's debootstrapped
# base plus target/release/pullstorm: scripts/pullstorm-image.sh (docs/merge.md).
#
# File descriptors: every download holds a socket. pullstorm raises its soft nofile limit
# to the hard limit at start; a container gets the engine's default hard limit, so a large
# fleet per shard needs `docker run --ulimit nofile=1048576:1048576` (or, in Kubernetes, a
# node whose container runtime grants it). `pullstorm run` refuses a plan that cannot fit.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin pullstorm

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/pullstorm /usr/local/bin/pullstorm
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/pullstorm"]
CMD ["--help"]
