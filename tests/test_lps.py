"""LPS film simulation: PSF invariants, monotone degradation with level, determinism, dtypes."""
import pytest
import torch

from datasets.lps import LPSFilm, lps_psf, simulate_lps

LEVELS = (1, 2, 3)


def _spread(psf: torch.Tensor) -> float:
    """Second moment (mean squared radius) of a kernel, in pixels^2."""
    coords = torch.arange(psf.shape[0], dtype=torch.float64) - (psf.shape[0] - 1) / 2
    r2 = coords[:, None] ** 2 + coords[None, :] ** 2
    return float((psf.double() * r2).sum())


def _scene(size: int = 64) -> torch.Tensor:
    """A colourful test card [2, 3, H, W]: checkerboard blocks plus a smooth gradient."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    checker = ((yy // 8 + xx // 8) % 2).float()
    ramp = xx.float() / (size - 1)
    first = torch.stack([checker, 1 - checker, ramp])
    second = torch.stack([ramp, checker, checker * ramp])
    return torch.stack([first, second]) * 0.9 + 0.05


def _gradient_energy(x: torch.Tensor) -> float:
    return float((x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., 1:] - x[..., :-1]).pow(2).mean())


def _michelson(x: torch.Tensor) -> float:
    luma = (x * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(-3).flatten()
    lo, hi = torch.quantile(luma, 0.01), torch.quantile(luma, 0.99)
    return float((hi - lo) / (hi + lo))


@pytest.mark.parametrize("level", (0, *LEVELS))
@pytest.mark.parametrize("size", (15, 31))
def test_psf_normalised_and_symmetric(level, size):
    psf = lps_psf(level, size, image_size=64)
    assert psf.shape == (size, size) and psf.dtype == torch.float32
    assert torch.isclose(psf.sum(), torch.tensor(1.0), atol=1e-6)
    assert (psf >= 0).all()
    torch.testing.assert_close(psf, psf.T)
    torch.testing.assert_close(psf, psf.flip(0))
    torch.testing.assert_close(psf, psf.flip(1))
    assert psf.argmax() == (size * size) // 2  # peak at the centre


def test_psf_spread_grows_with_level_and_scales_with_image():
    spreads = [_spread(lps_psf(level, 61, image_size=64)) for level in (0, *LEVELS)]
    assert spreads == sorted(spreads) and len(set(spreads)) == len(spreads)
    small = _spread(lps_psf(2, 101, image_size=32)) / 32 ** 2
    large = _spread(lps_psf(2, 701, image_size=224)) / 224 ** 2
    assert small == pytest.approx(large, rel=0.02)  # same blur relative to the frame


def test_film_mixture_is_n_fold_convolution():
    """The closed-form mixture of two layers equals one layer's PSF convolved with itself."""
    film = LPSFilm(core_sigma=0.02, halo_sigma=0.05)  # a core wide enough to be sampled well
    one = lps_psf(1, 61, image_size=64, film=film).double()
    two = torch.nn.functional.conv2d(one[None, None], one.flip(0, 1)[None, None], padding=30)[0, 0]
    two = two[15:46, 15:46]
    expected = lps_psf(2, 31, image_size=64, film=film).double()
    torch.testing.assert_close(two / two.sum(), expected, atol=1e-4, rtol=0)
    assert sum(w for w, _ in LPSFilm().psf_components(3, 64)) == pytest.approx(1.0)


def test_degradation_is_monotone_in_level():
    frames = _scene()
    degraded = [frames] + [simulate_lps(frames, lv, torch.Generator().manual_seed(0)) for lv in LEVELS]
    energy = [_gradient_energy(x) for x in degraded]
    contrast = [_michelson(x[0]) for x in degraded]
    assert all(a > b for a, b in zip(energy, energy[1:])), energy
    assert all(a > b for a, b in zip(contrast, contrast[1:])), contrast
    assert energy[1] < 0.5 * energy[0]


