# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""botops-collect: the state botops.runbook writes on a bot host, as Prometheus
metrics in one file for node exporter's textfile collector.

It reads only what the collection already writes - backup manifests (through
the catalog code that backup_info uses), last_drill.json, last_check.json,
last_offsite.json, each bot's deploy ledger and release link, systemd's unit
properties, the bot's /health and its log - and never opens a bot database for
writing (a PostgreSQL size is one read-only query as the monitoring role).

A run: read the saved state; ask every source, each on its own (a failing source
adds one to botops_collector_errors_total{source} and gives no metrics of its
own, never stale ones); save the state atomically (log offsets and totals, the
error counts, the catalog cache); then write the metrics file atomically
(prometheus_client's write_to_textfile: a temp file, then rename). The state goes
first: a run killed between the two writes loses one file of metrics, never
counts a log line twice. A run that cannot write its file exits non-zero and
leaves the last file, whose botops_collector_last_run_timestamp_seconds then ages
(BotopsCollectorStale).

Cheap on a big host: a series directory whose inode and mtime did not change
since the last run is not read again (a new set, a pruned one and a rewritten
manifest all rename in that directory), and a log is read from its saved offset.
"""

import argparse
import datetime
import fcntl
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

import botops_logcount

# The collection's own code for reading backup sets (as backup_info reads them),
# shipped beside this file under ansible_collections/botops/runbook/plugins.
from ansible_collections.botops.runbook.plugins.module_utils import _catalog  # noqa: E402
from ansible_collections.botops.runbook.plugins.module_utils._files import write_text_atomically  # noqa: E402

STATE_VERSION = 1
SOURCES = ("state", "backups", "offsite", "restore_drill", "integrity_check", "database_size", "systemd",
           "health", "ledger", "logs")

# name: (type, help, labels). The names are the collection's interface (alerts and
# dashboards use them); counters get their _total from prometheus_client.
METRICS = {
    "botops_backup_last_success_timestamp_seconds": (
        "gauge", "When the newest verified backup set of the database was taken (its manifest's created_at).",
        ("bot", "engine", "database")),
    "botops_backup_last_size_bytes": (
        "gauge", "Size on disk of the newest verified backup set.", ("bot", "engine", "database")),
    "botops_backup_last_duration_seconds": (
        "gauge", "Seconds the newest verified backup took, from its start to the end of its verification.",
        ("bot", "engine", "database")),
    "botops_backup_sets": ("gauge", "Backup sets kept for the database.", ("bot", "engine", "database")),
    "botops_offsite_last_copy_timestamp_seconds": (
        "gauge", "When a backup set of the database last arrived verified on the backup host.",
        ("bot", "engine", "database")),
    "botops_restore_drill_last_run_timestamp_seconds": (
        "gauge", "When the last restore drill of the database ran.", ("bot", "engine", "database")),
    "botops_restore_drill_last_success_timestamp_seconds": (
        "gauge", "When a restore drill of the database last passed.", ("bot", "engine", "database")),
    "botops_integrity_check_last_run_timestamp_seconds": (
        "gauge", "When the database's integrity was last checked.", ("bot", "engine", "database")),
    "botops_integrity_check_ok": (
        "gauge", "1 if the last integrity check passed, else 0.", ("bot", "engine", "database")),
    "botops_database_size_bytes": (
        "gauge", "Size of the database (SQLite: the file and its WAL; PostgreSQL: pg_database_size).",
        ("bot", "engine", "database")),
    "botops_bot_up": ("gauge", "1 if the bot's systemd unit is active, else 0.", ("bot",)),
    "botops_bot_restarts_total": ("counter", "Restarts of the bot's unit by systemd (NRestarts).", ("bot",)),
    "botops_bot_memory_bytes": ("gauge", "Memory of the bot's unit (MemoryCurrent).", ("bot",)),
    "botops_bot_health_ok": ("gauge", "1 if the bot's /health answered as expected, else 0.", ("bot",)),
    "botops_bot_health_duration_seconds": ("gauge", "Seconds the bot's /health took to answer.", ("bot",)),
    "botops_bot_release_info": ("gauge", "The bot's live release (value 1).", ("bot", "release")),
    "botops_bot_deploy_timestamp_seconds": (
        "gauge", "When the last successful deploy or rollback of the bot finished.", ("bot",)),
    "botops_bot_log_lines_total": ("counter", "ERROR and CRITICAL lines in the bot's log.", ("bot", "level")),
    "botops_collector_last_run_timestamp_seconds": ("gauge", "When botops-collect last ran to the end.", ()),
    "botops_collector_errors_total": (
        "counter", "Runs of botops-collect in which a source failed, by source.", ("source",)),
}


class Samples(object):
    """The metrics of one run: name -> [(labels, value)]."""

    def __init__(self):
        self.samples = {name: [] for name in METRICS}

    def add(self, name, value, **labels):
        if value is None:
            return
        self.samples[name].append((tuple(str(labels[key]) for key in METRICS[name][2]), float(value)))

    def collect(self):
        for name, (kind, text, labels) in METRICS.items():
            if kind == "counter":
                family = CounterMetricFamily(name[:-len("_total")], text, labels=labels)
            else:
                family = GaugeMetricFamily(name, text, labels=labels)
            for values, value in self.samples[name]:
                family.add_metric(list(values), value)
            yield family


def timestamp(text):
    """A UTC time as the collection writes it (2026-11-22T03:15:00Z), or a number."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if not text:
        return None
    return _catalog.parse_time(text).timestamp()


def read_json(path, default=None):
    """The JSON document at ``path``; ``default`` when there is no file."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


def databases(config):
    """(bot, engine, database, entry) of every database the configuration names."""
    for bot in config.get("bots", []):
        for entry in bot.get("databases", []):
            name = entry.get("database") or os.path.splitext(os.path.basename(entry["path"]))[0]
            yield bot["name"], entry["engine"], name, entry


# --- sources: each reads one kind of state; an exception is that source's error --


def source_backups(config, state, out, now):
    """Every series under the backup root, through the catalog; a series directory
    unchanged since the last run is taken from the cache. A set the catalog cannot
    use (a corrupt manifest) is an error of this source; the others still count."""
    root = config.get("backup_root", "/var/backups/botops")
    cache, fresh, problems = state.setdefault("catalog", {}), {}, []
    if not os.path.isdir(root):
        state["catalog"] = {}
        return
    for bot in sorted(os.listdir(root)):
        bot_dir = os.path.join(root, bot)
        if bot.startswith(".") or not os.path.isdir(bot_dir):
            continue
        for name in sorted(os.listdir(bot_dir)):
            directory = os.path.join(bot_dir, name)
            if name.startswith(".") or not os.path.isdir(directory):
                continue
            info = os.stat(directory)
            key = [info.st_ino, info.st_mtime_ns]
            entry = cache.get(directory)
            if not isinstance(entry, dict) or entry.get("key") != key:
                entry = {"key": key, "series": summarize_series(root, directory)}
            # A directory changed within the clock's granularity could change again
            # with the same mtime: read it again next run.
            if now - info.st_mtime > 2:
                fresh[directory] = entry
            problems += entry["series"]["problems"]
            for series in entry["series"]["series"]:
                labels = dict(bot=series["bot"], engine=series["engine"], database=series["database"])
                out.add("botops_backup_sets", series["count"], **labels)
                newest = series["newest_verified"]
                if newest:
                    out.add("botops_backup_last_success_timestamp_seconds", newest["created_at"], **labels)
                    out.add("botops_backup_last_size_bytes", newest["size"], **labels)
                    out.add("botops_backup_last_duration_seconds", newest["duration"], **labels)
    state["catalog"] = fresh
    if problems:
        raise ValueError("; ".join(problems[:3]) + (" (and %d more)" % (len(problems) - 3) if len(problems) > 3 else ""))


def summarize_series(root, directory):
    """What the metrics need of one series directory, as JSON values. Only the
    series whose own directory this is count (a copy such as sqlite-bot_data.bak
    would give a second set of the same labels): the others are problems."""
    found = _catalog.scan(directory, recurse=False)
    series = []
    for series_id, sets in _catalog.by_series(found["sets"]).items():
        if os.path.join(root, series_id) != directory:
            found["problems"].append("directory '%s' holds sets of series %s, whose directory is '%s': a copy? "
                                     "they are not counted" % (directory, series_id, os.path.join(root, series_id)))
            continue
        verified = [s for s in sets if s["verified"] and s["complete"]]
        newest = verified[0] if verified else None
        series.append({
            "bot": sets[0]["series"]["bot"], "engine": sets[0]["series"]["engine"],
            "database": sets[0]["series"]["database"], "count": len([s for s in sets if s["complete"]]),
            "newest_verified": newest and {"created_at": newest["created_at"].timestamp(), "size": newest["size"],
                                           "duration": newest["duration"]},
        })
    return {"series": series, "problems": found["problems"]}


def _records(path, key):
    document = read_json(path, {key: {}})
    records = document.get(key) if isinstance(document, dict) else None
    if not isinstance(records, dict):
        raise ValueError("%s is not a %s record (no %r object)" % (path, os.path.basename(path), key))
    for record in records.values():
        yield dict(bot=record["bot"], engine=record["engine"], database=record["database"]), record


def source_offsite(config, state, out, now):
    for labels, record in _records(os.path.join(config["state_dir"], "last_offsite.json"), "databases"):
        out.add("botops_offsite_last_copy_timestamp_seconds", timestamp(record.get("last_copy")), **labels)


def source_restore_drill(config, state, out, now):
    for labels, record in _records(os.path.join(config["state_dir"], "last_drill.json"), "databases"):
        out.add("botops_restore_drill_last_run_timestamp_seconds", timestamp(record.get("last_run")), **labels)
        out.add("botops_restore_drill_last_success_timestamp_seconds", timestamp(record.get("last_success")),
                **labels)


def source_integrity_check(config, state, out, now):
    for labels, record in _records(os.path.join(config["state_dir"], "last_check.json"), "databases"):
        out.add("botops_integrity_check_last_run_timestamp_seconds", timestamp(record.get("last_run")), **labels)
        out.add("botops_integrity_check_ok", 1 if record.get("ok") else 0, **labels)


def source_database_size(config, state, out, now):
    failed = []
    for bot, engine, name, entry in databases(config):
        labels = dict(bot=bot, engine=engine, database=name)
        try:
            if engine == "sqlite":
                size = os.stat(entry["path"]).st_size
                try:
                    size += os.stat(entry["path"] + "-wal").st_size
                except FileNotFoundError:
                    pass
            else:
                size = postgresql_size(config, name)
        except Exception as exc:  # pylint: disable=broad-except
            failed.append("%s %s: %s" % (engine, name, exc))
            continue
        out.add("botops_database_size_bytes", size, **labels)
    if failed:
        raise ValueError("; ".join(failed))


def postgresql_size(config, name):
    """pg_database_size, in a read-only session as the monitoring role (pg_monitor);
    the password comes from the role's 0600 passfile, never from this configuration."""
    import psycopg2  # pylint: disable=import-outside-toplevel
    pg = config["postgresql"]
    conn = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], dbname=name,
                            passfile=pg["passfile"], connect_timeout=5,
                            options="-c default_transaction_read_only=on", application_name="botops-collect")
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return cursor.fetchone()[0]
    finally:
        conn.close()


