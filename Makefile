# Berth. Run as root on Debian 12: `make demo`, `make test`, `make bench`.
# Each target installs the Debian packages it needs (skipping quickly when
# they are present).

GO         ?= go
BIN        := bin
BUILD_DEPS := gcc pkg-config libseccomp-dev
TEST_DEPS  := $(BUILD_DEPS) busybox-static runc crun containerd podman docker.io jq qemu-system-x86 docker-registry skopeo umoci git nftables iptables
BENCH_DEPS := $(BUILD_DEPS) busybox-static runc crun docker-registry skopeo umoci podman netavark aardvark-dns iptables nftables docker.io wrk
DEMO_DEPS  := $(BUILD_DEPS)
RUNTIME    ?= $(BIN)/berth-runtime
N          ?= 30
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# One test package at a time: the e2e packages' leak checks attribute every
# new berth container, cgroup and mount on the machine to the running test.
TEST_FLAGS ?= -count=1 -timeout 25m -p 1

.PHONY: all build deps-build demo demo-runtime test bench vet clean

all: build

deps-build:
	@scripts/ensure-deps.sh $(BUILD_DEPS)

# Every command into ./bin. berth-runtime is linked fully static (libc and
# libseccomp.a): it starts once per container operation, and skipping the
# dynamic loader is most of its start-up cost. The other commands need no
# cgo and are built without it, so they are static as well (the CLI starts
# ~10% faster); berth-whoami must be (it runs in a FROM-scratch rootfs).
STATIC_LDFLAGS := -s -w -linkmode external -extldflags "-static"
build: deps-build
	@mkdir -p $(BIN)
	@others=$$($(GO) list ./cmd/... | grep -v -e /berth-runtime$$ -e /berth-whoami$$); \
	if [ -n "$$others" ]; then echo "go build -o $(BIN)/ $$others"; CGO_ENABLED=0 $(GO) build -o $(BIN)/ $$others; fi
	CGO_ENABLED=1 $(GO) build -tags osusergo,netgo -ldflags '$(STATIC_LDFLAGS) -X github.com/berth-dev/berth/runtime/linux.Version=$(VERSION)' -o $(BIN)/berth-runtime ./cmd/berth-runtime
	CGO_ENABLED=0 $(GO) build -o $(BIN)/berth-whoami ./cmd/berth-whoami

# The main job, through the engine: berthd started on temporary roots, a
# FROM-scratch image around berth-whoami made with `berth import`, and
# `berth run --rm` of it inside its walls. Offline.
demo:
	@scripts/ensure-deps.sh $(DEMO_DEPS)
	@$(MAKE) --no-print-directory build
	@scripts/cgroup-setup.sh
	@scripts/demo.sh

# The runtime alone: berth-whoami in an OCI bundle run by berth-runtime.
# `make demo-runtime RUNTIME=runc` runs the same bundle with runc.
demo-runtime:
	@scripts/ensure-deps.sh $(DEMO_DEPS)
	@$(MAKE) --no-print-directory build
	@scripts/cgroup-setup.sh
	@scripts/demo-runtime.sh $(RUNTIME)

test:
	@scripts/ensure-deps.sh $(TEST_DEPS)
	@$(MAKE) --no-print-directory build
	@scripts/cgroup-setup.sh
	$(GO) test $(TEST_FLAGS) ./...

# Side-by-side benchmarks: the runtime vs runc and crun, pull, the engine,
# build and the network vs dockerd and podman; N iterations of the runtime
# suite (the others have their own -*-n flags).
bench:
	@scripts/ensure-deps.sh $(BENCH_DEPS)
	@$(MAKE) --no-print-directory build
	@scripts/cgroup-setup.sh
	$(GO) run ./bench/cmd/berthbench -n $(N) -berth $(BIN)/berth-runtime -out bench/results/latest.md

vet:
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
