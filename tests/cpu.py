"""The CI machine's two cores: all of them for a serial run, one each when `make test` splits the suite over
two pytest-xdist workers (two torch processes with two threads each on two cores thrash: a step goes many
times slower). Tests that start a job with threads of its own (a CLI subprocess, `--threads`, a bench's
cells) pass it THREADS, or the OMP_NUM_THREADS that conftest sets from it."""

import os

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, 2 // WORKERS)
