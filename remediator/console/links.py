"""Links from an incident page to the systems that hold the rest of its story.

* Jira: the ticket the ``jira.incident`` action opened (``context["jira"] = {"key",
  "url"}``); without a ``url`` there, ``jira.url`` + ``/browse/KEY`` (as the adapter
  builds it).
* Slack: the incident's thread, from the root message the Slack sink recorded in its
  ``SinkState`` (channel id and ``ts``), as a permalink on ``slack.workspace_url``:
  ``https://acme.slack.com/archives/C123/p1712345678123456`` (the ``ts`` without its
  dot, as Slack builds permalinks). An incident in a storm links to the storm's one
  message instead.
* Alertmanager: its UI's new-silence form, prefilled with exact equality matchers of
  one alert's labels (``#/silences/new?filter={a="b",…}``): never wider than that alert.
  On ``alertmanager_external_url`` (the address a browser reaches), else
  ``alertmanager_url``.

Each link exists only when its data and its base URL do; only http(s) URLs are made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from remediator.ports.chat import SLACK_ROOT_CHANNEL, SLACK_ROOT_TS, SLACK_SINK
from remediator.settings import Settings

_TS = re.compile(r"^\d+\.\d+$")
_CHANNEL = re.compile(r"^[A-Za-z0-9]+$")
_JIRA_KEY = re.compile(r"^[A-Z][A-Z0-9_]*-\d+$")


def _http(url: str | None) -> str | None:
    text = (url or "").strip()
    return text.rstrip("/") if text.startswith(("http://", "https://")) else None


@dataclass(frozen=True)
class LinkConfig:
    """Base URLs of the outside systems, as a browser reaches them."""

    jira_url: str | None = None
    slack_workspace_url: str | None = None
    alertmanager_url: str | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> LinkConfig:
        return cls(jira_url=s.jira.url, slack_workspace_url=s.slack.workspace_url,
                   alertmanager_url=s.alertmanager_external_url or s.alertmanager_url)


@dataclass(frozen=True)
class Link:
    label: str
    url: str


def jira_link(context: Mapping[str, Any], jira_url: str | None) -> Link | None:
    jira = context.get("jira")
    if not isinstance(jira, Mapping) or not jira.get("key"):
        return None
    key = str(jira["key"])
    url = _http(str(jira.get("url") or ""))
    if url is None and (base := _http(jira_url)) and _JIRA_KEY.match(key):
        url = f"{base}/browse/{quote(key)}"
    return Link(f"Jira {key}", url) if url else None


def slack_permalink(workspace_url: str | None, channel: str | None,
                    ts: str | None) -> str | None:
    """``https://WORKSPACE.slack.com/archives/CHANNEL/pTSWITHOUTDOT``, or None."""
    base = _http(workspace_url)
    if not (base and channel and ts and _CHANNEL.match(channel) and _TS.match(ts)):
        return None
    return f"{base}/archives/{channel}/p{ts.replace('.', '')}"


def _matcher_value(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def silence_url(alertmanager_url: str | None, labels: Mapping[str, str]) -> str | None:
    """Alertmanager's new-silence form with one ``name="value"`` matcher per label."""
    base = _http(alertmanager_url)
    if base is None or not labels:
        return None
    matchers = ",".join(f"{name}={_matcher_value(str(value))}"
                        for name, value in sorted(labels.items()))
    return f"{base}/#/silences/new?filter={quote('{' + matchers + '}', safe='')}"


class Links:
    """The links of one incident page (reads the Slack sink's state from the store)."""

    def __init__(self, config: LinkConfig, store: Any) -> None:
        self.config, self.store = config, store

    async def slack(self, incident_id: str, context: Mapping[str, Any]) -> Link | None:
        if _http(self.config.slack_workspace_url) is None:
            return None
        storm = context.get("storm")
        if isinstance(storm, Mapping) and storm.get("id"):
            key = f"storm:{storm['id']}"
            channel = await self.store.sink_get(key, f"{SLACK_SINK}:slack.storm.channel")
            ts = await self.store.sink_get(key, f"{SLACK_SINK}:slack.storm.ts")
            label = "Slack storm message"
        else:
            channel = await self.store.sink_get(incident_id, f"{SLACK_SINK}:{SLACK_ROOT_CHANNEL}")
            ts = await self.store.sink_get(incident_id, f"{SLACK_SINK}:{SLACK_ROOT_TS}")
            label = "Slack thread"
        url = slack_permalink(self.config.slack_workspace_url, channel, ts)
        return Link(label, url) if url else None

    async def of(self, incident_id: str, context: Mapping[str, Any],
                 alerts: Sequence[Mapping[str, str]] = ()) -> list[Link]:
        """Jira, Slack, and the silence form (of the one alert; with several, the
        per-alert links in the page's alert list, ``#alerts``)."""
        found = [jira_link(context, self.config.jira_url),
                 await self.slack(incident_id, context)]
        if len(alerts) == 1 and (url := self.silence(alerts[0])):
            found.append(Link("Silence in Alertmanager", url))
        elif alerts and _http(self.config.alertmanager_url):
            found.append(Link("Silence in Alertmanager (per alert)", "#alerts"))
        return [link for link in found if link is not None]

    def silence(self, labels: Mapping[str, str]) -> str | None:
        return silence_url(self.config.alertmanager_url, labels)
