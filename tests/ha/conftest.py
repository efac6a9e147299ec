"""Fixtures for the HA tests: one PostgreSQL server per session (``pgserver.py``),
a fresh database per test."""

from __future__ import annotations

import pytest

from .pgserver import PgServer, shared_server


@pytest.fixture(scope="session")
def pg() -> PgServer:
    return shared_server()


@pytest.fixture
def pg_url(pg: PgServer) -> str:
    return pg.create_database("ha")
