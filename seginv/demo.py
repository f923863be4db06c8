"""``seginv demo``: the whole story on the embedded data, on a laptop CPU.

The shipped step-0 Scenes model (15 classes) learns the 5 classes of voc-15-5's step 1 from real images only:
by plain fine-tuning (FT), by HRHF without replay, and by HRHF with fake replay inverted from the model itself.
Every student sees the same real images, 8 per optimizer step, for the same number of steps; the replay student
adds 8 fake images to each step, so the difference between the two HRHF rows is what replay adds. Old, new and all
mIoU are reported before and after, with a picture of the fake images and of the students' predictions.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .data.scenes import ScenesConfig, write_scenes
from .data.splits import test_split
from .data.transforms import normalize
from .distill.trainer import DistillConfig
from .errors import OtherSettings, SeginvError
from .metrics import class_map
from .models.checkpoint import load_model
from .pictures import Picture, mask_grid, with_legend
from .protocols import get_protocol
from .replay.preview import replay_sheet
from .progress import progress
from .synthesis.engine import inversion_config
from .synthesis.run import RunConfig
from .training import TrainConfig
from .workflows import distill, evaluate_model, start_images, synthesize

ASSET = Path(__file__).resolve().parents[1] / "assets" / "scenes-voc-15-x-step0.pt"
PROTOCOL = "voc-15-5"
REAL_PER_BATCH = 8
#: Under the fake images' title: why they look as they do.
PICTURE_NOTE = ("Each starts from a new-class photo and is optimised until the model sees its targets",
                "(its features and scores), not to look real: smeared scenes and structured noise are expected.")
#: Result key -> (method, with replay, label).
STUDENTS = {"ft": ("ft", False, "FT"), "hrhf-no-replay": ("hrhf", False, "HRHF, no replay"),
            "hrhf": ("hrhf", True, "HRHF, fake replay")}


def _metrics(r: dict[str, Any]) -> dict[str, float | None]:
    return {"old": r["old"], "new": r["new"], "all": r["miou"]}


def _predictions_sheet(models: dict[str, Any], data: Path, device: torch.device, n: int = 6) -> Picture:
    """Validation images, their ground truth and each model's prediction, one image per row, with a legend of the
    classes shown (the new ones marked)."""
    names = next(iter(models.values())).class_names
    ds = test_split(data, None, 0, names)
    rng = np.random.default_rng(0)
    images, truth, preds = [], [], {name: [] for name in models}
    for i in rng.choice(len(ds), n, replace=False):
        image, label = ds.read(int(i))
        images.append(image)
        truth.append(ds.label_lut[label])
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]
        for name, m in models.items():
            m.eval()
            with torch.no_grad():
                preds[name].append(class_map(m(normalize(x, m.mean, m.std).to(device)))[0].cpu().numpy().astype(np.uint8))
    truth = [np.where(t == 255, 0, t) for t in truth]  # ignored pixels shown as background
    grid = mask_grid(images, [("ground truth", truth), *preds.items()], cell=96)
    return with_legend(grid, names, truth + [p for ps in preds.values() for p in ps],
                       new=get_protocol(PROTOCOL).current(1))


def draw_picture(work: Path, students: dict[str, Any], data: Path, device: torch.device, num_images: int) -> None:
    """``work/demo.png``: the first 12 fake images of ``work/replay`` beside the teacher's masks, and validation
    images with their ground truth and each student's prediction (``students``: label -> model)."""
    fake_sheet, _ = replay_sheet(work / "replay", num=12, columns=3, cell=80)
    pred_sheet = _predictions_sheet(students, data, device)
    title = 4 + 12 * (1 + len(PICTURE_NOTE))
    canvas = Picture(fake_sheet.width + pred_sheet.width + 12, title + max(fake_sheet.height, pred_sheet.height))
    canvas.text((2, 2), f"fake replay inverted from the step-0 model ({num_images} images, first 12)")
    for k, line in enumerate(PICTURE_NOTE, start=1):
        canvas.text((2, 2 + 12 * k), line)
    canvas.text((fake_sheet.width + 14, 2), "validation: ground truth and each student")
    canvas.paste(fake_sheet, (0, title))
    canvas.paste(pred_sheet, (fake_sheet.width + 12, title))
    canvas.save_png(work / "demo.png", "seginv demo")


