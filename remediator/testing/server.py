"""What every fake server shares: an aiohttp app on 127.0.0.1 (a free port) that can
be stopped, and taken down and brought back up on the same port with its state kept
(clients see "connection refused" meanwhile; kept-alive connections drop too)."""

from __future__ import annotations

from aiohttp import web


class FakeServer:
    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port = 0

    def build_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> str:
        """Start listening on 127.0.0.1 (a free port); return the base URL."""
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        await self._listen(0)
        return self.base_url

    @property
    def base_url(self) -> str:
        return self.root_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def down(self) -> None:
        """Stop accepting connections; keep state."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._runner is not None and self._runner.server is not None:
            for connection in list(self._runner.server.connections):
                connection.force_close()

    async def up(self) -> None:
        """Accept connections again on the same port."""
        if self._site is None:
            await self._listen(self._port)

    async def _listen(self, port: int) -> None:
        assert self._runner is not None, "start() first"
        self._site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await self._site.start()
        self._port = int(self._runner.addresses[0][1])
