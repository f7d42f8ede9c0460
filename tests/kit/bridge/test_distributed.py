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
from tests.kit.bridge.common import REFERENCE_ADAPTERS
from tests.kit.run_suite import run_suite


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


@pytest.mark.slow
def test_distributed_conformance_through_the_reference_adapters(tmp_path):
    """DDP and the sharded optimizer pass through the bridge; only the LM test is missing (bridged modules pass no
    gradients to their parameters)."""
    components = ("DDPIndividualParameters", "DDPBucketed", "ShardedOptimizer")
    run = run_suite(tmp_path, "-q", *(f"--component={c}" for c in components),
                    "--impl", f"adapters:{REFERENCE_ADAPTERS.relative_to(REPO)}")
    assert run.report is not None, run.output[-3000:]
    for component in components:
        row = run.report["components"][component]
        assert row["fail"] == 0 and row["pass"] > 0, (component, row, run.output[-3000:])
    missing = {r["nodeid"].split("::")[1].split("[")[0] for r in run.report["results"] if r["status"] == "missing"}
    assert missing == {"test_transformer_lm_matches_one_process"}, missing


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
    run = run_suite(tmp_path, "-q", "--component", "FSDP", "--impl", f"adapters:{REFERENCE_ADAPTERS.relative_to(REPO)}")
    assert run.report is not None, run.output[-3000:]
    row = run.report["components"]["FSDP"]
    assert row["fail"] == 0 and row["missing"] == 0 and row["pass"] > 0, (row, run.output[-3000:])
