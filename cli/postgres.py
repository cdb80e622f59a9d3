"""A throwaway PostgreSQL server on loopback: Debian's binaries, a cluster made with `initdb` in a
folder of its own under /tmp, trust authentication on 127.0.0.1 only. As root, the server runs
as the `postgres` user, since PostgreSQL refuses to run as root. `gradeline up --profile cluster`
runs it in the foreground as one of its services; tests start one for a block.

    folder = new_cluster()                               # initdb, in /tmp/gradeline-postgres-*
    command = server_command(folder, port)               # the server, in the foreground
    with throwaway_postgres() as server:                 # or all of it for one block
        uri = server.create_database("predictions")      # postgresql+psycopg://...
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
                           "Debian's postgresql package (apt-get install postgresql)")
    return Path(on_path).resolve().parent


@dataclass(frozen=True)
class PostgresServer:
    """A running server on 127.0.0.1:`port`: `create_database` gives each user a database."""

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

    def answers(self) -> bool:
        """Whether the server accepts connections now."""
        engine = sa.create_engine(self.uri("postgres"))
        try:
            with engine.connect():
                return True
        except sa.exc.OperationalError:
            return False
        finally:
            engine.dispose()


def _as_server_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(command: list[str], timeout: float) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip() or done.stdout}")


def new_cluster() -> Path:
    """A new database cluster (`initdb`, user `gradeline`, trust) in a new folder under /tmp,
    which the `postgres` user can reach; the folder."""
    folder = Path(tempfile.mkdtemp(prefix="gradeline-postgres-"))
    if _as_server_user():
        shutil.chown(folder, "postgres")
    _run([*_as_server_user(), str(_binaries() / "initdb"), "-D", str(folder / "data"),
          "-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8"], timeout=120)
    return folder


def _options(folder: Path, port: int) -> list[str]:
    """Loopback only, its socket in its own folder, and no durability: the data is thrown away."""
    return ["-c", "listen_addresses=127.0.0.1", "-c", f"port={port}",
            "-c", f"unix_socket_directories={folder}", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]


def server_command(folder: Path, port: int) -> list[str]:
    """The server of the cluster in `folder`, in the foreground (SIGTERM stops it)."""
    return [*_as_server_user(), str(_binaries() / "postgres"), "-D", str(folder / "data"),
            *_options(folder, port)]


@contextmanager
def throwaway_postgres() -> Iterator[PostgresServer]:
    """Start a server on a new cluster; stop it and delete the cluster's folder on exit."""
    folder = new_cluster()
    pg_ctl = [*_as_server_user(), str(_binaries() / "pg_ctl"), "-D", str(folder / "data")]
    try:
        port = free_port()
        _run([*pg_ctl, "-o", " ".join(_options(folder, port)), "-l", str(folder / "server.log"),
              "-w", "-t", str(_START_SECONDS), "start"], timeout=_START_SECONDS + 30)
        yield PostgresServer(port)
    finally:
        if (folder / "data" / "postmaster.pid").exists():
            subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True,
                           timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
