"""Conformance of DDP (spec/distributed.py DDPIndividualParameters and DDPBucketed; A2 §5.2–§5.3, 2025 §2.3.3).

Every check runs in real processes, one per rank, in a gloo process group on the CPU
(tests/harness/multiprocess.py; ``--device cuda`` adds NCCL with one GPU per rank). Starting a world
costs seconds on a small machine, so one launch per (component, world size) runs a whole scenario:
construction from ranks seeded differently, several training steps of a toy model (tied weights, a
frozen layer, a buffer, a parameter registered first and used last), bucket layouts, and a tiny
TransformerLM of the implementation under test. The tests below read what the ranks recorded, each
checking one clause against one process training on the global batch, computed here.

When communication starts is read from the collectives each rank called (recorded in order, with the
test's own marks: a parameter's gradient became ready, backward reached the first layer, backward
returned), never from timings.
"""

from __future__ import annotations

import functools
import gc
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spec import ComponentMissing
from spec.loading import needs
from tests.harness.compare import assert_close
from tests.harness.multiprocess import collective_log, implementation, mark, run_ranks, run_ranks_once

COMPONENTS = ("DDPIndividualParameters", "DDPBucketed")
# (backend, world size): 3 ranks make a world size that divides nothing evenly by accident.
WORLDS = [pytest.param(("gloo", 2), id="gloo-2"), pytest.param(("gloo", 3), id="gloo-3"),
          pytest.param(("nccl", 2), id="nccl-2", marks=[pytest.mark.gpu, pytest.mark.multi_gpu(2)])]
pytestmark = pytest.mark.distributed
# Each test runs for both wrappers (the component marker rides on the parameter) or for the bucketed one only.
BOTH = pytest.mark.parametrize("component", [pytest.param(c, id=c, marks=pytest.mark.component(c)) for c in COMPONENTS])
BUCKETED = pytest.mark.parametrize("component", [pytest.param("DDPBucketed", marks=pytest.mark.component("DDPBucketed"))])

STEPS = 4
GLOBAL_BATCH, SEQ = 6, 5  # 6 sequences: an equal share for 2 and 3 ranks
VOCAB, D, H1, H2 = 24, 10, 16, 12
MIB = 2**20
# Bucket limits in MiB, against the toy model's trainable parameters in reverse order (float32 bytes):
# fc3.weight 480, fc1.bias 64, fc1.weight 640, embed.weight 960 (tied with the head), gain 40.
BUCKET_SIZES = {"none": None, "tiny": 16 / MIB, "800B": 800 / MIB, "1200B": 1200 / MIB, "1250B": 1250 / MIB}
EXPECTED_BUCKETS = {  # the spec's rule applied by hand
    "none": [["fc3.weight", "fc1.bias", "fc1.weight", "embed.weight", "gain"]],
    "tiny": [["fc3.weight"], ["fc1.bias"], ["fc1.weight"], ["embed.weight"], ["gain"]],
    "800B": [["fc3.weight", "fc1.bias"], ["fc1.weight"], ["embed.weight"], ["gain"]],
    "1200B": [["fc3.weight", "fc1.bias", "fc1.weight"], ["embed.weight", "gain"]],
    "1250B": [["fc3.weight", "fc1.bias", "fc1.weight"], ["embed.weight", "gain"]],
}
# The course gives bucket_size_mb as a float and never says MB or MiB; 1200 B tells them apart (1144 "MB-bytes",
# too small for the first three parameters' 1184 B), 1250 B does not. The spec's None is one bucket.
TRAINING_BUCKETS = "800B"  # gain (ready first) has a bucket of its own; fc3.weight waits for fc1.bias
REACHED_FIRST_LAYER = "backward reached fc1"
BACKWARD_RETURNED = "backward returned"
TIMEOUT_S = 120.0


