"""Correct variants: the reference with one component written another way that the course accepts.

The mirror image of the mutants (tests/kit/mutants/): each is code a student may rightly write, and which the
suite once failed. tests/kit/test_false_alarms.py runs the suite on each and requires no FAIL of it::

    python -m pytest tests/conformance --impl tests.kit.correct_variants:get_batch_to_device --component get_batch
"""

from __future__ import annotations

import torch

import impl as reference
from spec import Implementation
from tests.kit.mutants.common import reference_with


def _get_batch_to_device(dataset, batch_size: int, context_length: int, device: str, rng=None):
    """No device check of its own: ``.to("cuda:99")`` raises AssertionError on a torch built without CUDA."""
    inputs, targets = reference.get_batch(dataset, batch_size, context_length, "cpu", rng)
    return inputs.to(device), targets.to(device)


def _get_batch_string_device(dataset, batch_size: int, context_length: int, device: str, rng=None):
    """nanoGPT's way: the device is the course's ``device: str`` and is read as one."""
    pinned = device.startswith("cuda")
    inputs, targets = reference.get_batch(dataset, batch_size, context_length, "cpu", rng)
    if pinned:
        inputs, targets = inputs.pin_memory(), targets.pin_memory()
    return inputs.to(device, non_blocking=pinned), targets.to(device, non_blocking=pinned)


class _DDPBucketedFloatLimit(reference.DDPBucketed):
    """The course's signature, ``bucket_size_mb: float``: None (the spec's "one bucket") is a TypeError."""

    def __init__(self, module: torch.nn.Module, bucket_size_mb: float):
        super().__init__(module, float(bucket_size_mb))


get_batch_to_device: Implementation = reference_with("get_batch", _get_batch_to_device, "variant get_batch_to_device")
get_batch_string_device: Implementation = reference_with("get_batch", _get_batch_string_device,
                                                         "variant get_batch_string_device")
ddp_bucketed_float_limit: Implementation = reference_with("DDPBucketed", _DDPBucketedFloatLimit,
                                                          "variant ddp_bucketed_float_limit")
