import os
import tempfile
from pathlib import Path

import pytest

# Built models are cached under RAYSWEEP_HOME; tests use the caller's (tests/run.sh sets one inside the
# checkout) or a fresh temporary one, never the user's ~/.cache.
if "RAYSWEEP_HOME" not in os.environ:
    os.environ["RAYSWEEP_HOME"] = tempfile.mkdtemp(prefix="raysweep-test-home-")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_path() -> Path:
    from raysweep import models

    return models.resolve("tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny_path):
    from raysweep import models

    return models.load("tiny", device="cpu")
