"""Persistence: the Store port (``base``: role protocols; ``records``) and its two
backends, SQLite (``sqlite*``) and PostgreSQL (``postgres``, ``pg_*``), sharing one
intake plan (``intake``) and one numbered schema (``migrations``). Nothing is
imported here: importing the package does not load asyncpg."""
