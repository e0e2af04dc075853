"""On-device export: Transform's fitted preprocessing rebuilt with built-in ops in front of a
trained model, so TFLite and TF.js models take raw features exactly as the serving API does."""
