"""Text encoders behind one contract (base.py): what places memories and finds them again."""
