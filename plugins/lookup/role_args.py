# -*- coding: utf-8 -*-
# Copyright: botops.runbook developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job contract of a botops.runbook role: its variables, as a scheduler sends them."""

from __future__ import annotations

DOCUMENTATION = r"""
name: role_args
author: botops.runbook developers (@botops)
short_description: A role's variables, coerced and validated the way a scheduler sends them
description:
  - Reads the options of a role's entry point from its C(meta/argument_specs.yml) (the one source of truth), takes each
    from the current variables, and returns them validated and converted to their types by ansible-core's own
    argument spec validator (the engine of M(ansible.builtin.validate_argument_spec)).
  - Scheduler semantics, for values given as extra vars by AWX or Semaphore surveys or by C(-e key=value) -
    C("false")/C("no")/C("0") is false and C("true")/C("yes")/C("1") true for a boolean, C("1") is 1 for an integer,
    and an empty string is an unset optional, which takes the role's default. A value that is none of these (C("maybe")
    for a boolean) fails, naming the variable, the value, what it must be and the default.
  - Extra vars win over every other variable, so no task can rewrite a survey's C("") in place; the roles read their
    options through this lookup's result instead of the raw variables.
options:
  _terms:
    description: The role's name (in this collection), such as C(backup).
    required: true
    type: list
    elements: str
  entry_point:
    description: The entry point whose options are read.
    type: str
    default: main
"""

EXAMPLES = r"""
- name: The role's options, once per host (fails early and clearly on a bad survey answer)
  ansible.builtin.set_fact:
    __backup: "{{ lookup('botops.runbook.role_args', 'backup') }}"
"""

RETURN = r"""
_raw:
  description: One dictionary, option name to its validated value (defaults applied).
  type: list
  elements: dict
"""

import os
import re

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.lookup import LookupBase
from ansible.utils.vars import isidentifier

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core requires PyYAML
    yaml = None

try:  # ansible-core 2.19: only a string marked as a template is templated
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - older cores template every string
    def trust_as_template(value):
        return value

_ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
# What validate_argument_spec reads of an option; the rest (description, ...) is documentation.
_SPEC_KEYS = ("type", "elements", "default", "choices", "required", "options", "no_log", "aliases")


def load_entry_point(role, entry_point="main", roles_dir=_ROLES):
    """The options of `role`'s `entry_point`, as written in its meta/argument_specs.yml."""
    if not isidentifier(role):
        raise AnsibleLookupError("role_args: %r is not a role name of botops.runbook" % (role,))
    path = os.path.join(roles_dir, role, "meta", "argument_specs.yml")
    try:
        with open(path, encoding="utf-8") as handle:
            specs = yaml.safe_load(handle)["argument_specs"]
    except (OSError, KeyError, TypeError) as exc:
        raise AnsibleLookupError("role_args: cannot read the argument specs of role %r at %s: %s" % (role, path, exc))
    if entry_point not in specs:
        raise AnsibleLookupError("role_args: role %r has no entry point %r (it has: %s)" % (role, entry_point, ", ".join(sorted(specs))))
    return specs[entry_point].get("options") or {}


def _validator_spec(options):
    spec = {}
    for name, option in options.items():
        entry = {key: option[key] for key in _SPEC_KEYS if key in option and key != "options"}
        # Defaults are applied from the role's variables (its defaults/main.yml, templated),
        # not from the spec's text, which may be a template.
        entry.pop("default", None)
        entry["required"] = False
        if "options" in option:
            entry["options"] = _suboptions(option["options"])
        spec[name] = entry
    return spec


def _suboptions(options):
    spec = {}
    for name, option in options.items():
        entry = {key: option[key] for key in _SPEC_KEYS if key in option and key != "options"}
        if "options" in option:
            entry["options"] = _suboptions(option["options"])
        spec[name] = entry
    return spec


_INT = re.compile(r"\A[+-]?[0-9]+\Z")
_FLOAT = re.compile(r"\A[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")


