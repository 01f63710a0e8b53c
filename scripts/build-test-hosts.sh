#!/usr/bin/env bash
# Builds the local systemd test-host images once per machine (no registry is
# reachable): localhost/botops-base:12 from mmdebstrap, then localhost/botops-host:12
# from tests/hosts/Containerfile. Each image carries a label with the hash of its
# inputs; a matching label means the image is current and the build is skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/tests/hosts/containers.conf}
log() { printf '\033[1mtest-hosts:\033[0m %s\n' "$*" >&2; }

base=localhost/botops-base:12
host=localhost/botops-host:12
base_key=$(cat "$0" | sha256sum | cut -c1-12)
host_key=$(cat "$0" "$here/tests/hosts/Containerfile" | sha256sum | cut -c1-12)

label() { podman image inspect --format '{{ index .Labels "botops.key" }}' "$1" 2>/dev/null || true; }

if [[ $(label "$base") != "$base_key" ]]; then
  log "building $base with mmdebstrap (about 70 s)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # The machine's own apt sources, so the image uses the same reachable mirror.
  sources=/etc/apt/sources.list.d/debian.sources
  [[ -f $sources ]] || sources=/etc/apt/sources.list
  # Keep the apt lists: with empty lists `apt: cache_valid_time` thinks the cache
  # is fresh and finds no packages.
  # shellcheck disable=SC2016 # "$1" is expanded by mmdebstrap's hook, not here
  mmdebstrap --quiet --variant=minbase --skip=cleanup/apt/lists \
    --include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,ca-certificates,procps,openssh-server \
    --customize-hook='rm -f "$1"/etc/hostname; : > "$1"/etc/machine-id' \
    bookworm "$work/rootfs.tar" "$sources"
  podman import --quiet \
    --change 'CMD ["/lib/systemd/systemd"]' --change 'STOPSIGNAL SIGRTMIN+3' \
    --change "LABEL botops.key=$base_key" \
    "$work/rootfs.tar" "$base" >/dev/null
else
  log "$base is current (skipped)"
fi

if [[ $(label "$host") != "$host_key" ]]; then
  log "building $host (about 30 s)"
  podman build --quiet --label "botops.key=$host_key" -t "$host" \
    -f "$here/tests/hosts/Containerfile" "$here/tests/hosts" >/dev/null
else
  log "$host is current (skipped)"
fi
