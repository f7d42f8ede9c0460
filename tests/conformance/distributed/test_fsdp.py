"""Conformance of fully-sharded data parallel (spec/distributed.py FSDP; A2 §7).

Every test runs real ranks (tests/harness/multiprocess.py): gloo on CPU, NCCL with ``--device cuda`` and
enough GPUs. Launching ranks costs seconds, so one launch per world size does all the training and records
what it saw (``fsdp_run``); each test below judges one clause of the spec from that record.

The oracle is one process training the unwrapped module on the global batch, of which rank r gets rows
``tensor_split(batch, world_size)[r]``; the full weights of the FSDP run are rebuilt by the test itself from
every rank's ``parameters()`` (shards concatenated in rank order), so that no check leans on the
implementation's own ``full_state_dict``. Two models: the kit's TransformerLM (the implementation's own, so
the spec's Linear and Embedding; trained with its AdamW) and a toy model of torch.nn layers (any FSDP must
recognize those; torch.optim.SGD with momentum, whose step is linear in the gradient) with what the LM lacks:
biases and a free parameter (replicated), a weight tied between an Embedding and a Linear, a frozen weight, uneven rows and, at world size 3, a rank
holding no rows. A third, of layer classes of its own (subclasses of nn.Module alone, as a course participant's
Linear, Embedding and RMSNorm are), is judged at the strict level: the spec shards layers by what they are, not by
their class. Through a course adapters file the LM cannot serve (bridged modules pass no gradients to
their parameters): its parts are left out and the toy model's still count. The compute-dtype run uses the toy
without its bias (a float32 bias cannot meet bfloat16 inputs; the spec keeps replicated parameters' dtype).

What is bit-identical, and to what: in float32 each rank's forward output equals the unwrapped module's on the
same rows holding the full weights, at every step; at world size 1 the whole training equals the oracle's.
At 2 and 3 ranks training equals the oracle within float32 tolerance (the reduction sums in another order), and
replicated gradients are bit-identical across ranks.

Memory is counted without timing anything: a TorchDispatchMode keeps weak references to every weight-sized
storage created during the forward and counts those still alive between layers.
"""

from __future__ import annotations

import functools

import time
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from spec import ComponentMissing
from spec.loading import needs
from tests.harness.compare import assert_close
from tests.harness.multiprocess import implementation, run_ranks

pytestmark = [pytest.mark.component("FSDP"), pytest.mark.distributed]

# (backend, world size): gloo on the CPU; NCCL with one GPU per rank. 3 ranks split nothing evenly by accident.
WORLDS = [pytest.param(("gloo", n), id=f"gloo-{n}") for n in (1, 2, 3)] + [
    pytest.param(("nccl", 2), id="nccl-2", marks=[pytest.mark.gpu, pytest.mark.multi_gpu(2)])]
STEPS = 3
BATCH = 6  # global batch: 6 rows split evenly over 1, 2 or 3 ranks, so the mean of local losses is the global one
LR, WEIGHT_DECAY = 1e-3, 0.1
PREFETCH = 2  # the spec's limit: gathers outstanding at once
# vocab 41 and d_ff 40 split unevenly over 2 or 3 ranks (21 + 20; 14 + 14 + 13 and 14 + 13 + 13).
LM_CONFIG = dict(vocab_size=41, context_length=8, d_model=24, num_layers=2, num_heads=2, d_ff=40)
TOY_VOCAB, TOY_D = 23, 12
CHAIN_LAYERS, CHAIN_D = 6, 48  # the memory probe: a chain of equal Linear layers, weights far larger than activations
# After wait() returns, gloo's worker thread may hold a finished collective (and its buffer) a moment longer: a
# count above the limit is read again until it settles, for at most this long. A weight the implementation keeps
# never settles.
SETTLE_S = 2.0


