"""How explanations are judged (notebook 08): deletion and insertion curves, the randomisation cascade, the pointing
game, every method on one photo, and the ranking with intervals.
"""
from .compare import METHODS, LAYER_METHODS, method_maps, score_cam_channels, Scores, score_maps
from .curves import (Curve, CURVES, ORDERS, METRIC_BASELINES, check_maps, pixel_ranks, stage_counts, metric_baseline,
                     random_maps, perturbation_curve, stage_images, deletion, insertion)
from .pointing import (PointingResult, check_boxes, box_masks, pointing_game, energy_pointing_game, energy_share,
                       peak_in_mask)
from .ranking import identical_groups, holm, ranking_table, pairwise_table, edge_maps
from .sanity import CascadeResult, cascade_layers, randomise, map_similarity, randomisation_cascade

__all__ = ["METHODS", "LAYER_METHODS", "method_maps", "score_cam_channels", "Scores", "score_maps", "Curve", "CURVES",
           "ORDERS", "METRIC_BASELINES", "check_maps", "pixel_ranks", "stage_counts", "metric_baseline", "random_maps",
           "perturbation_curve", "stage_images", "deletion", "insertion", "PointingResult", "check_boxes", "box_masks",
           "pointing_game", "energy_pointing_game", "energy_share", "peak_in_mask", "identical_groups", "holm",
           "ranking_table", "pairwise_table", "edge_maps", "CascadeResult", "cascade_layers", "randomise",
           "map_similarity", "randomisation_cascade"]
