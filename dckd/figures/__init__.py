"""Figures drawn with OpenCV (already a dependency): visual comparisons and training curves."""
