"""The task objects answer everything that differs between segmentation and multi-label classification, and no
module outside ``seginv/tasks/`` compares task names."""

import ast
from pathlib import Path

import pytest
import torch

from seginv.errors import SeginvError
from seginv.tasks import DEFAULT_TASK, TASKS, Task, get_task, task_of_scores

ROOT = Path(__file__).resolve().parents[1] / "seginv"


@pytest.mark.parametrize("name", TASKS)
def test_every_task_answers_every_question_the_base_declares(name):
    task = get_task(name)
    assert task.name == name and isinstance(task, Task)
    missing = [a for a in Task.__annotations__ if not hasattr(task, a)]
    assert not missing
    for method in ("train_split", "test_split", "evaluate", "train_options", "train_transform", "replay_labels",
                   "teacher_labels"):
        assert getattr(type(task), method) is not getattr(Task, method), method


def test_unknown_task_and_scores_without_a_headline_are_refused():
    with pytest.raises(SeginvError, match="unknown task 'depth'.*segmentation, multilabel"):
        get_task("depth")
    assert task_of_scores({"miou": 0.5, "old": 0.4}).name == "segmentation"
    assert task_of_scores({"map": 0.5, "map_old": 0.4}).name == "multilabel"
    with pytest.raises(SeginvError, match="without a headline"):
        task_of_scores({"accuracy": 1.0})
    assert DEFAULT_TASK == "segmentation"


def test_groups_unsupported_options_and_labels():
    seg, ml = get_task("segmentation"), get_task("multilabel")
    assert seg.groups({"old": 1, "new": 2, "miou": 3}) == (1, 2, 3)
    assert ml.groups({"map_old": 1, "map_new": 2, "map": 3}) == (1, 2, 3)
    assert seg.unsupported(noise=True, ial=True) is None
    assert ml.unsupported(noise=True, ial=False) == "noise" and ml.unsupported(noise=False, ial=True) == "ial"
    logits = torch.tensor([[3.0, -1.0], [-2.0, 0.5]])  # (B, C) classifier scores
    labels, probs = ml.teacher_labels(logits)
    assert labels.tolist() == [[1, 0], [0, 1]] and probs is None
    fake = ml.replay_labels(None, logits, 3, exemplars=False, device="cpu")
    assert fake.tolist() == [[1, 0, 0], [0, 1, 0]]  # new classes' columns: 0
    memory = ml.replay_labels(torch.tensor([[1.0, 0.0]]), None, 3, exemplars=True, device="cpu")
    assert memory.tolist() == [[1, 0, 255]]  # unknown where the memory has no label
    maps = torch.randn(2, 4, 3, 5)
    assert torch.equal(seg.replay_labels(None, maps, 6, exemplars=False, device="cpu"), maps.argmax(1))


def _compares_a_task_name(tree: ast.AST) -> list[int]:
    """Lines that compare a string naming a task (``x.task == "multilabel"``) or read a task off a scores dict's
    headline (``"map" in val``)."""
    names = set(TASKS) | {"map", "miou"}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))
                                                 for op in node.ops):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in names for o in operands):
                lines.append(node.lineno)
    return lines


def test_no_module_outside_tasks_compares_task_names():
    found = {str(p.relative_to(ROOT)): lines for p in sorted(ROOT.rglob("*.py"))
             if "tasks" not in p.relative_to(ROOT).parts and (lines := _compares_a_task_name(ast.parse(p.read_text())))}
    assert not found, f"ask seginv.tasks.get_task(...) instead: {found}"
    assert _compares_a_task_name(ast.parse('if model.task == "multilabel": pass')) == [1]  # the scan finds one
