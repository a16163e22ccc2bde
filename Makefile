# Two commands on a fresh machine with Python >= 3.11 and make:
#   make run    the main job: exact RTRL against its approximations on the copy curriculum
#   make test   set up, lint, type-check and run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow lint install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "rtrlx needs Python >= 3.11; run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	@touch $(STAMP)

install: $(STAMP)

# The embedded default of `make run`: a small RHN learning the copy curriculum online with
# exact RTRL, OK, KF-RTRL, UORO, SnAp-1 and truncated BPTT (about 2 minutes on 2 cores).
RUN_FLAGS ?= --task copy-curriculum --cell rhn --hidden 32 --steps 20000 --lr 0.003 \
	--batch 16 --seeds 2 --learners rtrl,ok:4,kf_rtrl,uoro,snap:1,tbptt:5 --out runs/make-run

run: $(STAMP)
	$(BIN)/rtrlx compare $(RUN_FLAGS)

lint: $(STAMP)
	$(BIN)/ruff check rtrlx tests benchmarks
	$(BIN)/ruff format --check rtrlx tests benchmarks
	$(BIN)/pyright

# Two workers, whole files each (module fixtures stay per file): 7 min 40 s on 2 cores from a
# fresh clone, the installation included. Tests marked `slow` are left out (pyproject's
# addopts); they run with `make test-slow`, which CI (.ci/run) runs after `make test`.
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m slow

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs
