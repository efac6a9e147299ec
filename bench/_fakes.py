"""The fake Slack and Prometheus of ``bench/storm.py --evidence``, in their own process.

Started by the benchmark; writes ``{"slack": url, "token": ..., "prometheus": url}`` to
the file named by its argument once both listen (127.0.0.1, free ports), and, when it
is sent SIGTERM, ``{"files", "png_bytes", "messages", "range_queries"}`` to
``<file>.done`` before it exits: what the daemon uploaded and asked.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from remediator.testing.fake_prometheus import FakePrometheus
from remediator.testing.fake_slack import FakeSlack

ALERT_EXPR = "job:http_errors"          # bench._common.alert's generatorURL g0.expr


def write(path: Path, data: dict[str, object]) -> None:
    path.write_text(json.dumps(data))


async def main(out: Path) -> None:
    slack, prom = FakeSlack(), FakePrometheus()
    prom.set(ALERT_EXPR, 0.2)
    await slack.start()
    await prom.start()
    write(out, {"slack": slack.base_url, "token": slack.token, "prometheus": prom.root_url})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    pngs = [f for f in slack.files if f.filename.endswith(".png")]
    write(Path(f"{out}.done"), {
        "files": len(slack.files), "pngs": len(pngs),
        "png_bytes": sum(len(f.data) for f in pngs), "messages": len(slack.messages),
        "range_queries": prom.calls[f"range:{ALERT_EXPR}"]})
    await slack.stop()
    await prom.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
