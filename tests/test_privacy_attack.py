"""Privacy attack: the attacker split, top-k and frame averaging, the views read through the shared
data path (frames, restored frames, encoder planes on a packed store, BDQ parameters from a
checkpoint), and tiny end-to-end runs."""
from __future__ import annotations

import csv
import itertools
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datasets import FrameFolderClip, Restoration, build_datasets, parse_name
from datasets.packed import PackedWriter
from models import build_model
from models.bdq import BDQEncoder
from models.encoders import RGBEncoder, clip_normalize
from tools import privacy_attack, tradeoff
from privacy import (CPU, AttackError, attribute_report, attribute_summary, build_attacker, split_for_attacker,
                     topk_accuracy, train_attacker, video_probabilities)
from privacy.metrics import average_precision
from privacy.views import (attacker_dataset, camera_device, clean_views, frame_fidelity, has_clean_reference, planes_view,
                           read_views)
from tools.privacy_attack import build_views
from trainers.checkpoint import FORMAT_VERSION
from utils.config import load_config

PERFORMER_COLOURS = ((230, 40, 40), (40, 230, 40), (40, 40, 230))


def _names(performers=range(1, 5), replications=(1, 2), setups=(1, 2), cameras=(1, 2), actions=(1, 3)):
    return [f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}"
            for s, c, p, r, a in itertools.product(setups, cameras, performers, replications, actions)]


def test_split_no_video_in_both_halves_and_every_identity_in_both():
    names = _names() + _names(performers=(7,), replications=(1,))  # performer 7: odd R only
    split = split_for_attacker(names)
    assert not set(split.train) & set(split.test)
    train_ids = {parse_name(n).identity for n in split.train}
    test_ids = {parse_name(n).identity for n in split.test}
    assert train_ids == test_ids == set(split.identities) == {0, 1, 2, 3}
    assert split.dropped == [6]
    assert len(split.train) + len(split.test) == len(_names())
    assert all(parse_name(n).replication % 2 == 1 for n in split.train)
    assert all(parse_name(n).replication % 2 == 0 for n in split.test)
    capped = split_for_attacker(names, max_per_identity=3)
    assert len(capped.train) == len(capped.test) == 3 * 4
    assert set(capped.train) <= set(split.train) and set(capped.test) <= set(split.test)
    assert {parse_name(n).setup for n in capped.train} == {1, 2}  # spread, not the first three


def test_topk_accuracy_exact():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    labels = torch.tensor([0, 1, 2, 1])
    assert topk_accuracy(probs, labels, 1) == pytest.approx(50.0)
    assert topk_accuracy(probs, labels, 2) == pytest.approx(75.0)
    assert topk_accuracy(probs, labels, 5) == pytest.approx(100.0)  # k capped at the classes


def test_video_probabilities_average_frames():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 2, 4))
    x = torch.randn(5, 3, 3, 2, 2)  # [N, T, 3, S, S]
    probs = video_probabilities(model, x, batch_size=2)
    expected = torch.stack([model(v).softmax(-1).mean(0) for v in x])
    assert torch.allclose(probs, expected, atol=1e-6)


def test_feature_probe_learns_separable_identities():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=gen) * 3
    y = torch.arange(4).repeat(50)
    x = centres[y] + torch.randn(200, 16, generator=gen)
    for name in ("linear", "mlp"):
        model = build_attacker(name, 4, image_size=0, in_features=16)
        train_attacker(model, x, y, epochs=60, lr=1e-2, batch_size=200, seed=0, augment=False)
        assert topk_accuracy(video_probabilities(model, x, 64), y, 1) > 95


