"""Cost of one SegInversion step against its floor, and the share of time spent writing shards
(docs/design.md, section 8).

    python benchmarks/synthesis_speed.py --model assets/scenes-voc-15-x-step0.pt --batch-size 16 --size 64

Measured side by side in one process, taking turns in rounds, the order turning from round to round. Every step is
timed on its own and a row's figure is the median over all its steps of all rounds, so a slow spell of a shared
machine, which lands on a few steps, does not move it:

- floor: the frozen teacher's forward + backward to the input pixels at the same batch and resolution, as a user
  calls it (logits upsampled to the input size), and at the head's own resolution (no upsampling), which is what
  the engine runs since eq. 1 pools the output map;
- engine: one full inversion step (augmentation, forward with the BatchNorm prior, aggregation, loss, priors,
  backward, Adam, clamping): the time from one call of the objective to the next, so the batch's set-up and its
  final teacher pass are not in it;
- engine without the BatchNorm prior, to show what the prior costs;
- engine as revision 2 computed the BatchNorm prior's backward (:class:`Revision2Moments`; everything else of the
  step is bit for bit revision 2's): the cost the current backward saves. One batch synthesized both ways from the
  same start gives the largest and mean pixel difference of the written images and the share of pixels where the
  teacher's argmax agrees.

Then a whole ``synthesize`` run of ``--run-images`` images reports the time spent writing shards (compression,
checksums, fsync, manifest) as a share of the total.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from seginv.models.checkpoint import load_model
from seginv.synthesis.engine import InversionConfig, Inverter
from seginv.synthesis.priors import BatchNormInputStats, BatchNormWithMoments
from seginv.synthesis.run import RunConfig, resolve_classes, synthesize
from seginv.synthesis.targets import plan_targets


def floor_step(model, b: int, size: int, iters: int, device, upsample: bool = True) -> list[float]:
    """Seconds of each of ``iters`` forward+backward passes of the frozen teacher to the pixels, after a warm-up."""
    x = torch.randn(b, 3, size, size, device=device, requires_grad=True)
    for p in model.parameters():
        p.requires_grad_(False)
    model(x, upsample=upsample).mean().backward()  # warm-up
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        x.grad = None
        model(x, upsample=upsample).mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times


def engine_step(inverter: Inverter, plan, steps: int) -> list[float]:
    """Seconds of each of ``steps`` inversion steps of one batch: the time from one call of the objective to the
    next (a ``steps + 1``-step batch), so the batch's set-up and its final teacher pass are not in any of them. On a
    GPU the step's finiteness check waits for the forward, so in a steady run each interval holds one step's device
    work (the previous step's backward finishing, this step's forward)."""
    marks: list[float] = []
    objective = inverter._objective

    def marked(*args):
        marks.append(time.perf_counter())
        return objective(*args)

    inverter._objective = marked
    inverter.cfg = dataclasses.replace(inverter.cfg, steps=steps + 1)
    try:
        inverter.run(plan.targets, plan.r, seed=0)
    finally:
        del inverter._objective
    return [b - a for a, b in zip(marks, marks[1:])]


def take_turns(timings: dict[str, Callable[[], list[float]]], rounds: int) -> dict[str, list[list[float]]]:
    """Each round calls every ``timings[name]()`` once, in an order that turns from round to round so that no row
    always runs after the same one; returns each name's step times, one list per round."""
    rows: dict[str, list[list[float]]] = {name: [] for name in timings}
    names = list(timings)
    for k in range(rounds):
        for name in names[k % len(names):] + names[:k % len(names)]:
            rows[name].append(timings[name]())
    return rows


class Revision2Moments(BatchNormWithMoments):
    """The BatchNorm prior's backward as engine revision 2 computed it: the variance's part and the per-channel
    constant in one ``addcmul`` (two broadcast operands); the comparison row."""

    @staticmethod
    def backward(ctx, g_y, g_mean, g_var):
        x, mean, scale = ctx.saved_tensors
        n, shape = x.numel() // x.shape[1], (1, -1, 1, 1)
        a = 2 / n * g_var
        grad = torch.addcmul((g_mean / n - a * mean).view(shape), x, a.view(shape))
        grad = grad.addcmul_(g_y, scale.view(shape))
        return grad.to(x.dtype), None, None, None, None, None, None


class Revision2Stats(BatchNormInputStats):
    moments = Revision2Moments


