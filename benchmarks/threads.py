"""torch's intra-op threads against the cores a machine has free: the same synthesis job with 1 thread and with one
thread per core, alone and beside a second job (itself with 1 thread, or with torch's default of one per core).

    python -m benchmarks.threads --images 16 --size 64

Each case runs ``seginv --threads T synthesize`` in a fresh process (the competing job, when there is one, is the
same command started just before and stopped after); the wall times are printed side by side with their ratio to
the 1-thread idle run. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def job(threads: int, out: str, images: int, size: int) -> list[str]:
    return [sys.executable, "-m", "seginv", "--threads", str(threads), "synthesize", "--model",
            str(ROOT / "assets" / "scenes-voc-15-x-step0.pt"), "--num-images", str(images), "--size", str(size),
            "--steps", "100", "--device", "cpu", "--out", out]


def timed(threads: int, images: int, size: int, rival_threads: int, tmp: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    rival = None
    if rival_threads:  # a competing job that outlives the measured one
        rival = subprocess.Popen(job(rival_threads, f"{tmp}/rival-{threads}-{rival_threads}", images * 100, size),
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(5)  # past its start-up
        if rival.poll() is not None:
            raise RuntimeError("the competing job stopped early")
    t = time.perf_counter()
    subprocess.run(job(threads, f"{tmp}/run-{threads}-{rival_threads}", images, size), env=env, check=True,
                   capture_output=True)
    seconds = time.perf_counter() - t
    if rival is not None:
        rival.kill()
        rival.wait()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    res = {"cores": cores, "images": args.images, "size": args.size}
    names = {0: "alone", 1: "beside a 1-thread job", cores: f"beside a {cores}-thread job"}
    with tempfile.TemporaryDirectory() as tmp:
        for rival in sorted({0, 1, cores}):
            for threads in sorted({1, cores}):
                seconds = timed(threads, args.images, args.size, rival, tmp)
                res[f"{threads} thread(s), {names[rival]}"] = round(seconds, 1)
    base = res["1 thread(s), alone"]
    for key, value in list(res.items()):
        if "thread" in key:
            print(f"{key:>36}: {value:7.1f} s  ({value / base:.2f}x one thread alone)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
