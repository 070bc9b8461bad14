"""Checks for the notebooks' exercises, one module per chapter, on the machinery in common.
"""
from .cam import check_class_activation_map
from .cam_variants import check_layer_cam_map
from .common import ExerciseError, refuses, run_check
from .filters import check_channel_objective, check_dream_step
from .grad_cam import check_grad_cam_map
from .grad_cam_pp import check_grad_cam_pp_map
from .ground_truth import check_reliance_on, check_object_share
from .hooks import check_capture
from .integrated_gradients import check_integrated_gradients, check_expected_gradients
from .judging import check_deletion_masks, check_energy_share
from .saliency import check_saliency, check_gradient_times_input
from .smoothgrad import Cubic, check_smooth_grad, check_run_to_run_correlation

__all__ = ["check_class_activation_map", "check_layer_cam_map", "ExerciseError", "refuses", "run_check",
           "check_channel_objective", "check_dream_step", "check_grad_cam_map", "check_grad_cam_pp_map",
           "check_reliance_on", "check_object_share", "check_capture", "check_integrated_gradients",
           "check_expected_gradients", "check_deletion_masks", "check_energy_share", "check_saliency",
           "check_gradient_times_input", "Cubic", "check_smooth_grad", "check_run_to_run_correlation"]
