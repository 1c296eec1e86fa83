# syntax=docker/dockerfile:1
#
# One image for the three binaries of csi-driver-spiffe:
#   csi-driver-spiffe           the CSI node driver (DaemonSet; runs as root, privileged)
#   csi-driver-spiffe-approver  the CertificateRequest approver (Deployment; non-root)
#   csi-driver-spiffe-signer    the PodCertificateRequest signer (Deployment; non-root)
# All are on PATH; the Helm chart sets `command:` to one of them. The build stage bundles the
# TypeScript sources with what they use of their dependencies (scripts/bundle.ts: one ESM file per
# binary plus the .proto files); the runtime stage holds only Node, that bundle, mount(8) and
# umount(8), and the shared libraries these load: no node_modules, no shell, no package manager.
#
#   docker build -t csi-driver-spiffe:0.1.0 .
#   helm install ... --set driverImage.repository=csi-driver-spiffe,approverImage.repository=csi-driver-spiffe

# Debian bookworm slim with Node 24 (the runtime the project pins, see package.json); the build
# stage runs on it and the runtime stage takes its `node` binary and libraries.
ARG NODE_IMAGE=docker.io/library/node:24-bookworm-slim

# ---------------------------------------------------------------- build
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Every dependency exactly as locked, development ones too: the bundler (rolldown) is one.
# --ignore-scripts: no install script is needed (the only ones are the `node` devDependency, which
# would fetch a second Node, and a no-op in protobufjs).
# npm's download cache is a cache mount: kept between builds, never in a layer.
# Behind a TLS-intercepting proxy, hand its CA bundle in as a build secret (it never enters a layer):
#   docker build --secret id=npm-ca,src=/etc/ssl/certs/ca-certificates.crt .
RUN --mount=type=secret,id=npm-ca \
    --mount=type=cache,target=/root/.npm,sharing=locked \
    if [ -s /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi \
 && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline
COPY proto ./proto
COPY src ./src
COPY scripts/bundle.ts ./scripts/
# dist/: csi.mjs, approver.mjs, signer.mjs, proto/, package.json. Fails the build if a module does not
# resolve or a binary does not start as far as its --help.
RUN node scripts/bundle.ts \
 && for bin in dist/csi.mjs dist/approver.mjs dist/signer.mjs; do node "$bin" --help >/dev/null || exit 1; done

# V8's compile cache of every module of the bundle (NODE_COMPILE_CACHE, read at each start): code
# compiled here is not compiled again at start-up, which also saves the heap the compiler needs.
# Node keeps one cache directory per uid: filled for root (the driver) and 65532 (approver, signer).
# V8 keys each entry by its flags as they are when the module is compiled, and each binary sets
# flags of its own as it starts (src/bin/CompilerTiers.ts), so dist/warm-up.mjs (written by
# scripts/bundle.ts) imports each binary's files in the order a start compiles them, with the same
# flags set between them; the entry gets `--help` as its only argument, so it loads but runs
# nothing. NODE_OPTIONS here is the runtime stage's (see there).
ENV NODE_COMPILE_CACHE=/app/compile-cache NODE_OPTIONS=--max-semi-space-size=2
RUN set -eu; \
    mkdir -m 1777 /app/compile-cache; \
    for bin in csi approver signer; do \
      node /app/dist/warm-up.mjs $bin >/dev/null; \
      setpriv --reuid=65532 --regid=65532 --clear-groups node /app/dist/warm-up.mjs $bin >/dev/null; \
    done; \
    chmod 0755 /app/compile-cache; ls -l /app/compile-cache/*

# The runtime's whole file system in /rootfs: the bundle at /app/dist, its compile cache, each program below at the
# path it has here, and every shared library `ldd` names for it (with the loader) at its path.
# env(1) runs the bundles' first lines (`#!/usr/bin/env node`); id(1) and true(1) (coreutils, libc only) let a
# container runtime check the user and start-up without the binaries.
RUN set -eu; r=/rootfs; \
    mkdir -p "$r/app" "$r/tmp" "$r/usr/local/bin"; chmod 1777 "$r/tmp"; \
    cp -a dist "$r/app/dist"; cp -a compile-cache "$r/app/compile-cache"; \
    for p in node mount umount env id true; do \
      f=""; for d in /usr/local/bin /usr/bin /bin; do [ -x "$d/$p" ] && { f="$d/$p"; break; }; done; \
      [ -n "$f" ] || { echo "no $p" >&2; exit 1; }; cp --parents -L "$f" "$r"; \
      for lib in $(ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do \
        [ -e "$r$lib" ] || cp --parents -L "$lib" "$r"; \
      done; \
    done; \
    ln -s /app/dist/csi.mjs "$r/usr/local/bin/csi-driver-spiffe"; \
    ln -s /app/dist/approver.mjs "$r/usr/local/bin/csi-driver-spiffe-approver"; \
    ln -s /app/dist/signer.mjs "$r/usr/local/bin/csi-driver-spiffe-signer"; \
    chroot "$r" /usr/local/bin/csi-driver-spiffe --help >/dev/null; \
    chroot "$r" /usr/local/bin/csi-driver-spiffe-approver --help >/dev/null; \
    chroot "$r" /usr/local/bin/csi-driver-spiffe-signer --help >/dev/null; \
    chroot "$r" mount --version; chroot "$r" umount --version

# ---------------------------------------------------------------- runtime
FROM scratch
COPY --from=build /rootfs/ /
# --max-semi-space-size=2 (MiB): V8's young generation grows to 16 MiB semi-spaces under a burst of
# publishes and keeps them; capped at 2 MiB, the driver idles with 110 volumes at 123-166 MiB RSS
# instead of 204-208 and the approver after 500 requests at 111-124 instead of 130-138
# (scripts/bench.ts --quick, bench/results/footprint.md). The driver sets --optimize-for-size
# itself once its socket listens (src/bin/CsiLive.ts says why).
# glibc's malloc (mallopt(3)): at most 2 arenas instead of 8 per core, a fixed threshold above
# which a block is its own mapping (unmapped when freed; by default the threshold rises after the
# first large free, and such blocks then stay in the heap), and the heap's free top handed back
# above the same size. At 128 KiB the driver after a burst of 110 publishes idled 5-6 MiB lower
# (98-103 MiB RSS against 102-109, 5 runs each, scripts/bench-idle-rss.ts); at 32 KiB, with the
# driver in V8's interpreter, 78.5 (78.4-78.5) against 80.2 (78.5-81.9) and the approver 83.9
# against 85.1 (2 runs each); the burst's p99 and the decisions per second within their noise.
ENV PATH=/usr/local/bin:/usr/bin:/bin NODE_ENV=production NODE_COMPILE_CACHE=/app/compile-cache \
    NODE_OPTIONS=--max-semi-space-size=2 \
    MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=32768 MALLOC_TRIM_THRESHOLD_=32768
WORKDIR /app
# Numeric so that the approver's `runAsNonRoot: true` can be verified by the kubelet; the driver
# DaemonSet sets runAsUser: 0 itself.
USER 65532:65532
ENTRYPOINT ["csi-driver-spiffe"]
CMD ["--help"]
