STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOFILES := $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go')
BENCHTIME ?= 2s
# Fuzz targets as package:Target; `make test` runs each briefly, `make chaos`
# for longer.
FUZZ := ./internal/codec:FuzzID ./internal/codec:FuzzEvent \
	./internal/codec:FuzzDecodeEvent ./raft:FuzzDecodeCommand ./raft:FuzzReadFrame
# A count of executions, not a duration: a time-limited fuzz run can fail
# with "context deadline exceeded" when its time runs out while a worker is
# busy on a loaded machine (it did, once, in a CI run).
FUZZTIME ?= 100000x

.PHONY: test check fmt bench chaos fuzz examples

## test: format check, vet, staticcheck, every test with the race detector
## (short chaos scenarios included), then a short fuzz run of each target
test: check
	go test -race -count=1 -timeout 25m ./...
	$(MAKE) --no-print-directory fuzz

## check: format check, vet and staticcheck, without running tests
check:
	@unformatted=$$(gofmt -l $(GOFILES)); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	go run $(STATICCHECK) ./...

## fmt: format the code
fmt:
	gofmt -w $(GOFILES)

## fuzz: run every fuzz target for FUZZTIME
fuzz:
	@set -e; for t in $(FUZZ); do \
		echo "fuzz $$t for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

## chaos: the long fault scenarios (minutes each) and a longer fuzz run;
## the `| ` lines of chaos.log are the rows of RELIABILITY.md
chaos:
	TIMEBOX_CHAOS=1 go test -race -count=1 -v -timeout 90m -run 'Chaos' ./... | tee chaos.log
	$(MAKE) --no-print-directory fuzz FUZZTIME=2m

## bench: the SPEC §8 workloads on every backend, plus each backend's raw baseline;
## after each package, a `ratio ... (target >= x) ok|MISSED` line per target
bench:
	go test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./...

## examples: run the order lifecycle on the memory backend
examples:
	go run ./examples
