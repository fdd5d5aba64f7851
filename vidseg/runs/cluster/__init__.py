"""Running a job on a Ray cluster: the same outputs as a local run, with inference spread over nodes.

    units.py    splits the inputs into work units: videos at keyframes, so each segment decodes on its own
    worker.py   what a Ray task runs on a node: labels one unit with a compiled model kept by the process
    stream.py   the driver: sends units to Ray, reads the input itself and pairs each frame with its labels

Ray is an optional extra (``vidseg[ray]``); nothing here imports it until a run asks for a cluster.
"""