class ToyModel(nn.Module):
    """Token ids -> logits through an embedding tied to the head, a frozen layer and a gain registered first but
    used last (its gradient is ready first, whatever the registration order says)."""

    def __init__(self, hidden: int = H1):
        super().__init__()
        self.gain = nn.Parameter(1 + 0.1 * torch.randn(D))
        self.embed = nn.Embedding(VOCAB, D)
        self.fc1 = nn.Linear(D, hidden)
        self.frozen = nn.Linear(hidden, H2)
        self.frozen.requires_grad_(False)
        self.fc3 = nn.Linear(H2, D, bias=False)
        self.head = nn.Linear(D, VOCAB, bias=False)
        self.head.weight = self.embed.weight  # tied: one parameter under two names
        self.register_buffer("offset", 0.1 * torch.randn(D))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) + self.offset  # (batch, seq, D)
        h = torch.tanh(self.fc1(x))  # (batch, seq, hidden)
        if h.requires_grad:
            h.register_hook(lambda grad: mark(REACHED_FIRST_LAYER))
        x = x + self.fc3(torch.tanh(self.frozen(h)))
        return self.head(x * self.gain)  # (batch, seq, VOCAB)


def toy_model(seed: int, device, hidden: int = H1) -> ToyModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ToyModel(hidden).to(device)


def tiny_lm(impl, seed: int, device) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return impl.TransformerLM(32, 8, 16, 2, 2, 32, device=device)


def token_batch(step: int, vocab: int, seq: int, world_size: int = 1, rank: int = 0, device="cpu"):
    """Rank ``rank``'s share of step ``step``'s global batch: (inputs, targets), each (GLOBAL_BATCH / world_size,
    seq)."""
    generator = torch.Generator().manual_seed(500 + step)
    ids = torch.randint(0, vocab, (GLOBAL_BATCH, seq + 1), generator=generator)
    share = GLOBAL_BATCH // world_size
    ids = ids[rank * share:(rank + 1) * share].to(device)
    return ids[:, :-1], ids[:, 1:]


def lm_loss(model, step: int, vocab: int, seq: int, world_size: int = 1, rank: int = 0, device="cpu"):
    inputs, targets = token_batch(step, vocab, seq, world_size, rank, device)
    logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by name, as CPU copies."""
    return {name: t.detach().cpu().clone() for name, t in (*model.named_parameters(), *model.named_buffers())}


def gradients(model: nn.Module) -> dict[str, torch.Tensor | None]:
    return {name: None if p.grad is None else p.grad.detach().cpu().clone() for name, p in model.named_parameters()}


def wrap(impl, component: str, model: nn.Module, bucket: str = TRAINING_BUCKETS):
    if component == "DDPBucketed":
        return impl.DDPBucketed(model, BUCKET_SIZES[bucket])
    return impl.DDPIndividualParameters(model)


def mark_when_ready(model: nn.Module) -> None:
    """Mark each trainable parameter's gradient as ready; registered before the wrapper's hooks, so it runs first."""
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            parameter.register_post_accumulate_grad_hook(lambda p, name=name: mark(f"ready {name}"))


# ---------------------------------------------------------------------------------------------
# What each rank runs (module level: the ranks import it)


def ddp_scenario(rank: int, world_size: int, label: str, component: str, with_lm: bool) -> dict:
    impl = implementation(label)
    device = torch.device("cuda", rank) if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
    out: dict = {}

    # Construction: every rank starts from its own seed; the wrapper must make them rank 0's.
    model = toy_model(seed=rank, device=device)
    out["own_init"] = state(model)
    parameters = list(model.parameters())
    mark_when_ready(model)
    ddp = wrap(impl, component, model)
    out["constructed"] = state(model)
    out["module_is_model"] = ddp.module is model
    out["same_parameters"] = [a is b for a, b in zip(ddp.parameters(), parameters)] + [
        len(list(ddp.parameters())) == len(parameters)]
    probe = token_batch(99, VOCAB, SEQ, device=device)[0]
    with torch.no_grad():
        out["forward_matches"] = torch.equal(ddp(probe), model(probe))

    # Training: SGD with momentum on this rank's share of each global batch.
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.2, momentum=0.9)
    out["steps"] = []
    for step in range(STEPS):
        optimizer.zero_grad(set_to_none=step % 2 == 0)  # both ways of clearing gradients
        with collective_log() as log:
            lm_loss(ddp, step, VOCAB, SEQ, world_size, rank, device).backward()
            mark(BACKWARD_RETURNED)
            ddp.finish_gradient_synchronization()
        out["steps"].append({"grads": gradients(model), "log": log})
        optimizer.step()
    out["trained"] = state(model)

    # Bucket layouts: one backward per limit, each on a fresh model (the wrappers' hooks stay on their model).
    # A limit the implementation rejects (None is the spec's, not the course's: its signature is a float) fails that
    # layout's test alone, so it is recorded instead of ending the scenario every other test reads.
    if component == "DDPBucketed":
        out["layouts"] = {}
        for bucket in BUCKET_SIZES:
            model = toy_model(seed=0, device=device)
            mark_when_ready(model)
            try:
                ddp = wrap(impl, component, model, bucket)
            except ComponentMissing:
                raise
            except Exception as error:  # noqa: BLE001 (any error is the finding, reported by test_bucket_layout)
                out["layouts"][bucket] = {"error": f"{type(error).__name__}: {error}"}
                continue
            with collective_log() as log:
                lm_loss(ddp, 0, VOCAB, SEQ, world_size, rank, device).backward()
                mark(BACKWARD_RETURNED)
                ddp.finish_gradient_synchronization()
            out["layouts"][bucket] = {"log": log, "grads": gradients(model)}

    # A tiny TransformerLM of the implementation under test, trained with its AdamW.
    if with_lm:
        lm = tiny_lm(impl, seed=rank, device=device)
        ddp = wrap(impl, component, lm, "tiny")
        optimizer = impl.AdamW(ddp.parameters(), lr=1e-2, weight_decay=0.1)
        for step in range(3):
            optimizer.zero_grad()
            lm_loss(ddp, step, 32, 8, world_size, rank, device).backward()
            ddp.finish_gradient_synchronization()
            optimizer.step()
        out["lm"] = state(lm)
    return out


def mismatched_models(rank: int, world_size: int, label: str, component: str) -> str | None:
    """Rank r's fc1 has H1 + r outputs: construction must raise ValueError (its message is returned)."""
    impl = implementation(label)
    device = torch.device("cuda", rank) if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
    try:
        wrap(impl, component, toy_model(seed=rank, device=device, hidden=H1 + rank))
    except ValueError as error:
        return str(error)
    return None


