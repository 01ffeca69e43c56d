# podnet — the two commands a new machine needs are `make up` and `make test`.
# Both install what is missing (Debian packages, Go modules) before building.

SHELL    := /bin/bash
GO       ?= go
BIN      := $(CURDIR)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/podnet/podnet/internal/version.Version=$(VERSION)
# Debian packages the tests and the local cluster use (command they provide).
# iptables is for `podnet up --service-proxy kube-proxy-iptables`: kube-proxy
# runs the iptables found on PATH, which Debian points at iptables-nft (the
# nf_tables backend, beside podnet's own tables in one ruleset).
# runc runs the containers of `podnet up --node-runtime containerd`.
# busybox-static is what make image puts into the images (a static busybox).
# chromium is the headless browser that test/e2e/ui_test.go drives (podnet ui).
DEB_PKGS := nftables:nft iproute2:ip iputils-ping:ping util-linux:nsenter conntrack:conntrack dnsutils:dig curl:curl iperf3:iperf3 wget:wget iptables:iptables busybox-static:busybox runc:runc chromium:chromium tcpdump:tcpdump wireguard-tools:wg
GOTEST_FLAGS ?= -race -count=1 -timeout 20m

export PATH := $(PATH):/usr/local/go/bin

.PHONY: all deps build vet test up down selfcheck bench-cni tools clean

all: build

## deps: install missing Debian packages and download Go modules
deps:
	@missing=""; for pc in $(DEB_PKGS); do command -v "$${pc#*:}" >/dev/null 2>&1 || missing="$$missing $${pc%%:*}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install$$missing" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@$(GO) mod download

