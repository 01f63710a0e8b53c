# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_run: the one failure path of the collection's modules."""

import errno

from hypothesis import given, strategies as st

from ansible_collections.botops.runbook.plugins.module_utils._run import (
    CommandError,
    ModuleError,
    check_exit,
    describe_os_error,
    redact,
    redact_text,
)

# A marker in front, so that a secret is never a word of the masked text itself ("pass").
SECRET = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Cc"), blacklist_characters="*"),
                 min_size=4, max_size=30).map(lambda text: "Qz7" + text)


@given(secret=SECRET, option=st.sampled_from(["--password", "--db-password", "-PASSWD", "--api-token", "--secret"]))
def test_an_option_that_looks_secret_never_shows_its_value(secret, option):
    shown = redact(["tool", "%s=%s" % (option, secret), "plain"])
    assert shown == ["tool", "%s=********" % option, "plain"]


@given(secret=SECRET.filter(lambda s: "@" not in s and "/" not in s and ":" not in s))
def test_a_password_in_a_uri_or_a_keyword_never_shows(secret):
    shown = redact(["psql", "postgresql://bot:%s@db:5432/botdb" % secret, "password=%s" % secret])
    assert secret not in " ".join(shown)
    assert shown[1] == "postgresql://bot:********@db:5432/botdb"


@given(secret=SECRET.filter(lambda s: "'" not in s))
def test_secrets_in_every_spelling_are_masked(secret):
    shown = redact(["tool", "--password", secret, "--api-token", secret, "password='%s x'" % secret,
                    "postgresql://bot:%s@x@db/botdb" % secret.replace("@", "")])
    assert shown[:5] == ["tool", "--password", "********", "--api-token", "********"]
    assert secret not in " ".join(shown[5:]) and "x@db/botdb" not in shown[6]
    assert redact_text("ALTER ROLE bot PASSWORD '%s'" % secret) == "ALTER ROLE bot PASSWORD '********'"


def test_the_message_of_a_failed_program_is_masked_too():
    try:
        check_exit(["psql"], 2, "psql: error: connection to postgresql://bot:hunter2@db failed", "a run")
    except CommandError as exc:
        assert "hunter2" not in str(exc) and "hunter2" not in exc.details["stderr"]
        assert "postgresql://bot:********@db" in str(exc)


def test_check_exit_judges_rc_and_error_lines():
    check_exit(["true"], 0, "warning: something\n", "a run")  # no error: nothing raised
    try:
        check_exit(["tool", "--x"], 0, "notice\nERROR: it broke\n", "a run",
                   error_lines=lambda text: [l for l in text.splitlines() if l.startswith("ERROR:")])
    except CommandError as exc:
        assert str(exc) == "a run failed (rc=0): ERROR: it broke"
        assert exc.details == {"rc": 0, "stderr": "notice\nERROR: it broke\n", "cmd": "tool --x"}
        assert isinstance(exc, ModuleError)
    else:
        raise AssertionError("an error line with rc 0 must fail")
    try:
        check_exit(["tool"], 3, "", "a run")
    except CommandError as exc:
        assert str(exc) == "a run failed (rc=3): no message on stderr"


def test_stderr_is_kept_to_its_end():
    try:
        check_exit(["tool"], 1, "x" * 10000 + "the end", "a run")
    except CommandError as exc:
        assert len(exc.details["stderr"]) == 4000 and exc.details["stderr"].endswith("the end")


def test_os_errors_are_sentences():
    assert describe_os_error(OSError(errno.ENOSPC, "No space"), "backup of 'x'", "/b/f") == (
        "backup of 'x' failed: no space left on device writing '/b/f'; free space or choose another destination "
        "(earlier backups were not touched)")
    assert describe_os_error(OSError(errno.EACCES, "Permission denied", "/b/f"), "restore") == (
        "restore failed: permission denied on '/b/f'; run as a user that may write there")
