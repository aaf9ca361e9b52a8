# regsweep: `make install` once, then `make train` / `make test`. Everything runs inside .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: install debian-packages train test test-fast bench bench-packs bench-pruning bench-vmap bench-gpu results tensorboard clean

$(BIN)/regsweep-aggregate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)   # the CPU build; the GPU build works the same
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/regsweep-aggregate

train: install
	$(BIN)/python train.py $(ARGS)

debian-packages:         # Debian packages the tests use: SLURM, munge, PostgreSQL (servers), pdflatex
	@bash .ci/install-debian-packages.sh

test: install debian-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: install           # about 5 minutes: data path, harness vs bare loop, denormals
	$(BIN)/python bench/run.py

bench-packs: install     # about 20 minutes: packed vs one-by-one sweeps, end to end; thread division
	$(BIN)/python bench/packs.py

bench-pruning: install   # under a minute: an Optuna search with and without pruning
	$(BIN)/python bench/pruning.py

bench-vmap: install      # about 10 minutes: any nn.Module packed by torch.func vs one by one and vs the packed layers
	$(BIN)/python bench/vmap.py $(ARGS)

bench-gpu: install       # minutes on a GPU: the 40-job L1-vs-L2 study on MNIST, packed vs one by one
	$(BIN)/python bench/gpu.py $(ARGS)

results: install         # hours on a 2-core CPU: every ready-made study, then docs/results.md
	$(BIN)/python -m regsweep.reference $(ARGS)

tensorboard: install
	$(BIN)/tensorboard --logdir multirun/

clean:
	rm -rf multirun outputs .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
