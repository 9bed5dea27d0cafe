"""The defaults of every config key, each commented where it is set (``utils.config`` merges the
experiment files over them and validates the result)."""
from __future__ import annotations

from yacs.config import CfgNode as CN

_C = CN()  # the defaults tree; utils.config.get_defaults() hands out copies
_C.BASE = [""]  # YAML files (relative to this file) merged before this one, in order

# ----------------------------------------------------------------------------- data
_C.DATA = CN()
# dataset: ntu60 | ntu120 (NTU naming SsssCcccPpppRrrrAaaa) | pku (P3AR-PKU naming
# SsssPpppRrrrUuuuVvvvWwwwXxxxYyyyAaaa, with five appearance attributes)
_C.DATA.DATASET = "ntu120"
_C.DATA.BENCHMARK = "xset"  # split rule: xsub | xset (ntu120) ; xsub | xview (ntu60) ; xset (pku)
_C.DATA.ROOT = ""  # folder of the clips (videos or frame folders, see LAYOUT); "" = synthetic cache
_C.DATA.LAYOUT = "frames"  # storage: video | frames | precomputed | packed
_C.DATA.VIDEO_EXT = ".mp4"  # file extension of videos when LAYOUT is video
# video decoder: auto (decord, opencv where decord fails) | decord | opencv | luma. decord and
# opencv give the same frames; opencv decoded the synthetic clips 2.1x faster per worker. luma:
# opencv without the colour conversion for gray frames (the decoder's luma plane, about 2x faster
# again; gray within a few levels of the colour path's; its levels, limited or full range, are
# fitted once per folder and codec: keep one encoding per folder; see datasets/video.py)
_C.DATA.VIDEO_BACKEND = "auto"
_C.DATA.FD_ROOT = ""  # precomputed layout: folder of fd/<sample>/<i>.jpg frame differences
_C.DATA.AVG_ROOT = ""  # precomputed layout: folder of avg/<sample>/<i>.jpg temporal averages
_C.DATA.PACKED_ROOT = ""  # packed layout: folder written by tools/pack_dataset.py
_C.DATA.TRAIN_FILE = ""  # optional split list (one sample name per line); "" = benchmark rule
_C.DATA.VAL_FILE = ""  # optional split list for validation; "" = benchmark rule
_C.DATA.LABEL_LIST = "labels/ntu120_label_name.txt"  # class names, one per line, relative to project
_C.DATA.NUM_CLASSES = 120  # action classes K (first K names of LABEL_LIST)
_C.DATA.NUM_FRAMES = 8  # sampled frames T per clip
_C.DATA.FD_STRIDE = 4  # IFNS frame-difference stride k (fd(t) = |g(t) - g(t-k)|)
_C.DATA.INPUT_SIZE = 224  # square crop fed to the model (pixels)
# per-plane (fd(t-1), fd(t), avg(t)) mean and std on the 0..1 gray scale; both empty = CLIP's
# normalisation (for CLIP weights). From-scratch models want the dataset's statistics
# (tools/plane_stats.py prints them).
_C.DATA.PLANE_MEAN = []
_C.DATA.PLANE_STD = []
# True: workers return the decoded gray frames uncropped and the device maps the luma levels,
# crops, resizes, flips and jitters them before the input encoder (bilinear; frames must shrink
# less than 2x to INPUT_SIZE: for videos or packed stores near the input size, e.g. pack_dataset
# --short-side; gray encoders only). False: workers crop (OpenCV)
_C.DATA.CROP_ON_DEVICE = False
_C.DATA.NUM_WORKERS = 4  # data-loader worker processes per rank
_C.DATA.PIN_MEMORY = True  # pin host memory for faster host-to-device copies (GPU only)
_C.DATA.SKIP_BAD = False  # True: skip and count unreadable samples; False: stop with an error
_C.DATA.SYNTHETIC = CN()
_C.DATA.SYNTHETIC.ENABLED = False  # generate the synthetic set into the cache when missing (pku: P3AR-PKU)
_C.DATA.SYNTHETIC.CACHE = ""  # cache folder; "" = $LPS_HAR_CACHE or ~/.cache/lps_har
_C.DATA.SYNTHETIC.SEED = 0  # generator seed (same seed, same bytes)
_C.DATA.SYNTHETIC.SIZE = 32  # frame side in pixels
_C.DATA.SYNTHETIC.NUM_FRAMES = 24  # frames per synthetic clip
_C.DATA.SYNTHETIC.NUM_ACTIONS = 10  # actions (motions)
_C.DATA.SYNTHETIC.NUM_PERFORMERS = 10  # identities (appearances; pku: people)
_C.DATA.SYNTHETIC.NUM_SETUPS = 4  # setups (background / lighting); even = train under xset (pku: 1-2)
_C.DATA.SYNTHETIC.NUM_CAMERAS = 2  # cameras (viewpoints; pku: 1-3)
_C.DATA.SYNTHETIC.NUM_REPLICATIONS = 2  # per (setup, camera, performer, action); pku: 1 (no R in names)
_C.DATA.SYNTHETIC.LPS_LEVEL = 2  # privacy level of the degraded copy (1..3; the film's layers)
_C.DATA.SYNTHETIC.SOURCE = "lps"  # which copy the model reads: lps | raw
_C.DATA.SYNTHETIC.DEVICE = "film"  # camera of the degraded copy: film | lensless | coded_aperture (datasets/optics.py)

