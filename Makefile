# `make demo` and `make test` each create .venv on a fresh machine; when it is up to date they take seconds.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: demo test browser bench bench-quality screenshots clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first, then everything else held to it by the constraints file (no CUDA wheels pulled in)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	.venv/bin/real3d generate "a red cube" --out outputs/demo --overwrite

# Debian's chromium for the browser tests of `real3d serve` / `real3d report` (tests/test_web.py); installed
# when missing and this is root (CI); elsewhere those tests skip without it
browser:
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

# the linter, the formatter's check and the type checker on the whole tree, then the tests
test: $(STAMP) browser
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(PY) benchmarks/bench_nerf.py
	$(PY) benchmarks/bench_dmtet.py
	$(PY) benchmarks/bench_prior.py
	.venv/bin/real3d bench speed --out outputs/bench-speed

# issue #19's table of docs/results.md, each preset at its own fast budget: real3d and dreamfusion on 3 seeds,
# the other two ablations on one; hours on 2 cores, resumable (run it again to continue). Two cells at a time
# with one thread each: a step is little faster on two threads than on one, so this does 1.6x the cells
# an hour of one cell on two threads. The folder is committed (its .gitignore): a fresh clone skips what is done.
# The ablations run first and their summary is kept as results-ablations.md; the main run writes results.md.
BENCH3_DIR := docs/results/fast14
BENCH3 := --out $(BENCH3_DIR) --workers 2 --threads 1
bench-quality: $(STAMP)
	.venv/bin/real3d bench quality --presets dreamfusion-d,dreamfusion-explicit --seeds 0 $(BENCH3)
	mv $(BENCH3_DIR)/results.md $(BENCH3_DIR)/results-ablations.md
	.venv/bin/real3d bench quality --presets real3d,dreamfusion --seeds 0,1,2,3,4 $(BENCH3)

clean:
	rm -rf .venv outputs
