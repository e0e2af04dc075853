"""Distiller: a smaller student model learns from the trained (teacher) model."""

from components.distiller.component import Distiller

__all__ = ["Distiller"]
