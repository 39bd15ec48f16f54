# The orcaops image: `orcaops operator` on a cluster (the default command), and
# every other subcommand of the same binary.
#
#   docker build -t orcaops:0.1.0 .

# --- build -------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /build

# Dependencies first, in a layer of their own that is rebuilt only when
# Cargo.toml or Cargo.lock change: cargo needs every target the manifest names
# to exist, so the library, the binary and the benches are empty stand-ins here.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src benches migrations \
    && touch src/lib.rs \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > benches/api.rs \
    && echo 'fn main() {}' > benches/local_mode.rs \
    && cargo build --release --locked

# Then orcaops itself. COPY keeps the files' own modification times, which may
# be older than the stand-ins' build: touching the crate roots makes cargo
# rebuild the crate (and only the crate).
COPY migrations migrations
COPY benches benches
COPY src src
RUN touch src/lib.rs src/main.rs \
    && cargo build --release --locked \
    && install -m 0755 target/release/orcaops /usr/local/bin/orcaops

# --- run ---------------------------------------------------------------------
# debian:bookworm-slim rather than distroless: the same Debian release (and so
# the same glibc) as the builder, ca-certificates from Debian's own packages,
# and a shell for `kubectl exec` when something needs looking into.
FROM debian:bookworm-slim

# ca-certificates is left unpinned on purpose: a pinned version stops building
# as soon as Debian ships a newer one, and the newest roots are the ones wanted.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 orcaops \
    && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/orcaops --shell /usr/sbin/nologin orcaops \
    && install -d -o 65532 -g 65532 -m 0750 /var/lib/orcaops

COPY --from=builder /usr/local/bin/orcaops /usr/local/bin/orcaops

# Numeric, so that Kubernetes' runAsNonRoot can check it without a passwd file.
USER 65532:65532
# The data dir (--data-dir): run records, step logs and artifacts. Mount a
# volume here to keep them.
WORKDIR /var/lib/orcaops
# /metrics, /healthz, /readyz; and the REST facade and /mcp with --api.
EXPOSE 9090 8080

ENTRYPOINT ["/usr/local/bin/orcaops"]
CMD ["operator"]
