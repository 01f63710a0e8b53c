#!/usr/bin/env bash
# Idempotent, cached set-up for developing and testing botops.runbook.
#   scripts/setup.sh            everything (packages, venv, ansible-test bootstrap, images)
#   scripts/setup.sh packages   Debian packages only (then the command check)
#   scripts/setup.sh check      only check that every command the project runs exists
#   scripts/setup.sh venv       the controller virtualenv only
#   scripts/setup.sh oldest-venv  the virtualenv of the oldest ansible-core claimed
#   scripts/setup.sh images     the systemd test-host images only
#   scripts/setup.sh ssh-key    the throwaway key pair that reaches the test hosts over ssh (ssh-key-path prints it)
#   scripts/setup.sh venv-path  print where the virtualenv lives
#   scripts/setup.sh oldest-venv-path  print where the oldest-core virtualenv lives
# Everything is made once per machine (keyed by the content of its inputs) and a
# second run skips it: the venv is keyed by requirements-dev.txt, the oldest-core
# one by its own pins (below), the images by the files under tests/hosts/.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${BOTOPS_CACHE:-/var/cache/botops-dev}
python=${BOTOPS_PYTHON:-python3}

# What the project and its tests run on this machine: one table, read twice. The
# packages in its first column are installed; then every command in the second
# must exist, or set-up stops naming the command and the package that provides it
# (a missing tool is a one-line error here, not a mystery an hour into the tests).
# A command is looked up on PATH, or at its absolute path, or (pg/NAME) in the
# newest PostgreSQL's bin directory, where Debian keeps the server programs.
requirements=$(cat <<'TABLE'
postgresql           | pg/initdb pg/pg_ctl pg/postgres pg/pgbench             | the tests' private PostgreSQL servers
postgresql-client-15 | pg/pg_dump pg/pg_restore pg/psql pg/createdb pg/dropdb | the PostgreSQL modules and the benchmark
postgresql-contrib   | -                                                      | amcheck in the tests' servers
sqlite3              | sqlite3                                                | the benchmark's baseline (.backup)
zstd                 | zstd                                                   | the benchmark's baseline
age                  | age age-keygen                                         | encrypted backup sets (the tests make their own keys)
podman               | podman                                                 | the systemd test hosts (Molecule, the demo)
runc                 | runc                                                   | the container runtime (crun fails in this sandbox)
netavark             | /usr/lib/podman/netavark                               | podman networks (tests/hosts/containers.conf)
aardvark-dns         | /usr/lib/podman/aardvark-dns                           | test hosts resolving each other by name
iptables             | iptables ip6tables                                     | netavark, for every network and image build
mmdebstrap           | mmdebstrap                                             | the base image of the test hosts
uidmap               | newuidmap newgidmap                                    | podman
slirp4netns          | slirp4netns                                            | podman
fuse-overlayfs       | fuse-overlayfs                                         | podman's storage
openssh-client       | ssh ssh-keygen                                         | Ansible's ssh connection
git                  | git                                                    | the sanity tree (git ls-files), deploys from git
make                 | make                                                   | every entry point
util-linux           | runuser                                                | tests run as the postgres and nobody users
mount                | mount umount                                           | disk-full and read-only tests (tmpfs)
strace               | strace                                                 | the durability tests (the order of writes, fsyncs and renames)
python3              | /usr/bin/python3                                       | tests that run a module as another user
python3-prometheus-client | -                                                 | the collector's tests (Debian's python3, as on a bot host)
prometheus           | promtool                                               | validating and unit-testing the alert rules
logrotate            | /usr/sbin/logrotate                                    | the logrotate role's validation tests
TABLE
)
field() { awk -F' *[|] *' -v n="$1" '{print $n}' <<<"$requirements"; }
mapfile -t packages < <(field 1)

# `make integration-oldest`: the integration targets on the oldest ansible-core that
# meta/runtime.yml's requires_ansible claims, with the `ansible` package of that
# generation (its community.postgresql 3.9.0 is galaxy.yml's minimum), as an AWX
# execution environment with an older core has them. The modules' own libraries
# are requirements-dev.txt's pins (oldest_libraries). tests/unit/test_metadata.py
# reads the ansible-core pin on the next line.
oldest_requirements=(ansible-core==2.17.14 ansible==10.7.0)
oldest_libraries=(PyYAML psycopg2-binary zstandard)

