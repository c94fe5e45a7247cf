# WorldOS — `make run` and `make test` are the two commands a newcomer needs (see README.md).
SHELL := /bin/bash
SWIFT ?= swift
# Debian 12 packages the build links against (pkg-config names: libusb-1.0 libgpiod
# libserialport libdrm libseccomp libpng freetype2), the panel's font (DejaVu Sans Mono), Chromium
# and its WebDriver (the web page's test drives a real browser), then the hardware rig's (Tests/Rig): QEMU, the Debian
# kernel with headers and source of one version (gpio-sim is built from them), busybox for the
# guest's initramfs, udev, and the device tools used to look around inside it.
BUILD_PACKAGES := pkg-config libusb-1.0-0-dev libgpiod-dev libserialport-dev libdrm-dev libseccomp-dev libpng-dev libzstd-dev \
	libfreetype-dev fonts-dejavu-core python3 python3-venv lsof procps strace gcc-avr avr-libc chromium chromium-driver
RIG_PACKAGES := qemu-system-x86 busybox-static cpio kmod udev linux-image-amd64 linux-headers-amd64 linux-source-6.1 \
	gpiod usbutils libdrm-tests
APT_PACKAGES := $(BUILD_PACKAGES) $(RIG_PACKAGES)
OUT ?= .worldos/run
# Python tools the tests use (a third-party SCPI client; Prometheus's own text parser;
# schemathesis, which fuzzes the API from its OpenAPI description; selenium, which drives
# Debian's Chromium through the web page; pyarrow, which reads the Parquet we write), in a
# project venv: Debian's python refuses system-wide pip installs.
VENV := .venv-tests
PY_PACKAGES := pyvisa==1.16.2 pyvisa-py pyserial mcap==1.6.0 webdataset==0.2.100 prometheus_client==0.21.1 schemathesis==4.32.5 selenium==4.51.0 pyarrow==26.0.1

TESTS_BUNDLE := .build/debug/WorldOSPackageTests.xctest

.PHONY: setup build run test rig rig-only bench soak fuzz sim firmware clean goldens install

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
	@[ -x $(VENV)/bin/python ] || python3 -m venv $(VENV)
	@$(VENV)/bin/python -c "import pyvisa, pyvisa_py, serial, mcap, webdataset, prometheus_client, schemathesis, selenium, pyarrow" 2>/dev/null || $(VENV)/bin/pip install -q $(PY_PACKAGES)

# The bench bridge firmware: the host simulator (gcc) and the ATmega328P image (avr-gcc).
sim:
	$(MAKE) --no-print-directory -C Firmware sim

firmware:
	$(MAKE) --no-print-directory -C Firmware avr

build: setup
	$(SWIFT) build --product worldos
	$(SWIFT) build --product worldos-sandbox

# The supervisor on the default bench, until Ctrl-C: the bench bridge firmware simulator on a
# pseudo-terminal, found through Devices/bench-bridge.yaml. Trace, audit log and panel go to $(OUT).
# The last run's simulator.pty goes first, so its pty name is never read for this run's.
# Stopping (Ctrl-C, or SIGTERM from a service manager or `timeout`) stops the supervisor first and
# waits for it to drive the bench to its safe state; only then is the simulator stopped.
run: build sim
	@mkdir -p $(OUT)
	@rm -f $(OUT)/simulator.pty
	@setsid Firmware/build/bench-bridge-sim > $(OUT)/simulator.pty & sim=$$!; sup=; \
	  trap 'trap - INT TERM EXIT; status=1; if [ -n "$$sup" ]; then kill -TERM $$sup 2>/dev/null; wait $$sup; status=$$?; fi; \
	        kill $$sim 2>/dev/null; exit $$status' INT TERM EXIT; \
	  while [ ! -s $(OUT)/simulator.pty ]; do sleep 0.1; done; \
	  .build/debug/worldos run --out $(OUT) --device $$(head -1 $(OUT)/simulator.pty) & sup=$$!; \
	  wait $$sup

# Host tests, then the device tests inside the hardware rig.
test: setup sim firmware
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing --skip RigTests
	$(MAKE) --no-print-directory rig-only

# The panel's golden images and semantics trees (Tests/ComponentTests/Golden), drawn again after
# an intended change to the panel: look at them before committing them.
goldens: setup
	$(SWIFT) build --build-tests
	WORLDOS_REGENERATE_GOLDEN=1 $(SWIFT) test --skip-build --disable-swift-testing --filter PanelGoldenTests

