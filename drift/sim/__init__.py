"""The RF world simulator: a scenario (emitters, nodes, propagation, clocks) and what each
node receives, as a deterministic function of absolute time."""

from .scenario import Scenario, ScenarioError, load_scenario  # noqa: F401
