"""A throwaway PostgreSQL server on loopback for tests: Debian's binaries, a cluster made with
`initdb` in a temporary folder of its own, trust authentication on 127.0.0.1 only, stopped and
deleted when the block ends. As root, the server runs as the `postgres` user, since PostgreSQL
refuses to run as root.

    with throwaway_postgres() as server:
        uri = server.create_database("predictions")   # postgresql+psycopg://...
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from components.serving.loopback import free_port

USER = "gradeline"
_START_SECONDS = 60


def _binaries() -> Path:
    """The folder of Debian's PostgreSQL server programs (initdb, pg_ctl)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path is None:
        raise RuntimeError("PostgreSQL's server programs are not installed: `make test` installs "
                           "Debian's postgresql package")
    return Path(on_path).resolve().parent


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway server: `create_database` gives each test its own database."""

    port: int

    def uri(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its SQLAlchemy URI."""
        engine = sa.create_engine(self.uri("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.uri(name)


def _run(command: list[str], timeout: float) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip() or done.stdout}")


@contextmanager
def throwaway_postgres() -> Iterator[PostgresServer]:
    """Start a PostgreSQL server with its cluster in a new folder under /tmp (which the
    `postgres` user can reach); stop it and delete the folder on exit."""
    folder = Path(tempfile.mkdtemp(prefix="gradeline-postgres-"))
    binaries, data = _binaries(), folder / "data"
    as_server_user: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_server_user:
        shutil.chown(folder, "postgres")
    pg_ctl = [*as_server_user, str(binaries / "pg_ctl"), "-D", str(data)]
    try:
        _run([*as_server_user, str(binaries / "initdb"), "-D", str(data), "-U", USER,
              "--auth=trust", "--no-sync", "-E", "UTF8"], timeout=120)
        port = free_port()
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} "
                   f"-c unix_socket_directories={folder} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        _run([*pg_ctl, "-o", options, "-l", str(folder / "server.log"), "-w",
              "-t", str(_START_SECONDS), "start"], timeout=_START_SECONDS + 30)
        yield PostgresServer(port)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True,
                           timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
