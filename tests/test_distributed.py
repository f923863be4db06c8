"""seginv under torchrun (2 CPU processes, gloo): sharded synthesis writes the same bytes as one process and resumes
across process counts (shards written but not yet listed are adopted only when they are exactly this run's);
synced gradients and summed confusion matrices equal one process's; a 2-rank distill and a 2-rank `seginv run`
match a 1-process one."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seginv.replay.manifest import read_manifest
from tests.test_faults import MODEL, SYNTH, seginv

RUN = [*SYNTH, "--num-images", "5", "--shard-size", "1"]


def files(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def unlist(root, *indices):
    """Drop shards from the manifest as if their rank stopped before rank 0 listed them (the files stay)."""
    m = read_manifest(root)
    m["shards"] = [e for e in m["shards"] if e["index"] not in indices]
    m["count"] = sum(e["count"] for e in m["shards"])
    m["complete"] = False
    (root / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")


def two_ranks(*args):
    r = subprocess.run([sys.executable, "-m", "seginv", *args, "--nproc", "2", "--json"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    root = tmp_path_factory.mktemp("one") / "replay"
    r = subprocess.run([sys.executable, "-m", "seginv", *RUN, "--out", str(root)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return files(root)


def test_two_ranks_write_what_one_process_writes_and_resume_across_counts(one_process, tmp_path, monkeypatch,
                                                                         capsys):
    two = tmp_path / "two"
    out = two_ranks(*RUN, "--out", two)
    assert out["count"] == 5 and files(two) == one_process
    # a run of 2 ranks stopped: shard 3 written but never listed, shard 4 never written; one process completes it
    unlist(two, 3, 4)
    (two / "shard-00004.h5").unlink()
    code, text, err = seginv(monkeypatch, capsys, *RUN, "--out", two, "--resume", "--json")
    assert code == 0, err
    assert json.loads(text)["resumed_shards"] == 4  # three listed, one adopted: only shard 4 was made again
    assert files(two) == one_process


def test_unlisted_shards_of_another_run_are_not_adopted(one_process, tmp_path, monkeypatch, capsys):
    root, other = tmp_path / "r", tmp_path / "seed1"
    for where, seed in ((root, "0"), (other, "1")):
        code, _, err = seginv(monkeypatch, capsys, *RUN, "--seed", seed, "--out", where)
        assert code == 0, err
    unlist(root, 2)
    (root / "shard-00002.h5").write_bytes((other / "shard-00002.h5").read_bytes())  # complete, but another seed's
    code, text, err = seginv(monkeypatch, capsys, *RUN, "--out", root, "--resume", "--json")
    assert code == 0, err
    assert json.loads(text)["resumed_shards"] == 4 and files(root) == one_process


def test_nproc_inside_torchrun_and_commands_without_torchrun_are_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = seginv(monkeypatch, capsys, *RUN, "--out", tmp_path / "r", "--nproc", "2")
    assert code != 0 and "--nproc was given inside a torchrun job" in err
    code, _, err = seginv(monkeypatch, capsys, "evaluate", "--model", MODEL, "--data", tmp_path)
    assert code != 0 and "`seginv evaluate` does not run as several processes" in err and not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------- training on 2 ranks
def _two_rank_worker(rank, port, out):
    """One of two gloo ranks: a step on its half of each global batch with synced gradients, and its share of a
    confusion matrix."""
    import os

    import torch
    import torch.distributed as dist

    from seginv.distributed import Group, RankSlice
    from seginv.metrics import confusion_matrix

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    group = Group(rank, 2)
    torch.manual_seed(0)
    x, y = torch.randn(12, 5), torch.randn(12, 3)
    model = torch.nn.Linear(5, 3)
    batches = torch.utils.data.BatchSampler(range(12), 6, drop_last=True)
    grads = []
    for part in RankSlice(batches, group):
        model.zero_grad()
        torch.nn.functional.mse_loss(model(x[part]), y[part]).backward()
        group.sync_gradients(model)
        grads.append(model.weight.grad.clone())
    pred, label = torch.randint(0, 4, (2, 7, 9), generator=torch.Generator().manual_seed(1)), \
        torch.randint(0, 4, (2, 7, 9), generator=torch.Generator().manual_seed(2))
    cm = group.sum_(confusion_matrix(pred[rank:rank + 1], label[rank:rank + 1], 4))
    torch.save({"grads": grads, "cm": cm}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_synced_gradients_and_summed_confusion_equal_one_process(tmp_path):
    import socket

    import torch
    import torch.multiprocessing as mp

    from seginv.metrics import confusion_matrix

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_two_rank_worker, args=(port, str(tmp_path)), nprocs=2)
    torch.manual_seed(0)
    x, y = torch.randn(12, 5), torch.randn(12, 3)
    model = torch.nn.Linear(5, 3)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for b, start in enumerate((0, 6)):
        model.zero_grad()
        torch.nn.functional.mse_loss(model(x[start:start + 6]), y[start:start + 6]).backward()
        for r in ranks:  # the mean of the halves' mean losses is the batch's mean: the same gradient
            assert torch.allclose(r["grads"][b], model.weight.grad, atol=1e-6)
    pred = torch.randint(0, 4, (2, 7, 9), generator=torch.Generator().manual_seed(1))
    label = torch.randint(0, 4, (2, 7, 9), generator=torch.Generator().manual_seed(2))
    for r in ranks:
        assert torch.equal(r["cm"], confusion_matrix(pred, label, 4))


def test_distill_on_two_ranks_matches_one_process(tiny_scenes, tmp_path, monkeypatch, capsys):
    args = ["distill", "--teacher", MODEL, "--data", tiny_scenes, "--protocol", "voc-15-5", "--epochs", "2",
            "--batch-size", "8", "--crop-size", "32", "--device", "cpu", "--json"]
    code, text, err = seginv(monkeypatch, capsys, *args, "--out", tmp_path / "one.pt")
    assert code == 0, err
    one = json.loads(text)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
                        "seginv", *map(str, args), "--out", str(tmp_path / "two.pt")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    two = json.loads(r.stdout)  # rank 0 alone prints; the ranks' weights were checked equal at the end
    assert two["metrics"]["train"]["iterations"] == one["metrics"]["train"]["iterations"]
    assert two["metrics"]["val"]["images"] == one["metrics"]["val"]["images"]
    # the same global batches; each rank draws its own crops and flips, so the runs agree only closely
    for a, b in zip(one["metrics"]["train"]["loss_per_epoch"], two["metrics"]["train"]["loss_per_epoch"]):
        assert a == pytest.approx(b, rel=0.05)
    assert two["metrics"]["val"]["miou"] == pytest.approx(one["metrics"]["val"]["miou"], abs=0.03)
    assert not (tmp_path / "two.pt.state").exists() and (tmp_path / "two.pt").is_file()


def test_a_recipe_on_two_ranks_matches_one_process(tiny_scenes, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "tiny", "protocol": "voc-15-5", "setting": "overlapped", "data": {"path": str(tiny_scenes)},
        "step0": {"model": MODEL}, "device": "cpu",
        "synthesis": {"num_images": 4, "batch_size": 2, "shard_size": 1, "steps": 2, "size": 32},
        "distill": {"epochs": 1, "batch_size": 4, "crop_size": 32},
        "runs": {"fake": {"method": "hrhf"}, "real": {"method": "hrhf", "replay": "memory",
                                                      "memory": {"per_class": 1, "size": 32}}}}))
    base = [sys.executable, "-m", "seginv", "run", str(recipe), "--json", "--out"]
    one = subprocess.run([*base, str(tmp_path / "one")], capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([*base, str(tmp_path / "two"), "--nproc", "2"], capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # rank 0 alone prints
    assert [(r["run"], r["iterations"]) for r in a["rows"]] == [(r["run"], r["iterations"]) for r in b["rows"]]
    for ra, rb in zip(a["rows"], b["rows"]):  # each rank draws its own crops: close, not equal
        assert rb["metrics"]["all"] == pytest.approx(ra["metrics"]["all"], abs=0.05)
    # one protocol step: the replay inverted from the step-0 model and the exemplar memory, the same bytes
    replays = sorted(d.name for d in (tmp_path / "one" / "replay").iterdir())
    assert len(replays) == 2 and replays == sorted(d.name for d in (tmp_path / "two" / "replay").iterdir())
    for name in replays:
        assert files(tmp_path / "one" / "replay" / name) == files(tmp_path / "two" / "replay" / name), name
    record = json.loads((tmp_path / "two" / "runs" / "fake" / "seed0" / "step1.json").read_text())
    assert record["processes"] == 2 and not list((tmp_path / "two").glob("**/*.state"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = subprocess.run([*base, str(tmp_path / "other"), "--nproc", "2"], capture_output=True, text=True,
                             timeout=300)  # rank 0's check stops both processes
    assert refused.returncode != 0 and "holds no seginv run" in refused.stderr
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_the_accelerator_check_runs_on_cpu(tmp_path):
    """benchmarks/gpu_check.py at toy sizes, so that the script a lent GPU runs cannot rot."""
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--quick", "--out",
                        str(tmp_path / "g.json")], capture_output=True, text=True, timeout=600, cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "g.json").read_text())
    assert all(s["ratio"] > 0 for s in res["synthesis"]) and res["distill"]["ratio"] > 0
    assert 0.9 < res["bf16"]["argmax_agreement"] <= 1 and len(res["peak_memory_mib"]) == 1
    peak = res["peak_memory_mib"]["deeplabv3_resnet50 bf16"]  # the process holds torch besides the tensors
    assert 0 < peak["counted"] < peak["measured"]
    assert res["processes"]["2x1_same_bytes_as_1x1"]
    # aot_eager traces the teacher, with the BatchNorm prior's hooks, through torch.compile: eager's pixels
    assert res["compile"]["compiled_max_pixel_diff"] <= 1 and res["compile"]["channels_last_max_pixel_diff"] <= 1
