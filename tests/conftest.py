"""Suite-wide fixtures.

mmengine keeps the default scope in a process-wide registry of
``DefaultScope`` instances: a Runner (or ``init_default_scope``) in one test
would otherwise decide where the next test's ``MODELS.build`` looks modules
up (an mmpretrain scope left behind makes mmdet modules "not registered").
Every test therefore starts and ends with no default scope; tests that need
one set it themselves.
"""
import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def _isolated_default_scope():
    DefaultScope._instance_dict.clear()
    yield
    DefaultScope._instance_dict.clear()
