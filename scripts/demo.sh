#!/usr/bin/env bash
# `make demo`: boots the demo's systemd test hosts (podman) and runs the
# collection's playbooks on them with inventories/demo. Safe to run again: hosts
# that are up are reused, and the playbooks converge to no changes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
network=botops-demo
hosts=(demo-bot1 demo-db1)
image=localhost/botops-host:12
log() { printf '\n\033[1mdemo:\033[0m %s\n' "$*"; }

podman network exists "$network" || podman network create "$network" >/dev/null
for name in "${hosts[@]}"; do
  if [[ $(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null) != true ]]; then
    podman rm -f "$name" >/dev/null 2>&1 || true
    podman run -d --name "$name" --hostname "$name" --network "$network" --systemd=always \
      --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 "$image" >/dev/null
    log "started host $name"
  fi
done
for name in "${hosts[@]}"; do
  podman exec "$name" systemctl is-system-running --wait >/dev/null 2>&1 || true
done

playbook() {
  log "ansible-playbook $* -i inventories/demo"
  ansible-playbook "$@" -i inventories/demo
}
playbook tests/playbooks/seed_bot_db.yml
playbook playbooks/check.yml
playbook playbooks/backup.yml
log "backup sets on demo-bot1"
podman exec demo-bot1 find /var/backups/botops -type f -printf '  %M %8s  %p\n' | sort -k3

cat <<INFO

$(printf '\033[1m')What the demo did$(printf '\033[0m')
  - booted two Debian 12 systemd hosts as podman containers on network '$network':
    ${hosts[*]}
  - created a sample bot database on demo-bot1 (/srv/samplebot/shared/data/bot_data.db)
  - ran playbooks/check.yml: integrity and foreign-key check, size and row counts
  - ran playbooks/backup.yml: an online, verified, zstd-compressed backup with its
    manifest in /var/backups/botops/<bot>/sqlite-bot_data/ (one more each run)

Where to look
  podman exec -it demo-bot1 bash                 a shell on the bot host
  podman exec demo-bot1 sh -c 'cat /var/backups/botops/*/*/*.manifest.json'   the manifests
  eval "\$(make -s env)"                         this shell gets the venv and the collection
  ansible-playbook playbooks/check.yml -i inventories/demo   then run a playbook again
  make demo-clean                                remove the demo hosts
INFO
