# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throwaway PostgreSQL server for the tests, from Debian's binaries.

Each server has a private data directory, socket directory and port, listens on
127.0.0.1 only, and is removed when stopped: no test depends on a server the
machine happens to run. It carries the roles the runbooks describe:

- ``botops_app``: the bot's application role, owner of database ``botdb``;
- ``botops_monitor``: read-only monitoring (``pg_monitor`` plus SELECT).

Used by the pytest fixture in ``tests/unit/conftest.py`` and, as a command, by the
Makefile for integration targets::

    python tests/support/pgserver.py start DIR   # prints the connection as JSON
    python tests/support/pgserver.py stop DIR
"""

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time

SUPERUSER = "postgres"
APP_ROLE = "botops_app"
MONITOR_ROLE = "botops_monitor"
APP_DB = "botdb"


def find_bindir():
    """The newest installed PostgreSQL's bin directory (Debian keeps them apart)."""
    override = os.environ.get("BOTOPS_PG_BINDIR")
    if override:
        return override
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql; run scripts/setup.sh packages")
    return candidates[-1]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_owner(argv):
    """PostgreSQL refuses to run as root: drop to the 'postgres' system user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + argv
    return argv


def _run(argv, **kwargs):
    return subprocess.run(_as_owner(argv), check=True, capture_output=True, text=True, **kwargs)


class PgServer:
    """Start, describe and remove one private server rooted at ``base``."""

    def __init__(self, base):
        self.base = os.path.abspath(base)
        self.datadir = os.path.join(self.base, "data")
        self.sockdir = os.path.join(self.base, "sock")
        self.infofile = os.path.join(self.base, "server.json")
        self.bindir = find_bindir()
        self.info = None

    def start(self):
        os.makedirs(self.sockdir, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in (self.base, self.sockdir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            os.chmod(self.base, 0o755)
        passwords = {name: "pw-%s-%s" % (name, os.urandom(6).hex()) for name in (SUPERUSER, APP_ROLE, MONITOR_ROLE)}
        pwfile = os.path.join(self.base, "superuser.pw")
        with open(pwfile, "w") as handle:
            handle.write(passwords[SUPERUSER] + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        os.chmod(pwfile, 0o600)
        _run([os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-U", SUPERUSER, "--pwfile", pwfile,
              "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
              "--data-checksums"])
        os.unlink(pwfile)
        port = free_port()
        options = "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off " \
                  "-c shared_preload_libraries=''" % (port, self.sockdir)
        _run([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-l", os.path.join(self.base, "server.log"),
              "-o", options, "-w", "-t", "60", "start"])
        self.info = {
            "host": "127.0.0.1",
            "port": port,
            "socket_dir": self.sockdir,
            "bindir": self.bindir,
            "superuser": SUPERUSER,
            "superuser_password": passwords[SUPERUSER],
            "app_user": APP_ROLE,
            "app_password": passwords[APP_ROLE],
            "monitor_user": MONITOR_ROLE,
            "monitor_password": passwords[MONITOR_ROLE],
            "app_db": APP_DB,
            "base": self.base,
        }
        self._create_roles(passwords)
        with open(self.infofile, "w") as handle:
            json.dump(self.info, handle)
        os.chmod(self.infofile, 0o600)
        return self.info

    def psql(self, sql, db="postgres", user=SUPERUSER):
        """Run SQL as the superuser over the private socket (trusted locally)."""
        return _run([os.path.join(self.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.info["socket_dir"],
                     "-p", str(self.info["port"]), "-U", user, "-d", db, "-At", "-c", sql]).stdout

    def _create_roles(self, passwords):
        # Passwords go in through SQL over the trusted local socket, never argv of a
        # long-lived process; the test server is private and short-lived.
        self.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (APP_ROLE, passwords[APP_ROLE]))
        self.psql("CREATE ROLE %s LOGIN PASSWORD '%s' IN ROLE pg_monitor" % (MONITOR_ROLE, passwords[MONITOR_ROLE]))
        self.psql("CREATE DATABASE %s OWNER %s" % (APP_DB, APP_ROLE))
        self.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT ALL ON SCHEMA public TO %s" % APP_ROLE, db=APP_DB)
        self.psql("GRANT CONNECT ON DATABASE %s TO %s" % (APP_DB, MONITOR_ROLE))
        self.psql("GRANT USAGE ON SCHEMA public TO %s; GRANT SELECT ON ALL TABLES IN SCHEMA public TO %s; "
                  "ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA public GRANT SELECT ON TABLES TO %s"
                  % (MONITOR_ROLE, MONITOR_ROLE, APP_ROLE, MONITOR_ROLE), db=APP_DB)

    def stop(self):
        if os.path.isdir(self.datadir):
            subprocess.run(_as_owner([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m", "immediate",
                                      "-w", "stop"]), capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        sys.stderr.write("usage: pgserver.py start|stop DIR\n")
        return 2
    server = PgServer(argv[2])
    if argv[1] == "start":
        if os.path.exists(server.infofile):
            server.stop()  # a leftover from a killed run
        started = time.monotonic()
        info = server.start()
        sys.stderr.write("pgserver: PostgreSQL on 127.0.0.1:%d ready in %.1f s\n" % (info["port"], time.monotonic() - started))
        print(json.dumps(info))
    else:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
