# `make demo` and `make test` each create .venv on a fresh machine; when it is up to date they take seconds.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: demo test bench bench-quality clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first, then everything else held to it by the constraints file (no CUDA wheels pulled in)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	.venv/bin/real3d generate "a red cube" --out outputs/demo --overwrite

# the linter, the formatter's check and the type checker on the whole tree, then the tests
test: $(STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_nerf.py
	$(PY) benchmarks/bench_dmtet.py
	$(PY) benchmarks/bench_prior.py
	.venv/bin/real3d bench speed --out outputs/bench-speed

# the quality table of docs/results.md: hours on 2 cores; resumable (run it again to continue)
bench-quality: $(STAMP)
	.venv/bin/real3d bench quality --presets dreamfusion,dreamfusion-d,dreamfusion-explicit,real3d \
		--steps 200 --evolution-every 25 --out outputs/bench optimizer.lr=2e-2

clean:
	rm -rf .venv outputs
