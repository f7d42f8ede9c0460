"""The kernels through the bridge (spec/adapters/kernels.py)."""

from __future__ import annotations

import impl
from spec.adapters import load_adapters


def test_flash_attention_functions_are_the_classes_the_getters_return(bridged, tmp_path):
    assert bridged.FlashAttentionPyTorch is impl.FlashAttentionPyTorch
    assert bridged.FlashAttentionTriton is impl.FlashAttentionTriton
    path = tmp_path / "adapters.py"  # the handout's other spelling of the Triton getter
    path.write_text("import impl\n\ndef get_flash_autograd_function_triton():\n    return impl.FlashAttentionTriton\n")
    assert load_adapters(path).members == {"FlashAttentionTriton": impl.FlashAttentionTriton}
