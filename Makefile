STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOFILES := $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go')
BENCHTIME ?= 2s

.PHONY: test check fmt bench examples

## test: format check, vet, staticcheck, then every test with the race detector
test: check
	go test -race -count=1 -timeout 25m ./...

## check: format check, vet and staticcheck, without running tests
check:
	@unformatted=$$(gofmt -l $(GOFILES)); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	go run $(STATICCHECK) ./...

## fmt: format the code
fmt:
	gofmt -w $(GOFILES)

## bench: the SPEC §8 workloads on every backend, plus each backend's raw baseline
bench:
	go test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./...

## examples: run the order lifecycle on the memory backend
examples:
	go run ./examples
