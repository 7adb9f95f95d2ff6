"""Reading and writing the files a user names, safely: no links followed out of a directory, no
special files, no unbounded reads, no hang.

Every vaespec command that touches the disk goes through these helpers (`vaespec vectors`,
`vaespec train`'s data and checkpoints, the `--json` outputs), so the rules hold in one place:

- `read_inside(root, relative, limit)`: a regular file *inside* `root`, reached without following a
  symbolic link at any step below `root` (each step is opened relative to its parent's descriptor
  with `O_NOFOLLOW`, so a link swapped in mid-way is refused too), never a FIFO or a device
  (`O_NONBLOCK`, then `fstat` must say regular), never more than `limit` bytes.
- `open_regular(path)`: a regular file the user named directly (a link they named is theirs to
  name), opened without blocking on a FIFO.
- `check_output_file(option, path)`, `check_output_dir(option, path)`: refuse, before any work is
  done, an output whose directory is missing or unwritable, or that is not a regular file or
  directory.

Errors are the caller's `VaespecError` subclass (default `ConfigError`) naming the file.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from .errors import ConfigError, VaespecError

# A path as the os functions take it; the error class each check raises (a VaespecError subclass).
StrPath = str | os.PathLike[str]
Error = type[VaespecError]

NAME_MAX = 255  # bytes per path component (Linux, macOS)
PATH_MAX = 1024  # bytes per relative path inside a named directory

_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
    | getattr(os, "O_CLOEXEC", 0)
_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_name(relative: str, error: Error = ConfigError) -> list[str]:
    """The components of `relative` (a '/'-separated path meant to stay inside a directory), or `error`
    if it is absolute, climbs out (`..`), is empty, holds NUL, or is over-long (`NAME_MAX`, `PATH_MAX`)."""
    if not isinstance(relative, str) or not relative:
        raise error(f"{relative!r}: expected a non-empty relative path")
    if "\0" in relative or "\\" in relative:
        raise error(f"{relative!r}: a path with a NUL or backslash")
    if len(relative.encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise error(f"{relative[:60]!r}…: a path of {len(relative)} characters, over {PATH_MAX}")
    parts = relative.split("/")
    if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise error(f"{relative!r}: a path outside the directory (absolute, empty step, '.' or '..')")
    long = [p for p in parts if len(p.encode("utf-8", "surrogateescape")) > NAME_MAX]
    if long:
        raise error(f"{relative[:60]!r}: a name of {len(long[0])} characters, over {NAME_MAX}")
    return parts


def _read_fd(fd: int, where: str, limit: int, error: Error) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{where}: {_kind(info.st_mode)}, expected a regular file")
    if info.st_size > limit:
        raise error(f"{where}: {info.st_size} bytes, over the limit of {limit}")
    chunks, size = [], 0
    while size <= limit:
        chunk = os.read(fd, min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise error(f"{where}: over the limit of {limit} bytes (grew while read)")
    return b"".join(chunks)


def read_inside(root: StrPath, relative: str, limit: int, error: Error = ConfigError) -> bytes:
    """The bytes of the regular file `root`/`relative`, following no link below `root` (see the module).

    **Arguments** `root` (the directory the user named), `relative` ('/'-separated), `limit` (bytes).
    **Raises** `error` naming the file: missing, a link, a directory or special file, too large, unreadable.
    """
    parts = check_name(relative, error)
    where = os.path.join(str(root), relative)
    fds = []
    try:
        try:
            fds.append(os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)))
        except OSError as failure:
            raise error(f"{root}: cannot open the directory ({failure.strerror})") from None
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            here = os.path.join(str(root), *parts[: depth + 1])
            try:
                mode = os.lstat(part, dir_fd=fds[-1]).st_mode
            except FileNotFoundError:
                raise error(f"{here}: missing") from None
            except OSError as failure:
                raise error(f"{here}: cannot read ({failure.strerror})") from None
            wanted = stat.S_ISREG(mode) if last else stat.S_ISDIR(mode)
            if not wanted:
                raise error(f"{here}: {_kind(mode)}, expected a {'regular file' if last else 'directory'} "
                            f"inside {root}")
            try:
                fds.append(os.open(part, _READ if last else _DIR, dir_fd=fds[-1]))
            except OSError as failure:  # e.g. ELOOP: swapped for a link after the lstat
                raise error(f"{here}: cannot open without following links ({failure.strerror})") from None
        try:
            return _read_fd(fds[-1], where, limit, error)
        except OSError as failure:
            raise error(f"{where}: cannot read ({failure.strerror})") from None
    finally:
        for fd in fds:
            os.close(fd)


def open_regular(path: StrPath, error: Error = ConfigError, what: str = "file") -> BinaryIO:
    """`path` opened for binary reading if it is a regular file (a FIFO or device is refused, never waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what}: {path!r} does not exist") from None
    except OSError as failure:
        raise error(f"{what}: cannot open {path!r} ({failure.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"{what}: {path!r} is {_kind(mode)}, expected a regular file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(path: StrPath, limit: int, error: Error = ConfigError, what: str = "file") -> bytes:
    """The bytes of the regular file `path` (at most `limit`; see `open_regular`)."""
    with open_regular(path, error, what) as handle:
        try:
            return _read_fd(handle.fileno(), f"{what}: {path!r}", limit, error)
        except OSError as failure:
            raise error(f"{what}: cannot read {path!r} ({failure.strerror})") from None


def _writable_dir(option: str, directory: str, error: Error) -> None:
    if not os.path.isdir(directory):
        raise error(f"{option}: the directory {directory!r} does not exist" if not os.path.exists(directory)
                    else f"{option}: {directory!r} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise error(f"{option}: the directory {directory!r} is not writable")


def check_output_file(option: str, path: StrPath, error: Error = ConfigError) -> None:
    """Refuse, before any work, an output file that could not be written: its directory missing or
    unwritable, or `path` a directory or special file."""
    path = os.fspath(path)
    if not path:
        raise error(f"{option}: expected a file name, got ''")
    if os.path.lexists(path):
        mode = os.stat(path).st_mode if os.path.exists(path) else stat.S_IFLNK
        if not stat.S_ISREG(mode):
            raise error(f"{option}: {path!r} is {_kind(mode)}, expected a regular file to write")
        if not os.access(path, os.W_OK):
            raise error(f"{option}: {path!r} is not writable")
    _writable_dir(option, os.path.dirname(os.path.abspath(path)), error)


def check_output_dir(option: str, path: StrPath, error: Error = ConfigError) -> None:
    """Refuse, before any work, an output directory that could not be made or written: `path` a file,
    or its nearest existing ancestor not a writable directory."""
    path = os.fspath(path)
    if not path:
        raise error(f"{option}: expected a directory name, got ''")
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise error(f"{option}: {path!r} exists and is not a directory")
        _writable_dir(option, path, error)
        return
    if os.path.lexists(path):
        raise error(f"{option}: {path!r} is a dangling symbolic link")
    ancestor = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise error(f"{option}: cannot create {path!r}: {ancestor!r} is not a directory")
    _writable_dir(option, ancestor, error)


def json_depth(value: object, limit: int) -> int:
    """The nesting depth of a parsed JSON value, counted iteratively (no recursion to exhaust) and
    no further than `limit` + 1 levels: a depth above `limit` is all a caller needs to refuse it."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= limit:
                stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest
