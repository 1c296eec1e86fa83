#!/usr/bin/env bash
# Build the upstream programs the e2e harness runs, from the Go module proxy.
#
#   scripts/upstream/build.sh [component...]     # default (and `all`): every component
#   scripts/upstream/build.sh --print-env [c...] # print CSI_SPIFFE_BIN_* lines of what is built
#
# Components: etcd kubernetes containerd cert-manager csi-sanity helm spiffe-checker
# (kube-apiserver is another name for kubernetes, which builds kube-apiserver, kubelet, kubectl,
# kube-controller-manager and kube-scheduler in one `go build`, so they share their compiled packages.)
# The Go original (cert-manager/csi-driver-spiffe) is never built here; the benchmark runs it only
# from prebuilt binaries a user hands in (CSI_SPIFFE_GO_DRIVER_BIN, CSI_SPIFFE_GO_APPROVER_BIN).
# Each component's `go` output goes to <component-dir>/build.log; stderr gets one line per phase.
#
# Binaries are cached by version under
#   ${CSI_SPIFFE_CACHE:-$HOME/.cache/csi-driver-spiffe}/upstream/<component>-<version>/bin/
# A component whose stamp file exists is skipped, so a second run is instant.
# Nothing built here is committed; GOPATH/GOCACHE keep their defaults (outside the repo).
# See scripts/upstream/README.md for versions, timings and the reasons behind each workaround.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${CSI_SPIFFE_CACHE:-$HOME/.cache/csi-driver-spiffe}/upstream"

# ---- pinned versions (override through the environment to try another one) ----
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.21.2}"
CSI_TEST_VERSION="${CSI_TEST_VERSION:-v5.6.0}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
GO_SPIFFE_VERSION="${GO_SPIFFE_VERSION:-v2.8.1}"

ALL_COMPONENTS=(etcd kubernetes containerd cert-manager csi-sanity helm spiffe-checker)
# The Kubernetes commands built together by the `kubernetes` component.
KUBE_COMMANDS=(kube-apiserver kubelet kubectl kube-controller-manager kube-scheduler)

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
GO_BUILD=(go build -p "${GO_BUILD_PARALLEL:-2}" -trimpath)

START=$SECONDS
# Phase lines carry the elapsed time since this script started; inside a build they go to fd 3
# (the terminal) while the function's stderr is the component's build.log.
log() {
  local line
  line="$(printf '[upstream %s +%ss] %s' "$(date +%H:%M:%S)" "$((SECONDS - START))" "$*")"
  if { true >&3; } 2>/dev/null; then printf '%s\n' "$line" >&3; printf '%s\n' "$line" >&2; else printf '%s\n' "$line" >&2; fi
}
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go not found on PATH (Go >= 1.26 is required)"

# Serialise builds of one component across concurrent callers (e.g. two test runs).
with_lock() { # <dir> <fn> [args...]
  local dir="$1"; shift
  mkdir -p "$dir"
  exec {lockfd}>"$dir/.lock"
  flock "$lockfd"
  "$@"
  local rc=$?
  flock -u "$lockfd"; exec {lockfd}>&-
  return $rc
}

# Source fingerprint for components whose code is ours (rebuild when it changes).
src_hash() { (cd "$HERE" && sha256sum "$@" | sha256sum | cut -c1-12); }

