"""What `seginv shards export` keeps of fake replay: the pixels and what the teacher sees in them.

Inverts a few images from the shipped 15-class model, then encodes each as the VOC export can (JPEG at quality 95
with 4:2:0 chroma subsampling, the earlier setting; JPEG at quality 100 without subsampling, today's; PNG) and prints,
per encoding, the mean absolute difference to the stored pixels (levels, 0-255) and the share of foreground pixels
where the teacher's argmax on the decoded image equals the stored mask (the teacher's argmax on the stored pixels).

    OMP_NUM_THREADS=1 python -m benchmarks.export_fidelity [--steps 100] [--num-images 5] [--size 32]

The figures of docs/replay.md ("What each reader keeps") come from the defaults.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from seginv.data.transforms import normalize
from seginv.models.checkpoint import load_model
from seginv.replay import ReplayDataset

MODEL = Path(__file__).resolve().parents[1] / "assets" / "scenes-voc-15-x-step0.pt"
ENCODINGS = {"jpeg q95 4:2:0 (earlier)": ("JPEG", {"quality": 95}),
             "jpeg q100 4:4:4 (today)": ("JPEG", {"quality": 100, "subsampling": 0}),
             "png": ("PNG", {})}


def decoded(image: np.ndarray, fmt: str, options: dict) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return np.asarray(Image.open(buffer).convert("RGB"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--num-images", type=int, default=5)
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args()
    model = load_model(MODEL)[0].eval()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "seginv.cli", "synthesize", "--model", str(MODEL), "--steps",
                        str(args.steps), "--size", str(args.size), "--batch-size", str(args.num_images),
                        "--num-images", str(args.num_images), "--device", "cpu", "--out", f"{tmp}/r"], check=True,
                       capture_output=True)
        ds = ReplayDataset(f"{tmp}/r")
        samples = [ds.sample(i) for i in range(len(ds))]
        ds.close()
    print(f"{args.num_images} images inverted from {MODEL.name} ({args.size}x{args.size}, {args.steps} steps), "
          f"{torch.get_num_threads()} torch thread(s)")
    for name, (fmt, options) in ENCODINGS.items():
        diffs, agree, total = [], 0, 0
        for s in samples:
            image, mask = decoded(s["images"], fmt, options), s["masks"]
            diffs.append(np.abs(image.astype(int) - s["images"].astype(int)).mean())
            x = normalize(torch.from_numpy(image.copy()).permute(2, 0, 1), model.mean, model.std)[None]
            with torch.no_grad():
                pred = model(x).argmax(1)[0].numpy()
            fg = (mask != 0) & (mask != 255)
            agree, total = agree + int((pred[fg] == mask[fg]).sum()), total + int(fg.sum())
        print(f"{name:26s} mean |difference| {np.mean(diffs):5.2f} levels   teacher agreement on foreground "
              f"{100 * agree / max(total, 1):5.1f}% of {total} pixels")


if __name__ == "__main__":
    main()
