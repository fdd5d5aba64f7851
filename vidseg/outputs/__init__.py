"""Where results go, each behind the one ``sink.Sink`` protocol: video files (``video``), overlay images
(``images``), label PNGs (``labels``), class shares (``stats``), network streams (``network``) and the live
preview (``preview``). ``writer`` groups the file sinks of one input, ``plan`` checks the paths first."""
