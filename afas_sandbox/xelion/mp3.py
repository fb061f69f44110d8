"""Call recordings as real MP3 files: silent MPEG-1 Layer III frames, built by hand.

Each frame is 32 kbit/s, 32 kHz, mono, no CRC: a 4-byte header (sync word, version, layer, bit rate, sample
rate, channel mode), 17 bytes of side information that are all zero (no Huffman data in either granule, so
a decoder yields silence) and zero padding up to the frame length of 144 * 32000 / 32000 = 144 bytes. A
frame holds 1152 samples (36 ms), so a recording of ``seconds`` is ``ceil(seconds * 32000 / 1152)`` frames,
about 4 kB a second. Any MP3 decoder plays it; no encoder library is needed for silence.
"""

from __future__ import annotations

import math

SAMPLE_RATE = 32_000
BIT_RATE = 32_000
SAMPLES_PER_FRAME = 1152
FRAME_BYTES = 144 * BIT_RATE // SAMPLE_RATE
#: 0xFFF sync, MPEG-1 (11), Layer III (01), no CRC (1) | bit rate index 1 (32 kbit/s), sample rate index 2
#: (32 kHz), no padding | mono (11), original (1).
HEADER = bytes([0xFF, 0xFB, 0x18, 0xC4])
SIDE_INFO_BYTES = 17
FRAME = HEADER + bytes(FRAME_BYTES - len(HEADER))


def frames_for(seconds: float) -> int:
    return max(1, math.ceil(seconds * SAMPLE_RATE / SAMPLES_PER_FRAME))


def silent_mp3(seconds: float) -> bytes:
    """An MP3 of at least ``seconds`` of silence (one frame at the least)."""
    return FRAME * frames_for(seconds)