# done_or_build <component-dir> <stamp-content> <build-fn> <binaries...>
# Skips when <dir>/.done holds the same stamp; otherwise builds under a lock.
done_or_build() {
  local dir="$1" stamp="$2"
  if [[ -f "$dir/.done" && "$(cat "$dir/.done")" == "$stamp" ]]; then
    log "$(basename "$dir"): cached"
    return 0
  fi
  with_lock "$dir" _build_locked "$@"
}
_build_locked() {
  local dir="$1" stamp="$2" fn="$3"; shift 3
  if [[ -f "$dir/.done" && "$(cat "$dir/.done")" == "$stamp" ]]; then
    log "$(basename "$dir"): cached (built by a concurrent run)"
    return 0
  fi
  rm -f "$dir/.done"
  local t0=$SECONDS b
  log "$(basename "$dir"): building (go output in $dir/build.log)"
  cd "$dir"
  # The build function's own stderr (go get/build output) goes to the log; phase lines go to fd 3.
  # Called plainly (not under if/||) so that set -e holds inside it; on failure the EXIT trap shows
  # the log's tail (this runs in its own bash process, see main).
  exec 3>&2 2>"$dir/build.log"
  trap 'rc=$?; if [[ $rc -ne 0 ]]; then tail -n 30 "'"$dir"'/build.log" >&3; printf "[upstream] %s: build failed (exit %s; whole log: %s)\n" "'"$(basename "$dir")"'" "$rc" "'"$dir"'/build.log" >&3; fi' EXIT
  "$fn" "$dir"
  trap - EXIT
  exec 2>&3 3>&-
  for b in "$@"; do [[ -x "$dir/bin/$b" ]] || die "$(basename "$dir"): bin/$b missing after build"; done
  printf '%s' "$stamp" >"$dir/.done"
  log "$(basename "$dir"): done in $((SECONDS - t0))s"
  printf '%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$(basename "$dir")" "$((SECONDS - t0))s" >>"$CACHE_ROOT/build-times.tsv"
}

# A throwaway module: go.mod with a module path and the go directive.
new_module() { # <module-path>
  rm -f go.mod go.sum
  printf 'module %s\n\ngo 1.26.0\n' "$1" >go.mod
}

# ------------------------------------------------------------------ etcd
build_etcd() {
  new_module e2e.local/etcd-build
  # server/go.mod upstream has `replace ../api` lines, so `go install` is refused;
  # in a consumer module those are ignored and MVS picks the same-tagged sub-modules.
  log "etcd: go get go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  log "etcd: compiling"
  "${GO_BUILD[@]}" -ldflags "-s -w" -o bin/etcd.tmp go.etcd.io/etcd/server/v3
  mv bin/etcd.tmp bin/etcd
  ./bin/etcd --version | head -1 >&2
}

# ------------------------------------------------------------ kubernetes
# kube-apiserver, kubelet, kubectl, kube-controller-manager and kube-scheduler from k8s.io/kubernetes,
# in one `go build` so that the packages they share are compiled once.
# k8s.io/kubernetes requires every staging module at v0.0.0 and resolves them with
# ./staging replaces, which a consumer ignores: pin each one to v0.<minor>.<patch>.
# The list is read from the real go.mod of the requested version.
build_kubernetes() {
  local kv="$KUBE_VERSION" sv="v0.${KUBE_VERSION#v1.}"
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  new_module e2e.local/kube-build
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$kv" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  [[ -f "$gomod" ]] || die "kubernetes: cannot download go.mod of k8s.io/kubernetes@$kv"
  local staging
  staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod")"
  log "kubernetes: pinning $(wc -w <<<"$staging") staging modules to $sv"
  local m args=()
  for m in $staging; do args+=("-replace=$m=$m@$sv"); done
  go mod edit "${args[@]}"
  local gd
  gd="$(sed -n 's/^godebug \(.*\)$/\1/p' "$gomod" | head -1)"
  [[ -n "$gd" ]] && go mod edit "-godebug=$gd"
  local c pkgs=()
  for c in "${KUBE_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  log "kubernetes: go get ${KUBE_COMMANDS[*]} @$kv (large download on a cold cache)"
  go get -tool "${pkgs[@]/%/@$kv}"
  local ldf="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf+=" -X $p.gitVersion=$kv -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ldf+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  log "kubernetes: compiling ${KUBE_COMMANDS[*]} (7–10 min on 2 cores when GOCACHE is cold)"
  rm -rf bin.tmp && mkdir -p bin.tmp
  "${GO_BUILD[@]}" -ldflags "$ldf" -o bin.tmp/ "${pkgs[@]}"
  for c in "${KUBE_COMMANDS[@]}"; do mv "bin.tmp/$c" "bin/$c"; done
  rm -rf bin.tmp
  log "kubernetes: $(./bin/kube-apiserver --version)"
}

