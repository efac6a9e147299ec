r"""Alertmanager's regular expressions (Go RE2) as Python ``re`` patterns.

``compile_regex`` translates what can mean the same in ``re`` and refuses, with a
reason, what cannot (see ``remediator.matching``'s docstring for the full list).
``literal_alternatives`` reads a plain alternation (``critical|page``) back into
its members, for example alerts.
"""

from __future__ import annotations

import re

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
            i = _repetition(p, i, out)
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


def _repetition(p: str, i: int, out: list[str]) -> int:
    """A quantifier at ``p[i]`` (``*``, ``+``, ``?`` or ``{m,n}``), lazy or not; RE2
    refuses counts above 1000, possessive and nested repetition."""
    n = len(p)
    if p[i] == "{":
        m = _REPEAT.match(p, i)
        assert m is not None
        low, high = int(m.group(1)), m.group(3)
        if low > 1000 or (high and int(high) > 1000):
            raise ValueError("repetition count above 1000 (RE2's limit)")
        out.append(m.group())
        i = m.end()
    else:
        out.append(p[i])
        i += 1
    if i < n and p[i] == "?":
        out.append("?")
        i += 1
    if i < n and (p[i] == "+" or p[i] in "*?" or _REPEAT.match(p, i)):
        if p[i] == "+":
            raise ValueError(f"possessive quantifier '{p[i - 1]}+' is not supported "
                             "by Alertmanager (RE2)")
        raise ValueError(f"invalid nested repetition at position {i}")
    return i


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


def literal_alternatives(pattern: str) -> list[str] | None:
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
