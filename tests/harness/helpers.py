"""Helpers shared by the kit's tests: the repository root, seeded random tensors.

Test modules never import each other: what two of them share lives here (or, for one folder's
tests only, in a helper module of that folder).
"""

from __future__ import annotations

import inspect
import linecache
import os
import subprocess
import sys
import types
from pathlib import Path

import torch

from spec import ComponentMissing

# The repository root: the working directory of the subprocesses the tests start (``python -m pytest ...``).
REPO = Path(__file__).resolve().parents[2]


# The exit code of a script that ended in ComponentMissing: the parent reports the component missing, not failed.
MISSING_EXIT = 86


def run_without_triton_interpreter(script: str, timeout: float) -> subprocess.CompletedProcess:
    """Run the Python source ``script`` in a fresh interpreter, from the repository root, with TRITON_INTERPRET=0:
    Triton fixes a kernel's mode when the kernel is defined, so only a new process can turn the interpreter off.
    A ComponentMissing in the script (a course adapter that raises NotImplementedError, say) is raised again here."""
    wrapped = (f"import sys\nfrom spec import ComponentMissing\ntry:\n"
               f"    exec(compile({script!r}, '<script>', 'exec'), {{'__name__': '__main__'}})\n"
               f"except ComponentMissing as error:\n"
               f"    print(error.component, error, sep='\\n', file=sys.stderr)\n    sys.exit({MISSING_EXIT})\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | {"TRITON_INTERPRET": "0"}
    done = subprocess.run([sys.executable, "-c", wrapped], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)
    if done.returncode == MISSING_EXIT:
        component, message = done.stderr.strip().splitlines()[-2:]
        raise ComponentMissing(component, message.removeprefix(f"{component} is missing: "))
    return done


def source_mutant(module: types.ModuleType, original: str, replacement: str) -> types.ModuleType:
    """A copy of ``module`` run from its source with ``original`` replaced: a mutant of code that is not a spec
    component (a private kernel of the reference, say), for the tests that must reject it. ``original`` must occur
    exactly once, so that a mutant does not go stale unnoticed when the source changes. The copy is registered in
    sys.modules under its own name, since torch.compile looks a traced function's module up there."""
    source = inspect.getsource(module)
    if source.count(original) != 1:
        raise AssertionError(f"{module.__name__}: {original!r} occurs {source.count(original)} times, expected once")
    name = f"{module.__name__}_mutant_{len([m for m in sys.modules if m.startswith(module.__name__ + '_mutant_')])}"
    mutant = types.ModuleType(name)
    # The mutated source under a name of its own in linecache: inspect.getsource, and so triton.jit, which compiles a
    # kernel from its source, read the mutant rather than the file.
    mutant.__file__ = f"{module.__file__}:{name}"
    # Its custom operators under a namespace of its own: registered as cs336::…, they would replace the original
    # module's, whose callers would then run the mutant.
    mutated = source.replace(original, replacement).replace('"cs336::', f'"{name.replace(".", "_")}::')
    linecache.cache[mutant.__file__] = (len(mutated), None, mutated.splitlines(keepends=True), mutant.__file__)
    sys.modules[name] = mutant
    exec(compile(mutated, mutant.__file__, "exec"), mutant.__dict__)
    return mutant


def randn(*shape, seed: int, device, scale: float = 1.0, dtype=torch.float32) -> torch.Tensor:
    """A reproducible normal tensor, drawn on the CPU (same values on every device)."""
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype)


def randint(high: int, *shape, seed: int, device) -> torch.Tensor:
    """Reproducible integers in [0, high), drawn on the CPU."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, shape, generator=g).to(device)


def needs_keywords(member, component: str, keywords, what: str) -> None:
    """Raise ComponentMissing when ``member``'s signature takes not every one of ``keywords``: an implementation
    without one of the kit's extras (``what`` they are) is reported missing for that test, not failed."""
    try:
        parameters = inspect.signature(member).parameters
    except (TypeError, ValueError):  # no readable signature: call it and let the test judge what happens
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    lacking = [name for name in keywords if name not in parameters]
    if lacking:
        raise ComponentMissing(component, f"it takes no keyword{'s' if len(lacking) > 1 else ''} "
                                          f"{', '.join(lacking)}: {what}")
