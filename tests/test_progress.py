"""Progress when stderr is not a terminal: an estimate after the first step of a long phase, a line at most every
30 seconds, a closing line with the phase's time, and silence for short phases."""

import io

from seginv.progress import LineProgress, clock_text, progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_long_phase_prints_an_estimate_then_every_30_seconds_then_its_time():
    clock, out = Clock(), io.StringIO()
    with LineProgress(total=100, desc="synthesize", unit="img", stream=out, clock=clock) as bar:
        for _ in range(10):
            clock.now += 10.0  # 10 s per image: 1000 s in all
            bar.update(1)
            bar.set_postfix(loss="0.512")
    assert out.getvalue().splitlines() == [
        "synthesize: 1/100 img (1%), 10 s/img, ETA 16:30",
        "synthesize: 4/100 img (4%), 10 s/img, ETA 16:00 | loss=0.512",
        "synthesize: 7/100 img (7%), 10 s/img, ETA 15:30 | loss=0.512",
        "synthesize: 10/100 img (10%), 10 s/img, ETA 15:00 | loss=0.512",
        "synthesize: 10/100 img (10%), 10 s/img, in 1:40 | loss=0.512"]


def test_a_short_phase_is_silent_and_a_resumed_one_counts_from_where_it_resumes():
    clock, out = Clock(), io.StringIO()
    bar = LineProgress(total=50, desc="train", stream=out, clock=clock)
    for _ in range(50):
        clock.now += 0.1
        bar.update(1)
    bar.close()
    assert out.getvalue() == ""
    clock, out = Clock(), io.StringIO()
    bar = LineProgress(total=1000, initial=900, desc="distill hrhf", stream=out, clock=clock)
    clock.now += 2.0
    bar.update(1)  # 2 s per iteration from here: 200 s left, an estimate is printed
    assert out.getvalue() == "distill hrhf: 901/1000 it (90%), 2 s/it, ETA 3:18\n"


def test_iterating_and_the_choice_by_terminal(monkeypatch):
    clock, out = Clock(), io.StringIO()
    seen = list(LineProgress(range(3), desc="evaluate", unit="batch", stream=out, clock=clock))
    assert seen == [0, 1, 2] and out.getvalue() == ""
    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    assert isinstance(progress(total=3, desc="x", unit="img"), LineProgress)
    assert not isinstance(progress(total=3, desc="x", disable=True), LineProgress)
    assert clock_text(4) == "0:04" and clock_text(477) == "7:57" and clock_text(3909) == "1:05:09"
