"""Interactive explorers for the notebooks, built on the pure functions of ``helpers``."""
from .cam import CamExplorer, GradCamExplorer, GradCamPPExplorer
from .cam_variants import CamVariantsExplorer
from .common import ClassMapExplorer, ClassPicker, Explorer, ImagePicker, figure_png
from .compare import ComparisonExplorer
from .features import FeatureExplorer
from .gradients import IntegratedGradientsExplorer, SaliencyExplorer, SmoothGradExplorer
from .ground_truth import GroundTruthExplorer
from .predictions import PredictionExplorer
