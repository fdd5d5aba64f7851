"""Runs: a source's frames through the model as a ``stream.Stream`` of labelled frames, in input order. Here
(``local``), reusing work between frames (``reuse``) or on a Ray cluster (``cluster``); ``loop`` hands every
frame of a stream to the outputs."""