# ------------------------------------------------------------- containerd
# containerd 2.x, its runc shim and ctr for the real node (the kubelet of Kubernetes 1.37 ends
# support for containerd 1.x). CGO off, so the graph drivers that need C are left out by tags.
CONTAINERD_COMMANDS=(containerd containerd-shim-runc-v2 ctr)
build_containerd() {
  new_module e2e.local/containerd-build
  local m=github.com/containerd/containerd/v2 c pkgs=()
  for c in "${CONTAINERD_COMMANDS[@]}"; do pkgs+=("$m/cmd/$c"); done
  log "containerd: go get ${CONTAINERD_COMMANDS[*]} @$CONTAINERD_VERSION"
  go get -tool "${pkgs[@]/%/@$CONTAINERD_VERSION}"
  log "containerd: compiling ${CONTAINERD_COMMANDS[*]}"
  rm -rf bin.tmp && mkdir -p bin.tmp
  "${GO_BUILD[@]}" -tags "no_btrfs,no_devmapper,no_zfs,no_aufs,no_dynamic_plugins" \
    -ldflags "-s -w -X $m/version.Version=$CONTAINERD_VERSION" -o bin.tmp/ "${pkgs[@]}"
  for c in "${CONTAINERD_COMMANDS[@]}"; do mv "bin.tmp/$c" "bin/$c"; done
  rm -rf bin.tmp
  ./bin/containerd --version >&2
}