# The supervisor as a systemd service: release binaries (the Swift runtime linked in) and the
# web page's files into $(PREFIX)/bin, the profiles, benches and policies into
# $(PREFIX)/share/worldos (the unit's working directory), the configuration into /etc/worldos
# (kept when it is there), the unit into /etc/systemd/system. Then:
#   worldos token add alice --scope approve --tokens /var/lib/worldos/api-tokens.yaml
#   systemctl enable --now worldos
PREFIX ?= /usr/local
install: setup
	$(SWIFT) build -c release --static-swift-stdlib --product worldos
	$(SWIFT) build -c release --static-swift-stdlib --product worldos-sandbox
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/worldos $(DESTDIR)/etc/worldos $(DESTDIR)/etc/systemd/system
	install -m 0755 .build/release/worldos .build/release/worldos-sandbox $(DESTDIR)$(PREFIX)/bin/
	rm -rf $(DESTDIR)$(PREFIX)/bin/WorldOS_WebAPI.resources
	cp -r .build/release/WorldOS_WebAPI.resources $(DESTDIR)$(PREFIX)/bin/
	cp -r Devices Policies README.md $(DESTDIR)$(PREFIX)/share/worldos/
	[ -e $(DESTDIR)/etc/worldos/worldos.yaml ] || install -m 0644 Policies/worldos.yaml $(DESTDIR)/etc/worldos/worldos.yaml
	sed 's|/usr/local|$(PREFIX)|g' Policies/systemd/worldos.service > $(DESTDIR)/etc/systemd/system/worldos.service
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "installed; make a token (worldos token add NAME --scope approve --tokens /var/lib/worldos/api-tokens.yaml), then: systemctl enable --now worldos"

# Boots the emulated machine (Tests/Rig/rig) and runs every RigTests class inside it, or
# RIG_FILTER (such as RigTests.GPIORigTests or RigTests.USBRigTests/testX), with RIG_FIXTURES
# (comma-separated from display,usb,gadget,gpio; default all).
RIG_FIXTURES ?= display,usb,gadget,gpio
rig: setup sim firmware
	$(SWIFT) build --build-tests
	$(MAKE) --no-print-directory rig-only

rig-only:
	@classes="$(RIG_FILTER)"; \
	[ -n "$$classes" ] || classes=$$($(TESTS_BUNDLE) --list-tests | grep '^RigTests\.' | cut -d/ -f1 | sort -u | paste -sd, -); \
	[ -n "$$classes" ] || { echo "rig: no RigTests in $(TESTS_BUNDLE)" >&2; exit 1; }; \
	Tests/Rig/rig --timeout 900 --fixtures $(RIG_FIXTURES) -- $(TESTS_BUNDLE) $$classes

# Speed targets, each printed as a ratio against its reference measured in the same process.
# Release builds as they would be shipped to a controller: the Swift runtime linked in
# (--static-swift-stdlib), so one file is copied and nothing of the toolchain need be there.
bench: setup sim
	$(SWIFT) build -c release --static-swift-stdlib --product worldos-bench
	$(SWIFT) build -c release --static-swift-stdlib --product worldos
	$(SWIFT) build -c release --static-swift-stdlib --product worldos-sandbox
	$(SWIFT) build -c release --static-swift-stdlib --product sandbox-probe
	.build/release/worldos-bench
	Tests/Rig/rig --fixtures gpio -- .build/release/worldos-bench gpio

# A bounded soak, not part of make test: worldos run at 100 Hz with the simulator and 50 API
# clients for SOAK_MINUTES; fails when the supervisor's RSS grows past 10% or a trace record is lost.
SOAK_MINUTES ?= 10
soak: setup sim
	$(SWIFT) build -c release --static-swift-stdlib --product worldos-bench
	$(SWIFT) build -c release --static-swift-stdlib --product worldos
	.build/release/worldos-bench soak $(SOAK_MINUTES)

# Every parser under libFuzzer + AddressSanitizer for FUZZ_SECONDS each (Tests/Fuzz/run): the
# Swift targets in their own build folder (the sanitizers instrument everything they link; the
# program calls libFuzzer's driver when built with WORLDOS_FUZZING), the firmware's command parser
# with clang.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: setup
	$(SWIFT) build -c release --scratch-path .build-fuzz --product worldos-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DWORLDOS_FUZZING
	clang -fsanitize=fuzzer,address -O1 -g -std=c11 -IFirmware/src -IFirmware/host -o .build-fuzz/firmware-fuzz \
	  Tests/Fuzz/firmware.c Firmware/src/bridge.c Firmware/host/hal_host.c
	Tests/Fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf .build .build-fuzz .worldos $(VENV)
	$(MAKE) --no-print-directory -C Firmware clean
