# qrngd — make run starts the daemon on the dev config; make test runs every test.
SHELL := /bin/bash
GO ?= go
BIN := bin
# Debian packages the build and tests need: cgo over libusb for gousb,
# umockdev to emulate the Quantis USB device, promtool to check metrics,
# systemd-analyze to verify the units.
DEB_PKGS := gcc pkg-config libusb-1.0-0-dev umockdev prometheus systemd
GOTESTFLAGS ?= -count=1 -timeout 20m

.PHONY: all deps build run test test-usb bench bench-usb soak fuzz vet clean durability

all: build

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then \
	    echo "make deps: missing packages:$$missing — this Makefile installs them with apt-get (Debian/Ubuntu); install the equivalents by hand on this system." >&2; exit 1; \
	  fi; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  echo "make deps: installing$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	$(GO) build -o $(BIN)/ ./cmd/...

run: build
	mkdir -p var
	./$(BIN)/qrngd -config systemd/qrngd.dev.yaml

vet:
	$(GO) vet ./...

# test runs every Go test; the USB tests run a second time under umockdev-run,
# which emulates the Quantis USB device beneath the real gousb/libusb path.
test: deps vet
	$(GO) test $(GOTESTFLAGS) ./...
	@if [ -d drivers/quantisusb ]; then $(MAKE) --no-print-directory test-usb; fi

test-usb:
	$(GO) test -c -o $(BIN)/quantisusb.test ./drivers/quantisusb
	$(GO) test -c -o $(BIN)/usbsim.test ./testhw/usbsim
	cd drivers/quantisusb && umockdev-run -- ../../$(BIN)/quantisusb.test -test.count=1 -test.v -test.run 'USB'
	cd testhw/usbsim && umockdev-run -- ../../$(BIN)/usbsim.test -test.count=1 -test.v -test.run 'USB'
	$(GO) test -c -o $(BIN)/qrngd.test ./cmd/qrngd
	$(GO) test -c -o $(BIN)/testhw.test ./testhw
	cd cmd/qrngd && umockdev-run -- ../../$(BIN)/qrngd.test -test.count=1 -test.v -test.run 'USB'
	cd testhw && umockdev-run -- ../$(BIN)/testhw.test -test.count=1 -test.v -test.run 'USB'

# bench-usb reads from the emulated Quantis USB through gousb/libusb under umockdev.
bench-usb: deps
	$(GO) test -c -o $(BIN)/quantisusb.test ./drivers/quantisusb
	cd drivers/quantisusb && umockdev-run -- ../../$(BIN)/quantisusb.test -test.run '^$$' -test.bench USBRead -test.benchtime 3s

# durability is the long variant of issue 4's crash test: a real qrngd binary
# is SIGKILLed 50 times at random moments while 8 clients revoke tokens over
# HTTP; after every restart each acknowledged revocation must be in force and
# the audit chain must verify. (make test runs the same test with 3 kills.)
durability: deps
	$(GO) test -count=1 -timeout 30m -run '^TestDurability_SIGKILL$$' -v ./cmd/qrngd -qrngd.kills=50
	$(GO) test -count=1 -timeout 30m -run '^TestDurability_HTTP_SIGKILL$$' -v ./gateway/auth -auth.kills=50

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

clean:
	rm -rf $(BIN)
