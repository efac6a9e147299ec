"""The aiohttp HTTP server: webhook intake, the incidents API, health and metrics."""
