"""The learned reconstruction attack: frame pairs (the film on whole frames, then the crop), the
training loop (the loss falls on a tiny set, a resumed run equals an uninterrupted one bit for
bit), the report's figures against a direct computation, the restorer inside the data path, and
privacy_attack.py --restore learned on the restorer's held-out videos."""
from __future__ import annotations

import itertools
import json
import pickle

import numpy as np
import pytest
import torch

from datasets import ClipDataset, Restoration, build_datasets
from datasets.pairs import build_pairs, collate_pairs, spread
from datasets.wrappers import RestoredClip
from models.convert import load_checkpoint_file
from models.encoders import RGBEncoder
from models.restorers import build_restorer, restorer_from_checkpoint
from tools import privacy_attack, train_restorer
from trainers.restorer import RestorerTrainer, evaluate_restoration, step_keys
from utils.config import load_config
from utils.image_metrics import psnr, ssim

CPU = torch.device("cpu")
TINY = ["--arch", "unet", "--width", "8", "--blocks", "1", "1", "--levels", "2", "--frames", "2",
        "--batch-size", "2", "--epochs", "2", "--warmup-steps", "0", "--print-every", "1", "--picture-frames", "2"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks on one thread: a shared, oversubscribed CPU runs them many times faster so."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _names():
    return [f"S{s:03d}C001P{p:03d}R{r:03d}A001" for s, p, r in itertools.product((1, 2), (1, 2, 3), (1, 2))]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """12 clips: setups 1-2 (xset: S002 trains the restorer, S001 is held out), 3 performers, 2 replications."""
    from conftest import moving_frames, write_frame_folder

    root = tmp_path_factory.mktemp("restorer") / "data"
    for i, name in enumerate(_names()):
        write_frame_folder(root / name, moving_frames(i))
    return root


@pytest.fixture(scope="module")
def restorer(data_root):
    """A restorer trained for one epoch at level 2 on the S002 videos: its last.pth."""
    out = data_root.parent / "one_epoch"
    assert _train(data_root, out, "--epochs", "1") == 0
    return str(out / "last.pth")


def _opts(root):
    return ["DATA.ROOT", str(root), "DATA.SYNTHETIC.ENABLED", "False", "DATA.INPUT_SIZE", "16", "DATA.NUM_FRAMES", "3",
            "DATA.NUM_WORKERS", "0", "DATA.NUM_CLASSES", "1", "MODEL.PRIVACY_CLASSES", "[3]"]


def _train(root, out, *extra):
    return train_restorer.main([*TINY, "--output", str(out), *extra, "--opts", *_opts(root)])


def test_pairs_are_the_film_on_whole_frames_then_cropped(data_root):
    cfg = load_config(None, _opts(data_root))
    whole = build_pairs(cfg, levels=(1, 3), frames=2)
    patched = build_pairs(cfg, levels=(1, 3), frames=2, patch=12)
    assert whole.train.names == [n for n in _names() if n.startswith("S002")]
    assert whole.val[1].names == [n for n in _names() if n.startswith("S001")]
    a, again = whole.train[(3, 1)], whole.train[(3, 1)]
    assert torch.equal(a["sealed"], again["sealed"]) and a["level"] in (1, 3)
    clip = whole.train.opener(whole.train.names[3])
    frames = torch.stack([torch.from_numpy(clip.read(np.arange(clip.num_frames), gray=False)[i]).permute(2, 0, 1)
                          for i in range(clip.num_frames)])
    assert any(torch.equal(a["clean"], frames[list(idx)]) or torch.equal(a["clean"], frames[list(idx)].flip(-1))
               for idx in itertools.combinations(range(10), 2))  # two random frames, maybe flipped
    held = whole.val[3][3]  # the held-out pairs: the segment centres (frames 3 and 7 of 10), no flip
    centres = whole.val[3].opener(whole.val[3].names[3]).read(np.array([3, 7]), gray=False)
    assert torch.equal(held["clean"], torch.from_numpy(centres).permute(0, 3, 1, 2)) and held["level"] == 3
    # the patch is a window of the sealed whole frame (same draws before it), flipped or not
    p = patched.train[(3, 1)]
    assert p["clean"].shape == p["sealed"].shape == (2, 3, 12, 12)
    windows = [a["sealed"][..., i:i + 12, j:j + 12] for i in range(13) for j in range(21)]
    assert any(torch.equal(p["sealed"], w) or torch.equal(p["sealed"], w.flip(-1)) for w in windows)
    # held-out pairs are fixed and the film's level shows: level 3 is further from clean than level 1
    one, three = (collate_pairs([whole.val[level][i] for i in range(6)]) for level in (1, 3))
    assert torch.equal(one["clean"], three["clean"])
    dist = [float(psnr(b["sealed"].double(), b["clean"].double(), 255).mean()) for b in (one, three)]
    assert dist[0] > dist[1] + 1.0, dist
    assert spread(list("abcdefghi"), 3) == ["a", "e", "i"] and spread(list("ab"), 0) == ["a", "b"]


def test_step_keys_of_a_resumed_run_are_the_tail():
    full = step_keys(7, 2, seed=5, start=0, stop=10)  # 3 steps per epoch: 4 epochs, one video dropped each
    assert len(full) == 20 and {epoch for _, epoch in full} == {0, 1, 2, 3}
    assert step_keys(7, 2, seed=5, start=4, stop=10) == full[8:]
    assert step_keys(7, 2, seed=5, start=4, stop=5) == full[8:10]
    assert sorted(i for i, e in full if e == 0) == sorted(set(i for i, e in full if e == 0))  # no repeats


@pytest.mark.parametrize("arch, kwargs", [
    ("unet", {"width": 8, "blocks": [1, 1]}),
    ("restormer", {"width": 8, "blocks": [1, 1], "heads": [1, 2], "refinement": 0})])
def test_loss_falls_on_a_tiny_set(data_root, arch, kwargs):
    cfg = load_config(None, _opts(data_root))
    batch = collate_pairs([build_pairs(cfg, levels=(2,), frames=2, patch=16).train[i] for i in range(3)])
    torch.manual_seed(0)
    trainer = RestorerTrainer(build_restorer(arch, **kwargs), lr=3e-3, weight_decay=0.0, total_steps=1000,
                              warmup_steps=0, ssim_weight=0.1, precision="fp32", grad_clip=1.0, device=CPU)
    losses = [trainer.train_step(batch)["l1"] for _ in range(40)]
    sealed_l1 = float((batch["sealed"].float() - batch["clean"].float()).abs().mean() / 255)
    assert losses[0] == pytest.approx(sealed_l1, rel=1e-5)  # an untrained restorer returns its input
    assert losses[-1] < 0.8 * losses[0], losses
    assert trainer.step == 40


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_step_on_cpu(data_root, precision):
    cfg = load_config(None, _opts(data_root))
    batch = collate_pairs([build_pairs(cfg, levels=(2,), frames=2).train[0]])
    trainer = RestorerTrainer(build_restorer("unet", width=8, blocks=[1, 1]), lr=1e-3, weight_decay=0.0,
                              total_steps=2, warmup_steps=0, ssim_weight=0.1, precision=precision, grad_clip=1.0,
                              device=CPU)
    assert (trainer.scaler is not None) == (precision == "fp16")
    out = [trainer.train_step(batch) for _ in range(2)]
    assert all(np.isfinite(o["loss"]) for o in out)


def test_resume_continues_bit_exactly_and_the_report_holds(data_root, tmp_path):
    """Two epochs straight, and two epochs as a run stopped after 2 steps and resumed: the same
    weights and optimizer state to the bit, and the same report."""
    assert _train(data_root, tmp_path / "straight") == 0
    assert _train(data_root, tmp_path / "sliced", "--stop-after", "2") == 0
    sliced = load_checkpoint_file(str(tmp_path / "sliced" / "last.pth"), allow_pickle=False)
    assert sliced["trainer"]["step"] == 2 and not (tmp_path / "sliced" / "restorer.json").exists()
    assert _train(data_root, tmp_path / "sliced", "--resume") == 0
    a, b = (load_checkpoint_file(str(tmp_path / run / "last.pth"), allow_pickle=False)
            for run in ("straight", "sliced"))
    assert a["trainer"]["step"] == b["trainer"]["step"] == 6  # 6 videos / batch 2 = 3 steps per epoch
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(x, y) for x, y in zip(a["trainer"]["optimizer"]["state"][0].values(),
                                                  b["trainer"]["optimizer"]["state"][0].values()))
    report = json.loads((tmp_path / "straight" / "restorer.json").read_text())
    assert report["levels"] == json.loads((tmp_path / "sliced" / "restorer.json").read_text())["levels"]
    assert (tmp_path / "straight" / "restorer_level2.png").is_file()
    # the sealed row is PSNR / SSIM of the held-out sealed frames, computed here directly
    cfg = load_config(None, _opts(data_root))
    held = collate_pairs([build_pairs(cfg, levels=(2,), frames=2).val[2][i] for i in range(6)])
    clean, sealed = held["clean"].double() / 255, held["sealed"].double() / 255
    level = report["levels"]["2"]
    assert level["frames"] == 12 and level["videos"] == 6
    assert level["sealed"]["psnr"] == pytest.approx(float(psnr(sealed, clean).mean()), abs=1e-5)  # float32 / 255
    assert level["sealed"]["ssim"] == pytest.approx(float(ssim(sealed, clean).mean()), abs=1e-6)
    model = restorer_from_checkpoint(a).eval()
    with torch.no_grad():
        learned = (model(sealed.float()).clamp(0, 1) * 255).round().double() / 255
    assert level["learned"]["psnr"] == pytest.approx(float(psnr(learned, clean).mean()), abs=1e-5)
    assert set(level) >= {"sealed", "wiener", "richardson_lucy", "learned"}


