from components.drift_skew_gate.component import DriftReport, DriftSkewGate

__all__ = ["DriftReport", "DriftSkewGate"]
