"""Episode videos of one environment, written as animated GIFs (Pillow, which matplotlib already brings)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class EpisodeRecorder:
    """Collects the RGB frames of env 0 and writes ``episode-NNN.gif`` into ``directory`` when its episode ends.

    Args:
        directory: where the videos go (created).
        fps: frames per second of the written video.
    """

    def __init__(self, directory: str | Path, fps: float) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fps = max(fps, 1.0)
        self.frames: list[np.ndarray] = []
        self.episodes = 0

    def add(self, frame: np.ndarray | None) -> None:
        """Add one frame (``None``, from an env that cannot render, is ignored)."""
        if frame is not None:
            self.frames.append(np.asarray(frame, dtype=np.uint8))

    def episode_ended(self) -> Path | None:
        """Write the collected frames as the next video; returns its path (``None`` when there were no frames)."""
        if not self.frames:
            return None
        from PIL import Image

        path = self.directory / f"episode-{self.episodes:03d}.gif"
        images = [Image.fromarray(frame) for frame in self.frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / self.fps), loop=0)
        self.frames = []
        self.episodes += 1
        return path