def dropped_wrapper_frees_its_module(rank: int, world_size: int, label: str, component: str) -> bool:
    """After one step, dropping the wrapper and the module: is the module garbage-collected?"""
    impl = implementation(label)
    model = toy_model(seed=0, device=torch.device("cpu"))
    wrapper = wrap(impl, component, model)
    wrapper(torch.randint(0, VOCAB, (2, SEQ))).sum().backward()
    wrapper.finish_gradient_synchronization()
    alive = weakref.ref(model)
    del model, wrapper
    gc.collect()
    return alive() is None


# ---------------------------------------------------------------------------------------------
# Launching: once per (implementation, component, world), shared by the tests that read the result


def ranks(impl, component: str, world: tuple[str, int]) -> list[dict]:
    """What every rank recorded in the scenario (raises the ranks' failure in each test that reads it)."""
    getattr(impl, component)  # absent: reported missing here, before any process starts
    backend, world_size = world
    if backend == "nccl" and torch.cuda.device_count() < world_size:
        pytest.skip(f"needs {world_size} CUDA devices")
    with_lm = impl.provides("TransformerLM") and impl.provides("AdamW") and \
        "autograd" not in getattr(impl.TransformerLM, "kit_unsupported", ())
    return run_ranks_once(ddp_scenario, world_size, impl.label, component, with_lm, backend=backend,
                          timeout_s=TIMEOUT_S)


@functools.cache
def single_process() -> dict:
    """The oracle: one process training the toy model on every global batch (rank 0's initial values)."""
    model = toy_model(seed=0, device="cpu")
    out = {"init": state(model), "steps": []}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    for step in range(STEPS):
        optimizer.zero_grad()
        lm_loss(model, step, VOCAB, SEQ).backward()
        out["steps"].append(gradients(model))
        optimizer.step()
    out["trained"] = state(model)
    return out


def trainable_numels() -> dict[str, int]:
    return {name: p.numel() for name, p in toy_model(0, "cpu").named_parameters() if p.requires_grad}


def all_reduces(log) -> list[tuple[int, object]]:
    """(position in the log, event) of each all-reduce."""
    return [(i, e) for i, e in enumerate(log) if e.collective and e.name.startswith("all_reduce")]


def position(log, text: str) -> int:
    return next(i for i, e in enumerate(log) if not e.collective and e.name == text)


# ---------------------------------------------------------------------------------------------
# Construction


