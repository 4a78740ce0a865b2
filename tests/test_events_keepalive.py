"""An event stream over TCP whose path dies silently is noticed and opened again.

A real engine's events reach the watcher through a TCP relay in a network namespace of the
test's own; taking the namespace's link down drops every packet without a word, as a NAT
gateway that forgot the flow does.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Interface
from urllib.parse import urlparse

import docker
import pytest
from docker.types import ServiceMode

from autoscaler.events import DockerEventWatcher, Keepalive, tcp_socket
from autoscaler.lab import netns
from autoscaler.lab.dockerd import API_VERSION
from autoscaler.lab.engines import SwarmCluster
from tests.fixtures_swarm import wait_until

RELAY_PORT = 2375
_RELAY = """
import socket, sys, threading
unix_path = sys.argv[1]
def pipe(src, dst):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
srv = socket.create_server(("0.0.0.0", int(sys.argv[2])))
print("listening", flush=True)
while True:
    conn, _ = srv.accept()
    up = socket.socket(socket.AF_UNIX)
    up.connect(unix_path)
    threading.Thread(target=pipe, args=(conn, up), daemon=True).start()
    threading.Thread(target=pipe, args=(up, conn), daemon=True).start()
"""


@contextlib.contextmanager
def relay_in_namespace(unix_path: str) -> Iterator[tuple[str, str]]:
    """A TCP relay to ``unix_path`` in a new namespace: yields its address and namespace."""
    tag = secrets.token_hex(3)
    ns, veth = f"evk-{tag}", f"evk{tag}"
    subnet = netns.pick_subnet(random.Random(), netns.used_networks())
    relay = None
    try:
        netns.ip("netns", "add", ns)
        netns.ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        netns.ip("addr", "add", str(IPv4Interface(f"{subnet[1]}/24")), "dev", veth)
        netns.ip("link", "set", veth, "up")
        netns.ip("addr", "add", str(IPv4Interface(f"{subnet[2]}/24")), "dev", "eth0", netns=ns)
        netns.ip("link", "set", "eth0", "up", netns=ns)
        relay = subprocess.Popen(
            [
                "nsenter",
                f"--net={netns.netns_path(ns)}",
                sys.executable,
                "-c",
                _RELAY,
                unix_path,
                str(RELAY_PORT),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert relay.stdout is not None and relay.stdout.readline().strip() == "listening"
        yield str(subnet[2]), ns
    finally:
        if relay is not None:
            relay.kill()
            relay.wait(timeout=10)
        netns.delete_namespace(ns)
        netns.delete_link(veth)


def manager_socket(cluster: SwarmCluster) -> str:
    return urlparse(cluster.manager.host).path


@pytest.mark.real
def test_a_silently_dead_tcp_stream_is_reopened(
    swarm_cluster: SwarmCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="autoscaler.events")
    with relay_in_namespace(manager_socket(swarm_cluster)) as (address, ns):
        client = docker.DockerClient(
            base_url=f"tcp://{address}:{RELAY_PORT}", version=API_VERSION, timeout=10
        )
        seen: list[str] = []
        watcher = DockerEventWatcher(
            client,
            seen.append,
            max_backoff=1.0,
            first_delay=0.2,
            keepalive=Keepalive(idle=1, interval=1, count=2),
        )
        watcher.start()
        service = None
        try:
            stream = wait_until(lambda: watcher._stream, 15, "the event stream to open")
            sock = tcp_socket(stream)
            assert sock is not None
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            netns.ip("link", "set", "eth0", "down", netns=ns)
            wait_until(
                lambda: any("event stream failed" in r.getMessage() for r in caplog.records),
                30,
                "the dead stream to fail",
            )
            netns.ip("link", "set", "eth0", "up", netns=ns)
            wait_until(lambda: "docker:reconnected" in seen, 60, "the stream to reopen")
            service = client.services.create(
                "local/busybox:1",
                command=["sleep", "600"],
                name=f"keepalive-probe-{secrets.token_hex(2)}",
                mode=ServiceMode("replicated", 0),
            )
            wait_until(lambda: "docker:service:create" in seen, 15, "an event after reopening")
        finally:
            watcher.stop()
            if service is not None:
                with contextlib.suppress(docker.errors.NotFound):
                    service.remove()
            client.close()
    assert not watcher._thread.is_alive()


@pytest.mark.real
def test_a_unix_socket_stream_gets_no_keepalive(swarm_cluster: SwarmCluster) -> None:
    client = swarm_cluster.client()
    stream = client.events(decode=True)
    try:
        assert tcp_socket(stream) is None
        assert Keepalive().apply(stream) is False
    finally:
        stream.close()
        client.close()
