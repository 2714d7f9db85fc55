"""lpft-study: linear probing, fine-tuning and LP-FT under distribution shift, as a Ray Tune study."""
__version__ = "0.1.0"
