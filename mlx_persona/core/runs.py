"""Run folders and the file-writing rules every stage follows.

Nothing a stage writes may ever be seen half-written: files are written to a temporary name in
the same folder and renamed into place (rename is atomic on one filesystem); whole folders
(a converted model, a fused model) are built in a temporary sibling folder and renamed last.
"""

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mlx_persona.core import layout

PathLike = str | Path


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_dir(final: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a temporary sibling; it appears at ``final`` only if the block succeeds.

    On any error (or Ctrl-C) the temporary folder is removed and ``final`` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; give the folder normal permissions
        if final.exists():
            if not overwrite:
                raise FileExistsError(f"{final} already exists")
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- run folders: manifest and lock ----------------------------------------------------------
def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


class RunLock:
    """One runner per run folder. The lock file holds the owner's pid; a lock left by a process
    that no longer exists (a crash, a reboot) is stale and is taken over."""

    def __init__(self, run_dir: PathLike):
        self.path = Path(run_dir) / ".lock"
        self.stale_cleared = False

    def acquire(self) -> "RunLock":
        from mlx_persona.core.errors import PersonaError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    pid = -1
                if pid > 0 and pid != os.getpid() and pid_alive(pid):
                    raise PersonaError(
                        f"{self.path.parent} is in use by another run (pid {pid}); wait for it, or stop it first"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                self.stale_cleared = True
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            return self
        raise PersonaError(f"could not lock {self.path.parent}")

    def release(self) -> None:
        try:
            if int(self.path.read_text().split()[0]) == os.getpid():
                self.path.unlink()
        except (OSError, ValueError, IndexError):
            pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class Manifest:
    """``manifest.json``: what the run is and where each stage stands. Rewritten atomically on
    every change, so a crash leaves the last consistent state."""

    def __init__(self, run_dir: PathLike):
        self.path = Path(run_dir) / layout.MANIFEST
        self.data: dict = {"stages": {}}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                self.data = {"stages": {}}
        self.data.setdefault("stages", {})

    def stage(self, name: str) -> dict:
        return self.data["stages"].setdefault(name, {"status": "pending"})

    def update(self, stage: str | None = None, /, **fields) -> None:
        """Set ``fields`` on the run (no stage) or on one stage's entry, and save."""
        (self.stage(stage) if stage else self.data).update(fields)
        atomic_write_json(self.path, self.data)


def fingerprint(*parts) -> str:
    """A short stable hash of its parts: bytes as they are, anything else as sorted JSON."""
    import hashlib

    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def tree_fingerprint(path: PathLike) -> str:
    """Fingerprint of a file or folder: contents of small files, size + mtime of large ones."""
    import hashlib

    path = Path(path)
    if not path.exists():
        return "missing"
    files = (
        [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    )
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(str(f.relative_to(path.parent if path.is_file() else path)).encode())
        if st.st_size <= 8 << 20:
            h.update(f.read_bytes())
        else:
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


# -- what a run folder says about itself -----------------------------------------------------
def _read_mapping(path: Path) -> dict:
    """A JSON or YAML file's top-level mapping; {} when it is missing or unreadable."""
    try:
        text = path.read_text()
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception:  # a broken file must not stop chat or eval: the caller falls back
        return {}
    return data if isinstance(data, dict) else {}


def _model_name(d: dict) -> str | None:
    """``model: X``, ``base_model: X`` or ``model: {name|path|base|id: X}``."""
    for key in ("base_model", "model"):
        v = d.get(key)
        if isinstance(v, str) and v:
            return v
        if isinstance(v, dict):
            for k in ("base", "name", "path", "id"):
                if isinstance(v.get(k), str) and v[k]:
                    return v[k]
    return None


def run_base_model(run: PathLike) -> str | None:
    """The base model a run folder names: its manifest, its recipe, or the model its SFT adapter
    was trained on; None when none of them says."""
    run = Path(run)
    adapter_model = _read_mapping(run / layout.SFT_DIR / layout.ADAPTER_CONFIG).get("model")
    for candidate in (
        _model_name(_read_mapping(run / layout.MANIFEST)),
        _model_name(_read_mapping(run / layout.RECIPE)),
        adapter_model if isinstance(adapter_model, str) else None,
    ):
        if candidate:
            return candidate
    return None


def run_twin(run: PathLike, chosen_only: bool = False) -> tuple[str, Path] | None:
    """The model a run calls its twin, as ``(name, fused model folder)``: what ``twin/twin.json``
    chose (the better of SFT and DPO on the validation split), else (unless ``chosen_only``) the
    newest fused model (a run made before that stage existed, or one stopped before it); None
    when there is none."""
    run = Path(run)
    record = _read_mapping(run / layout.TWIN_DIR / layout.TWIN_FILE)
    folder = record.get("folder")
    if isinstance(folder, str) and layout.is_model_dir(run / folder):
        return str(record.get("twin", folder)), run / folder
    if chosen_only:
        return None
    for name, folder in (("dpo", layout.DPO_FUSED_DIR), ("sft", layout.SFT_FUSED_DIR)):
        if layout.is_model_dir(run / folder):
            return name, run / folder
    return None


def kept_its_start(stage_dir: PathLike) -> bool:
    """True when a finished training stage kept the adapter of step 0 (``best_iter`` 0 in its
    ``status.json``): no validation beat the start, and a fresh LoRA/DoRA adapter changes
    nothing, so its fused model is the model it started from (DPO: the SFT twin)."""
    status = _read_mapping(Path(stage_dir) / layout.STATUS)
    return status.get("state") in ("done", "stopped_early") and status.get("best_iter") == 0


def run_persona_line(run: PathLike) -> str | None:
    """The persona's one-line system prompt from a run's recipe (``persona: {system: ...}``), the
    line its training samples carry; None when the run has none."""
    persona = _read_mapping(Path(run) / layout.RECIPE).get("persona")
    line = persona.get("system") if isinstance(persona, dict) else None
    return line if isinstance(line, str) and line.strip() else None
