"""The adapter's lean use of kubernetes_asyncio: lazy imports (``k8s_lazy``) and raw
JSON bodies (``_preload_content=False``), with the errors mapped as before."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from remediator.adapters import k8s_lazy
from remediator.adapters.kubernetes import KubernetesCluster, _parse
from remediator.errors import PermanentError, TemporaryError
from remediator.model.incident import TargetRef
from remediator.simulator import Simulator
from remediator.simulator.controller import POD

API = TargetRef(kind="Deployment", namespace="prod", name="api")
ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> Any:
    """Run ``code`` in a fresh interpreter (no module imported by other tests); the
    JSON it prints on its last line."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_adapter_imports_no_model_and_few_modules() -> None:
    counts = run_python("""
        import asyncio, json, sys, tempfile
        from remediator.adapters.kubernetes import KubernetesCluster
        from remediator.clock import FakeClock
        from remediator.errors import PermanentError
        from remediator.model.incident import TargetRef
        from remediator.simulator import Simulator

        async def main():
            sim = Simulator(None, clock=FakeClock())
            await sim.start()
            try:
                path = tempfile.mkdtemp() + "/kubeconfig"
                c = await KubernetesCluster.connect(kubeconfig=sim.write_kubeconfig(path),
                                                    request_timeout=5)
                api = TargetRef(kind="Deployment", namespace="prod", name="api")
                await c.read_workload(api)
                await c.describe(api)
                await c.list_hpas("prod")
                await c.patch_scale(api, await c.read_scale(api))
                await c.delete_pod("prod", "no-such-pod")
                try:
                    await c.read_workload(TargetRef(kind="Deployment", namespace="prod",
                                                    name="nope"))
                except PermanentError:
                    pass
                await c.close()
            finally:
                await sim.stop()
            mods = [m for m in sys.modules if m.startswith("kubernetes_asyncio")]
            models = [m for m in mods if m.startswith("kubernetes_asyncio.client.models.")]
            apis = [m for m in mods if m.startswith("kubernetes_asyncio.client.api.")]
            print(json.dumps({"all": len(mods), "models": len(models), "apis": len(apis)}))

        asyncio.run(main())
    """)
    # A plain ``import kubernetes_asyncio`` loads ~860 of them (~770 models, 66 APIs).
    assert counts["models"] == 0
    assert counts["apis"] == 0              # the paths are the adapter's (ApiClient.call_api)
    assert counts["all"] < 40


def test_every_public_name_resolves_to_what_the_plain_import_gives() -> None:
    probe = """
        import json, sys
        {setup}
        import kubernetes_asyncio, kubernetes_asyncio.client
        from kubernetes_asyncio.client import api, models
        packages = (kubernetes_asyncio, kubernetes_asyncio.client, api, models)
        names = {names}
        if names is None:          # the plain import: every name its packages bind
            names = {{p.__name__: sorted(n for n in dir(p) if not n.startswith("__")
                                        or n in ("__all__", "__version__", "__project__"))
                      for p in packages}}
        def identity(value):
            if isinstance(value, type(sys)):
                return value.__name__
            if isinstance(value, type):
                return f"{{value.__module__}}.{{value.__qualname__}}"
            return repr(value)
        out = {{f"{{p.__name__}}.{{n}}": identity(getattr(p, n))
               for p in packages for n in names[p.__name__]}}
        ns = {{}}
        exec("from kubernetes_asyncio.client import *", ns)
        print(json.dumps({{"names": names, "values": out,
                          "star": sorted(k for k in ns if not k.startswith("__"))}}))
    """
    plain = run_python(probe.format(setup="pass", names=None))
    lazy = run_python(probe.format(
        setup="from remediator.adapters import k8s_lazy; assert k8s_lazy.install()",
        names=repr(plain["names"])))
    assert len(plain["values"]) > 2500            # models and API modules as well as classes
    assert len(plain["star"]) > 800
    assert lazy["values"] == plain["values"]
    assert lazy["star"] == plain["star"]


def test_install_is_idempotent_and_leaves_a_plain_import_alone() -> None:
    assert k8s_lazy.install() is k8s_lazy.install()
    result = run_python("""
        import json, sys
        import kubernetes_asyncio.client
        from remediator.adapters import k8s_lazy
        print(json.dumps({"installed": k8s_lazy.install(),
                          "lazy": k8s_lazy.is_lazy(kubernetes_asyncio.client)}))
    """)
    assert result == {"installed": False, "lazy": False}


