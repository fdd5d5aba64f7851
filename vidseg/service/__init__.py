"""``vidseg serve``: many live streams in one process on one model (``service``), configured by a YAML file
(``config``), controlled and watched over HTTP (``http``: dashboard, API, ``metrics``)."""
