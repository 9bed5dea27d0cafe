"""MSPNet: shapes for every size, isolation between clips, gradients, freezing, text cache."""
import pytest
import torch

import models
from models.clip import CLIP_SIZES, ClipSize
from models.heads import scale_grad
from models.mspnet import MSPNet
from models.vision import VisionTransformer
from utils.config import load_config

CLASSES = ["drink water", "eat meal", "brushing teeth"]
FRAMES, SIZE, IDS = 3, 16, 4
# OpenAI CLIP parameter counts (the CLIP repository's model card / notebook)
OPENAI_CLIP_PARAMS = {"ViT-B/32": 151_277_313, "ViT-B/16": 149_620_737,
                      "ViT-L/14": 427_616_513, "ViT-L/14-336": 427_944_193}


def _cfg(*opts):
    return load_config(None, ["MODEL.ARCH", "custom", "MODEL.PRETRAINED", "none",
                              "DATA.NUM_FRAMES", str(FRAMES), "DATA.INPUT_SIZE", str(SIZE),
                              "MODEL.PRIVACY_CLASSES", str([IDS]), "MODEL.FREEZE", "[]", *opts])


def _model(*opts, seed=0):
    torch.manual_seed(seed)
    return models.build_model(_cfg(*opts), CLASSES)


WINDOW = 6  # IFNS window of the default DATA.FD_STRIDE 4: frames t-5..t


def _clips(batch=2, seed=1):
    """uint8 frame windows [B, T, k + 2, 1, S, S] for the IFNS input encoder."""
    return torch.randint(0, 256, (batch, FRAMES, WINDOW, 1, SIZE, SIZE), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def test_forward_shapes_and_encode_video():
    model = _model()
    action, privacy = model(_clips())
    identity = privacy["identity"]
    assert action.shape == (2, len(CLASSES)) and identity.shape == (2, IDS)
    assert model.encode_video(_clips()).shape == (2, 64)


@pytest.mark.parametrize("arch", list(CLIP_SIZES))
def test_every_size_on_meta(arch):
    size = CLIP_SIZES[arch]
    with torch.device("meta"):
        model = MSPNet(size=size, image_size=size.image_size, num_frames=2, class_names=CLASSES,
                       privacy_heads={"identity": IDS})
        action, privacy = model(torch.empty(1, 2, 3, size.image_size, size.image_size))
        identity = privacy["identity"]
    assert action.shape == (1, len(CLASSES)) and identity.shape == (1, IDS)
    new = model.new_parameter_names()
    clip_params = sum(p.numel() for n, p in model.named_parameters() if n not in new)
    assert clip_params == OPENAI_CLIP_PARAMS[arch]


def test_custom_size_heads_follow_width():
    size = ClipSize(embed_dim=128, width=128, layers=1, patch_size=4, image_size=16,
                    text_width=192, text_layers=1)
    assert (size.heads, size.text_heads) == (2, 3)


def test_clip_output_does_not_depend_on_other_clips():
    model = _model().eval()
    clips = _clips(batch=3)
    with torch.no_grad():
        batched = model(clips)
        alone = model(clips[:1])
    for full, single in ((batched[0], alone[0]), (batched[1]["identity"], alone[1]["identity"])):
        torch.testing.assert_close(full[:1], single, rtol=1e-5, atol=1e-5)


def test_frames_of_different_clips_never_exchange_messages():
    model = _model().eval()
    features = []
    model.visual.transformer.register_forward_hook(lambda mod, args, out: features.append(out))
    clips = _clips(batch=2)
    perturbed = clips.clone()
    perturbed[1] = 255 - perturbed[1]
    with torch.no_grad():
        model(clips)
        model(perturbed)
    first, second = features  # [B*T, L, d], frames of clip 0 are rows 0..T-1
    torch.testing.assert_close(first[:FRAMES], second[:FRAMES], rtol=0, atol=1e-6)
    assert not torch.allclose(first[FRAMES:], second[FRAMES:])


# the Triton kernel takes fp32/fp16/bf16 (on CPU it runs only under TRITON_INTERPRET=1, else sdpa)
@pytest.mark.parametrize(("backend", "dtype", "tol"), [("sdpa", torch.float64, 1e-7),
                                                       ("triton", torch.float32, 1e-3)])
def test_backends_equal_math_on_the_whole_model(backend, dtype, tol):
    model = _model().to(dtype)
    clips = _clips()
    outputs = []
    for name in ("math", backend):
        model.set_attn_backend(name)
        model.zero_grad()
        action, privacy = model(clips)
        identity = privacy["identity"]
        (action.square().sum() + identity.square().sum()).backward()
        outputs.append((action, identity, [p.grad.clone() for p in model.parameters()]))
    (a0, i0, g0), (a1, i1, g1) = outputs
    torch.testing.assert_close(a1, a0, rtol=tol, atol=tol)
    torch.testing.assert_close(i1, i0, rtol=tol, atol=tol)
    for grad, ref in zip(g1, g0):
        torch.testing.assert_close(grad, ref, rtol=tol, atol=tol)


def test_every_trainable_parameter_gets_a_gradient():
    model = _model().train()
    action, privacy = model(_clips())
    identity = privacy["identity"]
    (action.square().sum() + identity.square().sum()).backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing


def test_privacy_grad_scale_scales_only_the_encoder_gradient():
    model = _model()
    clips = _clips()
    grads = []
    for scale in (1.0, -0.5):
        model.zero_grad()
        _, privacy = model(clips, privacy_grad_scale=scale)
        identity = privacy["identity"]
        identity.square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    plain, reversed_ = grads
    torch.testing.assert_close(reversed_["heads.identity.weight"], plain["heads.identity.weight"])
    torch.testing.assert_close(reversed_["visual.conv1.weight"], -0.5 * plain["visual.conv1.weight"])
    torch.testing.assert_close(reversed_["temporal.positional_embedding"],
                               -0.5 * plain["temporal.positional_embedding"])


def test_scale_grad_forward_is_identity():
    x = torch.randn(3, requires_grad=True)
    y = scale_grad(x, -2.0)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -2.0))


