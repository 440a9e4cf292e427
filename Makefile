# Two entry points (see README): `make demo` and `make test`. Each creates .venv when missing,
# installs the pinned dependencies and the system libraries it needs, then runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.corr-installed
EXTRAS := ros,dev,train-data,onnx
export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa

.PHONY: demo test lint env sysdeps clean-env

demo: env
	$(VENV)/bin/corr demo

test: env
	$(PY) -m pytest

lint: env
	$(VENV)/bin/ruff check corr_core corr_ros test launch

env: sysdeps $(STAMP)

# OSMesa renders MuJoCo scenes on a CPU-only machine.
sysdeps:
	@if ! ldconfig -p | grep -q libOSMesa; then \
		echo "installing libosmesa6 (MuJoCo offscreen rendering)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libosmesa6 >/dev/null; \
	fi

$(STAMP): setup.py requirements/constraints.txt
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c requirements/constraints.txt -e ".[$(EXTRAS)]"
	@touch $(STAMP)

clean-env:
	rm -rf $(VENV)
