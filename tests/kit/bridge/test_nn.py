"""The course-adapter bridge (spec/adapters/): a course-style adapters.py checked unchanged.

adapters_reference.py routes every course adapter to the reference, so through the bridge it
must behave exactly like the reference; adapters_partial.py lacks one function and stubs
another, which must come out *missing*, never failed.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import impl
import spec.distributed
import spec.kernels
import spec.nn
import spec.train
from spec import COMPONENTS
from spec.adapters import NO_COURSE_ADAPTER, load_adapters
from spec.loading import ComponentMissing, load_implementation, needs
from tests.harness.multiprocess import implementation, run_ranks
from tests.kit.run_suite import run_suite

KIT = Path(__file__).parent
REPO = KIT.parent.parent
REFERENCE_ADAPTERS = KIT / "adapters_reference.py"
PARTIAL_ADAPTERS = KIT / "adapters_partial.py"


@pytest.fixture(scope="module")
def bridged():
    return load_adapters(REFERENCE_ADAPTERS)


@pytest.fixture(scope="module")
def partial():
    return load_adapters(PARTIAL_ADAPTERS)


def reference_weights(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random values for every parameter (norm gains away from one, so that they matter)."""
    generator = torch.Generator().manual_seed(seed)
    return {name: (1 + 0.2 * torch.randn(v.shape, generator=generator)) if v.dim() == 1
            else torch.randn(v.shape, generator=generator) / v.shape[-1] ** 0.5
            for name, v in module.state_dict().items()}


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
    with pytest.raises(ValueError, match="cannot import adapters file .*SyntaxError"):
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


BYTES_VOCAB = {i: bytes([i]) for i in range(256)}

STUB_CALLS = {  # component -> a call through the bridged bundle
    "train_bpe": lambda b: b.train_bpe("unused.txt", 300, ["<|endoftext|>"]),
    "Tokenizer": lambda b: b.Tokenizer(BYTES_VOCAB, []).encode("unused"),
    "Linear": lambda b: b.Linear(4, 3)(torch.randn(2, 4)),
    "Embedding": lambda b: b.Embedding(10, 4)(torch.tensor([1, 2])),
    "RMSNorm": lambda b: b.RMSNorm(4)(torch.randn(2, 4)),
    "silu": lambda b: b.silu(torch.randn(3)),
    "SwiGLU": lambda b: b.SwiGLU(4, 8)(torch.randn(2, 4)),
    "RotaryEmbedding": lambda b: b.RotaryEmbedding(1e4, 4, 8)(torch.randn(3, 4), torch.arange(3)),
    "softmax": lambda b: b.softmax(torch.randn(3), 0),
    "scaled_dot_product_attention": lambda b: b.scaled_dot_product_attention(*torch.randn(3, 2, 5, 4)),
    "MultiHeadSelfAttention": lambda b: b.MultiHeadSelfAttention(8, 2)(torch.randn(1, 3, 8)),
    "TransformerBlock": lambda b: b.TransformerBlock(8, 2, 16, b.RotaryEmbedding(1e4, 4, 8))(torch.randn(1, 3, 8)),
    "TransformerLM": lambda b: b.TransformerLM(10, 8, 8, 1, 2, 16)(torch.tensor([[1, 2, 3]])),
    "cross_entropy": lambda b: b.cross_entropy(torch.randn(2, 5), torch.tensor([0, 4])),
    "AdamW": lambda b: b.AdamW([torch.nn.Parameter(torch.zeros(2))]),
    "lr_cosine_schedule": lambda b: b.lr_cosine_schedule(3, 1.0, 0.1, 2, 10),
    "clip_gradients": lambda b: b.clip_gradients([], 1.0),
    "get_batch": lambda b: b.get_batch(np.arange(20), 2, 4, "cpu"),
    "save_checkpoint": lambda b: b.save_checkpoint(torch.nn.Linear(2, 2), None, 0, "unused.pt"),
    "load_checkpoint": lambda b: b.load_checkpoint("unused.pt", torch.nn.Linear(2, 2), None),
    "FlashAttentionPyTorch": lambda b: b.FlashAttentionPyTorch.apply(*torch.randn(3, 1, 16, 16)),
    "FlashAttentionTriton": lambda b: b.FlashAttentionTriton.apply(*torch.randn(3, 1, 16, 16)),
    "FSDP": lambda b: b.FSDP(torch.nn.Linear(2, 2)),
    "DDPIndividualParameters": lambda b: b.DDPIndividualParameters(torch.nn.Linear(2, 2)),
    "DDPBucketed": lambda b: b.DDPBucketed(torch.nn.Linear(2, 2), 1.0),
    "ShardedOptimizer": lambda b: b.ShardedOptimizer([torch.nn.Parameter(torch.zeros(2))], torch.optim.SGD, lr=0.1),
}


