"""Persistence: the two backends of the store port (``remediator.ports.store``: the
role protocols; ``remediator.model.records``: what crosses it), SQLite (``sqlite*``)
and PostgreSQL (``postgres``, ``pg_*``), sharing one intake plan (``intake``), one
retention pass (``retention``) and one numbered schema (``migrations``). Nothing is
imported here: importing the package does not load asyncpg."""
