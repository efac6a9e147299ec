"""Alertmanager's webhook payload (version 4) as pure data, and how to read it.

Holds ``Alert`` and ``WebhookPayload`` (pydantic models, unknown keys ignored),
``parse_webhook`` for the server, ``parse_alerts_document`` for the dry-run CLI,
and ``fingerprint``, which computes exactly the fingerprint Alertmanager puts in
each alert (Prometheus' ``model.LabelSet.Fingerprint``). Every input problem is a
``WebhookError`` whose message names the field path, e.g.
``alerts[2].startsAt: invalid datetime "yesterday"``.

JSON is read strictly (RFC 8259 plus I-JSON's interoperability rules): a key twice in
one object, an integer outside 64 bits or a ``NaN``/``Infinity`` literal is a
``WebhookError`` (Go's decoder in Alertmanager never writes them; last-key-wins hid a
duplicated ``"alerts"`` list, and a 5,000-digit number raised a bare ``ValueError``).
The hot path parses with ``jiter`` (duplicate keys caught in Rust) and validates the
dict with pydantic-core; anything it refuses, and any body with a run of 19 or more
digits, is re-read by the standard library with hooks that word each problem.

No I/O and no clock here: the caller supplies ``now`` where a default is needed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import jiter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_validator,
)

__all__ = [
    "ZERO_TIME",
    "Alert",
    "WebhookError",
    "WebhookPayload",
    "fingerprint",
    "format_time",
    "parse_alerts_document",
    "parse_time",
    "parse_webhook",
]

_M = TypeVar("_M", bound=BaseModel)

SUPPORTED_VERSION = "4"
#: Go's zero ``time.Time`` as Alertmanager marshals it: "no end time" on a firing alert.
ZERO_TIME = "0001-01-01T00:00:00Z"

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))")


class WebhookError(ValueError):
    """A webhook body (or dry-run alert document) that cannot be read.

    ``problems`` lists every problem as ``path: reason``; ``str()`` joins them.
    """

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems: tuple[str, ...] = (
            (problems,) if isinstance(problems, str) else tuple(problems))
        super().__init__("; ".join(self.problems))


# ---------------------------------------------------------------- fingerprints

_FNV64_OFFSET = 14695981039346656037
_FNV64_PRIME = 1099511628211
_MASK64 = (1 << 64) - 1
_SEPARATOR = 0xFF  # model.SeparatorByte: never valid in UTF-8, so no collisions by concatenation


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: 16 lowercase hex digits.

    Exactly Prometheus' ``model.LabelSet.Fingerprint``: FNV-1a 64 over each
    label, in byte order of the names, as ``name 0xff value 0xff``. The empty set
    hashes to the FNV offset basis (``cbf29ce484222325``).
    """
    h = _FNV64_OFFSET
    for name in sorted(labels, key=lambda n: n.encode()):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV64_PRIME) & _MASK64
            h = ((h ^ _SEPARATOR) * _FNV64_PRIME) & _MASK64
    return f"{h:016x}"


# ----------------------------------------------------------------- timestamps

@functools.lru_cache(maxsize=4096)
def parse_time(value: str) -> datetime | None:
    """An RFC 3339 timestamp as Alertmanager writes it → aware UTC datetime.

    Nanoseconds are truncated to microseconds. Go's zero time becomes ``None``.
    Raises ``ValueError('invalid datetime "…"')`` for anything else.
    """
    text = value.strip() if isinstance(value, str) else ""
    m = _RFC3339.fullmatch(text) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"invalid datetime {_show(value)} (expected RFC 3339, "
                         "e.g. 2026-08-01T10:00:00Z)")
    # The C parser computes the same value 30x faster for what the regex accepted; what it
    # refuses (leap second, lowercase t/z, non-ASCII digits) or year 1 (the zero time,
    # decided below) takes the long way.
    with contextlib.suppress(ValueError):
        fast = datetime.fromisoformat(text)
        if fast.year != 1:
            return fast if fast.tzinfo is UTC else fast.astimezone(UTC)
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    fraction = (m.group(7) or "").strip("0")
    if (year, month, day, hour, minute, second) == (1, 1, 1, 0, 0, 0) and not fraction:
        return None                 # Go's zero time.Time: "not set"
    micros = int((m.group(7) or "").ljust(6, "0")[:6])
    if m.group(8):
        tz = UTC
    else:
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        tz = timezone(-offset if m.group(9) == "-" else offset)
    try:
        parsed = datetime(year, month, day, hour, minute, min(second, 59), micros, tzinfo=tz)
    except ValueError as exc:
        raise ValueError(f"invalid datetime {_show(value)} ({exc})") from None
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC with milliseconds or microseconds, ``Z`` suffix."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def _time(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetime must carry a timezone")
        return value.astimezone(UTC)
    if not isinstance(value, str):
        raise ValueError(f"invalid datetime {_show(value)} (expected an RFC 3339 string)")
    return parse_time(value)


def _required_time(value: Any) -> Any:
    parsed = _time(value)
    if parsed is None:
        raise ValueError(f"must be a real time, got the zero time {_show(value)}")
    return parsed


