"""`abrnet train` with a study variant of `--window-share`: the windows are re-measured
every 100 steps, so each keeps holding the same share of its layer's held-out
pre-activations as the layer trains (docs/results.md, "--window-share").

    OMP_NUM_THREADS=1 python docs/results/tracking_window.py \
        train --recipe fashion-mnist --model mlp --window-share 0.2 --out runs/exp/track-mlp-s0

Why: `--window-share` measures each window once, when the binarize stage begins. By the
end of the MLP's runs the pre-activations had grown and the 0.2 windows held 0.06-0.08
of them (`window_shares.py`), while 1-bit PACT's learned windows still held 0.19-0.21.
"""

import sys

import abrnet.train.engine as engine
from abrnet.cli import main
from abrnet.schedule import BinarizationSchedule
from abrnet.stats import slopes_at_shares

EVERY = 100  # steps between measurements: a forward pass of the held-out batch each


class TrackingWindow(BinarizationSchedule):
    def after_step(self) -> None:
        super().after_step()
        if self.window_share and self.end and self.step_count % EVERY == 0:
            measured = slopes_at_shares(self.model, self.abrs, self.held_out, {"window": self.window_share})
            for name, got in measured.items():
                if got.get("window"):
                    self.window[name] = min(got["window"] / 2, self.max_slope)
            self._synced = None  # the windows changed: the next sync sets them


if __name__ == "__main__":
    engine.BinarizationSchedule = TrackingWindow
    sys.exit(main(sys.argv[1:]))
