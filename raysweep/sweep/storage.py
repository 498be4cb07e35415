"""Where a sweep's record lives: a local (or shared, mounted) directory, or a cloud URI.

``sweep.storage`` is either a directory or a URI that pyarrow opens (``s3://bucket/sweeps``,
``gs://bucket/sweeps``, ``abfs://...``, ``hdfs://...``; options such as an S3 ``endpoint_override`` go in
the URI's query string, credentials come from the usual environment of each cloud's SDK). With a URI:

- Ray Tune keeps the experiment state (``trials/``) there directly, so the grid survives the driver's
  machine and ``raysweep resume <uri>/<name>`` continues it from anywhere;
- the sweep's own files (config, cells, results table, plot, parent MLflow run id) are written to a
  local working copy under ``<output_dir>/sweeps/<name>`` and mirrored to ``<uri>/<name>`` at the start
  and the end of every invocation; a resume on a fresh machine pulls them back first.

Model checkpoints (trunks, RL runs) stay in ``output_dir``, which every node must see (a shared file
system on a cluster): the training workers read and write them as files.

:meth:`SweepStorage.check` runs before anything trains: the sweep's directory (or URI) must answer within
seconds and take a small file, else the command stops naming ``sweep.storage``. URIs are printed and put
in errors redacted (``s3://KEY:SECRET@bucket`` and secret query parameters masked, see :mod:`raysweep.redact`).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from raysweep.config import ConfigError
from raysweep.redact import redact

# the sweep's own small files, mirrored to a remote storage (Tune's trials/ goes there directly)
MIRRORED = ("config.yaml", "cells.json", "mlflow_run_id", "results.csv", "results.jsonl", "accuracy_vs_sft.png",
            "boundary/optuna.db", "report/report.md", "spectral/spectral.md", "spectral/spectral.json",
            "spectral/mlflow_run_id")


def is_uri(location: str) -> bool:
    """``s3://...`` and the like (a scheme and ``://``); plain and relative paths are not URIs."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location) is not None


def split_uri(uri: str) -> tuple[str, str]:
    """``"s3://b/sweeps/x?endpoint_override=h:9"`` -> (``"s3://b/sweeps/x"``, ``"?endpoint_override=h:9"``)."""
    base, sep, query = uri.partition("?")
    return base.rstrip("/"), sep + query


def child_uri(uri: str, name: str) -> str:
    """The URI of ``name`` inside the directory ``uri`` (query options kept)."""
    base, query = split_uri(uri)
    return f"{base}/{name}{query}"


@dataclass(frozen=True)
class SweepStorage:
    """A sweep's directory: ``local`` always (the working copy the driver writes); ``remote`` the URI of
    its durable home when ``sweep.storage`` is a URI."""

    local: Path
    remote: str | None = None

    @classmethod
    def for_sweep(cls, storage: str | None, output_dir: str | Path, name: str) -> "SweepStorage":
        if storage and is_uri(storage):
            return cls(Path(output_dir).resolve() / "sweeps" / name, child_uri(storage, name))
        root = Path(storage) if storage else Path(output_dir) / "sweeps"
        return cls(root.resolve() / name)

    def _fs(self):
        """(pyarrow filesystem, path in it) of the remote directory."""
        import pyarrow.fs

        assert self.remote is not None
        try:
            fs, path = pyarrow.fs.FileSystem.from_uri(self.remote)
        except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ConfigError(f"sweep.storage: pyarrow cannot open {redact(self.remote)} ({redact(str(exc))}); use a "
                              "directory or a URI such as s3://bucket/prefix (options in the query string)") from None
        return fs, path.rstrip("/")

    def check(self, timeout_s: float = 15.0, field: str = "sweep.storage") -> None:
        """Fail fast, before anything trains: the sweep's home must answer within ``timeout_s`` and take a
        small file (written and deleted). Raises :class:`ConfigError` naming ``field`` (the config field that
        put the sweep there: ``sweep.storage``, or ``output_dir`` for the default)."""
        where = redact(self.remote) if self.remote else str(self.local)
        if self.remote is None:
            try:
                _write_probe_local(self.local)
            except OSError as exc:
                raise ConfigError(f"{field}: cannot write the sweep directory {where} "
                                  f"({exc.strerror or exc}); use a writable directory") from None
            return
        fs, path = self._fs()
        outcome: list[BaseException | None] = []

        def probe() -> None:
            try:
                _write_probe_remote(fs, path)
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                outcome.append(exc)

        t = threading.Thread(target=probe, name="raysweep-storage-check", daemon=True)
        t.start()
        t.join(timeout_s)
        if not outcome:
            raise ConfigError(f"{field}: {where} does not answer within {timeout_s:.0f}s; check the endpoint "
                              "(endpoint_override in the query string) and the network, or use a directory")
        if outcome[0] is not None:
            problem = redact(str(outcome[0]).strip().splitlines()[0] if str(outcome[0]).strip() else
                             type(outcome[0]).__name__)
            raise ConfigError(f"{field}: cannot reach or write {where} ({problem}); check the URI, its "
                              "endpoint and the credentials (the cloud SDK's environment), or use a directory")

    def tune_storage(self) -> tuple[str, object | None]:
        """(``storage_path``, ``storage_filesystem``) for Tune's RunConfig/restore: experiment ``trials``
        goes under the path."""
        if self.remote is None:
            return str(self.local), None
        fs, path = self._fs()
        return path, fs

    def push(self) -> list[str]:
        """Copy the sweep's own files to the remote (no-op for local storage); the names copied."""
        if self.remote is None:
            return []
        fs, path = self._fs()
        fs.create_dir(path, recursive=True)
        done = []
        for name in MIRRORED:
            f = self.local / name
            if f.is_file():
                if "/" in name:
                    fs.create_dir(f"{path}/{name.rsplit('/', 1)[0]}", recursive=True)
                with fs.open_output_stream(f"{path}/{name}") as out:
                    out.write(f.read_bytes())
                done.append(name)
        return done

    def pull(self) -> list[str]:
        """Copy the remote's files that the local working copy lacks (a resume on another machine)."""
        if self.remote is None:
            return []
        import pyarrow.fs

        fs, path = self._fs()
        self.local.mkdir(parents=True, exist_ok=True)
        done = []
        for name in MIRRORED:
            if (self.local / name).exists():
                continue
            if fs.get_file_info(f"{path}/{name}").type != pyarrow.fs.FileType.File:
                continue
            (self.local / name).parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(f"{path}/{name}") as src:
                (self.local / name).write_bytes(src.read())
            done.append(name)
        return done


_PROBE = ".raysweep-write-check"


def _write_probe_local(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / _PROBE
    probe.write_bytes(b"ok")
    probe.unlink()


def _write_probe_remote(fs, path: str) -> None:
    import pyarrow.fs

    if fs.get_file_info(path).type == pyarrow.fs.FileType.File:
        raise OSError(f"{path} is a file, not a directory")
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{_PROBE}") as out:
        out.write(b"ok")
    fs.delete_file(f"{path}/{_PROBE}")


def read_remote_text(uri: str) -> str | None:
    """The text of the file at ``uri``, or None if there is none; :class:`ConfigError` if it cannot be read."""
    import pyarrow.fs

    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
        if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
            return None
        with fs.open_input_stream(path) as f:
            return f.read().decode()
    except (ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{redact(uri)}: cannot read it ({redact(first)}); check the URI, its endpoint and the "
                          "credentials") from None
