# The grokking workbench. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU wheel on this machine (its pip index serves one); on a GPU box: make clean-venv setup TORCH_SPEC='...' (your CUDA build)
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.setup-done

RUN ?=
comma := ,
# Every value a user gives reaches the shell quoted: q wraps one value in single quotes (a quote in
# it closed, escaped and reopened), qw quotes each word of a list (SET's key=value items).
q = '$(subst ','\'',$(1))'
qw = $(foreach w,$(1),$(call q,$(w)))
# make expands a variable given on the command line (or in the environment) when it is used, so
# RUN='$(shell cmd)' would run cmd before any quoting: each user variable is first made a simple
# variable holding its text as given ($(value ...)), never expanded.
USER_VARS := PYTHON TORCH_SPEC RUN PRESET EPOCHS DEVICE SET FROM_CHECKPOINT EXTEND PROBES STEPS ENGINE WORKERS SWEEP \
  EXECUTOR SHARED_DISK GROUP_SIZE STOP_HOPELESS PATIENCE PORT IP SRC DEMO_RUN AT HORIZON DATASET OUT DD_SWEEPS FIT_SWEEPS UNSEEN_SWEEPS ONLY
$(foreach v,$(USER_VARS),$(if $(filter command line environment,$(origin $(v))),$(eval override $(v) := $$(value $(v)))))
# A yes/no variable: 0, no and false (and empty) are off, anything else on.
off = $(filter 0 no false,$(1))
on = $(filter-out 0 no false,$(1))
PRESET ?=
EPOCHS ?=
DEVICE ?= auto
SET ?=
FROM_CHECKPOINT ?=
EXTEND ?=
TRAIN_ARGS = $(if $(PRESET),--preset $(call q,$(PRESET))) --device $(call q,$(DEVICE)) $(if $(EPOCHS),$(call q,epochs=$(EPOCHS))) $(if $(call on,$(FROM_CHECKPOINT)),--from-last-checkpoint) $(if $(call on,$(EXTEND)),--extend-imported) $(call qw,$(SET))

.PHONY: help setup train probe report sweep import notebook demo test test-fast lint bench gpu-check docs runs presets clean-venv forecast forecast-fit forecast-eval rff double-descent

help:  ## list targets
	@echo "make setup                          create .venv and install everything (idempotent)"
	@echo "make train RUN=name [PRESET=fast|mul|clock|pizza|pizza-zhong2023|two-layer|nanda2023|tl-demo|smoke] [EPOCHS=N] [SET='lr=3e-3 p=97'] [DEVICE=auto|cpu|cuda]"
	@echo "                                    train a run into checkpoints/<name>/ (re-run to resume;"
	@echo "                                    FROM_CHECKPOINT=1 rebuilds a damaged resume state from the last checkpoint;"
	@echo "                                    EXTEND=1 EPOCHS=N trains an imported run on to step N)"
	@echo "make probe RUN=name [PROBES=fourier,progress,weights,attention,clock_pizza,complexity,effective,llc] [STEPS=all|last|A:B] [ENGINE=factored|bridge] [SET='key_rule=wl'] [WORKERS=N]"
	@echo "                                    measure every checkpoint; tables in checkpoints/<name>/probes/"
	@echo "                                    (llc, the local learning coefficient, is opt-in: PROBES=llc; seconds per checkpoint: docs/results/bench.md)"
	@echo "                                    (SET and ENGINE change the run's current probe options)"
	@echo "make report RUN=name [SET=...] [ENGINE=...]"
	@echo "                                    probe (cached, the run's current options) and write"
	@echo "                                    checkpoints/<name>/report/index.html + PNG/SVG/PDF"
	@echo "make sweep SWEEP=frac-wd|seeds|canonical-seeds|model-wise|sample-wise|variants|forecast-families|forecast-decay|forecast-unseen|... [EXECUTOR=local|ray] [SHARED_DISK=0] [WORKERS=N] [STOP_HOPELESS=0.05 PATIENCE=3] [SET='epochs=1000 seeds=2']"
	@echo "                                    train every member of a sweep in batched groups (resumable), probe them,"
	@echo "                                    write checkpoints/<sweep>/sweep.csv (EXECUTOR=ray: \$$RAY_ADDRESS or a local Ray)"
	@echo "make report SWEEP=name              checkpoints/<sweep>/report/index.html: phase diagram and sweep figures"
	@echo "make import SRC=file RUN=name [SET='p=113 ...'] [PRESET=...]"
	@echo "                                    turn a legacy run (Nanda et al.'s full_run_data.pth, the TL Grokking demo's"
	@echo "                                    saved file, TL 2.x state dicts) into checkpoints/<name>/"
	@echo "make notebook [PORT=8888] [IP=0.0.0.0]"
	@echo "                                    JupyterLab on notebooks/ with the project's kernel (prints the URL)"
	@echo "make demo                           setup, train the fast preset as 'demo', probe, report"
	@echo "make forecast RUN=name [AT=step] [HORIZON=N]"
	@echo "                                    will it generalise, and when? from training-set signals only (docs/forecast.md)"
	@echo "make forecast-fit / forecast-eval   fit the forecaster across the calibration sweeps' families / score it leave one"
	@echo "                                    family out and on a family it never saw (docs/results/forecast-eval.md; hours on 2 cores)"
	@echo "make rff [DATASET=modular|digits] [OUT=dir] [SET='--p 59 --label-noise 0.1']"
	@echo "                                    double descent in seconds: random-feature least squares, N swept across n"
	@echo "                                    (OUT/rff.csv, OUT/index.html and figures; default OUT=checkpoints/rff-<dataset>)"
	@echo "make double-descent                 train and probe the model-wise and sample-wise sweeps (resumable), run the"
	@echo "                                    random-feature experiment, write docs/results/double-descent.md"
	@echo "make runs                           list runs;  make presets: show presets"
	@echo "make test                           the test suite (what CI runs)"
	@echo "make test-fast                      skip the slow end-to-end tests"
	@echo "make bench [ONLY=train,sweep] [DEVICE=cuda]"
	@echo "                                    benchmarks, printed and written to docs/results/bench-<section>.md"
	@echo "make gpu-check                      on a GPU machine: the GPU benchmarks and science checks in one script (minutes)"
	@echo "make docs                           build the documentation site into site/ (open site/index.html)"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v chromium >/dev/null || bash scripts/install-chromium || \
	  echo "note: Chromium could not be installed; reports keep their HTML but skip PNG/SVG/PDF and the browser test is skipped"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[test,notebook,ray,docs]'
	$(PY) -m ipykernel install --sys-prefix --name workbench --display-name "Python (workbench)" >/dev/null
	@touch $@

