.PHONY: test demo bench rehearse docs fmt cluster cluster-stop
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

## `sam deploy` of infra/ rehearsed on this machine: CloudFormation's life cycle of the template,
## the zips under AWS's Lambda emulator, IAM enforced by moto, EKS auth by aws-iam-authenticator.
rehearse:
	scripts/rehearse.sh full

## The docs book (docs/): built into target/book, every link inside it checked.
docs:
	scripts/docs.sh

fmt:
	cargo fmt --all

## A local control plane from upstream (Kubernetes 1.35.5, kwok, KEDA 2.20.2); built once, cached.
cluster:
	scripts/cluster.sh up

## Stops exactly what `make cluster` started.
cluster-stop:
	scripts/cluster.sh down
