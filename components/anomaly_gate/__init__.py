from components.anomaly_gate.component import AnomalyGate

__all__ = ["AnomalyGate"]
