"""Host network plumbing for the lab: a bridge on a private /24 and one namespace per engine.

Everything goes through the ``ip`` tool. Engines are entered with ``nsenter --net`` (never
``ip netns exec``, which remounts /sys and breaks dockerd's cgroup detection).
"""

from __future__ import annotations

import ipaddress
import json
import random
import subprocess
from pathlib import Path

from autoscaler.lab.errors import LabError

NETNS_DIR = Path("/run/netns")
LAB_RANGE_FIRST = 200
"""Lab subnets are 10.X.Y.0/24 with X in 200..255: far from Docker's own 10.0.0.0/8 pools."""


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine's host namespace has an address or a route in."""
    nets: list[ipaddress.IPv4Network] = []
    for link in json.loads(ip("-j", "-4", "addr", "show") or "[]"):
        for info in link.get("addr_info", []):
            nets.append(ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}").network)
    for route in json.loads(ip("-j", "-4", "route", "show", "table", "all") or "[]"):
        dst = route.get("dst", "")
        try:
            nets.append(ipaddress.IPv4Network(dst, strict=False))
        except ValueError:
            continue  # "default", "broadcast", ...: not a network we could collide with
    return [n for n in nets if n.prefixlen > 0]


def pick_subnet(rng: random.Random, used: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    for _ in range(500):
        net = ipaddress.IPv4Network(
            f"10.{rng.randint(LAB_RANGE_FIRST, 255)}.{rng.randint(0, 255)}.0/24"
        )
        if not any(net.overlaps(u) for u in used):
            return net
    raise LabError("no free 10.2xx.y.0/24 subnet left on this machine")


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def create_bridge(name: str, address: ipaddress.IPv4Interface) -> None:
    ip("link", "add", name, "type", "bridge")
    ip("addr", "add", str(address), "dev", name)
    ip("link", "set", name, "up")


def subnet_clash(bridge: str, subnet: ipaddress.IPv4Network) -> bool:
    """True when another interface also holds an address in ``subnet`` (a concurrent pick)."""
    for link in json.loads(ip("-j", "-4", "addr", "show") or "[]"):
        if link.get("ifname") == bridge:
            continue
        for info in link.get("addr_info", []):
            iface = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
            if iface.network.overlaps(subnet):
                return True
    return False


def create_namespace(netns: str, veth: str, bridge: str, address: ipaddress.IPv4Interface) -> None:
    """A namespace whose ``eth0`` is plugged into ``bridge`` with ``address``."""
    ip("netns", "add", netns)
    ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    ip("link", "set", veth, "master", bridge, "up")
    ip("addr", "add", str(address), "dev", "eth0", netns=netns)
    ip("link", "set", "eth0", "up", netns=netns)
    ip("link", "set", "lo", "up", netns=netns)


def delete_namespace(netns: str) -> None:
    if netns_exists(netns):
        ip("netns", "delete", netns)


def delete_link(name: str) -> None:
    """Delete a link if it is still there (a veth vanishes by itself with its namespace)."""
    if link_exists(name):
        out = ip("link", "delete", name, check=False)
        if link_exists(name):
            raise LabError(f"could not delete link {name}: {out.strip()}")


def netns_path(netns: str) -> Path:
    return NETNS_DIR / netns
