"""The accelerator check: every speed and memory figure of docs/performance.md, measured side by side in one run.

    bash benchmarks/gpu_check.sh                                   # on a GPU: under 8 minutes on one H100/H200
    python -m benchmarks.gpu_check --device cpu                    # the same figures at the sizes a CPU runs
    python -m benchmarks.gpu_check --device cpu --quick            # the same code paths at toy sizes (tests run it)
    python -m benchmarks.gpu_check --device cpu --only peak_memory_mib --memory 512 16 --memory-arch deeplab-mini
                                                                   # one figure, at other sizes
                                                                   # (--memory-precision fp32: one precision)

Prints one line per figure and writes them as JSON to ``--out``:

Sizes are the ``gpu`` profile's below; :data:`PROFILES` holds the ``cpu`` and ``quick`` ones.

1. synthesis: one inversion step / the bare teacher forward+backward to the pixels, at two sizes (64 and 256);
2. distillation: one HRHF step (teacher forward on real + fake, student forward, eq. 3-5, backward, AdamW) / one
   plain supervised step (student forward, cross-entropy, backward, AdamW) on the same batch;
3. bf16 against fp32: synthesis speed ratio, the largest and mean difference of the written pixels (uint8), and the
   eval mIoU of the same model with and without bf16 autocast;
4. peak memory of synthesis at 512x512, batch 16, for deeplab-mini and torchvision's
   deeplabv3_resnet50 (random weights, 21 classes), fp32 and bf16: the CUDA allocator's peak on a GPU, the
   process's peak RSS on a CPU, interpreter and torch included (each configuration in its own process); next to
   it, the tensors alive at the peak as ``benchmarks/tensor_peak.py`` counts them without running anything;
5. processes: ``seginv synthesize`` as 2 processes x 1 thread against 1 process x 2 threads (on the CPU): images
   per second of each, and whether each output is byte-identical to 1 process x 1 thread's (the bytes depend on
   the threads per process, whose float sums differ, not on the number of processes);
6. compile and channels-last: one inversion step with the teacher compiled (inductor; the quick profile uses
   aot_eager, which traces without generating code) and with NHWC layout, each / the eager NCHW step, the first batch's extra
   seconds (the compilation) and the largest pixel difference from eager.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import filecmp
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.synthesis_speed import engine_step, floor_step, take_turns
from benchmarks.tensor_peak import ARCHS, counted, teacher
from seginv.data.classes import IGNORE
from seginv.distill.methods import Batch, create_method
from seginv.metrics import class_map
from seginv.models.checkpoint import load_model
from seginv.synthesis.engine import InversionConfig, Inverter
from seginv.synthesis.targets import plan_targets

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "assets" / "scenes-voc-15-x-step0.pt"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fns: dict, device: torch.device, rounds: int) -> dict:
    """Median seconds of each ``fns[name]()`` over ``rounds``, after one warm-up each; the functions take turns
    within every round, so a slower spell of a shared machine falls on all of them alike."""
    times: dict = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in times.items()}


def inverter(model, size: int, batch: int, steps: int, device: torch.device, precision: str = "fp32", **speed):
    cfg = dataclasses.replace(InversionConfig(), size=(size, size), batch_size=batch, steps=steps, precision=precision,
                              **speed)
    fg = [c for c in range(model.num_classes) if c != 0]
    plan = plan_targets(batch, model.num_classes, fg, background=0, seed=0)
    return Inverter(model, cfg, device), plan


def synthesis_ratio(model, size: int, batch: int, steps: int, device: torch.device) -> dict:
    inv, plan = inverter(model, size, batch, steps, device)
    rounds = take_turns({"engine": lambda: engine_step(inv, plan, steps),
                         "floor": lambda: floor_step(model, batch, size, steps, device, upsample=False)}, 3)
    engine, floor = (statistics.median(t for r in rounds[k] for t in r) for k in ("engine", "floor"))
    return {"size": size, "batch": batch, "engine_step_s": engine, "teacher_fwd_bwd_s": floor, "ratio": engine / floor}


def distill_ratio(model, size: int, batch: int, device: torch.device, rounds: int) -> dict:
    teacher = model.to(device).eval()
    student = copy.deepcopy(teacher)
    student.add_classes(["new_a", "new_b"], init="mib")
    student.to(device).train()
    for q in student.parameters():  # the synthesis figures froze the teacher: the student trains every weight
        q.requires_grad_(True)
    for m in student.modules():  # HRHF's default: BatchNorm frozen
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    real = torch.randn(batch, 3, size, size, generator=g).to(device)
    fake = torch.randn(batch, 3, size, size, generator=g).to(device)
    labels = torch.randint(0, student.num_classes, (batch, size, size), generator=g).to(device)
    both = torch.cat([real, fake])
    method = create_method("hrhf")

    def hrhf_step() -> None:
        with torch.no_grad():
            t_logits = teacher(both).float()
        s_logits = student(both).float()
        all_labels = torch.cat([labels, class_map(t_logits[batch:])])
        replay = torch.arange(2 * batch, device=device) >= batch
        loss = method.loss(Batch(s_logits, t_logits, all_labels, replay))["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def plain_step() -> None:
        loss = F.cross_entropy(student(both).float(), torch.cat([labels, labels]), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    h, p = timed({"hrhf": hrhf_step, "plain": plain_step}, device, rounds).values()
    return {"size": size, "batch": f"{batch} real + {batch} fake", "hrhf_step_s": h, "plain_step_s": p, "ratio": h / p}


def bf16_agreement(model, size: int, batch: int, steps: int, device: torch.device) -> dict:
    out = {}
    pixels = {}
    for precision in ("fp32", "bf16"):
        inv, plan = inverter(model, size, batch, steps, device, precision)
        t = time.perf_counter()
        pixels[precision] = inv.run(plan.targets, plan.r, seed=0).pixels.astype(np.int16)
        sync(device)
        out[f"{precision}_s"] = time.perf_counter() - t
    diff = np.abs(pixels["fp32"] - pixels["bf16"])
    g = torch.Generator().manual_seed(1)
    images = torch.randn(8, 3, size, size, generator=g).to(device)  # eval agreement: argmax maps on the same inputs
    with torch.no_grad():
        a = model(images).argmax(1)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            b = model(images).argmax(1)
    return {"speed_fp32_over_bf16": out["fp32_s"] / out["bf16_s"], "max_pixel_diff": int(diff.max()),
            "mean_pixel_diff": float(diff.mean()), "argmax_agreement": float((a == b).float().mean())}


def peak_memory(arch: str, size: int, batch: int, precision: str, device: str) -> dict:
    """MiB at the peak of one short synthesis batch (two steps), measured in a fresh process, and the tensors alive
    at its peak as benchmarks/tensor_peak.py counts them without running it."""
    code = (f"import benchmarks.gpu_check as g; print(g.measure_peak({arch!r}, {size}, {batch}, {precision!r}, "
            f"{device!r}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return {"measured": float(r.stdout.strip().splitlines()[-1]), "counted": counted(arch, size, batch, precision)}


def measure_peak(arch: str, size: int, batch: int, precision: str, device: str) -> float:
    dev = torch.device(device)
    inv, plan = inverter(teacher(arch).to(dev).eval(), size, batch, 2, dev, precision)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    inv.run(plan.targets, plan.r, seed=0)
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # kB on Linux


def processes(num_images: int, steps: int, size: int, *, threads_row: bool = True) -> dict:
    """Images per second of 1 process x 2 threads (``threads_row``), 2 x 1 and 1 x 1, and whether the bytes agree."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["synthesize", "--model", str(MODEL), "--num-images", str(num_images), "--shard-size", "2",
                "--steps", str(steps), "--size", str(size), "--batch-size", "2", "--device", "cpu"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        runs = {"1x2": ["--threads", "2", *args, "--out", f"{tmp}/1x2"],
                "2x1": ["--threads", "1", *args, "--out", f"{tmp}/2x1", "--nproc", "2"],
                "1x1": ["--threads", "1", *args, "--out", f"{tmp}/1x1"]}
        if not threads_row:
            del runs["1x2"]
        out = {}
        for name, a in runs.items():
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "seginv", *a], check=True, env=env, capture_output=True)
            out[f"images_per_s_{name}"] = num_images / (time.perf_counter() - t)
        # the bytes depend on the threads per process (float sums), not on the number of processes
        out["2x1_same_bytes_as_1x1"] = same_files(Path(tmp) / "2x1", Path(tmp) / "1x1")
        if threads_row:
            out["1x2_same_bytes_as_1x1"] = same_files(Path(tmp) / "1x2", Path(tmp) / "1x1")
    return out


