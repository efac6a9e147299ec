"""The MetricsApi on prometheus-api-client.

The client is synchronous (requests): every query runs in a thread of the
adapter's own pool (``workers`` threads, not asyncio's default executor shared with
everything else), and the session keeps that many keep-alive connections, so no
query waits for a connection or opens one while the pool is busy. Its own urllib3
retries are turned off so that the engine's retry policy is the only one. Errors
become TemporaryError (server down, 5xx, timeouts: the verification keeps polling)
or PermanentError (400 bad_data: the query is wrong).
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from remediator.errors import PermanentError, TemporaryError

#: threads (and keep-alive connections) of one adapter by default
WORKERS = 4


class PrometheusMetrics:
    def __init__(self, url: str, *, timeout: float = 10.0, workers: int = WORKERS) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.workers = workers
        session = requests.Session()
        adapter = HTTPAdapter(max_retries=0, pool_connections=1, pool_maxsize=workers)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # PrometheusConnect mounts its own adapter on the URL (retrying 5xx and refused
        # connections with a 1 s backoff, 10 connections) over the session's: no retries
        # there either, and one connection per worker thread
        self._client = PrometheusConnect(url=self.url, disable_ssl=False, session=session,
                                         timeout=timeout, retry=Retry(total=0))
        session.mount(self._client.url, HTTPAdapter(
            max_retries=Retry(total=0), pool_connections=1, pool_maxsize=workers))
        self._session = session
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prometheus")
        self.last_ok: bool | None = None

    def close(self) -> None:
        """Stop the worker threads (queries in flight finish) and the connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    async def query(self, promql: str, *, max_age: float | None = None
                    ) -> list[dict[str, Any]]:
        del max_age                # every answer is asked for now
        result = await self._ask(promql, self._client.custom_query, promql)
        return list(result) if isinstance(result, list) else [{"value": result}]

    async def query_range(self, promql: str, start: datetime, end: datetime,
                          step: float) -> list[dict[str, Any]]:
        """``/api/v1/query_range``: the matrix of ``promql`` from ``start`` to ``end``."""
        result = await self._ask(promql, self._client.custom_query_range, promql,
                                 start_time=start, end_time=end, step=f"{max(1.0, step):g}s")
        return list(result) if isinstance(result, list) else []

    async def _ask(self, promql: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self._pool, functools.partial(call, *args, **kwargs))
        except PrometheusApiClientException as exc:
            self.last_ok = True
            text = str(exc)
            if "400" in text or "bad_data" in text:
                raise PermanentError(f"Prometheus rejected the query {promql!r}: {text}") \
                    from exc
            raise TemporaryError(f"Prometheus query failed: {text}") from exc
        except (requests.RequestException, OSError) as exc:
            self.last_ok = False
            raise TemporaryError(f"Prometheus at {self.url} unreachable: "
                                 f"{type(exc).__name__}") from exc
        self.last_ok = True
        return result
