from .calibration import *  # noqa: F401,F403
from .calibration_builder import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
