import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Fixed seed and the CI machine's two threads for every test."""
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield
