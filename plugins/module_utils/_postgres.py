# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared PostgreSQL mechanisms: the connection options (documented once in the
``botops.runbook.postgres`` doc fragment), psycopg2 connections, the client
binaries, and the libpq environment that carries the password in a private
passfile, never on a command line.
"""

import os
import re
import subprocess
import tempfile
import time
import traceback
from contextlib import contextmanager

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.botops.runbook.plugins.module_utils._files import HashingWriter
from ansible_collections.botops.runbook.plugins.module_utils._run import ModuleError, check_exit, first_line, run_command
from ansible_collections.botops.runbook.plugins.module_utils._streams import decompress_to, open_compressor
from ansible_collections.botops.runbook.plugins.module_utils._workdir import WorkDir

try:
    import psycopg2
    from psycopg2 import sql  # noqa: F401 pylint: disable=unused-import
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError:
    psycopg2 = None
    sql = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()


class PostgresError(ModuleError):
    """A failure of PostgreSQL, with a message fit for an operator."""


def connection_argument_spec():
    return dict(
        login_host=dict(type="str", default=""),
        login_port=dict(type="int", default=5432),
        login_user=dict(type="str", default="postgres"),
        login_password=dict(type="str", default="", no_log=True),
        login_unix_socket=dict(type="str", default=""),
        db=dict(type="str", required=True),
        ssl_mode=dict(type="str", default="prefer",
                      choices=["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]),
        connect_timeout=dict(type="int", default=10),
        bin_dir=dict(type="path"),
    )


def require_psycopg2(module):
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2 (Debian: python3-psycopg2)"),
                         exception=PSYCOPG2_IMPORT_ERROR)


# A PostgreSQL name (NAMEDATALEN - 1): the server cuts a longer one silently, at a
# character in SQL and at a byte in a connection, so it would be another database.
MAX_NAME_BYTES = 63


def name_problem(what, name):
    """Why ``name`` cannot be a PostgreSQL database name, or None."""
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        return ("%s %r is %d bytes long; PostgreSQL names have at most %d bytes (a longer one is silently cut to "
                "another name): give the database's real name" % (what, name, size, MAX_NAME_BYTES))
    if "\0" in name:
        return "%s %r contains a NUL, which no PostgreSQL name can" % (what, name)
    return None


def check_names(module):
    """The database names of the module's options (db, and target_db where there is
    one) can be PostgreSQL names; the module fails before it connects if not."""
    for key, what in (("db", "database name"), ("target_db", "target database name")):
        problem = module.params.get(key) and name_problem(what, module.params[key])
        if problem:
            module.fail_json(msg=problem)


def conninfo_value(value):
    """``value`` quoted for a libpq connection string (single quotes, ``\\`` and ``'``
    escaped)."""
    return "'%s'" % value.replace("\\", "\\\\").replace("'", "\\'")


def _host(params):
    return params["login_unix_socket"] or params["login_host"] or None


def describe_target(params, db=None):
    where = params["login_unix_socket"] or params["login_host"] or "local socket"
    return "database '%s' on %s:%d" % (db or params["db"], where, params["login_port"])


def connect(params, db=None, autocommit=True):
    """A psycopg2 connection; errors become PostgresError with the cause in words."""
    kwargs = {
        "dbname": db or params["db"],
        "user": params["login_user"],
        "port": params["login_port"],
        "connect_timeout": params["connect_timeout"],
        "sslmode": params["ssl_mode"],
        "application_name": "botops.runbook",
    }
    if _host(params):
        kwargs["host"] = _host(params)
    if params["login_password"]:
        kwargs["password"] = params["login_password"]
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.OperationalError as exc:
        raise PostgresError("cannot connect to %s as '%s': %s" % (describe_target(params, db), params["login_user"],
                                                                  first_line(str(exc))))
    conn.autocommit = autocommit
    return conn


def explain(action):
    """For ``run_main``: a psycopg2 error met while doing ``action``, in words."""
    return lambda exc: "%s failed: %s" % (action, first_line(str(exc))) if HAS_PSYCOPG2 and isinstance(
        exc, psycopg2.Error) else None


def on_connection(conn, work, what):
    """``work(conn)``; a database error becomes PostgresError naming ``what``."""
    try:
        return work(conn)
    except psycopg2.Error as exc:
        raise PostgresError("%s failed on database '%s': %s" % (what, conn.info.dbname, first_line(exc)))


def on_database(params, db, work, what):
    """``work`` on a connection of its own to ``db``, closed afterwards."""
    conn = connect(params, db=db)
    try:
        return on_connection(conn, work, what)
    finally:
        conn.close()


class LibpqEnvironment:
    """Environment for pg_dump and friends: connection in PG* variables and the
    password in a 0600 passfile in a private working directory (``_workdir``: the
    runner's ``~/.cache/botops.runbook``, which the next run cleans after a kill),
    removed afterwards. The
    tools get exactly these variables (see ``run_checked``): none the module
    inherited, so they connect where the module's options say and nowhere else."""

    def __init__(self, params):
        self.params = params
        self.directory = None

    def __enter__(self):
        env = {
            "PGPORT": str(self.params["login_port"]),
            "PGUSER": self.params["login_user"],
            "PGSSLMODE": self.params["ssl_mode"],
            "PGCONNECT_TIMEOUT": str(self.params["connect_timeout"]),
            "PGAPPNAME": "botops.runbook",
            "LC_ALL": "C",  # tool messages in English, so they can be parsed
        }
        if _host(self.params):
            env["PGHOST"] = _host(self.params)
        self.directory = WorkDir("pgpass")
        passfile = self.directory.join("pgpass")
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            password = self.params["login_password"] or ""
            handle.write("*:*:*:*:%s\n" % password.replace("\\", "\\\\").replace(":", "\\:"))
        env["PGPASSFILE"] = passfile
        return env

    def __exit__(self, *exc):
        self.directory.close()


def find_binary(module, name):
    """A PostgreSQL client program: from ``bin_dir`` when given, else the PATH and
    Debian's /usr/lib/postgresql/<newest>/bin."""
    bin_dir = module.params.get("bin_dir")
    if bin_dir:
        path = os.path.join(bin_dir, name)
        if not os.access(path, os.X_OK):
            raise PostgresError("'%s' not found in bin_dir '%s'; install the PostgreSQL client or fix bin_dir"
                                % (name, bin_dir))
        return path
    extra = sorted((os.path.join("/usr/lib/postgresql", v, "bin") for v in _listdir("/usr/lib/postgresql")),
                   key=_version_key, reverse=True)
    path = module.get_bin_path(name, required=False, opt_dirs=extra)
    if not path:
        raise PostgresError("'%s' not found on the managed host; install the PostgreSQL client "
                            "(Debian: postgresql-client) or set bin_dir" % name)
    return path


def _listdir(path):
    try:
        return [name for name in os.listdir(path) if name.isdigit()]
    except OSError:
        return []


def _version_key(path):
    return int(path.rstrip("/").split("/")[-2])


def client_major(module, binary):
    rc, out, err = module.run_command([binary, "--version"], environ_update={"LC_ALL": "C"})
    match = re.search(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?", out)
    if rc != 0 or not match:
        raise PostgresError("cannot tell the version of '%s': %s" % (binary, first_line(err or out)))
    return int(match.group(1)), match.group(0).split(") ")[1]


def check_client_not_older(module, binary, conn):
    """pg_dump older than the server refuses to dump, or dumps badly: say so first."""
    major, version = client_major(module, binary)
    server_major = conn.server_version // 10000
    if major < server_major:
        raise PostgresError("%s is version %s but the server is PostgreSQL %d; install a client of version %d or "
                            "newer (or point bin_dir at one)"
                            % (os.path.basename(binary), version, server_major, server_major))
    return version


def stderr_errors(text):
    """Lines of a pg tool's stderr that report an error (it may exit 0 after one)."""
    return [line for line in text.splitlines() if re.search(r"\b(error|fatal|FATAL|ERROR):", line)]


# --- the PostgreSQL tools ---------------------------------------------------
# Dumps and restores stream through pipes: module.run_command buffers a whole
# output in memory, which a dump of any size must not. Every argv is a list (no
# shell), and the password is in the LibpqEnvironment's passfile.

CHUNK = 1024 * 1024


def run_checked(module, argv, env, what):
    """Run a pg tool that needs no pipe; a non-zero exit or an error line on stderr
    fails (pg tools can exit 0 after an error). Returns its stdout. PG* variables
    of the module's own environment are set aside for the call (module.run_command
    adds ``env`` to the environment, it cannot replace it), as the piped tools,
    run with ``env`` alone, never see them either."""
    inherited = dict((key, os.environ.pop(key)) for key in list(os.environ) if key.startswith("PG"))
    try:
        return run_command(module, argv, what, env=env, error_lines=stderr_errors)
    finally:
        os.environ.update(inherited)


class _Tee(object):
    """Writes to a copy first, then to the tool: the copy is whole up to where the tool stopped."""

    def __init__(self, tool, copy):
        self.tool, self.copy = tool, copy

    def write(self, data):
        self.copy.write(data)
        self.tool.write(data)


def pipe_into(argv, env, path, compression, what, copy_to=None, restricted=False, limit=None):
    """Feed the decompressed ``path`` to a pg tool's stdin, streaming (never the
    whole dump in memory); the tool may stop reading early (pg_restore --list).
    With ``copy_to``, the same decompressed bytes are written there too. With
    ``restricted`` (psql), see ``_Restricted``. Never more than ``limit`` bytes
    (the manifest's ``uncompressed_size``)."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=out,  # pylint: disable=consider-using-with
                                stderr=err)
        sink = _Tee(proc.stdin, copy_to) if copy_to is not None else proc.stdin
        if restricted:
            sink = _Restricted(sink)
        try:
            decompress_to(path, compression, sink, limit=limit)
            if restricted:
                sink.close()
        except BrokenPipeError:
            pass  # the tool has read what it needs; its exit code says how it went
        except BaseException:
            proc.kill()
            raise
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        rc = proc.wait()
        err.seek(0)
        check_exit(argv, rc, err.read().decode("utf-8", "replace"), what, stderr_errors)
        out.seek(0)
        return out.read().decode("utf-8", "replace")


# psql runs backslash commands (\! runs a shell) from any line of its input: a
# plain dump that someone edited could run commands as this user. psql 15.14,
# 16.10, 17.6 and newer have a restricted mode (\restrict KEY) in which only
# \unrestrict KEY is allowed; the key is made here, per run, so no dump can know it.
RESTRICT_SINCE = {15: 14, 16: 10, 17: 6}
_DUMP_RESTRICT = re.compile(rb"^\\(?:un)?restrict [A-Za-z0-9]+[ \t\r]*(?:\n|$)", re.MULTILINE)


def require_restrict(module, psql):
    major, version = client_major(module, psql)
    minor = int(version.split(".")[1]) if "." in version else 0
    if major < 15 or (major in RESTRICT_SINCE and minor < RESTRICT_SINCE[major]):
        raise PostgresError("%s %s cannot restrict backslash commands, so a plain SQL dump could run shell commands "
                            "through it; install psql 15.14, 16.10, 17.6 or newer (or set bin_dir), or restore a "
                            "custom-format dump" % (os.path.basename(psql), version))


class _Restricted(object):
    r"""A plain dump on its way to psql, in psql's restricted mode under a key of
    this run: its own \restrict and \unrestrict lines (pg_dump writes them) are
    dropped, every other backslash command fails the restore."""

    def __init__(self, sink):
        self.sink, self.pending = sink, b""
        self.sink.write(b"\\restrict " + os.urandom(16).hex().encode("ascii") + b"\n")

    def write(self, data):
        data = self.pending + bytes(data)
        cut = data.rfind(b"\n") + 1  # whole lines now, the rest with the next block
        self.pending = data[cut:]
        self.sink.write(_DUMP_RESTRICT.sub(b"", data[:cut]))

    def close(self):
        self.sink.write(_DUMP_RESTRICT.sub(b"", self.pending))
        self.pending = b""


def stream_dump(argv, env, out_path, compression, level, what):
    """pg_dump (or pg_dumpall) to stdout, compressed and hashed on the way into
    ``out_path``; returns (bytes written, their sha256, bytes of the dump before
    compression)."""
    plain = 0
    with tempfile.TemporaryFile() as err, open(out_path, "wb") as handle:
        sink = HashingWriter(handle)
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=err)  # pylint: disable=consider-using-with
        try:
            stream = open_compressor(sink, compression, level)
            writer = stream or sink
            for block in iter(lambda: proc.stdout.read(CHUNK), b""):
                writer.write(block)
                plain += len(block)
            if stream is not None:
                stream.close()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        rc = proc.wait()
        err.seek(0)
        check_exit(argv, rc, err.read().decode("utf-8", "replace"), what, stderr_errors)
    return sink.size, sink.sha256, plain


@contextmanager
def _scratch_file(scratch, name):
    """An open temporary file: ``scratch(name)`` (a path in a caller's private
    directory) or, without one, in a private working directory of its own (see
    ``_workdir``), which a killed run leaves for the next one to remove."""
    if scratch is not None:
        with open(scratch(name), "w+b") as handle:
            yield handle
        return
    with WorkDir("restore") as work, open(work.join(name), "w+b") as handle:
        yield handle


def restore_dump(module, env, path, fmt, compression, target_db, options=(), jobs=1, what="restore",
                 parallel_rows=True, scratch=None, limit=None):
    """Restore a dump of any format into ``target_db``, with ``jobs`` in parallel
    where the format allows (custom and directory). ``parallel_rows=False`` says
    that one table holds most of the rows (see postgresql_restore); ``scratch``
    names the decompressed copy a parallel restore needs (see ``_scratch_file``);
    ``limit`` bounds the decompressed bytes (the manifest's ``uncompressed_size``)."""
    target_env = dict(env, PGDATABASE=target_db)
    options = list(options)
    if fmt == "plain":
        psql = find_binary(module, "psql")
        require_restrict(module, psql)
        pipe_into([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1"] + options, target_env, path, compression, what,
                  restricted=True, limit=limit)
        return
    # pg_restore reads a --dbname holding '=' (or a postgresql:// URI) as a whole
    # connection string: the name goes in as a quoted value of one, never as one.
    serial = [find_binary(module, "pg_restore"), "--exit-on-error",
              "--dbname=dbname=%s" % conninfo_value(target_db)] + options
    parallel = serial + ["--jobs=%d" % jobs]
    if fmt == "directory":  # the path absolute: a relative one that starts with '-' would be an option
        run_checked(module, (parallel if jobs > 1 else serial) + [os.path.abspath(path)], target_env, what)
    elif jobs == 1:
        pipe_into(serial, target_env, path, compression, what, limit=limit)
    elif parallel_rows or "--clean" in options:
        # pg_restore runs jobs only from a file it can seek in: the dump is
        # decompressed first, then rows, indexes and constraints all load in
        # parallel, which pays when several tables are large (bench/results).
        # --clean drops across every section: it always takes this way.
        with _scratch_file(scratch, "parallel.dump") as plain:
            decompress_to(path, compression, plain, limit=limit)
            plain.flush()
            run_checked(module, parallel + [plain.name], target_env, what)
    else:
        # One table holds most rows: a second job has no rows to load, and writing
        # the whole dump out first only costs. The tables and rows stream in one job
        # straight from the compressed dump while the same bytes land in a temp file;
        # the indexes and constraints then come from that file in parallel (only its
        # table of contents is read).
        with _scratch_file(scratch, "parallel.dump") as plain:
            pipe_into(serial + ["--section=pre-data", "--section=data"], target_env, path, compression, what,
                      copy_to=plain, limit=limit)
            plain.flush()
            run_checked(module, parallel + ["--section=post-data", plain.name], target_env, what)


PLAIN_DONE = b"-- PostgreSQL database dump complete"


def count_differences(expected, actual):
    """'' when equal, else a short list of the tables whose counts differ."""
    differ = sorted(t for t in set(expected) | set(actual) if expected.get(t) != actual.get(t))
    return ", ".join("%s %s != %s" % (t, actual.get(t), expected.get(t)) for t in differ[:5])


def server_version_string(conn):
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        return cur.fetchone()[0]


USER_TABLES = """
    SELECT n.nspname, c.relname, c.reltuples::bigint, c.oid
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
    ORDER BY 1, 2"""


def table_oids(conn):
    """{oid: schema.table} of every user table (the keys of ``table_row_counts``)."""
    with conn.cursor() as cur:
        cur.execute(USER_TABLES)
        return {oid: "%s.%s" % (schema, name) for schema, name, dummy, oid in cur.fetchall()}


def table_row_counts(conn, exact=False):
    """{schema.table: rows} of every user table; estimates from the statistics
    unless ``exact``."""
    with conn.cursor() as cur:
        cur.execute(USER_TABLES)
        tables = cur.fetchall()
        counts = {}
        for schema, name, estimate, dummy in tables:
            if exact:
                cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))
                counts["%s.%s" % (schema, name)] = cur.fetchone()[0]
            else:
                counts["%s.%s" % (schema, name)] = max(int(estimate), 0)
    return counts


def database_size(conn, db):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_database_size(%s)", (db,))
        return cur.fetchone()[0]


class PostgresClient:
    """The PostgreSQL side of a module in one object: its connection options
    (``psycopg2`` required), sessions, and the client programs, run in a
    LibpqEnvironment while the client is entered (``with client:``)."""

    def __init__(self, module):
        require_psycopg2(module)
        check_names(module)
        self.module = module
        self.params = module.params
        self.env = None
        self._libpq = None

    def __enter__(self):
        self._libpq = LibpqEnvironment(self.params)
        self.env = self._libpq.__enter__()
        return self

    def __exit__(self, *exc):
        self._libpq.__exit__(*exc)
        self.env = self._libpq = None

    def describe(self, db=None):
        return describe_target(self.params, db)

    @staticmethod
    def explain(action):
        """For ``run_main``: a psycopg2 error met while doing ``action``, in words."""
        return explain(action)

    @contextmanager
    def backup_lock(self, conn, timeout):
        """One backup of the database at a time: a session advisory lock on the
        server, shared by every runner whatever host or user it runs as, and held
        only by roles that may connect to the database. Released when the block
        ends (or the session does)."""
        key = "botops.runbook backup of %s" % self.params["db"]
        deadline = time.monotonic() + timeout
        with conn.cursor() as cur:
            while True:
                cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,))
                if cur.fetchone()[0]:
                    conn.commit()  # the lock is the session's; the transaction that took it ends here
                    break
                if time.monotonic() >= deadline:
                    raise PostgresError("another backup of %s is still running (advisory lock held for more than "
                                        "%d s); wait for it to finish or raise lock_timeout"
                                        % (self.describe(), timeout))
                time.sleep(0.2)
        try:
            yield
        finally:
            try:
                conn.rollback()
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
                conn.commit()
            except psycopg2.Error:
                pass  # the session ends with the module, and its lock with it

    def binary(self, name):
        return find_binary(self.module, name)

    def require(self, *names):
        """Every client program is there, before anything starts."""
        for name in names:
            self.binary(name)

    def connect(self, db=None, autocommit=True):
        return connect(self.params, db=db, autocommit=autocommit)

    def on_database(self, db, work, what):
        return on_database(self.params, db, work, what)

    def database_size(self, conn):
        return database_size(conn, self.params["db"])

    @staticmethod
    def server_version(conn):
        return server_version_string(conn)

    @staticmethod
    def row_counts(conn, exact=False):
        return table_row_counts(conn, exact)

    @staticmethod
    def table_oids(conn):
        return table_oids(conn)

    def check_client(self, tool, conn):
        """``tool`` is not older than the server behind ``conn``; returns its version."""
        return check_client_not_older(self.module, self.binary(tool), conn)

    def _env(self, db):
        return dict(self.env, PGDATABASE=db) if db else self.env

    def run(self, argv, what, db=None):
        return run_checked(self.module, argv, self._env(db), what)

    def dump_to(self, argv, out_path, compression, level, what, db=None):
        """(size, sha256) of a program's stdout written compressed to ``out_path``."""
        return stream_dump(argv, self._env(db), out_path, compression, level, what)

    def restore(self, path, fmt, compression, target_db, **options):
        restore_dump(self.module, self.env, path, fmt, compression, target_db, **options)

    def read_dump(self, path, fmt, compression, whole=False):
        """A dump is whole before anything relies on it. Custom and directory:
        pg_restore reads its table of contents (returned), or with ``whole`` every
        byte of it (restored to /dev/null). Plain SQL: the stream decompresses
        and ends with pg_dump's completion marker (None returned)."""
        what = "reading dump '%s'" % path
        if fmt == "plain":
            tail = _Tail()
            decompress_to(path, compression, tail)
            if PLAIN_DONE not in tail.kept:
                raise PostgresError("dump '%s' does not end with pg_dump's completion marker: it is truncated" % path)
            return None
        argv = [self.binary("pg_restore")] + (["--file=/dev/null"] if whole else ["--list"])
        if fmt == "directory":
            return self.run(argv + [os.path.abspath(path)], what)
        return pipe_into(argv, self.env, path, compression, what)

    @contextmanager
    def scratch_database(self, purpose, owner=None):
        """A new database for ``purpose`` (its name returned), dropped afterwards. The
        name fits in a PostgreSQL name whole (its random part too), cut at a character."""
        head, tail = "botops_%s_" % purpose, "_%s" % os.urandom(4).hex()
        room = MAX_NAME_BYTES - len(head) - len(tail)
        name = head + self.params["db"].encode("utf-8")[:room].decode("utf-8", "ignore") + tail
        admin = self.connect(db="postgres")
        try:
            with admin.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)) if owner is None else
                            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
            try:
                yield name
            finally:
                with admin.cursor() as cur:
                    cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        finally:
            admin.close()


class _Tail(object):
    """A sink that keeps only the last 4 KiB written to it."""

    def __init__(self):
        self.kept = b""

    def write(self, data):
        self.kept = (self.kept + data[-4096:])[-4096:]