def compile_speed(size: int, batch: int, steps: int, device: torch.device, backend: str) -> dict:
    """Eager NCHW, compiled and channels-last inversion of the same batch, each with a fresh copy of the teacher: the
    first batch of each (its extra seconds are the compilation) gives the pixels, then their steps take turns."""
    out, pixels, inverters, first = {"size": size, "batch": batch, "backend": backend}, {}, {}, {}
    for name, speed in (("eager", {}), ("compiled", {"compile": backend}), ("channels_last", {"channels_last": True})):
        model = load_model(MODEL)[0].to(device).eval()
        inv, plan = inverters[name] = inverter(model, size, batch, steps, device, **speed)
        sync(device)
        t = time.perf_counter()
        pixels[name] = inv.run(plan.targets, plan.r, seed=0).pixels.astype(np.int16)
        sync(device)
        first[name] = time.perf_counter() - t
    rounds = take_turns({name: lambda inv=inv, plan=plan: engine_step(inv, plan, steps)
                         for name, (inv, plan) in inverters.items()}, 3)
    for name in inverters:
        out[f"{name}_step_s"] = statistics.median(t for r in rounds[name] for t in r)
        out[f"{name}_first_batch_extra_s"] = first[name] - out[f"{name}_step_s"] * steps
    for name in ("compiled", "channels_last"):
        out[f"{name}_ratio"] = out[f"{name}_step_s"] / out["eager_step_s"]
        out[f"{name}_max_pixel_diff"] = int(np.abs(pixels[name] - pixels["eager"]).max())
    return out


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir() if not p.name.startswith("."))
    return names == sorted(p.name for p in b.iterdir() if not p.name.startswith(".")) and \
        all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