def test_an_unexpected_layout_falls_back_to_the_plain_import() -> None:
    result = run_python("""
        import json, sys
        from remediator.adapters import k8s_lazy
        def unexpected(name, directory):
            raise k8s_lazy.LayoutError(f"{directory}: unexpected If")
        k8s_lazy._read_plan = unexpected
        from remediator.adapters.kubernetes import KubernetesCluster
        import kubernetes_asyncio.client
        models = [m for m in sys.modules if m.startswith("kubernetes_asyncio.client.models.")]
        print(json.dumps({"lazy": k8s_lazy.is_lazy(kubernetes_asyncio.client),
                          "models": len(models)}))
    """)
    assert result["lazy"] is False
    assert result["models"] > 500


def test_the_plan_refuses_what_it_does_not_reproduce(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""doc"""\nfrom __future__ import annotations\n'
                                     "from pkg.a import B as C\nimport pkg.d as d\n"
                                     "from pkg import e\n__version__ = '1'\n")
    plan = k8s_lazy._read_plan("pkg", pkg)
    assert plan.lazy == {"annotations": ("__future__", "annotations"), "C": ("pkg.a", "B"),
                         "d": ("pkg.d", None), "e": ("pkg.e", None)}
    assert plan.constants == {"__doc__": "doc", "__version__": "1"}
    for body in ("if True:\n    x = 1\n", "from pkg.a import *\n", "x = f()\n",
                 "def f():\n    pass\n", "import pkg.a\n"):
        (pkg / "__init__.py").write_text(body)
        with pytest.raises(k8s_lazy.LayoutError):
            k8s_lazy._read_plan("pkg", pkg)
    (pkg / "__init__.py").write_text("from (\n")
    with pytest.raises(k8s_lazy.LayoutError):
        k8s_lazy._read_plan("pkg", pkg)


def test_null_fields_are_left_out_as_the_models_left_them_out() -> None:
    body = (b'{"metadata": {"creationTimestamp": null, "labels": {"app": "api"}},'
            b' "items": [null, {"a": null, "b": [1, null]}], "t": "2024-01-01T00:00:00Z"}')
    assert _parse(body) == {"metadata": {"labels": {"app": "api"}},
                            "items": [None, {"b": [1, None]}], "t": "2024-01-01T00:00:00Z"}
    assert _parse(b'{"a": "nullable"}') == {"a": "nullable"}


async def test_objects_are_the_json_the_api_sent(cluster: KubernetesCluster) -> None:
    d = await cluster.read_workload(API)
    assert (d["apiVersion"], d["kind"]) == ("apps/v1", "Deployment")
    assert d["metadata"]["creationTimestamp"].endswith("Z")       # the server's string
    assert isinstance(d["spec"]["template"]["spec"]["containers"], list)
    pods = await cluster.list_pods("prod", "app=api")
    assert pods
    assert all(p["metadata"]["labels"]["app"] == "api" for p in pods)
    assert await cluster.read_scale(API) == d["spec"]["replicas"]


async def test_delete_pod_sends_delete_options_and_tells_gone_pods(
        sim: Simulator, cluster: KubernetesCluster) -> None:
    pod = sim.store.list(POD, "prod", labels="app=api")[0]["metadata"]
    sim.control.calls.clear()
    assert not await cluster.delete_pod("prod", pod["name"], uid="another-uid")
    assert await cluster.delete_pod("prod", pod["name"], uid=pod["uid"], grace_period_seconds=0)
    assert not await cluster.delete_pod("prod", pod["name"])
    bodies = [c["body"] for c in sim.control.writes()]
    assert bodies == [{"preconditions": {"uid": "another-uid"}},
                      {"preconditions": {"uid": pod["uid"]}, "gracePeriodSeconds": 0}, {}]
    sim.control.add_fault(status=500, method="DELETE")
    with pytest.raises(TemporaryError, match=rf"delete Pod prod/{pod['name']}: HTTP 500"):
        await cluster.delete_pod("prod", pod["name"])


async def test_missing_objects_read_as_none(cluster: KubernetesCluster) -> None:
    assert await cluster.read_pod("prod", "nope") is None
    assert await cluster.read_replicaset("prod", "nope") is None


class FakeResponse:
    def __init__(self, status: int, body: bytes | Exception, reason: str = "OK",
                 headers: dict[str, str] | None = None) -> None:
        self.status, self.reason, self.headers = status, reason, headers or {}
        self.body, self.released = body, 0

    async def read(self) -> bytes:
        if isinstance(self.body, Exception):
            raise self.body
        return self.body

    def release(self) -> None:
        self.released += 1


def fake_method(response: FakeResponse, seen: dict[str, Any]) -> Any:
    async def method(*args: Any, **kwargs: Any) -> FakeResponse:
        seen.update(kwargs)
        return response
    return method


@pytest.mark.parametrize(("response", "error", "match"), [
    (FakeResponse(200, b'{"kind": "Deployment"}'), None, None),
    (FakeResponse(404, b'{"message": "deployments.apps \\"x\\" not found"}', "Not Found"),
     PermanentError, r'^get Deployment shop/x: HTTP 404 Not Found: deployments.apps "x" not '
                     r"found$"),
    (FakeResponse(429, b"{}", "Too Many Requests", {"Retry-After": "7"}), TemporaryError,
     r"HTTP 429 Too Many Requests: Too Many Requests"),
    (FakeResponse(502, b"<html>bad gateway</html>", "Bad Gateway"), TemporaryError,
     r"HTTP 502 Bad Gateway: <html>bad gateway</html>"),
    (FakeResponse(200, TimeoutError()), TemporaryError, r"no answer within 3s"),
    (FakeResponse(200, b"<html>not the API</html>"), PermanentError, r"not JSON"),
])
async def test_every_response_is_released_and_mapped(
        response: FakeResponse, error: type[Exception] | None, match: str | None) -> None:
    cluster = KubernetesCluster.__new__(KubernetesCluster)
    cluster.timeout = 3.0
    seen: dict[str, Any] = {}
    call = cluster.call("get Deployment shop/x", fake_method(response, seen), "x", "shop")
    if error is None:
        assert await call == {"kind": "Deployment"}
    else:
        with pytest.raises(error, match=match) as info:
            await call
        if response.status == 429:
            assert info.value.delay == 7.0                  # type: ignore[attr-defined]
    assert response.released == 1
    assert seen == {"_preload_content": False, "_request_timeout": 3.0}


async def test_requests_take_no_thread_hop(cluster: KubernetesCluster,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp's per-request look at the environment (proxy variables, ~/.netrc) runs in
    threads; with no proxy variable for the API server the session skips it."""
    hops: list[Any] = []
    loop = asyncio.get_running_loop()
    real = loop.run_in_executor

    def counted(*args: Any) -> Any:
        hops.append(args)
        return real(*args)

    monkeypatch.setattr(loop, "run_in_executor", counted)
    for _ in range(3):
        await cluster.read_workload(API)
    await cluster.list_pods("prod", "app=api")
    assert hops == []


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy",
                "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")        # the discard port: refused
    return monkeypatch


