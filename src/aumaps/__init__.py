"""aumaps: joint facial Action Unit intensity estimation and localisation by heatmap regression."""

__version__ = "0.1.0"
