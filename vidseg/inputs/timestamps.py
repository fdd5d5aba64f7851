"""Display times of decoded video frames, chosen as FFmpeg's best-effort timestamp chooses them.

A decoder returns frames in display order, but the pts it attaches are not always display times: AVI files
whose B-frames are packed DivX-style into the frame before them (opencv-doc's Megamind.avi) come out of
FFmpeg with a pts that steps back every third frame. Label PNGs, stats lines and the overlay need one time
per frame that increases with the frames. So each frame gets its pts or its dts (which the decoder fills
in output order when it runs on one thread), whichever has stepped back less often so far, as libavcodec's
``guess_correct_pts`` does; unlike it, the choice for a frame also counts the next frame, so the first
step back already decides the frame before it instead of leaving two frames on one time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import av


def display_times(frames: Iterable[av.VideoFrame], step: int | None) -> Iterator[tuple[av.VideoFrame, int | None]]:
    """Each frame with its display time in its stream's time base, one frame behind the input. A frame
    without the chosen timestamp (the decoder's last, flushed ones have no dts) continues from the previous
    time by ``step``, the frame period in time-base units, when there is one."""
    faulty_pts = faulty_dts = 0
    last_pts: int | None = None
    last_dts: int | None = None
    last_time: int | None = None
    held: av.VideoFrame | None = None

    def time_of(frame: av.VideoFrame) -> int | None:
        preferred, other = (frame.dts, frame.pts) if faulty_pts > faulty_dts else (frame.pts, frame.dts)
        if preferred is not None:
            return preferred
        if last_time is not None and step:
            return last_time + step
        return other

    for frame in frames:
        if frame.pts is not None:
            faulty_pts += last_pts is not None and frame.pts <= last_pts
            last_pts = frame.pts
        if frame.dts is not None:
            faulty_dts += last_dts is not None and frame.dts <= last_dts
            last_dts = frame.dts
        if held is not None:
            last_time = time_of(held)
            yield held, last_time
        held = frame
    if held is not None:
        yield held, time_of(held)
