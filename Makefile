# SPDX-License-Identifier: Apache-2.0
# Thin wrapper: the real work is in meson.build and .ci/*.sh.
#
#   make deps    install the Debian 12 packages the build and tests need
#   make build   configure (once) and build build/
#   make test    deps + the whole suite (.ci/test-all.sh); FUZZ_SECONDS=N to tune
#   make demo    deps + build + client/demo.sh
#   make install build + meson install (DESTDIR=D to stage; as root it also
#                creates the credbroker user and directories)
#   make clean   remove every build directory

SHELL := /bin/bash
BUILD_DIR ?= build
MESON_OPTS := --buildtype=debugoptimized -Dwerror_ci=true

# Let `make test FUZZ_SECONDS=5` reach .ci/test-all.sh.
export FUZZ_SECONDS FUZZ_TIMEOUT CB_STAGES

.PHONY: all deps build test demo install clean

all: build

deps:
	bash .ci/install-deps.sh

build:
	@if [ ! -f $(BUILD_DIR)/meson-private/coredata.dat ]; then \
		echo "meson setup $(BUILD_DIR) $(MESON_OPTS)"; \
		meson setup $(BUILD_DIR) $(MESON_OPTS) || exit 1; \
	fi
	meson compile -C $(BUILD_DIR)

test: deps
	bash .ci/test-all.sh

demo: deps
	$(MAKE) --no-print-directory build
	@if [ -f client/demo.sh ]; then \
		bash client/demo.sh $(BUILD_DIR); \
	else \
		echo "make demo: client/demo.sh does not exist yet" >&2; exit 1; \
	fi

install: build
	meson install -C $(BUILD_DIR) $(if $(DESTDIR),--destdir $(DESTDIR))

clean:
	rm -rf build build-asan build-fuzz
