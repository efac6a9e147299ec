"""The evidence reaches humans: at escalation the Slack thread gets the graph (a PNG,
through files_upload_v2's three calls) and the logs of the crash-looping pods
(redacted), and so does the Jira ticket (attachments); at recovery the graph again.
Through the whole daemon, with the real slack_sdk and jira clients against the fakes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from remediator.clock import FakeClock
from remediator.ports.graphs import HEIGHT, WIDTH
from remediator.simulator.logs import PANIC, SECRETS

from .harness import Stack, alert
from .test_incident import LADDER_PB, escalated, resolved

pytestmark = pytest.mark.timeout(60)
# Slack's and Jira's pacing is in real seconds: not what this test is about
FAST = {"notify": {"console": False, "slack_rate": 100.0, "slack_burst": 100.0,
                   "jira_rate": 100.0}}


def _png(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


async def test_graphs_and_logs_in_the_thread_and_the_ticket(stack: Stack) -> None:
    # the target crash-loops: its image is bad
    stack.sim.controller.bad_images.add("example/api:1.2.0")
    assert isinstance(stack.sim.clock, FakeClock)
    await stack.sim.clock.advance(35)
    stack.sim.controller.tick()
    await stack.start(LADDER_PB, settings=FAST)
    await stack.post([alert()])
    await escalated(stack)
    [root] = stack.slack.roots("#ops-alerts")
    # the thread says in words what verification saw
    replies = [m.text for m in stack.slack.replies(root.channel, root.ts)]
    assert any('verify: scaled_ok{deployment="api"} no series (needs a sample; held 0s) '
               "— not verified after 2m" in r for r in replies), replies
    files = stack.slack.thread_files(root.channel, root.ts)
    pngs = [f for f in files if f.filename.endswith(".png")]
    logs = [f for f in files if f.filename.endswith("-logs.txt")]
    assert len(pngs) == 1
    assert _png(pngs[0].data) == (WIDTH, HEIGHT)
    assert pngs[0].title.startswith("verification of step 2")
    assert len(logs) == 1
    text = logs[0].data.decode()
    assert text.count(PANIC) == 6                  # 3 pods, current and previous
    assert "(previous)" in text
    assert "events of pod prod/api-" in text
    assert not any(secret in f.data.decode() for f in logs for secret in SECRETS)
    # files_upload_v2's three steps, in order
    names = [m for m, _ in stack.slack.calls if m.startswith("files.")]
    assert names[:2] == ["files.getUploadURLExternal", "files.completeUploadExternal"]

    [ticket] = stack.jira.issues.values()
    attached = {a.filename: a for a in ticket.attachments}
    assert {f.filename for f in files} <= set(attached)
    assert _png(attached[pngs[0].filename].data) == (WIDTH, HEIGHT)
    assert PANIC in attached[logs[0].filename].data.decode()

    await resolved(stack)
    files = stack.slack.thread_files(root.channel, root.ts)
    assert len([f for f in files if f.filename.endswith(".png")]) == 2    # at recovery too
    assert len([a for a in ticket.attachments if a.filename.endswith(".png")]) == 2

    # a restart and the same webhooks again: nothing is shared twice
    before = (len(stack.slack.files), len(ticket.attachments))
    await stack.restart(LADDER_PB, settings=FAST)
    await stack.post([alert("resolved")])
    await stack.settle()
    assert (len(stack.slack.files), len(ticket.attachments)) == before
