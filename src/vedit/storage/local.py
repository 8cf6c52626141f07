"""Results and uploads as files on the local disk (``VEDIT_STORAGE=local``, the default).

- a result: ``<data_dir>/results/<task_id>.mp4``, served at
  ``<public_base_url>/v1/files/<task_id>.mp4?expires=<unix>&signature=<hex>``;
- an upload: ``<data_dir>/uploads/<upload_id>``, served at
  ``<public_base_url>/v1/uploads/<upload_id>/<name>?expires=<unix>&signature=<hex>``.

Keeping a file is a rename (the incoming folder is on the same disk) and a worker's
copy of an upload is a hard link where it can be. The links and their signatures
are ``base.py``'s.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from vedit.errors import StorageUnavailable
from vedit.storage.base import Area, Storage, StorageOptions, StoredFile


class LocalStorage(Storage):
    """Result files under ``<data_dir>/results``, uploads under ``<data_dir>/uploads``."""

    name = "local"

    def __init__(self, options: StorageOptions) -> None:
        super().__init__(options)
        self.root = options.results_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.uploads_root = options.uploads_dir
        self.uploads_root.mkdir(parents=True, exist_ok=True)

    def path(self, area: Area, name: str) -> Path:
        return (self.root if area == "results" else self.uploads_root) / name

    def result_path(self, task_id: str) -> Path:
        return self.path("results", f"{task_id}.mp4")

    def put(self, area: Area, name: str, src: Path, content_type: str) -> str:
        final = self.path(area, name)
        os.replace(src, final)
        return str(final)

    def get(self, area: Area, name: str, dest: Path) -> bool:
        source = self.path(area, name)
        if not source.is_file():
            return False
        try:
            os.link(source, dest)  # the same disk: no copy
        except FileNotFoundError:
            return False
        except OSError:
            shutil.copyfile(source, dest)
        return True

    def delete(self, area: Area, name: str) -> None:
        self.path(area, name).unlink(missing_ok=True)

    def describe(self) -> str:
        return "results and uploads on this disk"

    def local_path(self, found: StoredFile) -> Path | None:
        return self.path(found.area, found.name)

    def check(self) -> None:
        for folder in (self.root, self.uploads_root):
            try:
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as exc:
                raise StorageUnavailable(
                    f"local storage: cannot write in {folder} (VEDIT_DATA_DIR): {exc}"
                ) from None
