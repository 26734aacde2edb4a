"""Reading input files and writing output files: the one place pdsim does either.

Inputs (hardware YAML, DRAM and CiM files, model configs) go through `read_text`, which
refuses what is not a small regular UTF-8 text file before reading it whole. Outputs are
checked by `check_output` before any simulation, and written by `atomic_write`, so a file that
exists is complete and nothing else is left beside it (docs/limits.md, "Files").
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from sim.errors import PdsimError

#: Largest input file read (hardware and model descriptions are a few kilobytes).
MAX_INPUT_BYTES = 16 * 2**20
#: Largest request trace read (the shipped Azure traces are under 1 MiB; a week of a
#: production trace is some hundreds of MiB).
MAX_TRACE_BYTES = 1024 * 2**20


def read_text(path: str | os.PathLike, flag: str, *, limit: int = MAX_INPUT_BYTES) -> str:
    """The text of ``path``: a regular file of at most ``limit`` bytes (`MAX_INPUT_BYTES`
    unless given), UTF-8 encoded. Anything else is a `PdsimError` naming ``flag`` and the
    file."""
    where = f"{flag}: {path}" if flag else str(path)
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise PdsimError(f"{where}: not a regular file")
            data = f.read(limit + 1)  # never more, whatever the file claims
    except OSError as exc:
        raise PdsimError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        what = "a description" if limit == MAX_INPUT_BYTES else "this input"
        raise PdsimError(f"{where}: larger than {limit // 2**20} MiB, the most "
                         f"pdsim reads for {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PdsimError(f"{where}: not UTF-8 text (byte {exc.start})") from None


def read_counts(path: str | os.PathLike, flag: str, low: int, high: int) -> tuple[int, ...]:
    """Integers in ``[low, high]`` from the file at ``path`` (read by `read_text`), separated by
    white space or commas; ``#`` starts a comment. At least one; `PdsimError` naming ``flag``
    otherwise."""
    text = read_text(path, flag)
    words = " ".join(line.split("#", 1)[0] for line in text.splitlines()).replace(",", " ")
    try:
        counts = tuple(int(w) for w in words.split())
    except ValueError:
        raise PdsimError(f"{flag}: {path} must hold integers in {low}..{high}") from None
    if not counts:
        raise PdsimError(f"{flag}: {path} holds no counts")
    if min(counts) < low or max(counts) > high:
        raise PdsimError(f"{flag}: counts must be in {low}..{high}, got "
                         f"{min(counts)}..{max(counts)}")
    return counts


def check_output(path: str | os.PathLike, flag: str, *, folder: bool = False) -> Path:
    """Refuse, before any work, an output path that cannot be written: empty, ending in a
    slash (for a file), naming a folder (for a file) or a file (for a folder), a name or path
    too long, a parent that is missing as a folder, or a folder that is not writable.
    Missing parents are created at write time, so only an existing non-folder on the way
    is refused. Returns the path."""
    text = os.fspath(path)
    if not text:
        raise PdsimError(f"{flag}: empty path")
    if not folder and text.endswith(os.sep):
        raise PdsimError(f"{flag}: {text!r} ends in '{os.sep}'; give a file name")
    p = Path(text).absolute()
    # Lengths first: a name too long makes every later stat fail.
    anchor = _existing_ancestor(p)
    name_max = _pathconf(anchor, "PC_NAME_MAX", 255)
    path_max = _pathconf(anchor, "PC_PATH_MAX", 4096)
    extra = 0 if folder else _TMP_EXTRA  # the hidden temporary name (see `atomic_write`)
    for name in p.relative_to(anchor).parts:
        if len(os.fsencode(name)) + extra > name_max:
            raise PdsimError(f"{flag}: the name {name[:24]!r}... is too long (at most "
                             f"{name_max - extra} bytes)")
    if len(os.fsencode(str(p))) + extra >= path_max:
        raise PdsimError(f"{flag}: the path is too long (at most {path_max - 1 - extra} bytes)")
    if folder:
        if p.exists() and not p.is_dir():
            raise PdsimError(f"{flag}: {text} exists and is not a folder")
    elif p.is_dir():
        raise PdsimError(f"{flag}: {text} is a folder; give a file name")
    # The nearest existing ancestor must be a writable folder (the rest is created).
    parent = anchor if anchor != p else p.parent
    if folder and p.is_dir():
        parent = p
    if not parent.is_dir():
        raise PdsimError(f"{flag}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PdsimError(f"{flag}: cannot write in {parent} (permission denied)")
    if not _writable_fs(parent):
        raise PdsimError(f"{flag}: cannot write in {parent} (not a writable file system)")
    return Path(text)


def _existing_ancestor(path: Path) -> Path:
    """``path`` itself or its nearest ancestor that exists (``/`` at worst)."""
    for candidate in (path, *path.parents):
        try:
            os.lstat(candidate)
            return candidate
        except OSError:
            continue
    return Path(path.anchor)


def _pathconf(folder: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return default


def _writable_fs(folder: Path) -> bool:
    """False on read-only mounts and pseudo file systems (/proc, /sys), where writes fail
    though the permission bits allow them."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    if st.f_flag & os.ST_RDONLY:
        return False
    # /proc and /sys report no blocks at all; a real file system has some.
    return st.f_blocks > 0


