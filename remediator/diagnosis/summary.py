"""The optional model summary: the prompt (findings only, redacted) and the check of
the answer (every cited finding id exists, at least one is cited, it is short).

Pure: the engine's diagnosis stage calls the model port and journals the verdict.
The summary is shown beside the findings; it never chooses an action.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_CHARS = 1200
_CITED = re.compile(r"\[([A-Za-z_]+:[^\[\]\s]+)\]")
_SECRETS = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [REDACTED]"),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|"
                r"authorization|credentials?)\b(\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|\S+)"),
     r"\1\2[REDACTED]"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1[REDACTED]@"),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "[REDACTED]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{5,}"), "[REDACTED]"),
)
SYSTEM = (
    "You summarise a Kubernetes incident diagnosis for the on-call engineer. Use only the "
    "findings given; do not guess beyond them. In at most three sentences say what most "
    "likely happened. Cite each claim with the finding id in square brackets, exactly as "
    "given, e.g. [oom_killed:api-7d9-x/api]. Do not recommend or choose actions.")


def redact(text: str) -> str:
    """``text`` with passwords, tokens, keys and URL credentials replaced."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def prompt(target: str, alerts: Sequence[str], findings: Sequence[dict[str, Any]]
           ) -> list[dict[str, str]]:
    """The chat messages: the instructions, then the findings and their evidence."""
    data = {"target": target, "alerts": list(alerts),
            "findings": [{"id": f["id"], "kind": f["kind"], "summary": redact(f["summary"]),
                          "evidence": list(f.get("evidence") or [])} for f in findings]}
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": json.dumps(data, ensure_ascii=False, indent=1)}]


@dataclass(frozen=True)
class Checked:
    text: str | None            # the summary, or None when discarded
    cited: tuple[str, ...]
    reason: str = ""            # why it was discarded


def check(answer: str, ids: Sequence[str]) -> Checked:
    """Accept the answer only if it cites at least one finding and every id it cites
    exists; and it is short."""
    text = answer.strip()
    cited = tuple(dict.fromkeys(_CITED.findall(text)))
    unknown = [c for c in cited if c not in ids]
    if not text:
        return Checked(None, cited, "the answer is empty")
    if len(text) > MAX_CHARS:
        return Checked(None, cited, f"the answer is too long ({len(text)} characters)")
    if unknown:
        return Checked(None, cited, f"it cites findings that do not exist: {', '.join(unknown)}")
    if not cited:
        return Checked(None, cited, "it cites no finding")
    return Checked(text, cited)
