"""`free_port`: a port a test's server can bind, outside the kernel's ephemeral range (where any outgoing
connection's source port could take it first), and never the same one twice in a process."""

from __future__ import annotations

import socket

import pytest

from inlet.local import free_port, processes
from inlet.local.processes import _ephemeral_range


def test_ports_are_below_the_ephemeral_range_bindable_and_never_repeated() -> None:
    low, _ = _ephemeral_range()
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports) and all(port < low for port in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        in_use = taken.getsockname()[1]
        after = free_port()
        monkeypatch.setattr(processes, "_shuffled_ports", [iter([in_use, after])])
        assert free_port() == after
