"""Episode videos of one environment: MP4 (imageio with its ffmpeg binary) or, on request, animated GIF (Pillow)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

FORMATS = ("mp4", "gif")


class EpisodeRecorder:
    """Collects the RGB frames of env 0 and writes ``episode-NNN.mp4`` (or ``.gif``) into ``directory`` when its
    episode ends; ``close()`` writes a partial episode (a stop in the middle of one) as ``episode-NNN-partial``.

    Args:
        directory: where the videos go (created).
        fps: frames per second of the written video.
        video_format: ``mp4`` or ``gif``.
    """

    def __init__(self, directory: str | Path, fps: float, video_format: str = "mp4") -> None:
        if video_format not in FORMATS:
            raise ValueError(f"video format must be one of {', '.join(FORMATS)}, got {video_format!r}")
        needed = ("imageio", "imageio_ffmpeg") if video_format == "mp4" else ("PIL",)
        missing = [name for name in needed if importlib.util.find_spec(name) is None]
        if missing:
            raise ValueError(f"{video_format} videos need {', '.join(missing)}: pip install 'dnne-runtime[video]'")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fps = max(fps, 1.0)
        self.format = video_format
        self.frames: list[np.ndarray] = []
        self.episodes = 0
        self.written: list[Path] = []

    def add(self, frame: np.ndarray | None) -> None:
        """Add one frame (``None``, from an env that cannot render, is ignored)."""
        if frame is not None:
            self.frames.append(np.asarray(frame, dtype=np.uint8))

    def episode_ended(self, suffix: str = "") -> Path | None:
        """Write the collected frames as the next video; returns its path (``None`` when there were no frames)."""
        if not self.frames:
            return None
        path = self.directory / f"episode-{self.episodes:03d}{suffix}.{self.format}"
        if self.format == "gif":
            from PIL import Image

            images = [Image.fromarray(frame) for frame in self.frames]
            images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / self.fps), loop=0)
        else:
            import imageio.v2 as imageio

            # Frames of odd size are padded to even (H.264 needs it) rather than resized.
            imageio.mimwrite(path, self.frames, fps=self.fps, codec="libx264", macro_block_size=2)
        self.frames = []
        self.episodes += 1
        self.written.append(path)
        return path

    def close(self) -> Path | None:
        """Write the frames of an episode that a stop cut short; returns its path, if any (a lone first frame of an
        episode that never stepped is not one)."""
        if len(self.frames) < 2:
            return None
        return self.episode_ended("-partial")