# ----------------------------------------------------------------------------- LPS simulation
_C.LPS = CN()
_C.LPS.LEVEL = 0  # on-the-fly privacy-camera simulation applied by the loader (0 = off; data is already degraded)
# the simulated camera (datasets/optics.py): film (LEVEL = layers of LPS film) | lensless (a
# DiffuserCam-like random diffuser) | coded_aperture (a random binary mask, transmittance 0.5);
# for the two others LEVEL 1..3 sets the PSF's extent, 1/8, 1/4, 1/2 of the frame side
_C.LPS.DEVICE = "film"

# ----------------------------------------------------------------------------- selective privacy preservation
# Ilic et al., CVPR 2024 (datasets/spp.py, docs/privacy.md): privacy templates matched on dense DINO
# features select what to hide; motion-consistent noise replaces it (after LPS.LEVEL's film)
_C.SPP = CN()
_C.SPP.ENABLED = False  # obfuscate the source frames (train, test and the privacy attacks)
_C.SPP.WEIGHTS = ""  # local DINO ViT weights of SPP.ARCH (nothing is downloaded), e.g. dino_deitsmall8_pretrain.pth
_C.SPP.TEMPLATES = ""  # privacy templates: a saved tensor [D] or [K, D] (tools/make_spp_template.py)
_C.SPP.ARCH = "vit_small_patch8_224.dino"  # timm DINO ViT: vit_{small,base}_patch{8,16}_224.dino (release: S/8)
_C.SPP.STRIDE = 4  # patch stride in pixels, divides the patch (release: 4; the patch size is ~6x faster)
_C.SPP.INPUT_SIZE = 224  # short side of the frames fed to the ViT, in pixels (release: 224)
_C.SPP.LAYER = 11  # block whose facet gives the descriptors (0-based; release: 11, the last of S/B)
_C.SPP.FACET = "key"  # descriptor: key (the paper) | query | value | token
_C.SPP.COMBINE = "mean"  # saliency over templates: mean of the positive cosines (the paper) | max
_C.SPP.BLEND = "hard"  # hard: hide saliency >= THRESHOLD | soft: lerp(frame, noise, saliency) (the release)
_C.SPP.THRESHOLD = 0.5  # hard masks: saliency (0..1) from which a pixel is hidden (the paper sets none)
_C.SPP.NOISE = "first_frame"  # first_frame (the release) | continuous (carried along the flow) | iid (ablation)
_C.SPP.NOISE_COLOR = True  # independent noise per RGB channel (the release); False: gray noise
_C.SPP.DEVICE = "cpu"  # where the ViT runs: cpu (in the loader workers) | cuda (needs DATA.NUM_WORKERS 0)

