# Two commands do all the set-up on a fresh machine:
#   make demo   run the simulated sorting line, print its KPIs, write reports/demo
#   make test   run the test suite (lint included)
# Each creates the virtual environment (.venv) when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.msseg-installed
DURATION ?= 60
# Keep DDS discovery on this host unless told otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: venv demo test test-under-load lint docs clean

INTERFACES := msseg_interfaces/package.xml msseg_interfaces/CMakeLists.txt $(wildcard msseg_interfaces/msg/*.msg)

$(STAMP): msseg_ros/setup.py msseg_ros/package.xml $(INTERFACES) tools/build_interfaces.sh
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 needed"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -e './msseg_ros[wheels,runtimes,dev]'
	bash tools/build_interfaces.sh $(VENV)
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/msseg run sorting_line --mode sim --duration $(DURATION) --report reports/demo

test: $(STAMP)
	$(PY) -m pytest msseg_ros/test

# the suite again with one core kept busy by a background load (started and stopped here)
test-under-load: $(STAMP)
	$(PY) tools/with_load.py --cores 1 -- $(PY) -m pytest msseg_ros/test

lint: $(STAMP)
	$(VENV)/bin/ruff check .

docs: $(STAMP)
	$(VENV)/bin/msseg params --markdown > docs/parameters.md

clean:
	rm -rf $(VENV) build install log .pytest_cache msseg_ros/.pytest_cache
