"""Reuse of work between video frames (``vidseg process --reuse``): an opt-in approximation.

Most 16x16 patches of a video frame look as they did in the previous one. With reuse on, each window keeps
the state of its last run (every transformer block's keys and values, the decoder's patch outputs) and the
next frame recomputes only the tokens whose pixels changed by more than a threshold since they were last
computed (``policy``); the others keep their cached values (``model`` runs the converter's token-reuse IR).
Every frame still gets its own logits, stitched and rendered like the exact path's. A full recompute
bounds drift: the first frame, every ``refresh`` frames, when a large share of the frame changed (cuts,
camera moves) or a geometry change. Frames left out between two (live drops, a sampled fps) change
nothing: a patch is compared with the pixels it was last computed from.
"""

from vidseg.runs.reuse.policy import ReusePolicy

__all__ = ["ReusePolicy"]