#: Sizes per profile: ``gpu`` is the issue's (what one H100/H200 runs in under 8 minutes); ``cpu`` what a 2-core,
#: 24 GiB machine runs in about ten minutes (512x512 synthesis of deeplabv3_resnet50 at batch 16 needs more memory
#: than it has, and bf16 without AVX-512 runs far slower than fp32, so the memory figures take 256x256, batch 2
#: there); ``quick`` checks that every path runs.
PROFILES = {
    "gpu": {"synthesis": (64, 256), "batch": 16, "steps": 20, "distill": (256, 8, 10), "bf16": (256, 16),
            "memory": (512, 16), "processes": (16, 20), "compile": (256, 16, "inductor")},
    "cpu": {"synthesis": (64, 128), "batch": 16, "steps": 10, "distill": (64, 8, 10), "bf16": (64, 16),
            "memory": (256, 2), "processes": (16, 20), "compile": (64, 16, "inductor")},
    "quick": {"synthesis": (32, 64), "batch": 2, "steps": 3, "distill": (32, 2, 2), "bf16": (32, 2),
              "memory": (64, 2), "processes": (2, 1), "compile": (32, 2, "aot_eager")},
}


#: the figures, in the order they are measured and printed
FIGURES = ("synthesis", "distill", "bf16", "peak_memory_mib", "processes", "compile")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--profile", choices=sorted(PROFILES), help="sizes (default: gpu on CUDA, cpu otherwise)")
    ap.add_argument("--quick", action="store_true", help="the quick profile: checks that every path runs, not speed")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    ap.add_argument("--only", nargs="+", choices=FIGURES, help="measure these figures only (default: all)")
    ap.add_argument("--memory", nargs=2, type=int, metavar=("SIZE", "BATCH"),
                    help="the peak-memory figure at this size and batch instead of the profile's")
    ap.add_argument("--memory-arch", nargs="+", choices=sorted(ARCHS),
                    help="the peak-memory figure for these teachers only")
    ap.add_argument("--memory-precision", nargs="+", choices=("fp32", "bf16"),
                    help="the peak-memory figure at these precisions only")
    args = ap.parse_args()
    device = torch.device(args.device)
    name = "quick" if args.quick else args.profile or ("gpu" if device.type == "cuda" else "cpu")
    p = PROFILES[name]
    model = load_model(MODEL)[0].to(device).eval()
    started = time.perf_counter()
    res = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "torch": torch.__version__, "threads": torch.get_num_threads(), "profile": name}
    steps = p["steps"]
    only = set(args.only or FIGURES)

    def peak_memories() -> dict:
        size, batch = args.memory or p["memory"]
        configs = [(a, q) for a in args.memory_arch or ARCHS for q in args.memory_precision or ("fp32", "bf16")]
        if name == "quick" and not (args.memory_arch or args.memory_precision):
            configs = configs[3:]  # the torchvision teacher in bf16: the path the others do not take
        res["peak_memory_at"] = f"{size}x{size}, batch {batch}"
        return {f"{arch} {precision}": peak_memory(arch, size, batch, precision, args.device)
                for arch, precision in configs}

    figures = {
        "synthesis": lambda: [synthesis_ratio(model, s, p["batch"], steps, device) for s in p["synthesis"]],
        "distill": lambda: distill_ratio(model, *p["distill"][:2], device, p["distill"][2]),
        "bf16": lambda: bf16_agreement(model, *p["bf16"], steps, device),
        "peak_memory_mib": peak_memories,
        "processes": lambda: processes(*p["processes"], 32, threads_row=name != "quick"),
        "compile": lambda: compile_speed(*p["compile"][:2], steps, device, p["compile"][2]),
    }
    for key in FIGURES:
        if key in only:
            res[key] = figures[key]()
    res["seconds"] = time.perf_counter() - started
    for key in FIGURES:
        if key in res:
            print(f"{key}: {json.dumps(res[key])}", flush=True)
    print(f"total {res['seconds']:.0f} s on {res['device']}")
    if args.out:
        args.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
