# Release artifacts for edge devices (issue 16): static musl binaries named as
# installer/install.sh fetches them, each with its sha256sum file, and the installer, in
# dist/ — a folder to serve as INSTALL_SPINLET_BASE_URL.
#
#   make release-tools   # once: the musl targets (rustup) and cargo-zigbuild + ziglang (PyPI)
#   make release         # dist/spinlet-amd64, dist/sha256sum-amd64.txt, ... and dist/install.sh
#   make release ARCHES=amd64
#   make release-smoke   # each dist binary runs `--version` (arm64 under qemu-aarch64,
#                        # Debian's qemu-user)
#   make installer-test  # the installer's tests (scratch root, no service started)
#
# Cross-linking goes through zig (cargo-zigbuild), so no C cross toolchain is needed.
# The binaries are built with Cargo.toml's `dist` profile (fat LTO, one codegen unit,
# stripped: docs/PERFORMANCE.md, "Release binary"); CARGO_TARGET_DIR moves the build
# (e.g. off a target dir others are building in).

CARGO ?= cargo
PROFILE ?= dist
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
ARCHES ?= amd64 arm64
DIST := dist
TARGET_amd64 := x86_64-unknown-linux-musl
TARGET_arm64 := aarch64-unknown-linux-musl

.PHONY: release release-tools release-smoke installer-test clean-dist FORCE

release: $(foreach a,$(ARCHES),$(DIST)/spinlet-$(a) $(DIST)/sha256sum-$(a).txt) $(DIST)/install.sh

release-tools:
	rustup target add $(TARGET_amd64) $(TARGET_arm64)
	python3 -m pip install ziglang cargo-zigbuild

$(DIST)/spinlet-%: FORCE
	@test -n "$(TARGET_$*)" || { echo "unknown architecture $*: use amd64 or arm64"; exit 1; }
	$(CARGO) zigbuild --profile $(PROFILE) --locked -p spinlet --target $(TARGET_$*)
	mkdir -p $(DIST)
	cp $(TARGET_DIR)/$(TARGET_$*)/$(PROFILE)/spinlet $@.tmp
	mv -f $@.tmp $@

$(DIST)/sha256sum-%.txt: $(DIST)/spinlet-%
	cd $(DIST) && sha256sum spinlet-$* > sha256sum-$*.txt

$(DIST)/install.sh: installer/install.sh
	mkdir -p $(DIST)
	cp installer/install.sh $@

release-smoke:
	@for a in $(ARCHES); do \
		case $$a in arm64) run=qemu-aarch64 ;; *) run= ;; esac; \
		v=$$($$run $(DIST)/spinlet-$$a --version) || exit 1; \
		echo "$(DIST)/spinlet-$$a: $$v"; \
	done

installer-test:
	$(CARGO) build -p spinlet
	$(CARGO) test -p integration --test installer

clean-dist:
	rm -rf $(DIST)

FORCE:
