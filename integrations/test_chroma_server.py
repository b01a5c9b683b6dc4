"""The throw-away Chroma server behind the adapters' end-to-end tests: start, restart, and a clear failure."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest


def test_restart_keeps_the_folder_and_port(new_chroma_server: Callable[[], Any]) -> None:
    """A restarted server serves the data written before, on the same port; a stopped one answers nothing."""
    server = new_chroma_server()
    server.start()
    client = server.client()
    client.create_collection("kept").add(ids=["a"], embeddings=[[1.0, 0.0]], documents=["a"])
    port = server.port

    server.restart()

    assert server.port == port and server.heartbeat()
    assert server.client().get_collection("kept").get(ids=["a"])["documents"] == ["a"]
    server.stop()
    assert not server.heartbeat()


def test_a_server_that_cannot_start_fails_with_its_log(new_chroma_server: Callable[[], Any]) -> None:
    """A server that exits before its heartbeat fails the test with its command line and its own log."""
    server = new_chroma_server()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((server.host, server.port))  # the port is taken, but nothing answers HTTP there
        squatter.listen()
        with pytest.raises(pytest.fail.Exception) as failure:
            server.start(timeout=30)
    message = str(failure.value)
    assert f"--port {server.port}" in message and "exited with code" in message
    assert f"Address 127.0.0.1:{server.port} is not available" in message  # the server's own log
