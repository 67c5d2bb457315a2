"""The hash test encoders load in a fresh interpreter without torch."""

import subprocess
import sys


def test_hash_models_load_without_torch() -> None:
    # A fresh interpreter: this test process may already have torch from other tests.
    code = (
        "import sys\n"
        "from embedder.encoders import load_encoder\n"
        "encoder = load_encoder('hash-8', threads=1)\n"
        "assert encoder.model_id == 'hash-8' and encoder.dimension == 8\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'sentence_transformers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
