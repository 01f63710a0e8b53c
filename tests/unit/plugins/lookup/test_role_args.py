# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""role_args: a role's variables as AWX and Semaphore send them (strings, "" for unset)
mean what they say, and anything else fails naming the variable and what it must be."""

import os

import pytest
import yaml
from ansible.errors import AnsibleLookupError
from hypothesis import given, strategies as st

from ansible_collections.botops.runbook.plugins.lookup.role_args import coerce, load_entry_point

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
OPTIONS = {
    "x_count": {"type": "int", "default": 14},
    "x_flag": {"type": "bool", "default": True},
    "x_ratio": {"type": "float", "default": 5.0},
    "x_mode": {"type": "str", "choices": ["full", "quick", "none"], "default": "full"},
    "x_name": {"type": "str", "default": ""},
    "x_list": {"type": "list", "elements": "str", "default": []},
}
DEFAULTS = {name: option["default"] for name, option in OPTIONS.items()}
TRUE = ["true", "True", "yes", "on", "1", "y", "t", True, 1]
FALSE = ["false", "False", "no", "off", "0", "n", "f", False, 0]


@pytest.mark.parametrize("text", TRUE)
def test_every_true_spelling_is_true(text):
    assert coerce("x", OPTIONS, {"x_flag": text}, DEFAULTS)["x_flag"] is True


@pytest.mark.parametrize("text", FALSE)
def test_every_false_spelling_is_false(text):
    # The bug this guards: "false" is a non-empty string, truthy in Jinja.
    assert coerce("x", OPTIONS, {"x_flag": text}, DEFAULTS)["x_flag"] is False


@pytest.mark.parametrize("name", sorted(OPTIONS))
@pytest.mark.parametrize("blank", ["", "  ", None])
def test_a_blank_answer_is_the_default(name, blank):
    assert coerce("x", OPTIONS, {name: blank}, DEFAULTS)[name] == DEFAULTS[name]


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_an_integer_as_a_string_is_that_integer(number):
    assert coerce("x", OPTIONS, {"x_count": str(number)}, DEFAULTS)["x_count"] == number


@given(st.text(max_size=20).filter(lambda t: t.strip() and t.strip().lower() not in
                                   {"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n", "t", "f", "1.0", "0.0"}))
def test_any_other_string_for_a_boolean_fails_naming_it(text):
    with pytest.raises(AnsibleLookupError) as caught:
        coerce("backup", OPTIONS, {"x_flag": text}, DEFAULTS)
    message = str(caught.value)
    assert "x_flag=" in message and "must be a boolean" in message and "botops.runbook.backup" in message
    assert "leave it empty for the default, True" in message


@pytest.mark.parametrize("value, kind", [("14 days", "an integer"), ("1.5x", "an integer"), ("maybe", "a boolean"),
                                         ("ten", "a number")])
def test_a_bad_number_or_boolean_fails_saying_what_it_must_be(value, kind):
    name = {"an integer": "x_count", "a boolean": "x_flag", "a number": "x_ratio"}[kind]
    with pytest.raises(AnsibleLookupError, match="variable %s='%s' must be %s" % (name, value, kind)):
        coerce("x", OPTIONS, {name: value}, DEFAULTS)


@pytest.mark.parametrize("name, value", [("x_count", "1e3"), ("x_count", "3_0"), ("x_count", "0x10"), ("x_count", "1.0"),
                                         ("x_ratio", "nan"), ("x_ratio", "inf"), ("x_ratio", "-Infinity"), ("x_ratio", "1e400")])
def test_a_number_means_its_digits_or_fails(name, value):
    with pytest.raises(AnsibleLookupError, match="variable %s='%s' must be" % (name, value)):
        coerce("x", OPTIONS, {name: value}, DEFAULTS)


def test_a_bad_entry_of_a_list_names_its_field_and_never_a_password():
    options = {"x_dbs": {"type": "list", "elements": "dict", "default": [],
                         "options": {"db": {"type": "str"}, "login_port": {"type": "int"},
                                     "login_password": {"type": "str", "no_log": True}}}}
    with pytest.raises(AnsibleLookupError) as caught:
        coerce("x", options, {"x_dbs": [{"db": "a", "login_port": "5432x", "login_password": "S3CRET_PW"}]},
               {"x_dbs": [{"db": "b", "login_password": "OTHER_PW"}]})
    assert "login_port" in str(caught.value) and "S3CRET_PW" not in str(caught.value) and "OTHER_PW" not in str(caught.value)


def test_a_choice_outside_the_list_fails_listing_the_choices():
    with pytest.raises(AnsibleLookupError, match="must be one of full, quick, none"):
        coerce("x", OPTIONS, {"x_mode": "fast"}, DEFAULTS)


def test_a_list_in_an_error_is_not_shown():
    # A list of databases carries passwords: the message says its shape, not its content.
    options = {"x_dbs": {"type": "int"}}
    with pytest.raises(AnsibleLookupError) as caught:
        coerce("x", options, {"x_dbs": [{"login_password": "s3cret"}]}, {})
    assert "s3cret" not in str(caught.value) and "<a list of 1>" in str(caught.value)


def test_a_required_option_left_blank_fails():
    options = {"x_db": {"type": "str", "required": True}}
    with pytest.raises(AnsibleLookupError, match="x_db required and not set"):
        coerce("x", options, {"x_db": ""}, {})


def test_values_of_the_right_type_pass_unchanged():
    values = {"x_count": 3, "x_flag": False, "x_ratio": 2.5, "x_mode": "quick", "x_name": "a", "x_list": ["b"]}
    assert coerce("x", OPTIONS, values, DEFAULTS) == values


ROLES = sorted(name for name in os.listdir(os.path.join(REPO, "roles"))
               if os.path.exists(os.path.join(REPO, "roles", name, "meta", "argument_specs.yml"))
               and os.path.exists(os.path.join(REPO, "roles", name, "defaults", "main.yml")))


@pytest.mark.parametrize("role", ROLES)
def test_each_role_defaults_file_says_its_argument_specs_defaults(role):
    # role_args applies the spec's defaults, ansible-core the defaults file's: one value.
    with open(os.path.join(REPO, "roles", role, "defaults", "main.yml"), encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle) or {}
    options = load_entry_point(role, roles_dir=os.path.join(REPO, "roles"))
    differ = {name: (defaults[name], options[name]["default"]) for name in options
              if name in defaults and "default" in options[name] and defaults[name] != options[name]["default"]}
    assert not differ, differ


def test_an_unknown_role_or_entry_point_fails_clearly():
    with pytest.raises(AnsibleLookupError, match="is not a role name"):
        load_entry_point("../etc")
    with pytest.raises(AnsibleLookupError, match="has no entry point 'nope'"):
        load_entry_point("backup", "nope", roles_dir=os.path.join(REPO, "roles"))