def test_colour_loss_with_level():
    frames = _scene()
    degraded = [frames] + [simulate_lps(frames, lv, torch.Generator().manual_seed(0)) for lv in LEVELS]
    chroma = [float((x - x.mean(-3, keepdim=True)).abs().mean()) for x in degraded]
    assert all(a > b for a, b in zip(chroma, chroma[1:])), chroma


def test_level_zero_is_identity_and_bad_level_raises():
    frames = _scene()
    assert simulate_lps(frames, 0) is frames
    with pytest.raises(ValueError):
        simulate_lps(frames, 4)
    with pytest.raises(ValueError):
        lps_psf(-1, 5, 32)


def test_seeded_generator_is_deterministic():
    frames = _scene()
    a = simulate_lps(frames, 2, torch.Generator().manual_seed(7))
    b = simulate_lps(frames, 2, torch.Generator().manual_seed(7))
    c = simulate_lps(frames, 2, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_uint8_in_uint8_out():
    frames = (_scene() * 255).round().to(torch.uint8)
    out = simulate_lps(frames, 3, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    as_float = simulate_lps(frames.float() / 255, 3, torch.Generator().manual_seed(0))
    assert (out.float() - as_float * 255).abs().max() <= 0.5 + 1e-3


def test_batched_equals_per_frame_and_leading_dims():
    frames = torch.cat([_scene(32), _scene(32).flip(-1)])  # [4, 3, 32, 32]
    batched = simulate_lps(frames, 2, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    single = torch.cat([simulate_lps(frames[i:i + 1], 2, gen) for i in range(len(frames))])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)
    nested = simulate_lps(frames.view(2, 2, 3, 32, 32), 2, torch.Generator().manual_seed(3))
    torch.testing.assert_close(nested.view(4, 3, 32, 32), batched, atol=1e-5, rtol=0)


def test_non_square_and_float_range():
    frames = torch.rand(2, 3, 24, 40)
    out = simulate_lps(frames, 3, torch.Generator().manual_seed(0))
    assert out.shape == frames.shape and out.min() >= 0 and out.max() <= 1


def _write_clip(tmp_path):
    """A video and a frame folder of 6 frames of a moving test card under tmp_path/in."""
    import cv2
    import numpy as np

    root = tmp_path / "in"
    (root / "cam1" / "clipA").mkdir(parents=True)
    card = (_scene(32)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    frames = [np.ascontiguousarray(np.roll(card, i, axis=1)) for i in range(6)]
    writer = cv2.VideoWriter(str(root / "cam1" / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (32, 32))
    for i, frame in enumerate(frames):
        writer.write(frame)
        cv2.imwrite(str(root / "cam1" / "clipA" / f"{i:05d}.jpg"), frame)
    writer.release()
    return root


def test_lps_tool_mirrors_and_degrades(tmp_path, capsys):
    import cv2
    import numpy as np

    from tools import lps as tool

    root = _write_clip(tmp_path)
    assert tool.main(["--input", str(root), "--output", str(tmp_path / "out"), "--level", "2"]) == 0
    out = tmp_path / "out" / "cam1"
    assert sorted(p.name for p in (out / "clipA").iterdir()) == [f"{i:05d}.jpg" for i in range(6)]
    raw = cv2.imread(str(root / "cam1" / "clipA" / "00000.jpg")).astype(np.float32)
    lps = cv2.imread(str(out / "clipA" / "00000.jpg")).astype(np.float32)
    assert np.square(np.diff(lps, axis=1)).mean() < 0.5 * np.square(np.diff(raw, axis=1)).mean()
    capture, count = cv2.VideoCapture(str(out / "v.mp4")), 0
    while capture.read()[0]:
        count += 1
    assert count == 6
    first = (out / "clipA" / "00003.jpg").read_bytes()
    assert tool.main(["--input", str(root), "--output", str(tmp_path / "again"), "--level", "2"]) == 0
    assert (tmp_path / "again" / "cam1" / "clipA" / "00003.jpg").read_bytes() == first


def test_lps_tool_missing_input_is_one_line(tmp_path, capsys):
    from tools import lps as tool

    code = tool.main(["--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o"), "--level", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "nope" in err and "\n" not in err
