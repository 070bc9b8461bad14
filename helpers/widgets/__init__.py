"""Interactive explorers for the notebooks, built on the pure functions of ``helpers``."""
from .common import ClassMapExplorer, ClassPicker, Explorer, ImagePicker, figure_png
from .predictions import PredictionExplorer
from .features import FeatureExplorer
from .gradients import IntegratedGradientsExplorer, SaliencyExplorer, SmoothGradExplorer
from .cam import CamExplorer, GradCamExplorer, GradCamPPExplorer
from .compare import ComparisonExplorer
from .cam_variants import CamVariantsExplorer
from .ground_truth import GroundTruthExplorer
