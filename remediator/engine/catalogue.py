"""The actions as the engine sees them: a name → what it is (``ActionSpec``: its params
model, whether it changes the cluster) and its implementation (``plan``/``apply``).

The engine is handed a catalogue (``remediator.actions.registry`` in the daemon); it
never imports an action module itself.
"""

from __future__ import annotations

from typing import Any, Protocol

from remediator.actions.base import Action
from remediator.actions.registry import ActionSpec


class Catalogue(Protocol):
    def get(self, name: str) -> ActionSpec:
        """The action's spec; ``KeyError`` naming the known ones when unknown."""
        ...

    def implementation(self, name: str) -> Action[Any]:
        """The action's implementation, shared by every incident."""
        ...
