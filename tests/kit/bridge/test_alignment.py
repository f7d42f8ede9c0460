"""The alignment functions through the bridge (spec/adapters/alignment.py)."""

from __future__ import annotations

import torch

import impl
import spec.alignment
from spec.adapters import NO_COURSE_ADAPTER, load_adapters
from tests.kit.bridge.common import REFERENCE_ADAPTERS, write_adapters
from tests.kit.run_suite import run_suite


def test_masked_normalize_is_called_with_keywords(bridged):
    """The course's adapter takes (tensor, mask, dim, normalize_constant): the spec's order must not reach it
    positionally."""
    x, mask = torch.randn(3, 4), torch.rand(3, 4) > 0.3
    torch.testing.assert_close(bridged.masked_normalize(x, mask, 2.5, 1), impl.masked_normalize(x, mask, 2.5, 1))


def test_r1_zero_reward_has_no_course_adapter():
    """The reward is the course's starter code, not an adapter: missing through the bridge."""
    assert "r1_zero_reward_fn" in NO_COURSE_ADAPTER


def test_dpo_through_the_older_adapter_name(tmp_path):
    """A file with only ``per_instance_dpo`` (the handout's name) provides the DPO loss."""
    source = ("import impl\n\n\ndef per_instance_dpo(lm, lm_ref, tokenizer, beta, prompt, response_chosen, "
              "response_rejected):\n    return impl.compute_per_instance_dpo_loss(lm, lm_ref, tokenizer, beta, prompt, "
              "response_chosen, response_rejected)\n")
    bundle = load_adapters(write_adapters(tmp_path / "adapters.py", source))
    assert set(bundle.members) == {"compute_per_instance_dpo_loss"}


def test_alignment_suite_through_the_reference_adapters(tmp_path):
    """The alignment area's conformance tests pass through the course adapters; the r1_zero reward's are missing."""
    components = [arg for component in spec.alignment.__all__ for arg in ("--component", component)]
    suite = run_suite(tmp_path, "--impl", f"adapters:{REFERENCE_ADAPTERS}", *components)
    assert suite.report is not None, suite.output[-3000:]
    statuses = {r["nodeid"]: r["status"] for r in suite.report["results"]}
    not_passed = {node: status for node, status in statuses.items() if status != "pass"}
    assert not_passed and all("test_r1_zero_reward" in node and status == "missing"
                              for node, status in not_passed.items()), not_passed
    assert sum(status == "pass" for status in statuses.values()) > 80