class Toy(nn.Module):
    """torch.nn layers only, with the cases the LM lacks (see the module docstring)."""

    def __init__(self, bias: bool = True):
        super().__init__()
        self.gain = nn.Parameter(1 + 0.1 * torch.randn(20))  # replicated: not in a Linear or Embedding
        self.embed = nn.Embedding(TOY_VOCAB, TOY_D)  # 23 rows: 12 + 11, 8 + 8 + 7
        self.up = nn.Linear(TOY_D, 20, bias=bias)  # its bias is replicated (a float32 bias cannot meet bf16 inputs)
        self.down = nn.Linear(20, TOY_D, bias=False)
        self.narrow = nn.Linear(TOY_D, 2, bias=False)  # 2 rows: at world size 3 one rank holds none
        self.frozen = nn.Linear(TOY_D, TOY_D, bias=False)
        self.frozen.weight.requires_grad_(False)
        self.head = nn.Linear(TOY_D, TOY_VOCAB, bias=False)
        self.head.weight = self.embed.weight  # tied: one parameter under two names

    def forward(self, ids: Tensor) -> Tensor:
        h = self.embed(ids)  # (B, S) -> (B, S, D)
        h = h + self.down(torch.relu(self.up(h)) * self.gain.to(h.dtype))  # (B, S, D) in the compute dtype
        h = self.frozen(h) + self.narrow(h).sum(-1, keepdim=True)
        return self.head(h)  # (B, S, V)


class OwnLinear(nn.Module):
    """A course participant's Linear: a (d_out, d_in) matrix and an einsum, nothing of torch.nn's."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) / d_in ** 0.5)

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("...i,oi->...o", x, self.weight)


class OwnEmbedding(nn.Module):
    def __init__(self, vocab: int, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(vocab, d))

    def forward(self, ids: Tensor) -> Tensor:
        return self.weight[ids]


class OwnRMSNorm(nn.Module):
    """Its gain is a vector: replicated."""

    def __init__(self, d: int):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(d))

    def forward(self, x: Tensor) -> Tensor:
        rms = x.float().square().mean(-1, keepdim=True).add(1e-5).rsqrt()
        return (x.float() * rms * self.weight).to(x.dtype)


class Own(nn.Module):
    """The toy's shape in layer classes of its own: 23 embedding rows, 20 hidden, 2 rows in ``narrow``."""

    def __init__(self):
        super().__init__()
        self.embed = OwnEmbedding(TOY_VOCAB, TOY_D)
        self.norm = OwnRMSNorm(TOY_D)
        self.up, self.down = OwnLinear(TOY_D, 20), OwnLinear(20, TOY_D)
        self.narrow = OwnLinear(TOY_D, 2)
        self.head = OwnLinear(TOY_D, TOY_VOCAB)

    def forward(self, ids: Tensor) -> Tensor:
        h = self.embed(ids)
        h = h + self.down(torch.relu(self.up(self.norm(h))))
        return self.head(h + self.narrow(h).sum(-1, keepdim=True))


def build(impl, kind: str, seed: int, device) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "lm":
        return impl.TransformerLM(**LM_CONFIG, device=device)
    if kind.startswith("own"):
        return Own().to(device)
    return Toy(bias=kind != "toy_bf16").to(device)


def optimizer_class(impl, kind: str):
    # The toy trains with SGD: its step is linear in the gradient, so a gradient summed instead of averaged over
    # the ranks shows in the trained weights (AdamW's m/√v hides a constant factor).
    if kind == "lm":
        return impl.AdamW
    return functools.partial(torch.optim.SGD, momentum=0.9)


def sharded_flags(model: nn.Module) -> list[bool]:
    """For each of ``model.parameters()``: is it a Linear's or an Embedding's ``weight`` (the spec shards those):
    the ``weight`` matrix of a submodule without submodules, whatever its class."""
    flags = []
    for name, parameter in model.named_parameters():
        owner, _, leaf = name.rpartition(".")
        layer = model.get_submodule(owner)
        flags.append(leaf == "weight" and parameter.dim() == 2 and next(layer.children(), None) is None)
    return flags


