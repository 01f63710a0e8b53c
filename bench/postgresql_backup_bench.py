#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark postgresql_backup and postgresql_restore against bare pg_dump and
community.postgresql (issue 4's targets).

    make bench                                   # both benchmarks
    python bench/postgresql_backup_bench.py --size-mb 1536 --out bench/results/postgresql_backup.md

A private PostgreSQL server (tests/support/pgserver.py) is filled with bot tables of
random text (not pgbench, whose padding compresses 36:1), then in one run: bare
`pg_dump -Fc`, bare `pg_dump -Fd -j 2`, postgresql_backup with its defaults and in
directory format with jobs 2, and community.postgresql.postgresql_db state=dump;
then each dump is restored with 1 and 2 jobs. Modules run through ansible-playbook
(their times include its start-up, about 2 s).
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import pgserver  # noqa: E402 pylint: disable=wrong-import-position

MB = 1024 * 1024


class CorpusReader:
    """A file-like COPY source of messages rows until ``target`` bytes were produced."""

    def __init__(self, target, seed=5):
        self.rng = random.Random(seed)
        vocabulary = ["".join(self.rng.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                                               k=self.rng.randint(2, 12))) for dummy in range(50000)]
        self.corpus = " ".join(self.rng.choices(vocabulary, k=12 * MB // 7))
        self.target = target
        self.produced = 0
        self.row = 0

    def read(self, size=-1):
        if self.produced >= self.target:
            return ""
        lines = []
        for dummy in range(2000):
            self.row += 1
            start = self.rng.randrange(len(self.corpus) - 400)
            text = self.corpus[start:start + self.rng.randint(20, 300)]
            lines.append("%d\t%d\t%s\n" % (self.rng.randint(1, 50000), self.rng.randint(1, 500), text))
        chunk = "".join(lines)
        self.produced += len(chunk)
        return chunk

    readline = read


def fill(server, size_mb):
    print("filling a %d MiB bot database ..." % size_mb, flush=True)
    server.psql("""
        CREATE TABLE users (id bigint PRIMARY KEY, telegram_id bigint NOT NULL, name text NOT NULL);
        INSERT INTO users SELECT g, 10000000 + g, 'user ' || g FROM generate_series(1, 50000) g;
        CREATE TABLE messages (id bigserial PRIMARY KEY, user_id bigint NOT NULL, chat_id bigint NOT NULL,
                               body text NOT NULL, sent_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE reminders (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id),
                                due_at timestamptz NOT NULL, body text NOT NULL);
    """, db="botdb", user="botops_app")
    import psycopg2  # pylint: disable=import-outside-toplevel
    info = server.info
    conn = psycopg2.connect(host=info["host"], port=info["port"], dbname="botdb", user=info["app_user"],
                            password=info["app_password"])
    with conn, conn.cursor() as cur:
        cur.copy_expert("COPY messages (user_id, chat_id, body) FROM STDIN", CorpusReader(int(size_mb * MB * 0.8)))
        cur.execute("INSERT INTO reminders (user_id, due_at, body) SELECT 1 + id % 50000, now(), body "
                    "FROM messages WHERE id % 20 = 0")
        cur.execute("CREATE INDEX messages_user ON messages (user_id); "
                    "CREATE INDEX messages_chat_sent ON messages (chat_id, sent_at); "
                    "ALTER TABLE messages ADD FOREIGN KEY (user_id) REFERENCES users(id)")
    conn.close()
    server.psql("VACUUM ANALYZE", db="botdb")
    return int(server.psql("SELECT pg_database_size('botdb')", db="botdb").strip())


def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
    return os.path.getsize(path)


def timed(argv, env, **kwargs):
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, **kwargs)
    return time.perf_counter() - started


def playbook(work, env, tasks):
    """Run tasks on localhost through ansible-playbook; returns (seconds, registered results).
    The connection (with the password) is in the play's module_defaults, in a 0600 file."""
    path = os.path.join(work, "play.yml")
    with open(os.path.join(work, "conn.json")) as handle:
        defaults = json.load(handle)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump([{"hosts": "localhost", "gather_facts": False,
                    "module_defaults": {"group/botops.runbook.postgresql": defaults["conn"],
                                        "community.postgresql.postgresql_db": defaults["community"]},
                    "tasks": tasks + [{"ansible.builtin.copy": {"content": "{{ out | to_json }}",
                                                                "dest": os.path.join(work, "out.json"),
                                                                "mode": "0600"}}]}], handle)
    started = time.perf_counter()
    proc = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e",
                           "ansible_python_interpreter=%s" % sys.executable, path], env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit("playbook failed:\n%s" % proc.stdout[-3000:])
    with open(os.path.join(work, "out.json")) as handle:
        return seconds, json.load(handle)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1536)
    parser.add_argument("--repeat", type=int, default=3, help="restores per dump and job count (the median counts)")
    parser.add_argument("--work", default=os.path.join(HERE, "work"))
    parser.add_argument("--out", default=os.path.join(HERE, "results", "postgresql_backup.md"))
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    work = tempfile.mkdtemp(prefix="pgbench-", dir=args.work)
    os.chmod(work, 0o755)
    server = pgserver.PgServer(tempfile.mkdtemp(prefix="botops-pg-bench-"))
    try:
        info = server.start()
        db_size = fill(server, args.size_mb)
        passfile = os.path.join(work, "pgpass")
        with open(passfile, "w") as handle:
            handle.write("*:*:*:*:%s\n" % info["superuser_password"])
        os.chmod(passfile, 0o600)
        with open(os.path.join(work, "conn.json"), "w") as handle:
            conn = {"login_host": info["host"], "login_port": info["port"], "login_user": "postgres",
                    "login_password": info["superuser_password"], "db": "botdb"}
            json.dump({"conn": conn, "community": {"login_host": info["host"], "port": info["port"],
                                                   "login_user": "postgres",
                                                   "login_password": info["superuser_password"]}}, handle)
        os.chmod(os.path.join(work, "conn.json"), 0o600)
        env = dict(os.environ, PGHOST=info["host"], PGPORT=str(info["port"]), PGUSER="postgres", PGPASSFILE=passfile,
                   PATH=info["bindir"] + os.pathsep + os.environ["PATH"])
        rows = run_cases(work, env, info, args.repeat)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    write_report(args, rows, db_size)
    return 0


