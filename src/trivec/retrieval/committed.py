"""The last commit of an index directory as its readers see it: the mapped segments, the rows deleted from
them, the `Snapshot` searches read, and reloading when another process commits (or builds the index again in
its place). `SegmentStore` adds the writer."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trivec.retrieval.identity import ModelIdentity
from trivec.retrieval.layout import SEGMENTS, read_fitted, read_tombstones, retrying
from trivec.retrieval.manifest import MANIFEST, IndexReplacedError, commit_of, read_manifest, replaced
from trivec.retrieval.prefault import Prefaulter
from trivec.retrieval.segment import Segment
from trivec.retrieval.settings import IndexSettings
from trivec.retrieval.snapshot import Snapshot

logger = logging.getLogger("trivec.retrieval")


class CommittedStore:
    """One index directory at its last commit, for reading; a reload swaps in the next commit whole."""

    def __init__(self, directory: Path, body: dict[str, Any]) -> None:
        self.directory = directory
        self._refreshing = threading.Lock()  # one reload at a time: search threads refresh side by side
        self._prefaulter = Prefaulter()
        self._prefault_due = False  # segments this process wrote: prefaulted when it first reads (below)
        self.on_rebuild: Callable[[list[Segment]], None] | None = None  # told the segments on each change
        self._body: dict[str, Any] = {}
        self.segments: list[Segment] = []
        self._load(body)

    def _has_pending_writes(self) -> bool:
        """Whether this process has changes not committed yet (a reload would drop them); none for a reader."""
        return False

    @property
    def stores_sparse(self) -> bool:
        return self.identity.has_sparse and self.settings.sparse

    @property
    def stores_colbert(self) -> bool:
        return self.identity.has_colbert and self.settings.colbert

    @property
    def documents(self) -> int:
        return int(self._body["documents"])

    @property
    def chunks(self) -> int:
        return int(self._body["chunks"])

    @property
    def chunked(self) -> bool:
        """Whether any document was split into chunks (searches then group hits by document)."""
        return bool(self._body.get("chunked"))

    @property
    def generation(self) -> int:
        return int(self._body["generation"])

    @property
    def updated(self) -> str:
        return str(self._body["updated"])

    def deleted_rows(self, segment: Segment) -> int:
        return int(self._deleted.get(segment.name, np.zeros(0)).size)

    def _load(self, body: dict[str, Any]) -> None:
        """Map the files `body` names; the index changes only when every file is there (all or nothing)."""
        settings = IndexSettings.from_dict(body["settings"])
        projection, residual = read_fitted(self.directory, body)
        # segments never change: reuse the maps of this index's (not of an index built in its place)
        mapped = {} if replaced(body, self._body) else {seg.name: seg for seg in self.segments}
        segments = [
            mapped.get(r["name"]) or Segment(self.directory / SEGMENTS / r["name"], r)
            for r in body["segments"]
        ]
        deleted = read_tombstones(self.directory, body["segments"])
        self._body = copy.deepcopy(body)
        self.identity = ModelIdentity.from_dict(body["model"])
        self.settings = settings
        self.codec = settings.colbert_codec(projection, residual)
        self.segments = segments
        self._deleted = deleted
        self._rebuild_views()
        # not the file's stamp now: a commit may have landed since `body` was read; the next refresh checks
        self._stamp: bytes | None = None

    def wait_checked(self, timeout: float | None = None) -> bool:
        """Wait for the background check of the open segments (`prefault.py`); whether every one of them was
        checked whole (an index too large to prefault is checked as searches read it)."""
        self._start_due_prefault()
        self._prefaulter.wait(timeout)
        return all(seg.checked for seg in self.snapshot.segments)

    def _rebuild_views(self, prefault: bool = True) -> None:
        """New views of the segments. `prefault`: read the new ones ahead now (opened, or committed by another
        process); a segment this process has just written is read ahead only when it first searches or
        waits for the check: a writer that exits next (`trivec index build`) would only fill its resident
        memory with page cache (6.5 GB at 300k documents, docs/scale.md)."""
        if prefault:
            self._prefaulter.start(self.segments)
        else:
            self._prefault_due = True
        # one assignment: searches see the old snapshot or the new one
        self.snapshot = Snapshot.build(self.segments, self._deleted, self.codec)
        if self.on_rebuild is not None:
            self.on_rebuild(self.segments)

    def _manifest_stamp(self) -> bytes:
        """The manifest's bytes (a few KB; reading them costs ≈ 10 µs). Not `stat`: two commits within the
        file system's timestamp tick can leave the same size, mtime and even inode (reused by the rename),
        and a reader would then never see the second commit."""
        try:
            return (self.directory / MANIFEST).read_bytes()
        except FileNotFoundError:
            return b""

    def refresh(self) -> bool:
        """Load the latest commit if another process made one (not while this one has pending changes)."""
        self._start_due_prefault()
        if self._has_pending_writes():
            return False
        with self._refreshing:
            stamp = self._manifest_stamp()
            if stamp == self._stamp:
                return False

            def load() -> bool:
                moved = self._follow(read_manifest(self.directory))
                if not moved:
                    self._stamp = stamp
                return moved

            return retrying(load, self.directory)

    def _follow(self, body: dict[str, Any]) -> bool:
        """Load `body`, the directory's manifest now, if it is another commit than the one loaded (whether
        it was). When the index was built again in its place, go on with the new one only if it holds the same
        model's vectors under the same settings (then it reads as one more commit); else `IndexReplacedError`
        — a search must not mix this handle's model with another."""
        if commit_of(body) == commit_of(self._body):
            return False
        if replaced(body, self._body):
            if body["model"] != self._body["model"] or body["settings"] != self._body["settings"]:
                raise IndexReplacedError(
                    f"{self.directory} was built again since it was opened, with another model or other "
                    "settings; open it again"
                )
            logger.info("%s was built again since it was opened; reading the new index", self.directory)
        self._load(body)
        return True

    def _start_due_prefault(self) -> None:
        if self._prefault_due:
            self._prefault_due = False
            self._prefaulter.start(self.segments)
