# understudy — the two commands a newcomer needs are `make demo` and `make test`.
# Both install what is missing first (Debian packages, the DynamoDB Local jar, Go
# modules) through scripts/deps.sh.

GO      ?= go
PKGS    ?= ./...
# Test binaries of different packages run in parallel; each starts its own servers,
# so keep the count modest on a 2-core machine.
TESTP   ?= 2
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build deps test test-short demo bench vet clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/understudy ./cmd/understudy

deps:
	@bash scripts/deps.sh

# The whole suite against real servers the tests start themselves. Under CI=true a
# server that cannot start fails the run instead of skipping.
test: deps
	$(GO) vet $(PKGS)
	$(GO) test -p $(TESTP) -count=1 -timeout 40m $(PKGS)

# Unit tests only (no servers): for a quick loop while editing.
test-short:
	$(GO) test -short -count=1 $(PKGS)

demo: deps build
	@bash scripts/demo.sh

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 2s ./transform/ ./mapping/...

vet:
	$(GO) vet $(PKGS)

clean:
	rm -rf bin
