"""Privacy attacks beside the library: the attacker split and fresh attackers. The attack tool
(tools/privacy_attack.py) reads its data through ``datasets.build_datasets``."""
from privacy.attackers import (CPU, FEATURE_ATTACKERS, FRAME_ATTACKERS, AttackError, build_attacker,
                               topk_accuracy, train_attacker, video_probabilities)
from privacy.split import Split, split_by_replication

__all__ = ["CPU", "FEATURE_ATTACKERS", "FRAME_ATTACKERS", "AttackError", "Split", "build_attacker",
           "split_by_replication", "topk_accuracy", "train_attacker", "video_probabilities"]
