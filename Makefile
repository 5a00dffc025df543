# The README's two commands: `make run` and `make test`. Everything else is a helper for them.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_ARGS ?=

.PHONY: install run test lint lab-deps bench clean

# Installs once; `make run` afterwards works offline because the stamp is newer than setup.cfg.
$(STAMP): setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/netvigil run $(RUN_ARGS)

# The censorship lab needs iproute2 and iptables; install them when missing and we are root.
lab-deps:
	@if [ "$$(id -u)" = 0 ] && ! { command -v iptables >/dev/null && command -v ip >/dev/null; }; then \
		echo "installing iproute2/iptables for the censorship lab"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 iptables >/dev/null; \
	fi

test: $(STAMP) lab-deps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy core targets probes analysis ooni results presentation services cli.py

bench: $(STAMP)
	$(BIN)/python bench/campaign.py

clean:
	rm -rf $(VENV) build *.egg-info
