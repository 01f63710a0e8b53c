# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One way to run a command and one way to fail, for every module.

``ModuleError`` is the base of every error a module reports. Its message says
what failed, on which object, why and what to do; its ``details`` go into the
failed result beside the message: for a program that failed, ``rc``, the end of
its ``stderr`` and its ``cmd`` with anything secret-looking masked.

``run_command`` runs a program through ``module.run_command`` (a list, never a
shell); a program that has to be fed or drained through a pipe is judged by
``check_exit`` the same way. ``run_main`` ends every module the same way:
``elapsed`` in the result, a ModuleError or an OSError failed with its sentence.
"""

import errno
import re
import shlex
import time

STDERR_KEPT = 4000  # characters of a failed program's stderr kept in the result

_SECRET_NAME = r"[\w-]*(?:password|passwd|secret|token)[\w-]*"
_SECRET_OPTION = re.compile(r"(?i)^(-{1,2}%s=).+$" % _SECRET_NAME)
_SECRET_FLAG = re.compile(r"(?i)^-{1,2}%s$" % _SECRET_NAME)  # its value is the next argument
_SECRET_IN_URI = re.compile(r"(://[^:/@\s]*:)\S*@")
_SECRET_KEYWORD = re.compile(r"""(?i)\b(password\s*=\s*)('[^']*'|"[^"]*"|\S+)""")
_SECRET_SQL = re.compile(r"""(?i)\b(password\s+)(E?'(?:[^']|'')*')""")


class ModuleError(Exception):
    """An error a module reports as its failure, with ``details`` for the result."""

    def __init__(self, msg, **details):
        super(ModuleError, self).__init__(msg)
        self.details = details


class CommandError(ModuleError):
    """A program failed: ``rc``, ``stderr`` and the redacted ``cmd`` are its details."""

    def __init__(self, msg, argv, rc, stderr):
        super(CommandError, self).__init__(redact_text(msg), rc=rc, stderr=redact_text(stderr)[-STDERR_KEPT:],
                                           cmd=" ".join(shlex.quote(arg) for arg in redact(argv)))


def redact_text(text):
    """``text`` with passwords in URIs, ``password=...`` keywords and SQL's
    ``PASSWORD '...'`` masked."""
    text = _SECRET_IN_URI.sub(r"\1********@", text)
    return _SECRET_SQL.sub(r"\1'********'", _SECRET_KEYWORD.sub(r"\1********", text))


def redact(argv):
    """``argv`` as it may be shown: option values that look secret are masked.
    (The collection never puts a secret on a command line; this is the second line.)"""
    shown = []
    for arg in argv:
        if shown and _SECRET_FLAG.match(shown[-1]):
            shown.append("********")
        else:
            shown.append(_SECRET_OPTION.sub(r"\1********", redact_text(str(arg))))
    return shown


def first_line(text):
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def check_exit(argv, rc, stderr, what, error_lines=None):
    """Raise CommandError unless ``rc`` is 0 and ``error_lines(stderr)`` finds no
    error (some tools exit 0 after one). The message names ``what`` and quotes
    the first error line."""
    found = error_lines(stderr) if error_lines else []
    if rc != 0 or found:
        reason = first_line("\n".join(found) or stderr) or "no message on stderr"
        raise CommandError("%s failed (rc=%d): %s" % (what, rc, reason), argv, rc, stderr)


def run_command(module, argv, what, env=None, error_lines=None):
    """Run ``argv`` with ``module.run_command`` (``env`` added to the environment),
    every argument as given (Ansible would expand ``$VAR`` and ``~`` in them, names
    and paths included); returns its stdout, or raises CommandError (see ``check_exit``)."""
    rc, out, err = module.run_command(list(argv), environ_update=env or {}, expand_user_and_vars=False)
    check_exit(argv, rc, err, what, error_lines)
    return out


def describe_os_error(exc, action, path=None):
    """An operator's sentence for an OS error met while doing ``action`` on ``path``."""
    path = path or getattr(exc, "filename", None) or "?"
    if exc.errno == errno.ENOSPC:
        return ("%s failed: no space left on device writing '%s'; free space or choose another destination "
                "(earlier backups were not touched)" % (action, path))
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "%s failed: permission denied on '%s'; run as a user that may write there" % (action, path)
    if exc.errno == errno.EROFS:
        return "%s failed: '%s' is on a read-only filesystem; choose another destination" % (action, path)
    return "%s failed on '%s': %s" % (action, path, exc.strerror or exc)


def run_main(module, work, result, action, subject=None, describe=None, cleanup=None):
    """End a module: ``work(result)`` fills ``result``; then ``elapsed`` is added and
    the module exits. A ModuleError fails with its message and details, an OSError
    with ``describe_os_error`` (``action`` on its file, else on ``subject``);
    ``describe`` may turn any other error into a message (or return None to let
    it through). ``cleanup`` runs in every case."""
    started = time.monotonic()
    failure = None
    try:
        work(result)
    except ModuleError as exc:
        failure = dict(exc.details, msg=str(exc))
    except OSError as exc:
        failure = {"msg": describe_os_error(exc, action, exc.filename or subject)}
    except Exception as exc:  # pylint: disable=broad-except
        message = describe(exc) if describe else None
        if message is None:
            raise
        failure = {"msg": message}
    finally:
        if cleanup is not None:
            cleanup()
    result["elapsed"] = round(time.monotonic() - started, 3)
    if failure:
        module.fail_json(**dict(result, **failure))
    module.exit_json(**result)
