"""The distributed components through the bridge (spec/adapters/distributed.py): the wrappers the getters build, in
real ranks."""

from __future__ import annotations

import pytest
import torch

import impl
from spec.adapters import load_adapters
from spec import ComponentMissing
from tests.harness.helpers import REPO
from tests.harness.multiprocess import implementation, run_ranks
from tests.kit.bridge.common import (A2_2026_FUNCTIONS, REFERENCE_ADAPTERS, STUB_CALLS, a2_2026_adapters,
                                     write_adapters)
from tests.kit.run_suite import run_suite

A2_2026_COMPONENTS = {"FlashAttentionPyTorch", "FlashAttentionTriton", "DDPIndividualParameters", "FSDP",
                      "ShardedOptimizer"}


def bridged_distributed(rank: int, world_size: int) -> dict:
    """In each rank: the bridged DDP wrappers and sharded optimizer are the reference's objects behind the spec's
    interface (the rank reloads the adapters file from the label)."""
    bundle = implementation(f"adapters:{REFERENCE_ADAPTERS}")
    out = {}
    for name, build in (("DDPIndividualParameters", lambda m: bundle.DDPIndividualParameters(m)),
                        ("DDPBucketed", lambda m: bundle.DDPBucketed(m, None))):
        model = torch.nn.Linear(3, 2)
        ddp = build(model)
        ddp(torch.full((4, 3), float(rank))).sum().backward()
        ddp.finish_gradient_synchronization()
        out[name] = (type(ddp.ddp) is getattr(impl, name), ddp.module is model,
                     list(ddp.parameters()) == list(model.parameters()), model.weight.grad.clone())
    optimizer = bundle.ShardedOptimizer(torch.nn.Linear(3, 2).parameters(), torch.optim.SGD, lr=0.1)
    out["ShardedOptimizer"] = type(optimizer) is impl.ShardedOptimizer
    return out


def test_distributed_components_are_the_objects_the_getters_return():
    for rank, result in enumerate(run_ranks(bridged_distributed, 2)):
        for name in ("DDPIndividualParameters", "DDPBucketed"):
            is_reference, module, parameters, grad = result[name]
            assert is_reference and module and parameters, (rank, name, result[name])
            assert torch.equal(grad, torch.full((2, 3), 2.0)), (rank, name, grad)  # the mean over ranks of 4·rank
        assert result["ShardedOptimizer"], rank


def test_ddp_hooks_get_no_optimizer(tmp_path):
    """The spec's interface passes no optimizer: a hook that uses it reports the component missing, not failed."""
    path = tmp_path / "adapters.py"
    path.write_text("def get_ddp_bucketed(module, bucket_size_mb):\n    return module\n\n"
                    "def ddp_bucketed_on_train_batch_start(ddp_model, optimizer):\n    pass\n\n"
                    "def ddp_bucketed_on_after_backward(ddp_model, optimizer):\n    optimizer.step()\n")
    bundle = load_adapters(path)
    assert set(bundle.members) == {"DDPBucketed"}
    model = torch.nn.Linear(3, 2)
    ddp = bundle.DDPBucketed(model, 1.0)
    assert ddp.module is model and torch.equal(ddp(torch.ones(1, 3)), model(torch.ones(1, 3)))
    with pytest.raises(ComponentMissing, match="ddp_bucketed_on_after_backward uses its optimizer") as error:
        ddp.finish_gradient_synchronization()
    assert error.value.component == "DDPBucketed"


def passes_through(tmp_path, adapters, components: tuple[str, ...], *args: str) -> set[str]:
    """Run the conformance suite's ``components`` (and ``args``) through ``adapters``: nothing fails, each component
    passes tests; the names of the missing tests."""
    label = adapters.relative_to(REPO) if adapters.is_relative_to(REPO) else adapters
    run = run_suite(tmp_path, "-q", *(f"--component={c}" for c in components), *args, "--impl", f"adapters:{label}")
    assert run.report is not None, run.output[-3000:]
    for component in components:
        row = run.report["components"][component]
        assert row["fail"] == 0 and row["pass"] > 0, (component, row, run.output[-3000:])
    return {r["nodeid"].split("::")[1].split("[")[0] for r in run.report["results"] if r["status"] == "missing"}


