# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
TATOR := .venv/bin/tator
export TATOR_HOME ?= $(CURDIR)/.tator
# The models are trained on the seed-0 world (TRAIN_DATA, outside the data root the orchestrator lists);
# the demo dataset `synth` is drawn with another seed, so every evaluation runs on unseen images.
TRAIN_DATA := $(TATOR_HOME)/train/synth
DATA := $(TATOR_HOME)/data/synth
DEMO_SEED := 7
MODELS := $(TATOR_HOME)/models/registry.yaml

.PHONY: demo test test-multihost lint typecheck deadcode venv web web-test browser ui protos protos-check fixtures regress bench fuzz stack-up stack-down clean device-wheels device-dry protoset setup-postgres

# --- setup -----------------------------------------------------------------
# torch/torchvision are pinned to the builds that lie on these machines' disk;
# any other version downloads several GB.
.venv/.installed: pyproject.toml package.json
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e ".[all]"
	npm install --no-audit --no-fund --silent
	touch $@

venv: .venv/.installed web/dist/index.html

# --- web UI (web/: Vite + TypeScript; served by `tator up`) ---------------------
WEB_SRC := $(shell find web/src web/index.html web/vite.config.ts -type f 2>/dev/null)
web/dist/index.html: .venv/.installed $(WEB_SRC)
	npm run build --silent

web: web/dist/index.html

web-test: .venv/.installed
	npm run --silent test:web

# The end-to-end tests drive Debian's Chromium (no browser download at run time).
browser:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
		else echo "install Chromium: sudo apt-get install -y chromium"; exit 1; fi; }

# PostgreSQL server binaries for the shared-store tests (the tests start their own server). Installed
# with apt when missing and we may; otherwise those tests skip and say why.
setup-postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  { if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	    else echo "setup-postgres: no PostgreSQL and no root apt-get; the PostgreSQL store tests will skip"; fi; }

# --- contracts ---------------------------------------------------------------
protos: venv
	$(PY) scripts/protos.py gen

protos-check: venv
	$(PY) scripts/protos.py check

# --- data and models (built once, reused) ------------------------------------
$(TRAIN_DATA)/dataset.json: | venv
	$(TATOR) data synth --seed 0 --images 200 --out $(TRAIN_DATA)

# The stamp names the seed, so a home built when the demo data was the training world is regenerated.
$(DATA)/.seed-$(DEMO_SEED): | venv
	$(TATOR) data synth --seed $(DEMO_SEED) --images 200 --out $(DATA)
	touch $@

$(MODELS): $(TRAIN_DATA)/dataset.json tests/fixtures/models/yolo-synth/best.pt tests/fixtures/models/yolo-synth/trained_on.json
	$(TATOR) models build --out $(TATOR_HOME)/models --data $(TRAIN_DATA)

fixtures: venv $(MODELS) $(DATA)/.seed-$(DEMO_SEED)

# --- the two commands ----------------------------------------------------------
demo: fixtures
	$(TATOR) up --detach
	$(TATOR) status
	$(TATOR) demo || ($(TATOR) down; exit 1)
	$(TATOR) down

lint: venv
	.venv/bin/ruff check .

# tator_core is held to --strict; the services, the CLI and the fixtures are checked with pyproject's [tool.mypy] settings.
typecheck: venv
	.venv/bin/mypy --strict tator_core
	.venv/bin/mypy svc_detector svc_sam3 svc_qwen svc_classifier svc_orchestrator tator_cli tator_fixtures

# High-confidence dead code fails; the 60% list (attributes, fields) and the RPC inventory are a report.
deadcode: venv
	$(PY) scripts/deadcode.py
	@echo "--- possibly dead (60% confidence; review by hand) ---"
	-$(PY) scripts/deadcode.py --min-confidence 60
	$(PY) scripts/rpc_inventory.py

# device-wheels: the GPU machine's carried set must still resolve, fit and install offline.
# The stack tests' tiny models are built into $(TATOR_HOME)/test-models once and reused while their
# build stamp (seed, data, builder sources) matches: the build is most of a stack module's cold time.
test: fixtures setup-postgres protos-check lint typecheck browser web-test device-wheels
	TATOR_TEST_MODELS_DIR=$${TATOR_TEST_MODELS_DIR:-$(TATOR_HOME)/test-models} $(PY) -m pytest -q -p no:cacheprovider
	$(TATOR) up --detach
	$(TATOR) regress --tier 0 --tier 1 --fast --baseline tests/baselines/regress.json \
		--out $(TATOR_HOME)/regress_fast.json || ($(TATOR) down; exit 1)
	$(TATOR) down

# --- more ----------------------------------------------------------------------
# Failover across hosts made of network namespaces (needs root; skips with the reason otherwise). Also
# part of `make test`; this runs it alone.
test-multihost: fixtures setup-postgres
	$(PY) -m pytest -q -p no:cacheprovider tests/test_orchestrator_multihost.py

regress: fixtures
	$(TATOR) up --detach
	$(TATOR) regress --tier 0 --tier 1 --out $(TATOR_HOME)/regress_full.json || ($(TATOR) down; exit 1)
	$(TATOR) down

# A long run of the RPC fuzzer and the parser properties (random examples; FUZZ_EXAMPLES per test).
FUZZ_EXAMPLES ?= 3000
fuzz: fixtures
	TATOR_FUZZ_RANDOM=1 TATOR_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) TATOR_TEST_MODELS_DIR=$(TATOR_HOME)/fuzz-models \
		$(PY) -m pytest -q -p no:cacheprovider -s tests/test_harden_fuzz.py

# device*.py is the GPU check (scripts/device_check.sh, `make device-dry` here); load_table.py is data.
bench: fixtures
	for b in benchmarks/*.py; do case $$b in */device*|*/load_table.py) continue;; esac; $(PY) $$b || exit 1; done

# The device check's CPU dry run: tiny models, the same code path as on a GPU (writes $(TATOR_HOME)/device-dry);
# the 8-minute limit is the GPU run's, a shared 2-core CPU gets 20.
device-dry: fixtures
	OUT=$(TATOR_HOME)/device-dry TATOR_DEVICE_TIMEOUT_S=1200 bash scripts/device_check.sh --dry-run

# The descriptor set the ghz configs (deploy/ghz, generated from benchmarks/load_table.py) name.
protoset: venv
	$(PY) benchmarks/load.py --write-protoset

# cp312 wheels the GPU machine lacks (build/device-wheels, < 40 MiB), checked by an offline dry install.
device-wheels: venv
	$(PY) scripts/device_wheels.py

# The stack with the web UI in the foreground; prints the UI's URL, Ctrl-C stops everything.
ui: fixtures
	$(TATOR) up

# Container images with buildah (tator + tator-web; scripts/image.sh, docs/deploy.md). Not part of
# `make test`: the service image holds CUDA torch and takes ~20 min to build with vfs storage.
# image-check builds on a local debootstrap base and starts every service from the image
# (non-root, read-only root, models volume mounted) until SERVING; needs root (chroot, mounts).
.PHONY: image image-check
image: venv
	scripts/image.sh build

image-check: venv fixtures
	scripts/image.sh check

stack-up: fixtures
	$(TATOR) up --detach

stack-down:
	$(TATOR) down

clean:
	rm -rf $(TATOR_HOME) build
