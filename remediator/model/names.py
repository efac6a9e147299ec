"""Kubernetes name rules. Alert labels are data from outside: before a rendered
value reaches an API path or a selector it must pass one of these checks."""

from __future__ import annotations

import re

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                         r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def check_dns1123_label(value: str, what: str = "name") -> str:
    """A namespace (or Service) name: lowercase alphanumerics and '-', at most 63."""
    if not isinstance(value, str) or len(value) > 63 or not _DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid DNS-1123 label (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)")
    return value


def check_dns1123_subdomain(value: str, what: str = "name") -> str:
    """An object name (Deployment, Pod, …): DNS-1123 subdomain, at most 253."""
    if not isinstance(value, str) or len(value) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid DNS-1123 subdomain (lowercase letters, digits, '-' "
            "and '.', starting and ending with a letter or digit, at most 253 characters)")
    return value


def check_label_value(value: str, what: str = "label value") -> str:
    if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a valid Kubernetes label value")
    return value


def check_label_name(value: str, what: str = "label name") -> str:
    if not isinstance(value, str) or len(value) > 317 or not _LABEL_NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a valid Kubernetes label name")
    return value