@pytest.mark.slow
def test_distributed_conformance_through_the_reference_adapters(tmp_path):
    """DDP and the sharded optimizer pass through the bridge; only the LM test is missing (bridged modules pass no
    gradients to their parameters)."""
    components = ("DDPIndividualParameters", "DDPBucketed", "ShardedOptimizer")
    missing = passes_through(tmp_path, REFERENCE_ADAPTERS, components)
    assert missing == {"test_transformer_lm_matches_one_process"}, missing


@pytest.mark.slow
def test_distributed_conformance_through_the_2026_adapters(tmp_path):
    """The current A2 interface (get_ddp, get_fsdp(module, compute_dtype), get_sharded_optimizer(params,
    optimizer_cls)) passes for two ranks. Missing: the DDP LM test, as through the 2025 adapters, and the sharded
    optimizer's case of the implementation's AdamW (this file has only A2's adapters, no get_adamw_cls)."""
    path = write_adapters(tmp_path / "adapters.py", a2_2026_adapters())
    missing = passes_through(tmp_path, path, ("DDPIndividualParameters", "ShardedOptimizer", "FSDP"), "-k", "gloo-2")
    assert missing == {"test_transformer_lm_matches_one_process", "test_steps_match_the_unsharded_optimizer"}, missing


def test_fsdp_falls_back_to_the_objects_own_methods(tmp_path):
    """Without fsdp_on_after_backward and fsdp_gather_full_params, the bridge calls the methods of the object get_fsdp
    returns; compute_dtype reaches get_fsdp only when given."""
    path = tmp_path / "adapters.py"
    path.write_text("class Wrapped:\n"
                    "    def __init__(self, module, *dtype):\n        self.module, self.dtype, self.synced = module, dtype, 0\n"
                    "    def __call__(self, x):\n        return self.module(x)\n"
                    "    def finish_gradient_synchronization(self):\n        self.synced += 1\n"
                    "    def full_state_dict(self):\n        return {'whole': True}\n\n"
                    "def get_fsdp(module, *dtype):\n    return Wrapped(module, *dtype)\n")
    bundle = load_adapters(path)
    assert set(bundle.members) == {"FSDP"}
    model = torch.nn.Linear(3, 2)
    fsdp = bundle.FSDP(model)
    assert fsdp.module is model and fsdp.dtype == () and torch.equal(fsdp(torch.ones(1, 3)), model(torch.ones(1, 3)))
    fsdp.finish_gradient_synchronization()
    assert fsdp.synced == 1 and fsdp.full_state_dict() == {"whole": True}
    assert bundle.FSDP(model, compute_dtype=torch.bfloat16).dtype == (torch.bfloat16,)


def test_fsdp_conformance_through_the_reference_adapters(tmp_path):
    """FSDP passes through the bridge, nothing missing: its tests fall back to the toy model of torch.nn layers where
    the LM cannot serve (bridged modules pass no gradients to their parameters)."""
    assert passes_through(tmp_path, REFERENCE_ADAPTERS, ("FSDP",)) == set()


# ---------------------------------------------------------------------------------------------
# The current (2026) adapters, and files with both sets


def test_2026_adapters_provide_their_components(tmp_path):
    bundle = load_adapters(write_adapters(tmp_path / "adapters.py", a2_2026_adapters()))
    assert set(bundle.members) == A2_2026_COMPONENTS
    assert bundle.FlashAttentionPyTorch is impl.FlashAttentionPyTorch


def test_2026_course_stub_reports_every_component_missing(tmp_path):
    """The 2026 course stub file: every component there, every one missing when used."""
    bundle = load_adapters(write_adapters(tmp_path / "adapters.py", a2_2026_adapters(), stubs=A2_2026_FUNCTIONS))
    assert set(bundle.members) == A2_2026_COMPONENTS
    for component in A2_2026_COMPONENTS:
        with pytest.raises(ComponentMissing, match="NotImplementedError") as error:
            STUB_CALLS[component](bundle)
        assert error.value.component == component


