#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: postgresql_check
short_description: Health and integrity check of a PostgreSQL database, read-only
version_added: 0.1.0
description:
  - Checks what bot operators watch by hand - connectivity
    and server version, database size, the largest tables, dead-tuple ratios, unused
    indexes, long-running transactions, connections against C(max_connections),
    checksum failures, and C(amcheck) (C(bt_index_check) on every btree index) when
    the extension is installed in the database.
  - Returns C(ok) and a list of problems; fails on problems unless
    O(fail_on_problems=false). Never changes anything, so it works as the read-only
    monitoring role (C(pg_monitor)).
author:
  - botops.runbook developers (@botops)
extends_documentation_fragment:
  - botops.runbook.postgres
attributes:
  check_mode:
    support: full
    description: The module is read-only; check mode runs the same checks.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
options:
  connections_warning:
    description: Share of C(max_connections) in use that is a warning (80 % by default).
    type: float
    default: 0.8
  connections_critical:
    description: Share of C(max_connections) in use that is a problem (95 % by default).
    type: float
    default: 0.95
  dead_tuple_ratio:
    description: Dead tuples over live tuples above which a table (of at least 1000 rows) is reported.
    type: float
    default: 0.2
  long_transaction_seconds:
    description: Transactions open longer than this are reported.
    type: int
    default: 300
  largest_tables:
    description: How many of the largest tables to return.
    type: int
    default: 10
  amcheck:
    description: Run C(bt_index_check) on every btree index when the C(amcheck) extension is installed.
    type: bool
    default: true
  fail_on_problems:
    description: Fail the task when a problem is found.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Weekly health check as the monitoring role
  botops.runbook.postgresql_check:
    db: clips
    login_user: botops_monitor
    login_password: "{{ vault_monitor_password }}"
  register: health

- name: Show the largest tables
  ansible.builtin.debug:
    var: health.largest_tables
"""

RETURN = r"""
ok:
  description: True when no problem was found (warnings do not count).
  returned: always
  type: bool
  sample: true
problems:
  description: Readable problems.
  returned: always
  type: list
  elements: str
  sample: ["connections at 96% of max_connections (96 of 100)"]
warnings_found:
  description: Readable findings below the problem threshold.
  returned: always
  type: list
  elements: str
  sample: ["connections at 82% of max_connections (82 of 100)"]
server_version:
  description: Version of the server.
  returned: always
  type: str
  sample: "15.18"
database_size:
  description: Size of the database in bytes.
  returned: always
  type: int
  sample: 25165824
largest_tables:
  description: The largest tables with their total size, live and dead tuples.
  returned: always
  type: list
  elements: dict
  sample: [{"table": "public.messages", "bytes": 8192000, "live": 5000, "dead": 12}]
unused_indexes:
  description: Indexes never scanned since statistics were reset (not unique, not primary).
  returned: always
  type: list
  elements: str
  sample: ["public.messages_sent_at_idx"]
long_transactions:
  description: Sessions with a transaction open longer than O(long_transaction_seconds).
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 4242, "seconds": 900, "state": "idle in transaction", "application_name": "bot"}]
connections:
  description: Connections in use and C(max_connections).
  returned: always
  type: dict
  sample: {"used": 12, "max": 100, "ratio": 0.12}
checksum_failures:
  description: C(checksum_failures) of the database from C(pg_stat_database) (null without data checksums).
  returned: always
  type: int
  sample: 0
amcheck:
  description: C(checked N indexes), C(not installed), C(no permission) or C(skipped).
  returned: always
  type: str
  sample: checked 7 indexes
elapsed:
  description: Seconds the check took.
  returned: always
  type: float
  sample: 0.3
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botops.runbook.plugins.module_utils._postgres import (
    PostgresClient,
    PostgresError,
    connection_argument_spec,
    explain,
    first_line,
    psycopg2,
)
from ansible_collections.botops.runbook.plugins.module_utils._run import run_main


def fetch_all(cur, statement, args=None):
    cur.execute(statement, args)
    return cur.fetchall()


