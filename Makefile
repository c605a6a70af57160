# The one task runner: CI runs these targets verbatim (.ci/run → `make ci`).
UV ?= uv
SOURCES := libs/common/src libs/testkit/src libs/fakes/src services/gateway/src services/period-validator/src services/loader/src services/pennylane-sync/src src

.PHONY: install lint typecheck test test-fast bench ci

install:
	$(UV) sync --frozen

lint:
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run lint-imports

typecheck:
	$(UV) run mypy $(SOURCES)

test:
	$(UV) run pytest

test-fast:
	$(UV) run pytest -m "not infra and not slow"

bench:
	$(UV) run python bench/validate_grand_livre.py

ci: install lint typecheck test
