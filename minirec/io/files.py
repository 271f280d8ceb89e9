"""Writing files safely: whole or not at all, and never over something the command reads.

``atomic_write`` is the one way minirec writes a file (weights, JSON, PNG, the download ledger):
into a temporary file beside the target, flushed to disk, then renamed over it, so a crash,
Ctrl-C or a full disk leaves the old file or the new one, never half of one. The temporary
file's name carries the writer's process id, so that a later write can sweep away what a
killed one (``kill -9``) left behind.

``output_file``/``output_folder`` check an output path before any work, and
``refuse_overlaps`` refuses a command whose outputs would land on one of its own inputs (the
ratings file it trains on, the weights file it reads) or on each other.
"""
import errno
import os
import tempfile
from pathlib import Path


def atomic_write(path, write):
    """Call ``write(file)`` on a binary temporary file beside ``path``, then rename it to
    ``path``. The file gets ordinary permissions (0666 less the umask, as ``open`` gives).
    Any failure names ``path`` (not the temporary file) and leaves the old file as it was."""
    path = Path(os.fspath(path))
    sweep_leftovers(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=".part")
    except OSError as e:
        raise OSError(f"cannot write {path}: {reason(e)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OSError(f"cannot write {path}: {reason(e)}; the old file, if any, is "
                          "unchanged") from None
        raise
    return path


def reason(error):
    """An OSError's reason in words, with "disk full" said plainly."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return error.strerror or str(error)


def sweep_leftovers(path):
    """Remove temporary files of earlier writes of ``path`` whose process is gone."""
    for leftover in Path(path).parent.glob(f".{Path(path).name}.*.part"):
        pid = leftover.name[len(Path(path).name) + 2:].split(".")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            try:
                leftover.unlink()
            except OSError:
                pass


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


def output_file(path):
    """Refuse, before any work, an output path that cannot be written (named as given)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OSError(f"{path} is a folder, not a file name")
    if not os.path.isdir(folder):
        raise OSError(f"cannot write {path}: the folder {os.path.dirname(path) or '.'} does not exist")
    if not os.access(folder, os.W_OK):
        raise OSError(f"cannot write {path}: the folder is not writable")
    return path


def output_folder(path):
    """A folder to write into: it exists (or its parent does) and is writable."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OSError(f"{path} is a file, not a folder")
    existing = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        raise OSError(f"cannot write into {path}")
    return path


def same_file(a, b):
    """True when paths ``a`` and ``b`` name one file (symbolic and hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare the resolved names
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_overlaps(outputs, inputs=None):
    """Refuse a command whose outputs land on one of its inputs or on each other.

    ``outputs``: {what: path} (``{"--save": "w.npz", "--plot-loss": "loss.png"}``);
    ``inputs``: {what: path} of every file the command reads (the ratings and titles files, a
    weights file). Raises ``OSError`` naming both, before anything is written."""
    outputs = [(what, p) for what, p in outputs.items() if p]
    for k, (what, path) in enumerate(outputs):
        for read_what, read_path in (inputs or {}).items():
            if read_path and same_file(path, read_path):
                raise OSError(f"{what} {path} is {read_what} this command reads: it would be "
                              "overwritten; choose another path")
        for other_what, other in outputs[k + 1:]:
            if same_file(path, other):
                raise OSError(f"{what} and {other_what} are the same file ({path}): each output "
                              "needs its own path")
