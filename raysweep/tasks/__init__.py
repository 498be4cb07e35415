"""Tasks carry their own data, prompts, verifier and reward. GeneralPoints is the one built in."""

from raysweep.tasks.generalpoints import (
    BUILTIN_RULES,
    RANKS,
    REWARD_SCHEMES,
    VERDICTS,
    Rule,
    Score,
    TaskConfig,
    deal,
    prompt_messages,
    score,
)
from raysweep.tasks.solver import is_solvable, solve

__all__ = [
    "BUILTIN_RULES", "RANKS", "REWARD_SCHEMES", "VERDICTS", "Rule", "Score", "TaskConfig",
    "deal", "prompt_messages", "score", "solve", "is_solvable",
]
