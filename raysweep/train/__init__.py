"""Training stages: SFT trunks (and RL), as worker functions with thin Ray shells."""
