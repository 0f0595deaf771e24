"""Scripted callers and operators through the real flows, queue, RQ worker and case
database: a telephony adapter like Asterisk and Twilio, for trying scenarios."""

from simulator.simulation import ScenarioError, Simulation, load_scenario, simulate

__all__ = ["ScenarioError", "Simulation", "load_scenario", "simulate"]
