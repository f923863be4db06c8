"""SegInversion (seed 002, section 3.2): invert a frozen segmentation model into images of the classes it knows."""
