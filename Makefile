# The two commands a fresh machine needs:
#   make demo   — set everything up and matte the bundled sample shot
#   make test   — set everything up and run lint, type checks and the test suite
#
# PyTorch: TORCH pins the wheel; on a CPU-only machine where pip's default index would
# hand out a CUDA build, add the CPU wheel index with TORCH_INDEX (see README).

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vfxmatte-installed
SAMPLE := vfxmatte/samples/plate/plate.\#\#\#\#.exr
DEMO_OUT := demo_output

.PHONY: demo test test-deps lint install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vfxmatte matte "$(SAMPLE)" -o "$(DEMO_OUT)/plate.####.exr" --overwrite
	@echo "Mattes written to $(CURDIR)/$(DEMO_OUT)/ (R G B A premultiplied + uncertainty.Y):"
	@ls -1 $(DEMO_OUT)

lint: $(STAMP)
	$(VENV)/bin/ruff check vfxmatte flows tests scripts nuke_bridge
	$(VENV)/bin/mypy
	# The Nuke bridge against the types-nuke stubs (3.10: mypy's oldest target; ruff checks it as py39):
	# the package, then the plug-in as Nuke imports it (NUKE_PATH=nuke_bridge/nuke), so that the
	# panel's calls into vfxmatte_nuke.graph are checked too, not read as an unresolved import.
	$(VENV)/bin/mypy --python-version 3.10 --exclude 'nuke_bridge/nuke/' nuke_bridge
	MYPYPATH=nuke_bridge/nuke $(VENV)/bin/mypy --python-version 3.10 -p vfxmatte_nuke -m init -m menu

# System packages the tests drive for real (Debian's chromium): installed when root with apt-get,
# a no-op once present; elsewhere the tests that need them skip and say why.
test-deps:
	bash scripts/install_test_deps.sh

test: lint test-deps
	$(PY) -m pytest -q --durations=15

bench: $(STAMP)
	$(PY) scripts/bench_cpu.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