async def test_a_proxy_from_the_environment_is_still_used(proxy_env: pytest.MonkeyPatch,
                                                          kubeconfig: str) -> None:
    cluster = await KubernetesCluster.connect(kubeconfig=kubeconfig, request_timeout=2.0)
    try:
        with pytest.raises(TemporaryError, match="cannot reach the API server"):
            await cluster.read_workload(API)
    finally:
        await cluster.close()


async def test_no_proxy_is_still_honoured(proxy_env: pytest.MonkeyPatch, kubeconfig: str) -> None:
    proxy_env.setenv("no_proxy", "127.0.0.1,localhost")
    cluster = await KubernetesCluster.connect(kubeconfig=kubeconfig, request_timeout=2.0)
    try:
        assert (await cluster.read_workload(API))["metadata"]["name"] == "api"
        assert cluster.api_client.rest_client.pool_manager.trust_env is False
    finally:
        await cluster.close()


async def test_the_health_probe_reads_the_version_and_wants_a_2xx(
        cluster: KubernetesCluster, tmp_path: Path) -> None:
    from aiohttp import web

    from remediator.app import _cluster_probe

    probe = _cluster_probe(cluster, 2.0)
    assert probe is not None
    await probe()                                   # the simulator answers /version

    async def unhealthy(request: web.Request) -> web.Response:
        return web.json_response({"message": "etcd is down"}, status=503)

    app = web.Application()
    app.router.add_get("/version", unhealthy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    kubeconfig = tmp_path / "unhealthy"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    down = await KubernetesCluster.connect(kubeconfig=str(kubeconfig), request_timeout=2.0)
    try:
        probe = _cluster_probe(down, 2.0)
        assert probe is not None
        with pytest.raises(TemporaryError, match=r"^GET /version: HTTP 503"):
            await probe()
        await runner.cleanup()                      # nobody listens there any more
        with pytest.raises(aiohttp.ClientError):
            await probe()
    finally:
        await down.close()
        await runner.cleanup()
