.PHONY: test bench fmt
SHELL := /bin/bash

## Every check: fmt, clippy, cfn-lint, unit and integration tests against a local moto.
test:
	scripts/test.sh

## Benchmarks: prints a table and writes target/bench.json.
bench:
	scripts/bench.sh

fmt:
	cargo fmt --all
