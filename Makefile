.PHONY: test demo bench fmt cluster cluster-stop
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

## A local control plane from upstream (Kubernetes 1.35.5, kwok, KEDA 2.20.2); built once, cached.
cluster:
	scripts/cluster.sh up

## Stops exactly what `make cluster` started.
cluster-stop:
	scripts/cluster.sh down