def test_course_stub_file_reports_every_component_missing(tmp_path):
    """The course's untouched stub file: every component is there, and every one is missing when used."""
    stub = load_adapters(course_stub_file(tmp_path / "adapters.py"))
    assert set(stub.members) == set(COMPONENTS) - NO_COURSE_ADAPTER == set(STUB_CALLS)
    for component, call in STUB_CALLS.items():
        with pytest.raises(ComponentMissing) as error:
            call(stub)
        assert error.value.component == component
        assert "NotImplementedError" in str(error.value), str(error.value)


def test_adamw_is_the_class_get_adamw_cls_returns(bridged):
    assert bridged.AdamW is impl.AdamW


def test_flash_attention_functions_are_the_classes_the_getters_return(bridged, tmp_path):
    assert bridged.FlashAttentionPyTorch is impl.FlashAttentionPyTorch
    assert bridged.FlashAttentionTriton is impl.FlashAttentionTriton
    path = tmp_path / "adapters.py"  # the handout's other spelling of the Triton getter
    path.write_text("import impl\n\ndef get_flash_autograd_function_triton():\n    return impl.FlashAttentionTriton\n")
    assert load_adapters(path).members == {"FlashAttentionTriton": impl.FlashAttentionTriton}


# ---------------------------------------------------------------------------------------------
# Functions


def test_functions_have_the_spec_signatures(bridged):
    for component, area in COMPONENTS.items():
        if component in NO_COURSE_ADAPTER:
            continue
        member, spec_member = getattr(bridged, component), getattr(getattr(spec, area), component)
        if inspect.isfunction(spec_member):
            assert inspect.signature(member) == inspect.signature(spec_member), component


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


