"""Private PostgreSQL and Redis instances that tests and benchmarks may stop, kill and restart.

The machine's shared PostgreSQL and Redis serve other runs: outage tests and the soak never
touch them. Each instance here lives in a temporary directory, listens on a free loopback port
and is gone when the test ends.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import redis

from app.layout import PROJECT_ROOT
from stack.processes import Proc, free_port, start, wait_until


def _pg_bin(name: str) -> str:
    """The newest installed PostgreSQL server binary called name."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise FileNotFoundError(f"no PostgreSQL server binary {name} (apt-get install postgresql)")
    return found[-1]


def _as_postgres(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run argv as the postgres OS user (initdb and the server refuse root)."""
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True,
                          text=True, timeout=timeout, check=False)


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of our own: trust auth, or scram-sha-256 with a password."""

    root: Path
    port: int = field(default_factory=free_port)
    password: str | None = None

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        """The server's log file (pg_ctl -l)."""
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """A connection URL (with the password when the cluster has one)."""
        auth = f"postgres:{self.password}" if self.password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        """Create the cluster (once)."""
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root, "postgres", "postgres")
        argv = [_pg_bin("initdb"), "-D", str(self.data_dir), "-U", "postgres", "--no-sync",
                "-E", "UTF8", "--locale=C"]
        if self.password:
            pwfile = self.root / "pw"
            pwfile.write_text(self.password + "\n")
            shutil.chown(pwfile, "postgres", "postgres")
            argv += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            argv += ["--auth=trust"]
        done = _as_postgres(*argv, timeout=120)
        if done.returncode:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        """Start the server on its port and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        done = _as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path),
                            "-o", options, "-w", "-t", "60", "start")
        if done.returncode:
            raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}\n{done.stderr}\n{self.log()}")
        wait_until(self.accepts, 30, "the private PostgreSQL to accept connections")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (fast: disconnects every client; immediate: like a crash)."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        _as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60",
                     "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster (its backends exit when they notice)."""
        pidfile = self.data_dir / "postmaster.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)

    def accepts(self) -> bool:
        """True when a connection succeeds."""
        try:
            psycopg2.connect(self.url(), connect_timeout=2).close()
        except psycopg2.OperationalError:
            return False
        return True

    def create_database(self, name: str) -> str:
        """Create a database; its URL."""
        conn = psycopg2.connect(self.url())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)

    def log(self) -> str:
        """The server log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def private_postgres(password: str | None = None) -> Iterator[PrivatePostgres]:
    """A started private cluster, stopped (and its files removed) afterwards."""
    # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="todolab-pg-"))
    root.chmod(0o755)
    pg = PrivatePostgres(root / "cluster", password=password)
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class PrivateRedis:
    """A redis-server of our own; persistent (AOF, as compose runs it) unless told not to."""

    root: Path
    port: int = field(default_factory=free_port)
    persistent: bool = True
    proc: Proc | None = None

    @property
    def url(self) -> str:
        """The URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start redis-server on its port and wait for PING."""
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                "--bind", "127.0.0.1", "--save", "", "--dir", str(self.root)]
        # compose runs Redis with --appendonly yes: queued messages survive a restart.
        argv += ["--appendonly", "yes" if self.persistent else "no"]
        self.proc = start(f"redis-{self.port}", argv, os.environ, PROJECT_ROOT,
                          self.root / f"redis-{self.port}.out")
        wait_until(self.accepts, 20, "the private Redis to answer PING")

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM: the AOF is flushed)."""
        if self.proc is not None:
            self.proc.stop(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: like a crash."""
        if self.proc is not None:
            self.proc.stop(signal.SIGKILL)

    def accepts(self) -> bool:
        """True when Redis answers PING."""
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1,
                                             socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False


@contextmanager
def private_redis(root: Path, persistent: bool = True) -> Iterator[PrivateRedis]:
    """A started private Redis, killed afterwards."""
    server = PrivateRedis(root, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.kill()
