"""The floor every method stands on: layers and hooks, targets, photos and models, maps and plots, batching and noise.
"""
from .frozen import explaining
from .hooks import (record, Recording, explaining, model_device, default_device, DEVICE_VARIABLE, check_batch,
                    check_finite, require_autograd)
from .images import (DATA_DIR, SAMPLES, sample_names, load_image, Preprocess, imagenet_labels, find_classes, top_k,
                     TopK, ImageError, BoxedObject, load_boxes, boxed_sample_names)
from .layers import resolve_layer, explainable_layers, LayerInfo, check_hookable, channels_last
from .maps import upsample, normalize, box_mask, box_shares
from .models import (EfficientNetLite0, load_model, available_models, resolve_layer, explainable_layers, LayerInfo,
                     WeightsUnavailableError)
from .noise import (progress_bar, noise_sigma, noisy_chunks, check_sampling, default_batch_size, seeded, check_count,
                    batch_coupled_modules, rows_per_pass, row_chunks, batch_chunks)
from .plot import as_array, draw_boxes, draw_maps, overlay, show_grid, signed_scale
from .targets import Target, ClassIndices, target_scores, check_target, prepare_target, check_logits, LogitsOf

__all__ = ["explaining", "record", "Recording", "explaining", "model_device", "default_device", "DEVICE_VARIABLE",
           "check_batch", "check_finite", "require_autograd", "DATA_DIR", "SAMPLES", "sample_names", "load_image",
           "Preprocess", "imagenet_labels", "find_classes", "top_k", "TopK", "ImageError", "BoxedObject", "load_boxes",
           "boxed_sample_names", "resolve_layer", "explainable_layers", "LayerInfo", "check_hookable", "channels_last",
           "upsample", "normalize", "box_mask", "box_shares", "EfficientNetLite0", "load_model", "available_models",
           "resolve_layer", "explainable_layers", "LayerInfo", "WeightsUnavailableError", "progress_bar", "noise_sigma",
           "noisy_chunks", "check_sampling", "default_batch_size", "seeded", "check_count", "batch_coupled_modules",
           "rows_per_pass", "row_chunks", "batch_chunks", "as_array", "draw_boxes", "draw_maps", "overlay", "show_grid",
           "signed_scale", "Target", "ClassIndices", "target_scores", "check_target", "prepare_target", "check_logits",
           "LogitsOf"]
