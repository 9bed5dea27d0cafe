"""Packed store: every clip's grayscale frames as uint8 in a few memory-mapped shard files.

Written once by ``tools/pack_dataset.py`` (which decodes each clip with the same grayscale
conversion the other readers use), read by every loader worker and DDP rank without decoding:
a clip's frames are read straight from the page cache (a view of the consecutive frames a sample
needs, or a copy of ``n * H * W`` bytes for scattered ones), cropped and resized from there.
Packing at the training resolution (``tools/pack_dataset.py --short-side``) makes the shards and
the per-sample resize smaller.

Layout of a store folder::

    index.json          {"format", "version", "dtype", "shards": [...], "shard_bytes": [...],
                         "samples": {name: {"shard", "offset", "num_frames", "height", "width"}}}
    shard_00000.u8      raw uint8 frames, clip after clip, each clip [num_frames, height, width]
    shard_00001.u8      ...

A store is built in a temporary sibling folder and renamed into place only when complete, so a
folder that carries ``index.json`` is always whole. Readers open the shards lazily, read-only, in
the process that reads (a :class:`PackedStore` pickled into DataLoader workers or built on each
DDP rank reopens its own maps), so any number of processes can read one store at once.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from datasets.readers import GRAY_LEVELS, DataError, Levels

logger = logging.getLogger(__name__)

INDEX_FILE = "index.json"
STORE_FORMAT = "lps-har-packed"
STORE_VERSION = 1
SHARD_NAME = "shard_{:05d}.u8"
DEFAULT_SHARD_BYTES = 1 << 30  # 1 GiB shards: few open files, cheap to copy between machines


class PackedStoreError(DataError):
    """A packed store that is missing, incomplete or does not hold the asked sample."""


@dataclass(frozen=True)
class PackedEntry:
    """Where one clip lives in the store.

    Args:
        shard: shard file number.
        offset: byte offset of the clip's first frame in the shard.
        num_frames: frames of the clip.
        height: frame height in pixels.
        width: frame width in pixels.
    """

    shard: int
    offset: int
    num_frames: int
    height: int
    width: int

    @property
    def nbytes(self) -> int:
        """Bytes the clip takes in its shard."""
        return self.num_frames * self.height * self.width


class PackedWriter:
    """Writes clips into a new packed store; nothing appears at ``root`` until :meth:`commit`.

    Use as a context manager: leaving the block normally commits, an exception discards the
    temporary folder.

    Args:
        root: the store folder to create.
        shard_bytes: a new shard starts when the current one would grow past this size (a clip
            is never split across shards; a clip larger than this gets a shard of its own).
        overwrite: replace an existing store at ``root`` (the old one is removed only after the
            new one is complete).
        metadata: JSON-serialisable facts about the source, stored in the index.
    """

    def __init__(self, root: str | os.PathLike, shard_bytes: int = DEFAULT_SHARD_BYTES, *,
                 overwrite: bool = False, metadata: dict | None = None) -> None:
        if shard_bytes < 1:
            raise ValueError(f"shard_bytes must be positive, got {shard_bytes}")
        self.root = Path(root)
        if self.root.exists() and not overwrite:
            raise PackedStoreError(f"packed store {self.root} already exists; remove it, choose "
                                   "another output folder or pass --overwrite")
        self.shard_bytes = shard_bytes
        self.metadata = dict(metadata or {})
        self._tmp = self.root.parent / f".{self.root.name}.tmp-{uuid.uuid4().hex[:8]}"
        self._tmp.mkdir(parents=True)
        self._samples: dict[str, PackedEntry] = {}
        self._shard_sizes: list[int] = []
        self._file = None

    def _open_shard(self) -> None:
        if self._file is not None:
            self._close_shard()
        self._shard_sizes.append(0)
        self._file = open(self._tmp / SHARD_NAME.format(len(self._shard_sizes) - 1), "wb")

    def _close_shard(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None

    def add(self, name: str, frames: np.ndarray) -> PackedEntry:
        """Appends one clip.

        Args:
            name: sample name (unique in the store).
            frames: uint8 grayscale frames [N, H, W].

        Returns:
            Where the clip was written.
        """
        if name in self._samples:
            raise ValueError(f"sample {name} was already added to the packed store")
        if frames.dtype != np.uint8 or frames.ndim != 3 or not frames.shape[0]:
            raise ValueError(f"sample {name}: expected uint8 frames [N, H, W], got "
                             f"{frames.dtype} {tuple(frames.shape)}")
        nbytes = frames.nbytes
        if self._file is None or (self._shard_sizes[-1] and
                                  self._shard_sizes[-1] + nbytes > self.shard_bytes):
            self._open_shard()
        entry = PackedEntry(len(self._shard_sizes) - 1, self._shard_sizes[-1], *frames.shape)
        self._file.write(np.ascontiguousarray(frames).data)
        self._shard_sizes[-1] += nbytes
        self._samples[name] = entry
        return entry

    def commit(self) -> Path:
        """Writes the index and renames the finished store into place.

        Returns:
            The store folder.
        """
        if self._file is not None:
            self._close_shard()
        index = {
            "format": STORE_FORMAT,
            "version": STORE_VERSION,
            "dtype": "uint8",
            "shards": [SHARD_NAME.format(i) for i in range(len(self._shard_sizes))],
            "shard_bytes": self._shard_sizes,
            "metadata": self.metadata,
            "samples": {name: vars(entry) for name, entry in self._samples.items()},
        }
        with open(self._tmp / INDEX_FILE, "w") as f:
            json.dump(index, f)
            f.flush()
            os.fsync(f.fileno())
        old = None
        if self.root.exists():
            old = self.root.parent / f".{self.root.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.root, old)
        os.replace(self._tmp, self.root)
        if old is not None:
            shutil.rmtree(old)
        logger.info("packed store %s: %d clips in %d shards, %.1f MB", self.root,
                    len(self._samples), len(self._shard_sizes), sum(self._shard_sizes) / 1e6)
        return self.root

    def abort(self) -> None:
        """Discards everything written so far."""
        if self._file is not None:
            self._file.close()
            self._file = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "PackedWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class PackedStore:
    """Read-only access to a packed store; cheap to create, pickle and copy into workers.

    The index is read and the shards are memory-mapped on first use in each process.

    Args:
        root: the store folder written by :class:`PackedWriter` / ``tools/pack_dataset.py``.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._samples: dict[str, PackedEntry] | None = None
        self._shards: list[str] = []
        self._shard_bytes: list[int] = []
        self._maps: dict[int, np.memmap] = {}
        self._pid = -1

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_maps"] = {}
        state["_pid"] = -1
        return state

    def _load_index(self) -> None:
        path = self.root / INDEX_FILE
        if not path.is_file():
            raise PackedStoreError(f"packed store {self.root}: {INDEX_FILE} not found; build the "
                                   "store with tools/pack_dataset.py --out " + str(self.root))
        try:
            with open(path) as f:
                index = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise PackedStoreError(f"packed store {self.root}: {INDEX_FILE} is unreadable "
                                   f"({type(exc).__name__}); rebuild it with tools/pack_dataset.py") from None
        if index.get("format") != STORE_FORMAT or index.get("version") != STORE_VERSION:
            raise PackedStoreError(f"packed store {self.root}: not a version {STORE_VERSION} "
                                   f"{STORE_FORMAT} store; rebuild it with tools/pack_dataset.py")
        self._shards = list(index["shards"])
        self._shard_bytes = [int(n) for n in index["shard_bytes"]]
        self._samples = {name: PackedEntry(**entry) for name, entry in index["samples"].items()}

    @property
    def samples(self) -> dict[str, PackedEntry]:
        """Sample name -> where it lives."""
        if self._samples is None:
            self._load_index()
        return self._samples

    def __contains__(self, name: str) -> bool:
        return name in self.samples

    def __len__(self) -> int:
        return len(self.samples)

    def entry(self, name: str) -> PackedEntry:
        """Where sample ``name`` lives.

        Raises:
            PackedStoreError: the store does not hold it.
        """
        try:
            return self.samples[name]
        except KeyError:
            raise PackedStoreError(f"sample {name}: not in packed store {self.root}; repack it "
                                   "with tools/pack_dataset.py from the current data") from None

    def _shard(self, number: int) -> np.memmap:
        if self._pid != os.getpid():  # a forked worker or a fresh process: own maps
            self._maps = {}
            self._pid = os.getpid()
        shard = self._maps.get(number)
        if shard is None:
            path = self.root / self._shards[number]
            size = path.stat().st_size if path.is_file() else -1
            if size != self._shard_bytes[number]:
                raise PackedStoreError(f"packed store {self.root}: shard {path} is missing or has "
                                       f"{size} bytes instead of {self._shard_bytes[number]}; "
                                       "rebuild the store with tools/pack_dataset.py")
            shard = np.memmap(path, dtype=np.uint8, mode="r")
            self._maps[number] = shard
        return shard

    def clip(self, name: str) -> np.ndarray:
        """A read-only uint8 view [N, H, W] of all frames of ``name`` (no copy)."""
        entry = self.entry(name)
        shard = self._shard(entry.shard)
        return shard[entry.offset:entry.offset + entry.nbytes].reshape(
            entry.num_frames, entry.height, entry.width)

    def read_gray(self, name: str, indices: np.ndarray,
                  crop: tuple[int, int, int, int] | None = None, *, copy: bool = True) -> np.ndarray:
        """Frames ``indices`` of ``name`` as uint8 [n, H, W].

        Args:
            name: sample name.
            indices: frame indices (any order, repeats allowed).
            crop: optional ``(top, left, height, width)``: only that window is copied.
            copy: False: consecutive increasing indices come back as a read-only view of the
                shard (nothing copied; the page cache is read by whoever consumes the view).

        Raises:
            PackedStoreError: unknown sample or an index outside the clip.
        """
        frames = self.clip(name)  # [N, H, W] view
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(frames)):
            raise PackedStoreError(f"sample {name}: frame index out of range 0..{len(frames) - 1} "
                                   f"in packed store {self.root}")
        if crop is not None:
            top, left, height, width = crop
            frames = frames[:, top:top + height, left:left + width]
        first = int(indices[0]) if indices.size else 0
        if not copy and np.array_equal(indices, np.arange(first, first + indices.size)):
            return np.asarray(frames[first:first + indices.size])  # a view, not a memmap object
        return np.asarray(frames[indices])


