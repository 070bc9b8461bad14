"""The explanation methods, one module per family: class activation maps (cam, cam_variants), gradients (saliency,
SmoothGrad, Integrated Gradients), perturbation (Score-CAM, Ablation-CAM, Occlusion) and features (activation
maximisation, Deep Dream).
"""
from .cam import (cam, cam_head, CamHead, CamHeadError, grad_cam, grad_cam_pp, smooth_grad_cam_pp, guided_backprop,
                  guided_grad_cam, guided_relus, LayerPass, GUIDED_ACTIVATIONS)
from .cam_variants import hires_cam, xgrad_cam, layer_cam, eigen_cam, GRADIENT_VARIANTS
from .features import Ascent, filter_activations, maximize_activation, deep_dream, FourierImage, OBJECTIVES
from .gradients import (input_gradients, saliency, reduce_channels, REDUCTIONS, gradient_moments, smooth_grad, VARIANTS,
                        quadrature, RULES, make_baselines, BASELINES, integrated_gradients, IGResult)
from .perturbation import score_cam, ablation_cam, occlusion, PERTURBATION_METHODS
from .prefix import recording_prefix, run_suffix

__all__ = ["cam", "cam_head", "CamHead", "CamHeadError", "grad_cam", "grad_cam_pp", "smooth_grad_cam_pp",
           "guided_backprop", "guided_grad_cam", "guided_relus", "LayerPass", "GUIDED_ACTIVATIONS", "hires_cam",
           "xgrad_cam", "layer_cam", "eigen_cam", "GRADIENT_VARIANTS", "Ascent", "filter_activations",
           "maximize_activation", "deep_dream", "FourierImage", "OBJECTIVES", "input_gradients", "saliency",
           "reduce_channels", "REDUCTIONS", "gradient_moments", "smooth_grad", "VARIANTS", "quadrature", "RULES",
           "make_baselines", "BASELINES", "integrated_gradients", "IGResult", "score_cam", "ablation_cam", "occlusion",
           "PERTURBATION_METHODS", "recording_prefix", "run_suffix"]
