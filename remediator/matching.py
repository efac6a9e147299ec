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

__all__ = [
    "OPERATORS",
    "Matcher",
    "MatcherError",
    "Op",
    "example_labels",
    "first_failure",
    "matches_all",
    "parse_matchers",
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
                candidates.extend(_literal_alternatives(m.value) or [])
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
                nxt = self.text[self.pos + 1]
                out.append({"n": "\n", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
                self.pos += 2
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
                nxt = self.text[self.pos + 1]
                out.append({"n": "\n", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
                self.pos += 2
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


# --------------------------------------------------------- RE2 → Python regex

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_FLAGS = re.compile(r"([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])")


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile an Alertmanager (RE2) pattern for ``fullmatch``; ValueError says why not."""
    translated = translate_re2(pattern)
    try:
        return re.compile(f"(?:{translated})", re.ASCII)
    except re.error as exc:
        where = ""
        if translated == pattern and exc.pos is not None and 3 <= exc.pos <= len(pattern) + 3:
            where = f" at position {exc.pos - 3}"      # 3 = len("(?:")
        raise ValueError(exc.msg + where) from None
    except (OverflowError, RecursionError) as exc:
        raise ValueError(f"pattern too complex ({exc})") from None


def translate_re2(p: str) -> str:
    """Translate RE2 syntax to Python's ``re``; ValueError for what cannot mean the same."""
    out: list[str] = []
    extra = [0]                 # per open group: closes owed for a leading "(?i)"
    at_start = True             # at the start of the pattern, a group or an alternative
    multiline = re.search(r"\(\?[a-zA-Z]*m[a-zA-Z-]*[:)]", p) is not None
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == "\\":
            i = _escape(p, i, out)
            at_start = False
        elif c == "[":
            i = _char_class(p, i, out)
            at_start = False
        elif c == "(":
            if p.startswith("(?", i):
                i = _group_ext(p, i, out, extra, at_start)
            else:
                out.append("(")
                extra.append(0)
                i += 1
            at_start = True
        elif c == ")":
            if len(extra) > 1:
                out.append(")" * extra.pop())
            out.append(")")
            i += 1
            at_start = False
        elif c == "|":
            out.append("|")
            i += 1
            at_start = True
        elif c in "*+?" or (c == "{" and _REPEAT.match(p, i)):
            if c == "{":
                m = _REPEAT.match(p, i)
                assert m is not None
                low, high = int(m.group(1)), m.group(3)
                if low > 1000 or (high and int(high) > 1000):
                    raise ValueError("repetition count above 1000 (RE2's limit)")
                out.append(m.group())
                i = m.end()
            else:
                out.append(c)
                i += 1
            if i < n and p[i] == "?":
                out.append("?")
                i += 1
            if i < n and (p[i] == "+" or p[i] in "*?" or _REPEAT.match(p, i)):
                if p[i] == "+":
                    raise ValueError(f"possessive quantifier '{p[i - 1]}+' is not supported "
                                     "by Alertmanager (RE2)")
                raise ValueError(f"invalid nested repetition at position {i}")
            at_start = False
        elif c == "{":
            out.append("\\{")
            i += 1
            at_start = False
        elif c == "$" and not multiline:
            out.append("\\Z")
            i += 1
            at_start = False
        else:
            out.append(c)
            i += 1
            at_start = False
    out.append(")" * extra[0])
    return "".join(out)


def _escape(p: str, i: int, out: list[str]) -> int:
    if i + 1 >= len(p):
        raise ValueError("trailing backslash at end of pattern")
    d = p[i + 1]
    if d in "123456789":
        raise ValueError(f"backreference '\\{d}' is not supported by Alertmanager (RE2)")
    if d == "z":
        out.append("\\Z")
    elif d == "Z":
        raise ValueError("'\\Z' is not RE2 syntax: use '\\z' or '$'")
    elif d in "pP":
        raise ValueError(f"Unicode class '\\{d}' is not supported here: list the characters")
    elif d in "uUN":
        raise ValueError(f"'\\{d}' is not RE2 syntax: use '\\x{{…}}'")
    elif d == "C":
        raise ValueError("'\\C' (any byte) is not supported")
    elif d == "Q":
        end = p.find("\\E", i + 2)
        literal = p[i + 2:] if end < 0 else p[i + 2:end]
        out.append(re.escape(literal))
        return len(p) if end < 0 else end + 2
    elif d == "x" and p.startswith("{", i + 2):
        end = p.find("}", i + 3)
        digits = p[i + 3:end] if end > 0 else ""
        if not re.fullmatch(r"[0-9A-Fa-f]{1,6}", digits) or int(digits, 16) > 0x10FFFF:
            raise ValueError(f"invalid escape '\\x{{{digits}}}'")
        out.append(f"\\U{int(digits, 16):08x}")
        return end + 1
    else:
        out.append(p[i:i + 2])
    return i + 2


def _char_class(p: str, i: int, out: list[str]) -> int:
    n = len(p)
    j = i + 1
    buf = ["["]
    if j < n and p[j] == "^":
        buf.append("^")
        j += 1
    if j < n and p[j] == "]":
        buf.append("\\]")
        j += 1
    while j < n and p[j] != "]":
        c = p[j]
        if c == "[" and p.startswith("[:", j):
            end = p.find(":]", j + 2)
            name = p[j + 2:end] if end > 0 else ""
            if name.startswith("^"):
                raise ValueError(f"negated POSIX class '[:{name}:]' is not supported here")
            if name not in _POSIX_CLASSES:
                raise ValueError(f"unknown POSIX class '[:{name}:]'")
            buf.append(_POSIX_CLASSES[name])
            j = end + 2
        elif c == "\\":
            if j + 1 >= n:
                break
            d = p[j + 1]
            if d in "pP":
                raise ValueError(f"Unicode class '\\{d}' is not supported here: "
                                 "list the characters")
            if d in "123456789uUNQ":
                raise ValueError(f"'\\{d}' inside a character class is not RE2 syntax")
            if d == "x" and p.startswith("{", j + 2):
                sub: list[str] = []
                j = _escape(p, j, sub)
                buf.extend(sub)
                continue
            buf.append(p[j:j + 2])
            j += 2
        elif c in "[&~|":
            buf.append("\\" + c)          # literal in RE2; Python warns about set operations
            j += 1
        else:
            buf.append(c)
            j += 1
    if j >= n:
        raise ValueError("missing closing ']'")
    buf.append("]")
    out.append("".join(buf))
    return j + 1


def _group_ext(p: str, i: int, out: list[str], extra: list[int], at_start: bool) -> int:
    rest = p[i + 2:]
    if rest.startswith(("=", "!", "<=", "<!")):
        kind = "lookahead" if rest[0] in "=!" else "lookbehind"
        raise ValueError(f"{kind} '(?{rest[:2 if rest[0] == '<' else 1]}' is not supported "
                         "by Alertmanager (RE2)")
    if rest.startswith("P="):
        raise ValueError("backreference '(?P=' is not supported by Alertmanager (RE2)")
    if rest.startswith("P<"):
        out.append("(?P<")
        extra.append(0)
        return i + 4
    if rest.startswith("<"):
        out.append("(?P<")
        extra.append(0)
        return i + 3
    m = _FLAGS.match(rest)
    if m is None or not (m.group(1) or m.group(2) or m.group(3) == ":"):
        what = rest[:1] or "end of pattern"
        raise ValueError(f"group syntax '(?{what}' is not supported by Alertmanager (RE2)")
    on, off, end = m.group(1), m.group(2) or "", m.group(3)
    for flag in on + off:
        if flag == "U":
            raise ValueError("the ungreedy flag 'U' is not supported here")
        if flag not in "ims":
            raise ValueError(f"unknown flag {flag!r} (RE2 knows i, m, s and U)")
    flags = on + (f"-{off}" if off else "")
    if end == ":":
        out.append(f"(?{flags}:")
        extra.append(0)
    else:
        if not at_start:
            raise ValueError(f"put '(?{flags})' at the start of the pattern or of a group, "
                             f"or write the scoped form '(?{flags}:…)'")
        out.append(f"(?{flags}:")
        extra[-1] += 1
    return i + 2 + m.end()


_LITERAL = re.compile(r"(?:[^\\.^$*+?()\[\]{}|]|\\[^A-Za-z0-9])*")


def _literal_alternatives(pattern: str) -> list[str] | None:
    """``critical|page`` → ["critical", "page"]; None unless a plain alternation."""
    body = pattern
    for prefix in ("(?:", "("):
        if body.startswith(prefix) and body.endswith(")"):
            body = body[len(prefix):-1]
            break
    parts = body.split("|")
    if not all(_LITERAL.fullmatch(part) for part in parts):
        return None
    return [re.sub(r"\\(.)", r"\1", part) for part in parts]
