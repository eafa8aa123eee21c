"""Settings of the embedded synthetic benchmark (config section `synthetic`)."""

from __future__ import annotations

import dataclasses

from daml.errors import DamlError

__all__ = ["SyntheticSettings"]


@dataclasses.dataclass(frozen=True)
class SyntheticSettings:
    """Scale knobs of the synthetic benchmark; defaults live in the config schema.

    Arguments:
        seed: master seed; each dataset derives its own stream from it.
        width: video frame width in pixels (even).
        height: video frame height in pixels (even); WildDeepfake's square face crops are
            `height` pixels wide.
        fps: video frame rate.
        frames: frames per video (and PNGs per WildDeepfake sequence).
        ffpp_pairs: FF++ pairs in the train, val and test splits; each pair gives 2 real
            videos and 2 fakes per technique.
        celebdf_videos: Celeb-DF identities: one Celeb-real and one Celeb-synthesis video each,
            plus half as many YouTube-real videos; every other video is listed for testing.
        dfdc_videos: DFDC real videos in dfdc_train_part_0 (each with one fake), and videos in
            test/ (half real, half fake).
        wilddeepfake_sequences: WildDeepfake sequences in each of real_train, fake_train,
            real_test and fake_test (two per archive).
    """

    seed: int
    width: int
    height: int
    fps: int
    frames: int
    ffpp_pairs: tuple[int, int, int]
    celebdf_videos: int
    dfdc_videos: int
    wilddeepfake_sequences: int

    def __post_init__(self):
        object.__setattr__(self, "ffpp_pairs", tuple(int(n) for n in self.ffpp_pairs))
        problems = []
        if len(self.ffpp_pairs) != 3 or min(self.ffpp_pairs) < 1:
            problems.append("ffpp_pairs must be three counts >= 1 (train, val, test)")
        for key in ("width", "height"):
            value = getattr(self, key)
            if value < 32 or value % 2:
                problems.append(f"{key} must be even and >= 32 (H.264 with yuv420p), got {value}")
        for key, low in (("fps", 1), ("frames", 1), ("celebdf_videos", 2), ("dfdc_videos", 2),
                         ("wilddeepfake_sequences", 1)):
            if getattr(self, key) < low:
                problems.append(f"{key} must be >= {low}, got {getattr(self, key)}")
        if problems:
            raise DamlError("synthetic settings (config section `synthetic`): "
                            + "; ".join(problems) + ". Fix the values in config.yaml.")
