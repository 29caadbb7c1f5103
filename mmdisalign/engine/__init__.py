from .hooks import *  # noqa: F401,F403
from .stage2_fastpath import *  # noqa: F401,F403
