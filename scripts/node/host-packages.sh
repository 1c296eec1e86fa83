#!/usr/bin/env bash
# Installs the Debian packages a real node and its locally built images need, when missing:
#   runc, CNI plugins              the OCI runtime and pod network under containerd (containerd 2.x
#                                  itself is built by scripts/upstream/build.sh: Debian ships 1.6)
#   buildah, debootstrap           build the images from the repository's Dockerfile without a registry
#   busybox-static                 the example apps' userland
#   gcc, libc6-dev                 the static pause program of the local pause image
#   iptables, iproute2, util-linux the CNI bridge and the driver's mounts
# Idempotent; runs `apt-get update` only when something is missing. Needs root (CI runs as root).
set -euo pipefail
PACKAGES=(runc containernetworking-plugins buildah debootstrap busybox-static gcc libc6-dev iptables iproute2 util-linux)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
[[ $(id -u) -eq 0 ]] || { echo "host-packages: root is needed to install: ${missing[*]}" >&2; exit 1; }
printf '[host-packages] installing %s\n' "${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
printf '[host-packages] installed\n' >&2
