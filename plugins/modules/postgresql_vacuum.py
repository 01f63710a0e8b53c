#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: postgresql_vacuum
short_description: VACUUM, ANALYZE and REINDEX a PostgreSQL database, schema or tables
version_added: 0.1.0
description:
  - Runs the weekly C(VACUUM ANALYZE) bots need, and C(REINDEX) (C(CONCURRENTLY) on
    servers that have it, PostgreSQL 12 and newer), for the whole database, one
    schema, or listed tables or indexes.
  - Every identifier is quoted with C(psycopg2.sql), and every table or index is looked
    up in the catalog first; a name that does not exist is an error, never SQL.
  - Returns dead tuples and sizes per table before and after.
author:
  - botops.runbook developers (@botops)
extends_documentation_fragment:
  - botops.runbook.postgres
attributes:
  check_mode:
    support: full
    description: Looks up every object and reads the statistics; predicts C(changed) and runs nothing.
  diff_mode:
    support: none
    description: The result carries before and after statistics instead.
options:
  operation:
    description: What to run.
    type: str
    choices: [vacuum, analyze, reindex]
    default: vacuum
  full:
    description: C(VACUUM FULL) (rewrites tables and locks them exclusively while it runs).
    type: bool
    default: false
  freeze:
    description: C(VACUUM FREEZE).
    type: bool
    default: false
  analyze:
    description: C(VACUUM ANALYZE) (with O(operation=vacuum)).
    type: bool
    default: true
  schema:
    description: Only the tables of this schema (or, for reindex, this schema).
    type: str
  tables:
    description: Only these tables, as C(table) or C(schema.table).
    type: list
    elements: str
    default: []
  indexes:
    description: For O(operation=reindex), only these indexes, as C(index) or C(schema.index).
    type: list
    elements: str
    default: []
  concurrently:
    description: C(REINDEX CONCURRENTLY) where the server has it (no write lock on the table).
    type: bool
    default: true
notes:
  - C(changed) is true for C(analyze) and C(reindex), which always do their work, and for
    C(vacuum) when there were dead tuples to remove (or with O(full) or O(freeze)).
"""

EXAMPLES = r"""
- name: Weekly VACUUM ANALYZE
  botops.runbook.postgresql_vacuum:
    db: clips

- name: Rebuild the indexes of the messages table without blocking the bot
  botops.runbook.postgresql_vacuum:
    db: psychochauffeur
    operation: reindex
    tables: [public.messages]
"""

RETURN = r"""
before:
  description: Per table, dead tuples and total bytes before.
  returned: always
  type: dict
  sample: {"public.messages": {"dead_tuples": 1200, "bytes": 8192000}}
after:
  description: Per table, dead tuples and total bytes after (equal to before in check mode).
  returned: always
  type: dict
  sample: {"public.messages": {"dead_tuples": 0, "bytes": 7372800}}
statements:
  description: The SQL statements run (or, in check mode, that would run).
  returned: always
  type: list
  elements: str
  sample: ['VACUUM (ANALYZE) "public"."messages"']
elapsed:
  description: Seconds the operation took.
  returned: always
  type: float
  sample: 3.2
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botops.runbook.plugins.module_utils._postgres import (
    PostgresClient,
    PostgresError,
    connection_argument_spec,
    explain,
    sql,
)
from ansible_collections.botops.runbook.plugins.module_utils._run import run_main


def split_names(name):
    """Every way to read ``name``: unqualified, and schema.name at each dot (a schema
    or a table may hold dots of its own)."""
    splits = [(None, name)]
    for at, char in enumerate(name):
        if char == ".":
            splits.append((name[:at], name[at + 1:]))
    return splits


def resolve(cur, names, kinds, what):
    """[(schema, name)] of existing relations; anything else is an error that names it."""
    found, missing, ambiguous = [], [], []
    for name in names:
        rows = set()
        for schema, rel in split_names(name):
            cur.execute("""SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE c.relname = %s AND c.relkind = ANY(%s) AND (%s::text IS NULL AND
                                 pg_table_is_visible(c.oid) OR n.nspname = %s)""", (rel, list(kinds), schema, schema))
            rows.update(tuple(row) for row in cur.fetchall())
        if len(rows) == 1:
            found.append(rows.pop())
        elif rows:
            ambiguous.append("%r (%s)" % (name, " or ".join(sorted('"%s" in schema "%s"' % (n, s) for s, n in rows))))
        else:
            missing.append(name)
    if missing:
        raise PostgresError("%s not found in the database: %s; check the names (schema.name)"
                            % (what, ", ".join(repr(m) for m in missing)))
    if ambiguous:
        raise PostgresError("%s ambiguous: %s; a dot separates schema and name, and these names hold dots of their "
                            "own: rename one of them, or give the schema (schema=)" % (what, ", ".join(ambiguous)))
    return found


