"""benchmarks/runner.py: the command line the three benchmark drivers share."""

import json

import pytest

from benchmarks import runner
from seginv.errors import SeginvError

ROWS = ["a/x/seed0", "a/y/seed0", "b/x/seed0", "a/x/seed1"]


def driver(log, done=(), fail=(), **kw):
    def run(cache, row):
        log.append(row)
        if row in fail:
            raise SeginvError(f"{row} was made with other settings.")

    return runner.Driver(command="python -m benchmarks.fake", rows=lambda: list(ROWS),
                         done=lambda cache, row: row in done, run=run,
                         report=lambda cache, docs: log.append(("report", cache, docs)), **kw)


def test_rows_by_name_or_pattern_in_run_order_and_a_clear_error_for_none(capsys):
    d = driver([])
    assert runner.select(d, ["a/x/*"]) == ["a/x/seed0", "a/x/seed1"]
    assert runner.select(d, ["b/x/seed0", "a/y/*"]) == ["a/y/seed0", "b/x/seed0"]
    assert runner.select(d, []) == ROWS
    assert runner.select(driver([], default_rows=lambda: ROWS[:1]), []) == ROWS[:1]
    with pytest.raises(SystemExit, match="no row matches .*`python -m benchmarks.fake list`"):
        runner.select(d, ["c/*"])


def test_run_goes_on_after_a_failed_row_records_new_rows_times_and_exits_1(tmp_path, capsys):
    log: list = []
    d = driver(log, done={"a/y/seed0"}, fail={"a/x/seed0"}, timings="timings.jsonl")
    with pytest.raises(SystemExit, match="1 rows failed: a/x/seed0"):
        runner.main(d, None, ["run", "a/*", "--cache", str(tmp_path)])
    assert log == ["a/x/seed0", "a/y/seed0", "a/x/seed1"]  # the finished row is run too: its settings are checked
    timed = [json.loads(line)["row"] for line in (tmp_path / "timings.jsonl").read_text().splitlines()]
    assert timed == ["a/x/seed1"]  # neither the failed row nor the one finished before
    out = capsys.readouterr().out
    assert "=== a/x/seed0 FAILED: a/x/seed0 was made with other settings." in out
    assert "=== a/y/seed0 (finished before: checking its settings)" in out


def test_list_report_and_the_fresh_option(tmp_path, capsys):
    log: list = []
    runner.main(driver(log, done={"b/x/seed0"}), None, ["list", "--cache", str(tmp_path)])
    assert capsys.readouterr().out.splitlines() == ["todo  a/x/seed0", "todo  a/y/seed0", "done  b/x/seed0",
                                                   "todo  a/x/seed1"]
    runner.main(driver(log), None, ["report", "--cache", str(tmp_path), "--docs", str(tmp_path / "d")])
    assert log == [("report", tmp_path.resolve(), tmp_path / "d")]
    with pytest.raises(SystemExit):  # a driver without `fresh` has no --fresh
        runner.main(driver(log), None, ["run", "a/x/seed0", "--fresh"])
    deleted: list = []
    d = driver(log, fresh=lambda cache, row: deleted.append(row))
    with pytest.raises(SystemExit, match="--fresh deletes the rows it redoes; name them"):
        runner.main(d, None, ["run", "--fresh", "--cache", str(tmp_path)])
    runner.main(d, None, ["run", "b/*", "--fresh", "--cache", str(tmp_path)])
    assert deleted == ["b/x/seed0"] and log[-1] == "b/x/seed0"


def test_a_report_block_is_replaced_between_its_markers_and_a_page_without_them_is_left_alone(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- b -->\nold\n<!-- /b -->\noutro\n")
    runner.replace_block(page, "<!-- b -->", "<!-- /b -->", ["<!-- b -->", "new", "<!-- /b -->"])
    assert page.read_text() == "intro\n<!-- b -->\nnew\n<!-- /b -->\noutro\n"
    bare = tmp_path / "bare.md"
    bare.write_text("no block here\n")
    with pytest.raises(SystemExit, match="has no block to replace"):
        runner.replace_block(bare, "<!-- b -->", "<!-- /b -->", ["<!-- b -->", "x", "<!-- /b -->"])
    assert bare.read_text() == "no block here\n"