def test_get_batch_has_no_seeded_sampling(bridged):
    x, y = bridged.get_batch(np.arange(100, 130), 4, 8, "cpu")
    assert x.shape == y.shape == (4, 8) and torch.equal(x[:, 1:], y[:, :-1])
    assert "rng" in bridged.get_batch.kit_unsupported
    with pytest.raises(ComponentMissing, match="seeded sampling"):
        bridged.get_batch(np.arange(100, 130), 4, 8, "cpu", rng=np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------
# Tokenizer

GPT2 = REPO / "fixtures" / "data" / "gpt2"
TEXTS = ["Hello, world! It's 2024 — don't   panic.\n\n\tTabs and  spaces  ",
         "héllo wörld 🙂 日本語<|endoftext|>next document<|endoftext|><|endoftext|>",
         "def f(x):\n    return x ** 2  # comment\n"]


@pytest.fixture(scope="module")
def gpt2_pair(bridged):
    """(bridged tokenizer, reference tokenizer) on GPT-2's files, with overlapping special tokens."""
    specials = ["<|endoftext|>", "<|endoftext|><|endoftext|>"]
    return (bridged.Tokenizer.from_files(GPT2 / "vocab.json", GPT2 / "merges.txt", specials),
            impl.Tokenizer.from_files(GPT2 / "vocab.json", GPT2 / "merges.txt", specials))


def test_gpt2_reader_matches_the_files():
    from impl.tokenizer import read_gpt2_files as reference_reader
    from spec.gpt2_format import bytes_to_unicode, read_gpt2_files

    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert (table[ord(" ")], table[ord("\n")], table[ord("A")], table[0], table[255]) == ("Ġ", "Ċ", "A", "Ā", "ÿ")
    vocab, merges = read_gpt2_files(GPT2 / "vocab.json", GPT2 / "merges.txt")
    assert len(vocab) == 50257 and vocab[50256] == b"<|endoftext|>" and vocab[220] == b" "
    assert len(merges) == 50000 and merges[0] == (b" ", b"t")
    assert (vocab, merges) == reference_reader(GPT2 / "vocab.json", GPT2 / "merges.txt")


def test_gpt2_reader_rejects_malformed_files(tmp_path):
    from spec.gpt2_format import read_merges, read_vocab

    (tmp_path / "merges.txt").write_text("#version: 0.2\nĠ t\n\nĠt he extra\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"merges.txt:4: expected two tokens"):
        read_merges(tmp_path / "merges.txt")
    (tmp_path / "vocab.json").write_text(json.dumps({"a b": 0}), encoding="utf-8")  # a raw space is not in the alphabet
    with pytest.raises(ValueError, match="byte-to-unicode alphabet"):
        read_vocab(tmp_path / "vocab.json")


def test_train_bpe_goes_through_run_train_bpe(bridged, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("low low low low low lower lower widest widest widest newest newest newest newest newest newest"
                      "<|endoftext|>the cat sat on the mat<|endoftext|>", encoding="utf-8")
    assert bridged.train_bpe(corpus, 290, ["<|endoftext|>"]) == impl.train_bpe(corpus, 290, ["<|endoftext|>"])
    assert bridged.train_bpe(input_path=corpus, vocab_size=270, special_tokens=[]) == impl.train_bpe(corpus, 270, [])


def test_tokenizer_matches_the_reference(gpt2_pair):
    ours, reference = gpt2_pair
    for text in TEXTS:
        ids = reference.encode(text)
        assert ours.encode(text) == ids
        assert list(ours.encode_iterable(text.splitlines(keepends=True))) == ids
        assert ours.decode(ids) == reference.decode(ids) == text
    assert ours.decode([188, 220]) == reference.decode([188, 220])  # a lone continuation byte: U+FFFD


def test_tokenizer_is_built_by_get_tokenizer(bridged):
    merges = [(b"a", b"b"), (b"ab", b"c")]
    vocab = BYTES_VOCAB | {256: b"ab", 257: b"abc"}
    tokenizer = bridged.Tokenizer(vocab, merges, special_tokens=["<s>"])
    assert isinstance(tokenizer.tokenizer, impl.Tokenizer)
    assert tokenizer.encode("abcab<s>") == impl.Tokenizer(vocab, merges, ["<s>"]).encode("abcab<s>")


def test_encode_iterable_stays_lazy(gpt2_pair):
    ours, _ = gpt2_pair
    consumed = []

    def lines():
        for i in range(1000):
            consumed.append(i)
            yield f"line {i} of a long stream\n"

    stream = ours.encode_iterable(lines())
    next(stream)
    assert len(consumed) < 10  # the first id came before the input was read to its end


def tokenizer_adapters(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "adapters.py"
    path.write_text("class Stub:\n" + body + "\n\ndef get_tokenizer(vocab, merges, special_tokens=None):\n"
                    "    return Stub()\n")
    return path


@pytest.mark.parametrize("body, call", [
    ("    def encode(self, text):\n        raise NotImplementedError", lambda t: t.encode("x")),
    ("    def decode(self, ids):\n        raise NotImplementedError", lambda t: t.decode([1])),
    ("    def encode_iterable(self, it):\n        raise NotImplementedError", lambda t: t.encode_iterable(["x"])),
    ("    def encode_iterable(self, it):\n        yield from ()\n        raise NotImplementedError",
     lambda t: list(t.encode_iterable(["x"]))),
    ("    pass", lambda t: t.encode("x")),
], ids=["encode", "decode", "encode_iterable", "encode_iterable-generator", "no-method"])
def test_unimplemented_tokenizer_methods_are_missing(tmp_path, body, call):
    bundle = load_adapters(tokenizer_adapters(tmp_path, body))
    assert set(bundle.members) == {"Tokenizer"}
    with pytest.raises(ComponentMissing) as error:
        call(bundle.Tokenizer(BYTES_VOCAB, []))
    assert error.value.component == "Tokenizer"


def test_tokenizer_classes_are_bound_to_their_file(bridged, tmp_path):
    other = load_adapters(tokenizer_adapters(tmp_path, "    pass"))
    assert other.Tokenizer is not bridged.Tokenizer
    assert isinstance(bridged.Tokenizer(BYTES_VOCAB, []).tokenizer, impl.Tokenizer)


# ---------------------------------------------------------------------------------------------
# Modules

LM_CONFIG = (50, 16, 32, 2, 4, 64, 1000.0)  # vocab, context, d_model, layers, heads, d_ff, theta


def build_pair(bundle, component):
    """(bridged module, reference module, input) of one module component, same configuration."""
    def rope(b):
        return b.RotaryEmbedding(1000.0, 8, 16)

    builders = {
        "Linear": (lambda b: b.Linear(12, 5), torch.randn(2, 3, 12)),
        "Embedding": (lambda b: b.Embedding(20, 6), torch.randint(0, 20, (2, 7))),
        "RMSNorm": (lambda b: b.RMSNorm(16, eps=1e-3), torch.randn(2, 3, 16)),
        "SwiGLU": (lambda b: b.SwiGLU(16, 40), torch.randn(2, 3, 16)),
        "MultiHeadSelfAttention": (lambda b: b.MultiHeadSelfAttention(32, 4), torch.randn(2, 7, 32)),
        "MultiHeadSelfAttention+rope": (lambda b: b.MultiHeadSelfAttention(32, 4, rope(b)), torch.randn(2, 7, 32)),
        "TransformerBlock": (lambda b: b.TransformerBlock(32, 4, 64, rope(b)), torch.randn(2, 7, 32)),
        "TransformerLM": (lambda b: b.TransformerLM(*LM_CONFIG), torch.randint(0, 50, (2, 9))),
    }
    build, x = builders[component]
    return build(bundle), build(impl), x


MODULES = ["Linear", "Embedding", "RMSNorm", "SwiGLU", "MultiHeadSelfAttention", "MultiHeadSelfAttention+rope",
           "TransformerBlock", "TransformerLM"]


@pytest.mark.parametrize("component", MODULES)
def test_state_dict_keys_and_shapes_match_the_reference(bridged, component):
    ours, reference, _ = build_pair(bridged, component)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
           [(k, v.shape) for k, v in reference.state_dict().items()]


@pytest.mark.parametrize("component", MODULES)
def test_bridged_modules_match_the_reference_on_the_same_weights(bridged, component):
    ours, reference, x = build_pair(bridged, component)
    weights = reference_weights(reference, seed=len(component))
    reference.load_state_dict(weights)
    ours.load_state_dict(weights)
    assert torch.equal(ours(x), reference(x))


def test_mhsa_with_rope_takes_token_positions(bridged):
    ours, reference, x = build_pair(bridged, "MultiHeadSelfAttention+rope")
    weights = reference_weights(reference, seed=1)
    reference.load_state_dict(weights)
    ours.load_state_dict(weights)
    positions = torch.randint(0, 16, (2, 7))
    assert torch.equal(ours(x, positions), reference(x, positions))
    assert not torch.equal(ours(x, positions), ours(x))


def test_rope_exposes_its_configuration_and_has_no_parameters(bridged):
    rope = bridged.RotaryEmbedding(500.0, 8, 16)
    assert (rope.theta, rope.d_k, rope.max_seq_len) == (500.0, 8, 16)
    assert not list(rope.parameters())
    x, positions = torch.randn(2, 5, 8), torch.randint(0, 16, (2, 5))
    assert torch.equal(rope(x, positions), impl.RotaryEmbedding(500.0, 8, 16)(x, positions))


def test_parameters_follow_device_and_dtype(bridged):
    model = bridged.TransformerLM(*LM_CONFIG, device="cpu", dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model(torch.randint(0, 50, (1, 4))).dtype == torch.float64


@pytest.mark.parametrize("component", [c for c, area in COMPONENTS.items() if area == "nn" and c[0].isupper()])
def test_modules_declare_what_adapters_cannot_show(bridged, component):
    module = getattr(bridged, component)
    assert issubclass(module, torch.nn.Module)
    for feature in ("initialization", "autograd", "ablations"):
        with pytest.raises(ComponentMissing, match=f"{component} is missing: {feature}"):
            needs(module, feature, component)


@pytest.mark.parametrize("component, build", [
    ("TransformerBlock", lambda b: b.TransformerBlock(32, 4, 64, b.RotaryEmbedding(1e4, 8, 16), norm="post")),
    ("TransformerBlock", lambda b: b.TransformerBlock(32, 4, 64, b.RotaryEmbedding(1e4, 8, 16), ffn="silu")),
    ("TransformerBlock", lambda b: b.TransformerBlock(32, 4, 64)),  # the course's block always applies RoPE
    ("TransformerLM", lambda b: b.TransformerLM(*LM_CONFIG, norm="none")),
    ("TransformerLM", lambda b: b.TransformerLM(*LM_CONFIG, use_rope=False)),
    ("MultiHeadSelfAttention", lambda b: b.MultiHeadSelfAttention(10, 3)),  # no constructor to reject it
], ids=["block-post-norm", "block-silu", "block-no-rope", "lm-no-norm", "lm-nope", "mhsa-indivisible"])
def test_what_adapters_cannot_build_is_missing(bridged, component, build):
    with pytest.raises(ComponentMissing) as error:
        build(bridged)
    assert error.value.component == component


def test_block_runs_only_at_positions_from_zero(bridged):
    ours, reference, x = build_pair(bridged, "TransformerBlock")
    weights = reference_weights(reference, seed=2)
    reference.load_state_dict(weights)
    ours.load_state_dict(weights)
    assert torch.equal(ours(x, torch.arange(7)), reference(x))
    with pytest.raises(ComponentMissing, match="token_positions"):
        ours(x, torch.arange(7) + 3)


def test_bridged_modules_pass_no_gradients_to_their_parameters(bridged):
    """Adapters take weights by value: declared as unsupported autograd, and indeed no gradient arrives."""
    linear = bridged.Linear(4, 3)
    linear(torch.randn(2, 4, requires_grad=True)).sum().backward()
    assert linear.weight.grad is None


# ---------------------------------------------------------------------------------------------
# Distributed: the wrappers the getters build, in real ranks


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


# ---------------------------------------------------------------------------------------------
# End to end: the conformance suite through the bridge.


@pytest.mark.slow
def test_conformance_suite_through_partial_adapters(tmp_path):
    """The absent and the stubbed function are missing; nothing fails; the header names the adapters."""
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
    for component in ("train_bpe", "Tokenizer", "Linear", "MultiHeadSelfAttention", "TransformerLM", "cross_entropy",
                      "AdamW", "load_checkpoint"):
        assert rows[component]["pass"] > 0, (component, rows[component])
