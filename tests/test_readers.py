"""Readers: decord equals opencv's sequential decode, the luma backend, frame folders, precomputed,
bad files."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from datasets.readers import GRAY_LEVELS, DataError, FrameFolderClip, PrecomputedClip, to_gray
from datasets.video import LIMITED_LEVELS, LumaLevels, VideoClip, calibrate_luma, levels_table


def _opencv_sequential(path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames)


def test_decord_by_index_equals_opencv_sequential_decode(tmp_path, make):
    path = tmp_path / "S001C001P001R001A001.mp4"
    make.write_video(path, make.moving_frames(0, num_frames=24, height=32, width=64))
    reference = _opencv_sequential(path)  # [N, H, W, 3]
    clip = VideoClip(path, "S001C001P001R001A001", backend="decord")
    assert clip.num_frames == len(reference) == 24
    indices = np.array([17, 3, 3, 0, 23, 9, 12])  # out of order, repeated, seeking back
    fetched = clip.read(indices, gray=False)
    # Both run FFmpeg's decoder and colour conversion: measured bit-exact (also at 320x240),
    # so any difference is a seek error, which is what this test guards against.
    assert np.array_equal(fetched, reference[indices])
    fallback = VideoClip(path, "S001C001P001R001A001", backend="opencv").read(indices, gray=False)
    assert np.array_equal(fallback, reference[indices])


def test_auto_backend_falls_back_to_opencv_where_decord_fails(tmp_path, make):
    path = tmp_path / "w48.mp4"
    make.write_video(path, make.moving_frames(0, num_frames=12, height=32, width=48))
    with pytest.raises(DataError, match="decord cannot decode"):
        VideoClip(path, "w48", backend="decord").read(np.array([3]), gray=False)
    frames = VideoClip(path, "w48").read(np.array([3, 7]), gray=False)
    assert np.array_equal(frames, _opencv_sequential(path)[[3, 7]])


def test_video_gray_matches_gray_of_rgb(tmp_path, make):
    path = tmp_path / "v.mp4"
    make.write_video(path, make.moving_frames(1))
    clip = VideoClip(path, "v")
    rgb = clip.read(np.arange(4), gray=False)
    gray = clip.read(np.arange(4), gray=True)
    assert gray.shape == rgb.shape[:3]
    assert np.array_equal(gray, np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb]))
    opencv = VideoClip(path, "v", backend="opencv")  # gray straight from BGR: the same bits
    assert np.array_equal(opencv.read(np.array([3, 0, 3]), gray=True),
                          to_gray(opencv.read(np.array([3, 0, 3]), gray=False)))


def test_missing_and_corrupt_video_name_sample_and_file(tmp_path):
    with pytest.raises(DataError, match="S001C001P001R001A001.*missing.mp4"):
        VideoClip(tmp_path / "missing.mp4", "S001C001P001R001A001")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError, match="S001C001P001R001A002.*bad.mp4"):
        VideoClip(bad, "S001C001P001R001A002").read(np.arange(2), gray=True)


def test_frame_folder_reads_sorted_frames(tmp_path, make):
    frames = make.moving_frames(2)
    make.write_frame_folder(tmp_path / "clip", frames)
    clip = FrameFolderClip(tmp_path / "clip", "clip")
    assert clip.num_frames == len(frames)
    rgb = clip.read(np.array([5, 1, 5]), gray=False)
    assert np.abs(rgb.astype(int) - frames[[5, 1, 5]].astype(int)).mean() < 3  # JPEG at q95
    gray = clip.read(np.array([5, 1]), gray=True)
    assert gray.shape == (2,) + frames.shape[1:3]


def test_corrupt_frame_names_sample_and_file(tmp_path, make):
    make.write_frame_folder(tmp_path / "clip", make.moving_frames(3))
    (tmp_path / "clip" / "00004.jpg").write_bytes(b"garbage")
    clip = FrameFolderClip(tmp_path / "clip", "S001C001P001R001A007")
    with pytest.raises(DataError, match="S001C001P001R001A007.*00004.jpg"):
        clip.read(np.array([3, 4]), gray=True)
    with pytest.raises(DataError, match="empty_sample.*not found"):
        FrameFolderClip(tmp_path / "nothing", "empty_sample")


@pytest.mark.parametrize("base", [0, 1])
def test_precomputed_planes_zero_or_one_based(tmp_path, base):
    values = {}
    for kind, offset in (("fd", 0), ("avg", 100)):
        folder = tmp_path / kind / "S001C001P001R001A001"
        folder.mkdir(parents=True)
        for t in range(6):
            value = offset + 10 * t
            values[kind, t] = value
            cv2.imwrite(str(folder / f"{base + t}.jpg"), np.full((8, 8, 3), value, np.uint8))
    clip = PrecomputedClip(tmp_path / "fd" / "S001C001P001R001A001",
                           tmp_path / "avg" / "S001C001P001R001A001", "S001C001P001R001A001")
    assert clip.num_frames == 6
    planes = clip.read_planes(np.array([0, 3, 5]))  # [T, 3, H, W]
    assert planes.shape == (3, 3, 8, 8)
    expected = [[values["fd", max(t - 1, 0)], values["fd", t], values["avg", t]] for t in (0, 3, 5)]
    assert np.abs(planes[:, :, 4, 4].astype(int) - np.array(expected)).max() <= 1


def test_precomputed_reads_gray_and_colour_jpegs_as_opencv_gray_and_names_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    name = "S001C001P001R001A001"
    for kind in ("fd", "avg"):
        folder = tmp_path / kind / name
        folder.mkdir(parents=True)
        for t in range(5):
            shape = (12, 10, 3) if t % 2 else (12, 10)  # colour and gray JPEGs mixed
            cv2.imwrite(str(folder / f"{t}.jpg"), rng.integers(0, 256, shape, dtype=np.uint8))
    clip = PrecomputedClip(tmp_path / "fd" / name, tmp_path / "avg" / name, name)
    planes = clip.read_planes(np.array([0, 2, 4, 3]))

    def gray(kind, t):
        return cv2.imread(str(tmp_path / kind / name / f"{t}.jpg"), cv2.IMREAD_GRAYSCALE)

    for i, t in enumerate((0, 2, 4, 3)):
        assert np.array_equal(planes[i, 0], gray("fd", max(t - 1, 0)))
        assert np.array_equal(planes[i, 1], gray("fd", t))
        assert np.array_equal(planes[i, 2], gray("avg", t))
    cv2.imwrite(str(tmp_path / "avg" / name / "4.jpg"), np.zeros((6, 10), np.uint8))
    with pytest.raises(DataError, match=f"{name}.*4.jpg"):
        clip.read_planes(np.array([1, 4]))
    (tmp_path / "avg" / name / "x.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="integer frame index"):
        PrecomputedClip(tmp_path / "fd" / name, tmp_path / "avg" / name, name)
    with pytest.raises(DataError, match="not found"):
        PrecomputedClip(tmp_path / "fd" / "missing", tmp_path / "avg" / name, name)


def _write(path, frames, fourcc: str) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, frames.shape[2:0:-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


@pytest.mark.parametrize("fourcc, ext, levels", [("mp4v", ".mp4", LIMITED_LEVELS), ("MJPG", ".avi", GRAY_LEVELS)])
def test_luma_backend_reads_the_gray_of_limited_and_full_range_video(tmp_path, make, fourcc, ext, levels):
    path = tmp_path / f"v{ext}"
    source = make.moving_frames(2, num_frames=12, height=32, width=48)
    _write(path, source, fourcc)
    assert calibrate_luma(path) == levels  # MPEG-4 stores limited-range luma, MJPEG full range
    indices = np.array([7, 0, 3, 3, 11])
    colour = VideoClip(path, "v", backend="opencv").read(indices, gray=True).astype(int)
    gray = VideoClip(path, "v", backend="luma").read(indices, gray=True)
    assert gray.shape == colour.shape and np.array_equal(gray[2], gray[3])
    diff = np.abs(gray - colour)
    assert np.percentile(diff, 99) <= 3 and diff.mean() < 2  # more only at the square's chroma edges
    truth = to_gray(source[indices]).astype(int)  # the gray the video encoded
    assert np.abs(gray - truth).mean() < np.abs(colour - truth).mean()  # luma is the closer one
    planes, found = VideoClip(path, "v", backend="luma").read_luma(indices)
    assert found == levels and np.array_equal(levels_table(levels)[planes], gray)


def test_luma_backend_reads_other_pixel_formats_through_the_colour_path(tmp_path, make):
    path = tmp_path / "rgb.avi"
    _write(path, make.moving_frames(3, num_frames=6, height=32, width=48), "FFV1")  # BGRA frames
    assert calibrate_luma(path) is None
    expected = VideoClip(path, "v", backend="opencv").read(np.arange(6), gray=True)
    frames, levels = VideoClip(path, "v", backend="luma").read_luma(np.arange(6))
    assert levels == GRAY_LEVELS and np.array_equal(frames, expected)
    assert np.array_equal(VideoClip(path, "v", backend="luma").read(np.arange(6), gray=True), expected)


def test_luma_levels_are_calibrated_once_per_folder_and_codec(tmp_path, make, monkeypatch):
    from datasets import video

    calls = []
    monkeypatch.setattr(video, "calibrate_luma", lambda path: calls.append(path) or LIMITED_LEVELS)
    for i in range(3):
        make.write_video(tmp_path / "a" / f"{i}.mp4", make.moving_frames(i))
    make.write_video(tmp_path / "b" / "0.mp4", make.moving_frames(0))
    shared = LumaLevels()
    for path in sorted(tmp_path.glob("*/*.mp4")):
        VideoClip(path, path.stem, backend="luma", luma_levels=shared).read_luma(np.arange(2))
    assert [p.parent.name for p in calls] == ["a", "b"]


def test_read_luma_of_gray_readers_has_identity_levels(tmp_path, make):
    path = tmp_path / "v.mp4"
    make.write_video(path, make.moving_frames(1))
    frames, levels = VideoClip(path, "v", backend="opencv").read_luma(np.array([2, 1]))
    assert levels == GRAY_LEVELS
    assert np.array_equal(frames, VideoClip(path, "v", backend="opencv").read(np.array([2, 1]), gray=True))


class _ResizingCapture:
    """A capture whose third frame has another size (as a stream that changes resolution)."""

    def __init__(self) -> None:
        self.shapes = [(4, 6), (4, 6), (5, 6)]

    def grab(self) -> bool:
        return bool(self.shapes)

    def retrieve(self, image=None):
        frame = np.full(self.shapes.pop(0), 7, np.uint8)
        if image is not None and image.shape == frame.shape:
            image[...] = frame
            return True, image
        return True, frame

    def release(self) -> None:
        pass


def test_raw_frames_that_change_size_are_a_data_error(tmp_path, make):
    path = tmp_path / "v.mp4"
    make.write_video(path, make.moving_frames(1))
    clip = VideoClip(path, "v", backend="opencv")
    with pytest.raises(DataError, match="change size"):
        clip._read_opencv(np.arange(3), None, _ResizingCapture())
    assert np.array_equal(clip._read_opencv(np.arange(2), None, _ResizingCapture()),
                          np.full((2, 4, 6), 7, np.uint8))