# ----------------------------------------------------------------------------- model
_C.MODEL = CN()
CUSTOM_ARCH = "custom"  # MODEL.ARCH of the MODEL.CUSTOM sizes
_C.MODEL.ARCH = "ViT-B/32"  # ViT-B/32 | ViT-B/16 | ViT-L/14 | ViT-L/14-336 | custom
_C.MODEL.PRETRAINED = ""  # OpenAI CLIP / open_clip / original-release file; "none" = random init
_C.MODEL.ALLOW_PICKLE = False  # opt-in: unpickle original-release checkpoints (runs code from the file)
_C.MODEL.RESUME = ""  # checkpoint to resume from: a path, "auto" (newest in OUTPUT) or ""
_C.MODEL.ENCODER = "ifns"  # input encoder: ifns (MSPNet) | rgb | downsample | bdq | stprivacy
_C.MODEL.DOWNSAMPLE_SIZE = 16  # side of the low-resolution input for ENCODER downsample
# ENCODER stprivacy (models/stprivacy.py; docs/privacy.md): tubelet tokens, learned selection,
# anonymisation blocks, pixels back; DATA.NUM_FRAMES must be even (tubelets of 2 frames)
_C.MODEL.STPRIVACY = CN()
_C.MODEL.STPRIVACY.PATCH = 16  # tubelet side P in pixels (2 x 16 x 16 tubelets, the paper's); divides DATA.INPUT_SIZE
_C.MODEL.STPRIVACY.WIDTH = 64  # token width of its transformer (a multiple of 64)
_C.MODEL.STPRIVACY.LAYERS = 4  # its transformer blocks; those from the last selection on anonymise
# blocks before which a keep predictor selects tokens (DynamicViT's [3, 6, 9] of 12, scaled to 4)
_C.MODEL.STPRIVACY.PRUNE_LAYERS = [1, 2, 3]
# fraction of tubelets kept after the last selection (exactly round(KEEP_RATIO * S) of the S
# tubelets of each 2-frame slice at test); may be changed at test time (--only_test --opts ...)
_C.MODEL.STPRIVACY.KEEP_RATIO = 0.7
_C.MODEL.STPRIVACY.RATIO_WEIGHT = 2.0  # weight of the keep-ratio loss (DynamicViT's 2.0)
_C.MODEL.ATTN_BACKEND = "sdpa"  # attention kernels: sdpa | triton | math (reference)
_C.MODEL.DROP_PATH_RATE = 0.0  # stochastic depth at the last vision block (linear over depth)
_C.MODEL.TEMPORAL_LAYERS = 1  # temporal fusion transformer blocks
_C.MODEL.PROMPT_LAYERS = 2  # video-specific prompt decoder layers
_C.MODEL.PROMPT_ALPHA = 0.1  # initial per-dimension scale of the prompt added to text features
# parts kept frozen (at their pretrained or initial values): any of text (the CLIP text tower),
# visual (the CLIP vision tower, not the IFNS mix nor the CFSA message layers), logit_scale,
# temporal, prompt, heads (the privacy heads). The original release's FIX_TEXT is
# [text, logit_scale, temporal, heads] (see configs/NTU/NTU120_XSet.yaml)
_C.MODEL.FREEZE = []
# privacy heads on the normalised video feature, one Linear each: labels of the sample names
# (identity; pku also gender, hairstyle, glasses, upper, lower), with their class counts
# (NTU120: 106 performers, NTU60: 40; pku: identity 22, gender 2, hairstyle 5, glasses 2,
# upper 9, lower 12); [] = none
_C.MODEL.PRIVACY_HEADS = ["identity"]
_C.MODEL.PRIVACY_CLASSES = [106]  # classes of each MODEL.PRIVACY_HEADS entry, in its order
_C.MODEL.CUSTOM = CN()  # sizes used when ARCH is custom (demo, tests)
_C.MODEL.CUSTOM.WIDTH = 64  # vision width d
_C.MODEL.CUSTOM.LAYERS = 2  # vision transformer blocks
_C.MODEL.CUSTOM.PATCH_SIZE = 4  # patch side in pixels
_C.MODEL.CUSTOM.EMBED_DIM = 64  # joint embedding width E
_C.MODEL.CUSTOM.TEXT_WIDTH = 64  # text transformer width
_C.MODEL.CUSTOM.TEXT_LAYERS = 2  # text transformer blocks
_C.MODEL.CUSTOM.CONTEXT_LENGTH = 77  # text tokens (CLIP BPE)

