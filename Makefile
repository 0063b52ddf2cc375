.PHONY: test demo bench fmt
SHELL := /bin/bash

## Every check: fmt, clippy, cfn-lint, unit and integration tests against a local moto.
test:
	scripts/test.sh

## The whole system on this machine against moto (DEMO_SECONDS, default 120).
demo:
	scripts/demo.sh

## Benchmarks: prints a table and writes target/bench.json.
bench:
	scripts/bench.sh

fmt:
	cargo fmt --all
