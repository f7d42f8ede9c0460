"""What the bridge's tests share (tests/kit/bridge/): the course-style adapters files they load."""

from pathlib import Path

KIT = Path(__file__).resolve().parents[1]
# Routes every course adapter to the reference: through the bridge it must behave exactly like the reference.
REFERENCE_ADAPTERS = KIT / "adapters_reference.py"
# Lacks one function and stubs another, which must come out *missing*, never failed.
PARTIAL_ADAPTERS = KIT / "adapters_partial.py"
BYTES_VOCAB = {i: bytes([i]) for i in range(256)}
