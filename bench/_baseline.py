"""The baseline for bench/intake.py: a bare aiohttp server whose POST /api/v1/alerts parses
the JSON body and answers 200, nothing else. ``python bench/_baseline.py PORT [LOOP]``.

LOOP (``uvloop`` or ``asyncio``, default: uvloop when installed) is the event loop, the
same one the daemon runs on (``server.event_loop: auto``), so the ratio compares handlers,
not loops."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


async def alerts(request: web.Request) -> web.Response:
    payload = await request.json()
    return web.json_response({"status": "accepted", "alerts": len(payload["alerts"])})


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"ready": True})


def main() -> None:
    loop = sys.argv[2] if len(sys.argv) > 2 else "auto"
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = web.Application()
    app.router.add_post("/api/v1/alerts", alerts)
    app.router.add_get("/readyz", readyz)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None,
                print=None)


if __name__ == "__main__":
    main()