@BOTH
@pytest.mark.parametrize("world", WORLDS)
def test_construction_broadcasts_rank_0s_values(impl, component, world):
    """Construction broadcasts every parameter (frozen ones too) and buffer from rank 0: ranks seeded differently
    all hold rank 0's initial values afterwards."""
    results = ranks(impl, component, world)
    expected = single_process()["init"]
    assert not torch.equal(results[1]["own_init"]["fc1.weight"], expected["fc1.weight"]), "ranks were seeded alike"
    for rank, result in enumerate(results):
        for name, value in expected.items():
            assert_close(result["constructed"][name], value, what=f"rank {rank} {name} after construction")


@BOTH
@pytest.mark.parametrize("world", [WORLDS[0]])
def test_wrapper_exposes_the_module(impl, component, world):
    """``wrapper.module`` is the wrapped module; ``wrapper(x)`` is its forward; ``wrapper.parameters()`` yields the
    module's own parameters in the module's order."""
    for rank, result in enumerate(ranks(impl, component, world)):
        assert result["module_is_model"], f"rank {rank}: wrapper.module is not the module passed in"
        assert all(result["same_parameters"]), f"rank {rank}: wrapper.parameters() are not the module's parameters " \
                                               f"in the module's order"
        assert result["forward_matches"], f"rank {rank}: wrapper(x) differs from module(x)"


@pytest.mark.strict
@BOTH
@pytest.mark.parametrize("world", [WORLDS[0]])
def test_mismatched_models_are_rejected_at_construction(impl, component, world):
    """Construction checks that every rank's module has the same parameter names, shapes and dtypes and raises
    ValueError naming the first mismatch on every rank (here fc1.weight, 16 x 10 on rank 0, 17 x 10 on rank 1)."""
    getattr(impl, component)
    backend, world_size = world
    messages = run_ranks(mismatched_models, world_size, impl.label, component, backend=backend, timeout_s=TIMEOUT_S)
    for rank, message in enumerate(messages):
        assert message is not None, f"rank {rank}: no ValueError for modules whose fc1.weight differs across ranks"
        assert "fc1.weight" in message, f"rank {rank}: the ValueError does not name fc1.weight: {message!r}"


@pytest.mark.strict
@BOTH
def test_dropping_the_wrapper_frees_the_module(impl, component):
    """Dropping the wrapper and the module frees them: the gradient hooks the wrapper leaves on the parameters (kept
    by autograd, out of the garbage collector's sight) must not hold the wrapper, its module and buffers alive."""
    getattr(impl, component)
    freed = run_ranks(dropped_wrapper_frees_its_module, 2, impl.label, component, timeout_s=TIMEOUT_S)
    assert all(freed), f"ranks {[r for r, ok in enumerate(freed) if not ok]}: the module outlived its dropped wrapper"


# ---------------------------------------------------------------------------------------------
# Training equals one process on the global batch


@BOTH
@pytest.mark.parametrize("world", WORLDS)
def test_gradients_are_averaged(impl, component, world):
    """After ``finish_gradient_synchronization`` every rank's gradients are the mean over ranks of the per-rank
    gradients, i.e. the gradients of one process on the global batch, at every step (zero_grad with and without
    set_to_none between steps)."""
    results, oracle = ranks(impl, component, world), single_process()
    for step, expected in enumerate(oracle["steps"]):
        for rank, result in enumerate(results):
            for name, grad in expected.items():
                if grad is not None:
                    assert_close(result["steps"][step]["grads"][name], grad,
                                 what=f"step {step} rank {rank} {name}.grad")


@BOTH
@pytest.mark.parametrize("world", WORLDS)
def test_training_matches_one_process(impl, component, world):
    """Training on world size N with 1/N of each batch per rank ends where one process training on the whole batch
    ends, on every rank (SGD with momentum, several steps, tied weights, a frozen layer)."""
    results, oracle = ranks(impl, component, world), single_process()
    for rank, result in enumerate(results):
        for name, value in oracle["trained"].items():
            assert_close(result["trained"][name], value, what=f"rank {rank} {name} after {STEPS} steps")


@BOTH
def test_one_rank_is_bit_identical_to_one_process(impl, component):
    """On world size 1 the wrapper changes nothing: every gradient and the trained values are bit-identical to one
    process training the unwrapped module."""
    result, oracle = ranks(impl, component, ("gloo", 1))[0], single_process()
    for step, expected in enumerate(oracle["steps"]):
        for name, grad in expected.items():
            got = result["steps"][step]["grads"][name]
            assert (got is None and grad is None) or torch.equal(got, grad), f"step {step}: {name}.grad differs"
    for name, value in oracle["trained"].items():
        assert torch.equal(result["trained"][name], value), f"{name} differs after {STEPS} steps"


