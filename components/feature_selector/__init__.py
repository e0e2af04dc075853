from components.feature_selector.component import FeatureScores, FeatureSelector

__all__ = ["FeatureScores", "FeatureSelector"]
