"""Alertmanager matchers: grammar, semantics, errors, RE2 parity, examples."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.matching import (
    OPERATORS,
    Matcher,
    MatcherError,
    example_labels,
    first_failure,
    matches_all,
    parse_matchers,
)

# ------------------------------------------------------------------- grammar

PARSE = [
    ('alertname="HighErrorRate"', [("alertname", "=", "HighErrorRate")]),
    ("severity=~\"critical|page\"", [("severity", "=~", "critical|page")]),
    ('namespace!~"kube-.*"', [("namespace", "!~", "kube-.*")]),
    ('env!="prod"', [("env", "!=", "prod")]),
    ('  a  =  "b"  ', [("a", "=", "b")]),
    ("a=b", [("a", "=", "b")]),                                   # unquoted
    ("a=b c", [("a", "=", "b c")]),                               # unquoted runs to the end
    ("a=", [("a", "=", "")]),
    ('a=""', [("a", "=", "")]),
    (r'a="x\"y"', [("a", "=", 'x"y')]),                           # escapes
    (r'a="x\\y"', [("a", "=", "x\\y")]),
    (r'a="x\ny"', [("a", "=", "x\ny")]),
    (r'a=~"\d+"', [("a", "=~", r"\d+")]),                         # unknown escape kept
    (r'a=~"\\d+"', [("a", "=~", r"\d+")]),
    ('a="b,c}"', [("a", "=", "b,c}")]),                           # separators inside quotes
    ('{a="b", c=~"d"}', [("a", "=", "b"), ("c", "=~", "d")]),
    ('{ a = "b" , c !~ "d" , }', [("a", "=", "b"), ("c", "!~", "d")]),
    ("{a=b,c=d}", [("a", "=", "b"), ("c", "=", "d")]),
    ('a="b",c="d"', [("a", "=", "b"), ("c", "=", "d")]),
    ("{}", []),
    ("{ }", []),
    ("_x=1", [("_x", "=", "1")]),
]


@pytest.mark.parametrize(("text", "expected"), PARSE, ids=[p[0] for p in PARSE])
def test_parse(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert [(m.name, m.op, m.value) for m in parse_matchers(text)] == expected


ERRORS = [
    ("", 1, "empty matcher"),
    ("   ", 4, "empty matcher"),
    ('foo=="x"', 4, "unknown operator '==': use =, !=, =~ or !~ "
                    "(Alertmanager has no '==', use '=')"),
    ('foo=!"x"', 4, "unknown operator '=!'"),
    ('foo~="x"', 4, "unknown operator '~='"),
    ('foo:"x"', 4, "unknown operator ':'"),
    ('foo "x"', 5, "expected an operator (=, !=, =~ or !~) after 'foo', found '\"'"),
    ("foo", 4, "expected an operator"),
    ('foo="bar', 5, "unterminated quoted value"),
    ('{a="b", c="d}', 11, "unterminated quoted value"),
    ('foo-bar="x"', 1, "invalid label name 'foo-bar' (must match [a-zA-Z_][a-zA-Z0-9_]*)"),
    ('0foo="x"', 1, "invalid label name '0foo'"),
    ('=x', 1, "expected a label name, found '='"),
    ('foo="x" y', 9, "unexpected 'y' after the matcher"),
    ('foo="x""y"', 8, "unexpected '\"y\"' after the matcher"),
    ('a=b"c', 4, "unexpected '\"' inside an unquoted value"),
    ('{a="b"', 7, "missing closing '}' for the '{' at column 1"),
    ('{a="b"} x', 9, "unexpected 'x'"),
    ('{a="b" c="d"}', 8, "expected ',' or '}'"),
    ('a="b",', 7, "expected a matcher after ','"),
    ('a=~"("', 4, "invalid regular expression in a=~\"(\": missing ), unterminated subpattern"),
    ('x=~"a[b"', 4, "missing closing ']'"),
    ('x  =~  "(a)\\\\1"', 8, "backreference '\\1' is not supported by Alertmanager (RE2)"),
    ('x=~"(?=a)b"', 4, "lookahead '(?=' is not supported"),
    ('x=~"(?!a)b"', 4, "lookahead '(?!' is not supported"),
    ('x=~"(?<=a)b"', 4, "lookbehind '(?<=' is not supported"),
    ('x=~"(?<!a)b"', 4, "lookbehind '(?<!' is not supported"),
    ('x=~"(?P<n>a)(?P=n)"', 4, "backreference '(?P=' is not supported"),
    ('x=~"(?>a)"', 4, "group syntax '(?>' is not supported"),
    ('x=~"a*+"', 4, "possessive quantifier '*+' is not supported"),
    ('x=~"a**"', 4, "invalid nested repetition"),
    ('x=~"a\\\\Z"', 4, "'\\Z' is not RE2 syntax"),
    ('x=~"\\\\pL"', 4, "Unicode class '\\p' is not supported here"),
    ('x=~"(?x)a"', 4, "unknown flag 'x'"),
    ('x=~"(?U)a"', 4, "ungreedy flag 'U'"),
    ('x=~"a(?i)b"', 4, "put '(?i)' at the start of the pattern or of a group"),
    ('x=~"a{1001}"', 4, "repetition count above 1000"),
]


@pytest.mark.parametrize(("text", "column", "message"), ERRORS, ids=[e[0] or "empty"
                                                                       for e in ERRORS])
def test_parse_errors(text: str, column: int, message: str) -> None:
    with pytest.raises(MatcherError) as err:
        parse_matchers(text)
    assert err.value.column == column
    assert message in err.value.message
    assert str(err.value).startswith(f"column {column}: ")


def test_direct_construction_validates() -> None:
    with pytest.raises(MatcherError, match="invalid label name"):
        Matcher("a b", "=", "x")
    with pytest.raises(MatcherError, match="unknown operator"):
        Matcher("a", "==", "x")  # type: ignore[arg-type]
    with pytest.raises(MatcherError, match="invalid regular expression"):
        Matcher("a", "=~", "(")


# ----------------------------------------------------------------- semantics

SEMANTICS = [
    # (matcher, labels, expected)
    ('foo=~"bar"', {"foo": "bar"}, True),
    ('foo=~"bar"', {"foo": "foobar"}, False),          # anchored at the start
    ('foo=~"bar"', {"foo": "barbaz"}, False),          # … and at the end
    ('foo=~"bar|baz"', {"foo": "baz"}, True),          # alternation is inside the anchors
    ('foo=~"bar|baz"', {"foo": "barbaz"}, False),
    ('foo=~".*bar.*"', {"foo": "foobarbaz"}, True),
    ('foo!~"bar"', {}, True),                           # missing label is ""
    ('foo!~"bar"', {"foo": "bar"}, False),
    ('foo!~"bar"', {"foo": "foobar"}, True),
    ('foo!~""', {}, False),
    ('foo!~".*"', {}, False),
    ('foo=~".*"', {}, True),
    ('foo=~".+"', {}, False),
    ('foo=""', {}, True),                               # absent matches ""
    ('foo=""', {"foo": "x"}, False),
    ('foo!=""', {}, False),                             # "label is present"
    ('foo!=""', {"foo": "x"}, True),
    ('foo!="bar"', {}, True),
    ('foo!="bar"', {"foo": "bar"}, False),
    ('foo="bar"', {"foo": "Bar"}, False),
    ('foo=~"(?i)bar"', {"foo": "BaR"}, True),          # leading flags (a common idiom)
    ('foo=~"(?i)a|b"', {"foo": "B"}, True),            # … apply to the whole pattern
    ('foo=~"x(?i:a)"', {"foo": "xA"}, True),
    ('foo=~"x(?i:a)"', {"foo": "XA"}, False),
    ('foo=~"(x|(?i)a)"', {"foo": "A"}, True),
    ('foo=~"a$"', {"foo": "a\n"}, False),              # RE2's $ is the end of text
    ('foo=~"a\\\\z"', {"foo": "a"}, True),
    ('foo=~"\\\\d+"', {"foo": "123"}, True),
    ('foo=~"\\\\d+"', {"foo": "١٢٣"}, False),           # RE2's \d is ASCII
    ('foo=~"[[:alpha:]]+"', {"foo": "abcXYZ"}, True),  # POSIX classes
    ('foo=~"[[:digit:]-]+"', {"foo": "1-2"}, True),
    ('foo=~"[[:alpha:]]+"', {"foo": "ab1"}, False),
    ('foo=~"\\\\Qa.b\\\\E"', {"foo": "a.b"}, True),    # \Q…\E literal
    ('foo=~"\\\\Qa.b\\\\E"', {"foo": "axb"}, False),
    ('foo=~"a{,2}"', {"foo": "a{,2}"}, True),           # not a repetition in RE2: literal
    ('foo=~"a{2}"', {"foo": "aa"}, True),
    ('foo=~"\\\\x{41}"', {"foo": "A"}, True),
    ('foo=~"[a&&b]"', {"foo": "&"}, True),              # no set operations in RE2
    ('foo=~"."', {"foo": "\n"}, False),
    ('foo=~"(?s)."', {"foo": "\n"}, True),
    ('foo=~"(?m)^a$\\\\n^b$"', {"foo": "a\nb"}, True),
    ('foo="a\\nb"', {"foo": "a\nb"}, True),
    ('{a="1", b=~"2|3"}', {"a": "1", "b": "3"}, True),
    ('{a="1", b=~"2|3"}', {"a": "1", "b": "4"}, False),
]


@pytest.mark.parametrize(("text", "labels", "expected"), SEMANTICS,
                         ids=[f"{s[0]} on {s[1]}" for s in SEMANTICS])
def test_semantics(text: str, labels: dict[str, str], expected: bool) -> None:
    assert matches_all(parse_matchers(text), labels) is expected


def test_first_failure() -> None:
    ms = parse_matchers('{alertname="HighErrorRate", severity=~"critical|page", '
                        'namespace!~"kube-.*"}')
    assert first_failure(ms, {"alertname": "HighErrorRate", "severity": "page",
                              "namespace": "shop"}) is None
    failed = first_failure(ms, {"alertname": "HighErrorRate", "severity": "warning"})
    assert failed is ms[1]
    assert str(failed) == 'severity=~"critical|page"'
    assert first_failure(ms, {"alertname": "HighErrorRate", "severity": "critical",
                              "namespace": "kube-system"}) is ms[2]


def test_canonical_str() -> None:
    assert str(parse_matchers("a=b")[0]) == 'a="b"'
    assert str(parse_matchers('a = "x\\"y\\\\z\\n"')[0]) == 'a="x\\"y\\\\z\\n"'
    assert str(parse_matchers(r'a=~"\d+"')[0]) == r'a=~"\\d+"'
    assert [str(m) for m in parse_matchers('{a!="", b!~"x"}')] == ['a!=""', 'b!~"x"']


def test_matchers_are_hashable_values() -> None:
    a = parse_matchers('x=~"a|b"')[0]
    b = Matcher("x", "=~", "a|b")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a._regex is not None                       # compiled once, when built


# ------------------------------------------------------------------ examples

@pytest.mark.parametrize(("text", "expected", "satisfied"), [
    ('{alertname="HighErrorRate", severity=~"critical|page", namespace!~"kube-.*"}',
     {"alertname": "HighErrorRate", "severity": "critical"}, True),
    ('{env!="", team=~"(sre|ops)", x=~"a\\\\.b"}', {"env": "example", "team": "sre",
                                                    "x": "a.b"}, True),
    ('{a=~".+"}', {"a": "example"}, True),
    ('{a=~"[0-9]+"}', {"a": "1"}, True),
    ('{a=~"[0-9]{3}"}', {}, False),                      # no simple value: left out
    ('{a="1", a!="1"}', {}, False),                      # contradictory: left out
    ('{a=~"x|y", a!="x"}', {"a": "y"}, True),
])
def test_example_labels(text: str, expected: dict[str, str], satisfied: bool) -> None:
    ms = parse_matchers(text)
    labels = example_labels(ms)
    assert labels == expected
    assert (first_failure(ms, labels) is None) is satisfied


# ---------------------------------------------------------------- properties

names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,6}", fullmatch=True)
plain_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
regex_values = st.sampled_from(["", ".*", "a|b", "[a-z]+", "(?i)x", "\\d{2,3}", "a\\.b", "é+",
                                "(foo|bar)-[0-9]*", "\\Qa.b\\E", "[[:upper:]]"])
label_sets = st.dictionaries(names, plain_values, max_size=4)


@st.composite
def matchers(draw: st.DrawFn) -> Matcher:
    op = draw(st.sampled_from(OPERATORS))
    value = draw(regex_values if op in ("=~", "!~") else plain_values)
    return Matcher(draw(names), op, value)


@given(st.lists(matchers(), max_size=4))
def test_str_round_trips(ms: list[Matcher]) -> None:
    for m in ms:
        assert parse_matchers(str(m)) == [m]
    text = "{" + ", ".join(str(m) for m in ms) + "}"
    assert parse_matchers(text) == ms


@given(matchers(), label_sets)
def test_matches_never_raises_and_negation_is_exact(m: Matcher, labels: dict[str, str]) -> None:
    negated = Matcher(m.name, {"=": "!=", "!=": "=", "=~": "!~", "!~": "=~"}[m.op], m.value)
    assert m.matches(labels) is not negated.matches(labels)


@given(st.text(max_size=30))
def test_parse_raises_only_matcher_error(text: str) -> None:
    error: MatcherError | None = None
    try:
        parse_matchers(text)
    except MatcherError as exc:
        error = exc
    if error is not None:
        assert error.column is None or 1 <= error.column <= len(text) + 1


@given(names, plain_values)
def test_missing_label_is_empty_string(name: str, value: str) -> None:
    for op in OPERATORS:
        if op in ("=~", "!~"):
            continue
        m = Matcher(name, op, value)
        assert m.matches({}) == m.matches({name: ""})


# ------------------------------------------- differential test against Alertmanager

AM_BINARY = "/usr/bin/prometheus-alertmanager"
AM_LABEL_SETS = [
    {"alertname": "A", "foo": "bar"},
    {"alertname": "B", "foo": "foobar"},
    {"alertname": "C", "foo": "BaR", "sev": "critical"},
    {"alertname": "D", "sev": "page", "ns": "kube-system"},
    {"alertname": "E", "foo": "123", "ns": "shop"},
    {"alertname": "F", "foo": "a.b", "ns": "kube"},
    {"alertname": "G", "foo": 'x"y\\z'},
]
AM_MATCHERS = [
    'foo=~"bar"', 'foo!~"bar"', 'foo=""', 'foo!=""', 'foo!="bar"', 'foo=~".*"', 'foo=~".+"',
    'foo=~"(?i)bar"', 'foo=~"bar|123"', 'foo=~"\\\\d+"', 'foo=~"[[:digit:]]+"', 'foo=~"a\\\\.b"',
    'foo=~"\\\\Qa.b\\\\E"', 'foo=~".*ba.*"', 'ns!~"kube-.*"', 'ns=~"kube.*"',
    'sev=~"critical|page"', 'foo="x\\"y\\\\z"', "foo=bar", 'foo=~"[a-z]{3}"', 'foo=~"(?i:B)a.*"',
]


@pytest.mark.e2e
def test_matchers_agree_with_real_alertmanager(tmp_path: Any) -> None:
    """Post alerts to the real Alertmanager and filter them with each matcher there and here."""
    import json
    import shutil
    import socket
    import subprocess
    import time
    import urllib.parse
    import urllib.request

    if not shutil.which(AM_BINARY):
        pytest.skip("prometheus-alertmanager is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "am.yml"
    cfg.write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
    proc = subprocess.Popen(
        [AM_BINARY, f"--config.file={cfg}", f"--storage.path={tmp_path}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/v2/alerts"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        body = json.dumps([{"labels": ls} for ls in AM_LABEL_SETS]).encode()
        req = urllib.request.Request(base, body, {"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).close()
        results = {}
        for text in AM_MATCHERS:
            url = f"{base}?{urllib.parse.urlencode({'filter': text})}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                theirs = sorted(a["labels"]["alertname"] for a in json.load(resp))
            [m] = parse_matchers(text)
            ours = sorted(ls["alertname"] for ls in AM_LABEL_SETS if m.matches(ls))
            assert ours == theirs, text
            results[text] = theirs
        assert results['foo=~"bar"'] == ["A"]              # the comparison is not vacuous
        assert results['foo!~"bar"'] == ["B", "C", "D", "E", "F", "G"]
    finally:
        proc.terminate()
        proc.wait(10)