train: setup
	@if [ -z $(call q,$(RUN)) ]; then echo "usage: make train RUN=<name> [PRESET=...] [EPOCHS=N] [SET='key=value ...']"; exit 2; fi
	$(PY) -m workbench train $(call q,$(RUN)) $(TRAIN_ARGS)

PROBES ?=
STEPS ?=
ENGINE ?=
WORKERS ?=
probe: setup
	@if [ -z $(call q,$(RUN)) ]; then echo "usage: make probe RUN=<name> [PROBES=fourier,progress,weights,attention,clock_pizza,complexity,effective,llc] [STEPS=all|last|A:B] [ENGINE=factored|bridge] [SET='neuron_threshold=0.85 ...']"; exit 2; fi
	$(PY) -m workbench probe $(call q,$(RUN)) $(if $(PROBES),--probes $(call q,$(PROBES))) $(if $(STEPS),--steps $(call q,$(STEPS))) $(if $(ENGINE),--engine $(call q,$(ENGINE))) $(if $(WORKERS),--workers $(call q,$(WORKERS))) $(call qw,$(SET))

report: setup
	@if [ -z $(call q,$(RUN)$(SWEEP)) ]; then echo "usage: make report RUN=<name> [SET='neuron_threshold=0.85 ...'] [ENGINE=factored|bridge]  or  make report SWEEP=<name>"; exit 2; fi
	$(if $(SWEEP),$(PY) -m workbench sweep-report $(call q,$(SWEEP)),$(PY) -m workbench report $(call q,$(RUN)) $(if $(ENGINE),--engine $(call q,$(ENGINE))) $(call qw,$(SET)))

SWEEP ?=
EXECUTOR ?= local
SHARED_DISK ?=
GROUP_SIZE ?=
STOP_HOPELESS ?=
PATIENCE ?=
sweep: setup
	@if [ -z $(call q,$(SWEEP)) ]; then echo "usage: make sweep SWEEP=<frac-wd|seeds|model-wise|...> [EXECUTOR=local|ray] [WORKERS=N] [GROUP_SIZE=8] [SET='epochs=1000 seeds=2']"; exit 2; fi
	$(PY) -m workbench sweep $(call q,$(SWEEP)) --executor $(call q,$(EXECUTOR)) $(if $(WORKERS),--workers $(call q,$(WORKERS))) $(if $(GROUP_SIZE),--group-size $(call q,$(GROUP_SIZE))) $(if $(call off,$(SHARED_DISK)),--no-shared-disk) $(if $(STOP_HOPELESS),--stop-hopeless $(call q,$(STOP_HOPELESS))) $(if $(PATIENCE),--patience $(call q,$(PATIENCE))) $(call qw,$(SET))

