#!/usr/bin/env bash
# Idempotent, cached set-up for developing and testing botops.runbook.
#   scripts/setup.sh            everything (packages, venv, ansible-test bootstrap, images)
#   scripts/setup.sh packages   Debian packages only
#   scripts/setup.sh venv       the controller virtualenv only
#   scripts/setup.sh images     the systemd test-host images only
#   scripts/setup.sh venv-path  print where the virtualenv lives
# Everything is made once per machine (keyed by the content of its inputs) and a
# second run skips it: the venv is keyed by requirements-dev.txt, the images by
# the files under tests/hosts/.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${BOTOPS_CACHE:-/var/cache/botops-dev}
python=${BOTOPS_PYTHON:-python3}

# Debian packages the tests and the demo need on the machine itself.
packages=(
  postgresql postgresql-contrib   # PostgreSQL 15: the harness starts its own server
  sqlite3 zstd                    # the benchmark's baselines (`.backup`, zstd)
  age                             # encrypted backup sets (tests)
  podman runc mmdebstrap uidmap slirp4netns fuse-overlayfs  # systemd test hosts
  netavark aardvark-dns           # podman networks where hosts resolve each other by name
  openssh-client git make
)

key() { cat "$@" | sha256sum | cut -c1-12; }
venv_dir() { echo "$cache/venv-$(key "$here/requirements-dev.txt")"; }
log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

ensure_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    [[ $p == \#* ]] && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "Debian packages present (skipped)"
    return
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a cluster on install; our tests start their own servers and
  # never depend on this one, so it is left as the package made it.
}

ensure_venv() {
  local venv
  venv=$(venv_dir)
  if [[ -f $venv/.complete ]]; then
    log "virtualenv $venv present (skipped)"
    return
  fi
  log "creating virtualenv $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  # pip.conf here may list local find-links that do not exist: drop that noise.
  "$venv/bin/pip" install -q -r "$here/requirements-dev.txt" 2> >(grep -v '^WARNING: Location' >&2)
  touch "$venv/.complete"
  # Older venvs of this machine were for other pins: drop them.
  find "$cache" -maxdepth 1 -name 'venv-*' ! -path "$venv" -exec rm -rf {} +
}

# ansible-test sanity wants to download get-pip.py from a host that is not
# reachable here; it first looks for a cached copy, which we provide. It installs
# pip from the interpreter's bundled wheel, then the pip version asked for.
ensure_ansible_test_bootstrap() {
  local venv pipver target
  venv=$(venv_dir)
  pipver=$("$venv/bin/python" - <<'EOF'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([^']+)'", src.read_text()).group(1))  # get_venv_packages()
EOF
)
  target="$HOME/.ansible/test/cache/get_pip_${pipver//./_}.py"
  if [[ -f $target ]]; then
    log "ansible-test pip bootstrap present (skipped)"
    return
  fi
  mkdir -p "$(dirname "$target")"
  cp "$here/scripts/get_pip_offline.py" "$target"
  log "installed ansible-test pip bootstrap at $target"
}

ensure_images() {
  "$here/scripts/build-test-hosts.sh"
}

case "${1:-all}" in
  packages) ensure_packages ;;
  venv) ensure_venv; ensure_ansible_test_bootstrap ;;
  images) ensure_images ;;
  venv-path) venv_dir ;;
  all)
    ensure_packages
    ensure_venv
    ensure_ansible_test_bootstrap
    ensure_images
    ;;
  *) echo "usage: $0 [all|packages|venv|images|venv-path]" >&2; exit 2 ;;
esac