key() { cat "$@" | sha256sum | cut -c1-12; }
venv_dir() { echo "$cache/venv-$(key "$here/requirements-dev.txt")"; }
# Everything the oldest-core venv installs, one pin a line.
oldest_pins() {
  local name
  printf '%s\n' "${oldest_requirements[@]}"
  for name in "${oldest_libraries[@]}"; do
    grep -oiE "^$name==[^ #]+" "$here/requirements-dev.txt" \
      || { log "requirements-dev.txt pins no $name (the oldest-core venv takes its pin)"; return 1; }
  done
}
oldest_venv_dir() { echo "$cache/oldest-$(key <(oldest_pins))"; }
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

# Newest PostgreSQL's bin directory (as tests/support/pgserver.py picks it).
pg_bindir() { find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -1; }

# Every command of the table exists; else stop, naming each missing one and its package.
check_commands() {
  local package commands purpose command path pgbin absent=0
  pgbin=$(pg_bindir)
  while IFS='|' read -r package commands purpose; do
    package=${package// /} purpose=${purpose#"${purpose%%[! ]*}"}
    for command in $commands; do
      case $command in
        -) continue ;;
        pg/*) path=${pgbin:+$pgbin/${command#pg/}} ;;
        /*) path=$command ;;
        *) path=$(command -v "$command" || true) ;;
      esac
      if [[ -z $path || ! -x $path ]]; then
        log "missing command '${command#pg/}' from Debian package $package (needed for $purpose): apt-get install $package"
        absent=1
      fi
    done
  done <<<"$requirements"
  ((absent == 0)) || { log "set-up incomplete: install the packages named above"; exit 1; }
  log "every command the project runs is present"
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

ensure_oldest_venv() {
  local venv pins
  mapfile -t pins < <(oldest_pins)
  ((${#pins[@]} == ${#oldest_requirements[@]} + ${#oldest_libraries[@]})) || exit 1
  venv=$(oldest_venv_dir)
  if [[ -f $venv/.complete ]]; then
    log "virtualenv $venv present (skipped)"
    return
  fi
  log "creating virtualenv $venv (${pins[*]})"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "${pins[@]}" 2> >(grep -v '^WARNING: Location' >&2)
  touch "$venv/.complete"
  find "$cache" -maxdepth 1 -name 'oldest-*' ! -path "$venv" -exec rm -rf {} +
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

# A throwaway key pair for reaching the test hosts over ssh as root (the demo and the
# Molecule scenarios put its public half into the hosts); never a real key.
ssh_key_path() { echo "$cache/ssh/id_ed25519"; }
ensure_ssh_key() {
  local key
  key=$(ssh_key_path)
  if [[ -f $key && -f $key.pub ]]; then
    log "test-host ssh key $key present (skipped)"
    return
  fi
  mkdir -p "$(dirname "$key")"
  chmod 0700 "$(dirname "$key")"
  rm -f "$key" "$key.pub"
  ssh-keygen -q -t ed25519 -N '' -C botops-test-hosts -f "$key"
  log "created the test-host ssh key $key"
}

case "${1:-all}" in
  packages) ensure_packages; check_commands ;;
  check) check_commands ;;
  venv) ensure_venv; ensure_ansible_test_bootstrap ;;
  images) ensure_images ;;
  ssh-key) ensure_ssh_key ;;
  ssh-key-path) ssh_key_path ;;
  venv-path) venv_dir ;;
  oldest-venv) ensure_oldest_venv ;;
  oldest-venv-path) oldest_venv_dir ;;
  all)
    ensure_packages
    check_commands
    ensure_venv
    ensure_ansible_test_bootstrap
    ensure_oldest_venv
    ensure_images
    ensure_ssh_key
    ;;
  *) echo "usage: $0 [all|packages|check|venv|oldest-venv|images|ssh-key|venv-path|oldest-venv-path|ssh-key-path]" >&2; exit 2 ;;
esac