def _labels(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object of label names to values, got {_kind(value)}")
    for name, val in value.items():
        if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
            raise ValueError(f"invalid label name {_show(name)} "
                             "(must match [a-zA-Z_][a-zA-Z0-9_]*)")
        if not isinstance(val, str):
            raise ValueError(f"label {_show(name)} has a non-string value {_show(val)}")
    return dict(value)


Time = Annotated[datetime, BeforeValidator(_required_time)]
OptionalTime = Annotated[datetime | None, BeforeValidator(_time)]
# Label sets, annotations and fingerprints are checked by pydantic-core itself (no Python
# call per label: a third of the parse time of a webhook); ``_describe`` words its errors
# as ``_labels`` (used for hand-written dry-run alerts) does.
LabelName = Annotated[str, StringConstraints(strict=True, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")]
LabelSet = dict[LabelName, StrictStr]
Annotations = dict[StrictStr, StrictStr]
Fingerprint = Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9a-f]{16}$")]
_LABEL_FIELDS = {"labels": "label", "groupLabels": "label", "commonLabels": "label",
                 "annotations": "annotation", "commonAnnotations": "annotation"}


# --------------------------------------------------------------------- models

class Alert(BaseModel):
    """One alert of a webhook. ``endsAt`` is ``None`` while it fires with no known end."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["firing", "resolved"]
    labels: LabelSet
    annotations: Annotations = Field(default_factory=dict)
    startsAt: Time
    endsAt: OptionalTime = None
    generatorURL: str = ""
    fingerprint: Fingerprint

    @property
    def is_firing(self) -> bool:
        return self.status == "firing"

    @property
    def episode_key(self) -> tuple[str, str]:
        """``(fingerprint, startsAt)``: one firing episode of one label set."""
        return (self.fingerprint, format_time(self.startsAt))

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")


class WebhookPayload(BaseModel):
    """The body Alertmanager posts to a webhook receiver (version 4)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: str
    groupKey: str
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: LabelSet = Field(default_factory=dict)
    commonLabels: LabelSet = Field(default_factory=dict)
    commonAnnotations: Annotations = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert]

    @field_validator("version", mode="before")
    @classmethod
    def _check_version(cls, value: Any) -> Any:
        if value != SUPPORTED_VERSION:
            raise ValueError(f"unsupported webhook version {_show(value)} "
                             f"(remediator speaks version {SUPPORTED_VERSION})")
        return value


# ------------------------------------------------------------------- parsing

def parse_webhook(raw: bytes | str | Mapping[str, Any]) -> WebhookPayload:
    """Read one webhook body. Raises ``WebhookError`` naming each bad field."""
    if isinstance(raw, bytes | bytearray | str):
        # The common case, valid JSON: parsed by jiter (duplicate keys refused there),
        # validated by pydantic-core; anything refused goes through the slower path
        # below, which words the errors. A long digit run may be a too-large integer
        # (or just a long label value): the slower path decides.
        data = _fast_load(raw)
        if data is not None:
            with contextlib.suppress(ValidationError):
                return WebhookPayload.model_validate(data)
            if isinstance(data, Mapping):
                return _validate(WebhookPayload, data)
    data = _load(raw)
    if not isinstance(data, Mapping):
        raise WebhookError(f"webhook: expected a JSON object, got {_kind(data)}")
    return _validate(WebhookPayload, data)


# every digit → "0", every other byte → " ": a run of 19 zeros in the translated body is
# a run of digits long enough to exceed 64 bits (~1 µs per webhook)
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_LONG_DIGITS = b"0" * 19
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


def _fast_load(raw: bytes | bytearray | str) -> Any:
    """The JSON of ``raw``, or None when only the slow, wording path may decide."""
    body = raw.encode() if isinstance(raw, str) else bytes(raw)
    if _LONG_DIGITS in body.translate(_DIGITS_AS_ZERO):
        return None
    try:
        return jiter.from_json(body, allow_inf_nan=False, catch_duplicate_keys=True)
    except ValueError:
        return None


def parse_alerts_document(raw: bytes | str | Mapping[str, Any] | Sequence[Any],
                          *, now: datetime | None = None) -> list[Alert]:
    """Alerts for ``remediator dry-run --alert``: a whole webhook payload, one alert
    object, or a list of alert objects (Alertmanager API v2 "postable" alerts work).

    In a hand-written alert ``status`` defaults to firing (resolved when ``endsAt``
    is before ``now``), ``startsAt`` to ``now`` (required if ``now`` is None) and
    a missing ``fingerprint`` is computed from the labels. As Alertmanager's API
    does, empty-valued labels are dropped (a missing label matches as "" anyway).
    """
    data = _load(raw)
    if isinstance(data, Mapping) and "alerts" in data and "version" in data:
        return list(parse_webhook(data).alerts)
    if isinstance(data, Mapping):
        items: list[Any] = [data]
        prefixes = [""]
    elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
        items = list(data)
        prefixes = [f"[{i}]" for i in range(len(items))]
        if not items:
            raise WebhookError("alerts: the document holds no alert")
    else:
        raise WebhookError("alerts: expected a webhook payload, an alert object or a list of "
                           f"alert objects, got {_kind(data)}")
    alerts: list[Alert] = []
    problems: list[str] = []
    for prefix, item in zip(prefixes, items, strict=True):
        if not isinstance(item, Mapping):
            problems.append(f"{prefix or 'alert'}: expected an alert object, got {_kind(item)}")
            continue
        try:
            alerts.append(_validate(Alert, _complete_alert(item, now), prefix))
        except WebhookError as exc:
            problems.extend(exc.problems)
    if problems:
        raise WebhookError(problems)
    return alerts


def _complete_alert(item: Mapping[str, Any], now: datetime | None) -> dict[str, Any]:
    out = dict(item)
    if "startsAt" not in out and now is not None:
        out["startsAt"] = format_time(now)
    if "status" not in out:
        ends = out.get("endsAt")
        status = "firing"
        if ends is not None and now is not None:
            try:
                end = _time(ends)
            except ValueError:
                end = None          # reported by validation below
            if end is not None and end <= now.astimezone(UTC):
                status = "resolved"
        out["status"] = status
    if isinstance(out.get("labels"), Mapping):
        # Alertmanager's API drops empty-valued labels before it fingerprints an alert
        out["labels"] = {k: v for k, v in out["labels"].items() if v != ""}
    if "fingerprint" not in out and isinstance(out.get("labels"), Mapping):
        try:
            out["fingerprint"] = fingerprint(_labels(out["labels"]))
        except ValueError:
            out["fingerprint"] = "0" * 16       # the labels themselves are reported below
    return out


def _load(raw: bytes | str | Mapping[str, Any] | Sequence[Any]) -> Any:
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookError(f"body: not UTF-8 (byte {exc.start}: {exc.reason})") from None
    if isinstance(raw, str):
        try:
            return json.loads(raw, object_pairs_hook=_unique_keys, parse_int=_int64,
                              parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise WebhookError(f"body: malformed JSON at line {exc.lineno}, column {exc.colno} "
                               f"(char {exc.pos}): {exc.msg}") from None
        except _StrictJsonError as exc:
            raise WebhookError(f"body: {exc}") from None
        except RecursionError:
            raise WebhookError("body: JSON nested too deeply") from None
    return raw


class _StrictJsonError(ValueError):
    """Valid for Python's json module, refused here (the message says why)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _StrictJsonError(f"duplicate key {_show(key)} in an object "
                                       "(each key may appear only once)")
            seen.add(key)
    return out


def _int64(text: str) -> int:
    digits = text.lstrip("-")
    value = int(text) if len(digits) <= 19 else None
    if value is None or not _INT_MIN <= value <= _INT_MAX:
        shown = text if len(text) <= 24 else f"{text[:20]}... ({len(digits)} digits)"
        raise _StrictJsonError(f"integer {shown} is out of range (at most 64 bits, "
                               f"{_INT_MIN} to {_INT_MAX})")
    return value


def _no_constant(name: str) -> NoReturn:
    raise _StrictJsonError(f"{name} is not a JSON value")


def _validate(model: type[_M], data: Any, prefix: str = "") -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise WebhookError([_describe(err, prefix) for err in exc.errors()]) from None


def _describe(err: Any, prefix: str) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    reason = None
    if len(loc) >= 2 and loc[-1] == "[key]":            # a label name (a dict key)
        loc = loc[:-2]
        reason = (f"invalid label name {_show(err['input'])} "
                  "(must match [a-zA-Z_][a-zA-Z0-9_]*)")
    elif len(loc) >= 2 and loc[-2] in _LABEL_FIELDS and kind == "string_type":
        what, name = _LABEL_FIELDS[str(loc[-2])], loc[-1]
        loc = loc[:-1]
        reason = f"{what} {_show(name)} has a non-string value {_show(err['input'])}"
    elif loc and loc[-1] in _LABEL_FIELDS and kind == "dict_type":
        reason = (f"expected an object of {_LABEL_FIELDS[str(loc[-1])]} names to values, "
                  f"got {_kind(err['input'])}")
    elif loc and loc[-1] == "fingerprint" and kind in ("string_pattern_mismatch",
                                                        "string_type"):
        reason = f"invalid fingerprint {_show(err['input'])} (expected 16 hex digits)"
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    path = path or "webhook"
    if reason is not None:
        pass
    elif kind == "missing":
        reason = "required field is missing"
    elif kind == "value_error":
        reason = str(err["ctx"]["error"])
    elif kind == "literal_error":
        reason = f"must be {err['ctx']['expected']}, got {_show(err['input'])}"
    elif kind in ("model_type", "dict_type"):
        reason = f"expected an object, got {_kind(err['input'])}"
    elif kind == "list_type":
        reason = f"expected a list, got {_kind(err['input'])}"
    elif kind == "string_type":
        reason = f"expected a string, got {_show(err['input'])}"
    else:
        reason = f"{err['msg']}, got {_show(err['input'])}"
    return f"{path}: {reason}"


def _show(value: Any) -> str:
    """A value as it looked in the JSON, shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, Sequence):
        return "a list"
    return type(value).__name__
