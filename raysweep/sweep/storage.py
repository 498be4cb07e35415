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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from raysweep.config import ConfigError

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
            raise ConfigError(f"sweep.storage: pyarrow cannot open {self.remote} ({exc}); use a directory or a URI "
                              "such as s3://bucket/prefix (options in the query string)") from None
        return fs, path.rstrip("/")

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


def read_remote_text(uri: str) -> str | None:
    """The text of the file at ``uri``, or None if there is none."""
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read().decode()
