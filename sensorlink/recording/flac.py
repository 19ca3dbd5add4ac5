"""Lossless audio for recordings: a block of int16 PCM as a complete FLAC file, and back.

Each recorded block becomes a FLAC file of its own (``fLaC``, STREAMINFO, the frames), written
by FFmpeg's encoder through PyAV: any FLAC decoder (libFLAC, ``ffmpeg``, a browser) reads one
message on its own, and a replay or an export that starts anywhere needs no state from the
blocks before. A fresh encoder per block costs ~1 ms of CPU per 512-sample block of four
channels (bench/bench_library.py measures it); the file is about half the PCM's size.

FLAC carries 1 to 8 channels of up to 32 bits, so an array with more channels than that is
recorded as PCM (:func:`supports` says which).
"""

from __future__ import annotations

import fractions
import hashlib
import io

import numpy as np

from sensorlink.errors import RecordingError

MAX_CHANNELS = 8
# FFmpeg's names for 1..8 channels; which speaker a channel "is" means nothing for a microphone
# array, the layout only tells the encoder how many there are (and is stored as FLAC's own).
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
MAGIC = b"fLaC"


def supports(channels: int) -> bool:
    return 1 <= channels <= MAX_CHANNELS


def encode(pcm: np.ndarray, rate: int) -> bytes:
    """Samples × channels int16 → the bytes of a FLAC file holding exactly those samples."""
    import av  # PyAV is a dependency already (video); imported here so readers need no codec

    pcm = np.ascontiguousarray(pcm, dtype=np.int16)
    if pcm.ndim != 2 or not supports(pcm.shape[1]):
        raise RecordingError(f"FLAC takes 1-{MAX_CHANNELS} channels, got shape {pcm.shape}")
    channels = pcm.shape[1]
    codec = av.CodecContext.create("flac", "w")
    codec.sample_rate = rate
    codec.layout = _LAYOUTS[channels]
    codec.format = "s16"
    codec.time_base = fractions.Fraction(1, rate)
    codec.open()
    frames = []
    if len(pcm):
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16",
                                           layout=_LAYOUTS[channels])
        frame.sample_rate = rate
        frame.pts = 0
        frames = [bytes(p) for p in codec.encode(frame)]
    frames += [bytes(p) for p in codec.encode(None)]
    streaminfo = bytes(codec.extradata or b"")
    if len(streaminfo) != 34:
        raise RecordingError(f"the FLAC encoder gave a {len(streaminfo)}-byte STREAMINFO, not 34")
    # STREAMINFO ends with the MD5 of the samples (interleaved, signed little-endian), which
    # libFLAC checks on decode. FFmpeg 8's encoder (PyAV 18) writes a wrong one, so the sum is
    # set here from the very samples encoded.
    streaminfo = streaminfo[:18] + hashlib.md5(pcm.astype("<i2").tobytes()).digest()
    # One metadata block (type 0, STREAMINFO, with the "last block" bit), then the frames.
    return MAGIC + bytes([0x80, 0, 0, 34]) + streaminfo + b"".join(frames)


def decode(data: bytes, channels: int) -> np.ndarray:
    """The bytes :func:`encode` wrote → the same int16 samples × channels, bit for bit."""
    import av

    if data[:4] != MAGIC:
        raise RecordingError("not FLAC data (no fLaC marker)")
    if len(data) <= 42:  # STREAMINFO alone: a block of no samples
        return np.zeros((0, channels), np.int16)
    try:
        with av.open(io.BytesIO(data), format="flac") as container:
            parts = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
            stream_channels = container.streams.audio[0].codec_context.channels
    except (av.FFmpegError, ValueError) as exc:
        raise RecordingError(f"unreadable FLAC data: {exc}") from exc
    if stream_channels != channels:
        raise RecordingError(f"FLAC data holds {stream_channels} channels, the message says "
                             f"{channels}")
    pcm = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    return pcm.astype(np.int16, copy=False).reshape(-1, channels)
