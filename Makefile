# The two commands of the README. Both create (or reuse) .venv in this checkout and
# install what they need; nothing is done by hand.
#   make run   - set up, create the demo dataset the first time, open the explorer
#   make test  - set up (including a headless browser) and run the whole test suite

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEMO   := demo_data
PORT   ?= 8501

.PHONY: run test demo bench browser postgres clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

$(DEMO)/train/train.csv: | $(VENV)/.installed
	$(PY) -m core demo --out $(DEMO)

demo: $(DEMO)/train/train.csv

run: $(VENV)/.installed $(DEMO)/train/train.csv
	MASKLAB_DATA=$(CURDIR)/$(DEMO)/train $(VENV)/bin/streamlit run explorer/app.py --server.port $(PORT)

# The browser test needs Debian's chromium; install it when we can (root), else the
# test says plainly that it was skipped and why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium missing and not root: the browser test will be skipped"; fi; }

# The sweep's PostgreSQL test starts a throwaway server from Debian's postgresql (as the
# browser test needs chromium); without root it says plainly that it was skipped and why.
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; \
	  else echo "note: postgresql missing and not root: the PostgreSQL sweep test will be skipped"; fi; }

test: $(VENV)/.installed-dev browser postgres
	$(PY) -m pytest -q tests

bench: $(VENV)/.installed $(DEMO)/train/train.csv
	$(PY) bench/bench_faces.py --data $(DEMO)/train
	$(PY) bench/bench_preview.py --data $(DEMO)/train
	$(PY) bench/bench_train.py --data $(DEMO)/train

clean:
	rm -rf $(VENV) $(DEMO) runs .pytest_cache
