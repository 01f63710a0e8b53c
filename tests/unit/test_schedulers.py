# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWX and Semaphore definitions: generated from the roles' argument specs (and
current), well-formed by each scheduler's own rules, and meaning what the roles read;
the execution environment renders with ansible-builder; the AWX playbook parses."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_collections.botops.runbook.plugins.lookup.role_args import coerce, load_entry_point

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import schedulers  # noqa: E402 pylint: disable=wrong-import-position,import-error

AWX_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
AWX_KEYS = {"question_name", "question_description", "variable", "type", "choices", "required", "default", "min", "max"}
SEMAPHORE_TYPES = {"", "int", "secret", "enum"}
JOBS = yaml.safe_load(open(os.path.join(REPO, "examples", "schedulers", "jobs.yml"), encoding="utf-8"))["jobs"]


def surveys():
    folder = os.path.join(REPO, "examples", "awx", "surveys")
    return {name: json.load(open(os.path.join(folder, name), encoding="utf-8")) for name in sorted(os.listdir(folder))}


def test_the_generated_files_are_current():
    assert schedulers.main(["--check"]) == 0, "run python3 scripts/schedulers.py and commit what it writes"


def test_every_job_has_a_playbook_a_survey_file_and_a_semaphore_template():
    names = {s["name"] for s in surveys().values()}
    templates = json.load(open(os.path.join(REPO, "examples", "semaphore", "templates.json"), encoding="utf-8"))["templates"]
    assert names == {job["name"] for job in JOBS} == {t["name"] for t in templates}
    for job in JOBS:
        assert os.path.exists(os.path.join(REPO, job["playbook"])), job["playbook"]


@pytest.mark.parametrize("name", sorted(surveys()))
def test_awx_questions_follow_awx_rules(name):
    survey = surveys()[name]
    assert set(survey) == {"name", "description", "spec"}
    for question in survey["spec"]:
        assert set(question) <= AWX_KEYS and {"question_name", "variable", "type", "required", "default"} <= set(question)
        assert question["type"] in AWX_TYPES
        # awx#9620: a blank optional integer fails validation; optional numbers are text.
        assert question["type"] not in ("integer", "float") or question["required"], question
        if question["type"] == "multiplechoice":
            assert question["choices"] and question["default"] in question["choices"] + [""], question


def test_booleans_are_true_false_choices_and_their_answers_mean_the_role_option():
    # awx#553: no boolean type. Each answer a question allows must come out of the
    # role's own reading (role_args) as the type the role expects, and the default
    # answer as the role's default.
    for job in JOBS:
        spec = load_entry_point(job["role"], roles_dir=os.path.join(REPO, "roles"))
        survey = surveys()[schedulers.re.sub(r"[^a-z0-9]+", "-", job["name"].lower()).strip("-") + ".json"]
        renamed = {v: k for k, v in (job.get("variables") or {}).items()}
        for question in survey["spec"]:
            option_name = renamed.get(question["variable"], question["variable"])
            option = spec[option_name]
            if option.get("type") == "bool":
                assert question["type"] == "multiplechoice" and question["choices"] == ["true", "false"]
            answers = question.get("choices") or [question["default"]]
            for answer in answers + [""]:
                if option.get("required") and answer == "":
                    continue
                values = coerce(job["role"], {option_name: option}, {option_name: answer},
                                {option_name: option["default"]} if "default" in option else {})
                if answer == question["default"] and "default" in option and "{{" not in str(option["default"]):
                    assert values[option_name] == option["default"], (question, values)


def test_semaphore_variables_follow_semaphore_rules():
    templates = json.load(open(os.path.join(REPO, "examples", "semaphore", "templates.json"), encoding="utf-8"))["templates"]
    for template in templates:
        assert set(template) == {"name", "playbook", "inventory", "repository", "environment", "cron", "survey_vars"}
        assert template["cron"] == "" or len(template["cron"].split()) == 5
        for var in template["survey_vars"]:
            assert set(var) <= {"name", "title", "description", "type", "required", "values"}
            assert var["type"] in SEMAPHORE_TYPES
            assert (var["type"] == "enum") == ("values" in var)


def test_the_awx_playbook_parses():
    done = subprocess.run(["ansible-playbook", "--syntax-check", os.path.join(REPO, "examples", "awx", "configure.yml")],
                          capture_output=True, text=True, check=False, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_timer_runs_nightly():
    done = subprocess.run(["systemd-analyze", "calendar", "*-*-* 03:15:00"], capture_output=True, text=True, check=False)
    if done.returncode != 0 and "System has not been booted" in done.stderr:
        pytest.skip("systemd-analyze calendar needs systemd")
    timer = open(os.path.join(REPO, "examples", "systemd", "botops-backup.timer"), encoding="utf-8").read()
    assert "OnCalendar=*-*-* 03:15:00" in timer and "Persistent=true" in timer
    service = open(os.path.join(REPO, "examples", "systemd", "botops-backup.service"), encoding="utf-8").read()
    assert "playbooks/backup.yml" in service and "User=botops" in service


def test_the_execution_environment_renders(tmp_path):
    builder = shutil.which("ansible-builder")
    assert builder, "ansible-builder is in requirements-dev.txt"
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path / "dist"), REPO],
                   capture_output=True, text=True, check=True)
    shutil.copy(os.path.join(REPO, "execution-environment.yml"), tmp_path)
    done = subprocess.run([builder, "create", "-f", "execution-environment.yml", "-c", "context"],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert "quay.io/ansible/awx-ee" in containerfile and "ansible-core==2.19.14" in containerfile
    requirements = yaml.safe_load((tmp_path / "context" / "_build" / "requirements.yml").read_text())
    names = {c["name"] for c in requirements["collections"]}
    assert "community.postgresql" in names and "/build/collections/botops-runbook-0.1.0.tar.gz" in names
    assert (tmp_path / "context" / "_build" / "collections" / "botops-runbook-0.1.0.tar.gz").exists()
    assert "psycopg2-binary" in (tmp_path / "context" / "_build" / "requirements.txt").read_text()
