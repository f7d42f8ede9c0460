"""Sessions of the CS336 spec kit: `nox -l` lists them, `nox -s NAME -- ARGS` passes ARGS on.

On CPU machines each session installs the pinned CPU build of torch (torch==2.13.0, which
pip takes from the machine's local wheel store); on GPU machines (nvidia-smi present) the
session venv sees the system's own CUDA build of torch instead.
"""

import shutil

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
GPU_MACHINE = shutil.which("nvidia-smi") is not None
VENV = {"venv_params": ["--system-site-packages"] if GPU_MACHINE else []}


def install(session: nox.Session, *extras: str) -> None:
    if not GPU_MACHINE:
        session.install("torch==2.13.0", "triton==3.6.0")  # the GPU machines' Triton; kernels run interpreted here
    session.install("-e", f".[{','.join(extras)}]" if extras else ".")


@nox.session(**VENV)
def tests(session: nox.Session) -> None:
    """The whole suite on the reference: conformance, oracles, goldens, the kit's own tests (mutants)."""
    install(session, "test", "oracles")
    session.run("lint-imports")  # the layering contract in pyproject.toml: a violation fails the session
    session.run("pytest", "tests", *session.posargs)


@nox.session(**VENV)
def conformance(session: nox.Session) -> None:
    """The main job: the compliance report of an implementation (default: the reference).

    nox -s conformance -- --impl mypkg            # or --impl adapters:path/to/adapters.py
    Writes reports/compliance.json beside the printed matrix.
    """
    install(session, "test", "oracles")
    session.run("pytest", "tests/conformance", "--report-json", "reports/compliance.json", *session.posargs)


@nox.session(**VENV)
def e2e(session: nox.Session) -> None:
    """The embedded end-to-end run: 10K tokenizer, token arrays, an LM trained on the CPU (~10 min), a sample.

    nox -s e2e -- --out-dir runs/mine --max-steps 100
    """
    install(session)
    session.run("embedded-run", *session.posargs)


@nox.session(**VENV)
def fixtures(session: nox.Session) -> None:
    """Regenerate the goldens from the reference; `-- --check` compares instead (CI)."""
    install(session, "test")
    session.run("python", "-m", "fixtures.generate", *session.posargs)


@nox.session(**VENV)
def gpu(session: nox.Session) -> None:
    """The conformance suite on a CUDA device (GPU runners)."""
    install(session, "test", "oracles")
    session.run("pytest", "tests/conformance", "--device", "cuda", "--report-json", "reports/compliance-gpu.json",
                *session.posargs)


@nox.session(**VENV)
def bench(session: nox.Session) -> None:
    """Benchmarks: ours vs the strongest peer, same input, same run; tables printed, reports/bench.json."""
    install(session, "test", "oracles")
    session.run("pytest", "bench", "-p", "no:cacheprovider", "--benchmark-only", "--benchmark-disable-gc",
                "--benchmark-columns=mean,stddev,rounds", *session.posargs)


@nox.session(**VENV)
def lm_bench(session: nox.Session) -> None:
    """Training tokens/s and MFU, ours vs a nanoGPT-style peer, same run; reports/lm_throughput.md.

    nox -s lm_bench -- --config tinystories --steps 100      # on a GPU; `-- --tiny` on a CPU
    """
    install(session)
    session.run("python", "-m", "bench.lm_throughput", *session.posargs)


@nox.session(**VENV)
def a2_benchmark(session: nox.Session) -> None:
    """A2 §2.1.3: forward, forward+backward, full step per model size, fp32/bf16; reports/a2_benchmark.md.

    nox -s a2_benchmark -- --sizes xl --precision bf16 --compile off,on --memory-snapshot reports/snapshots
    """
    install(session)
    session.run("python", "-m", "bench.a2_benchmark", *session.posargs)


@nox.session(**VENV)
def kernels(session: nox.Session) -> None:
    """Triton kernels vs peers (do_bench): FA2 leaderboard, A2 flash sweep, fused RMSNorm GB/s; reports/kernels.md.

    nox -s kernels -- --leaderboard              # or --sweep [--seqs 1024,16384 --dims 64 --dtypes bf16], --rmsnorm
    nox -s kernels -- --tiny                     # on a CPU: a smoke run through Triton's interpreter
    """
    install(session)
    session.run("python", "-m", "bench.kernels", *session.posargs)


@nox.session(**VENV)
def distributed(session: nox.Session) -> None:
    """DDP, ZeRO and FSDP vs torch's (torchrun, NCCL/gloo): all-reduce GB/s, step times, memory; reports/distributed.md.

    nox -s distributed -- --nproc 2 --model xl       # two GPUs (+ a world-size-1 launch for the scaling baseline)
    nox -s distributed -- --nproc 2 --model tiny     # on a CPU: gloo, a smoke run in about a minute
    """
    install(session)
    session.run("python", "-m", "bench.distributed", *session.posargs)
