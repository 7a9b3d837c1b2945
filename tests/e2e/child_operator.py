"""The operator as a child process (``scaivault-operator run``), as the e2e tests that need a process of its own
run it: a free port, a TCP proxy that can take the API server away, the process with a deadline on its exit, and a
failed assertion that shows the tail of its log (which names objects, never values)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

#: The tail of the operator's log shown with a failed assertion.
LOG_TAIL = 5000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TcpProxy:
    """127.0.0.1:<port> → the API server, byte for byte (TLS passes through). ``cut()`` closes the listener and
    every open connection, as an API server outage would; ``restore()`` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update({writer, up_writer})


@contextlib.asynccontextmanager
async def operator_process(
    args: Sequence[str], env: Mapping[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``scaivault-operator run ARGS`` with ``env`` (its output appended to ``log``); terminated, then killed after
    20 s, at the end unless the test killed it already."""
    command = ["-m", "scaivault_operator.cli", "run", *args]
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(sys.executable, *command, env=dict(env), stdout=out,
                                                       stderr=asyncio.subprocess.STDOUT)  # fmt: skip
        try:
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()


@contextlib.asynccontextmanager
async def log_on_failure(log: Path) -> AsyncIterator[None]:
    """A failed wait or assertion says what the operator logged."""
    try:
        yield
    except AssertionError as exc:
        tail = (await asyncio.to_thread(log.read_text, encoding="utf-8", errors="replace"))[-LOG_TAIL:]
        raise AssertionError(f"{exc}\n--- operator log (tail) ---\n{tail}") from None
