# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a sample-bot host looks like now, as one JSON document on stdout.

side_effect.yml runs this on each host (ansible.builtin.script) right after each step
of the scenario and keeps the output, so that every test of the verifier reads the
state its step left, whatever order the tests run in. --execute runs one SQL
statement first (the scenario's own writes).
"""

import argparse
import json
import os
import subprocess
import urllib.request


def run(argv, env=None, check=True):
    return subprocess.run(argv, capture_output=True, text=True, check=check, env=env)


def sql(args, query):
    if args.engine == "sqlite":
        return run(["sqlite3", args.db, query]).stdout.strip()
    return run(["runuser", "-u", "postgres", "--", "psql", "-At", "-d", args.db, "-c", query]).stdout.strip()


def health():
    try:
        with urllib.request.urlopen("http://127.0.0.1:8080/health", timeout=5) as answer:
            return json.loads(answer.read().decode("utf-8"))
    except (OSError, ValueError):
        return None


def grants(args):
    """What the monitoring role may do, and what the application role is."""
    env = dict(os.environ, PGPASSWORD=args.monitor_password)
    monitor = ["psql", "-h", "127.0.0.1", "-U", args.db + "_monitor", "-d", args.db, "-Atc"]
    return {
        "monitor_select_users": run(monitor + ["SELECT count(*) FROM users"], env=env).stdout.strip(),
        "monitor_insert_rc": run(monitor + ["INSERT INTO users VALUES (9, 'x', 'y')"], env=env, check=False).returncode,
        "app_attrs": sql(args, "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = '%s'" % args.db),
        "owner": sql(args, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '%s'" % args.db),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--engine", required=True, choices=["sqlite", "postgresql"])
    parser.add_argument("--db", required=True, help="the SQLite file or the PostgreSQL database")
    parser.add_argument("--monitor-password", default="")
    parser.add_argument("--execute", default="")
    args = parser.parse_args()

    if args.execute:
        sql(args, args.execute)
    current = os.path.join(args.root, "current")
    ledger = os.path.join(args.root, "ledger.jsonl")
    ledger_text = open(ledger, encoding="utf-8").read() if os.path.exists(ledger) else ""
    main_pid = run(["systemctl", "show", "-p", "MainPID", "--value", args.service]).stdout.strip()
    snapshot = {
        "live": os.path.basename(os.readlink(current)) if os.path.islink(current) else "",
        "releases": sorted(os.listdir(os.path.join(args.root, "releases"))),
        "ledger_text": ledger_text,
        "ledger": [json.loads(line) for line in ledger_text.splitlines() if line.strip()],
        "health": health(),
        "counts": {table: int(sql(args, "SELECT count(*) FROM %s" % table)) for table in ("users", "messages")},
        "tables": sql(args, "SELECT group_concat(name) FROM sqlite_master" if args.engine == "sqlite" else
                      "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'"),
        "integrity": sql(args, "PRAGMA integrity_check") if args.engine == "sqlite" else None,
        "service": {
            "active": run(["systemctl", "is-active", args.service], check=False).stdout.strip(),
            "enabled": run(["systemctl", "is-enabled", args.service], check=False).stdout.strip(),
            "user": run(["ps", "-o", "user=", "-p", main_pid], check=False).stdout.strip() if main_pid != "0" else "",
        },
        "grants": grants(args) if args.engine == "postgresql" and args.monitor_password else None,
    }
    print(json.dumps(snapshot, sort_keys=True))


if __name__ == "__main__":
    main()
