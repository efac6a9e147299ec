"""What diagnosis reads, simulated: node conditions, pod status variants and the
previous container's log (the Nodes themselves and PodDisruptionBudget status are the
controller's, ``simulator/controller.py``).

* ``GET|POST|DELETE /sim/v1/pod-states``: every pod running ``image`` shows ``state``:
  POST ``{"image": "example/api:1.3.0", "state": "OOMKilled", "exit_code": 137,
  "message": "…", "log": "last line of the previous container"}``; states are
  ``OOMKilled``, ``CrashLoopBackOff``, ``ImagePullBackOff``, ``Pending`` (unschedulable,
  ``message`` the scheduler's), ``Unready`` (running, readiness probe failing).
  DELETE ``{"image": …}``.
* ``POST /sim/v1/nodes/{name}/conditions`` ``{"type": "MemoryPressure", "status": "True",
  "message": "…"}`` (``Ready``/``False`` makes the node NotReady).
* A crashed container's log (``logs.py``, the API's ``pods/{name}/log``) ends with the
  ``log`` line its pod state set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from aiohttp import web

from remediator.clock import Clock
from remediator.simulator.api import error_response, respond
from remediator.simulator.controller import Controller
from remediator.simulator.store import ApiError, Obj, Store, by_kind, rfc3339

NODE, PDB = by_kind("Node"), by_kind("PodDisruptionBudget")
STATES = ("OOMKilled", "CrashLoopBackOff", "ImagePullBackOff", "Pending", "Unready")
UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are " \
                "available: 3 No preemption victims found for incoming pod."


@dataclass
class PodState:
    image: str
    state: str
    exit_code: int | None = None
    message: str | None = None
    log: str | None = None


class Conditions:
    def __init__(self, store: Store, controller: Controller, clock: Clock) -> None:
        self.store, self.controller, self.clock = store, controller, clock
        self.states: dict[str, PodState] = {}
        controller.pod_hooks.append(self.pod)

    # --- pods ----------------------------------------------------------------------------

    def state_of(self, pod: Obj) -> PodState | None:
        for c in pod["spec"].get("containers") or []:
            if c.get("image") in self.states:
                return self.states[c["image"]]
        return None

    def pod(self, pod: Obj, age: float) -> None:
        """Make the pod's status show its image's state (a controller pod hook)."""
        state = self.state_of(pod)
        if state is None:
            return
        status, now = pod["status"], rfc3339(self.clock)
        started = pod["metadata"]["creationTimestamp"]
        restarts = int(age // self.controller.crash_seconds) + 1
        for cond in status["conditions"]:
            if cond["type"] in ("Ready", "ContainersReady"):
                cond["status"] = "False"
        for cs in status["containerStatuses"]:
            cs.update(ready=False, started=False, restartCount=0, lastState={})
            if state.state in ("OOMKilled", "CrashLoopBackOff"):
                oom = state.state == "OOMKilled"
                code = state.exit_code if state.exit_code is not None else (137 if oom else 1)
                cs["restartCount"] = restarts
                cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                           f"back-off 5m0s restarting failed container="
                                           f"{cs['name']} pod={pod['metadata']['name']}"}}
                cs["lastState"] = {"terminated": {"exitCode": code,
                                                  "reason": "OOMKilled" if oom else "Error",
                                                  "startedAt": started, "finishedAt": now}}
            elif state.state == "ImagePullBackOff":
                cs["state"] = {"waiting": {"reason": "ImagePullBackOff", "message":
                                           f'Back-off pulling image "{cs["image"]}"'}}
            elif state.state == "Unready":
                cs.update(started=True)
        if state.state in ("ImagePullBackOff", "Pending"):
            status["phase"] = "Pending"
        if state.state == "Pending":
            status.pop("containerStatuses", None)
            for cond in status["conditions"]:
                if cond["type"] == "PodScheduled":
                    cond.update(status="False", reason="Unschedulable",
                                message=state.message or UNSCHEDULABLE)

    def last_log_line(self, pod: Obj) -> str | None:
        """The line a crashed container of ``pod`` ended its log with (its pod state's),
        served by the API's log route (``logs.py``)."""
        state = self.state_of(pod)
        if state is None or state.state not in ("OOMKilled", "CrashLoopBackOff"):
            return None
        return state.log

    # --- HTTP ----------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/sim/v1/pod-states", self.get_states),
                web.post("/sim/v1/pod-states", self.set_state),
                web.delete("/sim/v1/pod-states", self.clear_state),
                web.post("/sim/v1/nodes/{name}/conditions", self.set_node_condition)]

    async def get_states(self, request: web.Request) -> web.Response:
        return respond({"states": [asdict(s) for s in self.states.values()]})

    async def set_state(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            state = PodState(**body)
        except TypeError as err:
            return respond({"error": f"invalid pod state: {err}"}, 400)
        if state.state not in STATES or not state.image:
            return respond({"error": f"state must be one of {', '.join(STATES)}, "
                                     "with an image"}, 400)
        self.states[state.image] = state
        self.controller.reconcile()
        return respond(asdict(state), 201)

    async def clear_state(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.states.pop(str((body or {}).get("image")), None)
        self.controller.reconcile()
        return await self.get_states(request)

    async def set_node_condition(self, request: web.Request) -> web.Response:
        name, body = request.match_info["name"], await request.json()
        obj = self.store.find(NODE, None, name)
        if obj is None:
            return error_response(ApiError(404, f'nodes "{name}" not found'))
        kind, value = body.get("type"), body.get("status")
        cond = next((c for c in obj["status"]["conditions"] if c["type"] == kind), None)
        if cond is None or value not in ("True", "False", "Unknown"):
            return respond({"error": "give type (Ready, MemoryPressure, DiskPressure, "
                                     "PIDPressure) and status (True, False, Unknown)"}, 400)
        cond.update(status=value, message=body.get("message") or cond["message"],
                    reason=body.get("reason") or cond["reason"],
                    lastTransitionTime=rfc3339(self.clock))
        return respond(self.store.update(NODE, obj, subresource="status", check_version=False))
