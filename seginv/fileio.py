"""Atomic file writing, hashing and YAML reading, shared by everything seginv writes and reads."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import SeginvError, resource_error


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield ``path.partial`` to write; on success fsync it and rename it over ``path``, else remove it.

    A reader never sees a half-written file, and a failed write (full disk) leaves any previous file intact. The file
    gets the mode the process umask gives new files (0644 under 022), whichever library wrote it.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # as a plain open() would: some writers (safetensors) make files 0600
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SeginvError(f"could not write {path}: {e.strerror or e}.", "Check free space and permissions.") from None
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        full = resource_error(e) if isinstance(e, Exception) else None  # torch's and safetensors' writers
        if full is not None:
            raise SeginvError(f"could not write {path}: {full.problem}", full.hint) from None
        raise


#: What a damaged, truncated or foreign file raises while it is read or written: OS errors (and h5py's, which are
#: OSError, RuntimeError or KeyError), decoding errors and value errors from parsers.
FILE_ERRORS = (OSError, RuntimeError, KeyError, ValueError, EOFError)


def short_error(e: BaseException, limit: int = 160) -> str:
    """``Type: the first line of the message``, cut at a word boundary to at most ``limit`` characters."""
    text = (str(e).strip().splitlines() or [""])[0]
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + " ..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@contextmanager
def reading(path: str | os.PathLike[str], what: str, hint: str) -> Iterator[None]:
    """Turn what a damaged file raises while the block reads it into a :class:`SeginvError` naming the file."""
    try:
        yield
    except SeginvError:
        raise
    except FILE_ERRORS as e:  # UnicodeDecodeError is a ValueError
        raise SeginvError(f"{what} {path} is damaged or unreadable ({short_error(e)}).", hint) from None


def parse_json(text: str | bytes) -> Any:
    """``json.loads``, with absurdly deep nesting a ``ValueError`` as other bad JSON is (not a RecursionError)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


MAX_JSON_BYTES = 64 << 20  # a manifest of 100000 shards is about 20 MB


def read_json(path: str | os.PathLike[str], limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON file ``path`` that seginv wrote (a manifest, record, summary or lock): bad JSON, absurd nesting and
    more than ``limit`` bytes are a ``ValueError``."""
    size = Path(path).stat().st_size
    if size > limit:
        raise ValueError(f"{size} bytes, more than the {limit} a seginv JSON file holds")
    return parse_json(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def image_file(path: str | os.PathLike[str]) -> Iterator[Any]:
    """``PIL.Image.open(path)`` for the block; an image larger than PIL decodes safely (a decompression bomb: more
    pixels than ``PIL.Image.MAX_IMAGE_PIXELS``) is an error naming the file, not a warning or a traceback."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                yield image
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise SeginvError(f"image {path} is too large to decode safely ({short_error(e)}).",
                              "Downscale it; or, for a file you trust, raise PIL.Image.MAX_IMAGE_PIXELS.") from None


MAX_YAML_BYTES = 1 << 20  # recipes and IAL files are a few kB


def _yaml_loader() -> Any:
    import yaml

    class NoAliases(yaml.SafeLoader):
        """YAML without anchors' aliases (``*name``), which let a few lines expand to gigabytes."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.events.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted; write the values out",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)

    return NoAliases


def read_yaml(path: str | os.PathLike[str], what: str, hint: str) -> Any:
    """The parsed YAML file ``path``; a missing file, bad YAML, an alias or more than ``MAX_YAML_BYTES`` is an error
    naming ``what`` it is (``hint``: where to find an example)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SeginvError(f"{what} {p} does not exist.", hint)
    if p.stat().st_size > MAX_YAML_BYTES:
        raise SeginvError(f"{what} {p} is {p.stat().st_size} bytes; seginv reads at most {MAX_YAML_BYTES}.", hint)
    try:
        return yaml.load(p.read_text(encoding="utf-8"), Loader=_yaml_loader())  # noqa: S506  (a SafeLoader)
    except yaml.YAMLError as e:
        raise SeginvError(f"{what} {p} is not valid YAML: {' '.join(str(e).split())}") from None
    except (UnicodeDecodeError, OSError) as e:
        raise SeginvError(f"{what} {p} is not a readable text file ({short_error(e)}).", hint) from None
