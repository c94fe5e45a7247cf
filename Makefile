# WorldOS — `make run` and `make test` are the two commands a newcomer needs (see README.md).
SHELL := /bin/bash
SWIFT ?= swift
# Debian 12 packages the build links against (pkg-config names: libusb-1.0 libgpiod
# libserialport libdrm libseccomp libpng).
APT_PACKAGES := pkg-config libusb-1.0-0-dev libgpiod-dev libserialport-dev libdrm-dev libseccomp-dev libpng-dev
OUT ?= .worldos/run

.PHONY: setup build run test bench clean

# Installs whatever of APT_PACKAGES is missing when run as root; otherwise prints the one
# apt-get line to run and stops.
setup:
	@command -v $(SWIFT) >/dev/null || { echo "setup: no Swift toolchain on PATH; install Swift 6.1 or later from swift.org and retry" >&2; exit 1; }
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo -n "$$p "; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "setup: installing $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "setup: missing Debian packages. Run this, then retry:" >&2; \
	    echo "  sudo apt-get install -y $$missing" >&2; exit 1; \
	  fi; \
	fi

build: setup
	$(SWIFT) build --product worldos

# The supervisor on the default bench, until Ctrl-C. Trace, audit log and panel go to $(OUT).
run: build
	.build/debug/worldos run --out $(OUT)

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing

# Speed targets, each printed as a ratio against its reference measured in the same process.
bench: setup
	$(SWIFT) build -c release --product worldos-bench
	.build/release/worldos-bench

clean:
	rm -rf .build .worldos
