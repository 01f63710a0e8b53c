# botops.runbook: one entry point for set-up, the demo and every test tier.
#   make demo                      boot local systemd hosts and run the playbooks on them
#   make demo-clean                remove the demo hosts
#   make test                      everything CI checks (.ci/run calls exactly this)
#   make lint | sanity | unit | integration | integration-oldest | molecule [SCENARIO=jobs] | crashtest | bench
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := $(shell scripts/setup.sh venv-path)
# ansible-core 2.17, the oldest meta/runtime.yml claims (make integration-oldest).
OLDEST_VENV := $(shell scripts/setup.sh oldest-venv-path)
# Work trees live outside the checkout: ansible-test rejects a collection copy
# inside a git checkout (it takes the parent repo's file list and skips targets).
BUILD ?= /tmp/botops-build/$(shell echo '$(CURDIR)' | sha256sum | cut -c1-10)
COLLECTIONS := $(BUILD)/collections
SANITY_TREE := $(BUILD)/sanity/ansible_collections/botops/runbook
OLDEST_TREE := $(BUILD)/oldest/ansible_collections/botops/runbook
SCENARIO ?= --all
PYTHON_VERSION := 3.11

export PATH := $(VENV)/bin:$(PATH)
# This tree, as botops.runbook, ahead of the collections bundled by `ansible`.
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PYTHONPATH := $(COLLECTIONS)
export CONTAINERS_CONF := $(CURDIR)/tests/hosts/containers.conf
export ANSIBLE_FORCE_COLOR ?= false
export PY_COLORS ?= 0

TIERS := lint sanity unit integration integration-oldest molecule

.PHONY: help setup venv oldest-venv collection-link demo demo-clean env test $(TIERS) crashtest bench clean

help:
	@sed -n '2,5p' Makefile | sed 's/^# *//'

setup:
	@scripts/setup.sh all

venv:
	@scripts/setup.sh venv

oldest-venv:
	@scripts/setup.sh oldest-venv

collection-link:
	@mkdir -p $(COLLECTIONS)/ansible_collections/botops
	@ln -sfn $(CURDIR) $(COLLECTIONS)/ansible_collections/botops/runbook

demo: setup collection-link
	@scripts/demo.sh

# eval "$$(make -s env)": this shell gets the venv and the collection, as make has them.
env: collection-link
	@echo 'export PATH="$(PATH)" ANSIBLE_COLLECTIONS_PATH="$(ANSIBLE_COLLECTIONS_PATH)" PYTHONPATH="$(PYTHONPATH)" CONTAINERS_CONF="$(CONTAINERS_CONF)"'

demo-clean:
	podman rm -f demo-bot1 demo-db1 || true
	podman network rm botops-demo || true

# Every tier, fastest first; each prints its time, and the first failure stops.
test: setup collection-link
	@summary=""; for tier in $(TIERS); do \
	  start=$$(date +%s); \
	  $(MAKE) --no-print-directory $$tier; \
	  summary+="tier $$tier: passed in $$(( $$(date +%s) - start )) s"$$'\n'; \
	done; printf '\n%s' "$$summary"; \
	echo "tiers: $(words $(TIERS)) passed, 0 failed"

lint: venv collection-link
	yamllint --strict .
	ansible-lint --strict
	antsibull-changelog lint

# ansible-test needs the tracked files at .../ansible_collections/botops/runbook,
# as a real copy (it resolves symlinks) outside this checkout; one per core tested.
$(SANITY_TREE) $(OLDEST_TREE): FORCE
	@rm -rf $@ && mkdir -p $@
	@git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C $@
FORCE:

sanity: venv $(SANITY_TREE)
	cd $(SANITY_TREE) && ansible-test sanity --python $(PYTHON_VERSION) --color no

unit: venv collection-link
	pytest -p no:cacheprovider -q tests/unit

# Every crash point of every writing operation (the unit tier samples some), then
# how many points each operation has.
crashtest: venv collection-link
	rm -f .crashpoints-report.txt
	BOTOPS_CRASHPOINTS=all BOTOPS_CRASHPOINTS_REPORT=$(CURDIR)/.crashpoints-report.txt \
	  pytest -p no:cacheprovider -q -rA tests/unit/test_crashpoints.py
	@sort -u .crashpoints-report.txt && rm -f .crashpoints-report.txt

integration: venv $(SANITY_TREE)
	scripts/integration.sh $(SANITY_TREE)

# The same targets on the oldest ansible-core claimed (requires_ansible), with the
# community.postgresql of its generation; the unit tests need 2.19, so only these.
integration-oldest: oldest-venv $(OLDEST_TREE)
	PATH="$(OLDEST_VENV)/bin:$$PATH" scripts/integration.sh $(OLDEST_TREE)

molecule: setup collection-link
	molecule test $(if $(filter --all,$(SCENARIO)),--all,-s $(SCENARIO))

# Benchmarks: slow (a 1 GiB database), so not part of `make test`.
bench: venv collection-link
	@scripts/bench.sh $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) tests/output
