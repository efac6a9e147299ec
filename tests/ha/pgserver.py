"""A throw-away PostgreSQL server for the tests: ``initdb`` into a temporary
directory, ``postgres`` on 127.0.0.1 and a free port, a fresh database
(``createdb``) or schema per test. The server refuses to run as root: when the
tests run as root, initdb and postgres run as the ``postgres`` user (setuid in a
preexec).

Missing binaries skip the tests, except under CI (env ``CI`` set), where they fail.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def find_bindir() -> Path | None:
    override = os.environ.get("PG_BINDIR")
    if override:
        return Path(override)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="remediator-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._preexec: Callable[[], None] | None = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)

            def drop() -> None:
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
            self._preexec = drop
        self.env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(self.port),
                    "PGUSER": "postgres"}
        self.env.pop("PGDATABASE", None)

    def start(self) -> None:
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, preexec_fn=self._preexec, cwd=self.root,
            env=self.env, timeout=60)
        self.log = open(self.root / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data), "-h", "127.0.0.1",
             "-p", str(self.port), "-k", str(self.root), "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300", "-c", "shared_buffers=32MB"],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=self._preexec,
            cwd=self.root, env=self.env)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: "
                                   + (self.root / "server.log").read_text()[-2000:])
            ready = subprocess.run([str(self.bindir / "pg_isready"), "-q"], env=self.env,
                                   check=False, timeout=10)
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("postgres not ready within 30s")
            time.sleep(0.1)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}{os.getpid()}_{next(self._names)}"
        subprocess.run([str(self.bindir / "createdb"), name], env=self.env, check=True,
                       capture_output=True, timeout=30)
        return self.url(name)

    def create_schema(self, prefix: str = "s") -> str:
        """A new empty schema in the database ``postgres``: a URL whose connections use
        it (``search_path``). Faster than a database (the contract suite makes many)."""
        name = f"{prefix}{os.getpid()}_{next(self._names)}"
        subprocess.run([str(self.bindir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d",
                        "postgres", "-c", f"CREATE SCHEMA {name}"], env=self.env, check=True,
                       capture_output=True, timeout=30)
        return self.url("postgres") + f"?search_path={name}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)        # fast shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


_server: PgServer | None = None


def shared_server() -> PgServer:
    """The one server of this test process, started on first use, stopped at exit."""
    global _server
    if _server is None:
        bindir = find_bindir()
        if bindir is None or not (bindir / "postgres").exists():
            msg = ("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
                   "install Debian's postgresql package (scripts/test does)")
            if os.environ.get("CI"):
                pytest.fail(msg, pytrace=False)
            pytest.skip(msg)
        server = PgServer(bindir)
        atexit.register(server.stop)
        server.start()
        _server = server
    return _server
