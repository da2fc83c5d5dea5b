#!/usr/bin/env bash
# Installs what davit needs on a Debian 12 machine, as root; safe to run again (skips what is already there).
#   scripts/setup.sh runtime   Deno and the packages the daemon uses (OCI runtimes, CNI plugins, iptables)
#   scripts/setup.sh test      the above plus what the tests use (a registry, skopeo, umoci, busybox, ...)
set -euo pipefail

DENO_VERSION=2.9.6
want=${1:-runtime}

runtime_pkgs=(runc crun runsc containernetworking-plugins iptables iproute2 ca-certificates)
test_pkgs=(docker-registry skopeo umoci busybox-static openssl apache2-utils zstd containerd conmon util-linux procps attr)

pkgs=("${runtime_pkgs[@]}")
[ "$want" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v deno >/dev/null 2>&1 || [ "$(deno --version | awk 'NR==1{print $2}')" != "$DENO_VERSION" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: installing npm" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  fi
  echo "setup: installing deno $DENO_VERSION from npm" >&2
  npm install -g --silent "deno@$DENO_VERSION" >/dev/null 2>&1 || npm install -g "deno@$DENO_VERSION"
fi
deno --version | head -1 >&2
