# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's metadata tells the truth: galaxy.yml's version and dependencies,
meta/runtime.yml's action groups and requires_ansible, against the content itself."""

import json
import os
import re

import ansible
import pytest
import yaml

from ansible_collections.botops.runbook.plugins.module_utils._version import COLLECTION_VERSION

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OURS = {"botops.runbook", "ansible.builtin"}

# Where a name of another collection's content stands in a role, a playbook or a
# template: a task's module key, module_defaults (`group/...`), a role to include,
# a connection plugin, a filter, a lookup, a test, a `collections:`/`roles:` item.
_FQCN = r"([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*"
_CONTEXTS = [re.compile(pattern, re.MULTILINE) for pattern in (
    r"^\s*(?:-\s+)?%s\s*:" % _FQCN,
    r"group/%s" % _FQCN,
    r"^\s*(?:-\s+)?(?:name|role|connection|ansible_connection|strategy)\s*:\s*['\"]?%s['\"]?\s*$" % _FQCN,
    r"^\s*-\s+['\"]?%s['\"]?\s*$" % _FQCN,
    r"\|\s*%s" % _FQCN,
    r"\b(?:lookup|query|q)\(\s*['\"]%s" % _FQCN,
    r"\bis\s+(?:not\s+)?%s" % _FQCN,
)]


def read(*parts):
    with open(os.path.join(REPO, *parts)) as handle:
        return handle.read()


def load(*parts):
    return yaml.safe_load(read(*parts))


def collections_named_in(text):
    return {match.group(1) for pattern in _CONTEXTS for match in pattern.finditer(text)}


def content_files():
    for top in ("roles", "playbooks"):
        for directory, dummy, names in os.walk(os.path.join(REPO, top)):
            for name in names:
                if name.endswith((".yml", ".yaml", ".j2")):
                    yield os.path.join(directory, name)


def collections_used():
    """{collection: [files naming it]} for every collection but ours and ansible.builtin."""
    used = {}
    for path in content_files():
        with open(path) as handle:
            for collection in collections_named_in(handle.read()) - OURS:
                used.setdefault(collection, []).append(os.path.relpath(path, REPO))
    return used


def plugin_imports():
    """Collections whose module_utils the plugins import."""
    found = set()
    for directory, dummy, names in os.walk(os.path.join(REPO, "plugins")):
        for name in names:
            if name.endswith(".py"):
                with open(os.path.join(directory, name)) as handle:
                    found.update(re.findall(r"ansible_collections\.([a-z0-9_]+\.[a-z0-9_]+)\.", handle.read()))
    return found - OURS


def version_tuple(text):
    return tuple(int(part) for part in re.match(r"(\d+)\.(\d+)\.(\d+)", text).groups())


def test_collection_version_matches_galaxy_yml():
    assert load("galaxy.yml")["version"] == COLLECTION_VERSION


def test_the_scanner_finds_a_collection_in_every_place_one_is_named():
    # Each line names another collection in one of the ways the scan looks for.
    sample = "\n".join([
        "- name: Ensure a role",
        "  a.one.postgresql_user:",
        "  module_defaults:",
        "    group/a.two.all:",
        "- ansible.builtin.include_role:",
        "    name: a.three.some_role",
        "  vars:",
        "    ansible_connection: a.four.podman",
        "    joined: \"{{ items | a.five.lists_mergeby('name') }}\"",
        "    secret: \"{{ lookup('a.six.passwordstore', 'bot') }}\"",
        "  when: address is a.seven.ipv4",
        "roles:",
        "  - a.eight.other_role",
        "  - role: a.nine.third_role",
    ])
    assert collections_named_in(sample) - {"ansible.builtin"} == {
        "a.%s" % n for n in "one two three four five six seven eight nine".split()}
    # Paths, file names and attribute chains are no collection.
    assert collections_named_in("src: settings.json.j2\nwhen: item.item.path\n"
                                "msg: '{{ item.path.endswith(\".db\") }}'") == set()


def test_galaxy_dependencies_are_exactly_the_collections_the_content_uses():
    used = collections_used()
    assert used, "the scan found no other collection at all: it is broken (roles/deploy uses community.postgresql)"
    dependencies = set(load("galaxy.yml").get("dependencies") or {})
    missing = {name: files for name, files in used.items() if name not in dependencies}
    assert not missing, "used under roles/ or playbooks/ but not in galaxy.yml dependencies: %s" % missing
    unused = dependencies - set(used) - plugin_imports()
    assert not unused, "galaxy.yml depends on collections nothing uses: %s" % sorted(unused)


def test_plugins_import_only_declared_collections():
    dependencies = set(load("galaxy.yml").get("dependencies") or {})
    assert plugin_imports() <= dependencies


