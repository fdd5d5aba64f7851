"""What a run did: counts, failures and time per stage, for the end-of-run screen and ``--summary``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any

STAGES = ("decode", "preprocess", "inference", "stitch", "render", "write")


@dataclass
class Summary:
    """What a run did: frames in and out, what was skipped and why, time per stage (``--summary``).

    >>> frames = seg.stream(video_path, max_frames=2)
    >>> _ = list(frames)
    >>> frames.summary.frames_out, frames.summary.skipped, "stage_ms_per_frame" in frames.summary.to_dict()
    (2, 0, True)
    """

    source: str
    device: str
    execution_devices: list[str]
    nireq: int
    cpu_streams: int = 0  # CPU inference streams (0: not on the CPU alone, or a cluster)
    stream_note: str | None = None  # why the run settled for one CPU stream, if it did (see engine.Engine)
    frames_in: int = 0  # read from the input (including unreadable images)
    frames_out: int = 0  # segmented and written
    resumed: int = 0  # --resume: outputs already complete
    dropped: int = 0  # live input: frames dropped to keep up
    undecoded: int = 0  # of those, left undecoded while the stream took keyframes only (runs/intake.py)
    sampled_out: int = 0  # frames left out to keep to the stream's fps (Segmenter.stream(fps=...))
    decode_errors: int = 0  # damaged packets/frames skipped
    gaps: int = 0  # live input: reconnections
    approximate_blocks: int = 0  # see stitch.Stitcher
    interrupted: bool = False
    audio_skipped: str | None = None
    wall_s: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # collections: counts per input file
    cluster: dict[str, Any] = field(default_factory=dict)  # --ray: the cluster, units, seconds inside tasks
    reuse: dict[str, Any] = field(default_factory=dict)  # --reuse: the policy and how much was computed
    live_outputs: list[dict[str, Any]] = field(default_factory=list)  # --preview, -o URL: what each did
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    stage_n: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_time(self, stage: str, seconds: float, frames: int = 1) -> None:
        with self._lock:
            self.stage_s[stage] += seconds
            self.stage_n[stage] += frames

    def fail(self, item: str, reason: str, input_name: str | None = None) -> None:
        with self._lock:
            self.failures.append({"input": item, "error": reason})
            if input_name is not None:
                self._entry(input_name)["error"] = reason

    def count(self, input_name: str | None, what: str, n: int = 1) -> None:
        """Per-input counts, kept only for collections (frames of a single input have no input name)."""
        if input_name is not None:
            with self._lock:
                entry = self._entry(input_name)
                entry[what] = entry.get(what, 0) + n

    def _entry(self, input_name: str) -> dict[str, Any]:
        return self.inputs.setdefault(input_name, {"frames_in": 0, "frames_out": 0, "decode_errors": 0})

    @property
    def skipped(self) -> int:
        return len(self.failures) + self.dropped + self.decode_errors

    @property
    def fps(self) -> float:
        return self.frames_out / self.wall_s if self.wall_s > 0 else 0.0

    def stage_ms(self) -> dict[str, float]:
        """Mean milliseconds per frame in each stage: CPU time of the stage's own thread (what it costs the
        model, which shares the cores), except inference: latency from submit to the last window back."""
        return {s: round(1000 * self.stage_s[s] / self.stage_n[s], 2) if self.stage_n[s] else 0.0 for s in STAGES}

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)
             if f.name not in ("_lock", "stage_s", "stage_n")}
        d.update(skipped=self.skipped, fps=round(self.fps, 3), wall_s=round(self.wall_s, 3),
                 stage_ms_per_frame=self.stage_ms(), inputs=[{"input": k, **v} for k, v in self.inputs.items()])
        return d

    def report(self) -> str:
        devices = ",".join(self.execution_devices)
        lines = [
            f"frames: {self.frames_in} in, {self.frames_out} out, {self.skipped} skipped"
            + (f" ({self.resumed} already done)" if self.resumed else ""),
            f"time:   {self.wall_s:.1f} s, {self.fps:.2f} frames/s on {self.device} ({devices})"
            + ("" if self.cluster else f", {self.nireq} infer requests"),
            "stages: " + ", ".join(f"{k} {v:.1f}" for k, v in self.stage_ms().items() if self.stage_n[k])
            + " ms/frame (CPU; inference: latency)",
        ]
        if self.cluster:
            lines.append(f"cluster: {self.cluster['units']} units, {self.cluster['task_s']:.1f} s inside tasks")
        if self.reuse:
            r = self.reuse
            share = r["tokens_computed"] / r["tokens_total"] if r["tokens_total"] else 0.0
            lines.append(f"reuse:  {share:.1%} of tokens computed; {r['full_frames']} frames in full, "
                         f"{r['partial_frames']} partly, {r['windows_reused']} windows reused whole")
        for out in self.live_outputs:
            lines.append(f"preview: {out['preview']}, {out['cpu_s']:.1f} CPU s" if "preview" in out else
                         f"stream output {out['url']}: {out['sent']} frames sent, {out['dropped']} dropped, "
                         f"{out['reconnects']} reconnections")
        if self.decode_errors:
            lines.append(f"decode errors skipped: {self.decode_errors}")
        if self.dropped or self.gaps:
            lines.append(f"live: {self.dropped} frames dropped to keep up, {self.gaps} reconnections")
        if self.approximate_blocks:
            lines.append(f"labels: {self.approximate_blocks} pixel blocks had more live classes than the stitcher "
                         "evaluates; their labels are the best of those (see docs/design.md: The stitcher)")
        if self.audio_skipped:
            lines.append(f"audio: not copied ({self.audio_skipped})")
        for f in self.failures:
            lines.append(f"failed: {f['input']}: {f['error']}")
        if self.interrupted:
            lines.append("interrupted: outputs hold the frames finished before the stop")
        return "\n".join(lines)
