"""Scaling laws (handout A3; spec/scaling.py): IsoFLOP minima and power laws (Chinchilla's approach 2), the parametric
loss law with its compute-optimal frontier (approach 3), percentile-bootstrap intervals."""

from impl.scaling.bootstrap import bootstrap_intervals
from impl.scaling.isoflops import fit_power_law, isoflop_minima
from impl.scaling.loss_law import fit_loss_law, loss_law_optimum

__all__ = ["isoflop_minima", "fit_power_law", "fit_loss_law", "loss_law_optimum", "bootstrap_intervals"]
