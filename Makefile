# flowc's everyday commands. `make test` is what CI (.ci/run) runs.
PYTHON ?= python3

.PHONY: install generate check lock test build bench

install:
	$(PYTHON) -m pip install -e ".[test]"

generate:
	flowc generate

check:
	flowc check

lock:
	flowc lock

test:
	$(PYTHON) -m pytest -n 2 tests

# Build, push and register every spec (see README: Building and registering), e.g.
# `make build SPECS=specs/fan_in.yaml BUILD_FLAGS=--no-register`.
build:
	flowc build $(BUILD_FLAGS) $(SPECS)

# Benchmarks (see README: Benchmarks): medians over repeated runs, as Markdown tables, e.g.
# `make bench BENCH_FLAGS="--quick"` or `make bench BENCH_FLAGS="--only check,generate --repeat 9"`;
# large compositions (issue 7): `BENCH_LARGE_FLAGS="--sizes 50,200,500 --repeat 3"`; cold and warm
# `flowc check` with CPU seconds (issue 11): `BENCH_CHECK_FLAGS="--specs 200 --repeat 5"`.
bench:
	$(PYTHON) benchmarks/bench.py $(BENCH_FLAGS)
	$(PYTHON) benchmarks/bench_large.py $(BENCH_LARGE_FLAGS)
	$(PYTHON) benchmarks/bench_check.py $(BENCH_CHECK_FLAGS)
