"""Keras model code shared by the Trainer and Tuner module files and the model components."""
