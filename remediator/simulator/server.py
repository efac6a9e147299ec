"""``Simulator``: the store, controller, API, control endpoints and metrics, served by aiohttp.

    sim = Simulator(seed, clock=FakeClock())
    url = await sim.start()                  # "http://127.0.0.1:<port>"
    sim.write_kubeconfig(path)               # for kubernetes_asyncio and kubectl
    path = sim.write_temp_kubeconfig()       # or in a temporary directory of its own
    ...
    await sim.stop()                         # (which removes that directory)

The controller's tick loop runs on the injected clock: with ``SystemClock`` one
tick per wall-clock second, with ``FakeClock`` whenever a test advances time.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import shutil
import tempfile
from datetime import timedelta
from typing import Any

import yaml
from aiohttp import web

from remediator.clock import Clock, SystemClock
from remediator.simulator import objects as o
from remediator.simulator.api import KubeApi
from remediator.simulator.conditions import Conditions
from remediator.simulator.control import Control
from remediator.simulator.controller import DEPLOY, POD, RS, Controller
from remediator.simulator.metrics import Metrics
from remediator.simulator.seed import DEFAULT_SEED, Seed
from remediator.simulator.store import Store, by_kind


class Simulator:
    def __init__(self, seed: Seed | None = None, clock: Clock | None = None) -> None:
        self.seed = seed if seed is not None else DEFAULT_SEED
        self.clock: Clock = clock or SystemClock()
        self.token = self.seed.token
        self.store = Store(self.clock)
        self.controller = Controller(self.store, self.clock, set(self.seed.bad_images),
                                     nodes=self.seed.nodes)
        self.metrics = Metrics(self.controller)
        self.controller.on_tick.append(self.metrics.advance)
        self.api = KubeApi(self.store, self.controller, self.clock)
        self.control = Control(self.controller, self.clock, self.token,
                               anonymous=self.seed.anonymous)
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._tempdir: str | None = None
        self.conditions = Conditions(self.store, self.controller, self.clock)
        self.api.last_log_line = self.conditions.last_log_line
        self._load_seed()

    # --- seeding ----------------------------------------------------------------------

    def _ago(self, seconds: float) -> str:
        return (self.clock.now() - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _load_seed(self) -> None:
        seed, store = self.seed, self.store
        for ns in seed.all_namespaces():
            obj = o.namespace(ns)
            obj["metadata"]["creationTimestamp"] = self._ago(86400 * 30)
            store.create(by_kind("Namespace"), None, obj)
        for n in range(1, seed.nodes + 1):
            name = f"node-{n}"
            node = o.node(name, ready=name not in seed.unready_nodes, now=self._ago(86400 * 30))
            node["metadata"]["creationTimestamp"] = self._ago(86400 * 30)
            store.create(by_kind("Node"), None, node)
        for ds in seed.deployments:
            images = [*ds.history, ds.image]
            d = o.deployment(ds.namespace, ds.name, replicas=ds.replicas, image=ds.image,
                             labels=ds.labels, paused=ds.paused, max_surge=ds.max_surge,
                             max_unavailable=ds.max_unavailable,
                             progress_deadline=ds.progress_deadline_seconds)
            d["metadata"]["creationTimestamp"] = self._ago(86400 * 7)
            d = store.create(DEPLOY, ds.namespace, d, generation=len(images))
            for i, image in enumerate(images, start=1):
                template = copy.deepcopy(d["spec"]["template"])
                template["spec"]["containers"][0]["image"] = image
                rs = o.replicaset(d, template, i, ds.replicas if i == len(images) else 0)
                rs["metadata"]["creationTimestamp"] = self._ago(86400 * (len(images) - i + 1))
                rs = store.create(RS, ds.namespace, rs)
                for n in range(ds.replicas if i == len(images) else 0):
                    pod = o.pod(rs, o.safe_encode(f"{rs['metadata']['uid']}/{n}".encode(), 5),
                                f"node-{n % seed.nodes + 1}")
                    pod["metadata"]["creationTimestamp"] = self._ago(3600)
                    store.create(POD, ds.namespace, pod)
        for kind, group in (("StatefulSet", seed.statefulsets), ("DaemonSet", seed.daemonsets)):
            for ws in group:
                w = o.workload(kind, ws.namespace, ws.name, replicas=ws.replicas, image=ws.image)
                w = store.create(by_kind(kind), ws.namespace, w, generation=len(ws.history) + 1)
                for i, image in enumerate(ws.history, start=1):
                    template = copy.deepcopy(w["spec"]["template"])
                    template["spec"]["containers"][0]["image"] = image
                    store.create(by_kind("ControllerRevision"), ws.namespace,
                                 o.controller_revision(w, template, i))
        for ps in seed.pdbs:
            store.create(by_kind("PodDisruptionBudget"), ps.namespace, o.pdb(
                ps.namespace, ps.name, ps.selector, min_available=ps.min_available,
                max_unavailable=ps.max_unavailable))
        for hs in seed.hpas:
            store.create(by_kind("HorizontalPodAutoscaler"), hs.namespace,
                         o.hpa(hs.namespace, hs.name, kind=hs.kind, target=hs.target,
                               min_replicas=hs.min_replicas, max_replicas=hs.max_replicas))
        self.controller.reconcile()
        self.controller.tick()

    # --- serving ----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.control.middleware],
                              client_max_size=4 * 1024 * 1024)
        app.add_routes([*self.control.routes(), web.get("/metrics", self._metrics),
                        web.get("/healthz", self._healthz), *self.conditions.routes(),
                        *self.api.routes()])
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.render(),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: any free port) and start the controller; return the URL."""
        self._runner = web.AppRunner(self.app(), shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound}"
        self.api.server_address = f"{host}:{bound}"
        self._loop_task = asyncio.get_running_loop().create_task(self.controller.run(),
                                                                 name="simulator-controller")
        return self.url

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        for watcher in list(self.store.watchers):
            watcher.queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def kubeconfig(self, *, namespace: str = "default",
                   context: str = "simulator") -> dict[str, Any]:
        if not self.url:
            raise RuntimeError("start() the simulator before asking for its kubeconfig")
        return {"apiVersion": "v1", "kind": "Config", "current-context": context,
                "clusters": [{"name": context, "cluster": {"server": self.url}}],
                "users": [{"name": context, "user": {"token": self.token}}],
                "contexts": [{"name": context, "context": {"cluster": context, "user": context,
                                                           "namespace": namespace}}],
                "preferences": {}}

    def write_temp_kubeconfig(self) -> str:
        """Write the kubeconfig into a temporary directory that ``stop`` removes."""
        if self._tempdir is None:
            self._tempdir = tempfile.mkdtemp(prefix="remediator-sim-")
        return self.write_kubeconfig(f"{self._tempdir}/kubeconfig")

    def write_kubeconfig(self, path: str, *, namespace: str = "default",
                         context: str = "simulator") -> str:
        """Write a kubeconfig pointing at this simulator (token auth); return ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(self.kubeconfig(namespace=namespace, context=context), f)
        return path
