import pytest

from ._support import DEVICES


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Each device test runs on the CPU and (where available) on CUDA."""
    return request.param
