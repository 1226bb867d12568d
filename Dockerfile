# syntax=docker/dockerfile:1
#
# The Agent Portal's container images, built from the workspace at the top of the repository.
#
#   docker build -t agent-portal:1.2.3 .                     the production image (the default, last stage)
#   docker build --target dev -t agent-portal-dev:dev .      the development image (bins/dev only)
#
# One production image carries all four production binaries (api, realtime, queue-consumer,
# template-sync) in /usr/local/bin; the container's command picks the program:
#
#   api serve | api migrate up | realtime | queue-consumer | template-sync
#
# One image rather than four because the binaries share almost all their code and every
# dependency (they are thin mains over `shared`): one build, one vulnerability scan, one tag and
# one version across the whole deployment, so an api pod, a realtime pod, the queue consumer,
# the migration Job and the template-sync CronJob of a release always run the same code.
#
# The development stack (`bins/dev`: demo data, dev tokens, stand-ins for the external services)
# is never in the production image: it is built in a stage of its own and shipped only in the
# `dev` target, used by docker-compose.yml.
#
# Build arguments for the OCI labels (CI passes them; the defaults mark a local build):
#   --build-arg VERSION=1.2.3 --build-arg REVISION=$(git rev-parse HEAD)
#   --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) --build-arg SOURCE=<repository URL>
#
# Base images are pinned by tag; pin them by digest (`name:tag@sha256:…`) in CI or with a
# dependency bot once a registry is reachable from where the digests are resolved.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---------------------------------------------------------------------------------------------
# chef: the toolchain plus cargo-chef, which splits the build into a dependency layer (cached
# until Cargo.toml/Cargo.lock change) and the workspace's own code.
#
# No apt packages are installed: the crypto backend is aws-lc-rs, and aws-lc-sys 0.47 (the
# version in Cargo.lock) builds AWS-LC with its `cc` builder on x86_64/aarch64 Linux, using the
# pre-generated bindings it ships, so it needs only a C compiler and libc headers, which the
# official slim image already has (gcc, libc6-dev). No cmake, clang/bindgen, perl, Go or NASM.
# ring (through quinn) likewise needs only cc. Nothing in the production graph links OpenSSL
# (reqwest is built with rustls only; native-tls appears in Cargo.lock for a test-only client).
# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}" \
    && rm -rf "${CARGO_HOME}/registry"
# sqlx's query macros read .sqlx/ instead of a live database; there is none at build time.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never
WORKDIR /src

# planner: the recipe (the workspace's manifests and lock file, with the code left out).
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# build: the four production binaries. The dependencies are cooked with exactly the package
# selection of the real build, so feature unification is the same and nothing is rebuilt.
FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json \
    -p api -p realtime -p queue-consumer -p template-sync --bins
COPY . .
RUN cargo build --release --locked \
        -p api -p realtime -p queue-consumer -p template-sync --bins \
    && mkdir -p /out \
    && cp target/release/api target/release/realtime target/release/queue-consumer \
        target/release/template-sync /out/

# build-dev: the development stack's binary, in a stage of its own (only `--target dev` runs it).
FROM chef AS build-dev
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p dev --bins
COPY . .
RUN cargo build --release --locked -p dev --bins \
    && mkdir -p /out \
    && cp target/release/dev /out/

# ---------------------------------------------------------------------------------------------
# dev: the development image, with only `dev` (docker-compose.yml's stand-ins, demo data and
# tokens: `dev stand-ins …`, `dev --no-serve …`, `dev token …`). Never deploy it.
# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS dev
ARG VERSION=0.0.0-local
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="agent-portal-dev" \
      org.opencontainers.image.description="Agent Portal development stack (demo data, dev tokens, stand-ins for external services). Development only; never deploy." \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=build-dev /out/dev /usr/local/bin/dev
USER 65532:65532
EXPOSE 8090 8091
CMD ["dev", "stand-ins", "--host", "0.0.0.0"]

# ---------------------------------------------------------------------------------------------
# production: the default (last) stage. distroless/cc: glibc, libgcc, CA certificates, tzdata,
# no shell and no package manager; `nonroot` is the numeric user 65532.
#
# No HEALTHCHECK, on purpose: the image has no shell or curl to run one; one image runs four
# programs on different ports (api 8080, realtime 8081, queue-consumer 8082) and one of them
# (template-sync, like `api migrate`) is a run-to-completion job, so no single check fits;
# Kubernetes ignores Docker health checks and probes GET /healthz and /readyz itself, and
# docker-compose.yml orders start-up with its own conditions.
# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS production
ARG VERSION=0.0.0-local
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="agent-portal" \
      org.opencontainers.image.description="Agent Portal backend: api, realtime, queue-consumer and template-sync in one image; the command picks the program." \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# distroless sets this PATH already; stated here so `CMD ["api", …]` and a compose/Kubernetes
# `command: ["realtime"]` resolve in /usr/local/bin whatever the base image does.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
# api, realtime, queue-consumer (its probes and metrics); each program listens on one of them.
EXPOSE 8080 8081 8082
# No ENTRYPOINT: the command is the whole invocation, so `docker run IMAGE` serves the API and
# `docker run IMAGE realtime` (or Kubernetes `command: ["template-sync"]`) runs another program.
CMD ["api", "serve"]
