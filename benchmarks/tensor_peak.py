"""Tensor memory at the peak of synthesis, counted without running it: any teacher, size and batch in seconds.

    python -m benchmarks.tensor_peak                                   # 512x512, batch 16, both teachers, fp32, bf16
    python -m benchmarks.tensor_peak --size 64 --batch 2 --check       # also count a real run of the engine

:class:`TensorPeak` is a dispatch mode that sees every tensor an operation returns and adds up the bytes of the
storages alive, dropping each when its storage is freed. Under torch's ``FakeTensorMode`` tensors have shapes,
dtypes and storages but no data, so the count of a 512x512, batch-16 inversion of deeplabv3_resnet50 takes seconds
and no memory. The count is what a GPU's caching allocator must hold at least (``torch.cuda.max_memory_allocated``
is the same sum rounded up per block); the CUDA context, cuDNN's workspaces and the allocator's rounding come on
top, and on a CPU the interpreter and torch's libraries.

What is counted: the teacher's weights and buffers, then two inversion steps as :class:`~seginv.synthesis.engine.
Inverter` runs them (its objective with the BatchNorm prior's hooks, backward, Adam, clamping) and the final
teacher pass that labels the images (upsampled logits, softmax, argmax). Deliberate differences from a real run:

- the augmentation rolls by one pixel and flips, always: a fake tensor has no values to draw from, and roll and flip
  make tensors of the same size whatever the draw;
- the loop leaves out the engine's finiteness checks and its copies to numpy, which read values;
- bf16 follows CPU autocast's lists of operations, which differ from CUDA's in a few operations.

``--check`` counts a real run of ``Inverter.run`` on the CPU at the given size the same way, so the two can be
compared (``tests/test_tensor_peak.py`` checks that they are equal at a small size).
"""

from __future__ import annotations

import argparse
import json
import weakref

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from seginv.metrics import class_map
from seginv.models import create_model
from seginv.synthesis.aggregation import wide_scales
from seginv.synthesis.engine import InversionConfig, Inverter
from seginv.synthesis.targets import TargetPlan, plan_targets

#: the teachers: our Scenes default and the issue's DeepLab-sized one (random weights: memory needs only shapes)
ARCHS = {"deeplab-mini": "deeplab-mini", "deeplabv3_resnet50": "torchvision:deeplabv3_resnet50"}
NAMES = ["background", *[f"c{i}" for i in range(1, 21)]]


class TensorPeak(TorchDispatchMode):
    """Bytes of the tensor storages alive (``now``) and their most (``peak``), over the operations run inside it.

    ``tensors`` given at construction (a model's weights) count from the start. A storage counts once, however many
    views of it exist, at its current size, until it is freed.
    """

    def __init__(self, *tensors: torch.Tensor) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.now = self.peak = 0
        for t in tensors:
            self._see(t)

    def _see(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key, size = id(storage), storage.nbytes()
        if key not in self.live:
            weakref.finalize(storage, self._free, key)
        self.now += size - self.live.get(key, 0)
        self.live[key] = size
        self.peak = max(self.peak, self.now)

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._see(t)
        return out


def teacher(arch: str) -> torch.nn.Module:
    """A 21-class (VOC-sized) teacher with random weights: memory depends on shapes only."""
    return create_model(ARCHS[arch], NAMES)


def target_plan(batch: int) -> TargetPlan:
    return plan_targets(batch, len(NAMES), list(range(1, len(NAMES))), background=0, seed=0)


def inverter(arch: str, size: int, batch: int, precision: str) -> Inverter:
    model = teacher(arch)
    model.to = lambda *a, **k: model  # on the CPU already; a fake tensor's .to() copies, which a module cannot swap in
    cfg = InversionConfig(size=(size, size), batch_size=batch, steps=2, precision=precision)
    return Inverter(model, cfg, torch.device("cpu"))


def counted(arch: str, size: int, batch: int, precision: str) -> float:
    """MiB of tensors alive at the peak of two inversion steps and the final labelling pass, on fake tensors."""
    plan = target_plan(batch)
    wide = wide_scales(plan.r)  # as Inverter.run decides it; it reads values, so before the tensors turn fake
    with FakeTensorMode():
        inv = inverter(arch, size, batch, precision)
        inv.augment = lambda x: torch.roll(x, shifts=(1, 1), dims=(2, 3)).flip(3)
        with TensorPeak(*inv.model.parameters(), *inv.model.buffers()) as peak:
            x = torch.randn(batch, 3, size, size).requires_grad_(True)
            y, r = torch.as_tensor(plan.targets), torch.as_tensor(plan.r, dtype=torch.float32)
            opt = inv.optimizer(x)
            with inv.bn_stats:
                for _ in range(inv.cfg.steps):  # Inverter.run's steps without its finiteness checks
                    inv.descend(inv.objective(x, y, r, wide)["total"], opt, x)
            with torch.no_grad():
                class_map(inv.model(x).float().softmax(1))
    return peak.peak / 2**20


def counted_real_run(arch: str, size: int, batch: int, precision: str) -> float:
    """The same count for a real ``Inverter.run`` on the CPU (real data, real augmentation)."""
    inv, plan = inverter(arch, size, batch, precision), target_plan(batch)
    with TensorPeak(*inv.model.parameters(), *inv.model.buffers()) as peak:
        inv.run(plan.targets, plan.r, seed=0)
    return peak.peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--arch", nargs="+", choices=sorted(ARCHS), default=list(ARCHS))
    ap.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    ap.add_argument("--check", action="store_true", help="also count a real run on the CPU (slow at large sizes)")
    args = ap.parse_args()
    rows = []
    for arch in args.arch:
        for precision in args.precision:
            row = {"arch": arch, "precision": precision, "size": args.size, "batch": args.batch,
                   "counted_mib": round(counted(arch, args.size, args.batch, precision), 1)}
            if args.check:
                row["real_run_counted_mib"] = round(counted_real_run(arch, args.size, args.batch, precision), 1)
            rows.append(row)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
