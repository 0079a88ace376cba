"""A private PostgreSQL that demands TLS, for tests of `sslmode=verify-full`.

The `pgserver` wheel's PostgreSQL is built without SSL, so this one comes from the machine's Debian
`postgresql` server binaries (`/usr/lib/postgresql/<major>/bin`): initdb into a directory of its own, a
server certificate of the given ClusterCa for 127.0.0.1 and localhost, `ssl = on`, listening on 127.0.0.1 on
a free port (never 5432), and a pg_hba.conf that accepts TCP clients over TLS only (`hostnossl … reject`),
each with a password (SCRAM). Run as root, the server runs as the `postgres` OS user (PostgreSQL refuses root).

    with TlsPostgres(directory, ca) as server:
        url = server.url_for("postgres")   # postgresql://postgres:…@127.0.0.1:<port>/postgres?sslmode=verify-full&sslrootcert=…

`debian_postgres_bin()` is None where the binaries are absent: tests skip then, saying so.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import psycopg

from pitlane_platform.embedded import LOOPBACK, free_port, log_tail, stop_process
from pitlane_platform.security.pki import ClusterCa

DEBIAN_POSTGRES_ROOT = Path("/usr/lib/postgresql")
MISSING_BINARIES = (
    "no Debian PostgreSQL server binaries under /usr/lib/postgresql/<major>/bin (the pgserver wheel has no "
    "SSL): apt-get install postgresql"
)


def debian_postgres_bin() -> Path | None:
    """The newest `/usr/lib/postgresql/<major>/bin` that has initdb and postgres, or None."""
    if not DEBIAN_POSTGRES_ROOT.is_dir():
        return None
    candidates = [
        path / "bin"
        for path in DEBIAN_POSTGRES_ROOT.iterdir()
        if path.name.isdigit()
        and (path / "bin" / "initdb").is_file()
        and (path / "bin" / "postgres").is_file()
    ]
    return max(candidates, key=lambda path: int(path.parent.name), default=None)


class TlsPostgres:
    def __init__(self, directory: Path, ca: ClusterCa, *, bin_dir: Path | None = None) -> None:
        found = bin_dir or debian_postgres_bin()
        if found is None:
            raise FileNotFoundError(MISSING_BINARIES)
        self.bin_dir = found
        self.directory = Path(directory).resolve()
        self.ca = ca
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            self._run_as = {"user": account.pw_uid, "group": account.pw_gid}

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def url_for(self, database: str, *, sslmode: str = "verify-full") -> str:
        return (
            f"postgresql://postgres:{quote(self.password)}@{LOOPBACK}:{self.port}/{database}"
            f"?sslmode={sslmode}&sslrootcert={self.ca.cert_file}"
        )

    @property
    def admin_url(self) -> str:
        return self.url_for("postgres")

    def start(self, timeout: float = 60.0) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        password_file = self.directory / "password"
        password_file.write_text(self.password + "\n")
        issued = self.ca.server_certificate("postgres", dns_names=("localhost",), ips=(LOOPBACK,))
        shutil.copyfile(issued.cert_file, self.directory / "server.crt")
        shutil.copyfile(issued.key_file, self.directory / "server.key")
        (self.directory / "server.key").chmod(0o600)  # PostgreSQL refuses a key others can read
        self._hand_over(self.directory)
        self._run(
            "initdb",
            *("-D", str(self.data_dir), "-U", "postgres", f"--pwfile={password_file}"),
            *("--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-sync"),
        )
        password_file.unlink()
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '{LOOPBACK}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.directory}'\n"
                f"ssl = on\nssl_cert_file = '{self.directory / 'server.crt'}'\n"
                f"ssl_key_file = '{self.directory / 'server.key'}'\nssl_min_protocol_version = 'TLSv1.2'\n"
                "fsync = off\nfull_page_writes = off\n"
            )
        # Over TCP only TLS gets in; the unix socket (the server's own directory) stays for administration.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"hostssl all all {LOOPBACK}/32 scram-sha-256\n"
            "hostnossl all all 0.0.0.0/0 reject\n"
        )
        log = self.log_file.open("ab")
        with log:
            self._process = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._run_as,
            )
        self._wait_until_ready(timeout)
        return self

    def stop(self) -> None:
        stop_process(self._process, 30)  # SIGTERM: smart shutdown; the tests' connections are closed by then

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self._process.returncode}:\n{log_tail(self.directory / 'postgres.log')}"
                )
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(
            f"postgres not ready after {timeout}s:\n{log_tail(self.directory / 'postgres.log')}"
        )

    def _hand_over(self, path: Path) -> None:
        """The directory (and the path to it) open to the server's OS user when that is not us."""
        if not self._run_as:
            return
        for entry in [path, *path.rglob("*")]:
            os.chown(entry, self._run_as["user"], self._run_as["group"])
        for parent in path.parents:
            parent.chmod(parent.stat().st_mode | 0o001)  # traverse only, as pgserver does

    def _run(self, tool: str, *arguments: str) -> None:
        finished = subprocess.run(
            [str(self.bin_dir / tool), *arguments], capture_output=True, text=True, **self._run_as
        )
        if finished.returncode != 0:
            raise RuntimeError(
                f"{tool} failed with {finished.returncode}:\n{finished.stdout}{finished.stderr}"
            )

    @property
    def log_file(self) -> Path:
        return self.directory / "postgres.log"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
