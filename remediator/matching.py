r"""Alertmanager label matchers: parsing, matching, explaining.

Holds ``Matcher`` (one ``name op value``), ``parse_matchers`` (Alertmanager's
matcher syntax, single or a ``{…}`` list), ``first_failure`` (which matcher
rejected a label set, for ``remediator dry-run``) and ``example_labels`` (a label
set that satisfies a list, to build an example alert). Playbook selection lives
with the engine; this module only knows matchers.

Semantics follow Alertmanager (``pkg/labels``):

* ``=`` / ``!=`` compare strings; ``=~`` / ``!~`` match a regular expression
  anchored at both ends (``foo=~"bar"`` does not match ``"foobar"``).
* A label that is absent matches as the empty string: ``foo=""`` and
  ``foo!~"bar"`` hold when ``foo`` is absent, ``foo!=""`` requires it.
* Values may be quoted (``"…"`` with the escapes ``\"``, ``\\`` and ``\n``; any
  other backslash is kept, so ``=~"\d+"`` means what it says) or unquoted
  (``severity=critical``, up to the next ``,`` or ``}``).

Regular expressions: Alertmanager uses Go's RE2, this module Python's ``re``.
Patterns are translated or refused so that a matcher means the same here:

* refused (RE2 lacks them, Alertmanager would reject the config): backreferences
  (``\1``, ``(?P=n)``), lookarounds (``(?=``, ``(?!``, ``(?<=``, ``(?<!``), atomic
  groups, conditionals, possessive quantifiers (``a*+``), ``\Z``, ``\u…``, flags
  other than ``i``, ``m``, ``s``; also ``\pL`` and ``[[:^alpha:]]``, which RE2 has
  but ``re`` cannot express, and ``U`` (ungreedy), which ``re`` lacks;
* translated: ``\z`` → ``\Z``, ``$`` (without ``m``) → end of text only,
  ``\Q…\E`` → escaped literal, ``\x{…}``, POSIX classes ``[[:alpha:]]``, a
  leading ``(?i)`` of a pattern or group → a scoped ``(?i:…)``, ``{`` that is not
  a repetition → literal ``{``;
* matched in ASCII mode, as RE2 does for ``\d``, ``\w``, ``\s`` and ``\b`` (but
  ``(?i)`` then folds ASCII letters only, where RE2 folds all of Unicode);
* differences left: ``re`` backtracks, so a pathological pattern can be slow
  (RE2 is linear); repetition counts are capped at 1000 as in RE2.

Each regex is compiled once, when its ``Matcher`` is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from remediator.re2 import compile_regex, literal_alternatives, translate_re2

__all__ = [
    "OPERATORS",
    "Matcher",
    "MatcherError",
    "Op",
    "compile_regex",
    "example_labels",
    "first_failure",
    "matches_all",
    "parse_matchers",
    "translate_re2",
]

Op = Literal["=", "!=", "=~", "!~"]
OPERATORS: tuple[Op, ...] = ("=", "!=", "=~", "!~")

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class MatcherError(ValueError):
    """A matcher that cannot be parsed. ``column`` is 1-based (None if unknown)."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.message = message
        self.column = column
        super().__init__(message if column is None else f"column {column}: {message}")


