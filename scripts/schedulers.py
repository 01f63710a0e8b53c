"""Generate the AWX survey specs and the Semaphore templates from the roles' argument specs.

    python3 scripts/schedulers.py           write examples/awx/surveys/*.json, examples/semaphore/templates.json
    python3 scripts/schedulers.py --check   exit 1 when a generated file differs from what is committed

One source of truth: a question's type, choices, default, whether it is required and
its help text are the role option's (meta/argument_specs.yml); examples/schedulers/jobs.yml
says only which options each job asks for. How the schedulers really pass values
shapes the mapping: AWX surveys have no boolean type (awx#553), so a boolean is a
multiple choice of "true"/"false"; a blank optional integer fails AWX's own
validation (awx#9620), so an optional number is a text answer the role validates
(botops.runbook.role_args: "" is the default); Semaphore sends every value as a
string and a cleared one as "" (semaphore#2182, #1533).
"""

import json
import os
import re
import sys

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
JOBS = os.path.join(REPO, "examples", "schedulers", "jobs.yml")
AWX_DIR = os.path.join(REPO, "examples", "awx", "surveys")
SEMAPHORE = os.path.join(REPO, "examples", "semaphore", "templates.json")
SURVEYABLE = {"bool", "int", "float", "str", "path", "raw"}


def options(role):
    with open(os.path.join(REPO, "roles", role, "meta", "argument_specs.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["argument_specs"]["main"].get("options") or {}


def text(description):
    words = " ".join(description) if isinstance(description, list) else str(description or "")
    words = re.sub(r"[CIBMO]\(([^)]*)\)", r"\1", words)
    return words if len(words) <= 500 else words[:497] + "..."


def literal_default(option):
    """The default as a survey shows it, or None when it is a template (per host) or empty."""
    default = option.get("default")
    if isinstance(default, str) and ("{{" in default or default == ""):
        return None
    if isinstance(default, (list, dict)):
        return None
    return default


def awx_question(name, variable, option):
    kind = option.get("type", "str")
    if kind not in SURVEYABLE:
        raise SystemExit("%s: type %s cannot be a survey question" % (name, kind))
    required = bool(option.get("required"))
    default = literal_default(option)
    question = {"question_name": name, "question_description": text(option.get("description")),
                "variable": variable, "required": required}
    if kind == "bool":
        question.update(type="multiplechoice", choices=["true", "false"],
                        default="" if default is None else ("true" if default else "false"))
    elif option.get("choices"):
        question.update(type="multiplechoice", choices=[str(c) for c in option["choices"]],
                        default="" if default is None else str(default))
    elif kind in ("int", "float") and required:
        question.update(type="integer" if kind == "int" else "float", default="" if default is None else default)
    elif option.get("no_log"):
        question.update(type="password", default="")
    else:
        # A number that may be left blank: AWX's integer type refuses a blank answer.
        question.update(type="text", default="" if default is None else str(default))
        if kind in ("int", "float"):
            question["question_description"] += " (a %s; empty for the default)" % ("whole number" if kind == "int" else "number")
    question.update(min=0, max=1024) if question["type"] in ("text", "password") else None
    return question


def semaphore_var(name, variable, option):
    kind = option.get("type", "str")
    default = literal_default(option)
    var = {"name": variable, "title": name, "description": text(option.get("description")),
           "required": bool(option.get("required"))}
    if kind == "bool" or option.get("choices"):
        values = ["true", "false"] if kind == "bool" else [str(c) for c in option["choices"]]
        var.update(type="enum", values=[{"name": v, "value": v} for v in values])
    elif kind == "int":
        var["type"] = "int"
    elif option.get("no_log"):
        var["type"] = "secret"
    else:
        var["type"] = ""
    if default is not None:
        var["description"] += " Default: %s." % (("true" if default else "false") if kind == "bool" else default)
    return var


def generate():
    with open(JOBS, encoding="utf-8") as handle:
        jobs = yaml.safe_load(handle)["jobs"]
    files = {}
    templates = []
    for job in jobs:
        spec = options(job["role"])
        renames = job.get("variables") or {}
        questions, survey_vars = [], []
        for name in job.get("survey") or []:
            if name not in spec:
                raise SystemExit("job %r asks for %s, which role %s does not have" % (job["name"], name, job["role"]))
            variable = renames.get(name, name)
            questions.append(awx_question(name, variable, spec[name]))
            survey_vars.append(semaphore_var(name, variable, spec[name]))
        slug = re.sub(r"[^a-z0-9]+", "-", job["name"].lower()).strip("-")
        files[os.path.join(AWX_DIR, slug + ".json")] = {
            "name": job["name"], "description": "%s (from roles/%s/meta/argument_specs.yml)" % (job["playbook"], job["role"]),
            "spec": questions}
        templates.append({"name": job["name"], "playbook": job["playbook"], "inventory": "botops",
                          "repository": "botops.runbook", "environment": "botops",
                          "cron": (job.get("schedule") or {}).get("cron", ""), "survey_vars": survey_vars})
    files[SEMAPHORE] = {"templates": templates}
    return {path: json.dumps(data, indent=2, sort_keys=True) + "\n" for path, data in files.items()}


def main(argv):
    generated = generate()
    stale = []
    for path, content in sorted(generated.items()):
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current != content:
            stale.append(os.path.relpath(path, REPO))
            if "--check" not in argv:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(content)
    known = {p for p in generated if p.startswith(AWX_DIR)}
    extra = [os.path.join(AWX_DIR, n) for n in (os.listdir(AWX_DIR) if os.path.isdir(AWX_DIR) else [])
             if os.path.join(AWX_DIR, n) not in known]
    for path in extra:
        stale.append(os.path.relpath(path, REPO))
        if "--check" not in argv:
            os.remove(path)
    if "--check" in argv and stale:
        print("stale, run python3 scripts/schedulers.py: %s" % ", ".join(stale))
        return 1
    for path in stale:
        print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