def image_difference(a: Inverter, b: Inverter, plan, steps: int) -> dict[str, float]:
    """One batch of ``steps`` synthesis steps made by ``a`` and by ``b`` (the same teacher) from the same seed: the
    written pixels' largest and mean difference (levels) and the share of pixels where the teacher's argmax on them
    agrees."""
    for inverter in (a, b):
        inverter.cfg = dataclasses.replace(inverter.cfg, steps=steps)
    ra, rb = a.run(plan.targets, plan.r, seed=0), b.run(plan.targets, plan.r, seed=0)
    diff = np.abs(ra.pixels.astype(np.int16) - rb.pixels.astype(np.int16))
    return {"max_levels": int(diff.max()), "mean_levels": round(float(diff.mean()), 3),
            "argmax_agreement": round(float((ra.masks == rb.masks).mean()), 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="assets/scenes-voc-15-x-step0.pt")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="steps (iterations) per timing")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--run-images", type=int, default=64)
    ap.add_argument("--run-steps", type=int, default=50)
    ap.add_argument("--diff-steps", type=int, default=200,
                    help="synthesis steps of the batch made both ways for the image difference (the default's 200)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--profile", type=int, metavar="STEPS",
                    help="then run torch's profiler over this many engine steps and print its busiest operations")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = load_model(args.model)[0].to(device).eval()
    plan = plan_targets(args.batch_size, model.num_classes, resolve_classes(model, None), seed=0)
    cfg = InversionConfig(size=(args.size, args.size), batch_size=args.batch_size)
    full = Inverter(model, cfg, device)
    no_bn = Inverter(model, dataclasses.replace(cfg, bn=0.0), device)
    rev2 = Inverter(model, cfg, device)
    rev2.bn_stats = Revision2Stats(rev2.model)
    timings = {
        "floor": lambda: floor_step(model, args.batch_size, args.size, args.steps, device),
        "floor_head": lambda: floor_step(model, args.batch_size, args.size, args.steps, device, upsample=False),
        "engine": lambda: engine_step(full, plan, args.steps),
        "engine_no_bn": lambda: engine_step(no_bn, plan, args.steps),
        "engine_rev2": lambda: engine_step(rev2, plan, args.steps),
    }
    rows = take_turns(timings, args.rounds)
    med = {k: statistics.median(t for r in v for t in r) for k, v in rows.items()}
    per_round = [statistics.median(e) / statistics.median(f) for e, f in zip(rows["engine"], rows["floor_head"])]
    with tempfile.TemporaryDirectory() as d:
        run_cfg = dataclasses.replace(cfg, steps=args.run_steps)
        s = synthesize(model, d, run_cfg, RunConfig(num_images=args.run_images, shard_size=args.run_images // 2 or 1),
                       device=device)
    out = {
        "device": str(device), "threads": torch.get_num_threads(), "batch": args.batch_size, "size": args.size,
        "floor_ms": round(1000 * med["floor"], 2), "floor_head_ms": round(1000 * med["floor_head"], 2),
        "engine_ms": round(1000 * med["engine"], 2),
        "engine_no_bn_ms": round(1000 * med["engine_no_bn"], 2),
        "ratio_engine_to_floor": round(med["engine"] / med["floor"], 3),
        "ratio_engine_no_bn_to_floor": round(med["engine_no_bn"] / med["floor"], 3),
        "engine_rev2_ms": round(1000 * med["engine_rev2"], 2),
        "ratio_engine_rev2_to_floor_head": round(med["engine_rev2"] / med["floor_head"], 3),
        "images_vs_rev2": image_difference(full, rev2, plan, args.diff_steps),
        "ratio_engine_to_floor_head": round(med["engine"] / med["floor_head"], 3),
        "ratio_engine_to_floor_head_per_round": [round(r, 3) for r in per_round],
        "run": {"images": args.run_images, "steps": args.run_steps, "seconds": round(s["seconds"], 2),
                "write_seconds": round(s["write_seconds"], 3),
                "write_share": round(s["write_seconds"] / s["seconds"], 4)},
    }
    print(f"floor (teacher fwd+bwd)   {out['floor_ms']:8.2f} ms/step")
    print(f"floor, no upsampling      {out['floor_head_ms']:8.2f} ms/step")
    print(f"engine step               {out['engine_ms']:8.2f} ms/step   ratio {out['ratio_engine_to_floor']:.3f} "
          f"(to the floor without upsampling: {out['ratio_engine_to_floor_head']:.3f}; "
          f"per round {min(per_round):.3f}-{max(per_round):.3f})")
    print(f"engine step, no BN prior  {out['engine_no_bn_ms']:8.2f} ms/step   ratio {out['ratio_engine_no_bn_to_floor']:.3f}")
    print(f"engine as revision 2      {out['engine_rev2_ms']:8.2f} ms/step   (to the floor without "
          f"upsampling: {out['ratio_engine_rev2_to_floor_head']:.3f})")
    print(f"images, vs revision 2     {out['images_vs_rev2']}")
    print(f"shard writing             {out['run']['write_seconds']:8.3f} s of {out['run']['seconds']} s "
          f"({100 * out['run']['write_share']:.2f}%) for {args.run_images} images x {args.run_steps} steps")
    print(json.dumps(out))
    if args.profile:
        with torch.profiler.profile() as prof:
            engine_step(full, plan, args.profile)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
