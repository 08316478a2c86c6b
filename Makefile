# dualrig: `make demo` runs a coordinator and two workers on this machine and puts real video through them;
# `make test` runs every check CI runs. Both install what they need first (Debian/Ubuntu, apt).

SHELL := /bin/bash
CARGO ?= cargo
APT_PACKAGES := pkg-config clang libclang-dev protobuf-compiler \
	libavcodec-dev libavformat-dev libavfilter-dev libavdevice-dev libavutil-dev \
	libswscale-dev libswresample-dev ffmpeg b3sum mesa-vulkan-drivers libvulkan1 bc curl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The GPU kernels run on Mesa's software Vulkan (lavapipe) where there is no GPU.
export WGPU_BACKEND ?= vulkan
export WGPU_ADAPTER_NAME ?= llvmpipe
# Mesa's Vulkan loader complains on every process when there is no runtime dir (CI, containers).
export XDG_RUNTIME_DIR ?= $(shell d=$${TMPDIR:-/tmp}/dualrig-runtime-$$(id -u); mkdir -p -m 0700 $$d && echo $$d)

.PHONY: deps build release test fmt clippy demo bench

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

build: deps
	$(CARGO) build --workspace

release: deps
	$(CARGO) build --release --bins

fmt: deps
	$(CARGO) fmt --all -- --check

clippy: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace --no-fail-fast

demo: release
	./scripts/demo.sh

bench: release
	./target/release/dualrig-worker bench all
