"""``python -m helpers.explain``: explain a folder of images (or another data source) from the shell."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..core.hooks import default_device
from ..core.images import ImageError
from ..core.models import WeightsUnavailableError, available_models, load_model
from .batches import ImageTransform
from .distributed import local_device
from .engine import BatchFailed, explain_dataset
from .scoring import METHOD_NAMES, METRIC_NAMES
from .store import ForeignRunError

EXAMPLES = """\
examples:
  python -m helpers.explain photos/ --methods Grad-CAM saliency random --out runs/photos
  python -m helpers.explain photos/ --model resnet50 --layer layer4 --batch-size 16 --device cuda
  python -m helpers.explain photos/ --model finetuned.pth --architecture resnet50 --max-images 200
  python -m helpers.explain birds/ --model birds.pth --architecture resnet18 --num-classes 200 --target label
  python -m helpers.explain generated:500 --model shapenet-shortcut --layer block5.act \
                            --methods Grad-CAM saliency random --metrics pointing energy deletion insertion
  torchrun --nproc_per_node=4 -m helpers.explain photos/ --device cuda --out runs/photos
                                    (one process per GPU, NCCL; rank 0 merges the parts)

The run writes OUT/metrics.parquet: one row per image and method (read it with pandas.read_parquet).
Run the same command again after an interruption and it resumes; a folder holding another run's
results is refused unless --overwrite.
"""


def image_folder(spec: str, preprocess):
    """A folder of class sub-folders (torchvision's ImageFolder layout), each image preprocessed for the model."""
    from torchvision.datasets import ImageFolder

    root = Path(spec)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder at {root}: give a folder of class sub-folders holding images "
                                "(torchvision's ImageFolder layout, e.g. photos/cats/1.jpg)")
    return ImageFolder(str(root), transform=ImageTransform(preprocess))


def generated_set(spec: str, preprocess):
    """Notebook 10's test images (``helpers.ground_truth.evaluation_scenes``), ``generated`` (its 500) or
    ``generated:N``; items ``(image, class, part masks)`` (:func:`helpers.ground_truth.ground_truth_data`), the
    deciding object's mask first, so ``pointing`` and ``energy`` score the maps against the object that decides
    the class."""
    from ..ground_truth.measures import evaluation_scenes, ground_truth_data

    if spec and not spec.isdigit():
        raise ValueError(f"generated:{spec}: give a number of images, e.g. generated:500")
    return ground_truth_data(*evaluation_scenes(*([int(spec)] if spec else [])))


def shape_model(kind: str):
    """Notebook 10's ShapeNet ``kind`` (``clean`` or ``shortcut``): its images are model input as they are."""
    def load(device):
        from ..core.images import Preprocess
        from ..ground_truth.shapenet import load_shape_model

        return load_shape_model(kind, device), Preprocess(64, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    return load


# Where images come from: "KIND[:SPEC]" on the command line, anything else a folder (ImageFolder layout).
DATA_SOURCES = {"folder": image_folder, "generated": generated_set}
# Models beyond load_model's names: NAME → f(device) → (model, preprocess).
MODEL_SOURCES = {"shapenet-clean": shape_model("clean"), "shapenet-shortcut": shape_model("shortcut")}


def open_data(text: str, preprocess):
    kind, _, spec = text.partition(":")
    if kind not in DATA_SOURCES or Path(text).exists():
        kind, spec = "folder", text
    try:
        return DATA_SOURCES[kind](spec, preprocess)
    except ModuleNotFoundError as error:  # a source whose helpers this copy of the course does not have
        raise ValueError(f"the data source {kind!r} needs {error.name}, which this copy of helpers lacks") from error


def state_dict_model(path: Path, architecture: str, num_classes: int | None, device):
    """``architecture`` with its last linear layer resized to ``num_classes`` outputs (if given), then the state
    dict at ``path`` (loaded with ``weights_only=True``)."""
    import torch

    model, preprocess = load_model(architecture, weights=None, device="cpu")
    if num_classes is not None:
        if num_classes < 1:
            raise ValueError(f"--num-classes must be at least 1, got {num_classes}")
        name, head = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, torch.nn.Linear(head.in_features, num_classes))
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        sizes = [tuple(v.shape) for v in state.values() if getattr(v, "ndim", 0) == 2] if isinstance(state, dict) else []
        hint = (f" Its last linear layer has {sizes[-1][0]} outputs: if that is its number of classes, add "
                f"--num-classes {sizes[-1][0]}." if sizes else "")
        raise ValueError(f"{path} is not a state dict of {architecture}"
                         f"{f' with {num_classes} classes' if num_classes else ''} ({str(error).splitlines()[0]})."
                         f"{hint} Name its model with --architecture.") from error
    return model.to(device).eval(), preprocess


