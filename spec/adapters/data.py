"""The web-data filtering bridge (spec/data.py): each function calls its ``run_*`` adapter (assignment4-data's
``tests/adapters.py``) with the same arguments in the same order; ``minhash_deduplication``'s ``seed`` has no
adapter argument, so a seeded call reports that feature missing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import spec.data
from spec import ComponentMissing
from spec.adapters.common import Adapters, bridge_functions

# Spec function -> the adapter taking the same arguments in the same order.
FUNCTIONS: dict[str, tuple[Callable, str]] = {
    "extract_text_from_html_bytes": (spec.data.extract_text_from_html_bytes, "run_extract_text_from_html_bytes"),
    "identify_language": (spec.data.identify_language, "run_identify_language"),
    "mask_emails": (spec.data.mask_emails, "run_mask_emails"),
    "mask_phone_numbers": (spec.data.mask_phone_numbers, "run_mask_phone_numbers"),
    "mask_ips": (spec.data.mask_ips, "run_mask_ips"),
    "classify_nsfw": (spec.data.classify_nsfw, "run_classify_nsfw"),
    "classify_toxic_speech": (spec.data.classify_toxic_speech, "run_classify_toxic_speech"),
    "classify_quality": (spec.data.classify_quality, "run_classify_quality"),
    "gopher_quality_filter": (spec.data.gopher_quality_filter, "run_gopher_quality_filter"),
    "exact_line_deduplication": (spec.data.exact_line_deduplication, "run_exact_line_deduplication"),
}
BRIDGED = (*FUNCTIONS, "minhash_deduplication")  # what this bridge can provide


def members(adapters: Adapters) -> dict[str, Any]:
    """The data components that the adapters file provides, bridged."""
    found: dict[str, Any] = bridge_functions(adapters, FUNCTIONS)
    if adapters.has("run_minhash_deduplication"):
        found["minhash_deduplication"] = bridge_minhash(adapters)
    return found


def bridge_minhash(adapters: Adapters) -> Callable:
    def minhash_deduplication(input_files, num_hashes, num_bands, ngrams, jaccard_threshold, output_directory, *,
                              seed=None):
        """``minhash_deduplication`` through adapters.run_minhash_deduplication, which takes no seed."""
        if seed is not None:
            raise ComponentMissing("minhash_deduplication",
                                   "a seed is not available through adapters.run_minhash_deduplication")
        return adapters.call("minhash_deduplication", "run_minhash_deduplication", input_files, num_hashes,
                             num_bands, ngrams, jaccard_threshold, output_directory)

    minhash_deduplication.__signature__ = inspect.signature(spec.data.minhash_deduplication)
    minhash_deduplication.kit_unsupported = frozenset({"seed"})
    return minhash_deduplication