def health_facts(conn, params, findings):
    """Tables, indexes, transactions, connections, checksums and amcheck; problems and
    warnings are appended to ``findings``."""
    problems, warnings = findings
    result = {}
    with conn.cursor() as cur:
        result["largest_tables"] = [
            {"table": name, "bytes": size, "live": live, "dead": dead}
            for name, size, live, dead in fetch_all(cur, """
                SELECT schemaname || '.' || relname, pg_total_relation_size(relid), n_live_tup, n_dead_tup
                FROM pg_stat_user_tables ORDER BY 2 DESC LIMIT %s""", (params["largest_tables"],))]
        for name, live, dead in fetch_all(cur, """
                SELECT schemaname || '.' || relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables
                WHERE n_live_tup >= 1000 AND n_dead_tup > n_live_tup * %s""", (params["dead_tuple_ratio"],)):
            warnings.append("table %s has %d dead tuples for %d live ones; VACUUM it" % (name, dead, live))

        result["unused_indexes"] = [name for (name,) in fetch_all(cur, """
            SELECT s.schemaname || '.' || s.indexrelname FROM pg_stat_user_indexes s
            JOIN pg_index i ON i.indexrelid = s.indexrelid
            WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary ORDER BY 1""")]

        result["long_transactions"] = [
            {"pid": pid, "seconds": int(seconds), "state": state, "application_name": app}
            for pid, seconds, state, app in fetch_all(cur, """
                SELECT pid, extract(epoch FROM now() - xact_start), state, application_name FROM pg_stat_activity
                WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
                  AND now() - xact_start > make_interval(secs => %s)""", (params["long_transaction_seconds"],))]
        for tx in result["long_transactions"]:
            problems.append("transaction of pid %d (%s, %s) open for %d s"
                            % (tx["pid"], tx["application_name"] or "?", tx["state"], tx["seconds"]))

        used = fetch_all(cur, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")[0][0]
        maximum = int(fetch_all(cur, "SHOW max_connections")[0][0])
        ratio = used / float(maximum)
        result["connections"] = {"used": used, "max": maximum, "ratio": round(ratio, 3)}
        text = "connections at %d%% of max_connections (%d of %d)" % (ratio * 100, used, maximum)
        if ratio >= params["connections_critical"]:
            problems.append(text)
        elif ratio >= params["connections_warning"]:
            warnings.append(text)

        failures = fetch_all(cur, "SELECT checksum_failures FROM pg_stat_database WHERE datname = current_database()")
        result["checksum_failures"] = failures[0][0] if failures else None
        if result["checksum_failures"]:
            problems.append("%d data checksum failure(s) in this database: storage is corrupting pages; restore "
                            "from a verified backup" % result["checksum_failures"])

        result["amcheck"] = run_amcheck(cur, params, problems, warnings)
    return result


def run_amcheck(cur, params, problems, warnings):
    if not params["amcheck"]:
        return "skipped"
    if not fetch_all(cur, "SELECT 1 FROM pg_extension WHERE extname = 'amcheck'"):
        return "not installed"
    indexes = fetch_all(cur, """
        SELECT c.oid::regclass::text, c.oid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE a.amname = 'btree' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'""")
    for name, oid in indexes:
        try:
            cur.execute("SAVEPOINT amcheck")
            cur.execute("SELECT bt_index_check(%s)", (oid,))
            cur.execute("RELEASE SAVEPOINT amcheck")
        except psycopg2.errors.InsufficientPrivilege:
            cur.execute("ROLLBACK TO SAVEPOINT amcheck")
            warnings.append("amcheck is installed but this role may not run bt_index_check; GRANT EXECUTE ON "
                            "FUNCTION bt_index_check(regclass) to it")
            return "no permission"
        except psycopg2.Error as exc:
            cur.execute("ROLLBACK TO SAVEPOINT amcheck")
            problems.append("amcheck found index %s damaged: %s; REINDEX it" % (name, first_line(str(exc))))
    return "checked %d indexes" % len(indexes)


def check(client, result):
    params = client.params
    problems, warnings = [], []
    conn = client.connect(autocommit=False)
    try:
        conn.set_session(readonly=True)
        result["server_version"] = client.server_version(conn)
        result["database_size"] = client.database_size(conn)
        result.update(health_facts(conn, params, (problems, warnings)))
        conn.rollback()
    finally:
        conn.close()
    result.update(ok=not problems, problems=problems, warnings_found=warnings)
    if problems and params["fail_on_problems"]:
        raise PostgresError("health check of database '%s' found %d problem(s): %s" % (
            params["db"], len(problems), "; ".join(problems[:3])))


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        connections_warning=dict(type="float", default=0.8),
        connections_critical=dict(type="float", default=0.95),
        dead_tuple_ratio=dict(type="float", default=0.2),
        long_transaction_seconds=dict(type="int", default=300),
        largest_tables=dict(type="int", default=10),
        amcheck=dict(type="bool", default=True),
        fail_on_problems=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = PostgresClient(module)
    action = "health check of database '%s'" % module.params["db"]
    run_main(module, lambda result: check(client, result), {"changed": False, "ok": False}, action,
             describe=explain(action))


if __name__ == "__main__":
    main()
