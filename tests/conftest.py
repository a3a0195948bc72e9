import os

import pytest
import torch

# The CI machine's two cores: all of them for a serial run, one each when `make test` splits the suite over two
# pytest-xdist workers (two torch processes with two threads each on two cores thrash). OMP_NUM_THREADS carries
# the split to the CLI subprocesses that tests start.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, 2 // WORKERS)
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Fixed seed and this worker's share of the CI machine's two threads for every test."""
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    yield
