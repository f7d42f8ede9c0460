"""The training pieces through the bridge (spec/adapters/train.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import impl
from spec import ComponentMissing


def test_adamw_is_the_class_get_adamw_cls_returns(bridged):
    assert bridged.AdamW is impl.AdamW


def test_get_batch_has_no_seeded_sampling(bridged):
    x, y = bridged.get_batch(np.arange(100, 130), 4, 8, "cpu")
    assert x.shape == y.shape == (4, 8) and torch.equal(x[:, 1:], y[:, :-1])
    assert "rng" in bridged.get_batch.kit_unsupported
    with pytest.raises(ComponentMissing, match="seeded sampling"):
        bridged.get_batch(np.arange(100, 130), 4, 8, "cpu", rng=np.random.default_rng(0))