# ---------------------------------------------------------- cert-manager
# The upstream mains live in modules the proxy cannot serve (controller-binary,
# webhook-binary), so we build two small mains of our own (scripts/upstream/cert-manager/)
# over cert-manager as a library. The module path sits under cert-manager's prefix so
# that the webhook main may import cert-manager's internal/ packages.
CM_SOURCES=(cert-manager/controller/main.go cert-manager/webhook/main.go)
build_cert_manager() {
  new_module github.com/cert-manager/cert-manager/csi-driver-spiffe-e2e
  mkdir -p controller webhook
  cp "$HERE/cert-manager/controller/main.go" controller/main.go
  cp "$HERE/cert-manager/webhook/main.go" webhook/main.go
  log "cert-manager: go get github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION"
  go get "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION"
  go mod tidy
  local ldf="-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$CERT_MANAGER_VERSION"
  log "cert-manager: compiling controller"
  "${GO_BUILD[@]}" -ldflags "$ldf" -o bin/cm-controller.tmp ./controller
  mv bin/cm-controller.tmp bin/cm-controller
  log "cert-manager: compiling webhook"
  "${GO_BUILD[@]}" -ldflags "$ldf" -o bin/cm-webhook.tmp ./webhook
  mv bin/cm-webhook.tmp bin/cm-webhook
  # CRDs: plain YAML in the root module's deploy/crds (read-only in GOMODCACHE).
  local cmdir
  cmdir="$(go mod download -json "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')"
  ls "$cmdir"/deploy/crds/*.yaml >/dev/null 2>&1 || die "cert-manager: no deploy/crds/*.yaml in $cmdir"
  rm -rf crds && mkdir -p crds
  cp "$cmdir"/deploy/crds/*.yaml crds/
  chmod u+w crds/*.yaml
  log "cert-manager: copied $(find crds -name "*.yaml" | wc -l) CRD files to $PWD/crds"
}

# ------------------------------------------------------------- csi-sanity
build_csi_sanity() {
  new_module e2e.local/csi-sanity-build
  log "csi-sanity: go get github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_TEST_VERSION"
  go get -tool "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_TEST_VERSION"
  "${GO_BUILD[@]}" -ldflags "-s -w" -o bin/csi-sanity.tmp github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity
  mv bin/csi-sanity.tmp bin/csi-sanity
}

# ------------------------------------------------------------------ helm
build_helm() {
  local major="${HELM_VERSION%%.*}"
  new_module e2e.local/helm-build
  log "helm: go get helm.sh/helm/$major/cmd/helm@$HELM_VERSION"
  go get -tool "helm.sh/helm/$major/cmd/helm@$HELM_VERSION"
  "${GO_BUILD[@]}" -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION" \
    -o bin/helm.tmp "helm.sh/helm/$major/cmd/helm"
  mv bin/helm.tmp bin/helm
  ./bin/helm version --short >&2 || true
}

# ---------------------------------------------------------- spiffe-checker (ours)
CHECKER_SOURCES=(spiffe-checker/main.go)
build_spiffe_checker() {
  new_module e2e.local/spiffe-checker
  cp "$HERE/spiffe-checker/main.go" main.go
  log "spiffe-checker: go get github.com/spiffe/go-spiffe/v2@$GO_SPIFFE_VERSION"
  go get "github.com/spiffe/go-spiffe/v2@$GO_SPIFFE_VERSION"
  go mod tidy
  "${GO_BUILD[@]}" -ldflags "-s -w" -o bin/spiffe-checker.tmp .
  mv bin/spiffe-checker.tmp bin/spiffe-checker
}

# ------------------------------------------------------------------ driver
# name -> "dir|stamp|fn|binaries(space separated)|env name"
component_spec() {
  case "$1" in
    etcd) echo "etcd-$ETCD_VERSION|$ETCD_VERSION|build_etcd|etcd|ETCD" ;;
    kubernetes|kube-apiserver) echo "kubernetes-$KUBE_VERSION|$KUBE_VERSION|build_kubernetes|${KUBE_COMMANDS[*]}|KUBERNETES" ;;
    containerd) echo "containerd-$CONTAINERD_VERSION|$CONTAINERD_VERSION|build_containerd|${CONTAINERD_COMMANDS[*]}|CONTAINERD" ;;
    cert-manager)
      local h; h="$(src_hash "${CM_SOURCES[@]}")"
      echo "cert-manager-$CERT_MANAGER_VERSION|$CERT_MANAGER_VERSION-$h|build_cert_manager|cm-controller cm-webhook|CERT_MANAGER" ;;
    csi-sanity) echo "csi-sanity-$CSI_TEST_VERSION|$CSI_TEST_VERSION|build_csi_sanity|csi-sanity|CSI_SANITY" ;;
    helm) echo "helm-$HELM_VERSION|$HELM_VERSION|build_helm|helm|HELM" ;;
    spiffe-checker)
      local h; h="$(src_hash "${CHECKER_SOURCES[@]}")"
      echo "spiffe-checker-$GO_SPIFFE_VERSION|$GO_SPIFFE_VERSION-$h|build_spiffe_checker|spiffe-checker|SPIFFE_CHECKER" ;;
    *) die "unknown component '$1' (known: ${ALL_COMPONENTS[*]})" ;;
  esac
}

# Internal entry point: build one component in this (top-level, set -e) shell.
build_one() {
  local spec dir stamp fn bins envname
  spec="$(component_spec "$1")"
  IFS='|' read -r dir stamp fn bins envname <<<"$spec"
  # shellcheck disable=SC2086 # bins is a space-separated list
  done_or_build "$CACHE_ROOT/$dir" "$stamp" "$fn" $bins
}

main() {
  local print_only=0 comps=() c
  for c in "$@"; do
    case "$c" in
      --print-env) print_only=1 ;;
      -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}"; exit 0 ;;
      all) comps+=("${ALL_COMPONENTS[@]}") ;;
      *) comps+=("$c") ;;
    esac
  done
  [[ ${#comps[@]} -eq 0 ]] && comps=("${ALL_COMPONENTS[@]}")
  mkdir -p "$CACHE_ROOT"

  local failed=() lines=() spec dir stamp fn bins envname
  for c in "${comps[@]}"; do
    spec="$(component_spec "$c")"
    IFS='|' read -r dir stamp fn bins envname <<<"$spec"
    dir="$CACHE_ROOT/$dir"
    if [[ $print_only -eq 0 ]]; then
      mkdir -p "$dir/bin"
      # A separate bash process, so that `set -e` holds inside the build functions
      # (bash ignores -e in functions called from an `if`/`||` context).
      if ! "$BASH" "${BASH_SOURCE[0]}" __build "$c"; then
        log "$c: FAILED (log above)"
        failed+=("$c")
        continue
      fi
    elif [[ ! -f "$dir/.done" ]]; then
      continue
    fi
    lines+=("CSI_SPIFFE_BIN_${envname}=$dir/bin")
    [[ "$c" == cert-manager ]] && lines+=("CSI_SPIFFE_CERT_MANAGER_CRDS=$dir/crds")
  done
  printf '%s\n' "${lines[@]}"
  if [[ ${#failed[@]} -gt 0 ]]; then
    log "failed components: ${failed[*]}"
    exit 1
  fi
}

if [[ "${1:-}" == "__build" ]]; then
  mkdir -p "$CACHE_ROOT"
  build_one "$2"
else
  main "$@"
fi
