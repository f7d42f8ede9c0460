"""The course-adapter bridge (spec/adapters/): loading a course-style adapters.py unchanged.

adapters_reference.py routes every course adapter to the reference, so through the bridge it
must behave exactly like the reference; adapters_partial.py lacks one function and stubs
another, which must come out *missing*, never failed. The areas' bridges have their tests
beside this file (test_<area>.py).
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import impl
import spec.distributed
import spec.kernels
import spec.nn
import spec.train
from spec import COMPONENTS, ComponentMissing
from spec.adapters import NO_COURSE_ADAPTER, load_adapters
from spec.loading import load_implementation
from tests.harness.helpers import REPO
from tests.harness.plugin import MISSING_EXIT
from tests.kit.bridge.common import PARTIAL_ADAPTERS, REFERENCE_ADAPTERS, STUB_CALLS


# ---------------------------------------------------------------------------------------------
# Loading


def test_reference_adapters_provide_every_component(bridged):
    assert bridged.name == f"adapters ({REFERENCE_ADAPTERS})"
    assert set(bridged.members) == set(COMPONENTS) - NO_COURSE_ADAPTER


def test_nonexistent_path_is_a_clear_error(tmp_path):
    path = tmp_path / "no_such_adapters.py"
    with pytest.raises(FileNotFoundError, match="no_such_adapters.py does not exist"):
        load_adapters(path)
    with pytest.raises(FileNotFoundError, match="no_such_adapters.py"):  # the plugin turns this into a usage error
        load_implementation(f"adapters:{path}")


def test_adapters_that_fail_to_import_are_a_clear_error(tmp_path):
    path = tmp_path / "adapters.py"
    path.write_text("from cs336_basics_not_installed_here.model import Linear\n")
    with pytest.raises(ValueError, match=r"cannot import adapters file .*adapters\.py.*cs336_basics_not_installed_here"
                                         r".*installed"):
        load_adapters(path)
    path.write_text("def run_linear(:\n")
    with pytest.raises(ValueError, match=r"cannot import adapters file .*SyntaxError.*adapters\.py:1\)"):
        load_adapters(path)
    path.write_text('"""Issue 15: a NameError names the file and line."""\n\n\nx = torch.zeros(2)\n')
    with pytest.raises(ValueError, match=r"NameError: name 'torch' is not defined \(at .*adapters\.py:4\)"):
        load_adapters(path)


def test_absent_function_leaves_its_component_missing():
    bundle = load_implementation(f"adapters:{PARTIAL_ADAPTERS}")
    assert not bundle.provides("get_batch")
    with pytest.raises(ComponentMissing, match="get_batch is missing"):
        bundle.get_batch  # noqa: B018
    assert bundle.provides("Linear") and bundle.provides("softmax")


def test_not_implemented_error_becomes_component_missing(partial):
    with pytest.raises(ComponentMissing, match="adapters.run_softmax raises NotImplementedError") as error:
        partial.softmax(torch.randn(3, 4), dim=-1)
    assert error.value.component == "softmax"


def course_stub_file(path: Path) -> Path:
    """The course's stub adapters.py: every course signature, every body ``raise NotImplementedError``."""
    import tests.kit.adapters_reference as module

    functions = [f for name, f in vars(module).items()
                 if inspect.isfunction(f) and f.__module__ == module.__name__ and not name.startswith("_")]
    lines = ["from __future__ import annotations", ""]
    for function in functions:
        lines += [f"def {function.__name__}{inspect.signature(function)}:", "    raise NotImplementedError", ""]
    path.write_text("\n".join(lines))
    return path


def test_course_stub_file_reports_every_component_missing(tmp_path):
    """The course's untouched stub file: every component is there, and every one is missing when used."""
    stub = load_adapters(course_stub_file(tmp_path / "adapters.py"))
    assert set(stub.members) == set(COMPONENTS) - NO_COURSE_ADAPTER == set(STUB_CALLS)
    for component, call in STUB_CALLS.items():
        with pytest.raises(ComponentMissing) as error:
            call(stub)
        assert error.value.component == component
        assert "NotImplementedError" in str(error.value), str(error.value)

# ---------------------------------------------------------------------------------------------
# Functions


def test_functions_have_the_spec_signatures(bridged):
    for component, area in COMPONENTS.items():
        if component in NO_COURSE_ADAPTER:
            continue
        member, spec_member = getattr(bridged, component), getattr(getattr(spec, area), component)
        if inspect.isfunction(spec_member):  # the keyword-only extras left out where the course adapter has none
            spec_signature = inspect.signature(spec_member)
            course_parameters = [p for p in spec_signature.parameters.values() if p.kind is not p.KEYWORD_ONLY]
            assert inspect.signature(member) in (spec_signature, spec_signature.replace(parameters=course_parameters)), \
                component


def test_functions_take_the_spec_keyword_names(bridged):
    x = torch.randn(3, 5)
    assert torch.equal(bridged.softmax(x=x, dim=0), impl.softmax(x, 0))
    Q, K, V = torch.randn(3, 2, 4, 8)
    mask = torch.rand(2, 4, 4) < 0.7
    mask[..., 0] = True
    assert torch.equal(bridged.scaled_dot_product_attention(Q, K, V, mask=mask),
                       impl.scaled_dot_product_attention(Q, K, V, mask))
    assert bridged.lr_cosine_schedule(t=5, max_learning_rate=1.0, min_learning_rate=0.1, warmup_iters=2,
                                      cosine_cycle_iters=10) == impl.lr_cosine_schedule(5, 1.0, 0.1, 2, 10)

# ---------------------------------------------------------------------------------------------
# End to end: the conformance suite through the bridge.


@pytest.mark.slow
def test_conformance_suite_through_partial_adapters(tmp_path):
    """The absent and the stubbed function are missing; nothing fails; the header names the adapters; the summary
    line, the matrix and the exit code (only missing: 6) agree."""
    report = tmp_path / "r.json"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/conformance", "-q", "-p", "no:cacheprovider",
         "--impl", "adapters:tests/kit/adapters_partial.py", "--report-json", str(report)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert report.exists(), f"no report written (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    result = json.loads(report.read_text())
    rows = result["components"]
    assert result["implementation"]["name"] == "adapters (tests/kit/adapters_partial.py)"
    assert rows["softmax"]["status"] == "MISSING" and rows["softmax"]["pass"] == 0
    assert rows["get_batch"]["status"] == "MISSING" and rows["get_batch"]["pass"] == 0
    failed = [r for r in result["results"] if r["status"] == "fail"]
    assert not failed, "failed through the adapters bridge:\n" + "\n".join(
        f"{r['nodeid']}: {r['message']}" for r in failed)
    # pytest's summary line, the matrix and the exit code tell the same story: passes, missing, nothing failed.
    totals, summary = result["totals"], run.stdout.strip().splitlines()[-1]
    assert run.returncode == MISSING_EXIT, (run.returncode, summary)
    assert f"{totals['pass']} passed" in summary and f"{totals['missing']} missing" in summary, (totals, summary)
    assert "failed" not in summary, summary
    for component in ("train_bpe", "Tokenizer", "Linear", "MultiHeadSelfAttention", "TransformerLM", "cross_entropy",
                      "AdamW", "load_checkpoint"):
        assert rows[component]["pass"] > 0, (component, rows[component])
