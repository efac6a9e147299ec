"""The MetricsApi: Prometheus's HTTP API.

Instant queries (every verification poll: thousands a second with thousands of
incidents verifying) go out on the event loop over aiohttp, ``GET /api/v1/query`` as
prometheus-api-client's ``custom_query`` sends it, at most ``workers`` at once over as
many kept-alive connections. prometheus-api-client is synchronous (requests): through
it each query cost a worker thread's hop and ~0.8 ms of CPU under the GIL, most of it
requests looking at the environment (netrc, CA bundle) again for every request;
5,000 incidents polling every 5 s needed more than the core the daemon had.

Range queries (an incident's graphs: rare, large) still go through
prometheus-api-client's ``custom_query_range``, in a thread of the adapter's own pool
(``workers`` threads, not asyncio's default executor), its urllib3 retries turned off.

Either way the engine's retry policy is the only one, and errors are the same:
TemporaryError (server down, 5xx, timeouts: the verification keeps polling) or
PermanentError (400 bad_data: the query is wrong).
"""

from __future__ import annotations

import asyncio
import functools
import json
import netrc
import os
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import aiohttp
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from remediator.errors import PermanentError, TemporaryError

#: threads (and keep-alive connections) of one adapter by default
WORKERS = 4


def environment_for(url: str) -> tuple[str | None, dict[str, str]]:
    """The proxy (``HTTP_PROXY``/``HTTPS_PROXY``, unless ``NO_PROXY`` covers the host)
    and the netrc credentials (``NETRC`` or ~/.netrc, unless the URL has its own; as an
    ``Authorization`` header) that requests would use for ``url``, looked up once:
    aiohttp's ``trust_env`` (like requests) reads the environment and parses the netrc
    file again for every request
    (~20% of the daemon's samples with 5,000 incidents verifying)."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    proxy = None if urllib.request.proxy_bypass(host) else \
        urllib.request.getproxies().get(parsed.scheme)
    headers: dict[str, str] = {}
    if parsed.username is None:
        try:
            found = netrc.netrc(os.environ.get("NETRC")).authenticators(host)
        except (OSError, netrc.NetrcParseError):
            found = None                # no netrc, or one requests would ignore too
        if found is not None:
            headers["Authorization"] = aiohttp.encode_basic_auth(found[0], found[2])
    return proxy, headers


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
        self._http: aiohttp.ClientSession | None = None      # made in the loop, on first use
        self.last_ok: bool | None = None

    def close(self) -> None:
        """Stop the worker threads (queries in flight finish) and their connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    async def aclose(self) -> None:
        """``close``, and the instant queries' connections."""
        self.close()
        if self._http is not None:
            await self._http.close()

    async def query(self, promql: str, *, max_age: float | None = None
                    ) -> list[dict[str, Any]]:
        del max_age                # every answer is asked for now
        result = await self._instant(promql)
        return list(result) if isinstance(result, list) else [{"value": result}]

    def _client_session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            proxy, headers = environment_for(self.url)
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout), proxy=proxy, headers=headers,
                connector=aiohttp.TCPConnector(limit=self.workers))
        return self._http

    async def _instant(self, promql: str) -> Any:
        """``GET /api/v1/query?query=…``: ``data.result``, or the errors ``_ask`` gives."""
        try:
            async with self._client_session().get(f"{self.url}/api/v1/query",
                                                  params={"query": promql}) as resp:
                status, body = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.last_ok = False
            raise TemporaryError(f"Prometheus at {self.url} unreachable: "
                                 f"{type(exc).__name__}") from exc
        if status != 200:
            self.last_ok = True
            raise self._rejection(promql, f"HTTP Status Code {status} ({body!r})")
        try:
            result = json.loads(body)["data"]["result"]
        except (ValueError, KeyError, TypeError) as exc:
            self.last_ok = False
            raise TemporaryError(f"Prometheus at {self.url} answered {len(body)} bytes that "
                                 f"are not a query result: {body[:200]!r}") from exc
        self.last_ok = True
        return result

    @staticmethod
    def _rejection(promql: str, text: str) -> PermanentError | TemporaryError:
        """The error of an answer that is not 200: PermanentError if the query is wrong."""
        if "400" in text or "bad_data" in text:
            return PermanentError(f"Prometheus rejected the query {promql!r}: {text}")
        return TemporaryError(f"Prometheus query failed: {text}")

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
            raise self._rejection(promql, str(exc)) from exc
        except (requests.RequestException, OSError) as exc:
            self.last_ok = False
            raise TemporaryError(f"Prometheus at {self.url} unreachable: "
                                 f"{type(exc).__name__}") from exc
        self.last_ok = True
        return result
