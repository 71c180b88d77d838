# Two commands do all set-up: `make run` and `make test`. Both create .venv when it is missing.
PY := .venv/bin/python
export PYTHONUNBUFFERED = 1

.PHONY: run test test-fast assets bench-cpu clean

.venv/.installed: requirements.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --upgrade pip -q
	$(PY) -m pip install -r requirements.txt
	touch $@

.venv/.test-installed: .venv/.installed requirements-test.txt
	$(PY) -m pip install -r requirements-test.txt
	touch $@

run: .venv/.installed
	$(PY) app.py

test: .venv/.test-installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=20 tests  # tests never touch the Hub

test-fast: .venv/.test-installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow" tests

# Rebuild the bundled tiny model and sample data (deterministic; the results are committed).
assets: .venv/.installed
	$(PY) assets/make_sample_data.py
	$(PY) assets/make_tiny_model.py

bench-cpu: .venv/.installed
	$(PY) bench/cpu_default_run.py
	$(PY) bench/cpu_dataset_tab.py
	$(PY) bench/cpu_big_data.py

clean:
	rm -rf runs test-artifacts .pytest_cache
