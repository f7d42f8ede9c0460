import os

import pytest

# The kit's plugin (implementation loading, markers, compliance report) for every test below.
pytest_plugins = ["tests.harness.plugin"]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Off CUDA, Triton kernels run through Triton's interpreter (DESIGN.md: CPU CI runs them at small shapes).
    Triton fixes a kernel's mode when the kernel is defined, i.e. when the implementation is imported, which
    the plugin's pytest_configure does: hence tryfirst. An explicit TRITON_INTERPRET=0 is respected."""
    if not config.getoption("device").startswith("cuda"):
        os.environ.setdefault("TRITON_INTERPRET", "1")
