"""Import kubernetes_asyncio without importing all of it.

``import kubernetes_asyncio.<anything>`` runs the package's ``__init__``, which
imports ``kubernetes_asyncio.client``, whose ``__init__`` imports every generated
API class and ~900 models: ~39 MB of RSS for a daemon that uses three API classes
and, with raw JSON responses, no model at all.

``install()`` registers the four aggregating packages (``kubernetes_asyncio``,
``.client``, ``.client.api``, ``.client.models``) in ``sys.modules`` before their
first import, as package modules with the real ``__path__``, ``__file__`` and
``__spec__`` whose ``__init__`` is not executed. Each gets a module-level
``__getattr__`` that imports a name on first use, from the table its real
``__init__`` would have bound (read from the source with ``ast``: only
``from X import Y [as Z]``, ``import X as Y`` and literal assignments such as
``__version__`` and ``__all__``). So ``from kubernetes_asyncio.client import ApiClient``
imports ``client/api_client.py`` only, and the deserializer's
``getattr(kubernetes_asyncio.client.models, "V1Pod")`` imports ``v1_pod.py`` only.
A name that is not in the table but is a submodule is imported as one.

If kubernetes_asyncio is already imported, nothing changes. If a package's layout
is not what this expects (a missing file, any other statement in an ``__init__``),
nothing is installed and the plain import happens. Installed only by the adapter
(``remediator.adapters.kubernetes``), not globally.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

ROOT = "kubernetes_asyncio"
#: the packages whose ``__init__`` imports everything; parents before children
PACKAGES = (ROOT, f"{ROOT}.client", f"{ROOT}.client.api", f"{ROOT}.client.models")

_lock = threading.Lock()


class LayoutError(Exception):
    """A package ``__init__`` does something this module does not reproduce."""


class _Plan:
    """What one package's ``__init__`` binds: names to (module, attribute or None)."""

    def __init__(self, name: str, init: Path) -> None:
        self.name, self.init = name, init
        self.lazy: dict[str, tuple[str, str | None]] = {}
        self.constants: dict[str, Any] = {}


def _read_plan(name: str, directory: Path) -> _Plan:
    init = directory / "__init__.py"
    try:
        tree = ast.parse(init.read_bytes(), str(init))
    except (OSError, SyntaxError, ValueError) as err:
        raise LayoutError(f"{init}: {err}") from err
    plan = _Plan(name, init)
    for i, stmt in enumerate(tree.body):
        if (i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)):
            plan.constants["__doc__"] = stmt.value.value
        elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
            for alias in stmt.names:
                if alias.name == "*":
                    raise LayoutError(f"{init}:{stmt.lineno}: star import")
                if stmt.module == name:          # ``from pkg import sub`` inside pkg
                    plan.lazy[alias.asname or alias.name] = (f"{name}.{alias.name}", None)
                else:
                    plan.lazy[alias.asname or alias.name] = (stmt.module, alias.name)
        elif isinstance(stmt, ast.Import) and all(a.asname for a in stmt.names):
            for alias in stmt.names:
                plan.lazy[str(alias.asname)] = (alias.name, None)
        elif (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
              and isinstance(stmt.targets[0], ast.Name)):
            try:
                plan.constants[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            except ValueError as err:
                raise LayoutError(f"{init}:{stmt.lineno}: not a literal") from err
        else:
            raise LayoutError(f"{init}:{stmt.lineno}: unexpected {type(stmt).__name__}")
    for pkg in PACKAGES:                         # the children are bound as attributes anyway
        if pkg.rpartition(".")[0] == name:
            plan.lazy.setdefault(pkg.rpartition(".")[2], (pkg, None))
    return plan


def _resolve(target: tuple[str, str | None]) -> Any:
    module_name, attr = target
    module = importlib.import_module(module_name)
    if attr is None:
        return module
    try:
        return getattr(module, attr)
    except AttributeError:                       # ``from pkg import submodule``
        return importlib.import_module(f"{module_name}.{attr}")


def _lazy_module(plan: _Plan) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        plan.name, plan.init, submodule_search_locations=[str(plan.init.parent)])
    if spec is None:
        raise LayoutError(f"no module spec for {plan.init}")
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update(plan.constants)
    lazy = plan.lazy

    def __getattr__(attr: str) -> Any:
        target = lazy.get(attr)
        if target is None:
            if attr.startswith("__") or importlib.util.find_spec(f"{plan.name}.{attr}") is None:
                raise AttributeError(f"module {plan.name!r} has no attribute {attr!r}")
            target = (f"{plan.name}.{attr}", None)
        value = _resolve(target)
        setattr(module, attr, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | set(lazy))

    module.__getattr__ = __getattr__             # type: ignore[method-assign]
    module.__dir__ = __dir__                     # type: ignore[method-assign]
    module.__lazy_names__ = lazy                 # type: ignore[attr-defined]
    return module


def is_lazy(module: ModuleType) -> bool:
    return "__lazy_names__" in vars(module)


def install() -> bool:
    """Make kubernetes_asyncio's aggregating packages lazy. True if they are (now or
    already); False if kubernetes_asyncio was imported normally before, or its layout
    is not the expected one (then nothing is changed). Idempotent, thread-safe."""
    with _lock:
        present = [sys.modules[p] for p in PACKAGES if p in sys.modules]
        if present:
            return all(is_lazy(m) for m in present) and len(present) == len(PACKAGES)
        try:
            spec = importlib.util.find_spec(ROOT)
            if spec is None or not spec.submodule_search_locations:
                raise LayoutError(f"{ROOT} is not an importable package")
            root = Path(next(iter(spec.submodule_search_locations)))
            plans = [_read_plan(name, root.joinpath(*name.split(".")[1:])) for name in PACKAGES]
            modules = [_lazy_module(plan) for plan in plans]
        except (LayoutError, ImportError, OSError) as err:
            log.info("kubernetes_asyncio is imported in full (%s)", err)
            return False
        for module in modules:
            sys.modules[module.__name__] = module
            parent, _, child = module.__name__.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)
        return True