def _scrub(message, value):
    """A validator message with any string of `value` (a list or dict given) that could be a secret cut out."""
    secrets = []

    def walk(item):
        if isinstance(item, dict):
            for key, sub in item.items():
                if "password" in str(key) and isinstance(sub, str) and sub:
                    secrets.append(sub)
                walk(sub)
        elif isinstance(item, list):
            for sub in item:
                walk(sub)
    walk(value)
    for secret in secrets:
        message = message.replace(secret, "********")
    return message


def _unset(value):
    return value is None or (isinstance(value, str) and value.strip() == "")


def _shown(value):
    """A given value as an error message shows it: scalars as given, never a list's or dict's content (passwords)."""
    if isinstance(value, (dict, list)):
        return "<a %s of %d>" % (type(value).__name__, len(value))
    return repr(value)


def _what(option):
    kind = option.get("type", "str")
    if kind == "bool":
        return "a boolean (true/false, yes/no, 1/0)"
    if kind == "int":
        return "an integer"
    if kind == "float":
        return "a number"
    if option.get("choices"):
        return "one of %s" % ", ".join(str(c) for c in option["choices"])
    return "a value of type %s" % kind


def coerce(role, options, values, defaults):
    """Validated `values` (name -> given value) of `options`; `defaults` (name -> value) fill the unset ones.

    An empty (or blank) string and None stand for an unset option, which takes its
    default (an optional without one is left out).
    """
    params = {}
    for name, option in options.items():
        given = values.get(name)
        if name in values and not _unset(given):
            params[name] = given
        elif name in defaults:
            params[name] = defaults[name]
    strict = []
    for name, option in options.items():
        given = params.get(name)
        if not isinstance(given, str):
            continue
        kind = option.get("type", "str")
        # ansible-core would take "1e3" for 1000, "3_0" for 30 and "nan" for a number
        # that every comparison fails: a survey answer means what it says, or fails.
        if kind == "int" and not _INT.match(given.strip()):
            strict.append(name)
        elif kind == "float" and not _FLOAT.match(given.strip()):
            strict.append(name)
    result = ArgumentSpecValidator(_validator_spec(options)).validate(params)
    if result.error_messages or strict:
        problems = []
        for name, option in options.items():
            named = name in strict or any(re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(name), message)
                                          for message in result.error_messages)
            if not named:
                continue
            if option.get("type") in ("list", "dict") and name not in strict:
                # A list or dict (databases with passwords): the validator's words, which
                # name the entry's field, never the value.
                problems.extend(_scrub(message, values.get(name)) for message in result.error_messages
                                if re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(name), message))
                continue
            default = defaults.get(name, option.get("default"))
            problems.append(
                "variable %s=%s must be %s%s" % (
                    name, _shown(values.get(name, params.get(name))), _what(option),
                    "" if (name not in defaults and "default" not in option) or isinstance(default, (list, dict)) else
                    " (leave it empty for the default, %r)" % (default,)))
        if not problems:
            problems = [_scrub(message, None) for message in result.error_messages]
        raise AnsibleLookupError(
            "botops.runbook.%s: %s. Fix it where it is set (a survey answer, -e, or the inventory)."
            % (role, "; ".join(problems)))
    validated = result.validated_parameters
    missing = [name for name, option in options.items() if option.get("required") and _unset(validated.get(name))]
    if missing:
        raise AnsibleLookupError(
            "botops.runbook.%s: %s required and not set. Set %s in the inventory, a survey answer or -e."
            % (role, ", ".join(missing), "it" if len(missing) == 1 else "them"))
    return validated


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        out = []
        for role in terms:
            options = load_entry_point(role, self.get_option("entry_point"))
            values = {}
            for name in options:
                if name in variables:
                    values[name] = self._templar.template(variables[name])
            defaults = {}
            for name, option in options.items():
                if "default" in option:
                    default = option["default"]
                    # The spec is this collection's own file: its defaults are templates as
                    # much as the role's defaults/main.yml is.
                    if isinstance(default, str):
                        default = trust_as_template(default)
                    defaults[name] = self._templar.template(default)
            out.append(coerce(role, options, values, defaults))
        return out
