"""Progress for a log file: what a bar shows, as lines, when stderr is not a terminal (nohup, a batch scheduler,
``2>log``).

A phase prints ``desc: done/total unit (percent), rate, ETA`` after its first step when it looks longer than a
minute (the estimate), then at most every 30 seconds, and one closing line with its time, so a long run away from a
terminal shows where it is and short phases stay silent.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

EVERY = 30.0  # seconds between lines
LONG = 60.0  # a phase estimated to take longer than this prints its estimate after the first step


def clock_text(seconds: float) -> str:
    """``1:05:09``, ``7:57`` or ``0:04``."""
    s = int(round(seconds))
    h, m = divmod(s, 3600)
    m, s = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class LineProgress:
    """The part of tqdm's interface seginv uses (``update``, ``set_postfix``, ``close``, iteration, a context
    manager), written as occasional lines."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: float | None = None, initial: int = 0,
                 desc: str = "", unit: str = "it", every: float = EVERY, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.n, self.initial = iterable, total, initial, initial
        self.desc, self.unit, self.every, self.clock = desc, unit, every, clock
        self.stream = stream if stream is not None else sys.stderr
        self.start = self.last = clock()
        self.printed, self.closed = 0, False
        self.postfix: dict[str, Any] = {}

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        for item in self.iterable:
            yield item
            self.update(1)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self.clock()
        first = self.printed == 0 and self.n > self.initial
        if (first and self._estimate(now) > LONG) or now - self.last >= self.every:
            self._print(now)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        now = self.clock()
        if self.printed or now - self.start >= self.every:
            self._print(now, done=True)

    def _rate(self, now: float) -> float:
        return (self.n - self.initial) / max(now - self.start, 1e-9)

    def _estimate(self, now: float) -> float:
        """Seconds the whole phase will take at the rate so far (0 without a total)."""
        rate = self._rate(now)
        return 0.0 if not self.total or rate <= 0 else now - self.start + (self.total - self.n) / rate

    def line(self, now: float, done: bool = False) -> str:
        count = f"{self.n:g}/{self.total:g}" if self.total else f"{self.n:g}"
        parts = [f"{self.desc}: {count} {self.unit}" + (f" ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        rate = self._rate(now)
        parts.append(f"{rate:.3g} {self.unit}/s" if rate >= 1 or rate == 0 else f"{1 / rate:.3g} s/{self.unit}")
        if done:
            parts.append(f"in {clock_text(now - self.start)}")
        elif self.total and rate > 0:
            parts.append(f"ETA {clock_text((self.total - self.n) / rate)}")
        text = ", ".join(parts)
        return text + (" | " + " ".join(f"{k}={v}" for k, v in self.postfix.items()) if self.postfix else "")

    def _print(self, now: float, done: bool = False) -> None:
        print(self.line(now, done), file=self.stream, flush=True)
        self.last, self.printed = now, self.printed + 1


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
    """A tqdm bar on stderr when it is a terminal; otherwise :class:`LineProgress`; nothing with ``disable``."""
    disable = kwargs.pop("disable", False)
    if not disable and not sys.stderr.isatty():
        kwargs.pop("dynamic_ncols", None)
        return LineProgress(iterable, **{k: v for k, v in kwargs.items() if k in ("total", "initial", "desc", "unit")})
    from tqdm.auto import tqdm

    return tqdm(iterable, file=sys.stderr, disable=disable, dynamic_ncols=True, **kwargs)
