"""Atomic output: every file is written to a temp name beside its target, then renamed into place."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import resource
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

WRITE_FAILED = ("file write failed", "unexpected pos")  # how torch.save's writer reports a failed write


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path with the same suffix as `path`; on success rename it to `path`, else remove it (the
    previous `path`, if any, stays whole). A full disk or a folder that cannot be written is a UserError."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.errno not in _USER_ERRNOS:
            raise
        raise _write_error(path, e.errno) from None
    except RuntimeError as e:
        if any(s in str(e) for s in WRITE_FAILED):
            raise _write_error(path, errno.ENOSPC if _nearly_full(path.parent) else errno.EIO) from None
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


_USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO}


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 64 * 2**20
    except OSError:
        return False


def _write_error(path: Path, code: int | None) -> Exception:
    from .errors import UserError

    if code in (errno.ENOSPC, errno.EDQUOT):
        return UserError(
            f"no space left on the disk of {path.parent} while writing {path.name}; the last complete "
            f"{path.name} is kept: free some space and run again (with --resume where a run stopped)"
        )
    return UserError(f"cannot write {path}: {os.strerror(code or errno.EIO)}; choose another output folder")


_TEMP_NAME = re.compile(r"\.(?P<stem>.+)\.(?P<pid>[0-9]+)\.tmp(?P<suffix>\.[^.]*)?")  # atomic_path's names


def stale_temp_files(folder: Path | str) -> list[Path]:
    """Temp files that atomic_path left in `folder` in a process that no longer runs (killed mid-write)."""
    found = []
    for tmp in Path(folder).glob(".*.tmp*"):
        m = _TEMP_NAME.fullmatch(tmp.name)
        if m is not None and tmp.is_file() and not _alive(int(m["pid"])):
            found.append(tmp)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_torch(path: Path | str, obj: Any) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def to_uint8(rgb: torch.Tensor | np.ndarray) -> np.ndarray:
    """[H,W,C] float in [0,1] (tensor or array) → uint8 array."""
    array = rgb.detach().float().cpu().numpy() if isinstance(rgb, torch.Tensor) else rgb
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return array


def save_image(path: Path | str, rgb: torch.Tensor | np.ndarray) -> None:
    """Write an [H,W,3] image in [0,1] as PNG (or any format Pillow knows by the suffix)."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(rgb)).save(tmp)


def save_video(path: Path | str, frames: Sequence[torch.Tensor | np.ndarray], fps: int = 20) -> None:
    """Write [H,W,3] frames as MP4 (libx264 via imageio-ffmpeg) or GIF, chosen by the suffix."""
    import imageio.v2 as imageio

    path = Path(path)
    data: list[Any] = [to_uint8(f) for f in frames]  # imageio's stubs want ArrayLike, which an ndarray is
    with atomic_path(path) as tmp:
        if path.suffix == ".gif":
            imageio.mimsave(tmp, data, duration=1000.0 / fps, loop=0)
        else:
            imageio.mimsave(tmp, data, fps=fps, macro_block_size=1, codec="libx264", pixelformat="yuv420p")


def contact_sheet(images: Sequence[torch.Tensor | np.ndarray], cols: int) -> np.ndarray:
    """Tile equally sized [H,W,3] images into one uint8 grid, row-major."""
    tiles = [to_uint8(im) for im in images]
    h, w, c = tiles[0].shape
    rows = (len(tiles) + cols - 1) // cols
    sheet = np.full((rows * h, cols * w, c), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, q = divmod(i, cols)
        sheet[r * h : (r + 1) * h, q * w : (q + 1) * w] = t
    return sheet


def replaced_dir(path: Path) -> Path:
    """Where `prepare_out_dir(path, overwrite=True)` keeps the files of the run it replaces."""
    return path.parent / f".{path.name}.replaced"


def prepare_out_dir(path: Path | str, overwrite: bool) -> Path:
    """Create the output folder; refuse a non-empty one unless `overwrite`, and say so in one line. With
    `overwrite`, what the folder held is moved aside (replaced_dir) so the new run starts from an empty folder;
    discard_replaced removes it once the new run has something of its own (its first checkpoint)."""
    from .errors import UserError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"output path {path} is a file; give a folder with --out")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise UserError(f"output folder {path} already exists; pass --overwrite to replace it")
        aside = replaced_dir(path)
        shutil.rmtree(aside, ignore_errors=True)  # an older replaced run that was never discarded
        try:
            os.replace(path, aside)
        except OSError as e:
            raise UserError(f"cannot replace output folder {path}: {e.strerror}; choose another --out") from None
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to output folder {path}: {e.strerror}; choose another --out") from None
    return path


def discard_replaced(path: Path | str) -> None:
    """Remove the files of the run that `prepare_out_dir(path, overwrite=True)` moved aside."""
    shutil.rmtree(replaced_dir(Path(path)), ignore_errors=True)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024
