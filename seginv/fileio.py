"""Atomic file writing, hashing and YAML reading, shared by everything seginv writes and reads."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import SeginvError


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield ``path.partial`` to write; on success fsync it and rename it over ``path``, else remove it.

    A reader never sees a half-written file, and a failed write (full disk) leaves any previous file intact.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SeginvError(f"could not write {path}: {e.strerror or e}.", "Check free space and permissions.") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: What a damaged, truncated or foreign file raises while it is read or written: OS errors (and h5py's, which are
#: OSError, RuntimeError or KeyError), decoding errors and value errors from parsers.
FILE_ERRORS = (OSError, RuntimeError, KeyError, ValueError, EOFError)


def _short(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [""])[0][:160]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@contextmanager
def reading(path: str | os.PathLike[str], what: str, hint: str) -> Iterator[None]:
    """Turn what a damaged file raises while the block reads it into a :class:`SeginvError` naming the file."""
    try:
        yield
    except SeginvError:
        raise
    except FILE_ERRORS as e:  # UnicodeDecodeError is a ValueError
        raise SeginvError(f"{what} {path} is damaged or unreadable ({_short(e)}).", hint) from None


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_yaml(path: str | os.PathLike[str], what: str, hint: str) -> Any:
    """The parsed YAML file ``path``; a missing file or bad YAML is an error naming ``what`` it is (``hint``: where
    to find an example)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SeginvError(f"{what} {p} does not exist.", hint)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SeginvError(f"{what} {p} is not valid YAML: {e}") from None
    except (UnicodeDecodeError, OSError) as e:
        raise SeginvError(f"{what} {p} is not a readable text file ({_short(e)}).", hint) from None