def run_cases(work, env, info, repeat):
    dumps = os.path.join(work, "dumps")
    os.mkdir(dumps)
    os.chmod(dumps, 0o700)
    rows = []

    def record(name, seconds, path, restore):
        rows.append({"name": name, "seconds": seconds, "size": size_of(path), "path": path, "restore": restore})
        print("%-50s %7.1f s %8.0f MiB" % (name, seconds, size_of(path) / MB), flush=True)

    path = os.path.join(dumps, "bare.dump")
    record("pg_dump -Fc (the runbooks' command)", timed(["pg_dump", "-Fc", "-f", path, "botdb"], env), path, "pg_restore")
    path = os.path.join(dumps, "bare.dir")
    record("pg_dump -Fd -j 2", timed(["pg_dump", "-Fd", "-j", "2", "-f", path, "botdb"], env), path, "pg_restore")
    seconds, out = playbook(work, env, [{"botops.runbook.postgresql_backup": {"dest": os.path.join(dumps, "ours.dump.zst")},
                                         "register": "out"}])
    record("postgresql_backup (defaults: custom, zstd, verified)", seconds, out["dest"], "module")
    seconds, out = playbook(work, env, [{"botops.runbook.postgresql_backup": {"dest": os.path.join(dumps, "ours.dir"),
                                                                              "format": "directory", "jobs": 2},
                                         "register": "out"}])
    record("postgresql_backup format=directory jobs=2", seconds, out["dest"], "module")
    path = os.path.join(dumps, "community.pgc")
    seconds, out = playbook(work, env, [{"community.postgresql.postgresql_db": {"name": "botdb", "state": "dump",
                                                                                "target": path}, "register": "out"}])
    record("community.postgresql.postgresql_db state=dump", seconds, path, "pg_restore")

    # Restores differ by a few percent between runs: each is repeated, the median counts.
    for row in rows:
        row["restores"] = {}
        for jobs in (1, 2):
            times = [restore_once(work, env, row, jobs) for attempt in range(repeat)]
            row["restores"][jobs] = statistics.median(times)
            print("  restore %-40s jobs=%d %s s" % (row["name"][:40], jobs, " ".join("%.1f" % t for t in times)),
                  flush=True)
    return rows


def restore_once(work, env, row, jobs):
    target = "restore_%d" % jobs
    if row["restore"] == "module":
        seconds = playbook(work, env, [{"botops.runbook.postgresql_restore": {
            "src": row["path"], "target_db": target, "jobs": jobs}, "register": "out"}])[0]
    else:
        subprocess.run(["createdb", target], env=env, check=True)
        seconds = timed(["pg_restore", "--jobs=%d" % jobs, "-d", target, row["path"]], env)  # community's dump too
    subprocess.run(["dropdb", "--force", target], env=env, check=True)
    return seconds


def write_report(args, rows, db_size):
    baseline = rows[0]
    lines = [
        "# postgresql_backup benchmark",
        "",
        "Command: `python bench/postgresql_backup_bench.py --size-mb %d --repeat %d` (or `make bench`), %s, %d cores."
        % (args.size_mb, args.repeat, time.strftime("%Y-%m-%d"), os.cpu_count()),
        "Database: `pg_database_size` %.0f MiB of bot tables (users, messages with random text and two indexes, "
        "reminders with a foreign key), on a private PostgreSQL 15 server." % (db_size / MB),
        "Module rows run through `ansible-playbook` on localhost (about 2 s of start-up included). "
        "Restore times are the median of %d runs." % args.repeat,
        "",
        "| method | dump s | size MiB | dump time vs pg_dump -Fc | size vs pg_dump -Fc | restore 1 job s | restore 2 jobs s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append("| %s | %.1f | %.0f | %.2fx faster | %.2f | %.1f | %.1f |" % (
            row["name"], row["seconds"], row["size"] / MB, baseline["seconds"] / row["seconds"],
            row["size"] / float(baseline["size"]), row["restores"][1], row["restores"][2]))
    ours = rows[2]
    community = rows[4]

    def verdict(ok):
        return "met" if ok else "**not met**"

    speedup = baseline["seconds"] / ours["seconds"]
    lines += [
        "",
        "## Targets (judged by the script from the rows above)",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        "| postgresql_backup defaults, verification included, at least 3x faster than pg_dump -Fc, output no larger "
        "| %.2fx faster, %.2f of the size | %s |"
        % (speedup, ours["size"] / float(baseline["size"]), verdict(speedup >= 3 and ours["size"] <= baseline["size"])),
        "| restore with 2 jobs faster than with 1 | faster for %d of %d dumps | %s |" % (
            sum(r["restores"][2] < r["restores"][1] for r in rows), len(rows),
            verdict(all(r["restores"][2] < r["restores"][1] for r in rows))),
        "| ahead of community.postgresql on the same database | %.1f s vs %.1f s | %s |" % (
            ours["seconds"], community["seconds"], verdict(ours["seconds"] < community["seconds"])),
        "",
    ]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
