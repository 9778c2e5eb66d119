# Two commands for a newcomer: `make run` and `make test` (see README.md).
ODOO_SRC ?= /opt/odoo18
ADE_HOME ?= /opt/ade
export ODOO_SRC ADE_HOME

.PHONY: setup run test lint

setup:
	bash scripts/setup.sh

run: setup
	bash scripts/run.sh

test: setup
	bash scripts/test.sh

lint:
	bash scripts/lint.sh
