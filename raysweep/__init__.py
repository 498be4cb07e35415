"""raysweep: distributed sweeps that map where RL repairs the OOD reasoning that SFT erodes."""

__version__ = "0.1.0"