def batches(kind: str) -> list[tuple[Tensor, Tensor]]:
    """The global batches (inputs, targets) of every step; the same in every process."""
    vocab = LM_CONFIG["vocab_size"] if kind == "lm" else TOY_VOCAB
    generator = torch.Generator().manual_seed(7)
    return [tuple(torch.randint(0, vocab, (BATCH, LM_CONFIG["context_length"]), generator=generator) for _ in "xy")
            for _ in range(STEPS)]


def loss_of(logits: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten())


def cpu(tensors) -> list[Tensor | None]:
    return [None if t is None else t.detach().cpu().clone() for t in tensors]


# ---------------------------------------------------------------------------------------------
# Inside a rank


class Watch(TorchDispatchMode):
    """Weak references to every new storage of at least ``min_bytes`` an op creates; every collective's tensors."""

    def __init__(self, min_bytes: int):
        super().__init__()
        self.min_bytes = min_bytes
        self.storages: dict[int, StorageWeakRef] = {}
        self.collectives: list[tuple[str, torch.dtype, int]] = []  # (op, dtype, numel) per tensor argument

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)]
        if func.namespace == "c10d":
            self.collectives += [(func.__name__, t.dtype, t.numel()) for t in inputs]
        # New storages only: a view or an in-place result shares an input's (a parameter's, an earlier buffer's).
        old = {t.untyped_storage().data_ptr() for t in inputs}
        for t in tree_flatten(out)[0]:
            if isinstance(t, Tensor) and t.untyped_storage().data_ptr() not in old \
                    and t.untyped_storage().nbytes() >= self.min_bytes:
                key = t.untyped_storage().data_ptr()
                if key not in self.storages or self.storages[key].expired():
                    self.storages[key] = StorageWeakRef(t.untyped_storage())
        return out

    def alive(self, limit: int) -> int:
        """How many of them are alive, once the count is at most ``limit`` or SETTLE_S has passed."""
        deadline = time.monotonic() + SETTLE_S
        while (alive := sum(not ref.expired() for ref in self.storages.values())) > limit \
                and time.monotonic() < deadline:
            time.sleep(0.001)
        return alive


class Marker(nn.Module):
    """Identity that records how many weight-sized storages are alive when the forward passes it."""

    def __init__(self, watch: Watch, counts: list[int]):
        super().__init__()
        self.watch, self.counts = [watch], counts  # in a list: not a registered attribute

    def forward(self, x: Tensor) -> Tensor:
        self.counts.append(self.watch[0].alive(limit=PREFETCH))
        return x


def gather_full(parameters: list[Tensor], sharded: list[bool]) -> list[Tensor]:
    """The full parameters rebuilt from every rank's ``parameters()``: shards concatenated in rank order."""
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, cpu(parameters))
    return [torch.cat([theirs[i] for theirs in everyone]) if flag else everyone[0][i] for i, flag in enumerate(sharded)]


@torch.no_grad()
def load_parameters(model: nn.Module, full: list[Tensor]) -> None:
    """Load the weights rebuilt from the wrapper's ``parameters()`` into the unwrapped module, or say, in the spec's
    terms, why they do not fit (the spec: one parameter per module parameter, in its order, weights as row shards)."""
    own = list(model.parameters())
    if len(own) != len(full):
        raise AssertionError(f"the wrapper's parameters() yields {len(full)} tensors, the module has {len(own)}: the "
                             f"spec has it yield one per module parameter, in the module's order")
    for i, (p, value) in enumerate(zip(own, full)):
        if p.shape != value.shape:
            raise AssertionError(f"parameter {i}: the shards of every rank's parameters(), concatenated in rank order, "
                                 f"have shape {tuple(value.shape)}, the module's weight {tuple(p.shape)}: the spec's "
                                 f"shards are the weight's rows, tensor_split(weight, world_size)[rank]")
        p.copy_(value)


