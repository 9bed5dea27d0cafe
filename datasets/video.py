"""Video clips: decord (frame-accurate batch fetch), opencv's sequential decode, opencv's luma plane.

Luma video backend (``DATA.VIDEO_BACKEND luma``): the gray of a frame is its ITU-R 601 luma, which
is what YUV video stores in its first plane, up to the stream's levels (limited range: Y = 16 +
219 gray / 255; full range, as MJPEG: Y = gray). The luma reader takes that plane straight from the
decoder (opencv's FFmpeg capture with the colour conversion off), skipping the YUV -> BGR -> gray
conversions, half of opencv's decode time here. The levels are not exposed by opencv, so
:class:`LumaLevels` measures them once per folder and codec against the colour path; streams whose
plane does not match (packed pixel formats, RGB codecs) are read through the colour path.
:meth:`VideoClip.read_luma` returns the plane and its levels ``gray = scale * Y + offset`` for the
device to apply (``DATA.CROP_ON_DEVICE``); ``read(gray=True)`` applies them with a lookup table.

:class:`VideoClip` has the :class:`datasets.readers.Clip` interface and raises
:class:`datasets.readers.DataError` for a missing or corrupt file.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from datasets.readers import GRAY_LEVELS, DataError, Levels, to_gray
from utils.misc import PIXEL_MAX

logger = logging.getLogger(__name__)

DECODE_THREADS = 1  # one decoding thread per loader worker (workers are the parallelism)
FOURCC_CHARS = 4  # characters of a fourcc code
LUMA_BLACK, LUMA_RANGE = 16, 219  # limited-range luma: Y = 16 + 219 * gray / 255
# levels (scale, offset) of gray = scale * Y + offset; full range is readers.GRAY_LEVELS
LIMITED_LEVELS = (PIXEL_MAX / LUMA_RANGE, -LUMA_BLACK * PIXEL_MAX / LUMA_RANGE)
LUMA_TOLERANCE = 3.0  # mean |gray from luma - gray from colour| (levels) accepted by the calibration
CALIBRATION_FRAMES = 8  # frames compared by the luma calibration
MIN_LUMA_SPREAD = 8.0  # luma standard deviation (levels) from which the calibration fits a slope
# FFmpeg pixel formats (as opencv's fourcc tags) whose first plane is the 8-bit luma
LUMA_PIXEL_FORMATS = frozenset({"I420", "IYUV", "YV12", "NV12", "NV21", "Y800", "Y41B", "Y42B",
                                "444P", "YV16", "YV24", "YUV9", "YVU9"})

VIDEO_BACKENDS = ("auto", "decord", "opencv", "luma")  # DATA.VIDEO_BACKEND choices


def _open_capture(path: Path) -> cv2.VideoCapture:
    """An opencv FFmpeg capture decoding on :data:`DECODE_THREADS` threads (FFmpeg's default, one
    thread per core, only adds contention between loader workers; the frames are the same)."""
    return cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, DECODE_THREADS])


def _fourcc(value: float) -> str:
    """The four characters of an opencv fourcc property (a code packed into a float)."""
    return int(value).to_bytes(FOURCC_CHARS, "little", signed=True).decode("latin-1")


def has_luma_plane(capture: cv2.VideoCapture) -> bool:
    """Whether the decoder's frames carry the 8-bit luma in their first plane.

    Args:
        capture: an opened capture (its codec's output pixel format is read).
    """
    return _fourcc(capture.get(cv2.CAP_PROP_CODEC_PIXEL_FORMAT)) in LUMA_PIXEL_FORMATS


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silences opencv's warnings (its capture warns on every raw luma frame) for the block."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def levels_table(levels: Levels) -> np.ndarray:
    """The uint8 lookup table ``round(clamp(scale * Y + offset))`` of ``levels``.

    Args:
        levels: ``(scale, offset)``, see :class:`datasets.readers.Clip`.
    """
    scale, offset = levels
    return np.clip(np.rint(np.arange(int(PIXEL_MAX) + 1) * scale + offset), 0, PIXEL_MAX).astype(np.uint8)


def calibrate_luma(path: Path) -> Levels | None:
    """The levels of a video's luma plane, :data:`GRAY_LEVELS` or :data:`LIMITED_LEVELS`: the one
    whose slope is nearer the least-squares fit of opencv's colour-path gray to the plane over the
    first :data:`CALIBRATION_FRAMES` frames (by the mean difference when the frames are too flat
    for a slope, below :data:`MIN_LUMA_SPREAD`). None when the plane is not the luma: another
    pixel format, or a mean difference above :data:`LUMA_TOLERANCE`."""
    colour, luma = _open_capture(path), _open_capture(path)
    planes, grays = [], []
    try:
        if not (colour.isOpened() and luma.isOpened() and has_luma_plane(luma)):
            return None
        luma.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        with quiet_opencv():
            while len(planes) < CALIBRATION_FRAMES:
                (ok_colour, bgr), (ok_luma, plane) = colour.read(), luma.read()
                if not (ok_colour and ok_luma):
                    break
                if plane.shape != bgr.shape[:2]:
                    return None
                planes.append(plane)
                grays.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    finally:
        colour.release()
        luma.release()
    if not planes:
        return None
    raw, gray = np.stack(planes), np.stack(grays).astype(np.float64)  # [N, H, W] each
    errors = {levels: float(np.abs(levels_table(levels)[raw] - gray).mean())
              for levels in (GRAY_LEVELS, LIMITED_LEVELS)}
    luma = raw.astype(np.float64)
    if luma.std() >= MIN_LUMA_SPREAD:
        slope = float(((luma - luma.mean()) * (gray - gray.mean())).mean() / luma.var())
        best = min(errors, key=lambda levels: abs(levels[0] - slope))
    else:
        best = min(errors, key=errors.get)
    return best if errors[best] <= LUMA_TOLERANCE else None


class LumaLevels:
    """The luma levels of each folder and codec, calibrated (:func:`calibrate_luma`) on the first
    video of it a process reads: a dataset's videos share their encoding, and the calibration
    costs two short decodes. Each loader worker holds its own copy."""

    def __init__(self) -> None:
        self._levels: dict[tuple[str, str], Levels | None] = {}

    def __call__(self, path: Path, codec: str) -> Levels | None:
        """The levels of the videos of ``path``'s folder and ``codec`` (None: not luma).

        Args:
            path: a video of the folder (calibrated on when the folder and codec are new).
            codec: the video's fourcc.
        """
        key = (str(path.parent), codec)
        if key not in self._levels:
            self._levels[key] = calibrate_luma(path)
            if self._levels[key] is None:
                logger.warning("videos of %s (%s): the decoder's first plane is not the luma; reading "
                               "them through the colour conversion", path.parent, codec)
            else:
                logger.debug("videos of %s (%s): luma levels %s", path.parent, codec, self._levels[key])
        return self._levels[key]


class VideoClip:
    """A video file read through decord (frame-accurate batch fetch), opencv when decord fails, or
    opencv's luma plane (see the module docstring).

    Args:
        path: the video file.
        sample: the sample name used in error messages.
        backend: ``auto`` (decord, then opencv), ``decord``, ``opencv`` or ``luma``.
        luma_levels: the calibrations the ``luma`` backend shares between clips (a new one when
            None: each clip then calibrates itself).
    """

    def __init__(self, path: str | Path, sample: str, backend: str = "auto",
                 luma_levels: LumaLevels | None = None) -> None:
        self.path = Path(path)
        self.sample = sample
        self.backend = backend
        self.luma_levels = luma_levels if luma_levels is not None else LumaLevels()
        if not self.path.is_file():
            raise DataError(f"sample {sample}: video file {self.path} not found")
        self._decord = None
        self._capture = None  # the opencv capture opened for the frame count, kept for one read
        if backend in ("auto", "decord"):
            self._decord = self._open_decord(backend == "decord")
        if self._decord is not None:
            self.num_frames = len(self._decord)
        else:
            self._capture = _open_capture(self.path)
            opened = self._capture.isOpened()
            self.num_frames = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)) if opened else 0
        if self.num_frames < 1:
            raise DataError(f"sample {sample}: video file {self.path} has no readable frames")

    def _open_decord(self, required: bool):
        try:
            import decord
        except ImportError:
            if required:
                raise
            return None
        try:
            return decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=1)
        except Exception as exc:  # decord raises its own DECORDError and RuntimeError
            if required:
                raise DataError(f"sample {self.sample}: decord cannot open video file "
                                f"{self.path} ({type(exc).__name__})") from None
            logger.debug("decord cannot open %s, falling back to opencv", self.path)
            return None

    def read(self, indices: np.ndarray, gray: bool) -> np.ndarray:
        """Reads frames ``indices`` (any order, repeats allowed); see :class:`datasets.readers.Clip`."""
        indices = np.asarray(indices, dtype=np.int64)
        if gray and self.backend == "luma":
            frames, levels = self.read_luma(indices)
            return frames if levels == GRAY_LEVELS else cv2.LUT(frames, levels_table(levels))
        rgb = None
        if self._decord is not None:
            try:
                rgb = self._decord.get_batch(indices.tolist()).asnumpy()  # [N, H, W, 3]
            except Exception as exc:  # decord raises its own DECORDError and RuntimeError
                if self.backend == "decord":
                    raise DataError(f"sample {self.sample}: decord cannot decode frames of video "
                                    f"file {self.path} ({type(exc).__name__})") from None
                # decord 0.6 fails on some frame widths (e.g. 24, 48 px): opencv decodes those.
                logger.debug("decord cannot decode %s, falling back to opencv", self.path)
                self._decord = None
        if rgb is None:
            conversion = cv2.COLOR_BGR2GRAY if gray else cv2.COLOR_BGR2RGB
            return self._read_opencv(indices, conversion, self._take_capture())
        return to_gray(rgb) if gray else rgb

    def read_luma(self, indices: np.ndarray) -> tuple[np.ndarray, Levels]:
        """Frames ``indices`` and their levels (see :class:`datasets.readers.Clip`): the decoder's
        luma plane with the ``luma`` backend where the calibration accepts it, else gray frames."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.backend != "luma":
            return self.read(indices, gray=True), GRAY_LEVELS
        capture = self._take_capture()
        codec = _fourcc(capture.get(cv2.CAP_PROP_FOURCC))
        levels = self.luma_levels(self.path, codec) if has_luma_plane(capture) else None
        if levels is None:
            return self._read_opencv(indices, cv2.COLOR_BGR2GRAY, capture), GRAY_LEVELS
        capture.set(cv2.CAP_PROP_CONVERT_RGB, 0)  # before the first retrieve: raw luma planes
        return self._read_opencv(indices, None, capture), levels

    def _take_capture(self) -> cv2.VideoCapture:
        """The capture opened for the frame count (positioned at frame 0), once; then new ones."""
        capture, self._capture = self._capture, None
        return capture if capture is not None else _open_capture(self.path)

    def _read_opencv(self, indices: np.ndarray, conversion: int | None, cap: cv2.VideoCapture) -> np.ndarray:
        """Sequential decode of ``cap`` (at frame 0) up to the largest index (opencv seeking is not
        frame-accurate); only the wanted frames are retrieved, each once, and converted with
        ``conversion`` (None: as retrieved). Gray frames are converted from BGR directly: the same
        luma weights as ``to_gray`` of the RGB frame, bit for bit, without the RGB copy. Releases
        ``cap``."""
        wanted = np.unique(indices)  # sorted
        out, decoded, position = None, 0, 0
        wanted_list = wanted.tolist()
        while decoded < len(wanted_list) and cap.grab():
            if position == wanted_list[decoded]:
                frame = _retrieve(cap, conversion, None if out is None else out[decoded])
                if frame is None:
                    break
                if out is None:
                    out = np.empty((len(wanted_list),) + frame.shape, np.uint8)  # [U, H, W(, 3)]
                if not np.may_share_memory(frame, out):  # not retrieved into the output row
                    if frame.shape != out.shape[1:]:
                        raise DataError(f"sample {self.sample}: frames of video file {self.path} "
                                        f"change size from {out.shape[1:]} to {frame.shape}")
                    out[decoded] = frame
                decoded += 1
            position += 1
        cap.release()
        if not decoded:
            raise DataError(f"sample {self.sample}: cannot decode frames of video file {self.path}")
        # Containers may announce more frames than they decode: use the nearest decoded frame.
        nearest = np.clip(np.searchsorted(wanted[:decoded], indices), 0, decoded - 1)
        return out[:decoded] if np.array_equal(wanted[:decoded], indices) else out[nearest]


def _retrieve(capture: cv2.VideoCapture, conversion: int | None, into: np.ndarray | None) -> np.ndarray | None:
    """The grabbed frame, or None when it cannot be retrieved.

    Args:
        capture: a capture positioned on a grabbed frame.
        conversion: an opencv colour conversion code, or None for the frame as retrieved (a raw
            luma plane, retrieved with opencv's per-frame format warning silenced).
        into: where a raw frame is retrieved when it has the frame's size (opencv returns a new
            array otherwise), or None.
    """
    if conversion is not None:
        ok, frame = capture.retrieve()
        return cv2.cvtColor(frame, conversion) if ok else None
    with quiet_opencv():
        ok, frame = capture.retrieve() if into is None else capture.retrieve(into)
    return frame if ok else None
