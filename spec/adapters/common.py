"""What every area's bridge shares: the loaded adapters file, its import, and functions bridged one to one.

The areas' bridges (spec/adapters/<area>.py) build on these; spec/adapters/__init__.py assembles them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from spec import ComponentMissing


class Adapters:
    """A loaded adapters file. ``call`` turns a stub (absent or NotImplementedError) into ComponentMissing."""

    def __init__(self, module: ModuleType, path: Path):
        self.module, self.path = module, path

    def has(self, function: str) -> bool:
        return callable(getattr(self.module, function, None))

    def call(self, component: str, function: str, *args: Any, **kwargs: Any) -> Any:
        if not self.has(function):
            raise ComponentMissing(component, f"{self.path.name} has no {function}")
        try:
            return getattr(self.module, function)(*args, **kwargs)
        except NotImplementedError as error:
            raise ComponentMissing(component, f"adapters.{function} raises NotImplementedError") from error

    def call_first(self, component: str, functions: tuple[str, ...], *args: Any, **kwargs: Any) -> tuple[str, Any]:
        """(name, result) of the first of ``functions`` (one component's adapters, in order of preference) that the
        file implements: one it lacks or that raises NotImplementedError gives way to the next, so the component is
        missing only when none is implemented."""
        stubs = []
        for function in functions:
            if self.has(function):
                try:
                    return function, getattr(self.module, function)(*args, **kwargs)
                except NotImplementedError:
                    stubs.append(function)
        if not stubs:
            raise ComponentMissing(component, f"{self.path.name} has none of {', '.join(functions)}")
        raise ComponentMissing(component, f"{', '.join(f'adapters.{f}' for f in stubs)} raise"
                                          f"{'s' * (len(stubs) == 1)} NotImplementedError")

    def accepts(self, function: str, *args: Any, **kwargs: Any) -> bool:
        """Whether the file's ``function`` takes these arguments (by its signature; True when it has none to read or
        the file lacks it, so that calling it reports what is wrong)."""
        if not self.has(function):
            return True
        try:
            signature = inspect.signature(getattr(self.module, function))
        except (TypeError, ValueError):  # a builtin or other callable without a readable signature
            return True
        try:
            signature.bind(*args, **kwargs)
        except TypeError:
            return False
        return True


def import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise FileNotFoundError(f"adapters file {path} does not exist (from --impl adapters:{path})")
    # A name of its own per file, so that two adapters files can be loaded side by side.
    name = "cs336_kit_adapters_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"cannot import adapters file {path}: not a Python source file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up here
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        hint = (" (is the package it imports installed in this environment? e.g. pip install -e <your repo>)"
                if isinstance(error, ImportError) else "")
        raise ValueError(f"cannot import adapters file {path}: {type(error).__name__}: {error} "
                         f"(at {where(error, path)}){hint}") from error
    return module


def where(error: Exception, path: Path) -> str:
    """``file:line`` of an import error: the adapters file's own line where it has one, else the innermost."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{error.filename}:{error.lineno}"
    frames = traceback.extract_tb(error.__traceback__)
    own = [frame for frame in frames if Path(frame.filename).resolve() == path.resolve()]
    frame = (own or frames)[-1]
    return f"{frame.filename}:{frame.lineno}"


def bound(adapters: Adapters, base: type, name: str | None = None, **attributes: Any) -> type:
    """A subclass of ``base`` bound to one adapters file (its ``adapters``), named after its component: one per file,
    so that two adapters files can be loaded side by side."""
    return type(name or base.__name__, (base,), {"adapters": adapters, "__module__": base.__module__, **attributes})


def bridge_function(adapters: Adapters, component: str, spec_function: Callable, adapter: str) -> Callable:
    """A function with ``spec_function``'s signature that calls ``adapter`` positionally. The spec's keyword-only
    parameters are the kit's extras, which the course's adapters never take: left out of the signature, so that a
    test of an extra reports it missing."""
    signature = inspect.signature(spec_function)
    signature = signature.replace(parameters=[p for p in signature.parameters.values()
                                              if p.kind is not inspect.Parameter.KEYWORD_ONLY])

    def bridged(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)  # accepts the spec's keyword names
        bound.apply_defaults()
        return adapters.call(component, adapter, *bound.arguments.values())

    bridged.__name__ = bridged.__qualname__ = component
    bridged.__signature__ = signature
    bridged.__doc__ = f"``{component}`` through adapters.{adapter} ({adapters.path})."
    return bridged


def bridge_functions(adapters: Adapters, functions: dict[str, tuple[Callable, str]]) -> dict[str, Callable]:
    """``bridge_function`` for each entry ``component: (spec function, adapter)`` whose adapter the file has."""
    return {component: bridge_function(adapters, component, spec_function, adapter)
            for component, (spec_function, adapter) in functions.items() if adapters.has(adapter)}
