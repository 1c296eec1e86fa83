# syntax=docker/dockerfile:1
#
# One image for both binaries of csi-driver-spiffe:
#   csi-driver-spiffe           the CSI node driver (DaemonSet; runs as root, privileged)
#   csi-driver-spiffe-approver  the CertificateRequest approver (Deployment; non-root)
# Both are on PATH; the Helm chart sets `command:` to one of them. There is no build step: Node 24
# runs the TypeScript sources directly (type stripping), so the image holds src/, proto/,
# package.json and the production node_modules.
#
#   docker build -t csi-driver-spiffe:0.1.0 .
#   helm install ... --set driverImage.repository=csi-driver-spiffe,approverImage.repository=csi-driver-spiffe

# Debian bookworm slim with Node 24 (the runtime the project pins, see package.json). The npm
# package `node` (a devDependency that provides Node 24 in a checkout) is not needed here.
ARG NODE_IMAGE=docker.io/library/node:24-bookworm-slim

# ---------------------------------------------------------------- dependencies
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Production dependencies only, exactly as locked. --ignore-scripts: no dependency needs an install
# script at runtime (the only ones are the `node` devDependency and a no-op in protobufjs).
# npm's download cache is a cache mount: kept between builds, never in a layer.
# Behind a TLS-intercepting proxy, hand its CA bundle in as a build secret (it never enters a layer):
#   docker build --secret id=npm-ca,src=/etc/ssl/certs/ca-certificates.crt .
# Then drop what Node never loads from node_modules: TypeScript sources and declarations (Node
# refuses to strip types below node_modules), source maps and Markdown, licences kept. That is
# about half of node_modules' bytes and files.
RUN --mount=type=secret,id=npm-ca \
    --mount=type=cache,target=/root/.npm,sharing=locked \
    if [ -s /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline \
 && find node_modules -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' -o -name '*.md' \) \
      ! -iname 'licen[cs]e*' -delete
COPY proto ./proto
COPY src ./src
# Fail the build now if a module does not resolve or a type cannot be stripped.
RUN chmod 0755 src/bin/*.ts \
 && for bin in src/bin/*.ts; do node "$bin" --help >/dev/null || exit 1; done

# ---------------------------------------------------------------- runtime
FROM ${NODE_IMAGE}
# The driver runs mount(8) and umount(8) from util-linux for the tmpfs and the read-only bind
# mounts. Debian's `mount` package has Priority: required, so it is part of every Debian base
# (debootstrap minbase) including -slim; this line fails the build if that ever changes.
RUN mount --version && umount --version
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app
# Links like npm's bin links: Node follows the symlink to the .ts file (ESM, type stripping).
RUN ln -s /app/src/bin/csi.ts /usr/local/bin/csi-driver-spiffe \
 && ln -s /app/src/bin/approver.ts /usr/local/bin/csi-driver-spiffe-approver
# Numeric so that the approver's `runAsNonRoot: true` can be verified by the kubelet; the driver
# DaemonSet sets runAsUser: 0 itself.
USER 65532:65532
ENTRYPOINT ["csi-driver-spiffe"]
CMD ["--help"]
