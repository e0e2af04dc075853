from components.drift_gate.component import DriftReport, DriftSkewGate

__all__ = ["DriftReport", "DriftSkewGate"]