# Both DDP getters and their hooks, each recording that it ran.
NEW_DDP, OLD_DDP = ("get_ddp", "ddp_on_after_backward"), ("get_ddp_individual_parameters",
                                                         "ddp_individual_parameters_on_after_backward")
BOTH_DDP_INTERFACES = "\n\n".join(
    f"def {getter}(module):\n    module.built_by = {getter!r}\n    return module\n\n"
    f"def {hook}(ddp_model, optimizer):\n    ddp_model.synchronized_by = {hook!r}\n"
    for getter, hook in (NEW_DDP, OLD_DDP))


@pytest.mark.parametrize("stubs, used", [(OLD_DDP, NEW_DDP), (NEW_DDP, OLD_DDP), ((), NEW_DDP)],
                         ids=["2026-implemented", "2025-implemented", "both-implemented"])  # both: the current one
def test_a_file_with_both_ddp_interfaces_uses_the_implemented_one(tmp_path, stubs, used):
    bundle = load_adapters(write_adapters(tmp_path / "adapters.py", BOTH_DDP_INTERFACES, stubs))
    model = torch.nn.Linear(3, 2)
    ddp = bundle.DDPIndividualParameters(model)
    ddp.finish_gradient_synchronization()
    assert (model.built_by, model.synchronized_by) == used


def test_a_file_with_both_ddp_interfaces_stubbed_reports_ddp_missing(tmp_path):
    stubs = ("get_ddp", "get_ddp_individual_parameters")
    bundle = load_adapters(write_adapters(tmp_path / "adapters.py", BOTH_DDP_INTERFACES, stubs))
    with pytest.raises(ComponentMissing, match="adapters.get_ddp, adapters.get_ddp_individual_parameters raise "
                                               "NotImplementedError") as error:
        bundle.DDPIndividualParameters(torch.nn.Linear(3, 2))
    assert error.value.component == "DDPIndividualParameters"


def test_sharded_optimizer_without_keywords_gets_the_hyperparameters(tmp_path):
    """2026's get_sharded_optimizer(params, optimizer_cls) gets them bound to the class and in every group; a group's
    own values stay."""
    path = tmp_path / "adapters.py"
    path.write_text("def get_sharded_optimizer(params, optimizer_cls):\n    return optimizer_cls(params)\n")
    model = torch.nn.Linear(3, 2)
    groups = [{"params": [model.weight]}, {"params": [model.bias], "lr": 0.03}]
    optimizer = load_adapters(path).ShardedOptimizer(groups, torch.optim.SGD, lr=0.1, momentum=0.9)
    assert type(optimizer) is torch.optim.SGD
    assert [(g["lr"], g["momentum"]) for g in optimizer.param_groups] == [(0.1, 0.9), (0.03, 0.9)]
    optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))]})  # the class's own defaults: bound
    assert (optimizer.param_groups[-1]["lr"], optimizer.param_groups[-1]["momentum"]) == (0.1, 0.9)
    plain = load_adapters(path).ShardedOptimizer(model.parameters(), torch.optim.SGD, lr=0.2)
    assert plain.param_groups[0]["lr"] == 0.2 and len(plain.param_groups[0]["params"]) == 2


def test_get_fsdp_without_a_default_gets_compute_dtype(tmp_path):
    """2026's get_fsdp(module, compute_dtype) has no default: it gets None when no compute_dtype is given."""
    path = tmp_path / "adapters.py"
    path.write_text("def get_fsdp(module, compute_dtype):\n    return (module, compute_dtype)\n")
    model = torch.nn.Linear(3, 2)
    bundle = load_adapters(path)
    assert bundle.FSDP(model).ddp == (model, None)
    assert bundle.FSDP(model, torch.bfloat16).ddp == (model, torch.bfloat16)
