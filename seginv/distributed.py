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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler

from .errors import SeginvError
from .processes import LAUNCHER, die_with_parent

T = TypeVar("T")


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

    def mean(self, value: float) -> float:
        """The mean over ranks of a number each rank holds (the loss of its part of the batch)."""
        if self.world == 1:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over ranks, in place (a confusion matrix: each rank counted its share of the images)."""
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def broadcast(self, model: torch.nn.Module) -> None:
        """Give every rank rank 0's weights and buffers (they start equal from the same seed; this makes sure)."""
        if self.world > 1:
            for t in model.state_dict().values():
                dist.broadcast(t, 0)

    def sync_gradients(self, model: torch.nn.Module) -> None:
        """Average the gradients over ranks, so every rank takes the step the whole global batch asks for (what
        DistributedDataParallel does, without its constraints on how often the model runs forward per step)."""
        if self.world == 1:
            return
        for p in model.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world

    def check_same(self, model: torch.nn.Module) -> None:
        """Refuse to go on when the ranks' weights differ (they take identical steps, so they must not)."""
        if self.world == 1:
            return
        mine = float(sum(p.detach().double().sum().item() for p in model.parameters()))
        every = self.gather(mine)
        if len(set(every)) > 1:
            raise SeginvError(f"the processes' models diverged (weight sums {every}).",
                              "Please report this with the command; rerun in one process meanwhile.")

    def on_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run by rank 0 alone (what there is one of: a check, a lock, a file), its result given to every
        rank; when it fails, every rank stops with the error, so that none waits for the others forever."""
        if self.world == 1:
            return fn()
        box: list[Any] = [None]
        failure: BaseException | None = None
        if self.main:
            try:
                box = [("ok", fn())]
            except Exception as e:  # noqa: BLE001  (handed to every rank, then raised here as it was)
                failure = e
                box = [("error", e if isinstance(e, SeginvError) else f"{type(e).__name__}: {e}")]
        dist.broadcast_object_list(box, 0)
        kind, value = box[0]
        if failure is not None:
            raise failure
        if kind == "error":
            raise value if isinstance(value, SeginvError) else SeginvError(f"process 0 stopped: {value}.")
        return value

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (on every rank)."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


SINGLE = Group()
#: the commands that share their work among torchrun's processes; the others refuse to start under it
TORCHRUN_COMMANDS = ("synthesize", "train", "distill", "run")


class RankSlice(Sampler[list[int]]):
    """The batches of ``batches`` (a batch sampler over the whole data), each cut into ``world`` strided parts of
    which this rank takes its own: the ranks together see the global batches one process sees, in the same order."""

    def __init__(self, batches: BatchSampler, group: Group) -> None:
        self.batches, self.group = batches, group

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch[self.group.rank::self.group.world]

    def __len__(self) -> int:
        return len(self.batches)


def shuffled_loader(data: Dataset, batch: int, generator: torch.Generator, workers: int, group: Group,
                    persistent: bool = False, wrap: Callable[[Any], Any] | None = None) -> DataLoader:
    """Shuffled batches of ``batch`` (dropping the last partial one when there is more than one batch), drawn from
    ``generator`` exactly as a one-process ``DataLoader(shuffle=True)`` draws them; under torchrun each rank gets its
    part of every global batch. ``wrap`` wraps the batch sampler (e.g. to leave batches out)."""
    drop = len(data) > batch  # type: ignore[arg-type]
    if batch < group.world:
        raise SeginvError(f"a batch of {batch} cannot be shared by {group.world} processes.",
                          f"Use a batch of at least {group.world}, or fewer processes.")
    sampler: Any = BatchSampler(RandomSampler(data, generator=generator), batch, drop)  # type: ignore[arg-type]
    if wrap is not None:
        sampler = wrap(sampler)
    if group.world > 1:
        sampler = RankSlice(sampler, group)
    return DataLoader(data, batch_sampler=sampler, num_workers=workers, generator=generator,
                      persistent_workers=persistent and workers > 0,
                      worker_init_fn=partial(die_with_parent, os.getpid()) if workers else None)


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
    env = {**os.environ, LAUNCHER: str(os.getpid())}
    return subprocess.run(cmd, env=env, preexec_fn=partial(die_with_parent, os.getpid())).returncode  # noqa: PLW1509
