#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark postgresql_backup and postgresql_restore against bare pg_dump,
pg_restore and community.postgresql, on two shapes of bot database.

    make bench                                   # both benchmarks
    python bench/postgresql_backup_bench.py --size-mb 1536 --out bench/results/postgresql_backup.md

A private PostgreSQL server (tests/support/pgserver.py) is filled with bot tables of
random text (not pgbench, whose padding compresses 36:1), in two shapes of the same
total size: one messages table holding 95 % of the rows, and four message tables of
about equal size. On the first: bare `pg_dump -Fc`, bare `pg_dump -Fd -j 2`,
postgresql_backup with its defaults and in directory format with jobs 2, and
community.postgresql.postgresql_db state=dump, each dump restored with 1 and 2 jobs;
on the second, `pg_dump -Fc` and the default postgresql_backup, restored with 1 and
2 jobs. Then the recovery time (RTO) at smaller sizes: a 1-job postgresql_restore of
the default dump (its checksum, `--list` check, ANALYZE and row counts included)
against a bare `pg_restore` of `pg_dump -Fc`. Modules run as Ansible runs them, one
process each (without ansible-playbook's own start-up); restores are repeated and
the median counts.
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
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import pgserver  # noqa: E402 pylint: disable=wrong-import-position

MB = 1024 * 1024
SHAPES = {"one-big-table": ["messages"], "four-tables": ["messages_a", "messages_b", "messages_c", "messages_d"]}

MODULE = textwrap.dedent("""
    import importlib, json, sys
    from ansible.module_utils.testing import patch_module_args
    module = importlib.import_module(sys.argv[1])
    with open(sys.argv[2]) as handle:
        args = json.load(handle)
    with patch_module_args(args):
        module.main()
""")
OURS = "ansible_collections.botops.runbook.plugins.modules."
COMMUNITY = "ansible_collections.community.postgresql.plugins.modules.postgresql_db"


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


def fill(server, size_mb, shape, db):
    """A bot database ``db`` of about ``size_mb`` MiB in one of SHAPES; its size."""
    print("filling a %d MiB bot database (%s) ..." % (size_mb, shape), flush=True)
    server.psql('CREATE DATABASE "%s" OWNER botops_app' % db, db="postgres")
    tables = SHAPES[shape]
    server.psql("""
        CREATE TABLE users (id bigint PRIMARY KEY, telegram_id bigint NOT NULL, name text NOT NULL);
        INSERT INTO users SELECT g, 10000000 + g, 'user ' || g FROM generate_series(1, 50000) g;
        CREATE TABLE reminders (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id),
                                due_at timestamptz NOT NULL, body text NOT NULL);
    """ + "".join("""
        CREATE TABLE %s (id bigserial PRIMARY KEY, user_id bigint NOT NULL, chat_id bigint NOT NULL,
                         body text NOT NULL, sent_at timestamptz NOT NULL DEFAULT now());""" % t for t in tables),
                db=db, user="botops_app")
    import psycopg2  # pylint: disable=import-outside-toplevel
    info = server.info
    conn = psycopg2.connect(host=info["host"], port=info["port"], dbname=db, user=info["app_user"],
                            password=info["app_password"])
    with conn, conn.cursor() as cur:
        for number, table in enumerate(tables):
            cur.copy_expert("COPY %s (user_id, chat_id, body) FROM STDIN" % table,
                            CorpusReader(int(size_mb * MB * 0.8 / len(tables)), seed=5 + number))
            cur.execute("CREATE INDEX {0}_user ON {0} (user_id); CREATE INDEX {0}_chat_sent ON {0} (chat_id, sent_at); "
                        "ALTER TABLE {0} ADD FOREIGN KEY (user_id) REFERENCES users(id)".format(table))
        cur.execute("INSERT INTO reminders (user_id, due_at, body) SELECT 1 + id % 50000, now(), body "
                    "FROM {0} WHERE id % {1} = 0".format(tables[0], 20 // len(tables)))
    conn.close()
    server.psql("VACUUM ANALYZE", db=db)
    return int(server.psql("SELECT pg_database_size('%s')" % db, db=db).strip())


def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
    return os.path.getsize(path)


def timed(argv, env, **kwargs):
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, **kwargs)
    return time.perf_counter() - started


class Bench:
    """One private server, its connection, and ways to time things against it."""

    def __init__(self, work, server):
        self.work = work
        self.info = info = server.info
        passfile = os.path.join(work, "pgpass")
        with open(passfile, "w") as handle:
            handle.write("*:*:*:*:%s\n" % info["superuser_password"])
        os.chmod(passfile, 0o600)
        self.conn = {"login_host": info["host"], "login_port": info["port"], "login_user": "postgres",
                     "login_password": info["superuser_password"]}
        self.env = dict(os.environ, PGHOST=info["host"], PGPORT=str(info["port"]), PGUSER="postgres",
                        PGPASSFILE=passfile, PATH=info["bindir"] + os.pathsep + os.environ["PATH"],
                        PYTHONPATH=os.pathsep.join([os.environ.get("PYTHONPATH", "")] + sys.path))

    def module(self, name, args):
        """A module in a process of its own, its arguments (password included) in a
        0600 file; returns (seconds, result)."""
        path = os.path.join(self.work, "args.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            if name == COMMUNITY:
                json.dump(dict(args, login_host=self.conn["login_host"], port=self.conn["login_port"],
                               login_user="postgres", login_password=self.conn["login_password"]), handle)
            else:
                json.dump(dict(self.conn, **args), handle)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", MODULE, name, path], env=self.env, capture_output=True,
                              text=True, check=False)
        seconds = time.perf_counter() - started
        os.unlink(path)
        try:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise SystemExit("%s gave no result:\n%s\n%s" % (name, proc.stdout[-2000:], proc.stderr[-2000:]))
        if result.get("failed"):
            raise SystemExit("%s failed: %s" % (name, result.get("msg")))
        return seconds, result

    def dump(self, kind, db, dumps):
        """One dump of ``db``: (name, seconds, path, how to restore it)."""
        path = os.path.join(dumps, "%s-%s" % (db, kind))
        if kind == "pg_dump -Fc":
            return "pg_dump -Fc (the runbooks' command)", timed(["pg_dump", "-Fc", "-f", path, db], self.env), path, "bare"
        if kind == "pg_dump -Fd":
            return "pg_dump -Fd -j 2", timed(["pg_dump", "-Fd", "-j", "2", "-f", path, db], self.env), path, "bare"
        if kind == "ours":
            seconds, out = self.module(OURS + "postgresql_backup", {"db": db, "dest": path + ".dump.zst"})
            return "postgresql_backup (defaults: custom, zstd, verified)", seconds, out["dest"], "module"
        if kind == "ours directory":
            seconds, out = self.module(OURS + "postgresql_backup", {"db": db, "dest": path + ".dir",
                                                                    "format": "directory", "jobs": 2})
            return "postgresql_backup format=directory jobs=2", seconds, out["dest"], "module"
        seconds = self.module(COMMUNITY, {"name": db, "state": "dump", "target": path + ".pgc"})[0]
        return "community.postgresql.postgresql_db state=dump", seconds, path + ".pgc", "bare"

    def restore(self, row, jobs, repeat):
        """Restores of a dump into a new database: (median seconds, all seconds, module timings of the median)."""
        runs = []
        for dummy in range(repeat):
            target = "restore_%d" % jobs
            if row["restore"] == "module":
                seconds, out = self.module(OURS + "postgresql_restore", {"src": row["path"], "db": "postgres",
                                                                         "target_db": target, "jobs": jobs})
                runs.append((seconds, out.get("timings")))
            else:  # the same work as the module's: create the database, then restore into it
                started = time.perf_counter()
                subprocess.run(["createdb", target], env=self.env, check=True)
                seconds = time.perf_counter() - started
                runs.append((seconds + timed(["pg_restore", "--jobs=%d" % jobs, "-d", target, row["path"]], self.env),
                             None))
            subprocess.run(["dropdb", "--force", target], env=self.env, check=True)
        runs.sort(key=lambda run: run[0])
        return {"median": statistics.median(r[0] for r in runs), "runs": [r[0] for r in runs],
                "timings": runs[len(runs) // 2][1]}


def run_shape(bench, shape, size_mb, kinds, repeat, dumps):
    db = "bot_" + shape.replace("-", "_")
    db_size = fill(bench.server, size_mb, shape, db)
    rows = []
    for kind in kinds:
        name, seconds, path, restore = bench.dump(kind, db, dumps)
        rows.append({"name": name, "seconds": seconds, "size": size_of(path), "path": path, "restore": restore})
        print("%-14s %-50s %7.1f s %8.0f MiB" % (shape, name, seconds, size_of(path) / MB), flush=True)
    for row in rows:
        row["restores"] = {}
        for jobs in (1, 2):
            row["restores"][jobs] = bench.restore(row, jobs, repeat)
            runs = " ".join("%.1f" % t for t in row["restores"][jobs]["runs"])
            print("  restore %-48s jobs=%d %s s" % (row["name"][:48], jobs, runs), flush=True)
    for row in rows:
        if os.path.isdir(row["path"]):
            shutil.rmtree(row["path"])
        else:
            os.unlink(row["path"])
    bench.server.psql('DROP DATABASE "%s"' % db, db="postgres")
    return {"shape": shape, "db_size": db_size, "rows": rows}


def run_rto(bench, size_mb, repeat, dumps):
    """Recovery time at one size: 1-job restore of our default dump against a bare
    pg_restore of pg_dump -Fc, both into a new database."""
    result = run_shape(bench, "one-big-table", size_mb, ["pg_dump -Fc", "ours"], repeat, dumps)
    result["size_mb"] = size_mb
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1536)
    parser.add_argument("--rto-sizes", default="128,512", help="smaller sizes (MiB) at which the RTO is measured too")
    parser.add_argument("--repeat", type=int, default=3, help="restores per dump and job count (the median counts)")
    parser.add_argument("--work", default=os.path.join(HERE, "work"))
    parser.add_argument("--out", default=os.path.join(HERE, "results", "postgresql_backup.md"))
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    work = tempfile.mkdtemp(prefix="pgbench-", dir=args.work)
    os.chmod(work, 0o755)
    server = pgserver.PgServer(tempfile.mkdtemp(prefix="botops-pg-bench-"))
    try:
        server.start()
        bench = Bench(work, server)
        bench.server = server
        dumps = os.path.join(work, "dumps")
        os.mkdir(dumps)
        os.chmod(dumps, 0o700)
        shapes = [run_shape(bench, "one-big-table", args.size_mb,
                            ["pg_dump -Fc", "pg_dump -Fd", "ours", "ours directory", "community"], args.repeat, dumps),
                  run_shape(bench, "four-tables", args.size_mb, ["pg_dump -Fc", "ours"], args.repeat, dumps)]
        rto = [run_rto(bench, int(size), args.repeat, dumps) for size in args.rto_sizes.split(",") if size]
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    write_report(args, shapes, rto)
    return 0


def find(shape, prefix):
    return next(row for row in shape["rows"] if row["name"].startswith(prefix))


def verdict(ok):
    return "met" if ok else "**not met**"


def rto_line(label, shape):
    ours, bare = find(shape, "postgresql_backup (defaults"), find(shape, "pg_dump -Fc")
    ratio = ours["restores"][1]["median"] / bare["restores"][1]["median"]
    timings = ours["restores"][1]["timings"] or {}
    return ratio, "| %s, %.0f MiB | %.1f s (%s) | %.1f s | %.2fx | %s |" % (
        label, shape["db_size"] / MB, ours["restores"][1]["median"],
        ", ".join("%s %.1f" % (k, v) for k, v in timings.items()), bare["restores"][1]["median"], ratio,
        verdict(ratio <= 1.1))


def write_report(args, shapes, rto):
    big, four = shapes
    lines = [
        "# postgresql_backup benchmark",
        "",
        "Command: `python bench/postgresql_backup_bench.py --size-mb %d --rto-sizes %s --repeat %d` (or `make bench`), "
        "%s, %d cores." % (args.size_mb, args.rto_sizes, args.repeat, time.strftime("%Y-%m-%d"), os.cpu_count()),
        "Databases of bot tables (users; messages with random text, two indexes and a foreign key; reminders with a "
        "foreign key) on a private PostgreSQL 15 server, in two shapes of the same total: one messages table with "
        "95 %% of the rows, and four message tables of equal size. Modules run in a process of their own, as Ansible "
        "runs them (ansible-playbook's start-up, about 2 s, is not included). Restores go into a new database, "
        "created inside the timing for bare pg_restore as the module creates it; "
        "each is run %d times and the median counts (all runs listed)." % args.repeat,
        "",
    ]
    for shape in shapes:
        baseline = shape["rows"][0]
        lines += [
            "## Shape %s: `pg_database_size` %.0f MiB" % (shape["shape"], shape["db_size"] / MB),
            "",
            "| method | dump s | size MiB | dump time vs pg_dump -Fc | size vs pg_dump -Fc | restore 1 job s | runs "
            "| restore 2 jobs s | runs |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in shape["rows"]:
            lines.append("| %s | %.1f | %.0f | %.2fx faster | %.2f | %.1f | %s | %.1f | %s |" % (
                row["name"], row["seconds"], row["size"] / MB, baseline["seconds"] / row["seconds"],
                row["size"] / float(baseline["size"]), row["restores"][1]["median"],
                " ".join("%.1f" % t for t in row["restores"][1]["runs"]), row["restores"][2]["median"],
                " ".join("%.1f" % t for t in row["restores"][2]["runs"])))
        lines.append("")
    lines += [
        "## Recovery time (RTO): restore of the default dump with 1 job, checks and ANALYZE included",
        "",
        "| shape and size | postgresql_restore (its phases) | bare pg_restore of pg_dump -Fc | ratio | verdict |",
        "|---|---|---|---|---|",
    ]
    ratios = []
    for label, shape in [("one-big-table", big), ("four-tables", four)] + [("one-big-table", r) for r in rto]:
        ratio, line = rto_line(label, shape)
        ratios.append(ratio)
        lines.append(line)
    ours, community, bare = find(big, "postgresql_backup (defaults"), find(big, "community"), big["rows"][0]
    ours_four = find(four, "postgresql_backup (defaults")
    speedup = bare["seconds"] / ours["seconds"]
    one, two = ours["restores"][1], ours["restores"][2]
    lines += [
        "",
        "## Targets (judged by the script from the rows above)",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        "| postgresql_backup defaults, verification included, at least 3x faster than pg_dump -Fc, output no larger "
        "| %.2fx faster, %.2f of the size | %s |"
        % (speedup, ours["size"] / float(bare["size"]), verdict(speedup >= 3 and ours["size"] <= bare["size"])),
        "| ahead of community.postgresql on the same database | %.1f s vs %.1f s | %s |" % (
            ours["seconds"], community["seconds"], verdict(ours["seconds"] < community["seconds"])),
        "| four equal tables: the default dump restores faster with 2 jobs than with 1 (medians) | %.1f s vs %.1f s "
        "| %s |" % (ours_four["restores"][2]["median"], ours_four["restores"][1]["median"],
                    verdict(ours_four["restores"][2]["median"] < ours_four["restores"][1]["median"])),
        "| one big table: 2 jobs no slower than 1 within the spread of the runs (2-job median at most the slowest "
        "1-job run) | %.1f s vs %s s | %s |"
        % (two["median"], "/".join("%.1f" % t for t in one["runs"]), verdict(two["median"] <= max(one["runs"]))),
        "| RTO: 1-job restore of the default dump at most 1.1x a bare pg_restore of pg_dump -Fc, at every size "
        "| %s | %s |" % (", ".join("%.2fx" % r for r in ratios), verdict(all(r <= 1.1 for r in ratios))),
        "",
    ]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
