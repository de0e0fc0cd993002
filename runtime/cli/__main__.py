"""``python -m dnne.runtime.cli``: the ``dnne`` command."""
from __future__ import annotations

import sys

from .main import console

sys.exit(console())
