"""Actions that need no cluster: ``http.post`` (a webhook of another system) and ``wait``.

``http.post`` sends through the HTTP port (``ctx.http``, ``remediator.ports.http``)
and judges the status itself; ``wait`` sleeps on ``ctx.clock``.
"""

from __future__ import annotations

import json
from typing import ClassVar

from remediator.actions.params import HttpPostParams, WaitParams
from remediator.engine.contract import ActionResult, Intent, RunContext
from remediator.errors import PermanentError, TemporaryError


class HttpPost:
    name: ClassVar[str] = "http.post"
    params = HttpPostParams

    async def plan(self, ctx: RunContext, params: HttpPostParams) -> Intent:
        body = json.dumps(params.json_body, sort_keys=True, default=str)
        return Intent(action=self.name, description=f"POST {params.url}",
                      args={"url": params.url, "body": params.json_body,
                            "headers": params.headers, "timeout": params.timeout,
                            "expect": params.expect_status},
                      api_calls=[f"POST {params.url} {body}"])

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        if ctx.http is None:
            raise TemporaryError("no HTTP client configured")
        args = intent.args
        headers = {"Idempotency-Key": f"{ctx.incident_id}/{ctx.step}", **args["headers"]}
        resp = await ctx.http.post(args["url"], json=args["body"], headers=headers,
                                   timeout_seconds=args["timeout"])
        text = resp.text[:500]
        if resp.status in args["expect"]:
            return ActionResult(summary=f"POST {args['url']} → {resp.status}")
        if resp.status >= 500 or resp.status == 429:
            raise TemporaryError(f"POST {args['url']} → {resp.status}: {text}")
        raise PermanentError(f"POST {args['url']} → {resp.status}: {text}")


class Wait:
    name: ClassVar[str] = "wait"
    params = WaitParams

    async def plan(self, ctx: RunContext, params: WaitParams) -> Intent:
        return Intent(action=self.name, description=f"wait {params.duration:g}s",
                      args={"seconds": params.duration})

    async def apply(self, ctx: RunContext, intent: Intent) -> ActionResult:
        seconds = float(intent.args["seconds"])
        await (ctx.wait or ctx.clock.sleep)(seconds)     # the run's: a resolve ends it
        return ActionResult(summary=f"waited {intent.args['seconds']:g}s")