def each_bot(config, measure):
    """``measure(bot)`` for every bot; one bot's failure does not hide the others'
    metrics, and is raised (as this source's error) once all were asked."""
    failed = []
    for bot in config.get("bots", []):
        try:
            measure(bot)
        except Exception as exc:  # pylint: disable=broad-except
            failed.append("bot %s: %s" % (bot["name"], exc))
    if failed:
        raise ValueError("; ".join(failed))


def unit_properties(config, unit):
    output = subprocess.run(
        [config.get("systemctl", "systemctl"), "show", unit, "--property=LoadState,ActiveState,NRestarts,MemoryCurrent,ControlGroup,MainPID"],
        check=True, capture_output=True, text=True, timeout=10).stdout
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def source_systemd(config, state, out, now):
    def measure(bot):
        unit = bot.get("unit") or "%s.service" % bot["name"]
        props = unit_properties(config, unit)
        if props.get("LoadState") != "loaded":
            # Down as far as anyone can tell (masked, removed): BotopsBotDown must see it.
            out.add("botops_bot_up", 0, bot=bot["name"])
            raise ValueError("unit %s is %s" % (unit, props.get("LoadState") or "unknown to systemd"))
        out.add("botops_bot_up", 1 if props.get("ActiveState") == "active" else 0, bot=bot["name"])
        if props.get("NRestarts", "").isdigit():
            out.add("botops_bot_restarts_total", int(props["NRestarts"]), bot=bot["name"])
        out.add("botops_bot_memory_bytes", unit_memory(props), bot=bot["name"])
    each_bot(config, measure)


