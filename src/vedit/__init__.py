"""vedit: a self-hostable implementation of the HappyHorse 1.0 video-edit API."""

from vedit.config import Settings

MODEL_NAME = "happyhorse-1.0-video-edit"
__version__ = "0.1.0"

__all__ = ["MODEL_NAME", "Settings", "__version__"]
