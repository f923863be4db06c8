"""Cost of one SegInversion step against its floor, and the share of time spent writing shards
(docs/design.md, section 8).

    python -m benchmarks.synthesis_speed --model assets/scenes-voc-15-x-step0.pt --batch-size 16 --size 64

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
- engine with the image priors and the BatchNorm prior's loss summed through autograd, as before they became one
  autograd node each (:func:`~seginv.synthesis.priors.image_priors`, ``batchnorm_statistics_loss``): the cost
  that saves. One batch synthesized both ways from the same start gives the largest and mean pixel difference of
  the written images and the share of pixels where the teacher's argmax agrees (bit for bit: 0, 0 and 1).

Then a whole ``synthesize`` run of ``--run-images`` images reports the time spent writing shards (compression,
checksums, fsync, manifest) as a share of the total.
"""

from __future__ import annotations

import argparse
import contextlib
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
from seginv.synthesis import engine
from seginv.synthesis.priors import l2_norm, total_variation_l1, total_variation_l2
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
    objective = inverter.objective

    def marked(*args):
        marks.append(time.perf_counter())
        return objective(*args)

    inverter.objective = marked
    inverter.cfg = dataclasses.replace(inverter.cfg, steps=steps + 1)
    try:
        inverter.run(plan.targets, plan.r, seed=0)
    finally:
        del inverter.objective
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


def priors_through_autograd(x, tv_l1, tv_l2, l2):
    """The image priors as the engine summed them before :func:`~seginv.synthesis.priors.image_priors`."""
    prior = torch.zeros(x.shape[0], device=x.device)
    for weight, term in ((tv_l1, total_variation_l1), (tv_l2, total_variation_l2), (l2, l2_norm)):
        if weight:
            prior = prior + weight * term(x)
    return prior


def bn_loss_through_autograd(stats, first_multiplier):
    """The BatchNorm prior's loss as the engine summed it before, a graph of small operations per layer."""
    total = torch.zeros((), device=stats[0][0].device)
    for i, (mu, var, rm, rv) in enumerate(stats):
        w = first_multiplier if i == 0 else 1.0
        total = total + w * ((mu.float() - rm.float()).norm() + (var.float() - rv.float()).norm())
    return total


@contextlib.contextmanager
def priors_as_before():
    """Inside, the engine computes its priors and the BatchNorm prior's loss through autograd, as before."""
    saved = engine.image_priors, engine.batchnorm_statistics_loss
    engine.image_priors, engine.batchnorm_statistics_loss = priors_through_autograd, bn_loss_through_autograd
    try:
        yield
    finally:
        engine.image_priors, engine.batchnorm_statistics_loss = saved


def before(run: Callable[[], object]) -> Callable[[], object]:
    """``run`` with the priors computed as before (:func:`priors_as_before`)."""
    def wrapped():
        with priors_as_before():
            return run()
    return wrapped


def image_difference(a: Inverter, b: Inverter, plan, steps: int, b_inside=contextlib.nullcontext) -> dict[str, float]:
    """One batch of ``steps`` synthesis steps made by ``a`` and by ``b`` (the same teacher; ``b`` inside the context
    ``b_inside()``) from the same seed: the written pixels' largest and mean difference (levels) and the share of
    pixels where the teacher's argmax on them agrees."""
    for inverter in (a, b):
        inverter.cfg = dataclasses.replace(inverter.cfg, steps=steps)
    ra = a.run(plan.targets, plan.r, seed=0)
    with b_inside():
        rb = b.run(plan.targets, plan.r, seed=0)
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
    old = Inverter(model, cfg, device)
    timings = {
        "floor": lambda: floor_step(model, args.batch_size, args.size, args.steps, device),
        "floor_head": lambda: floor_step(model, args.batch_size, args.size, args.steps, device, upsample=False),
        "engine": lambda: engine_step(full, plan, args.steps),
        "engine_no_bn": lambda: engine_step(no_bn, plan, args.steps),
        "engine_before": before(lambda: engine_step(old, plan, args.steps)),
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
        "engine_before_ms": round(1000 * med["engine_before"], 2),
        "ratio_engine_before_to_floor_head": round(med["engine_before"] / med["floor_head"], 3),
        "images_vs_before": image_difference(full, old, plan, args.diff_steps, priors_as_before),
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
    print(f"engine, priors as before  {out['engine_before_ms']:8.2f} ms/step   (to the floor without "
          f"upsampling: {out['ratio_engine_before_to_floor_head']:.3f})")
    print(f"images, vs before         {out['images_vs_before']}")
    print(f"shard writing             {out['run']['write_seconds']:8.3f} s of {out['run']['seconds']} s "
          f"({100 * out['run']['write_share']:.2f}%) for {args.run_images} images x {args.run_steps} steps")
    print(json.dumps(out))
    if args.profile:
        with torch.profiler.profile() as prof:
            engine_step(full, plan, args.profile)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
