"""The built-in S1/S2 scene simulator: parcels with known shared, unique and synergistic truth."""

from eo_mmcl.simulate.config import SimulationConfig
from eo_mmcl.simulate.scene import LABEL_TASKS, SimulatedScene, simulate_scenes

__all__ = ["LABEL_TASKS", "SimulatedScene", "SimulationConfig", "simulate_scenes"]