def test_user_errors_exit_2(data_root, restorer, tmp_path):
    run = str(data_root.parent / "one_epoch")
    assert train_restorer.main([*TINY, "--output", run, "--epochs", "1", "--opts", *_opts(data_root)]) == 2  # exists
    assert train_restorer.main([*TINY, "--output", run, "--epochs", "1", "--resume", "--width", "16",
                                "--opts", *_opts(data_root)]) == 2  # another network than the checkpoint's
    assert _train(data_root, tmp_path / "other", "--batch-size", "7") == 2  # 6 training videos
    assert train_restorer.main([*TINY, "--output", str(tmp_path / "x"), "--opts", *_opts(data_root),
                                "LPS.DEVICE", "lensless"]) == 2
    assert not (tmp_path / "other" / "last.pth").exists()


def test_learned_restoration_in_the_data_path(data_root, restorer):
    path = restorer
    model = restorer_from_checkpoint(load_checkpoint_file(path, allow_pickle=False)).eval()
    cfg = load_config(None, _opts(data_root) + ["LPS.LEVEL", "2"])
    film = build_datasets(cfg, request=RGBEncoder.request).val
    clip, same = (film.wrap(film.opener(film.names[0]), np.random.default_rng(0)) for _ in range(2))  # same noise
    got = RestoredClip(clip, "learned", 2, restorer=path).read(np.arange(3), gray=False)
    sealed = torch.from_numpy(same.read(np.arange(3), gray=False)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        want = (model(sealed).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(got, want)
    # a dataset holding the restorer by path pickles (data-loader workers load their own copy)
    restoration = Restoration("learned", 2, 0.01, 30, path)
    restored = build_datasets(cfg, request=RGBEncoder.request, restoration=restoration).val
    copy = pickle.loads(pickle.dumps(restored))
    assert isinstance(copy, ClipDataset)
    frames = copy.load_item(0)["frames"]  # [TEST.NUM_CLIP 2, T 3, 1, 3, 16, 16]
    assert frames.shape == (2, 3, 1, 3, 16, 16) and not np.array_equal(frames, film.load_item(0)["frames"])


def test_privacy_attack_on_the_restorers_held_out_videos(data_root, restorer, tmp_path):
    path = restorer
    opts = ["--opts", *_opts(data_root), "LPS.LEVEL", "2"]
    out = tmp_path / "attack"
    assert privacy_attack.main(["--output", str(out), "--restore", "learned", "--restorer", path, "--epochs", "1",
                                "--batch-size", "16", *opts]) == 0
    result = json.loads((out / "privacy.json").read_text())
    assert result["restore"] == "learned" and result["restorer"] == path and result["attack_videos"] == "val"
    assert result["videos"] == result["train_videos"] == 3 and result["identities"] == 3  # S001: R001 / R002
    assert privacy_attack.main(["--output", str(out), "--restore", "learned", "--restorer", path, "--videos", "all",
                                *opts]) == 2  # the restorer trained on the S002 videos
    assert privacy_attack.main(["--output", str(out), "--restore", "learned", *opts]) == 2  # no --restorer
    assert privacy_attack.main(["--output", str(out), "--restore", "wiener", "--restorer", path, *opts]) == 2
    assert privacy_attack.main(["--output", str(out), "--restore", "learned", "--restorer", path,
                                "--level", "3", *opts]) == 2  # trained at level 2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_steps_and_measurement(data_root, precision):
    cuda = torch.device("cuda")
    cfg = load_config(None, _opts(data_root))
    pairs = build_pairs(cfg, levels=(2,), frames=2)
    batch = collate_pairs([pairs.train[i] for i in range(3)])
    torch.manual_seed(0)
    model = build_restorer("restormer", width=8, blocks=[1, 1], heads=[1, 2]).to(cuda)
    trainer = RestorerTrainer(model, lr=3e-3, weight_decay=0.0, total_steps=1000, warmup_steps=0, ssim_weight=0.1,
                              precision=precision, grad_clip=1.0, device=cuda)
    losses = [trainer.train_step(batch)["l1"] for _ in range(20)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    metrics, kept = evaluate_restoration(model, pairs.val[2], 2, batch_size=3, num_workers=0, device=cuda,
                                         precision=precision, keep=2)
    assert metrics["frames"] == 12 and kept["learned"].shape == (2, 3, 24, 32)
    assert np.isfinite(metrics["learned"]["psnr"])