@dataclass(frozen=True)
class Matcher:
    """``name op value``; ``str()`` gives the canonical form ``name=~"value"``."""

    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _LABEL_NAME.fullmatch(self.name):
            raise MatcherError(f"invalid label name {self.name!r} "
                               "(must match [a-zA-Z_][a-zA-Z0-9_]*)")
        if self.op not in OPERATORS:
            raise MatcherError(f"unknown operator {self.op!r} (use =, !=, =~ or !~)")
        if not isinstance(self.value, str):
            raise MatcherError(f"the value of {self.name!r} must be a string")
        if self.op in ("=~", "!~"):
            try:
                regex = compile_regex(self.value)
            except ValueError as exc:
                raise MatcherError(f"invalid regular expression in {self.name}{self.op}"
                                   f"{_quote(self.value)}: {exc}") from None
            object.__setattr__(self, "_regex", regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy the matcher (a missing label counts as "")."""
        value = labels.get(self.name, "")
        if not isinstance(value, str):
            value = str(value)
        if self._regex is not None:
            hit = self._regex.fullmatch(value) is not None
            return hit if self.op == "=~" else not hit
        return (value == self.value) if self.op == "=" else (value != self.value)

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")

    @property
    def is_negative(self) -> bool:
        return self.op in ("!=", "!~")

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def first_failure(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> Matcher | None:
    """The first matcher that ``labels`` do not satisfy, or None if all hold."""
    for m in matchers:
        if not m.matches(labels):
            return m
    return None


def example_labels(matchers: Sequence[Matcher]) -> dict[str, str]:
    """A label set satisfying ``matchers`` where one is easy to find.

    Equality values are used as they are; a regex that is a plain alternation of
    literals (``critical|page``) contributes its first member; negative matchers
    are satisfied by leaving the label out when they can be. A name for which no
    simple value works is left out.
    """
    by_name: dict[str, list[Matcher]] = {}
    for m in matchers:
        by_name.setdefault(m.name, []).append(m)
    out: dict[str, str] = {}
    for name, group in by_name.items():
        candidates: list[str] = []
        for m in group:
            if m.op == "=":
                candidates.append(m.value)
            elif m.op == "=~":
                candidates.extend(literal_alternatives(m.value) or [])
        candidates += ["", "example", "x", "1"]
        for value in candidates:
            trial = {name: value} if value else {}
            if all(m.matches(trial) for m in group):
                if value:
                    out[name] = value
                break
    return out


# -------------------------------------------------------------------- parsing

_NAME_CHARS = re.compile(r"[^\s=!~<>:\"',{}]+")
_OP_CHARS = re.compile(r"[=!~<>:]+")


def parse_matchers(text: str) -> list[Matcher]:
    """Parse ``name="value"``, several separated by commas, or a ``{…}`` list of them.

    ``{}`` is the empty list. Raises ``MatcherError`` with a 1-based column.
    """
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, pos: int | None = None) -> MatcherError:
        return MatcherError(message, (self.pos if pos is None else pos) + 1)

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> list[Matcher]:
        if not isinstance(self.text, str):
            raise MatcherError(f"a matcher must be a string, got {type(self.text).__name__}")
        self.skip_ws()
        if self.pos == len(self.text):
            raise self.fail("empty matcher")
        braces = self.peek() == "{"
        if braces:
            open_at = self.pos
            self.pos += 1
            self.skip_ws()
        matchers: list[Matcher] = []
        while True:
            if braces and self.peek() == "}":
                break
            matchers.append(self.matcher(braces))
            self.skip_ws()
            if self.peek() == ",":
                self.pos += 1
                self.skip_ws()
                if not braces and self.pos == len(self.text):
                    raise self.fail("expected a matcher after ','")
                continue
            break
        if braces:
            if self.peek() != "}":
                if self.pos == len(self.text):
                    raise self.fail("missing closing '}' for the '{' at column "
                                    f"{open_at + 1}")
                raise self.fail(f"expected ',' or '}}', found {self.rest()!r}")
            self.pos += 1
            self.skip_ws()
        if self.pos < len(self.text):
            raise self.fail(f"unexpected {self.rest()!r} after the matcher "
                            "(separate matchers with ',')")
        return matchers

    def rest(self) -> str:
        rest = self.text[self.pos:]
        return rest if len(rest) <= 20 else rest[:17] + "..."

    def matcher(self, braces: bool) -> Matcher:
        start = self.pos
        m = _NAME_CHARS.match(self.text, self.pos)
        if m is None:
            found = self.peek()
            raise self.fail("expected a label name" + (f", found {found!r}" if found else ""))
        name = m.group()
        if not _LABEL_NAME.fullmatch(name):
            raise self.fail(f"invalid label name {name!r} (must match [a-zA-Z_][a-zA-Z0-9_]*)")
        self.pos = m.end()
        self.skip_ws()
        op_at = self.pos
        m = _OP_CHARS.match(self.text, self.pos)
        if m is None:
            found = self.peek()
            raise self.fail(f"expected an operator (=, !=, =~ or !~) after {name!r}"
                            + (f", found {found!r}" if found else ""))
        op = m.group()
        if op not in OPERATORS:
            hint = " (Alertmanager has no '==', use '=')" if op == "==" else ""
            raise self.fail(f"unknown operator {op!r}: use =, !=, =~ or !~{hint}", op_at)
        self.pos = m.end()
        self.skip_ws()
        value_at = self.pos
        value = self.quoted() if self.peek() == '"' else self.unquoted(braces)
        try:
            return Matcher(name, op, value)
        except MatcherError as exc:
            raise MatcherError(exc.message, value_at + 1 if op in ("=~", "!~") else start + 1)\
                from None

    def escaped(self) -> str:
        """The character a backslash escape at ``pos`` stands for (``\\n``, ``\\"``,
        ``\\\\``; any other backslash is kept), moving past it."""
        nxt = self.text[self.pos + 1]
        self.pos += 2
        return {"n": "\n", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt)

    def quoted(self) -> str:
        open_at = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == '"':
                self.pos += 1
                return "".join(out)
            if c == "\\" and self.pos + 1 < len(self.text):
                out.append(self.escaped())
                continue
            out.append(c)
            self.pos += 1
        raise self.fail("unterminated quoted value (missing closing '\"')", open_at)

    def unquoted(self, braces: bool) -> str:
        start = self.pos
        stop = ",}" if braces else ","
        out: list[str] = []
        while self.pos < len(self.text) and self.text[self.pos] not in stop:
            c = self.text[self.pos]
            if c == '"':
                raise self.fail("unexpected '\"' inside an unquoted value (quote the whole "
                                "value and escape inner quotes as \\\")")
            if c == "\\" and self.pos + 1 < len(self.text):
                out.append(self.escaped())
                continue
            out.append(c)
            self.pos += 1
        value = "".join(out)
        stripped = value.rstrip()
        # give back the trailing blanks so that the caller sees the separator next
        self.pos -= len(value) - len(stripped)
        self.pos = max(self.pos, start)
        return stripped


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