def train(impl, kind: str, rank: int, world_size: int, device, compute_dtype=None, compare: bool = True) -> dict:
    """FSDP training on this rank's rows of each global batch; what the tests judge, on the CPU. ``compare``: also
    the forward against the unwrapped module and ``full_state_dict`` (both read the parameters as row shards)."""
    model, plain = build(impl, kind, seed=rank, device=device), build(impl, kind, seed=0, device=device)
    sharded = sharded_flags(plain)
    fsdp = impl.FSDP(model) if compute_dtype is None else impl.FSDP(model, compute_dtype=compute_dtype)
    record = {"module": fsdp.module is model, "initial": cpu(fsdp.parameters()), "losses": [], "forward_equal": [],
              "grads": None, "collectives": None}
    optimizer = optimizer_class(impl, kind)(list(fsdp.parameters()), lr=LR, weight_decay=WEIGHT_DECAY)
    for step, (x, y) in enumerate(batches(kind)):
        x, y = x.tensor_split(world_size)[rank].to(device), y.tensor_split(world_size)[rank].to(device)
        optimizer.zero_grad(set_to_none=True)
        watch = Watch(min_bytes=2**62)  # its collectives only: no storage is that large
        with watch:
            logits = fsdp(x)
        if step == 0:
            record["collectives"] = watch.collectives
        if compute_dtype is None and compare:  # the unwrapped module on the full weights, on the same rows
            load_parameters(plain, gather_full(list(fsdp.parameters()), sharded))
            with torch.no_grad():
                record["forward_equal"].append(torch.equal(plain(x), logits.detach()))
        loss = loss_of(logits, y)
        loss.backward()
        fsdp.finish_gradient_synchronization()
        if step == 0:
            record["grads"] = cpu(p.grad for p in fsdp.parameters())
        optimizer.step()
        record["losses"].append(loss.item())
    record["final"] = cpu(fsdp.parameters())
    record["dtypes"] = {"parameters": {p.dtype for p in fsdp.parameters()},
                        "gradients": {p.grad.dtype for p in fsdp.parameters() if p.grad is not None},
                        "optimizer": {t.dtype for s in optimizer.state.values() for t in s.values()
                                      if isinstance(t, Tensor) and t.is_floating_point()}}
    if compare:
        record["full_state"] = full_state_record(impl, kind, fsdp, plain, sharded, device)
    return record


def train_own(impl, rank: int, world_size: int, device) -> dict:
    """The model of layer classes of its own, in float32 and in bfloat16: its failures go to the strict test that
    judges it, never to the course-level ones that share this launch."""
    try:
        return {"own": train(impl, "own", rank, world_size, device, compare=False),
                "own_bf16": train(impl, "own_bf16", rank, world_size, device, compute_dtype=torch.bfloat16,
                                  compare=False)}
    except Exception as error:  # noqa: BLE001  (recorded for test_layers_of_any_class_are_sharded)
        return {"own_error": f"{type(error).__name__}: {error}"}


def full_state_record(impl, kind, fsdp, plain, sharded, device) -> dict:
    """``full_state_dict()`` against the unwrapped module holding the rebuilt full weights, and loaded into a fresh one."""
    load_parameters(plain, gather_full(list(fsdp.parameters()), sharded))
    expected = plain.state_dict()
    try:
        state = fsdp.full_state_dict()
    except ComponentMissing as missing:
        return {"missing": str(missing)}
    problems = []
    if list(state) != list(expected):
        problems.append(f"keys {list(state)}, expected the module's {list(expected)}")
    for key in expected.keys() & state.keys():
        if state[key].dtype != torch.float32 or not torch.equal(state[key].cpu(), expected[key].cpu()):
            problems.append(f"{key}: {state[key].dtype} {tuple(state[key].shape)}, expected float32 "
                            f"{tuple(expected[key].shape)} equal to the gathered shards")
    try:
        build(impl, kind, seed=1, device=device).load_state_dict(state)
    except Exception as error:  # noqa: BLE001  (reported, not raised: the other records still count)
        problems.append(f"load_state_dict into the unwrapped module failed: {type(error).__name__}: {error}")
    return {"problems": problems}


