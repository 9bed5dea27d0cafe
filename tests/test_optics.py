"""Lensless and coded-aperture cameras: their PSFs, energy conservation of the measurement, and a
known-PSF ADMM-TV reconstruction that measurably restores a test image; the wrapper and the tool."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.optics import (SUPPORT_BY_LEVEL, CodedAperture, admm_tv, circular_convolve, device_psf,
                             simulate_device)
from datasets.wrappers import FilmClip
from tools import lps as lps_tool

SIDE = 32


def _scene() -> torch.Tensor:
    """A test image [1, 3, S, S] in [0, 1]: a disc and a bar on a grey background."""
    y, x = torch.meshgrid(torch.arange(SIDE), torch.arange(SIDE), indexing="ij")
    image = 0.1 + 0.8 * ((x - 10) ** 2 + (y - 12) ** 2 < 40).double() + 0.5 * ((x > 18) & (x < 28) & (y > 16)).double()
    return image.clamp(0, 1)[None, None].expand(1, 3, SIDE, SIDE).contiguous()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a.double() - b.double()) ** 2).mean()))


@pytest.mark.parametrize("device", ["lensless", "coded_aperture"])
@pytest.mark.parametrize("level", [1, 2, 3])
def test_psf_sums_to_one_and_the_measurement_conserves_energy(device, level):
    psf = device_psf(device, level, SIDE, SIDE)
    assert psf.shape == (SIDE, SIDE) and psf.min() >= 0 and float(psf.sum()) == pytest.approx(1.0)
    scene = _scene()
    measured = circular_convolve(scene, psf)
    torch.testing.assert_close(measured.sum(dim=(-2, -1)), scene.sum(dim=(-2, -1)))
    # every scene point lights many sensor pixels: no pixel of the PSF holds most of the light
    assert float(psf.max()) < 0.2


def test_psf_extent_grows_with_level():
    spread = []
    for level in (1, 2, 3):
        psf = torch.fft.fftshift(device_psf("lensless", level, SIDE, SIDE))
        y, x = torch.nonzero(psf > 0, as_tuple=True)
        spread.append(int((x.max() - x.min()) + (y.max() - y.min())))
    assert spread[0] < spread[1] < spread[2]


def test_coded_aperture_mask_is_half_open_and_its_psf_is_the_mask():
    camera = CodedAperture()
    mask = camera.mask(3)
    assert mask.shape == (8, 8) and mask.sum() == 32 and set(np.unique(mask)) == {0.0, 1.0}
    side = round(SUPPORT_BY_LEVEL[3] * SIDE)  # 16 px: 2 x 2 pixels per cell
    psf = torch.roll(device_psf("coded_aperture", 3, SIDE, SIDE), (side // 2, side // 2), (0, 1))[:side, :side]
    expected = np.kron(mask, np.ones((2, 2)))
    torch.testing.assert_close(psf, torch.from_numpy(expected / expected.sum()))
    assert camera.gain() == 2.0


@pytest.mark.parametrize("device", ["lensless", "coded_aperture"])
def test_known_psf_admm_tv_measurably_restores_the_image(device):
    scene = _scene().float()
    measured = simulate_device(scene, device, 2, torch.Generator().manual_seed(0))
    restored = admm_tv(measured, device_psf(device, 2, SIDE, SIDE))
    before, after = _psnr(measured, scene), _psnr(restored, scene)
    assert before < 20 and after > before + 10, (before, after)


def test_admm_without_blur_or_noise_returns_the_image_and_tv_smooths_noise():
    scene = _scene()
    delta = torch.zeros(SIDE, SIDE, dtype=torch.float64)
    delta[0, 0] = 1
    torch.testing.assert_close(admm_tv(scene, delta, tau=0.0), scene, atol=1e-6, rtol=0)
    noisy = scene + 0.05 * torch.randn(scene.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert _psnr(admm_tv(noisy.clamp(0, 1), delta, tau=0.02), scene) > _psnr(noisy.clamp(0, 1), scene) + 3


def test_device_simulation_is_seeded_uint8_and_reaches_the_wrapper():
    frames = (_scene() * 255).round().to(torch.uint8).expand(2, 3, SIDE, SIDE)
    first = simulate_device(frames, "lensless", 2, torch.Generator().manual_seed(3))
    again = simulate_device(frames, "lensless", 2, torch.Generator().manual_seed(3))
    assert first.dtype == torch.uint8 and torch.equal(first, again) and not torch.equal(first, frames)
    assert torch.equal(simulate_device(frames, "coded_aperture", 0), frames)

    class Clip:
        num_frames = 2

        def read(self, indices, gray):
            return frames.permute(0, 2, 3, 1).numpy()[indices]

    wrapped = FilmClip(Clip(), 2, torch.Generator().manual_seed(3), device="lensless")
    assert np.array_equal(wrapped.read(np.arange(2), gray=False), first.permute(0, 2, 3, 1).numpy())


def test_lps_tool_writes_a_lensless_copy(tmp_path, capsys):
    import cv2

    folder = tmp_path / "in" / "clip"
    folder.mkdir(parents=True)
    frame = (_scene()[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    cv2.imwrite(str(folder / "00000.jpg"), frame)
    assert lps_tool.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--level", "2",
                          "--device", "lensless"]) == 0
    out = cv2.imread(str(tmp_path / "out" / "clip" / "00000.jpg"))
    assert out.shape == frame.shape and np.abs(out.astype(int) - frame.astype(int)).mean() > 5
    assert "lensless" in capsys.readouterr().out


def test_restore_frames_admm_tv_inverts_only_the_other_cameras():
    from datasets.restore import restore_frames

    scene = _scene().float()
    measured = simulate_device(scene, "coded_aperture", 2, torch.Generator().manual_seed(0))
    restored = restore_frames(measured, "admm_tv", 2, camera="coded_aperture")
    torch.testing.assert_close(restored, admm_tv(measured, device_psf("coded_aperture", 2, SIDE, SIDE)))
    with pytest.raises(ValueError, match="admm_tv"):
        restore_frames(measured, "wiener", 2, camera="lensless")
    with pytest.raises(ValueError, match="wiener"):
        restore_frames(measured, "admm_tv", 2, camera="film")
