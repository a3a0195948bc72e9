import os

import pytest
import torch

from tests.cpu import THREADS, WORKERS

# OMP_NUM_THREADS carries this worker's share of the two cores to the CLI subprocesses that tests start.
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Fixed seed and this worker's share of the CI machine's two threads for every test."""
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    yield
