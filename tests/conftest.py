import sys
from pathlib import Path

import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
# Tests mirror the package's folders; the shared fixtures module (fakedata) lives here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
