"""Reference embeddings of all-MiniLM-L6-v2 from sentence-transformers, for the encoder's test
(crates/embed/tests/reference.rs). Run once after scripts/install-minilm.sh, in a venv with
sentence-transformers (it pulls torch):

    python3 -m venv /tmp/minilm-ref && /tmp/minilm-ref/bin/pip install sentence-transformers
    /tmp/minilm-ref/bin/python scripts/minilm_reference.py models/all-MiniLM-L6-v2 \
        crates/embed/tests/fixtures/minilm_reference.json

Writes the sentences, their token counts, the full 384-number vectors (7 significant digits)
and the library versions. Exit code 2 with a message when the folder or a file is missing.
"""

import hashlib
import json
import os
import sys

SENTENCES = [
    "Men's cotton T-shirt, short sleeves, knitted",
    "lithium-ion battery pack for laptop computers",
    "Frozen boneless beef cuts",
    "Smartphone with 128 GB storage",
    "plastic toys for children under 3 years",
    "Roasted coffee beans, not decaffeinated, 1 kg bag",
    "stainless steel kitchen knives with fixed blades",
    "Chaussures de sport en cuir pour hommes",
    "Ersatzteile für Kraftfahrzeuge: Bremsbeläge",
    "手机壳 phone case silicone",
    "gift",
    "",
    "   \t\n  ",
    "Parts & accessories of motor vehicles (other than tractors); brake pads 🚗 €12.50 #A-77/b",
    # Longer than 256 tokens: truncated as sentence-transformers does.
    " ".join(["woven fabrics of synthetic filament yarn, dyed, of a width exceeding 30 cm"] * 30),
]


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    model_dir, out = sys.argv[1], sys.argv[2]
    weights = os.path.join(model_dir, "model.safetensors")
    if not os.path.isfile(weights):
        print(f"{weights}: missing (run scripts/install-minilm.sh)", file=sys.stderr)
        return 2
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    if model.max_seq_length != 256:
        print(f"{model_dir}: max_seq_length {model.max_seq_length}, expected 256", file=sys.stderr)
        return 2
    vectors = model.encode(SENTENCES, batch_size=4, normalize_embeddings=False, convert_to_numpy=True)
    tokens = [len(model.tokenizer(s, truncation=True, max_length=256)["input_ids"]) for s in SENTENCES]
    with open(weights, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    doc = {
        "model": "all-MiniLM-L6-v2",
        "safetensors_sha256": digest,
        "generated_by": "scripts/minilm_reference.py",
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "max_seq_length": model.max_seq_length,
        "cases": [
            {"text": s, "tokens": t, "vector": [float(f"{x:.7g}") for x in v.tolist()]}
            for s, t, v in zip(SENTENCES, tokens, vectors)
        ],
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=None)
        f.write("\n")
    print(f"{out}: {len(SENTENCES)} sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