def unit_memory(props):
    """systemd's MemoryCurrent; where memory accounting is not delegated (some
    containers say "[not set]"), the resident memory of the unit's processes, read
    from its cgroup's process list (or its main process alone)."""
    if props.get("MemoryCurrent", "").isdigit():
        return int(props["MemoryCurrent"])
    pids = []
    group = props.get("ControlGroup")
    if group:
        try:
            with open("/sys/fs/cgroup%s/cgroup.procs" % group) as handle:
                pids = [line.strip() for line in handle if line.strip()]
        except OSError:
            pass
    if not pids and props.get("MainPID", "0") not in ("", "0"):
        pids = [props["MainPID"]]
    total = None
    for pid in pids:
        try:
            with open("/proc/%s/status" % pid) as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total = (total or 0) + int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue  # gone since the list was read
    return total


def source_health(config, state, out, now):
    """GET each bot's /health: ok when it answers 200 and its body holds
    health_expect, within health_timeout seconds for the whole answer (a server
    that drips bytes is cut off). Anything else is health_ok 0, not an error."""
    timeout = float(config.get("health_timeout", 5))
    for bot in config.get("bots", []):
        url = bot.get("health_url")
        if not url:
            continue
        started = time.monotonic()
        ok = False
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = b""
                while len(body) < 65536 and time.monotonic() - started < timeout:
                    chunk = response.read1(4096)
                    if not chunk:
                        break
                    body += chunk
                else:
                    raise TimeoutError("no whole answer in %.0f s" % timeout)
                ok = response.status == 200 and (bot.get("health_expect") or "") in body.decode("utf-8", "replace")
        except Exception:  # pylint: disable=broad-except
            ok = False  # refused, reset, not HTTP, too slow: unhealthy, whatever the way
        out.add("botops_bot_health_ok", 1 if ok else 0, bot=bot["name"])
        out.add("botops_bot_health_duration_seconds", round(time.monotonic() - started, 6), bot=bot["name"])