def table_stats(cur, scope):
    cur.execute("""SELECT schemaname, relname, n_dead_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables""")
    stats = {}
    for schema, name, dead, size in cur.fetchall():
        if scope is None or (schema, name) in scope:
            stats["%s.%s" % (schema, name)] = {"dead_tuples": dead, "bytes": size}
    return stats


def build_statements(params, tables, indexes, schema, server_version):
    ident = sql.Identifier
    if params["operation"] == "reindex":
        concurrently = sql.SQL(" CONCURRENTLY") if params["concurrently"] and server_version >= 120000 else sql.SQL("")
        if indexes:
            return [sql.SQL("REINDEX INDEX{} {}.{}").format(concurrently, ident(s), ident(n)) for s, n in indexes]
        if tables:
            return [sql.SQL("REINDEX TABLE{} {}.{}").format(concurrently, ident(s), ident(n)) for s, n in tables]
        if schema:
            return [sql.SQL("REINDEX SCHEMA{} {}").format(concurrently, ident(schema))]
        return [sql.SQL("REINDEX DATABASE{} {}").format(concurrently, ident(params["db"]))]
    if params["operation"] == "analyze":
        verb, options = sql.SQL("ANALYZE"), []
    else:
        verb = sql.SQL("VACUUM")
        options = [sql.SQL(word) for word, on in (("FULL", params["full"]), ("FREEZE", params["freeze"]),
                                                  ("ANALYZE", params["analyze"])) if on]
    head = sql.SQL("{} ({})").format(verb, sql.SQL(", ").join(options)) if options else verb
    if tables:
        return [sql.SQL("{} {}.{}").format(head, ident(s), ident(n)) for s, n in tables]
    return [head]


def maintain(client, result):
    params = client.params
    if params["indexes"] and params["operation"] != "reindex":
        raise PostgresError("indexes= goes with operation=reindex")
    conn = client.connect()  # autocommit: VACUUM cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            tables = resolve(cur, params["tables"], "rp", "table(s)")
            indexes = resolve(cur, params["indexes"], "iI", "index(es)")
            schema = params["schema"]
            if schema:
                cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
                if not cur.fetchone():
                    raise PostgresError("schema %r not found in database '%s'" % (schema, params["db"]))
                cur.execute("SELECT schemaname, relname FROM pg_stat_user_tables WHERE schemaname = %s", (schema,))
                tables = [tuple(row) for row in cur.fetchall()] if params["operation"] != "reindex" else tables
            scope = set(tables) if tables else None
            before = table_stats(cur, scope)
            statements = build_statements(params, tables, indexes, schema, conn.server_version)
            result["statements"] = [statement.as_string(conn) for statement in statements]
            if params["operation"] == "vacuum":
                changed = params["full"] or params["freeze"] or any(s["dead_tuples"] for s in before.values())
            else:
                changed = True
            result.update(changed=changed, before=before)
            if not client.module.check_mode:
                for statement in statements:
                    cur.execute(statement)
                cur.execute("SELECT pg_stat_clear_snapshot()")
                after = table_stats(cur, scope)
            else:
                after = before
            result["after"] = after
    finally:
        conn.close()


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        operation=dict(type="str", choices=["vacuum", "analyze", "reindex"], default="vacuum"),
        full=dict(type="bool", default=False),
        freeze=dict(type="bool", default=False),
        analyze=dict(type="bool", default=True),
        schema=dict(type="str"),
        tables=dict(type="list", elements="str", default=[]),
        indexes=dict(type="list", elements="str", default=[]),
        concurrently=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=[("schema", "tables")],
                           supports_check_mode=True)
    client = PostgresClient(module)
    action = "%s of database '%s'" % (module.params["operation"], module.params["db"])
    run_main(module, lambda result: maintain(client, result), {"changed": False}, action, describe=explain(action))


if __name__ == "__main__":
    main()
