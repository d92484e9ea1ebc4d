"""``cnnlab.utils``: PyTorch's ``torch.utils`` names (``cnnlab.utils.data``)."""
from . import data

__all__ = ["data"]
