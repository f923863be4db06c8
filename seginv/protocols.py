"""Class-incremental protocols: which classes each step learns, which images it sees, and how labels are remapped.

VOC and ADE20K splits are MiB's (Cermelli et al., CVPR 2020, ``tasks.py``); Cityscapes S1 -> S2 -> S3 is seed 000's
(Klingner et al., ITSC 2020, Table I). Model class ids follow the protocol's class order, so each step's classes are
contiguous and a step's head is appended after the previous ones. Labels are matched to model classes by name.

Image filtering (MiB's ``filter_images``): ``overlapped`` keeps every training image holding a class of the current
step; ``disjoint`` keeps only those whose classes all belong to the current or earlier steps (no future classes).
Training labels keep the current step's classes; every other class becomes background (ignored, 255, for protocols
without a background class, as seed 000 trains only on labelled pixels). Test labels keep all classes seen so far;
classes not yet learned become 255.

Multi-label protocols (``task="multilabel"``, seed 004's MLCIL setting) name their scenario {Bx-Cy}: x classes in
the base task, y in each later one, in the lexicographical order of the class names (seed 004, "Experiments
Setup", following KRT and CSC). A task's training images are those holding at least one of its classes, labelled
with its classes only (task-level partial labels); testing after task t scores every class of tasks 1..t on every
test image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data.classes import ADE20K_CLASSES, COCO_CLASSES, IGNORE, VOC_CLASSES
from .errors import SeginvError, did_you_mean
from .tasks import DEFAULT_TASK

SETTINGS = ("overlapped", "disjoint")


@dataclass(frozen=True)
class Protocol:
    name: str
    dataset: str
    class_names: tuple[str, ...]
    steps: tuple[tuple[int, ...], ...]
    background: bool = True
    description: str = ""
    citation: str = ""
    step_cities: tuple[tuple[str, ...], ...] | None = None
    test_cities: tuple[str, ...] | None = None
    task: str = DEFAULT_TASK

    @property
    def num_steps(self) -> int:
        return len(self.steps)

    def check_step(self, step: int) -> None:
        if not 0 <= step < self.num_steps:
            raise SeginvError(f"protocol {self.name} has steps 0..{self.num_steps - 1}. Got: {step}.")

    def seen(self, step: int) -> list[int]:
        """Model ids of every class learned at steps 0..step."""
        self.check_step(step)
        return [c for s in self.steps[: step + 1] for c in s]

    def current(self, step: int) -> list[int]:
        self.check_step(step)
        return list(self.steps[step])

    def names(self, ids: list[int]) -> list[str]:
        return [self.class_names[i] for i in ids]

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "dataset": self.dataset,
            "background": self.background,
            "description": self.description,
            "citation": self.citation,
            "steps": [{"step": k, "classes": self.names(list(s))} for k, s in enumerate(self.steps)],
        }
        if self.task != DEFAULT_TASK:
            d["task"] = self.task
        if self.step_cities:
            for k, cities in enumerate(self.step_cities):
                d["steps"][k]["cities"] = list(cities)
            d["test_cities"] = list(self.test_cities or ())
        return d


def _contiguous(name: str, dataset: str, names: list[str], sizes: list[int], **kw: object) -> Protocol:
    steps, start = [], 0
    for n in sizes:
        steps.append(tuple(range(start, start + n)))
        start += n
    assert start == len(names), (name, start, len(names))
    return Protocol(name, dataset, tuple(names), tuple(steps), **kw)  # type: ignore[arg-type]


MIB = "Cermelli et al., Modeling the Background for Incremental Learning in Semantic Segmentation, CVPR 2020"
SEED000 = "Klingner et al., Class-Incremental Learning for Semantic Segmentation Re-Using Neither Old Data Nor Old Labels, ITSC 2020 (Table I)"

SEED004 = ("Du et al., Rebalancing Multi-Label Class-Incremental Learning (seed 004), Experiments Setup; scenarios "
           "and class order after KRT (Dong et al., ICCV 2023) and CSC (Du et al., ECCV 2024)")
VOC_OBJECTS = sorted(VOC_CLASSES[1:])  # VOC 2007's 20 classes; their usual order is already lexicographical
COCO_OBJECTS = sorted(COCO_CLASSES)


def _multilabel(name: str, dataset: str, names: list[str], base: int, each: int) -> Protocol:
    sizes = ([base] if base else []) + [each] * ((len(names) - base) // each)
    return _contiguous(name, dataset, names, sizes, background=False, task="multilabel", citation=SEED004,
                       description=f"multi-label: {base} classes, then {len(sizes) - 1} tasks of {each}" if base
                       else f"multi-label: {len(sizes)} tasks of {each} classes")


CITYSCAPES_S = (
    ("road", "sidewalk", "sky", "terrain", "vegetation"),
    ("building", "fence", "traffic sign", "pole", "traffic light", "wall"),
    ("bicycle", "car", "bus", "rider", "train", "motorcycle", "person", "truck"),
)
# Directory names of the Cityscapes cities in Table I of seed 000 (Hannover is "hanover" on disk).
CITYSCAPES_CITIES = (
    ("aachen", "dusseldorf", "hanover", "strasbourg"),
    ("bochum", "hamburg", "jena", "monchengladbach", "ulm", "weimar", "tubingen"),
    ("bremen", "cologne", "stuttgart", "darmstadt", "krefeld", "zurich"),
)
CITYSCAPES_TEST_CITIES = ("frankfurt", "lindau", "munster")

PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in [
        _contiguous("voc-19-1", "voc", VOC_CLASSES, [20, 1], description="19 classes, then tvmonitor", citation=MIB),
        _contiguous("voc-15-5", "voc", VOC_CLASSES, [16, 5],
                    description="15 classes, then pottedplant, sheep, sofa, train, tvmonitor at once", citation=MIB),
        _contiguous("voc-15-1", "voc", VOC_CLASSES, [16, 1, 1, 1, 1, 1],
                    description="15 classes, then the last 5 one per step (MiB's 15-5s)", citation=MIB),
        _contiguous("voc-10-1", "voc", VOC_CLASSES, [11] + [1] * 10, description="10 classes, then 10 steps of 1",
                    citation=MIB),
        _contiguous("voc-5-3", "voc", VOC_CLASSES, [6, 3, 3, 3, 3, 3], description="5 classes, then 5 steps of 3",
                    citation=MIB),
        _contiguous("ade20k-100-50", "ade20k", ADE20K_CLASSES, [101, 50], description="100 classes, then 50",
                    citation=MIB),
        _contiguous("ade20k-100-10", "ade20k", ADE20K_CLASSES, [101, 10, 10, 10, 10, 10],
                    description="100 classes, then 5 steps of 10", citation=MIB),
        _contiguous("ade20k-50-50", "ade20k", ADE20K_CLASSES, [51, 50, 50],
                    description="50 classes, then 2 steps of 50 (MiB's task '50')", citation=MIB),
        _contiguous("cityscapes-s1s2s3", "cityscapes", [c for s in CITYSCAPES_S for c in s], [5, 6, 8],
                    background=False, citation=SEED000,
                    description="S1 (5 classes, D1 cities) -> S2 (+6, D2 cities) -> S3 (+8, D3 cities); "
                    "test on Frankfurt, Lindau, Muenster",
                    step_cities=CITYSCAPES_CITIES, test_cities=CITYSCAPES_TEST_CITIES),
        _multilabel("voc-b4-c2", "voc", VOC_OBJECTS, 4, 2),
        _multilabel("voc-b5-c3", "voc", VOC_OBJECTS, 5, 3),
        _multilabel("coco-b20-c4", "coco", COCO_OBJECTS, 20, 4),
        _multilabel("coco-b0-c5", "coco", COCO_OBJECTS, 0, 5),
    ]
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise SeginvError(f"unknown protocol {name!r}.{did_you_mean(name, list(PROTOCOLS))}",
                          f"Known: {', '.join(PROTOCOLS)} (see `seginv protocols`).")
    return PROTOCOLS[name]


def check_setting(setting: str) -> str:
    if setting not in SETTINGS:
        raise SeginvError(f"unknown setting {setting!r}.", f"Use one of: {', '.join(SETTINGS)}.")
    return setting


def keep_image(classes: set[int], protocol: Protocol, step: int, setting: str) -> bool:
    """MiB's filter for one image whose labels (model ids, 255 excluded) are ``classes``."""
    current = set(protocol.current(step)) - ({0} if protocol.background else set())
    if not classes & current:
        return False
    if check_setting(setting) == "overlapped":
        return True
    allowed = set(protocol.seen(step)) | ({0} if protocol.background else set())
    return classes <= allowed


def name_lut(source_names: list[str] | tuple[str, ...], target_names: list[str] | tuple[str, ...]) -> np.ndarray:
    """(256,) uint8 table: source label id -> target id of the class with the same name, 255 where none."""
    lut = np.full(256, IGNORE, dtype=np.uint8)
    index = {n: i for i, n in enumerate(target_names)}
    for i, n in enumerate(source_names):
        if n in index:
            lut[i] = index[n]
    return lut


def train_lut(protocol: Protocol, step: int, joint: bool = False) -> np.ndarray:
    """(256,) model id -> training label at ``step``: current classes kept, the rest background (or 255).

    ``joint`` keeps every class seen by ``step`` (offline training on all labels, the upper bound).
    """
    lut = np.full(256, IGNORE, dtype=np.uint8)
    if protocol.background:
        lut[: len(protocol.class_names)] = 0
    for c in protocol.seen(step) if joint else protocol.current(step):
        lut[c] = c
    return lut


def eval_lut(protocol: Protocol, step: int) -> np.ndarray:
    """(256,) model id -> test label after ``step``: classes seen so far kept, the rest 255."""
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for c in protocol.seen(step):
        lut[c] = c
    return lut
