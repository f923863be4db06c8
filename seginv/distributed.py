"""Running under torchrun: the process group, this process's rank, and starting torchrun for ``--nproc N``.

A command started by ``torchrun --nproc-per-node N -m seginv ...`` (or by ``seginv ... --nproc N``, which starts
torchrun itself) finds ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment; :func:`group` joins the
process group (gloo on CPU, nccl on CUDA, chosen from the device) for the block. Without them everything is one
process and :data:`SINGLE` stands in, so the commands have one code path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .errors import SeginvError


@dataclass(frozen=True)
class Group:
    """This process's place in the run: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0, which writes what there is one of (manifests, checkpoints, records) and talks to the user."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (on every rank)."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


SINGLE = Group()


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each process takes the GPU of its ``LOCAL_RANK``; CPU stays CPU."""
    if device.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


@contextmanager
def group(device: torch.device) -> Iterator[Group]:
    """Join torchrun's process group for the block (nothing to join when not launched by it)."""
    if not launched():
        yield SINGLE
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend=backend)
    except (RuntimeError, ValueError) as e:
        raise SeginvError(f"could not join torchrun's process group ({backend}): {e}.",
                          "Start with `torchrun --nproc-per-node N -m seginv ...` or `seginv ... --nproc N`.") from None
    try:
        yield Group(dist.get_rank(), dist.get_world_size())
    finally:
        dist.destroy_process_group()


def relaunch(nproc: int, argv: list[str]) -> int:
    """Run ``seginv argv`` as ``nproc`` processes under torchrun (on this machine) and return its exit status."""
    if launched():
        raise SeginvError("--nproc was given inside a torchrun job.", "Drop --nproc; torchrun already set the count.")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m",
           "seginv.cli", *argv]
    return subprocess.run(cmd).returncode
