"""Helpers for the course "What does a CNN see?": models, photos, hooks, maps, plots and widgets.

The package is in folders by idea: core/ (layers, hooks, photos, models, maps), methods/ (one module per
family of methods, each reading like its formula), judging/ (notebook 08), ground_truth/ (notebook 10),
explain/ (a data set), widgets/, exercises/ and classroom/. The names a notebook needs are gathered here;
everything is batched and runs on the model's device.
"""
from .core.hooks import Recording, check_batch, check_finite, default_device, explaining, model_device, record
from .core.images import (DATA_DIR, BoxedObject, ImageError, Preprocess, TopK, boxed_sample_names, find_classes,
                          imagenet_labels, load_boxes, load_image, sample_names, top_k)
from .core.layers import LayerInfo, explainable_layers, resolve_layer
from .core.maps import box_shares, normalize, upsample
from .core.models import EfficientNetLite0, WeightsUnavailableError, available_models, load_model
from .core.noise import default_batch_size, noise_sigma, noisy_chunks, seeded
from .core.plot import as_array, draw_boxes, draw_maps, overlay, show_grid, signed_scale
from .core.targets import LogitsOf, check_logits, check_target, prepare_target, target_scores
from .judging.compare import LAYER_METHODS, METHODS, Scores, method_maps, score_maps
from .judging.curves import Curve, deletion, insertion, metric_baseline, perturbation_curve, pixel_ranks, random_maps
from .judging.pointing import PointingResult, box_masks, energy_pointing_game, pointing_game
from .judging.sanity import CascadeResult, cascade_layers, map_similarity, randomisation_cascade
from .methods.cam import (CamHead, CamHeadError, LayerPass, cam, cam_head, grad_cam, grad_cam_pp, guided_backprop,
                          guided_grad_cam, guided_relus, smooth_grad_cam_pp)
from .methods.cam_variants import GRADIENT_VARIANTS, eigen_cam, hires_cam, layer_cam, xgrad_cam
from .methods.features import Ascent, FourierImage, deep_dream, filter_activations, maximize_activation
from .methods.gradients import (IGResult, gradient_moments, input_gradients, integrated_gradients, make_baselines,
                                quadrature, reduce_channels, saliency, smooth_grad)
from .methods.perturbation import PERTURBATION_METHODS, ablation_cam, occlusion, score_cam


def __getattr__(name):  # explain_dataset & co. load pandas and pyarrow: only when first used (PEP 562)
    if name in ("explain_dataset", "load_maps", "ImageTransform"):
        from . import explain
        return getattr(explain, name)
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")
