"""Selective Privacy Preservation: the mechanics with random DINO weights (no pretrained file
exists offline): template matching selects the template's region, the noise follows the flow,
unmasked pixels stay, the draws are the sample's, and the config, tools and attacks reach it."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datasets.loader import build_datasets
from datasets.motion_noise import backward_flow, continuous_noise, first_frame_noise, noise_images
from datasets.spp import SelectiveObfuscation, SPPClip, blend_frames
from models.dino import DinoFeatures, load_dino_weights, load_templates, region_template
from privacy.views import attacker_dataset
from tools import make_spp_template, privacy_attack, show_spp, tradeoff
from utils.config import load_config
from utils.errors import UserError

ARCH = "vit_small_patch16_224.dino"  # the smallest DINO grid: fast on the CPU
PATCH = 16
SPP_OPTS = ("SPP.ARCH", ARCH, "SPP.STRIDE", str(PATCH), "SPP.INPUT_SIZE", "32")
# between the saliency of the template's texture (about 1) and of other textures (about 0.3 with
# random weights): the bilinear map crosses it near the region's edge
THRESHOLD = 0.65
SIDE = 128  # frames and ViT input: an 8 x 8 grid


def _features(input_size: int = SIDE, seed: int = 0, **kwargs) -> DinoFeatures:
    torch.manual_seed(seed)  # random weights, the same in every test
    options = dict(stride=PATCH, layer=11, facet="key", input_size=input_size, random_init=True) | kwargs
    return DinoFeatures(ARCH, **options)


@pytest.fixture(scope="module")
def features() -> DinoFeatures:
    return _features()


@pytest.fixture(scope="module")
def weights(tmp_path_factory, features) -> Path:
    """The random weights of :func:`_features` saved as a plain state dict (as DINO's release)."""
    path = tmp_path_factory.mktemp("dino") / "dino_random.pth"
    torch.save(features.vit.state_dict(), path)
    return path


def _loaded(weights: Path, input_size: int) -> DinoFeatures:
    """The extractor with the weights of ``weights`` (no random initialisation: fast)."""
    features = DinoFeatures(ARCH, stride=PATCH, layer=11, facet="key", input_size=input_size)
    load_dino_weights(features, weights)
    return features


def _patterned_frame(height: int, width: int, box: tuple[int, int, int, int], seed: int) -> np.ndarray:
    """uint8 RGB: every patch its own random texture, except the patches of ``box`` (patch-aligned),
    which all repeat one distinctive texture (the same in every frame)."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(60, 200, (height, width, 3)).astype(np.uint8)
    tile = np.random.default_rng(99).integers(0, 256, (PATCH, PATCH, 3)).astype(np.uint8)
    x0, y0, x1, y1 = box
    frame[y0:y1, x0:x1] = np.tile(tile, ((y1 - y0) // PATCH, (x1 - x0) // PATCH, 1))
    return frame


def _box_mask(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    inside = np.zeros(shape, bool)
    inside[box[1]:box[3], box[0]:box[2]] = True
    return inside


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_key_descriptors_are_the_releases_layout(features):
    """The key of block 11 laid out as the release's extractor does ([B, h, t, d] -> t x (d h))."""
    frame = torch.randint(0, 256, (1, 3, SIDE, SIDE), dtype=torch.uint8)
    seen = []
    block = features.vit.blocks[11]
    hook = block.attn.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    x = (frame.float() / 255 - features.mean) / features.std
    with torch.no_grad():
        features.vit.forward_features(x)
        hook.remove()
        b, n, c = seen[0].shape
        qkv = block.attn.qkv(seen[0]).reshape(b, n, 3, block.attn.num_heads, c // block.attn.num_heads)
        keys = qkv.permute(2, 0, 3, 1, 4)[1]  # [B, h, t, d], the release's hook
        reference = keys.permute(0, 2, 3, 1).flatten(-2)[:, 1:].reshape(1, SIDE // PATCH, SIDE // PATCH, c)
    assert torch.allclose(features(frame), reference, atol=1e-5)


def test_a_stride_below_the_patch_gives_the_denser_grid():
    torch.manual_seed(0)
    dense = DinoFeatures("vit_small_patch8_224.dino", stride=4, layer=11, facet="key", input_size=32, random_init=True)
    assert dense.grid_shape(24, 32) == (7, 9)  # input 32 x 40 (multiples of 8): 1 + (side - 8) / 4
    assert dense(torch.zeros(2, 3, 24, 32, dtype=torch.uint8)).shape == (2, 7, 9, 384)
    with pytest.raises(UserError, match="SPP.STRIDE"):
        DinoFeatures(ARCH, stride=5, layer=11, facet="key", input_size=224)
    with pytest.raises(RuntimeError, match="load_dino_weights"):
        DinoFeatures(ARCH, stride=PATCH, layer=11, facet="key", input_size=32)(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_a_template_from_a_region_selects_that_region(features):
    """Random weights give identical content near-identical descriptors: a template taken from a
    region of one frame marks the same texture in another frame at another place, and little else."""
    box_a, box_b = (32, 16, 80, 64), (112, 64, 160, 112)  # x0, y0, x1, y1, patch-aligned
    frame_a = _patterned_frame(SIDE, SIDE, box_a, seed=1)
    frame_b = _patterned_frame(SIDE, SIDE + 64, box_b, seed=2)  # another size, another place
    template = region_template(features(torch.from_numpy(frame_a).permute(2, 0, 1)[None])[0], box_a, (SIDE, SIDE))
    spp = SelectiveObfuscation(features, template[None], threshold=THRESHOLD)
    for frame, box in ((frame_a, box_a), (frame_b, box_b)):
        saliency = spp.saliency(frame[None])[0]
        mask = spp.mask(saliency[None])[0] > 0
        inside = _box_mask(frame.shape[:2], box)
        assert _iou(mask, inside) > 0.85
        assert saliency[inside].mean() > 0.8 > 0.5 > saliency[~inside].mean()


def _translating_square(frames: int = 5, velocity: int = 2, side: int = 24) -> tuple[np.ndarray, list]:
    """uint8 RGB frames [N, 72, 72, 3]: a textured square moving ``velocity`` px right per frame
    over a static textured background; and each square's (top, left)."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.uniform(0, 255, (72, 72, 3)).astype(np.float32), (0, 0), 1.5)
    square = cv2.GaussianBlur(rng.uniform(0, 255, (side, side, 3)).astype(np.float32), (0, 0), 1.0)
    out, corners = [], []
    for t in range(frames):
        frame = background.copy()
        top, left = 24, 10 + velocity * t
        frame[top:top + side, left:left + side] = square
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
        corners.append((top, left))
    return np.stack(out), corners


def test_farneback_flow_points_back_along_the_motion():
    frames, _ = _translating_square()
    flow = backward_flow(frames[2], frames[1])
    assert flow[30:42, 24:38, 0].mean() == pytest.approx(-2.0, abs=0.3)  # the square came from 2 px left
    assert np.abs(flow[:12]).max() < 0.5  # the static background (far from the square) does not move


def test_the_noise_moves_with_the_flow():
    frames, corners = _translating_square()
    side, margin = 24, 5  # the flow is exact away from the square's edges
    init = noise_images(1, 72, 72, True, torch.Generator().manual_seed(0))[0]

    def interior(image, top, left):
        return image[top + margin:top + side - margin, left + margin:left + side - margin]

    carried = continuous_noise(frames, init)
    shown = first_frame_noise(frames, [None, *frames[:-1]], init)
    for t in range(1, len(frames)):
        (top, left), (top0, left0) = corners[t], corners[0]
        # continuous: the noise inside the square travels with it
        assert np.array_equal(interior(carried[t], top, left), interior(carried[0], top0, left0))
        # first frame (the release): the initial noise displaced by the last step's motion
        assert np.array_equal(interior(shown[t], top, left), interior(init, top, left - 2))
        assert not np.array_equal(interior(shown[t], top, left), interior(init, top, left))
        for noise in (carried[t], shown[t]):  # the static background keeps the initial noise
            assert np.array_equal(noise[:12], init[:12])
    assert np.array_equal(shown[0], init)  # no predecessor: the initial noise


def test_unmasked_pixels_are_unchanged_and_masked_pixels_are_noise(features):
    box = (32, 16, 80, 64)
    frames = np.stack([_patterned_frame(SIDE, SIDE, box, seed=s) for s in (1, 2)])
    template = region_template(features(torch.from_numpy(frames[0]).permute(2, 0, 1)[None])[0], box, (SIDE, SIDE))
    noise = np.random.default_rng(3).integers(0, 256, frames.shape).astype(np.uint8)
    hard = SelectiveObfuscation(features, template[None], threshold=THRESHOLD)(frames, noise)
    hidden = hard.mask > 0
    assert 0 < hidden.mean() < 0.5
    assert np.array_equal(hard.frames[~hidden], frames[~hidden])
    assert np.array_equal(hard.frames[hidden], noise[hidden])
    soft = SelectiveObfuscation(features, template[None], threshold=THRESHOLD, blend="soft")(frames, noise)
    assert np.array_equal(soft.mask, soft.saliency)  # the release's lerp by the saliency
    weight = soft.mask[..., None]
    assert np.array_equal(soft.frames, np.rint(frames * (1 - weight) + noise * weight).astype(np.uint8))
    half = blend_frames(np.full((1, 1, 1, 3), 100, np.uint8), np.full((1, 1, 1, 3), 200, np.uint8),
                        np.full((1, 1, 1), 0.25, np.float32))
    assert half.item(0) == 125


class RGBClip:
    """RGB frames in memory, counting the frames read."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames, self.num_frames, self.reads = frames, len(frames), []

    def read(self, indices: np.ndarray, gray: bool) -> np.ndarray:
        self.reads.append(list(indices))
        return self.frames[indices]


def test_the_clip_is_deterministic_given_the_seed_and_reads_what_the_noise_needs(weights):
    frames, _ = _translating_square(frames=8)
    spp = SelectiveObfuscation(_loaded(weights, 32), torch.randn(1, 384), threshold=0.0)  # hides everything
    clip = RGBClip(frames)
    first = SPPClip(clip, spp, seed=7).read(np.array([2, 5]), gray=False)
    assert clip.reads[-1] == [1, 2, 4, 5]  # each frame and its predecessor, once
    assert np.array_equal(first, SPPClip(RGBClip(frames), spp, seed=7).read(np.array([2, 5]), gray=False))
    # a frame does not depend on the other frames read with it, nor on their order
    alone = SPPClip(RGBClip(frames), spp, seed=7).read(np.array([5, 2, 5]), gray=False)
    assert np.array_equal(alone[[1, 0]], first) and np.array_equal(alone[2], first[1])
    assert not np.array_equal(first, SPPClip(RGBClip(frames), spp, seed=8).read(np.array([2, 5]), gray=False))
    spp.noise = "continuous"
    span = RGBClip(frames)
    SPPClip(span, spp, seed=7).read(np.array([2, 5]), gray=True)
    assert span.reads[-1] == [2, 3, 4, 5]


def _template_file(tmp_path: Path, weights: Path) -> Path:
    image = tmp_path / "template.png"
    cv2.imwrite(str(image), _patterned_frame(64, 64, (16, 16, 48, 48), seed=5))
    out = tmp_path / "templates.pt"
    rc = make_spp_template.main(["--image", str(image), "--box", "16", "16", "48", "48", "--weights", str(weights),
                                 "--out", str(out), "--opts", *SPP_OPTS])
    assert rc == 0
    return out


def test_the_template_tool_round_trips_a_saved_tensor(tmp_path, weights, capsys):
    image = _patterned_frame(64, 96, (32, 16, 64, 48), seed=5)
    path = tmp_path / "region.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    out = tmp_path / "t.pt"
    argv = ["--image", str(path), "--box", "32", "16", "64", "48", "--weights", str(weights), "--out", str(out),
            "--opts", *SPP_OPTS, "SPP.INPUT_SIZE", "64"]
    assert make_spp_template.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    features = _loaded(weights, 64)
    expected = region_template(features(torch.from_numpy(image).permute(2, 0, 1)[None])[0], (32, 16, 64, 48), (64, 96))
    saved = load_templates(out, features.dim)
    assert saved.shape == (1, 384) and torch.allclose(saved[0], expected, atol=1e-6)
    assert report["templates"] == 1 and report["cells"] == 4 and report["saliency_in_box"] > report["saliency_outside"]
    assert make_spp_template.main(argv + ["--append"]) == 0
    assert torch.equal(load_templates(out), torch.cat([saved, saved]))
    missing = ["--image", str(path), "--box", "0", "0", "32", "32", "--out", str(tmp_path / "x.pt")]
    assert make_spp_template.main(missing) == 2
    assert "SPP.WEIGHTS" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()


def test_weights_files_of_the_dino_release_load_and_others_are_refused(tmp_path, weights):
    state = torch.load(weights, weights_only=True)
    checkpoint = {"teacher": {f"module.backbone.{k}": v for k, v in state.items()}, "epoch": 100}
    checkpoint["teacher"]["module.head.mlp.0.weight"] = torch.zeros(2, 2)  # DINO's projection head
    path = tmp_path / "checkpoint.pth"
    torch.save(checkpoint, path)
    features = DinoFeatures(ARCH, stride=PATCH, layer=11, facet="key", input_size=SIDE)
    load_dino_weights(features, path)
    assert all(torch.equal(v, state[k]) for k, v in features.vit.state_dict().items())
    with pytest.raises(UserError, match="do not fit"):
        load_dino_weights(DinoFeatures("vit_small_patch8_224.dino", stride=8, layer=11, facet="key",
                                       input_size=SIDE), weights)
    with pytest.raises(UserError, match="not found"):
        load_dino_weights(features, tmp_path / "nope.pth")


def test_the_config_builds_the_wrapper_for_training_and_the_attacks(tmp_path, frames_root, make, weights):
    templates = _template_file(tmp_path, weights)
    opts = ["SPP.ENABLED", "True", "SPP.WEIGHTS", str(weights), "SPP.TEMPLATES", str(templates),
            "SPP.THRESHOLD", "0.0", *SPP_OPTS, "MODEL.ENCODER", "rgb"]
    splits = build_datasets(make.tiny_config(frames_root, *opts))
    plain = build_datasets(make.tiny_config(frames_root, "MODEL.ENCODER", "rgb"))
    assert isinstance(splits.val.spp, SelectiveObfuscation) and plain.val.spp is None
    item = splits.val[0]["frames"]
    assert torch.equal(item, splits.val[0]["frames"])  # deterministic test items
    assert (item != plain.val[0]["frames"]).float().mean() > 0.5  # threshold 0 hides every pixel
    assert not torch.equal(splits.train[(0, 0)]["frames"], splits.train[(0, 1)]["frames"])  # new noise per epoch
    assert attacker_dataset(splits.val, splits.val.names[:2]).spp is splits.val.spp
    with pytest.raises(UserError, match="SPP.WEIGHTS"):
        build_datasets(make.tiny_config(frames_root, "SPP.ENABLED", "True", "SPP.TEMPLATES", str(templates)))
    with pytest.raises(UserError, match="SPP.TEMPLATES"):
        build_datasets(make.tiny_config(frames_root, "SPP.ENABLED", "True", "SPP.WEIGHTS", str(weights)))


def test_show_spp_draws_frames_similarity_mask_and_obfuscated_frames(tmp_path, frames_root, weights, capsys):
    templates = _template_file(tmp_path, weights)
    out = tmp_path / "spp.png"
    opts = ["DATA.ROOT", str(frames_root), "DATA.NUM_FRAMES", "3", "DATA.NUM_WORKERS", "0", "DATA.NUM_CLASSES", "3",
            "MODEL.PRIVACY_CLASSES", "[3]", "DATA.SYNTHETIC.ENABLED", "False", "SPP.WEIGHTS", str(weights),
            "SPP.TEMPLATES", str(templates), *SPP_OPTS]
    capsys.readouterr()
    assert show_spp.main(["--out", str(out), "--opts", *opts]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["frames"]) == len(report["hidden"]) == 3
    assert all(0 <= h <= 1 for h in report["hidden"])
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[0] > picture.shape[1] / 2  # four rows of three frames
    no_weights = [v for i, v in enumerate(opts) if "SPP.WEIGHTS" not in opts[max(i - 1, 0):i + 1]]
    assert show_spp.main(["--out", str(out), "--opts", *no_weights]) == 2  # one line, exit 2
    assert "SPP.WEIGHTS" in capsys.readouterr().err


def test_the_frame_attack_reads_spp_frames(tmp_path, weights):
    """privacy_attack --target frames reads the obfuscated frames (odd/even replications of three
    performers, as the attacker split needs)."""
    root = tmp_path / "data"
    for p in (1, 2, 3):
        for r in (1, 2):
            for setup in (1, 2):  # xset: setup 2 trains the action model, setup 1 validates it
                rng = np.random.default_rng(100 * p + 10 * r + setup)
                frames = np.clip(rng.normal(60 * p, 20, (6, 16, 16, 3)), 0, 255).astype(np.uint8)
                folder = root / f"S{setup:03d}C001P{p:03d}R{r:03d}A001"
                folder.mkdir(parents=True)
                for t, frame in enumerate(frames):
                    cv2.imwrite(str(folder / f"{t:05d}.jpg"), frame)
    templates = _template_file(tmp_path, weights)
    opts = ["DATA.ROOT", str(root), "DATA.SYNTHETIC.ENABLED", "False", "DATA.INPUT_SIZE", "16", "DATA.NUM_FRAMES", "3",
            "DATA.NUM_WORKERS", "0"]
    spp_opts = ["SPP.ENABLED", "True", "SPP.WEIGHTS", str(weights), "SPP.TEMPLATES", str(templates),
                "SPP.THRESHOLD", "0.0", *SPP_OPTS]
    args = privacy_attack.parse_args(["--output", "unused", "--batch-size", "4"])
    plain = privacy_attack.build_views(load_config(None, opts), args, torch.device("cpu"))
    hidden = privacy_attack.build_views(load_config(None, opts + spp_opts), args, torch.device("cpu"))
    assert plain[2].shape == hidden[2].shape == (6, 3, 3, 16, 16) and torch.equal(plain[3], hidden[3])
    assert (plain[2] != hidden[2]).float().mean() > 0.5  # threshold 0: the attacker sees noise only


def test_tradeoff_adds_spp_cells(tmp_path, monkeypatch, weights):
    trained = []

    def train(config, run_dir, opts):
        trained.append(opts)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(json.dumps({"acc1": 50.0, "id_acc1": 40.0}))
        return True

    def attack(argv):
        out = Path(argv[argv.index("--output") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "privacy.json").write_text(json.dumps({"id_acc1": 30.0, "id_acc5": 90.0, "chance": 10.0}))
        return 0

    monkeypatch.setattr(tradeoff, "train_cell", train)
    monkeypatch.setattr(privacy_attack, "main", attack)
    argv = ["--output", str(tmp_path), "--levels", "0", "--devices", "", "--encoders", "ifns", "--spp-encoders", "rgb",
            "--utility-arch", "none", "--video-attacker", "none"]
    assert tradeoff.main(argv) == 2  # no weights and templates for the SPP cells: one line
    assert tradeoff.main(argv + ["--opts", "SPP.WEIGHTS", str(weights), "SPP.TEMPLATES", "t.pt"]) == 0
    rows = (tmp_path / "tradeoff.md").read_text()
    assert "| spp+rgb | film | 0 | planes resnet18 | none | 50.0 |" in rows
    assert "| ifns | film | 0 | planes resnet18 | none | 50.0 |" in rows
    assert ["SPP.ENABLED", "True"] == trained[1][4:6] and "SPP.ENABLED" not in trained[0]
    assert (tmp_path / "spp_rgb_l0" / "attack_planes" / "privacy.json").is_file()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_vit_on_the_gpu_gives_the_cpu_saliency(features):
    box = (32, 16, 80, 64)
    frames = np.stack([_patterned_frame(SIDE, SIDE, box, seed=s) for s in (1, 2)])
    template = region_template(features(torch.from_numpy(frames[0]).permute(2, 0, 1)[None])[0], box, (SIDE, SIDE))
    cpu = SelectiveObfuscation(features, template[None], threshold=THRESHOLD).saliency(frames)
    gpu = SelectiveObfuscation(copy.deepcopy(features), template[None], threshold=THRESHOLD, device="cuda")
    np.testing.assert_allclose(gpu.saliency(frames), cpu, atol=1e-3)
    assert gpu.features.mean.is_cuda