def test_freeze_keeps_new_modules_trainable_and_caches_text():
    model = _model("MODEL.FREEZE", "['text', 'visual']")
    new = model.new_parameter_names()
    for name, p in model.named_parameters():
        if name in new or name == "logit_scale":
            assert p.requires_grad, name
        else:
            assert not p.requires_grad, name
    assert "visual.conv0.weight" in new and "visual.transformer.resblocks.0.message_fc.weight" in new
    calls = []
    original = model.encode_text
    model.encode_text = lambda tokens: calls.append(1) or original(tokens)
    model.eval()
    with torch.no_grad():
        first = model(_clips())
        second = model(_clips())
    assert len(calls) == 1 and not model.training
    torch.testing.assert_close(first[0], second[0])
    model.double()  # the cache is a buffer: it follows dtype and device moves
    assert model.text_cache.dtype == torch.float64


def test_trainable_text_tower_is_recomputed_with_gradients():
    model = _model()
    model(_clips())[0].sum().backward()
    assert model.token_embedding.weight.grad is not None and model.text_cache is None


def test_activation_checkpointing_gives_same_outputs_and_gradients():
    results = []
    for flag in ("False", "True"):
        model = _model("TRAIN.USE_CHECKPOINT", flag)
        action, privacy = model(_clips())
        identity = privacy["identity"]
        (action.sum() + identity.sum()).backward()
        results.append((action, [p.grad for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)


def test_drop_path_rises_linearly_over_depth():
    model = _model("MODEL.DROP_PATH_RATE", "0.2", "MODEL.CUSTOM.LAYERS", "3")
    blocks = model.visual.transformer.resblocks
    assert isinstance(blocks[0].drop_path, torch.nn.Identity)
    assert [b.drop_path.drop_prob for b in blocks[1:]] == pytest.approx([0.1, 0.2])


def test_ifns_mix_starts_as_identity():
    model = _model()
    assert torch.equal(model.visual.conv0.weight.flatten(1), torch.eye(3))


def test_parameter_groups_name_real_parameters():
    model = _model()
    names = dict(model.named_parameters())
    assert model.no_weight_decay() <= set(names)
    new_ids = {id(p) for m in model.new_modules() for p in m.parameters()}
    assert {id(names[n]) for n in model.new_parameter_names()} == new_ids


def test_patch_embed_equals_the_two_convolutions():
    torch.manual_seed(0)
    visual = VisionTransformer(width=16, layers=1, heads=2, patch_size=4, image_size=12, embed_dim=8).double()
    torch.nn.init.normal_(visual.conv0.weight)  # a non-identity plane mix
    x = torch.randn(3, 3, 12, 12, dtype=torch.double)
    expected = visual.conv1(visual.conv0(x)).flatten(2).transpose(1, 2)  # [3, 9, 16]
    torch.testing.assert_close(visual.patch_embed(x), expected)
    x.requires_grad_(True)
    grads = torch.autograd.grad(visual.patch_embed(x).square().sum(), [x, visual.conv0.weight, visual.conv1.weight])
    ref = torch.autograd.grad(visual.conv1(visual.conv0(x)).square().sum(), [x, visual.conv0.weight, visual.conv1.weight])
    for grad, want in zip(grads, ref):
        torch.testing.assert_close(grad, want)


def test_patch_embed_under_bf16_autocast_matches_the_convolutions():
    torch.manual_seed(0)
    visual = VisionTransformer(width=32, layers=1, heads=2, patch_size=8, image_size=32, embed_dim=8)
    torch.nn.init.normal_(visual.conv0.weight)
    x = torch.randn(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tokens = visual.patch_embed(x)
    expected = visual.conv1(visual.conv0(x)).flatten(2).transpose(1, 2)  # fp32 reference
    assert tokens.dtype == torch.bfloat16
    torch.testing.assert_close(tokens.float(), expected, rtol=0.02, atol=0.05)


def test_several_privacy_heads_and_the_release_freeze():
    model = _model("DATA.DATASET", "pku", "MODEL.PRIVACY_HEADS", "['identity', 'gender', 'lower']",
                   "MODEL.PRIVACY_CLASSES", "[22, 2, 12]", "TRAIN.PRIVACY_WEIGHTS", "[0.2, 0.05, 0.05]",
                   "MODEL.FREEZE", "['text', 'logit_scale', 'temporal', 'heads']")
    action, privacy = model(_clips())
    assert {k: v.shape for k, v in privacy.items()} == {"identity": (2, 22), "gender": (2, 2), "lower": (2, 12)}
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    # the release's FIX_TEXT trains the vision tower (with the IFNS mix and messages) and the prompt
    assert trained and all(n.startswith(("visual.", "prompt.")) for n in trained)
    assert any(n.startswith("prompt.") for n in trained) and "visual.conv0.weight" in trained