@BOTH
@pytest.mark.parametrize("world", WORLDS)
def test_transformer_lm_matches_one_process(impl, component, world):
    """The implementation's own TransformerLM (tiny), wrapped and trained 3 steps with its AdamW, ends on every
    rank where one process training on the global batch ends."""
    results = ranks(impl, component, world)
    needs(impl.TransformerLM, "autograd", "TransformerLM")
    impl.AdamW  # noqa: B018  (absent: missing)
    model = tiny_lm(impl, seed=0, device="cpu")
    optimizer = impl.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(3):
        optimizer.zero_grad()
        lm_loss(model, step, 32, 8).backward()
        optimizer.step()
    for rank, result in enumerate(results):
        for name, value in state(model).items():
            assert_close(result["lm"][name], value, what=f"rank {rank} TransformerLM {name} after 3 steps")


@BOTH
@pytest.mark.parametrize("world", WORLDS)
def test_frozen_parameters_get_no_gradient(impl, component, world):
    """Frozen parameters (requires_grad=False) keep ``.grad`` None on every rank at every step and keep rank 0's
    initial values."""
    results, oracle = ranks(impl, component, world), single_process()
    for rank, result in enumerate(results):
        for step in result["steps"]:
            for name in ("frozen.weight", "frozen.bias"):
                assert step["grads"][name] is None, f"rank {rank}: the frozen {name} has a gradient"
        for name in ("frozen.weight", "frozen.bias"):
            assert_close(result["trained"][name], oracle["init"][name], what=f"rank {rank} frozen {name}")


# ---------------------------------------------------------------------------------------------
# Communication


# strict: seen through the kit's recorder of torch.distributed's Python calls, which torch's own DDP (its C++
# reducer) bypasses; the course checks what the communication computes, as the tests above do.
@pytest.mark.strict
@BOTH
@pytest.mark.parametrize("world", WORLDS)
def test_each_gradient_is_communicated_once(impl, component, world):
    """Per backward, the gradients communicated are those of the trainable parameters, each once: a tied parameter
    once, a frozen one never (one all-reduce per parameter; bucketed: one per bucket, of the bucket's elements)."""
    numels = trainable_numels()
    if component == "DDPIndividualParameters":
        expected = sorted(numels.values())
    else:
        expected = sorted(sum(numels[n] for n in bucket) for bucket in EXPECTED_BUCKETS[TRAINING_BUCKETS])
    for rank, result in enumerate(ranks(impl, component, world)):
        for step, record in enumerate(result["steps"]):
            got = sorted(e.numel for _, e in all_reduces(record["log"]))
            assert got == expected, f"rank {rank} step {step}: all-reduced element counts {got}, expected {expected} " \
                                    f"(trainable parameters {numels}; tied counted once, frozen never)"


# strict: seen through the kit's recorder of torch.distributed's Python calls, which torch's own DDP (its C++
# reducer) bypasses; the course checks what the communication computes, as the tests above do.
@pytest.mark.strict
@BOTH
@pytest.mark.parametrize("world", WORLDS)
def test_all_reduce_is_launched_during_backward(impl, component, world):
    """Each all-reduce is launched asynchronously from within ``backward`` as soon as its gradients are ready, not
    after backward returns: every one before backward returns, and the first before backward reaches the first
    layer (the gain's gradient is ready long before)."""
    results = ranks(impl, component, world)
    for rank, result in enumerate(results):
        logs = [record["log"] for record in result["steps"]]
        if component == "DDPBucketed" and "log" in result["layouts"]["tiny"]:  # else test_bucket_layout reports it
            logs.append(result["layouts"]["tiny"]["log"])
        for log in logs:
            launched = all_reduces(log)
            assert launched, f"rank {rank}: no all-reduce recorded (collectives must go through torch.distributed)"
            assert all(e.async_op for _, e in launched), f"rank {rank}: an all-reduce was not asynchronous (async_op)"
            returned, reached = position(log, BACKWARD_RETURNED), position(log, REACHED_FIRST_LAYER)
            late = [i for i, _ in launched if i > returned]
            assert not late, f"rank {rank}: {len(late)} of {len(launched)} all-reduces launched after backward returned"
            assert launched[0][0] < reached, f"rank {rank}: no all-reduce launched before backward reached the first " \
                                             f"layer: communication does not overlap the backward"