## build: build bin/podnet and bin/podnet-cni
build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/podnet ./cmd/podnet
	$(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(BIN)/podnet-cni ./cmd/podnet-cni

## vet: go vet and gofmt
vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './tools/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on: $$unformatted" >&2; exit 1; fi

## test: every test (unit, rendering, kernel tests and end-to-end as root)
test: deps build tools image vet
	$(GO) test $(GOTEST_FLAGS) ./...

## up: build everything and start the local cluster with the seed examples
up: deps build tools
	$(BIN)/podnet up -f examples/seed

## up-containerd: the same with nodes that run a real kubelet and containerd, podnet installed from deploy/
## into them as a DaemonSet, images served from the outside world (docs/local-cluster.md)
.PHONY: up-containerd
up-containerd: deps build tools image
	$(BIN)/podnet up --node-runtime containerd -f examples/seed

## install: put podnet on PATH as the docs type it: a symbolic link $(PREFIX)/bin/podnet -> bin/podnet
## (a link, not a copy: podnet finds podnet-cni and tools/bin next to its target, and each make build updates it),
## and the bundled kubectl as $(PREFIX)/bin/kubectl unless a kubectl is already on PATH
PREFIX ?= /usr/local
.PHONY: install
install: build tools
	@mkdir -p $(PREFIX)/bin
	ln -sfn $(BIN)/podnet $(PREFIX)/bin/podnet
	@if ! command -v kubectl >/dev/null 2>&1 || [ "$$(readlink -f "$$(command -v kubectl)")" = "$$(readlink -f tools/bin/kubectl)" ]; then \
		ln -sfn $(CURDIR)/tools/bin/kubectl $(PREFIX)/bin/kubectl; \
	fi
	@echo "podnet is $$(command -v podnet || echo "$(PREFIX)/bin/podnet (add $(PREFIX)/bin to PATH)")"
	@echo "kubectl is $$(command -v kubectl || echo "$(PREFIX)/bin/kubectl (add $(PREFIX)/bin to PATH)")"

## down: remove the local cluster
down:
	$(BIN)/podnet down

## e2e-kube-proxy: the Service end-to-end tests with upstream kube-proxy as every node's proxy instead of
## podnet's, in nftables then iptables mode (docs/services.md, "kube-proxy's modes side by side")
E2E_SERVICE_TESTS := Test(Services|ExternalTrafficPolicy|ServiceProxyRestart|DNS|EnvironmentAndServiceVariables|KillEverythingThenDownThenUp)
KUBE_PROXY_MODES  := kube-proxy-nftables kube-proxy-iptables
.PHONY: e2e-kube-proxy
e2e-kube-proxy: deps build tools
	@status=0; for m in $(KUBE_PROXY_MODES); do \
		echo "== Service end-to-end tests with podnet up --service-proxy $$m"; \
		PODNET_E2E_SERVICE_PROXY=$$m $(GO) test -count=1 -timeout 30m -v -run '$(E2E_SERVICE_TESTS)' ./test/e2e/ || status=1; \
	done; exit $$status

## deploy-render: rewrite deploy/podnet.yaml, the kustomize build of deploy/ (what `kubectl kustomize deploy`
## prints; a test in ./deploy fails while the file is stale)
.PHONY: deploy-render
deploy-render:
	$(GO) test ./deploy/ -count=1 -run TestRenderedManifestIsTheKustomizeBuildOfDeploy -update

## selfcheck: wire two throwaway pods with podnet-cni on this machine
selfcheck: build
	$(BIN)/podnet selfcheck --cni-bin-dir $(BIN)

## tools: build the pinned control-plane binaries and reference plugins (tools/)
tools:
	@$(MAKE) --no-print-directory -C tools

## bench-cni: ADD+DEL latency of podnet-cni vs the reference ptp + host-local
bench-cni: deps build
	$(MAKE) -C tools cni-plugins
	$(GO) build -o $(BIN)/cnibench ./bench/cnibench
	unshare --net -- $(BIN)/cnibench -podnet $(BIN)/podnet-cni -ptp tools/bin/ptp -host-local tools/bin/host-local

## bench-datapath: pod→ClusterIP throughput and request/response with 10,000 Services, vs pod→pod direct
## (DATAPATH_FLAGS="-policies 1000": pod→pod with a table of 1,000 NetworkPolicies vs none)
.PHONY: bench-datapath
bench-datapath: deps build
	$(GO) build -o $(BIN)/datapathbench ./bench/datapath
	unshare --net -- $(BIN)/datapathbench -cni-bin-dir $(BIN) $(DATAPATH_FLAGS)

## bench-dns: podnet dns vs CoreDNS (built in tools/coredns) under dnsperf, 10,000 Services
.PHONY: bench-dns
bench-dns: deps build
	@command -v dnsperf >/dev/null 2>&1 || { \
		if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install dnsperf" >&2; exit 1; fi; \
		echo "installing Debian packages: dnsperf"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dnsperf >/dev/null; }
	@$(MAKE) --no-print-directory -C tools all coredns
	$(GO) build -o $(BIN)/dnscompare ./bench/dnscompare
	$(BIN)/dnscompare -repo $(CURDIR) $(DNS_FLAGS)

## bench-policy: NetworkPolicy write → enforcement (and delete → open) latency, probed from inside a pod
## of a cluster of its own (pnbench), which it takes down afterwards, also on failure
BENCH_CLUSTER := pnbench
BENCH_PLAN    := --node-network 172.25.9.0/24 --pod-cidr 10.200.0.0/16 --service-cidr 10.201.0.0/16 --world-network 198.18.42.0/24
.PHONY: bench-policy
bench-policy: deps build tools
	$(GO) build -o $(BIN)/policylatency ./bench/policylatency
	trap '$(BIN)/podnet --cluster $(BENCH_CLUSTER) down' EXIT; \
	$(BIN)/podnet up --cluster $(BENCH_CLUSTER) $(BENCH_PLAN) && \
	$(BIN)/policylatency --cluster $(BENCH_CLUSTER) $(POLICY_FLAGS)

## bench-lb: LoadBalancer failover (agent kill -9, SIGTERM, node link down), Service → first answer from the world,
## and the API requests of 1,000 LoadBalancer Services at rest, on a 3-node cluster of its own (lbbench), taken down
## afterwards, also on failure (LB_FLAGS="-runs 5 -parts failover" for a shorter run)
LB_CLUSTER := lbbench
LB_PLAN    := --nodes 3 --node-network 172.26.12.0/24 --pod-cidr 10.212.0.0/16 --service-cidr 10.213.0.0/16 --world-network 198.18.212.0/24
.PHONY: bench-lb
bench-lb: deps build tools
	$(GO) build -o $(BIN)/lbbench ./bench/lbbench
	trap '$(BIN)/podnet --cluster $(LB_CLUSTER) down' EXIT; \
	$(BIN)/podnet up --cluster $(LB_CLUSTER) $(LB_PLAN) && \
	$(BIN)/lbbench --cluster $(LB_CLUSTER) $(LB_FLAGS)

## image: podnet's OCI image and the test images, built without Docker (hack/imagebuild): bin/images/podnet.tar
## (ghcr.io/podnet/podnet:$(VERSION)), bin/images/test.tar (podnet/test, nginx, postgres, busybox, pause) and
## bin/images/versions.txt (the Debian packages whose files went in); dated at the commit's time, so reproducible
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
.PHONY: image
image: deps
	$(GO) run ./hack/imagebuild --version $(VERSION) --created $(SOURCE_DATE_EPOCH) --out $(BIN)/images

clean:
	rm -rf $(BIN)