# ----------------------------------------------------------------------------- training
_C.TRAIN = CN()
_C.TRAIN.EPOCHS = 30  # training epochs
_C.TRAIN.WARMUP_EPOCHS = 5  # linear warmup length (epochs, counted in optimizer steps)
_C.TRAIN.LR = 8.0e-6  # base learning rate (CLIP towers); new modules get LR * NEW_MODULE_LR_MULT
_C.TRAIN.NEW_MODULE_LR_MULT = 10.0  # LR multiplier of modules trained from scratch
_C.TRAIN.MIN_LR_RATIO = 0.01  # cosine schedule floor as a fraction of the peak LR
_C.TRAIN.WARMUP_LR_RATIO = 0.0  # warmup start as a fraction of the peak LR
_C.TRAIN.WEIGHT_DECAY = 0.001  # AdamW decoupled weight decay (not on 1-D params or embeddings)
_C.TRAIN.BETAS = [0.9, 0.98]  # AdamW betas
_C.TRAIN.EPS = 1.0e-8  # AdamW epsilon
_C.TRAIN.BATCH_SIZE = 8  # clips per micro-batch per GPU
_C.TRAIN.ACCUMULATION_STEPS = 1  # micro-batches per optimizer step
_C.TRAIN.CLIP_GRAD = 0.0  # max gradient norm (0 = no clipping)
_C.TRAIN.PRECISION = "fp32"  # fp32 | bf16 | fp16 (torch.amp autocast; fp16 adds a grad scaler)
_C.TRAIN.OPT_LEVEL = ""  # original apex level O0/O1/O2, mapped onto PRECISION when set
_C.TRAIN.USE_CHECKPOINT = False  # activation checkpointing in the vision blocks (saves memory)
_C.TRAIN.COMPILE = False  # torch.compile the model
# privacy term over every head: aux (+ sum w*CE) | adversarial (gradient reversal) | none (heads
# train as probes, the encoder gets no gradient from them)
_C.TRAIN.PRIVACY_LOSS = "aux"
_C.TRAIN.PRIVACY_WEIGHTS = [1.0]  # weight w of each MODEL.PRIVACY_HEADS entry's cross-entropy
_C.TRAIN.ADV_STEPS = 1  # adversarial: privacy-head updates per encoder update (BDQ alternation)
_C.TRAIN.AUTO_RESUME = False  # resume from the newest checkpoint in OUTPUT when one exists
_C.TRAIN.MAX_NONFINITE = 10  # non-finite losses tolerated (skipped under fp16 scaler) before stopping

# ----------------------------------------------------------------------------- augmentation
_C.AUG = CN()
_C.AUG.LABEL_SMOOTH = 0.1  # label smoothing of the action and identity targets
_C.AUG.COLOR_JITTER = 0.8  # probability of brightness/contrast jitter
_C.AUG.GRAY_SCALE = 0.2  # probability of gray-scale RGB frames (training; gray encoders: no-op)
_C.AUG.FLIP = True  # random horizontal flip in training
_C.AUG.SCALES = [1.0, 0.875, 0.75, 0.66]  # multi-scale crop side ratios
_C.AUG.MIXUP = 0.8  # mixup alpha (0 = off)
_C.AUG.CUTMIX = 1.0  # cutmix alpha (0 = off)
_C.AUG.MIXUP_SWITCH_PROB = 0.5  # probability of cutmix instead of mixup when both are on

# ----------------------------------------------------------------------------- testing
_C.TEST = CN()
_C.TEST.NUM_CLIP = 1  # temporal views per video
_C.TEST.NUM_CROP = 1  # spatial views per video: 1 (center) or 3 (along the long side)
_C.TEST.ONLY_TEST = False  # evaluate the resumed/pretrained model and exit
_C.TEST.BATCH_SIZE = 8  # videos per evaluation batch per GPU

# ----------------------------------------------------------------------------- run
_C.OUTPUT = "output/demo"  # run folder: config.yaml, log.txt, events, checkpoints, metrics.json
_C.SEED = 1024  # global seed (each rank adds its rank)
_C.SAVE_FREQ = 1  # save ckpt_epoch_N.pth every N epochs (last.pth and best.pth always)
_C.SAVE_KEEP = 0  # keep the newest N periodic ckpt_epoch_N.pth files, delete older ones (0 keeps all)
_C.PRINT_FREQ = 20  # progress line every N optimizer steps
_C.EVAL_FREQ = 1  # evaluate every N epochs (and after the last)
_C.DISTRIBUTED = False  # set by the launcher's environment / --distributed
