# Parley: `make run` starts the demo, `make test` runs every test.
GO ?= go
export CHROMIUM_PATH ?= /usr/bin/chromium

.PHONY: build run cluster test test-short generate check-generate fuzz bench bench-full bench-cluster bench-go screenshots clean

build: ## bin/parley
	$(GO) build -o bin/parley ./cmd/parley

run: build ## Parley on 127.0.0.1:8080 and the demo shop on localhost:8081
	./bin/parley demo --db .data/demo.db

cluster: build ## PostgreSQL, NATS, three nodes and HAProxy on 127.0.0.1, with the demo shop (Debian's postgresql, nats-server, haproxy)
	./scripts/cluster.sh

generate: ## regenerate templ components
	$(GO) tool templ generate

check-generate: ## fails if the committed *_templ.go files are stale
	$(GO) tool templ generate
	@git diff --quiet -- '*_templ.go' || { git diff --stat -- '*_templ.go'; echo "generated templ files are stale: run make generate and commit"; exit 1; }

test: build check-generate ## unit, HTTP, PostgreSQL, browser (headless Chromium) and fuzz-seed tests
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /e2e)
	# The browser tests run without -race: chromedp itself races on a
	# frame's DOM while attaching to it (its Target map, not Parley's code),
	# which would fail them now and then. The server code they drive is
	# race-tested by the web, chat and cmd suites above.
	$(GO) test -count=1 -timeout 20m ./e2e

test-short: ## everything but the browser and PostgreSQL tests
	$(GO) test -count=1 -short ./...

fuzz: ## run each fuzzer for a while (seeds alone run in make test)
	$(GO) test ./internal/chat -run '^$$' -fuzz FuzzDecodeClientFrame -fuzztime 30s
	$(GO) test ./internal/identity -run '^$$' -fuzz FuzzCanonicalOrigin -fuzztime 30s
	$(GO) test ./internal/identity -run '^$$' -fuzz FuzzParseUserJWT -fuzztime 30s
	$(GO) test ./handlers -run '^$$' -fuzz FuzzSessionRequest -fuzztime 30s

screenshots: ## retake the widget and dashboard screenshots in docs/screenshots (headless Chromium)
	PARLEY_SCREENSHOTS=1 $(GO) test ./e2e -run 'Dashboard|Widget' -count=1

bench: build ## load generator, short profile (under 3 minutes on 2 cores): runs bin/parley serve, writes BENCHMARKS.md
	$(GO) run ./cmd/parley-bench -profile short -bin bin/parley -out BENCHMARKS.md

bench-full: build ## load generator at the sizes of issue 5's targets (about 15 minutes): writes BENCHMARKS.md
	$(GO) run ./cmd/parley-bench -profile full -bin bin/parley -out BENCHMARKS.md

bench-cluster: build ## one node on SQLite beside three on PostgreSQL (NATS, then LISTEN/NOTIFY), all on this machine: writes BENCHMARKS-cluster.md
	$(GO) run ./cmd/parley-bench -profile cluster -bin bin/parley -out BENCHMARKS-cluster.md

bench-go: ## Go micro-benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin .data
