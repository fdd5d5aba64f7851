"""The model: the converted directory (``modeldir``), the evaluation protocol's geometry (``protocol``),
OpenVINO compiling and running windows (``engine``, the adapter), and stitching window logits back into
one label map (``stitch``)."""