PORT ?= 8888
notebook: setup  ## JupyterLab on notebooks/ with the project's kernel; open the URL it prints
	$(VENV)/bin/jupyter lab --no-browser --ServerApp.root_dir=notebooks --port=$(call q,$(PORT)) $(if $(IP),--ip=$(call q,$(IP))) $(if $(filter 0,$(shell id -u)),--allow-root)

SRC ?=
import: setup
	@if [ -z $(call q,$(SRC)) ] || [ -z $(call q,$(RUN)) ]; then echo "usage: make import SRC=<file> RUN=<name> [SET='p=113 d_model=128 ...'] [PRESET=...]"; exit 2; fi
	$(PY) -m workbench import $(call q,$(SRC)) $(call q,$(RUN)) $(if $(PRESET),--preset $(call q,$(PRESET))) $(call qw,$(SET))

DEMO_RUN ?= demo
demo: setup  ## the whole story on the default preset: train, probe, report
	$(PY) -m workbench train $(call q,$(DEMO_RUN))
	$(PY) -m workbench probe $(call q,$(DEMO_RUN))
	$(PY) -m workbench report $(call q,$(DEMO_RUN))

runs: setup
	@$(PY) -m workbench runs

AT ?=
HORIZON ?=
forecast: setup
	@if [ -z $(call q,$(RUN)) ]; then echo "usage: make forecast RUN=<name or path> [AT=step] [HORIZON=N]"; exit 2; fi
	$(PY) -m workbench forecast $(call q,$(RUN)) $(if $(AT),--at $(call q,$(AT))) $(if $(HORIZON),--horizon $(call q,$(HORIZON)))

DATASET ?= modular
OUT ?=
rff: setup  ## random-feature least squares across the interpolation threshold (seconds)
	$(PY) -m workbench rff --dataset $(call q,$(DATASET)) --out $(call q,$(if $(OUT),$(OUT),checkpoints/rff-$(DATASET))) $(call qw,$(SET))

DD_SWEEPS ?= model-wise,sample-wise
double-descent: setup  ## train and probe the width and data sweeps (resumable), then write the results page
	$(foreach s,$(subst $(comma), ,$(DD_SWEEPS)),$(PY) -m workbench sweep $(call q,$(s)) &&) true
	$(PY) -m workbench double-descent --sweeps $(call q,$(DD_SWEEPS)) --out docs/results/double-descent.md

FIT_SWEEPS ?= forecast-families,forecast-decay,forecast-fit,seeds,forecast-heldout,frac-wd
UNSEEN_SWEEPS ?= forecast-unseen
forecast-fit: setup  ## train the calibration sweeps (resumable) and fit the shipped calibration on them, across families
	$(foreach s,$(subst $(comma), ,$(FIT_SWEEPS)),$(PY) -m workbench sweep $(call q,$(s)) --workers 2 --no-probe &&) true
	$(PY) -m workbench forecast-fit --sweeps $(call q,$(FIT_SWEEPS))

forecast-eval: setup  ## train every forecast sweep (resumable), score leave one family out and on the unseen family
	$(foreach s,$(subst $(comma), ,$(FIT_SWEEPS) $(UNSEEN_SWEEPS)),$(PY) -m workbench sweep $(call q,$(s)) --workers 2 --no-probe &&) true
	$(PY) -m workbench forecast-eval --sweeps $(call q,$(FIT_SWEEPS)) --unseen $(call q,$(UNSEEN_SWEEPS)) --out docs/results/forecast-eval.md

presets: setup
	@$(PY) -m workbench presets

test: setup
	$(PY) -m ruff check workbench probes tests
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(PY) -m ruff check workbench probes tests

ONLY ?=
bench: setup  ## DEVICE=cuda: the train and sweep sections on the GPU (bench-<section>-cuda.md)
	$(PY) -m workbench.bench $(if $(filter-out auto,$(DEVICE)),--device $(call q,$(DEVICE))) $(if $(ONLY),--only $(call q,$(ONLY)))

gpu-check:  ## on a GPU machine (make setup TORCH_SPEC=... first, or .whl/ from scripts/gpu-wheels): minutes
	scripts/gpu-check

# needs the `docs` extra (mkdocs-material, mkdocstrings-python); the site works from file://
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -q
	@echo "site/index.html"

clean-venv:
	rm -rf $(VENV)