class PackedClip:
    """One sample of a packed store, with the :class:`datasets.readers.Clip` interface.

    Args:
        store: the opened store (shared by all samples of a dataset).
        sample: the sample name.
    """

    def __init__(self, store: PackedStore, sample: str) -> None:
        self.store = store
        self.sample = sample
        self.num_frames = store.entry(sample).num_frames

    def read(self, indices: np.ndarray, gray: bool) -> np.ndarray:
        """Returns frames ``indices`` as uint8 [N, H, W]; the store holds grayscale only.
        Consecutive indices (the usual union of needed frames) come back as a read-only view of
        the shard, without a copy.

        Raises:
            PackedStoreError: RGB frames were asked for.
        """
        if not gray:
            raise PackedStoreError(f"sample {self.sample}: the packed store {self.store.root} "
                                   "holds grayscale frames only; use DATA.LAYOUT video or frames "
                                   "for an RGB encoder")
        return self.store.read_gray(self.sample, indices, copy=False)

    def read_luma(self, indices: np.ndarray) -> tuple[np.ndarray, Levels]:
        """Gray frames ``indices`` (see :class:`datasets.readers.Clip`)."""
        return self.read(indices, gray=True), GRAY_LEVELS


class PackedOpener:
    """Opens samples of one packed store by name: the ``opener`` of :class:`datasets.dataset.ClipDataset`
    for ``DATA.LAYOUT packed``. Picklable; every process maps the shards itself.

    Args:
        root: the store folder (``DATA.PACKED_ROOT``).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.store = PackedStore(root)

    def __call__(self, name: str) -> PackedClip:
        return PackedClip(self.store, name)