#: Bytes the temporary name adds to the final one: "." prefix, "." + 8 random, ".tmp".
_TMP_EXTRA = 1 + 9 + 4


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, then put it at ``path``.
    Creates the parent folder; returns ``path``.

    On Linux the temporary file is anonymous (``O_TMPFILE``, written through
    ``/proc/self/fd``): even SIGKILL leaves nothing behind, and it gets a name only when
    complete (linked straight to ``path`` when that is free, else to a hidden name renamed
    over it at once). Elsewhere it is a hidden ``.NAME.XXXXXXXX.tmp`` file, removed on any
    failure or signal Python sees. ``write`` must not infer a format from ``tmp``'s suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _anonymous(path.parent)
    if fd is not None:
        try:
            write(Path(f"/proc/self/fd/{fd}"))
            os.fchmod(fd, 0o644)
            _link(fd, path)
        finally:
            os.close(fd)
        return path
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _anonymous(folder: Path) -> int | None:
    """An unnamed file in ``folder`` opened read-write, or None where unsupported."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not Path("/proc/self/fd").is_dir():
        return None
    try:
        return os.open(folder, flag | os.O_RDWR, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # the file system (or kernel) has no O_TMPFILE
        raise


def _link(fd: int, path: Path) -> None:
    """Give the anonymous file ``fd`` the name ``path``, replacing any file there. Where the
    file system refuses to link it (overlayfs: EXDEV), its bytes are copied into a hidden
    named file that is renamed at once (a short window for SIGKILL, not the whole write)."""
    src = f"/proc/self/fd/{fd}"
    try:
        os.link(src, path, follow_symlinks=True)
        return
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOENT, errno.EOPNOTSUPP):
            raise
        _copy_in(fd, path)
        return
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    try:
        os.link(src, tmp, follow_symlinks=True)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOENT, errno.EOPNOTSUPP):
            raise
        _copy_in(fd, path)
        return
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _copy_in(fd: int, path: Path) -> None:
    """Copy the file open as ``fd`` to a hidden file beside ``path``, then rename it."""
    out, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        size = os.fstat(fd).st_size
        offset = 0
        while offset < size:
            offset += os.sendfile(out, fd, offset, size - offset)
        os.fchmod(out, 0o644)
        os.close(out)
        out = -1
        os.replace(name, path)
    except BaseException:
        if out >= 0:
            os.close(out)
        Path(name).unlink(missing_ok=True)
        raise


def atomic_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write` of a text file."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))
