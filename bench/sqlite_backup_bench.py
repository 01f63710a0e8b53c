#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark sqlite_backup against `cp`+fsync and `sqlite3 .backup`, alone and
under a writer that commits every 10 ms (issue 3's targets).

    make bench                         # 1 GiB database, writes bench/results/sqlite_backup.md
    python bench/sqlite_backup_bench.py --size-mb 256 --out /tmp/result.md

Everything is measured in one run on one machine, as ratios to `cp`+fsync (the
disk's limit, not a consistent backup). The database is generated once and kept in
bench/work/. Files are read once before timing, so every method starts from the
same (warm) page cache.
"""

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration", "targets", "setup_botdb", "files"))
import botdb  # noqa: E402 pylint: disable=wrong-import-position

MB = 1024 * 1024

WRITER = textwrap.dedent("""
    import json, signal, sqlite3, sys, time
    stop = False
    def on_term(*args):
        global stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    latencies, errors = [], 0
    print("ready", flush=True)
    while not stop:
        started = time.perf_counter()
        try:
            conn.execute("INSERT INTO messages (user_id, chat_id, text) VALUES (1, 2, 'writer commit during backup')")
        except sqlite3.Error:
            errors += 1
        latencies.append(time.perf_counter() - started)
        time.sleep(0.01)
    print(json.dumps({"latencies": latencies, "errors": errors}), flush=True)
""")

MODULE = textwrap.dedent("""
    import sys, json
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.botops.runbook.plugins.modules import sqlite_backup
    with patch_module_args(json.loads(sys.argv[1])):
        sqlite_backup.main()
""")


def generate(path, size_mb):
    """A WAL bot database of about ``size_mb`` MiB: tables, indexes, random text."""
    if os.path.exists(path):
        return
    print("generating a %d MiB bot database at %s ..." % (size_mb, path), flush=True)
    rng = random.Random(11)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", k=rng.randint(2, 12)))
                  for dummy in range(50000)]
    corpus = " ".join(rng.choices(vocabulary, k=12 * MB // 7))  # ~12 MiB of text, beyond any compressor's window
    temp = path + ".partial"
    if os.path.exists(temp):
        os.unlink(temp)
    botdb.create(temp, users=20000, messages=0, reminders=0, journal_mode="wal")
    conn = sqlite3.connect(temp, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    while os.path.getsize(temp) + os.path.getsize(temp + "-wal") < size_mb * MB:
        conn.execute("BEGIN")
        rows = []
        for dummy in range(50000):
            start = rng.randrange(len(corpus) - 400)
            rows.append((rng.randint(1, 20000), rng.randint(1, 500), corpus[start:start + rng.randint(20, 300)]))
        conn.executemany("INSERT INTO messages (user_id, chat_id, text) VALUES (?, ?, ?)", rows)
        conn.executemany("INSERT INTO reminders (user_id, due_at, body) VALUES (?, datetime('now'), ?)",
                         [(user, text) for user, dummy, text in rows[:2000:4]])
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    os.rename(temp, path)


def warm(path):
    with open(path, "rb") as handle:
        while handle.read(16 * MB):
            pass


def clear(directory):
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))


class Writer:
    """A bot stand-in committing one row every 10 ms, timing each commit."""

    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out = json.loads(self.proc.communicate(timeout=120)[0].strip().splitlines()[-1])
        lat = sorted(out["latencies"])

        def pick(quantile):
            return lat[min(len(lat) - 1, int(quantile * len(lat)))] * 1000 if lat else 0.0

        return {"commits": len(lat), "errors": out["errors"], "p50_ms": pick(0.50), "p99_ms": pick(0.99),
                "max_ms": lat[-1] * 1000 if lat else 0.0}


def run_cp(src, out_dir, repeat=3):
    """The baseline is short and noisy (page cache, a fast disk): median of ``repeat``."""
    dest = os.path.join(out_dir, "cp.db")
    times = []
    for dummy in range(repeat):
        if os.path.exists(dest):
            os.unlink(dest)
        started = time.perf_counter()
        subprocess.run(["cp", src, dest], check=True)
        subprocess.run(["sync", dest], check=True)
        times.append(time.perf_counter() - started)
    return {"seconds": sorted(times)[len(times) // 2], "size": os.path.getsize(dest), "finished": True}


def run_sqlite3_cli(src, out_dir, timeout):
    dest = os.path.join(out_dir, "cli.db")
    started = time.perf_counter()
    try:
        subprocess.run(["sqlite3", src, ".backup '%s'" % dest], check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "size": None, "finished": False}
    subprocess.run(["sync", dest], check=True)
    return {"seconds": time.perf_counter() - started, "size": os.path.getsize(dest), "finished": True}


def run_module(src, out_dir, compression, verify):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.environ.get("PYTHONPATH", "")] + sys.path))
    args = {"path": src, "dest_dir": out_dir, "compression": compression, "verify": verify}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", MODULE, json.dumps(args)], env=env, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - started
    result = json.loads(proc.stdout)
    if result.get("failed"):
        raise SystemExit("sqlite_backup failed: %s" % result.get("msg"))
    return {"seconds": seconds, "size": result["size"], "uncompressed": result["uncompressed_size"], "finished": True}


def targets(rows, baseline, source_size):
    """Issue 3's targets, each judged from this run's rows."""
    def row(name, writer):
        return next(r for r in rows if r["name"] == name and (r["writer"] is not None) == writer)

    mine = [r for r in rows if r["name"].startswith("sqlite_backup")]
    plain = row("sqlite_backup none (default integrity_check)", False)
    plain_quick = row("sqlite_backup none, verify: quick_check", False)
    zstd = row("sqlite_backup zstd (default integrity_check)", False)
    zstd_quick = row("sqlite_backup zstd, verify: quick_check", False)
    loaded = [row("sqlite_backup zstd (default integrity_check)", True), row("sqlite_backup zstd, verify: quick_check", True)]

    def speed(measured):
        return source_size / MB / measured["seconds"]

    def verdict(ok):
        return "met" if ok else "**not met**"

    return [
        "## Targets (judged by the script from the rows above)",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        "| a backup always finishes under a steady writer | %d of %d sqlite_backup runs finished; `sqlite3 .backup` %s | %s |"
        % (sum(r["finished"] for r in mine), len(mine),
           "finished" if row("sqlite3 .backup", True)["finished"] else "did not finish", verdict(all(r["finished"] for r in mine))),
        "| uncompressed at 0.5x or better of cp+fsync | %.2fx default, %.2fx with quick_check | %s |"
        % (baseline[False] / plain["seconds"], baseline[False] / plain_quick["seconds"],
           verdict(baseline[False] / plain["seconds"] >= 0.5)),
        "| zstd at 150 MB/s or better | %.0f MB/s default, %.0f MB/s with quick_check | %s |"
        % (speed(zstd), speed(zstd_quick), verdict(speed(zstd) >= 150)),
        "| writer p99 < 50 ms, max < 200 ms during a zstd backup (WAL) | p99 %s ms, max %s ms (default / quick_check) | %s |"
        % ("/".join("%.1f" % r["writer"]["p99_ms"] for r in loaded), "/".join("%.1f" % r["writer"]["max_ms"] for r in loaded),
           verdict(all(r["writer"]["p99_ms"] < 50 and r["writer"]["max_ms"] < 200 and not r["writer"]["errors"] for r in loaded))),
        "",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--work", default=os.path.join(HERE, "work"))
    parser.add_argument("--out", default=os.path.join(HERE, "results", "sqlite_backup.md"))
    parser.add_argument("--cli-timeout", type=int, default=60)
    args = parser.parse_args()

    os.makedirs(args.work, exist_ok=True)
    src = os.path.join(args.work, "bench_%dmb.db" % args.size_mb)
    generate(src, args.size_mb)
    out_dir = tempfile.mkdtemp(prefix="bench-out-", dir=args.work)
    source_size = os.path.getsize(src)

    cases = [("cp + fsync (baseline, not consistent; median of 3)", lambda: run_cp(src, out_dir)),
             ("sqlite3 .backup", lambda: run_sqlite3_cli(src, out_dir, args.cli_timeout))]
    for compression in ("none", "gzip", "zstd"):
        cases.append(("sqlite_backup %s (default integrity_check)" % compression,
                      lambda c=compression: run_module(src, out_dir, c, "integrity_check")))
    for compression in ("none", "zstd"):
        cases.append(("sqlite_backup %s, verify: quick_check" % compression,
                      lambda c=compression: run_module(src, out_dir, c, "quick_check")))

    rows = []
    for writer_on in (False, True):
        for name, run in cases:
            clear(out_dir)
            warm(src)
            writer = Writer(src) if writer_on else None
            try:
                measured = run()
            finally:
                load = writer.stop() if writer else None
            measured.update(name=name, writer=load)
            rows.append(measured)
            print("%-40s writer=%-5s %6.2f s %s" % (name, writer_on, measured["seconds"],
                                                    "" if measured["finished"] else "(did not finish)"), flush=True)
    clear(out_dir)
    os.rmdir(out_dir)

    baseline = {r["writer"] is not None: r["seconds"] for r in rows if r["name"].startswith("cp")}
    lines = [
        "# sqlite_backup benchmark",
        "",
        "Command: `python bench/sqlite_backup_bench.py --size-mb %d` (or `make bench`), %s, %d cores, SQLite %s."
        % (args.size_mb, time.strftime("%Y-%m-%d"), os.cpu_count(), sqlite3.sqlite_version),
        "Source: a generated WAL bot database of %.0f MiB (users, messages, reminders, indexes, random text)."
        % (source_size / MB),
        "Writer: a second process committing one row every 10 ms, in WAL mode, during the backup.",
        "Times include, for sqlite_backup, the verification, sha256, fsync and manifest.",
        "",
        "| method | writer | finished | seconds | MB/s | ratio to cp+fsync | size MiB | compression ratio "
        "| writer commits | writer errors | writer p50 ms | writer p99 ms | writer max ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speed = source_size / MB / r["seconds"] if r["finished"] else 0.0
        ratio = baseline[r["writer"] is not None] / r["seconds"] if r["finished"] else 0.0
        comp = (source_size / float(r["size"])) if r["size"] else None
        w = r["writer"] or {}
        lines.append("| %s | %s | %s | %.2f | %.0f | %.2fx | %s | %s | %s | %s | %s | %s | %s |" % (
            r["name"], "yes" if r["writer"] else "no", "yes" if r["finished"] else "**no**", r["seconds"], speed,
            ratio, "%.0f" % (r["size"] / MB) if r["size"] else "-", "%.2f" % comp if comp else "-",
            w.get("commits", "-"), w.get("errors", "-"),
            "%.1f" % w["p50_ms"] if w else "-", "%.1f" % w["p99_ms"] if w else "-", "%.1f" % w["max_ms"] if w else "-"))
    lines += ["", "MB/s is source MiB per second; ratio >1 is faster than cp+fsync in the same row's conditions.", ""]
    lines += targets(rows, baseline, source_size)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