def memory_probe(impl, device) -> dict:
    """A chain of Linear layers with a marker after each: weight-sized storages alive between layers and after."""
    torch.manual_seed(0)
    watch, counts = Watch(min_bytes=CHAIN_D * CHAIN_D * 4), []
    chain = nn.Sequential(*[m for _ in range(CHAIN_LAYERS) for m in (nn.Linear(CHAIN_D, CHAIN_D, bias=False),
                                                                      Marker(watch, counts))]).to(device)
    fsdp = impl.FSDP(chain)
    x = torch.randn(2, 4, CHAIN_D, device=device, requires_grad=True)
    with watch:
        y = fsdp(x)
    after_forward = watch.alive(limit=0)
    y.square().mean().backward()
    fsdp.finish_gradient_synchronization()
    return {"between_layers": counts, "after_forward": after_forward}


def rank_device(rank: int) -> torch.device:
    return torch.device("cuda", rank) if dist.get_backend() == "nccl" else torch.device("cpu")


def fsdp_run(rank: int, world_size: int, label: str, with_lm: bool) -> dict:
    impl = implementation(label)
    device = rank_device(rank)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = {"toy": train(impl, "toy", rank, world_size, device), "memory": memory_probe(impl, device),
                  "bf16": {"toy_bf16": train(impl, "toy_bf16", rank, world_size, device, compute_dtype=torch.bfloat16)},
                  **train_own(impl, rank, world_size, device)}
        if with_lm:
            record["lm"] = train(impl, "lm", rank, world_size, device)
            record["bf16"]["lm"] = train(impl, "lm", rank, world_size, device, compute_dtype=torch.bfloat16)
    record["warnings"] = [f"{w.category.__name__} at {w.filename}:{w.lineno}: {w.message}" for w in caught]
    return record


def mismatched_run(rank: int, world_size: int, label: str) -> str:
    impl = implementation(label)
    device = rank_device(rank)
    module = nn.Sequential(nn.Linear(4, 6), nn.Linear(6 + rank, 3)).to(device)  # rank r's second layer is wider
    try:
        impl.FSDP(module)
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {error}"
    return "no error"


# ---------------------------------------------------------------------------------------------
# In the test process


def has_lm(impl) -> bool:
    try:
        needs(impl.TransformerLM, "autograd", "FSDP")
        return impl.provides("AdamW")
    except ComponentMissing:
        return False


def launch(fn, world: tuple[str, int], *args, timeout_s: float) -> list:
    backend, world_size = world
    if backend == "nccl" and torch.cuda.device_count() < world_size:
        pytest.skip(f"NCCL at world size {world_size} needs {world_size} GPUs, {torch.cuda.device_count()} visible")
    return run_ranks(fn, world_size, *args, backend=backend, timeout_s=timeout_s)


@pytest.fixture(scope="module")
def runs(impl):
    """(backend, world size) -> every rank's record, launched on first use."""
    cache: dict[tuple[str, int], list[dict]] = {}

    def get(world: tuple[str, int]) -> list[dict]:
        if world not in cache:
            impl.FSDP  # noqa: B018  (absent: every test is *missing*, before any process starts)
            cache[world] = launch(fsdp_run, world, impl.label, has_lm(impl), timeout_s=300)
        return cache[world]

    return get


