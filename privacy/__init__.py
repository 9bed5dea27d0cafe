"""Privacy attacks beside the library: the attacker split and fresh attackers. The attack tool
(tools/privacy_attack.py) reads its data through ``datasets.build_datasets``."""
from privacy.attackers import (CPU, FEATURE_ATTACKERS, FRAME_ATTACKERS, AttackError, build_attacker,
                               group_slices, topk_accuracy, train_attacker, video_probabilities)
from privacy.metrics import attribute_report, attribute_summary
from privacy.split import Split, split_for_attacker
from privacy.video_attackers import VIDEO_ATTACKERS

__all__ = ["CPU", "FEATURE_ATTACKERS", "FRAME_ATTACKERS", "AttackError", "Split", "attribute_report",
           "attribute_summary", "build_attacker", "group_slices",
           "split_for_attacker", "topk_accuracy", "train_attacker", "VIDEO_ATTACKERS", "video_probabilities"]