# ---------------------------------------------------------------------------------------------
# Buckets (DDPBucketed only)


@BUCKETED
@pytest.mark.parametrize("world", [WORLDS[0]])
@pytest.mark.parametrize("bucket", [b for b in BUCKET_SIZES if BUCKET_SIZES[b] is not None])
def test_every_bucket_size_averages_the_gradients(impl, component, world, bucket):
    """Whatever bucket_size_mb, from smaller than any parameter to larger than all of them, every trainable
    parameter's gradient is the mean over the ranks after ``finish_gradient_synchronization``."""
    oracle = single_process()["steps"][0]
    for rank, result in enumerate(ranks(impl, component, world)):
        layout = result["layouts"][bucket]
        assert "error" not in layout, f"rank {rank}: DDPBucketed(module, bucket_size_mb={BUCKET_SIZES[bucket]}) " \
                                      f"raised {layout['error']}"
        for name, grad in oracle.items():
            if grad is not None:
                assert_close(layout["grads"][name], grad, what=f"rank {rank} bucket_size_mb={BUCKET_SIZES[bucket]} "
                                                                f"{name}.grad")


# strict: seen through the kit's recorder of torch.distributed's Python calls, which torch's own DDP (its C++
# reducer) bypasses; the course checks what the communication computes, as the tests above do.
@pytest.mark.strict
@BUCKETED
@pytest.mark.parametrize("world", [WORLDS[0]])
@pytest.mark.parametrize("bucket", list(BUCKET_SIZES))
def test_bucket_layout(impl, component, world, bucket):
    """Buckets hold at most bucket_size_mb MiB, filled in reverse order of ``module.parameters()``; a parameter larger
    than the limit alone; None: one bucket. Seen as the element counts of the all-reduces."""
    numels = trainable_numels()
    expected = sorted(sum(numels[n] for n in b) for b in EXPECTED_BUCKETS[bucket])
    for rank, result in enumerate(ranks(impl, component, world)):
        layout = result["layouts"][bucket]
        assert "error" not in layout, f"rank {rank}: DDPBucketed(module, bucket_size_mb={BUCKET_SIZES[bucket]}) " \
                                      f"raised {layout['error']}"
        got = sorted(e.numel for _, e in all_reduces(layout["log"]))
        assert got == expected, f"rank {rank}, bucket_size_mb={BUCKET_SIZES[bucket]}: buckets of {got} elements, " \
                                f"expected {expected} ({EXPECTED_BUCKETS[bucket]}, parameters {numels})"


# strict: seen through the kit's recorder of torch.distributed's Python calls, which torch's own DDP (its C++
# reducer) bypasses; the course checks what the communication computes, as the tests above do.
@pytest.mark.strict
@BUCKETED
@pytest.mark.parametrize("world", [WORLDS[0]])
def test_no_bucket_is_all_reduced_before_its_gradients_are_ready(impl, component, world):
    """A bucket's all-reduce starts only once every one of its gradients is ready (the gain, registered first, is
    ready first: a bucket holding it and later layers must wait for them)."""
    numels = trainable_numels()
    for rank, result in enumerate(ranks(impl, component, world)):
        logs = {f"step {s}": r["log"] for s, r in enumerate(result["steps"])}
        logs |= {f"bucket_size_mb={BUCKET_SIZES[b]}": result["layouts"][b]["log"] for b in BUCKET_SIZES
                 if "log" in result["layouts"][b]}  # a rejected limit: test_bucket_layout reports it
        layouts = {f"step {s}": TRAINING_BUCKETS for s in range(STEPS)} | {
            f"bucket_size_mb={BUCKET_SIZES[b]}": b for b in BUCKET_SIZES}
        for what, log in logs.items():
            by_numel = {sum(numels[n] for n in b): b for b in EXPECTED_BUCKETS[layouts[what]]}
            for i, event in all_reduces(log):
                bucket = by_numel.get(event.numel)
                if bucket is None:
                    continue  # a layout error: test_bucket_layout reports it
                early = [n for n in bucket if not any(e.name == f"ready {n}" for e in log[:i])]
                assert not early, f"rank {rank} {what}: the bucket {bucket} was all-reduced before the gradients " \
                                  f"of {early} were ready"