def source_ledger(config, state, out, now):
    def measure(bot):
        root = bot.get("root")
        if not root:
            return
        current = os.path.join(root, "current")
        if os.path.islink(current):
            out.add("botops_bot_release_info", 1, bot=bot["name"],
                    release=os.path.basename(os.readlink(current).rstrip("/")))
        last = None
        ledger = os.path.join(root, "ledger.jsonl")
        if os.path.exists(ledger):
            with open(ledger) as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        raise ValueError("%s line %d is not JSON" % (ledger, number))
                    if isinstance(entry, dict) and entry.get("outcome") == "success":
                        last = entry
        if last:
            out.add("botops_bot_deploy_timestamp_seconds",
                    timestamp(last.get("finished_at") or last.get("started_at")), bot=bot["name"])
    each_bot(config, measure)


def source_logs(config, state, out, now):
    """Per bot, totals that only go up: each run adds what every log gained since
    the last one (a log whose saved state was lost, or which was truncated before
    this run saw it, adds only what it reads now; a log dropped from the list adds
    nothing). One bad log is this source's error; the others still count."""
    saved, totals = state.setdefault("logs", {}), state.setdefault("log_totals", {})
    kept, failed = {}, []
    for bot in config.get("bots", []):
        bot_totals = totals.setdefault(bot["name"], {})
        for path in bot.get("logs", []):
            previous = saved.get(path)
            try:
                log_state = botops_logcount.from_json(previous) if previous is not None else botops_logcount.new_state()
            except ValueError as exc:
                failed.append("%s: %s; counting it again from now" % (path, exc))
                log_state, previous = botops_logcount.new_state(), None
            before = dict(log_state["counts"])
            try:
                botops_logcount.update(path, log_state)
            except (botops_logcount.NotALog, OSError) as exc:
                failed.append(str(exc))
                if previous is not None:
                    kept[path] = previous
                continue
            kept[path] = botops_logcount.to_json(log_state)
            for level in botops_logcount.LEVELS:
                gained = log_state["counts"].get(level, 0) - before.get(level, 0)
                bot_totals[level] = int(bot_totals.get(level, 0)) + max(0, gained)
        if bot.get("logs"):
            for level in botops_logcount.LEVELS:
                out.add("botops_bot_log_lines_total", bot_totals.get(level, 0), bot=bot["name"], level=level)
    state["logs"] = kept
    if failed:
        raise ValueError("; ".join(failed))