def _write_dataset(root):
    """24 tiny NTU-named frame folders: the performer sets the colour, replication the noise."""
    for name in _names(performers=(1, 2, 3), cameras=(1,)):
        p = parse_name(name)
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        folder = root / name
        folder.mkdir(parents=True)
        for t in range(6):
            frame = np.full((16, 16, 3), PERFORMER_COLOURS[p.performer - 1], dtype=np.float64)
            frame += rng.normal(0, 10, frame.shape)
            rgb = np.clip(frame, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{t:05d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _opts(root):
    return ["DATA.ROOT", str(root), "DATA.SYNTHETIC.ENABLED", "False", "DATA.INPUT_SIZE", "16",
            "DATA.NUM_FRAMES", "3", "DATA.FD_STRIDE", "1", "DATA.NUM_WORKERS", "0", "TRAIN.BATCH_SIZE", "2"]


def _pack(frames_root, out):
    """A packed store of the gray frames of every folder under ``frames_root``."""
    with PackedWriter(out) as writer:
        for folder in sorted(frames_root.iterdir()):
            clip = FrameFolderClip(folder, folder.name)
            writer.add(folder.name, clip.read(np.arange(clip.num_frames), gray=True))
    return ["DATA.LAYOUT", "packed", "DATA.PACKED_ROOT", str(out)]


def _args(*extra):
    return privacy_attack.parse_args(["--output", "unused", "--batch-size", "5", *extra])


def test_views_are_the_shared_items_one_centre_view(tmp_path):
    """--target frames: frame t of the RGB request, CLIP-normalised, one view (the test sampler's
    segment centres and centre crop, whatever TEST.NUM_CLIP); --restore wraps the same items."""
    _write_dataset(tmp_path / "data")
    cfg = load_config(None, _opts(tmp_path / "data") + ["TEST.NUM_CLIP", "2", "LPS.LEVEL", "1"])
    split, label_of, x_train, y_train, x_test, y_test = build_views(cfg, _args(), CPU)
    assert label_of == {"identity": {0: 0, 1: 1, 2: 2}}
    assert x_train.shape == (12, 3, 3, 16, 16) and x_test.shape == (12, 3, 3, 16, 16)
    assert y_test[:, 0].tolist() == [0] * 4 + [1] * 4 + [2] * 4  # compact labels, in split order
    splits = build_datasets(cfg, request=RGBEncoder.request)
    for names, x in ((split.train, x_train), (split.test, x_test)):
        dataset = attacker_dataset(splits.val, names)
        for i in (0, len(names) - 1):
            frames = dataset.load_item(i)["frames"]  # [1, T, 1, 3, S, S]
            assert frames.shape == (1, 3, 1, 3, 16, 16)
            torch.testing.assert_close(x[i], clip_normalize(torch.from_numpy(frames[0, :, 0])))
    restored = build_views(cfg, _args("--restore", "wiener"), CPU)[2]
    dataset = attacker_dataset(build_datasets(cfg, request=RGBEncoder.request,
                                              restoration=Restoration("wiener", 1, 1e-2, 30)).val, split.train)
    torch.testing.assert_close(restored[0], clip_normalize(torch.from_numpy(dataset.load_item(0)["frames"][0, :, 0])))
    assert not torch.equal(restored, x_train)


def test_planes_on_a_packed_store_equal_the_frames_layout(tmp_path):
    """--target planes reads the encoder's own items: on a packed store (gray frames only, which
    the old RGB-decoding tool could not read) the IFNS planes equal those of the frame folders."""
    _write_dataset(tmp_path / "data")
    frames_cfg = load_config(None, _opts(tmp_path / "data"))
    packed_cfg = load_config(None, _opts(tmp_path / "data") + _pack(tmp_path / "data", tmp_path / "packed"))
    want = build_views(frames_cfg, _args("--target", "planes"), CPU)
    got = build_views(packed_cfg, _args("--target", "planes"), CPU)
    assert got[2].shape == (12, 3, 3, 16, 16) and want[1] == got[1]
    for a, b in zip(want[2:], got[2:]):
        assert torch.equal(a, b)
    with pytest.raises(AttackError, match="--target frames"):
        build_views(packed_cfg, _args(), CPU)


def test_end_to_end_planes_on_packed_store(tmp_path):
    _write_dataset(tmp_path / "data")
    out = tmp_path / "out"
    opts = _opts(tmp_path / "data") + _pack(tmp_path / "data", tmp_path / "packed")
    assert privacy_attack.main(["--output", str(out), "--epochs", "1", "--target", "planes",
                                "--opts", *opts]) == 0
    result = json.loads((out / "privacy.json").read_text())
    assert result["videos"] == 12 and result["train_videos"] == 12 and result["identities"] == 3
    assert privacy_attack.main(["--output", str(tmp_path / "frames"), "--opts", *opts]) == 2


def test_bdq_planes_use_the_checkpoint_encoder(tmp_path):
    """BDQ's sigma and bins come from the ``input_encoder.`` entries of the checkpoint's model."""
    cfg = load_config(None, _opts(tmp_path) + ["MODEL.ENCODER", "bdq"])
    trained = BDQEncoder(sigma=2.5)
    state = {f"input_encoder.{k}": v for k, v in trained.state_dict().items()}
    encoder = planes_view(cfg, {"model": {"visual.proj": torch.zeros(1), **state}}, "ckpt")
    assert encoder.sigma.item() == 2.5 and torch.equal(encoder.bins, trained.bins)
    assert planes_view(cfg, None, "").sigma.item() == BDQEncoder().sigma.item()
    with pytest.raises(AttackError, match="do not fit MODEL.ENCODER bdq"):
        planes_view(cfg, {"model": {"visual.proj": torch.zeros(1)}}, "ckpt")


def test_features_are_the_frozen_models_encode_video(tmp_path):
    _write_dataset(tmp_path / "data")
    cfg = load_config(None, _opts(tmp_path / "data"))
    torch.manual_seed(0)
    model = build_model(cfg, build_datasets(cfg).class_names).eval()
    torch.save({"format_version": FORMAT_VERSION, "model": model.state_dict()}, tmp_path / "last.pth")
    with pytest.raises(AttackError, match="--resume"):
        build_views(cfg, _args("--target", "features"), CPU)
    split, _, x_train, _, x_test, _ = build_views(cfg, _args("--target", "features", "--resume",
                                                          str(tmp_path / "last.pth")), CPU)
    assert x_train.shape == (12, model.visual.proj.shape[1]) and x_test.shape == x_train.shape
    frames = attacker_dataset(build_datasets(cfg).val, split.test).load_item(5)["frames"]  # [1, T, F, 1, S, S]
    with torch.no_grad():
        torch.testing.assert_close(x_test[5], model.encode_video(torch.from_numpy(frames))[0])
    out = tmp_path / "out"
    assert privacy_attack.main(["--output", str(out), "--target", "features", "--attacker", "linear",
                                "--epochs", "2", "--resume", str(tmp_path / "last.pth"),
                                "--opts", *_opts(tmp_path / "data")]) == 0
    assert json.loads((out / "privacy.json").read_text())["target"] == "features"


@pytest.mark.parametrize("extra", [[], ["--restore", "wiener", "--level", "1", "--target", "planes"]])
def test_end_to_end_writes_privacy_json(tmp_path, extra):
    _write_dataset(tmp_path / "data")
    out = tmp_path / "out"
    rc = privacy_attack.main(["--output", str(out), "--epochs", "1", "--batch-size", "16",
                              *extra, "--opts", *_opts(tmp_path / "data")])
    assert rc == 0
    result = json.loads((out / "privacy.json").read_text())
    assert result["videos"] == 12 and result["train_videos"] == 12 and result["identities"] == 3
    assert result["chance"] == pytest.approx(100 / 3)
    assert 0 <= result["id_acc1"] <= result["id_acc5"] <= 100
    assert (out / "log.txt").is_file()


def test_frame_fidelity_known_values():
    """One grey level off everywhere is 20 log10(255) = 48.13 dB; identical frames have SSIM 1."""
    frames = torch.randint(0, 255, (2, 3, 1, 3, 16, 16), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    a, b = RGBEncoder()(frames), RGBEncoder()(frames + 1)
    off = frame_fidelity(b, a)
    assert off["psnr"] == pytest.approx(20 * np.log10(255), abs=1e-6) and off["fidelity_frames"] == 6
    assert 0.99 < off["ssim"] < 1
    assert frame_fidelity(a, a)["ssim"] == pytest.approx(1.0)


def test_clean_reference_only_where_clean_frames_exist_and_the_camera_read():
    synthetic = load_config(None, [])  # the demo: the synthetic set's film copy
    assert has_clean_reference(synthetic, restored=False) and camera_device(synthetic) == "film"
    assert camera_device(load_config(None, ["DATA.SYNTHETIC.DEVICE", "lensless"])) == "lensless"
    assert camera_device(load_config(None, ["DATA.SYNTHETIC.DEVICE", "lensless", "LPS.LEVEL", "1",
                                            "LPS.DEVICE", "coded_aperture"])) == "coded_aperture"
    raw = load_config(None, ["DATA.SYNTHETIC.SOURCE", "raw"])
    assert not has_clean_reference(raw, restored=False)  # the clean frames themselves
    assert has_clean_reference(load_config(None, ["DATA.SYNTHETIC.SOURCE", "raw", "LPS.LEVEL", "1"]), False)
    recorded = load_config(None, ["DATA.ROOT", "/data/ntu", "DATA.SYNTHETIC.ENABLED", "False"])
    assert not has_clean_reference(recorded, restored=True)  # recorded through the film: no clean copy
    assert has_clean_reference(load_config(None, ["DATA.ROOT", "/data/ntu", "DATA.SYNTHETIC.ENABLED", "False",
                                                  "LPS.LEVEL", "2"]), restored=False)


def test_frame_attack_reports_psnr_ssim_against_the_clean_frames(tmp_path):
    """--target frames under an on-the-fly film: privacy.json's PSNR/SSIM are those of the test
    half's frames against the same frames read without the film; restoration changes them."""
    _write_dataset(tmp_path / "data")
    opts = _opts(tmp_path / "data") + ["LPS.LEVEL", "2"]
    results = {}
    for restore in ("none", "wiener"):
        out = tmp_path / restore
        assert privacy_attack.main(["--output", str(out), "--epochs", "1", "--batch-size", "16",
                                    "--restore", restore, "--opts", *opts]) == 0
        results[restore] = json.loads((out / "privacy.json").read_text())
    cfg = load_config(None, opts)
    split, label_of, _, _, x_test, _ = build_views(cfg, _args(), CPU)
    clean = clean_views(cfg, split.test, label_of, batch_size=5, device=CPU)
    expected = frame_fidelity(x_test, clean)
    assert results["none"]["psnr"] == pytest.approx(expected["psnr"]) and expected["psnr"] < 40
    assert results["none"]["ssim"] == pytest.approx(expected["ssim"]) and expected["ssim"] < 0.99
    assert results["none"]["fidelity_frames"] == 12 * 3
    assert results["wiener"]["psnr"] != pytest.approx(results["none"]["psnr"])
    plain = tmp_path / "plain"
    assert privacy_attack.main(["--output", str(plain), "--epochs", "1", "--opts", *_opts(tmp_path / "data")]) == 0
    assert "psnr" not in json.loads((plain / "privacy.json").read_text())  # recorded frames: no clean copy


def test_bad_combination_is_a_user_error(tmp_path):
    assert privacy_attack.main(["--output", str(tmp_path), "--target", "features",
                                "--attacker", "resnet18"]) == 2
    assert not (tmp_path / "privacy.json").exists()


def test_tradeoff_collect_writes_table_and_plot(tmp_path):
    """--collect gathers finished runs; a missing run is a row with a note, not a crash."""
    for encoder, acc, attack in (("ifns", 80.0, 20.0), ("rgb", 90.0, 95.0)):
        run = tmp_path / f"{encoder}_l2"
        (run / "attack_planes").mkdir(parents=True)
        (run / "utility").mkdir()
        (run / "metrics.json").write_text(json.dumps({"acc1": acc, "id_acc1": 50.0}))
        (run / "utility" / "utility.json").write_text(json.dumps({"acc1": acc - 10}))
        (run / "attack_planes" / "privacy.json").write_text(
            json.dumps({"id_acc1": attack, "id_acc5": 99.0, "chance": 10.0}))
    frames = tmp_path / "frames_l2_none"
    frames.mkdir()
    (frames / "privacy.json").write_text(json.dumps({"id_acc1": 70.0, "id_acc5": 99.0, "chance": 10.0,
                                                     "psnr": 21.5, "ssim": 0.61}))
    rc = tradeoff.main(["--output", str(tmp_path), "--collect", "--encoders", "ifns,rgb,bdq",
                        "--levels", "2", "--devices", "", "--video-attacker", "none"])
    assert rc == 0
    with open(tmp_path / "tradeoff.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["encoder"], r["restore"]) for r in rows] == [
        ("ifns", "none"), ("rgb", "none"), ("bdq", "none"), ("camera frames", "none"),
        ("camera frames", "wiener"), ("camera frames", "richardson_lucy"), ("camera frames", "learned")]
    assert float(rows[0]["acc1"]) == 80.0 and float(rows[0]["utility_acc1"]) == 70.0
    assert float(rows[1]["attack_id_acc1"]) == 95.0 and float(rows[3]["psnr"]) == 21.5
    assert rows[2]["note"] and rows[4]["note"] and rows[6]["note"] == "restorer missing or failed"
    table = (tmp_path / "tradeoff.md").read_text()
    assert "| ifns | film | 2 | planes resnet18 | none | 80.0 | 70.0 | 50.0 | 20.0 | 99.0 | - | - | - | 10.0 |" in table
    assert "| camera frames | film | 2 | frames resnet18 | none | - | - | - | 70.0 | 99.0 | - | 21.5 | 0.610 |" in table
    assert (tmp_path / "tradeoff.png").stat().st_size > 0
    assert tradeoff.main(["--output", str(tmp_path), "--collect", "--encoders", "nope"]) == 2
    assert tradeoff.main(["--output", str(tmp_path), "--collect", "--devices", "pinhole"]) == 2


def test_tradeoff_grid_trains_every_cell_and_attacks_with_its_checkpoint(tmp_path, monkeypatch):
    """Every encoder x camera cell is trained (no model is built to check its wiring); its fresh
    utility model and its frame and video attackers read the encoder's output with its checkpoint;
    every camera's frames are attacked as recorded and after the known-PSF reconstruction, the
    film's also after the one learned restorer of the grid's film levels."""
    tools = []

    def train(config, run_dir, opts):
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(json.dumps({"acc1": 50.0, "id_acc1": 40.0}))
        (run_dir / "last.pth").write_bytes(b"")
        return True

    def fake(name, result):
        def tool(argv):
            tools.append((name, argv))
            out = Path(argv[argv.index("--output") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / result).write_text(json.dumps({"id_acc1": 30.0, "id_acc5": 90.0, "chance": 10.0, "acc1": 44.0}))
            return 0
        return tool

    monkeypatch.setattr(tradeoff, "train_cell", train)
    monkeypatch.setattr(privacy_attack, "main", fake("attack", "privacy.json"))
    monkeypatch.setattr(tradeoff.utility_model, "main", fake("utility", "utility.json"))
    restorer = fake("restorer", "restorer.json")

    def train_restorer(argv):
        (Path(argv[argv.index("--output") + 1]) / "last.pth").parent.mkdir(parents=True, exist_ok=True)
        (Path(argv[argv.index("--output") + 1]) / "last.pth").write_bytes(b"")
        return restorer(argv)

    monkeypatch.setattr(tradeoff.train_restorer, "main", train_restorer)
    assert tradeoff.main(["--output", str(tmp_path), "--levels", "0,2", "--device-levels", "2", "--quick",
                          "--encoders", "ifns,bdq"]) == 0
    with open(tmp_path / "tradeoff.csv") as f:
        rows = list(csv.DictReader(f))
    cells = [(r["encoder"], r["device"], r["attack"], r["restore"]) for r in rows]
    for device in ("film", "lensless", "coded_aperture"):
        for encoder in ("ifns", "bdq"):
            assert (encoder, device, "planes resnet18", "none") in cells and (encoder, device, "planes r3d_18", "none") in cells
    restores = {(r["device"], r["restore"]) for r in rows if r["encoder"] == "camera frames"}
    assert restores >= {("film", "none"), ("film", "wiener"), ("film", "richardson_lucy"), ("film", "learned"),
                        ("lensless", "none"), ("coded_aperture", "none")}
    assert ("lensless", "learned") not in restores  # the restorer learns the film only
    trained = [argv for name, argv in tools if name == "restorer"]
    assert len(trained) == 1 and trained[0][trained[0].index("--levels") + 1:][:2] == ["2", "--epochs"]
    learned = [argv for name, argv in tools if name == "attack" and "learned" in argv]
    assert [argv[argv.index("--restorer") + 1] for argv in learned] == [str(tmp_path / "restorer" / "last.pth")]
    ifns = [r for r in rows if r["encoder"] == "ifns"]
    assert all(float(r["acc1"]) == 50.0 for r in ifns)
    # --quick trains the utility model in the cells of the demo's film level only
    assert {(r["device"], r["level"]): r["utility_acc1"] for r in ifns if r["attack"] == "planes resnet18"} == {
        ("film", "0"): "", ("film", "2"): "44.0", ("lensless", "2"): "", ("coded_aperture", "2"): ""}
    assert not any(r["note"] for r in rows)
    planes = [argv for name, argv in tools if name == "attack" and "planes" in argv]
    assert {argv[argv.index("--resume") + 1] for argv in planes} == {
        str(tmp_path / f"{e}_{c}" / "last.pth") for e in ("ifns", "bdq") for c in ("l0", "l2", "lensless_l2",
                                                                                  "coded_aperture_l2")}
    lensless = [argv for name, argv in tools if "lensless_l2" in argv[argv.index("--output") + 1]]
    assert all("LPS.DEVICE" in argv and "lensless" in argv for argv in lensless)
    utility = [argv for name, argv in tools if name == "utility"]
    assert len(utility) == 2 and all("--resume" in argv and "--epochs" in argv for argv in utility)
    # a second run reuses every finished cell
    before = len(tools)
    assert tradeoff.main(["--output", str(tmp_path), "--levels", "0,2", "--device-levels", "2", "--quick",
                          "--encoders", "ifns,bdq"]) == 0
    assert len(tools) == before


def test_average_precision_and_f1_known_values():
    # sklearn.metrics.average_precision_score gives these (ties count at one threshold)
    assert average_precision(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]).bool()) == pytest.approx(5 / 6)
    assert average_precision(torch.tensor([0.9, 0.8, 0.8, 0.1]), torch.tensor([1, 0, 1, 0]).bool()) == pytest.approx(5 / 6)
    assert average_precision(torch.full((4,), 0.5), torch.tensor([0, 0, 1, 1]).bool()) == pytest.approx(0.5)
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels = torch.tensor([0, 1, 1, 0])  # value 2 never occurs: left out of the means
    report = attribute_report(probs, labels)
    assert report["acc1"] == pytest.approx(50.0) and report["acc1_chance"] == pytest.approx(50.0)
    # value 0: scores 0.9, 0.2, 0.6, 0.1 for positives rows 0, 3 -> AP (1 + 2/4) / 2; value 1: rows 1, 2
    assert report["per_class_ap"][0] == pytest.approx(0.75) and report["per_class_ap"][2] is None
    assert report["per_class_ap"][1] == pytest.approx(1.0)  # 0.7 and 0.3 rank first and second
    # predictions 0, 1, 0, 2: F1(value 0) = 2*1/(2+2), F1(value 1) = 2*1/(2+1)
    assert report["f1"] == pytest.approx(100 * (0.5 + 2 / 3) / 2)
    assert report["ap_chance"] == pytest.approx(50.0)
    assert report["f1_chance"] == pytest.approx(100 * 2 * 0.5 / 3 / (0.5 + 1 / 3))
    summary = attribute_summary({"a": report, "b": attribute_report(probs[:, :2], torch.tensor([0, 1, 0, 1]))})
    # b: value 0 ranks first and second (AP 1); value 1 ranks first and ties last with a negative (0.75)
    assert summary["cmap"] == pytest.approx(100 * (0.75 + 1.0 + 1.0 + 0.75) / 4)


def _write_pku(root):
    """PKU-named frame folders of 3 people (upper wear sets the colour) in both setups."""
    people = {1: (1, 3, 1, 2, 5), 2: (2, 1, 2, 7, 5), 3: (1, 5, 1, 9, 12)}  # gender hair glasses upper lower
    names = []
    for setup, person, camera, action in itertools.product((1, 2), people, (1, 2), (1, 2)):
        u, v, w, x, y = people[person]
        name = f"S{setup:03d}P{person:03d}R{camera:03d}U{u:03d}V{v:03d}W{w:03d}X{x:03d}Y{y:03d}A{action:03d}"
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        folder = root / name
        folder.mkdir(parents=True)
        for t in range(6):
            frame = np.full((16, 16, 3), PERFORMER_COLOURS[person - 1], dtype=np.float64) + rng.normal(0, 10, (16, 16, 3))
            cv2.imwrite(str(folder / f"{t:05d}.jpg"), cv2.cvtColor(np.clip(frame, 0, 255).astype(np.uint8),
                                                                     cv2.COLOR_RGB2BGR))
        names.append(name)
    return names


def test_pku_attribute_attack_splits_by_setup_and_reports_cmap(tmp_path):
    names = _write_pku(tmp_path / "data")
    split = split_for_attacker(names)
    assert {parse_name(n).setup for n in split.train} == {1} and {parse_name(n).setup for n in split.test} == {2}
    opts = _opts(tmp_path / "data") + ["DATA.DATASET", "pku", "DATA.LABEL_LIST", "labels/pku_label_name.txt",
                                       "MODEL.PRIVACY_CLASSES", "[22]"]
    out = tmp_path / "out"
    assert privacy_attack.main(["--output", str(out), "--epochs", "1", "--label", "attributes",
                                "--batch-size", "16", "--opts", *opts]) == 0
    result = json.loads((out / "privacy.json").read_text())
    assert list(result["labels"]) == ["gender", "hairstyle", "glasses", "upper", "lower"]
    assert result["labels"]["hairstyle"]["classes"] == 3 and result["labels"]["lower"]["classes"] == 2
    assert "id_acc1" not in result and result["videos"] == 12
    for key in ("cmap", "cmap_chance", "macro_f1", "macro_f1_chance"):
        assert 0 <= result[key] <= 100
    # 12 (attribute, value) classes; each attribute's prevalences sum to 1: chance cMAP = 5 / 12
    assert result["cmap_chance"] == pytest.approx(100 * 5 / 12)
    assert privacy_attack.main(["--output", str(tmp_path / "ntu"), "--label", "gender",
                                "--opts", *_opts(tmp_path / "data")]) == 2


@pytest.mark.parametrize("name", ["temporal", "r3d_18", "r2plus1d_18"])
def test_video_attackers_take_whole_clips(name):
    model = build_attacker(name, 3, image_size=16, in_features=0, num_frames=4)
    clips = torch.randn(2, 4, 3, 16, 16)
    assert model(clips).shape == (2, 3)
    # the clip is one sample: shuffling its frames changes what a video attacker sees
    with torch.no_grad():
        assert not torch.allclose(model(clips), model(clips[:, [3, 2, 1, 0]]), atol=1e-5)
    probs = video_probabilities(model, clips, 2, per_frame=False)
    torch.testing.assert_close(probs, model(clips).softmax(-1), atol=1e-5, rtol=1e-5)


def test_only_a_video_attacker_can_tell_the_direction_of_motion():
    """A square moving right or left: per frame both directions show the same frames, so any frame
    attacker (softmax averaged over T) gives both the same probabilities, while a video attacker's
    output depends on the order of the frames."""
    base = torch.zeros(3, 4, 3, 8, 8)
    for i in range(3):
        for j in range(4):
            base[i, j, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2] = 1.0
    backwards = base.flip(1)
    frame = build_attacker("resnet18", 2, image_size=8, in_features=0)
    torch.testing.assert_close(video_probabilities(frame, base, 8), video_probabilities(frame, backwards, 8))
    for name in ("temporal", "r3d_18"):
        video = build_attacker(name, 2, image_size=8, in_features=0, num_frames=4).eval()
        forward_p = video_probabilities(video, base, 8, per_frame=False)
        assert (forward_p - video_probabilities(video, backwards, 8, per_frame=False)).abs().max() > 1e-4, name


def test_end_to_end_video_attacker_on_the_split(tmp_path):
    _write_dataset(tmp_path / "data")
    out = tmp_path / "out"
    assert privacy_attack.main(["--output", str(out), "--epochs", "1", "--attacker", "r3d_18", "--batch-size", "4",
                                "--opts", *_opts(tmp_path / "data")]) == 0
    result = json.loads((out / "privacy.json").read_text())
    # the video split: one sample per video in each half, the same people in both
    assert result["attacker"] == "r3d_18" and result["videos"] == result["train_videos"] == 12
    assert 0 <= result["id_acc1"] <= 100


def test_read_views_counts_videos_not_batches(tmp_path, caplog):
    _write_dataset(tmp_path / "data")
    cfg = load_config(None, _opts(tmp_path / "data"))
    splits = build_datasets(cfg, request=RGBEncoder.request)
    dataset = attacker_dataset(splits.val, splits.train.names)
    with caplog.at_level("WARNING"):
        x, y = read_views(dataset, RGBEncoder(), {"identity": {0: 0, 1: 1, 2: 2}}, batch_size=5,
                                         num_workers=0, device=CPU)
    assert len(x) == len(y) == len(dataset) == 12 and "unreadable" not in caplog.text
