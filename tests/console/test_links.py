"""The incident page's links to Jira, the Slack thread and Alertmanager's silence form:
each only when its data and base URL exist, escaped, never wider than one alert."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, unquote, urlsplit

from remediator.console.links import LinkConfig, silence_url, slack_permalink

from .conftest import T0, VIEWER, Make

LABELS = {"alertname": "HighErrorRate", "namespace": "prod", "deployment": "api"}
CONFIGURED = LinkConfig(jira_url="https://acme.atlassian.net",
                        slack_workspace_url="https://acme.slack.com/",
                        alertmanager_url="http://am.example:9093")
HREF = re.compile(r'href="([^"]+)"')


def hrefs(page: str) -> list[str]:
    return [html.unescape(h) for h in HREF.findall(page)]


def silence_filter(url: str) -> str:
    fragment = urlsplit(url).fragment                 # /silences/new?filter=...
    path, _, query = fragment.partition("?")
    assert path == "/silences/new"
    [value] = parse_qs(query)["filter"]
    return value


async def page_of(make_console: Make, links: LinkConfig | None,
                  labels: dict[str, str] = LABELS) -> tuple[str, str, Make]:
    c = await make_console(links=links)
    incident = await c.incident(labels)
    await c.login(VIEWER)
    return incident, await (await c.client.get(f"/incidents/{incident}")).text(), c


async def test_no_links_without_data_or_base_urls(make_console: Make) -> None:
    _, page, _ = await page_of(make_console, None)
    assert "<dt>Links</dt>" not in page
    assert "silence in Alertmanager" not in page
    # configured, but no ticket and no thread yet: only the silence form
    _, page, _ = await page_of(make_console, CONFIGURED)
    assert "Jira" not in page
    assert "Slack thread" not in page
    assert "Silence in Alertmanager" in page


async def test_jira_slack_and_silence_links(make_console: Make) -> None:
    c = await make_console(links=CONFIGURED)
    incident = await c.incident(LABELS)
    await c.store.journal(incident, T0, context={"jira": {"key": "OPS-42", "label": "x"}})
    await c.store.sink_set(incident, "slack:slack.channel", "C0123ABC")
    await c.store.sink_set(incident, "slack:slack.root_ts", "1712345678.123456")
    await c.login(VIEWER)
    page = await (await c.client.get(f"/incidents/{incident}")).text()
    links = hrefs(page)
    assert "https://acme.atlassian.net/browse/OPS-42" in links
    assert "https://acme.slack.com/archives/C0123ABC/p1712345678123456" in links
    [mute] = {h for h in links if "#/silences/new" in h}      # the head's and the alert's
    assert mute.startswith("http://am.example:9093/#/silences/new?filter=")
    assert silence_filter(mute) == ('{alertname="HighErrorRate",deployment="api",'
                                    'namespace="prod"}')
    # the ticket's own URL (as the jira.incident action records it) wins
    await c.store.journal(incident, T0, context={"jira": {
        "key": "OPS-42", "url": "https://jira.internal/browse/OPS-42"}})
    page = await (await c.client.get(f"/incidents/{incident}")).text()
    assert "https://jira.internal/browse/OPS-42" in hrefs(page)


async def test_storm_incidents_link_to_the_storm_message(make_console: Make) -> None:
    c = await make_console(links=CONFIGURED)
    incident = await c.incident(LABELS)
    await c.store.journal(incident, T0, context={"storm": {"id": "waits-1"}})
    await c.store.sink_set("storm:waits-1", "slack:slack.storm.channel", "C0STORM")
    await c.store.sink_set("storm:waits-1", "slack:slack.storm.ts", "1712345678.000100")
    await c.login(VIEWER)
    page = await (await c.client.get(f"/incidents/{incident}")).text()
    assert "https://acme.slack.com/archives/C0STORM/p1712345678000100" in hrefs(page)
    assert "Slack storm message" in page


async def test_hostile_labels_and_context_are_escaped(make_console: Make) -> None:
    labels = {**LABELS, "deployment": 'a"b\\c</a><script>x</script>'}
    c = await make_console(links=CONFIGURED)
    incident = await c.incident(labels)
    await c.store.journal(incident, T0, context={"jira": {
        "key": "OPS-1", "url": "javascript:alert(1)"}})     # not http(s): no link
    await c.store.sink_set(incident, "slack:slack.channel", "C1/../../x")
    await c.store.sink_set(incident, "slack:slack.root_ts", "1.2")
    await c.login(VIEWER)
    page = await (await c.client.get(f"/incidents/{incident}")).text()
    assert "<script>x</script>" not in page
    assert "javascript:" not in page
    assert "slack.com" not in page                          # a bad channel id: no link
    [mute] = {h for h in hrefs(page) if "#/silences/new" in h}
    assert silence_filter(mute) == ('{alertname="HighErrorRate",'
                                    'deployment="a\\"b\\\\c</a><script>x</script>",'
                                    'namespace="prod"}')


async def test_several_alerts_get_one_silence_link_each(make_console: Make) -> None:
    c = await make_console(links=CONFIGURED)
    first = await c.incident({**LABELS, "pod": "api-1"}, n=0, key="waits/prod/api")
    second = await c.incident({**LABELS, "pod": "api-2"}, n=1, key="waits/prod/api")
    assert first == second                                   # one incident, two alerts
    await c.login(VIEWER)
    page = await (await c.client.get(f"/incidents/{first}")).text()
    mutes = sorted(silence_filter(h) for h in hrefs(page) if "#/silences/new" in h)
    assert [m.split("pod=")[1] for m in mutes] == ['"api-1"}', '"api-2"}']
    assert 'href="#alerts"' in page


def test_url_builders() -> None:
    assert slack_permalink("https://x.slack.com", "C1", "1.5") == \
        "https://x.slack.com/archives/C1/p15"
    assert slack_permalink(None, "C1", "1.5") is None
    assert slack_permalink("https://x.slack.com", "C1", "abc") is None
    assert silence_url("ftp://am", {"a": "b"}) is None
    assert silence_url("http://am/", {}) is None
    url = silence_url("http://am/", {"a": "b\nc"})
    assert url is not None
    assert unquote(url.split("filter=")[1]) == '{a="b\\nc"}'
