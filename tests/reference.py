"""Naive reference models that the real implementation is checked against.

Each section is short and obviously right (slow is fine): hypothesis compares inbus with
them. Sections: topic matching, Redis glob matching, the broker model.
"""

from __future__ import annotations

# --- topic matching (owned by the topic-router tests) --------------------------------------

# --- Redis glob matching (owned by the pub/sub tests) --------------------------------------

# --- broker model (owned by the stateful broker tests) -------------------------------------
