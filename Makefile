# dualrig: `make demo` runs a coordinator and two workers on this machine and puts real video through them
# (`make demo-cluster`: three coordinators on one PostgreSQL database, one killed mid-run);
# `make test` runs every check CI runs. Both install what they need first (Debian/Ubuntu, apt).

SHELL := /bin/bash
CARGO ?= cargo
APT_PACKAGES := pkg-config clang libclang-dev protobuf-compiler \
	libavcodec-dev libavformat-dev libavfilter-dev libavdevice-dev libavutil-dev \
	libswscale-dev libswresample-dev ffmpeg b3sum mesa-vulkan-drivers libvulkan1 bc curl chromium \
	postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The GPU kernels run on Mesa's software Vulkan (lavapipe) where there is no GPU.
export WGPU_BACKEND ?= vulkan
export WGPU_ADAPTER_NAME ?= llvmpipe
# Mesa's Vulkan loader complains on every process when there is no runtime dir (CI, containers).
export XDG_RUNTIME_DIR ?= $(shell d=$${TMPDIR:-/tmp}/dualrig-runtime-$$(id -u); mkdir -p -m 0700 $$d && echo $$d)
# The browser tests' npm packages (tests/browser/package-lock.json) and the Python reflection client
# (tests/python/requirements.txt) are installed here, out of the source tree's way.
export DUALRIG_BROWSER_DIR ?= $(CURDIR)/.cache/browser
export DUALRIG_PYTHON_DIR ?= $(CURDIR)/.cache/python
export DUALRIG_CHROMIUM ?= /usr/bin/chromium

.PHONY: deps tool-deps build release test fmt clippy demo demo-cluster bench bench-cluster

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (rustup) first"; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy

# Node.js and Python come from apt when the machine has none; the packages are pinned and reinstalled
# only when their lock file changes.
tool-deps: deps
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends nodejs npm; }
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends python3 python3-venv; }
	@mkdir -p $(DUALRIG_BROWSER_DIR)
	@cmp -s tests/browser/package-lock.json $(DUALRIG_BROWSER_DIR)/package-lock.json && [ -d $(DUALRIG_BROWSER_DIR)/node_modules ] || { \
		cp tests/browser/package.json tests/browser/package-lock.json $(DUALRIG_BROWSER_DIR)/ && \
		npm ci --prefix $(DUALRIG_BROWSER_DIR) --no-audit --no-fund --cache $(CURDIR)/.cache/npm; }
	@cmp -s tests/python/requirements.txt $(DUALRIG_PYTHON_DIR)/requirements.txt || { \
		python3 -m venv $(DUALRIG_PYTHON_DIR) && \
		$(DUALRIG_PYTHON_DIR)/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt && \
		cp tests/python/requirements.txt $(DUALRIG_PYTHON_DIR)/requirements.txt; }

build: deps
	$(CARGO) build --workspace

release: deps
	$(CARGO) build --release --bins

fmt: deps
	$(CARGO) fmt --all -- --check

clippy: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: tool-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace --no-fail-fast
	# The ledger and blob index suites again, on a throwaway PostgreSQL server.
	./scripts/with-postgres $(CARGO) test -p dualrig-coordinator --lib --no-fail-fast -- db:: ledger:: storage::index storage::repair

demo: release tool-deps
	./scripts/demo.sh

# Three coordinators on one throwaway PostgreSQL database, workers spread over them, one coordinator
# killed mid-run.
demo-cluster: release
	./scripts/with-postgres ./scripts/demo-cluster.sh

bench: release
	./target/release/dualrig-worker bench all

# Jobs per second through 1, 2 and 3 coordinators on one PostgreSQL with a fixed pool of workers, and
# each coordinator's CPU time per verified job (benches/RESULTS.md, Several coordinators).
bench-cluster: deps
	$(CARGO) test -p dualrig-coordinator --test it throughput -- --ignored --nocapture
