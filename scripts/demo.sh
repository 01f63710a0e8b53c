#!/usr/bin/env bash
# `make demo`: boots the demo's systemd test hosts (podman) and runs the
# collection's playbooks on them with inventories/demo. Safe to run again: hosts
# that are up are reused, and the playbooks converge to no changes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
network=botops-demo
# A fixed subnet, so the inventory names each host's address (ssh, as a user's does).
subnet=10.123.1.0/24
declare -A address=([demo-bot1]=10.123.1.11 [demo-db1]=10.123.1.12)
hosts=(demo-bot1 demo-db1)
image=localhost/botops-host:12
key=$(scripts/setup.sh ssh-key-path)
log() { printf '\n\033[1mdemo:\033[0m %s\n' "$*"; }

scripts/setup.sh ssh-key >/dev/null
if podman network exists "$network" \
   && [[ $(podman network inspect --format '{{range .Subnets}}{{.Subnet}}{{end}}' "$network") != "$subnet" ]]; then
  log "recreating network $network on $subnet"
  podman rm -f "${hosts[@]}" >/dev/null 2>&1 || true
  podman network rm "$network" >/dev/null
fi
podman network exists "$network" || podman network create --subnet "$subnet" "$network" >/dev/null
for name in "${hosts[@]}"; do
  if [[ $(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null) != true ]]; then
    podman rm -f "$name" >/dev/null 2>&1 || true
    podman run -d --name "$name" --hostname "$name" --network "$network" --ip "${address[$name]}" --systemd=always \
      --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 "$image" >/dev/null
    log "started host $name at ${address[$name]}"
  fi
done
for name in "${hosts[@]}"; do
  podman exec "$name" systemctl is-system-running --wait >/dev/null 2>&1 || true
  # The throwaway key of `make setup` lets the inventory reach the host over ssh as root.
  podman exec -i "$name" sh -c 'umask 077; mkdir -p /root/.ssh; cat > /root/.ssh/authorized_keys' < "$key.pub"
done
# demo-db1 is the PostgreSQL bot's database server (the deploy role creates its database).
podman exec demo-db1 systemctl enable --now postgresql >/dev/null 2>&1

playbook() {
  log "ansible-playbook $* -i inventories/demo"
  ansible-playbook "$@" -i inventories/demo
}
log "building the sample bot's release archives"
python3 examples/samplebot/build.py
playbook playbooks/deploy.yml
log "the sample bot on demo-bot1 answers"
podman exec demo-bot1 curl -s http://127.0.0.1:8080/health; echo
playbook playbooks/logrotate.yml
playbook playbooks/monitoring.yml
playbook playbooks/check.yml
playbook playbooks/backup.yml
playbook playbooks/backup_offsite.yml
playbook playbooks/restore_drill.yml --limit bots
log "backup sets on demo-bot1"
podman exec demo-bot1 find /var/backups/botops -type f -printf '  %M %8s  %p\n' | sort -k3
log "off-host copies on demo-db1"
podman exec demo-db1 find /var/backups/botops-offsite -type f -printf '  %M %8s  %p\n' | sort -k3
log "restore drill record on demo-bot1"
podman exec demo-bot1 cat /var/lib/botops/state/last_drill.json
log "the bot's metrics on demo-bot1 (node exporter, :9100/metrics)"
podman exec demo-bot1 curl -sf http://127.0.0.1:9100/metrics | grep '^botops_' | grep -v '_errors_total.* 0.0$'
log "Prometheus on demo-db1: scrape targets and alerts"
podman exec demo-db1 curl -sf http://127.0.0.1:9090/api/v1/targets \
  | python3 -c 'import json,sys; [print("  %s %s" % (t["scrapeUrl"], t["health"])) for t in json.load(sys.stdin)["data"]["activeTargets"]]'
podman exec demo-db1 curl -sf http://127.0.0.1:9090/api/v1/alerts \
  | python3 -c 'import json,sys; a=json.load(sys.stdin)["data"]["alerts"]; print("  firing: %s" % (", ".join(sorted({x["labels"]["alertname"] for x in a if x["state"] == "firing"})) or "none"))'

cat <<INFO

$(printf '\033[1m')What the demo did$(printf '\033[0m')
  - booted two Debian 12 systemd hosts as podman containers on network '$network':
    ${hosts[*]}
  - ran playbooks/deploy.yml: the sample bot (examples/samplebot, release 1.0.0) in
    /srv/samplebot/releases/1.0.0 behind the current link, its systemd unit, a
    migrated SQLite database in /srv/samplebot/shared/data/bot_data.db, a health
    gate (unit active, /health answers ok, the log says "Bot is ready")
  - ran playbooks/logrotate.yml: /etc/logrotate.d/botops-samplebot, accepted by logrotate -d first
  - ran playbooks/monitoring.yml: node exporter and botops-collect on demo-bot1 (the
    botops_* metrics above), Prometheus on demo-db1 with the alert rules
  - ran playbooks/check.yml: integrity and foreign-key check, size and row counts
  - ran playbooks/backup.yml: an online, verified, zstd-compressed backup with its
    manifest in /var/backups/botops/<bot>/sqlite-bot_data/ (one more each run)
  - ran playbooks/backup_offsite.yml: new sets copied to demo-db1, sha256 checked
    there, retention (keep_daily 30, keep_monthly 12) applied there
  - ran playbooks/restore_drill.yml: the newest backup restored into scratch space,
    checked and compared with its manifest; outcome in /var/lib/botops/state/last_drill.json

Where to look
  podman exec -it demo-bot1 bash                 a shell on the bot host
  podman exec demo-bot1 sh -c 'cat /var/backups/botops/*/*/*.manifest.json'   the manifests
  eval "\$(make -s env)"                         this shell gets the venv and the collection
  ansible-playbook playbooks/check.yml -i inventories/demo   then run a playbook again
  ansible-playbook playbooks/deploy.yml -i inventories/demo -e deploy_version=1.1.0   a release with a migration
  ansible-playbook playbooks/rollback.yml -i inventories/demo -e rollback_restore_database=true   and back
  ansible-playbook playbooks/deploy.yml -i inventories/demo -e deploy_version=1.2.0   a broken one: rolls itself back
  podman exec demo-bot1 curl -s localhost:9100/metrics | grep ^botops_   the bot's metrics
  podman exec demo-db1 curl -s localhost:9090/api/v1/alerts      what Prometheus sees
  make demo-clean                                remove the demo hosts
INFO