def open_model(text: str, architecture: str, device, num_classes: int | None = None):
    """``(model, preprocess)`` from a model name or the path of a state dict for ``architecture`` (its head
    resized to ``num_classes``)."""
    if text in MODEL_SOURCES:
        try:
            return MODEL_SOURCES[text](device)
        except ModuleNotFoundError as error:
            raise ValueError(f"--model {text} needs {error.name}, which this copy of helpers lacks") from error
    if text in available_models():
        return load_model(text, device=device)
    if Path(text).is_file():
        return state_dict_model(Path(text), architecture, num_classes, device)
    raise ValueError(f"--model {text!r} is neither a model name ({', '.join([*MODEL_SOURCES, *available_models()])}) nor a file "
                     "(a state dict for --architecture)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m helpers.explain", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Explain every image of a data set with every method, score each map with every metric, "
                    "and write a table (Parquet) you can read with pandas. Resumable; several processes or GPUs "
                    "with torchrun.")
    p.add_argument("data", help="a folder of class sub-folders of images (torchvision ImageFolder layout), or "
                                "generated[:N]: notebook 10's test images with their object masks (use "
                                "--model shapenet-clean or shapenet-shortcut, and --metrics pointing energy …)")
    model = p.add_argument_group("model")
    model.add_argument("--model", default="efficientnet_lite0", metavar="NAME|PATH",
                       help="the course model (efficientnet_lite0, the default, with its ImageNet weights), a "
                            "torchvision name (resnet50, vgg16, …: downloads its weights once), notebook 10's "
                            "shapenet-clean or shapenet-shortcut, or the path of a state dict saved with "
                            "torch.save(model.state_dict(), path)")
    model.add_argument("--architecture", default="efficientnet_lite0", metavar="NAME",
                       help="the model a state dict given to --model belongs to (default: %(default)s)")
    model.add_argument("--num-classes", type=int, default=None, metavar="N",
                       help="the number of classes of a state dict given to --model, when its head is not "
                            "ImageNet's 1000 (a fine-tuned model): the architecture's last linear layer gets N outputs")
    model.add_argument("--layer", default=None, help="the layer CAM methods explain (default: head.act on the "
                                                     "course model, else the last spatial feature map)")
    what = p.add_argument_group("what to compute")
    what.add_argument("--methods", nargs="+", default=["Grad-CAM", "saliency", "random"], metavar="NAME",
                      choices=METHOD_NAMES, help=f"default: Grad-CAM saliency random; choose from: {', '.join(METHOD_NAMES)} "
                                                 "(quote names with a space)")
    what.add_argument("--metrics", nargs="*", default=["deletion", "insertion"], metavar="NAME",
                      choices=METRIC_NAMES, help=f"default: deletion insertion; choose from: {', '.join(METRIC_NAMES)} "
                                                 "(pointing and energy need masks); none: --metrics alone")
    what.add_argument("--target", default="predicted", metavar="predicted|label|CLASS",
                      help="the class to explain: the model's top class (default), the data set's label (an "
                           "ImageFolder's labels are folder numbers, not ImageNet classes), or one class index")
    what.add_argument("--max-images", type=int, default=None, metavar="N", help="only the first N images")
    what.add_argument("--seed", type=int, default=0, help="seeds the noise of SmoothGrad and of 'random'")
    out = p.add_argument_group("output")
    out.add_argument("--out", default="explanations", metavar="FOLDER", help="where to write (default: %(default)s)")
    out.add_argument("--save-maps", action="store_true", help="keep every map too (float16, lazily readable .npy)")
    out.add_argument("--map-size", type=int, default=56, metavar="PIXELS",
                     help="kept maps are averaged down to at most this side (default: %(default)s)")
    out.add_argument("--overwrite", action="store_true", help="delete another run's results in --out first")
    run = p.add_argument_group("running")
    run.add_argument("--batch-size", type=int, default=None, metavar="N",
                     help="images per batch (default: 8 on a CPU, 32 on a GPU)")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: $CNN_SEEING_DEVICE, else "
                                                    "cpu); under torchrun, cuda means each process's own GPU")
    run.add_argument("--workers", type=int, default=0, metavar="N", help="DataLoader worker processes that read and "
                                                                         "preprocess images (default: 0)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def target_option(text: str):
    if text in ("predicted", "label"):
        return text
    if text.isdigit():
        return int(text)
    raise ValueError(f"--target must be 'predicted', 'label' or a class index, got {text!r}")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        target = target_option(args.target)
        device = local_device(args.device) if args.device else default_device()
        model, preprocess = open_model(args.model, args.architecture, device, args.num_classes)
        data = open_data(args.data, preprocess)
        from torch.utils.data import DataLoader

        loader = DataLoader(data, batch_size=args.batch_size, num_workers=args.workers,
                            pin_memory=device.type == "cuda")
        table = explain_dataset(model, loader, args.methods, args.metrics, args.out, target=target,
                                layer=args.layer, value_range=preprocess.value_range, max_images=args.max_images,
                                save_maps=args.save_maps, map_size=args.map_size, overwrite=args.overwrite,
                                seed=args.seed, progress=False if args.no_progress else None)
    except (ForeignRunError, BatchFailed, WeightsUnavailableError, ImageError, FileNotFoundError, ValueError,
            TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank has the table; one prints it
        print(f"{table['index'].nunique()} images, {len(args.methods)} methods → {Path(args.out) / 'metrics.parquet'}")
        metrics = table.columns[table.columns.get_loc("probability") + 1:] if len(table) else []
        if len(metrics):
            print(table.groupby("method", sort=False)[metrics].mean().to_string(float_format="%.4f"))
    return 0
