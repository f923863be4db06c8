"""How well synthesized images show their targets, and how r sets object size (seed 002, Fig. 3).

    python -m benchmarks.synthesis_quality --model assets/scenes-voc-15-x-step0.pt --num-images 128
    python -m benchmarks.synthesis_quality --model assets/scenes-voc-15-x-step0.pt --set steps=100 --set bn=0.001

Part 1 synthesizes ``--num-images`` images with the given settings (the CLI defaults unless ``--set`` changes
them) and reports the teacher's agreement with the targets: the share of images whose foreground targets all
appear in the teacher's argmax, the share of (image, target) pairs that appear, the share of pixels given to
foreground classes that were not asked for, and the mean target size per r.

Part 2 (Fig. 3 analogue) keeps one noise tensor and one set of targets and inverts them with each fixed r of
``--fig3-r``, reporting the mean share of the image the teacher gives to the targets; ``--grid PNG`` saves the images.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from seginv.models.checkpoint import load_model
from seginv.replay.summary import AgreementCounter, inspect_replay
from seginv.synthesis.engine import InversionConfig, Inverter
from seginv.synthesis.run import RunConfig, resolve_classes, synthesize
from seginv.synthesis.targets import plan_targets


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)  # numbers, lists, true/false
        except ValueError:
            out[k] = v  # plain words such as loss=ce
        if k in ("size", "r_choices", "betas"):
            out[k] = tuple(out[k])
    return out


def agreement(model, inv: InversionConfig, n: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        synthesize(model, d, inv, RunConfig(num_images=n, shard_size=n, seed=seed))
        seconds = time.perf_counter() - t
        r = inspect_replay(d)
    return {"seconds": round(seconds, 1), **r["agreement"], "mean_loss": r["mean_loss"]}


def fig3(model, inv: InversionConfig, r_values: list[float], n: int, seed: int, grid: str | None) -> dict:
    ids = resolve_classes(model, None)
    plan = plan_targets(n, model.num_classes, ids, max_classes=1, seed=seed)
    inverter = Inverter(model, inv, torch.device("cpu"))
    sizes, rows = {}, []
    for r in r_values:
        res = inverter.run(plan.targets, np.full_like(plan.r, r), seed)
        c = AgreementCounter(model.num_classes, 0)
        c.update(res.masks, plan.targets, np.full_like(plan.r, r))
        sizes[str(r)] = c.result(model.class_names)["size_by_r"][str(float(r))]
        rows.append(np.concatenate(list(res.pixels), axis=1))
    if grid:
        from PIL import Image

        Image.fromarray(np.concatenate(rows, axis=0)).resize(
            (rows[0].shape[1] * 2, len(rows) * rows[0].shape[0] * 2), Image.NEAREST).save(grid)
    return {"target_size_by_r": sizes, "images_per_r": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="assets/scenes-voc-15-x-step0.pt")
    ap.add_argument("--num-images", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="InversionConfig field=value (repeatable)")
    ap.add_argument("--fig3-r", default="0.5,5,10")
    ap.add_argument("--fig3-images", type=int, default=16)
    ap.add_argument("--skip-agreement", action="store_true")
    ap.add_argument("--skip-fig3", action="store_true")
    ap.add_argument("--grid", help="write the Fig. 3 image grid (one row per r) to this PNG")
    args = ap.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    model = load_model(args.model)[0]
    inv = InversionConfig(**parse_set(args.set))
    out = {"model": args.model, "settings": args.set, "seed": args.seed, "threads": torch.get_num_threads()}
    if not args.skip_agreement:
        out["agreement"] = agreement(model, inv, args.num_images, args.seed)
    if not args.skip_fig3:
        out["fig3"] = fig3(model, inv, [float(v) for v in args.fig3_r.split(",")], args.fig3_images, args.seed, args.grid)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