@pytest.mark.parametrize("name", sorted(load("galaxy.yml").get("dependencies") or {}))
def test_each_dependency_has_a_minimum_that_the_tested_version_meets(name):
    spec = str(load("galaxy.yml")["dependencies"][name])
    match = re.fullmatch(r">=(\d+\.\d+\.\d+)", spec)
    assert match, "%s: give a minimum version as '>=X.Y.Z', not %r" % (name, spec)
    # The copy the tests run with: the one bundled in the `ansible` package.
    manifest = os.path.join(os.path.dirname(os.path.dirname(ansible.__file__)), "ansible_collections",
                            *name.split("."), "MANIFEST.json")
    if not os.path.exists(manifest):
        pytest.skip("%s is not installed beside ansible-core here" % name)
    with open(manifest) as handle:
        tested = json.load(handle)["collection_info"]["version"]
    assert version_tuple(tested) >= version_tuple(match.group(1))


def modules():
    return sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "plugins", "modules"))
                  if name.endswith(".py") and not name.startswith("_"))


def test_action_groups_name_only_modules_that_exist_and_miss_none():
    groups = load("meta", "runtime.yml")["action_groups"]
    assert set(groups) == {"backup", "sqlite", "postgresql"}
    for group, members in groups.items():
        assert sorted(members) == sorted(set(members)), "group %s lists a module twice" % group
        assert set(members) <= set(modules()), "group %s names modules that do not exist" % group
        assert set(members) == {m for m in modules() if m.startswith(group + "_")}, \
            "group %s must hold exactly the %s_* modules" % (group, group)


def _oldest_core():
    """The ansible-core that scripts/setup.sh installs for `make integration-oldest`."""
    found = re.findall(r"^oldest_requirements=\(.*\bansible-core==(\d+\.\d+\.\d+)\b", read("scripts", "setup.sh"),
                       re.MULTILINE)
    assert len(found) == 1, "scripts/setup.sh must pin one ansible-core in oldest_requirements=(...)"
    return found[0]


def test_requires_ansible_is_the_oldest_core_the_integration_tier_runs():
    requires = load("meta", "runtime.yml")["requires_ansible"]
    match = re.fullmatch(r">=(\d+)\.(\d+)\.0", requires)
    assert match, "requires_ansible is '>=X.Y.0', a minor release, not %r" % requires
    claimed = tuple(int(n) for n in match.groups())
    assert claimed == (2, 17), "the oldest tested ansible-core is 2.17 (make integration-oldest)"
    assert version_tuple(_oldest_core())[:2] == claimed, "make integration-oldest must run what requires_ansible claims"
    assert version_tuple(ansible.__version__)[:2] >= claimed
    assert re.search(r"^TIERS :=.*\sintegration-oldest\b", read("Makefile"), re.MULTILINE), \
        "make test runs the integration-oldest tier"


def test_readme_states_the_same_minimum():
    major, minor = re.fullmatch(r">=(\d+)\.(\d+)\.0", load("meta", "runtime.yml")["requires_ansible"]).groups()
    assert "ansible-core %s.%s or newer" % (major, minor) in read("README.md")


def playbook_inputs():
    """What the playbooks read from the inventory: botops_* variables, and the
    variables that choose a play's hosts and batch size."""
    found = set()
    for name in os.listdir(os.path.join(REPO, "playbooks")):
        if name.endswith(".yml"):
            text = read("playbooks", name)
            found.update(re.findall(r"\b(botops_[a-z0-9_]+)\s*\|\s*default\(", text))
            for value in re.findall(r"^\s*(?:-\s+)?(?:hosts|serial):\s*(.*)$", text, re.MULTILINE):
                found.update(re.findall(r"\{\{\s*([a-z_][a-z0-9_]*)", value))
    # ... and the inventory-wide botops_* variables the roles' defaults fall back to.
    for role in os.listdir(os.path.join(REPO, "roles")):
        defaults = os.path.join(REPO, "roles", role, "defaults", "main.yml")
        if os.path.exists(defaults):
            found.update(re.findall(r"\b(botops_[a-z0-9_]+)\s*\|\s*default\(", read("roles", role, "defaults", "main.yml")))
    return found


def test_readme_documents_every_playbook_input():
    inputs = playbook_inputs()
    assert {"botops_databases", "botops_bot_name", "botops_backup_root", "deploy_hosts"} <= inputs
    readme = read("README.md")
    undocumented = sorted(name for name in inputs if "`%s`" % name not in readme)
    assert not undocumented, "playbooks/ read these, README.md does not say them: %s" % undocumented