SECTIONS = {"catalog": dict, "logs": dict, "log_totals": dict, "errors": dict}


def load_state(path, errors):
    try:
        state = read_json(path, {"version": STATE_VERSION})
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError("not a version %d state" % STATE_VERSION)
        for section, kind in SECTIONS.items():
            if not isinstance(state.get(section, kind()), kind):
                errors.append(("state", "%s: section %r is not a %s; starting it again" % (
                    path, section, kind.__name__)))
                state[section] = kind()
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in state.get("errors", {}).values()):
            errors.append(("state", "%s: the error counts are not numbers; starting them again" % path))
            state["errors"] = {}
        return state
    except (OSError, ValueError) as exc:
        errors.append(("state", "%s cannot be used (%s); starting again from nothing" % (path, exc)))
        return {"version": STATE_VERSION}


def collect(config, now=None):
    """One run; returns (samples, state, [(source, message)])."""
    now = now or time.time()
    problems = []
    state = load_state(config["state_file"], problems)
    counts = state.get("errors") if isinstance(state.get("errors"), dict) else {}
    out = Samples()
    for name in SOURCES[1:]:
        try:
            globals()["source_" + name](config, state, out, now)
        except Exception as exc:  # pylint: disable=broad-except
            problems.append((name, "%s: %s" % (type(exc).__name__, exc)))
    for source, _message in problems:
        counts[source] = int(counts.get(source, 0)) + 1
    state["errors"] = counts
    for source in SOURCES:
        out.add("botops_collector_errors_total", counts.get(source, 0), source=source)
    out.add("botops_collector_last_run_timestamp_seconds", now)
    return out, state, problems


def sweep(textfile):
    """Temp files of runs killed inside write_to_textfile (<file>.<pid>.<thread>)."""
    directory, name = os.path.split(textfile)
    for entry in os.listdir(directory):
        rest = entry[len(name) + 1:].split(".") if entry.startswith(name + ".") else []
        if len(rest) == 2 and all(part.isdigit() for part in rest):
            os.unlink(os.path.join(directory, entry))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="botops-collect", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", default="/etc/botops-collect/config.json")
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        config = json.load(handle)
    os.makedirs(os.path.dirname(config["state_file"]), mode=0o700, exist_ok=True)
    with open(config["state_file"] + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the timer and a playbook's trigger, one at a time
        out, state, problems = collect(config)
        write_text_atomically(config["state_file"], json.dumps(state, sort_keys=True), 0o600)
        sweep(config["textfile"])
        registry = CollectorRegistry(auto_describe=False)
        registry.register(out)
        write_to_textfile(config["textfile"], registry)
    for source, message in problems:
        print("botops-collect: source %s failed: %s" % (source, message), file=sys.stderr)
    print("botops-collect: wrote %s at %s (%d source error(s))" % (
        config["textfile"], datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        len(problems)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