def _check_workdir(work: Path) -> None:
    """Refuse a workdir holding anything the demo does not write (a later run replaces its students and picture)."""
    from .models.checkpoint import is_seginv_checkpoint
    from .outputs import run_files

    ours = {"scenes", "replay", "demo.png", *(p.name for key in STUDENTS for p in run_files(work / f"{key}.pt").values())}
    foreign = sorted(p.name for p in work.iterdir() if p.name not in ours) if work.is_dir() else []
    foreign += [f"{key}.pt" for key in STUDENTS
                if (work / f"{key}.pt").is_file() and not is_seginv_checkpoint(work / f"{key}.pt")]
    if foreign:
        raise SeginvError(f"{work} holds files the demo did not write ({', '.join(foreign[:3])}); a run replaces "
                          "its students and picture there.", "Give the demo an empty or its own --workdir.")


def run_demo(workdir: str | os.PathLike[str], *, model: str | os.PathLike[str] = ASSET, num_images: int = 128,
             steps: int = 100, epochs: int = 2, device: torch.device | str = "cpu", seed: int = 0,
             log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Run the demo in ``workdir`` (reusing its dataset and replay if a previous run left them) and return results.
    ``log`` receives a heading when each phase starts and its time when it ends; each phase has its own bar."""
    device = torch.device(device)
    work = Path(workdir)
    if not Path(model).is_file():
        raise SeginvError(f"the demo model {model} is missing.", "Run the demo from a seginv checkout (assets/).")
    _check_workdir(work)
    work.mkdir(parents=True, exist_ok=True)
    started, timings = time.perf_counter(), {}
    phases = 3 + len(STUDENTS)

    def phase(key: str, heading: str) -> None:
        timings[key] = time.perf_counter()
        log(f"[{len(timings)}/{phases}] {heading}")

    def done(key: str, what: str = "") -> None:
        timings[key] = time.perf_counter() - timings[key]
        log(f"      {what}{'; ' if what else ''}{timings[key]:.1f} s")

    data = work / "scenes"
    phase("data", f"the Scenes dataset in {data}, and the step-0 model's mIoU on it")
    kept = (data / "scenes.json").is_file()
    if not kept:
        write_scenes(data, ScenesConfig(), workers=2)
    teacher = load_model(model)[0]
    before = evaluate_model(teacher, data, protocol=PROTOCOL, step=0, device=device)
    done("data", "kept from an earlier run" if kept else "generated")

    phase("synthesize", f"synthesize {num_images} fake images of the 15 old classes from the step-0 model, "
                        "starting from the new classes' training images")
    inv = inversion_config(steps=steps, init="real")
    pool = start_images(data, PROTOCOL, 1, "overlapped", inv.size, seed=seed)
    run, remade = RunConfig(num_images=num_images, shard_size=num_images, seed=seed), ""
    with progress(total=num_images, desc="synthesize", unit="img") as bar:
        invert = functools.partial(synthesize, model, work / "replay", inversion=inv, run=run, device=device, bar=bar,
                                   start_images=pool, start_source=f"{PROTOCOL} step 1 training images")
        try:
            r = invert(resume=True)
        except OtherSettings as e:  # the demo's own replay, made with other --num-images, --steps or --seed
            remade = f"made again: the earlier run's had other settings ({'; '.join(e.differences[:2])})"
            r = invert(overwrite=True)
    done("synthesize", remade or (f"kept {r['count']} images from an earlier run" if r["resumed_shards"] else ""))

    results, students, iterations = {}, {}, {}
    for key, (method, with_replay, label) in STUDENTS.items():
        phase(key, f"{label}: learn 5 new classes from {REAL_PER_BATCH} real images per step"
                   + (f" + {REAL_PER_BATCH} fake" if with_replay else ""))
        batch = 2 * REAL_PER_BATCH if with_replay else REAL_PER_BATCH  # replay adds as many fake images
        cfg = DistillConfig(train=TrainConfig(epochs=epochs, batch_size=batch, lr=0.001, seed=seed))
        r = distill(model, work / f"{key}.pt", data, replay=work / "replay" if with_replay else None,
                    protocol=PROTOCOL, method=method, cfg=cfg, device=device)
        results[key] = _metrics(r["metrics"]["val"])
        iterations[key] = r["metrics"]["train"]["iterations"]
        students[label] = load_model(work / f"{key}.pt")[0].to(device)
        done(key)

    phase("picture", f"the picture {work / 'demo.png'}")

    draw_picture(work, students, data, device, num_images)
    done("picture")
    return {"results": results, "before": _metrics(before), "picture": str(work / "demo.png"),
            "protocol": PROTOCOL, "iterations": iterations, "fake_images": num_images, "synthesis_steps": steps,
            "epochs": epochs,
            "seconds": time.perf_counter() - started, "timings": {k: round(v, 1) for k, v in timings.items()}}
