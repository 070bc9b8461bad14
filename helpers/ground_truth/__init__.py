"""A world whose reasons are known (notebook 10): the generated scenes, the small ShapeNet trained on them, and
explanations scored against reliance measured by intervention.
"""
from .measures import (Reliance, part_reliance, check_part_maps, part_mass, on_grid, object_share, rank_agreement,
                       pointing_hits, centre_hits, bootstrap_means, winner, FIGURES, REFERENCES, GroundTruthScores,
                       SCORING, ground_truth_data, part_masses, score_explanations, pointing_baselines, CONTRAST,
                       class_contrast, TEST_SET, evaluation_scenes, cached_scores)
from .shapenet import (ShapeNet, WORLDS, WEIGHTS, TRAINING, TRAINING_LOG, TrainingLog, make_world, train,
                       load_shape_model, accuracy, held_out_accuracy, training_log)
from .world import SHAPES, DISTRACTOR_SHAPES, PARTS, SPLITS, MIN_SIZE, Scene, PartMasks, World, photo_bank

__all__ = ["Reliance", "part_reliance", "check_part_maps", "part_mass", "on_grid", "object_share", "rank_agreement",
           "pointing_hits", "centre_hits", "bootstrap_means", "winner", "FIGURES", "REFERENCES", "GroundTruthScores",
           "SCORING", "ground_truth_data", "part_masses", "score_explanations", "pointing_baselines", "CONTRAST",
           "class_contrast", "TEST_SET", "evaluation_scenes", "cached_scores", "ShapeNet", "WORLDS", "WEIGHTS",
           "TRAINING", "TRAINING_LOG", "TrainingLog", "make_world", "train", "load_shape_model", "accuracy",
           "held_out_accuracy", "training_log", "SHAPES", "DISTRACTOR_SHAPES", "PARTS", "SPLITS", "MIN_SIZE", "Scene",
           "PartMasks", "World", "photo_bank"]
