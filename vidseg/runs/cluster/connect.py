"""Joining a Ray cluster: where it is, how many CPUs it has, how many tasks run at once."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from vidseg.errors import VidsegError


@dataclass(frozen=True)
class Cluster:
    """The Ray cluster a run uses, as found when it connected."""

    address: str
    nodes: int
    cpus: int
    cpus_per_task: int

    @property
    def slots(self) -> int:
        """Tasks that run at once."""
        return max(1, self.cpus // self.cpus_per_task)

    def describe(self) -> str:
        return (f"Ray {self.address}: {self.nodes} node{'s' * (self.nodes != 1)}, {self.cpus} CPUs, "
                f"{self.slots} task{'s' * (self.slots != 1)} of {self.cpus_per_task} CPUs at once")


def connect(address: str, cpus_per_task: int | None = None) -> Cluster:
    """Join the cluster at ``address`` (``auto``: the one ``ray start`` made on this machine; ``local``: a
    new one-machine cluster of this process). Tasks get ``cpus_per_task`` CPUs each, by default as many as
    the smallest node has: one task per node, its OpenVINO using every core."""
    try:
        import ray
    except ImportError:
        raise VidsegError("--ray needs Ray, which is an optional extra: pip install 'vidseg[ray]'") from None
    if cpus_per_task is not None and cpus_per_task < 1:
        raise VidsegError(f"CPUs per task must be at least 1, got {cpus_per_task}")
    if not ray.is_initialized():
        if address not in ("local", "auto"):
            _check_reachable(address)
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if address == "local":
                ray.init(num_cpus=os.cpu_count(), **options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            hint = "" if os.environ.get("RAY_AUTH_MODE") else "; a cluster with tokens needs RAY_AUTH_MODE=token"
            raise VidsegError(f"cannot join a Ray cluster at {address}: {str(e).splitlines()[0]} (start one "
                              f"with 'ray start --head', or use --ray local{hint})") from None
    node_cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]]
    if not any(node_cpus):
        raise VidsegError(f"the Ray cluster at {address} has no CPUs to run on")
    per_task = cpus_per_task or min(c for c in node_cpus if c > 0)
    if per_task > max(node_cpus):
        raise VidsegError(f"no node of the Ray cluster has {per_task} CPUs (largest: {max(node_cpus)})")
    return Cluster(address, len(node_cpus), sum(node_cpus), per_task)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Ray keeps retrying an address nobody answers on for minutes, printing warnings: ask once first."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s).close()
    except ValueError:
        raise VidsegError(f"--ray takes host:port, 'local' or nothing, got {address!r}") from None
    except OSError as e:
        raise VidsegError(f"cannot reach a Ray cluster at {address}: {e.strerror or e} (start one with "
                          "'ray start --head', or use --ray local)") from None


def first_line(e: BaseException) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    errors = [line for line in lines if "Error:" in line and not line.startswith(" ")]
    return (errors[-1] if errors else lines[0] if lines else type(e).__name__).strip()
