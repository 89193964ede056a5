"""The embedded demo: teacher, then scratch / Logits KD / DCKD students, on scikit-image photos."""
