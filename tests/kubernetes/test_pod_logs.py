"""Pod logs and an object's events, through the real client (kubernetes_asyncio) against
the simulator's ``pods/{name}/log`` (kubectl's contract: container, previous, tailLines,
limitBytes; plain text)."""

from __future__ import annotations

import re

import aiohttp
import pytest

from remediator.adapters.kubernetes import KubernetesCluster
from remediator.clock import FakeClock
from remediator.simulator import Simulator
from remediator.simulator.logs import PANIC, SECRETS
from remediator.simulator.seed import Seed
from remediator.simulator.seed import load as load_seed
from remediator.simulator.store import resource


@pytest.fixture
def seed() -> Seed:              # the conftest's fixture, overridden for this module
    return load_seed("bad_images: ['img:bad']\ndeployments:\n"
                     "- {namespace: shop, name: cart, replicas: 2, image: 'img:bad',"
                     " history: ['img:1']}\n"
                     "- {namespace: shop, name: web, replicas: 1, image: 'img:1'}\n")


def _pods(sim: Simulator, app: str) -> list[str]:
    pods = resource("", "pods")
    assert pods is not None
    return sorted(p["metadata"]["name"] for p in sim.store.list(pods, "shop",
                                                                labels=f"app={app}"))


def _instance(text: str) -> int:
    match = re.search(r"instance (\d+)", text)
    assert match is not None
    return int(match.group(1))


async def test_a_crash_looping_pod_logs_a_panic_now_and_before(
        sim: Simulator, cluster: KubernetesCluster, clock: FakeClock) -> None:
    await clock.advance(30)
    sim.controller.tick()
    pod = _pods(sim, "cart")[0]
    now = await cluster.read_pod_log("shop", pod)
    assert now is not None
    assert PANIC in now
    before = await cluster.read_pod_log("shop", pod, previous=True)
    assert before is not None
    assert PANIC in before
    assert _instance(now) == _instance(before) + 1 > 1         # restarted every 10s
    tail = await cluster.read_pod_log("shop", pod, tail_lines=2)
    assert tail == "main.main()\n\t/app/main.go:42 +0x1d\n"
    head = await cluster.read_pod_log("shop", pod, limit_bytes=10)
    assert head == now[:10]
    assert any(s in now for s in SECRETS)                       # for the redaction tests
    # the same call twice: the same text (deterministic)
    assert await cluster.read_pod_log("shop", pod) == now


async def test_a_healthy_pod_has_no_previous_container(
        sim: Simulator, cluster: KubernetesCluster, clock: FakeClock) -> None:
    await clock.advance(60)
    sim.controller.tick()
    pod = _pods(sim, "web")[0]
    text = await cluster.read_pod_log("shop", pod, tail_lines=3)
    assert text is not None
    assert text.count("\n") == 3
    assert "GET /healthz 200" in text
    assert PANIC not in text
    assert await cluster.read_pod_log("shop", pod, previous=True) is None   # 400: none
    assert await cluster.read_pod_log("shop", "gone") is None                # 404


async def test_the_wire_contract(sim: Simulator) -> None:
    """What the kubelet answers: 400 for a wrong container, a bad tailLines, a previous
    container that does not exist; plain text."""
    server, token = sim.url, sim.token
    pod = _pods(sim, "web")[0]
    url = f"{server}/api/v1/namespaces/shop/pods/{pod}/log"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.get(url, params={"tailLines": "1"}) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/plain"
        for params, needle in (({"container": "nope"}, "is not valid for pod"),
                               ({"tailLines": "x"}, "tailLines"),
                               ({"limitBytes": "0"}, "limitBytes"),
                               ({"previous": "true"}, "previous terminated container")):
            async with http.get(url, params=params) as resp:
                assert resp.status == 400, params
                assert needle in (await resp.json())["message"]


async def test_the_events_of_one_object(sim: Simulator, cluster: KubernetesCluster,
                                        clock: FakeClock) -> None:
    await clock.advance(30)
    sim.controller.tick()
    pod = _pods(sim, "cart")[0]
    lines = await cluster.object_events("shop", "Pod", pod)
    assert lines
    assert all(f"Pod/{pod}" in line for line in lines)
    assert any("BackOff" in line for line in lines)
    assert await cluster.object_events("shop", "Pod", "gone") == []
