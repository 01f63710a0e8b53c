# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    """Connection options shared by every postgresql_* module."""

    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host of the PostgreSQL server. Empty means the local Unix socket.
    type: str
    default: ''
  login_port:
    description: Port of the server.
    type: int
    default: 5432
  login_user:
    description: Role to connect as.
    type: str
    default: postgres
  login_password:
    description:
      - Password of O(login_user). It reaches the PostgreSQL tools through a private
        passfile (mode 0600, removed afterwards), never their command line, and never
        appears in results.
    type: str
    default: ''
  login_unix_socket:
    description: Directory of the server's Unix socket; overrides O(login_host).
    type: str
    default: ''
  db:
    description: Name of the database.
    type: str
    required: true
  ssl_mode:
    description: libpq C(sslmode) of the connection.
    type: str
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
    default: prefer
  connect_timeout:
    description: Seconds to wait for the server before failing (an unreachable host fails in this time).
    type: int
    default: 10
  bin_dir:
    description:
      - Directory of C(pg_dump), C(pg_restore), C(pg_dumpall) and C(psql). By default
        the PATH, then Debian's C(/usr/lib/postgresql/<newest>/bin).
    type: path
requirements:
  - psycopg2 on the managed host (Debian C(python3-psycopg2))
notes:
  - The modules are in the action group C(botops.runbook.postgresql), so a play can set
    the connection once with C(module_defaults).
"""