@pytest.fixture(scope="module")
def oracle(impl):
    """kind -> one process training the unwrapped module on the global batches: losses, first gradients, final."""
    cache: dict[str, dict] = {}

    def get(kind: str) -> dict:
        if kind not in cache:
            model = build(impl, kind, seed=0, device="cpu")
            optimizer = optimizer_class(impl, kind)(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
            record = {"initial": cpu(model.parameters()), "losses": [], "sharded": sharded_flags(model)}
            for step, (x, y) in enumerate(batches(kind)):
                optimizer.zero_grad(set_to_none=True)
                loss = loss_of(model(x), y)
                loss.backward()
                if step == 0:
                    record["grads"] = cpu(p.grad for p in model.parameters())
                optimizer.step()
                record["losses"].append(loss.item())
            record["final"] = cpu(model.parameters())
            cache[kind] = record
        return cache[kind]

    return get


def kinds(impl) -> list[str]:
    return ["toy", "lm"] if has_lm(impl) else ["toy"]


def rows(full: Tensor | None, rank: int, world_size: int, sharded: bool) -> Tensor | None:
    """What rank ``rank`` must hold of ``full``: its tensor_split rows if sharded, else all of it."""
    if full is None or not sharded:
        return full
    return full.tensor_split(world_size)[rank]


def rebuilt(records: list[dict], key: str, sharded: list[bool]) -> list[Tensor]:
    """Full tensors from every rank's list under ``key`` (shards concatenated in rank order)."""
    return [torch.cat([r[key][i] for r in records]) if flag else records[0][key][i] for i, flag in enumerate(sharded)]


by_world = pytest.mark.parametrize("world", WORLDS)


# ---------------------------------------------------------------------------------------------
# Sharding


@pytest.mark.strict  # the course reads parameters only through fsdp_gather_full_params
@by_world
def test_parameters_are_rank_0s_rows(impl, runs, oracle, world):
    """``parameters()`` yields the module's parameters in its order: every Linear/Embedding weight as this rank's
    rows ``tensor_split(weight, world_size)[rank]`` of rank 0's weight, float32; every other parameter whole.
    Ranks built their models from different seeds: construction makes them all rank 0's."""
    for kind in kinds(impl):
        assert_rank_0s_rows(runs(world), oracle(kind), kind, world[1])


def assert_rank_0s_rows(records: list[dict], expected: dict, kind: str, world_size: int) -> None:
    for rank, record in enumerate(records):
        assert record[kind]["module"], f"{kind}: wrapper.module is not the module that was wrapped"
        got = record[kind]["initial"]
        assert len(got) == len(expected["initial"]), \
            f"{kind}: rank {rank}'s parameters() yields {len(got)} tensors, the module has {len(expected['initial'])}"
        for i, (g, full, flag) in enumerate(zip(got, expected["initial"], expected["sharded"])):
            want = rows(full, rank, world_size, flag)
            what = f"{kind}, rank {rank}, parameter {i} ({'rows of a sharded weight' if flag else 'replicated'})"
            assert g.shape == want.shape, f"{what}: shape {tuple(g.shape)}, expected {tuple(want.shape)}"
            assert g.dtype == torch.float32, f"{what}: {g.dtype}, expected float32 master weights"
            assert torch.equal(g, want), f"{what}: values are not rank 0's"


# ---------------------------------------------------------------------------------------------
# Training


@pytest.mark.strict  # the course compares trained weights, within tolerance
@by_world
def test_forward_is_bit_identical_to_the_unwrapped_module(impl, runs, world):
    """float32: at every step each rank's forward output is bit-identical to the unwrapped module's on the same
    rows, holding the full weights (gathering moves bits exactly and the module's own code computes)."""
    for rank, record in enumerate(runs(world)):
        for kind in kinds(impl):
            equal = record[kind]["forward_equal"]
            assert all(equal) and len(equal) == STEPS, f"{kind}, rank {rank}: forward bit-identical at steps {equal}"


@by_world
def test_training_equals_one_process_on_the_global_batch(impl, runs, oracle, world):
    """Several optimizer steps, each rank on its rows of the batch, equal one process on the whole batch: the mean
    of the ranks' losses and the full weights after training (float32 tolerance; bit-identical at world size 1).
    LM: the implementation's own TransformerLM and AdamW; toy: torch.nn layers and torch.optim.SGD."""
    for kind in kinds(impl):
        assert_trains_like_one_process(runs(world), oracle(kind), kind, world)


def assert_trains_like_one_process(records: list[dict], expected: dict, kind: str, world: tuple[str, int]) -> None:
    losses = torch.tensor([r[kind]["losses"] for r in records]).mean(0)
    final = rebuilt([r[kind] for r in records], "final", expected["sharded"])
    if world == ("gloo", 1):  # one CPU process, like the oracle: the same operations on the same values
        assert losses.tolist() == expected["losses"], f"{kind}: losses {losses.tolist()} != {expected['losses']}"
        for i, (g, e) in enumerate(zip(final, expected["final"])):
            assert torch.equal(g, e), f"{kind}: parameter {i} after training not bit-identical at world size 1"
        return
    assert_close(losses, torch.tensor(expected["losses"]), what=f"{kind}: mean over ranks of the losses")
    for i, (g, e) in enumerate(zip(final, expected["final"])):
        assert_close(g, e, what=f"{kind}: parameter {i} after {STEPS} steps")


@pytest.mark.strict  # the course checks the trained result, not the shards' .grad
@by_world
def test_gradients_are_averaged_into_the_right_rows(impl, runs, oracle, world):
    """After ``finish_gradient_synchronization`` each shard's ``.grad`` holds its rows of the gradient of the
    global batch (the mean of the ranks' gradients, float32), replicated parameters' gradients are that mean too,
    bit-identical on every rank; a frozen weight's ``.grad`` stays None."""
    records, world_size = runs(world), world[1]
    for kind in kinds(impl):
        expected = oracle(kind)
        for rank, record in enumerate(records):
            for i, (g, full, flag) in enumerate(zip(record[kind]["grads"], expected["grads"], expected["sharded"])):
                what = f"{kind}, rank {rank}, gradient of parameter {i} ({'shard' if flag else 'replicated'})"
                want = rows(full, rank, world_size, flag)
                if want is None:
                    assert g is None, f"{what}: the parameter is frozen, yet its .grad was set"
                    continue
                assert g is not None, f"{what}: .grad is None"
                assert g.dtype == torch.float32, f"{what}: {g.dtype}, expected float32"
                assert_close(g, want, what=what)
                if not flag:
                    assert torch.equal(g, records[0][kind]["grads"][i]), f"{what}: differs from rank 0's"


@by_world
def test_full_state_dict_is_whole_float32_on_every_rank(impl, runs, world):
    """``full_state_dict()`` on every rank: the module's keys in its order (both keys of a tied weight), every
    tensor float32 and equal to the gathered shards; it loads into the unwrapped module."""
    for rank, record in enumerate(runs(world)):
        for kind in kinds(impl):
            result = record[kind]["full_state"]
            if "missing" in result:
                raise ComponentMissing("FSDP", result["missing"])
            assert not result["problems"], f"{kind}, rank {rank}: " + "; ".join(result["problems"])


# ---------------------------------------------------------------------------------------------
# Memory and communication


@by_world
def test_gathered_weights_are_freed_and_prefetch_is_limited(runs, world):
    """Between layers at most two layers' full weights exist (the prefetch limit), and none is kept after the
    forward: backward gathers again instead of autograd saving them. Counted, not timed: weak references to
    every weight-sized storage created during the forward of a chain of six Linear layers (a count over the limit
    is read again until the backend's threads let go of finished collectives, SETTLE_S at most)."""
    for rank, record in enumerate(runs(world)):
        memory = record["memory"]
        assert len(memory["between_layers"]) == CHAIN_LAYERS
        assert max(memory["between_layers"]) <= PREFETCH, \
            f"rank {rank}: full weights alive after each layer {memory['between_layers']}, at most {PREFETCH} allowed"
        assert memory["after_forward"] == 0, \
            f"rank {rank}: {memory['after_forward']} full weights still alive after the forward (kept for backward?)"


@by_world
def test_compute_dtype_casts_before_communicating(impl, runs, oracle, world):
    """compute_dtype=bfloat16: every collective of the forward carrying at least a shard's worth of elements
    moves bfloat16; master weights, their gradients and the optimizer's state stay float32; the mean of the ranks'
    losses stays close to one float32 process's. Toy (without its bias: a float32 bias cannot meet bf16 inputs)
    and LM."""
    records = runs(world)
    for kind in records[0]["bf16"]:
        assert_bfloat16_on_the_wire([r["bf16"][kind] for r in records], oracle(kind), kind, world[1])


def assert_bfloat16_on_the_wire(runs_: list[dict], expected: dict, kind: str, world_size: int) -> None:
    """``runs_``: every rank's record of a compute_dtype=bfloat16 run; ``expected``: one float32 process's."""
    smallest_shard = min(piece.numel() for full, flag in zip(expected["initial"], expected["sharded"]) if flag
                         for piece in full.tensor_split(world_size) if piece.numel())
    for rank, run in enumerate(runs_):
        for what, dtypes in run["dtypes"].items():
            assert dtypes == {torch.float32}, f"{kind}, rank {rank}: {what} in {dtypes}, expected float32"
        big = [(op, dtype, n) for op, dtype, n in run["collectives"] if n >= smallest_shard]
        assert big, f"{kind}, rank {rank}: no collective of at least {smallest_shard} elements in the forward"
        wrong = [c for c in big if c[1] != torch.bfloat16]
        assert not wrong, f"{kind}, rank {rank}: forward collectives not in bfloat16 (op, dtype, elements): {wrong[:4]}"
    losses = torch.tensor([run["losses"] for run in runs_]).mean(0)
    for step, (low, high) in enumerate(zip(losses.tolist(), expected["losses"])):
        assert abs(low - high) < 0.03, f"{kind}, step {step}: bf16 loss {low:.4f}, float32 one process {high:.4f}"


@pytest.mark.strict  # the course wraps its own model, whose layer classes its FSDP knows
@by_world
def test_layers_of_any_class_are_sharded(impl, runs, oracle, world):
    """A model of layer classes of its own (Linear, Embedding and RMSNorm as a course participant writes them,
    subclasses of nn.Module alone): each matrix is sharded as rank 0's rows and the norm's gain replicated,
    training equals one process on the global batch, and compute_dtype=bfloat16 moves bfloat16."""
    records, world_size = runs(world), world[1]
    for rank, record in enumerate(records):
        assert "own_error" not in record, f"rank {rank}: {record.get('own_error')}"
    assert_rank_0s_rows(records, oracle("own"), "own", world_size)
    assert_trains_like_one_process(records, oracle("own"), "own", world)
    assert_bfloat16_on_the_wire([r["own_bf16"] for r in records], oracle("own_bf16"), "own_bf16", world_size)


@pytest.mark.strict
@by_world
def test_no_warnings(runs, world):
    """No warnings are raised in construction, forward, backward, gradient synchronization, step or
    full_state_dict."""
    for rank, record in enumerate(runs(world)):
        assert not record["warnings"], f"rank {rank}: " + "\n".join(record["warnings"])


@pytest.mark.strict
@pytest.mark.parametrize("world", [w for w in WORLDS if w.values[0][1] == 2])
def test_ranks_with_different_modules_raise_value_error(impl, world):
    """Construction is a collective that checks every rank's module: a parameter whose shape differs between
    ranks raises ValueError naming it on every rank, instead of hanging or sharding mismatched weights."""
    impl.FSDP  # noqa: B018
    for rank, result in enumerate(launch(mismatched_run, world, impl.label, timeout_s=60)):
        assert result.startswith("ValueError") and "1.weight" in result, \
            f"rank {rank}: {result!r}, expected a ValueError naming 1.weight"
