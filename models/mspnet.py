"""MSPNet: CFSA/IFNS CLIP video encoder, temporal fusion, video prompts, action and privacy heads."""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from models.attention import BACKENDS, Attention
from models.clip import ClipSize, Transformer, init_clip_transformer, tokenize
from models.heads import PrivacyHeads, scale_grad
from models.prompt import VideoPrompt
from models.temporal import TemporalFusion
from models.vision import VisionTransformer, init_new_module

logger = logging.getLogger(__name__)

LOGIT_SCALE_INIT = math.log(1 / 0.07)  # CLIP's initial temperature
TOKEN_EMBEDDING_STD = 0.02
TEXT_POSITION_STD = 0.01
FREEZABLE = ("text", "visual", "logit_scale", "temporal", "prompt", "heads")


class MSPNet(nn.Module):
    """Motion Semantic Prompting Network (DESIGN section 2).

    Args:
        size: CLIP tower sizes.
        image_size: input side in pixels (a multiple of the patch size).
        num_frames: frames T per clip.
        class_names: the K action class names, encoded by the text tower.
        privacy_heads: privacy head name -> classes (``identity``, and on P3AR-PKU the attributes).
        temporal_layers: temporal fusion blocks.
        prompt_layers: prompt decoder layers.
        prompt_alpha: initial prompt scale.
        drop_path_rate: stochastic depth of the last vision block.
        backend: attention backend for every attention (sdpa | math | triton).
        input_encoder: turns the dataset's uint8 frames into the clips [B, T, 3, H, W] (an
            encoder of :mod:`models.encoders`); None = the inputs are clips already (tests).
    """

    def __init__(self, *, size: ClipSize, image_size: int, num_frames: int, class_names: Sequence[str],
                 privacy_heads: Mapping[str, int], temporal_layers: int = 1, prompt_layers: int = 2,
                 prompt_alpha: float = 0.1, drop_path_rate: float = 0.0, backend: str = "sdpa",
                 input_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.input_encoder = input_encoder if input_encoder is not None else nn.Identity()
        self.visual = VisionTransformer(
            width=size.width, layers=size.layers, heads=size.heads, patch_size=size.patch_size,
            image_size=image_size, embed_dim=size.embed_dim, drop_path_rate=drop_path_rate,
            backend=backend)
        self.token_embedding = nn.Embedding(size.vocab_size, size.text_width)
        self.positional_embedding = nn.Parameter(torch.empty(size.context_length, size.text_width))
        self.transformer = Transformer(size.text_width, size.text_layers, size.text_heads, causal=True,
                                       backend=backend)
        self.ln_final = nn.LayerNorm(size.text_width)
        self.text_projection = nn.Parameter(torch.empty(size.text_width, size.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        self.temporal = TemporalFusion(num_frames=num_frames, width=size.embed_dim,
                                       layers=temporal_layers, backend=backend)
        self.prompt = VideoPrompt(vision_width=size.width, width=size.embed_dim, layers=prompt_layers,
                                  alpha=prompt_alpha, backend=backend)
        self.heads = PrivacyHeads(size.embed_dim, privacy_heads)
        self.register_buffer("text_tokens", tokenize(list(class_names), size.context_length),
                             persistent=False)
        self.register_buffer("text_cache", None, persistent=False)
        self._init_clip(size)
        init_new_module(self.heads)

    def _init_clip(self, size: ClipSize) -> None:
        nn.init.normal_(self.token_embedding.weight, std=TOKEN_EMBEDDING_STD)
        nn.init.normal_(self.positional_embedding, std=TEXT_POSITION_STD)
        nn.init.normal_(self.text_projection, std=size.text_width ** -0.5)
        init_clip_transformer(self.transformer, size.text_width, size.text_layers)
        init_clip_transformer(self.visual.transformer, size.width, size.layers)

    # ------------------------------------------------------------------ parts and groups
    def text_modules(self) -> list[nn.Module | nn.Parameter]:
        """The CLIP text tower."""
        return [self.token_embedding, self.positional_embedding, self.transformer, self.ln_final,
                self.text_projection]

    def new_modules(self) -> list[nn.Module]:
        """Modules trained from scratch (CFSA messages, IFNS mix, temporal, prompt, privacy heads,
        and the input encoder's parameters if it has any)."""
        return self.visual.new_modules() + [self.temporal, self.prompt, self.heads, self.input_encoder]

    def new_parameter_names(self) -> set[str]:
        """State-dict names of the parameters of :meth:`new_modules`."""
        ids = {id(p) for m in self.new_modules() for p in m.parameters()}
        return {name for name, p in self.named_parameters() if id(p) in ids}

    def freezable_parts(self) -> dict[str, list[nn.Parameter]]:
        """The parameters of each part :meth:`freeze` can stop (names of :data:`FREEZABLE`)."""
        new = {id(p) for m in self.visual.new_modules() for p in m.parameters()}
        text = [p for part in self.text_modules()
                for p in ([part] if isinstance(part, nn.Parameter) else part.parameters())]
        return {"text": text, "visual": [p for p in self.visual.parameters() if id(p) not in new],
                "logit_scale": [self.logit_scale], "temporal": list(self.temporal.parameters()),
                "prompt": list(self.prompt.parameters()), "heads": list(self.heads.parameters())}

    def freeze(self, parts: Sequence[str]) -> None:
        """Stops gradients of parts of the model (they keep their pretrained or initial values).

        Args:
            parts: any of ``text`` (the CLIP text tower), ``visual`` (the CLIP vision tower, not
                the IFNS mix nor the CFSA message layers), ``logit_scale``, ``temporal`` (the
                temporal fusion), ``prompt`` (the video prompt), ``heads`` (the privacy heads).
                The original release's ``FIX_TEXT`` freezes text, logit_scale, temporal and heads.
        """
        unknown = set(parts) - set(FREEZABLE)
        if unknown:
            raise ValueError(f"cannot freeze {sorted(unknown)}; parts are {FREEZABLE}")
        groups = self.freezable_parts()
        for part in parts:
            for p in groups[part]:
                p.requires_grad_(False)
        self.text_cache = None

    def no_weight_decay(self) -> set[str]:
        """Embedding-like parameters exempt from weight decay (and the input encoder's own)."""
        encoder = {f"input_encoder.{name}" for name in getattr(self.input_encoder, "no_weight_decay", set)()}
        return {"visual.class_embedding", "visual.positional_embedding", "token_embedding.weight",
                "positional_embedding", "logit_scale", "temporal.positional_embedding", "prompt.alpha"} | encoder

    @property
    def aux_loss_names(self) -> tuple[str, ...]:
        """Names of :meth:`aux_losses` (empty for input encoders without any)."""
        return tuple(getattr(self.input_encoder, "aux_loss_names", ()))

    def aux_losses(self) -> dict[str, Tensor]:
        """Weighted auxiliary training losses the input encoder computed in the last training
        forward (STPrivacy's keep-ratio loss), handed over once; {} for encoders without any."""
        take = getattr(self.input_encoder, "aux_losses", None)
        return take() if take is not None else {}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing per vision block (recomputed in backward)."""
        self.visual.transformer.grad_checkpointing = enable

    def set_attn_backend(self, backend: str) -> None:
        """Switches every attention of the model to ``backend`` (sdpa | math | triton)."""
        if backend not in BACKENDS:
            raise ValueError(f"attention backend {backend!r} is not one of {BACKENDS}")
        for module in self.modules():
            if isinstance(module, Attention):
                module.backend = backend

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` that also drops the cached class text features."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.text_cache = None
        return result

    # ------------------------------------------------------------------ encoders
    def encode_text(self, tokens: Tensor) -> Tensor:
        """CLIP text tower: tokens [K, C] -> features [K, E] (taken at the EOT token)."""
        x = self.token_embedding(tokens) + self.positional_embedding
        x = self.ln_final(self.transformer(x))  # [K, C, text_width]
        return x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)] @ self.text_projection

    def class_text_features(self) -> Tensor:
        """Text features of the class names [K, E]; cached while the text tower is frozen."""
        if any(p.requires_grad for p in self.transformer.parameters()):
            return self.encode_text(self.text_tokens)
        if self.text_cache is None:
            with torch.no_grad():
                self.text_cache = self.encode_text(self.text_tokens).float()
        return self.text_cache

    def _encode(self, clips: Tensor) -> tuple[Tensor, Tensor]:
        """clips [B, T, 3, H, W] -> (video feature [B, E], patch tokens [B, T, N, d])."""
        batch, frames = clips.shape[:2]
        cls, patches = self.visual(clips.flatten(0, 1), frames)
        video = self.temporal(cls.unflatten(0, (batch, frames)))
        return video, patches.unflatten(0, (batch, frames))

    def encode_video(self, frames: Tensor) -> Tensor:
        """frames (the input encoder's input) -> video feature [B, E] (not normalised)."""
        return self._encode(self.input_encoder(frames))[0]

    def forward(self, frames: Tensor, privacy_grad_scale: float = 1.0,
                mix: Callable[[Tensor], Tensor] | None = None,
                return_video: bool = False) -> tuple[Tensor, dict[str, Tensor]] | tuple[Tensor, dict[str, Tensor], Tensor]:
        """Action and privacy logits of a batch.

        Args:
            frames: the input encoder's input, uint8 ``[B, T, F, C, H, W]`` (see
                :mod:`models.encoders`); without an encoder the clips [B, T, 3, H, W].
            privacy_grad_scale: multiplies the gradient from the privacy heads into the encoder
                (negative = gradient reversal); the forward pass is unchanged.
            mix: applied to the encoded clips [B, T, 3, H, W] before the towers (a mixup/cutmix
                draw of the batch), or None.
            return_video: also return the normalised video feature [B, E] the privacy heads read.

        Returns:
            action logits [B, K], privacy logits ``{head: [B, C_h]}`` (and the video feature).
        """
        clips = self.input_encoder(frames)  # [B, T, 3, H, W]
        if mix is not None:
            clips = mix(clips)
        video, patches = self._encode(clips)
        text = self.class_text_features().to(video.dtype)
        text = text.unsqueeze(0).expand(video.shape[0], -1, -1)  # [B, K, E]
        text = text + self.prompt(text, patches)
        video = video / video.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        action = torch.einsum("be,bke->bk", video, self.logit_scale.exp() * text)
        privacy = self.heads(scale_grad(video, privacy_grad_scale))
        return (action, privacy, video) if return_video else (action, privacy)
