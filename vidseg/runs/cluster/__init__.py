"""Running a job on a Ray cluster: the outputs of a local run, with the work spread over nodes.

    connect.py  joins the cluster and says how many tasks run at once
    units.py    splits the inputs into work units: videos at keyframes, so each segment decodes on its own
    worker.py   what a Ray task runs on a node: labels one unit and writes its outputs
    pieces.py   where a video's segments wait, and how they are joined into the final files
    job.py      the driver: plans, keeps the cluster busy, tracks, joins; decodes and encodes nothing

Ray is an optional extra (``vidseg[ray]``); nothing here imports it until a run asks for a cluster.
"""
