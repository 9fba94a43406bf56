"""Refund policies: versioned rule sets (jurisdiction presets and merchant policies), the
statutory clock, and a pure evaluation that returns a decision with its explanations.

Public interface (what services, the API and the CLI use):

- ``load_policy(data, *, base=None) -> Policy`` / ``parse_policy_text(text)``: validate a policy
  mapping; raises ``PolicyInvalid`` (422 ``policy_invalid``) or ``FloorUndercut``
  (422 ``policy_below_statutory_floor``);
- ``load_preset(id)`` / ``list_presets()``: presets shipped as package data in ``presets/``;
- ``evaluate(policy, facts, ask, history, now) -> Decision``: pure and deterministic.

No I/O here except reading the packaged preset files.
"""

from payback.policies.evaluate import (
                                       AskLine,
                                       CustomerHistory,
                                       Decision,
                                       Explanation,
                                       PurchaseFacts,
                                       RefundAsk,
                                       evaluate,
)
from payback.policies.model import (
                                       FloorUndercut,
                                       Policy,
                                       PolicyInvalid,
                                       list_presets,
                                       load_policy,
                                       load_preset,
                                       parse_policy_text,
)

__all__ = ["AskLine", "CustomerHistory", "Decision", "Explanation", "FloorUndercut", "Policy",
           "PolicyInvalid", "PurchaseFacts", "RefundAsk", "evaluate", "list_presets",
           "load_policy", "load_preset", "parse_policy_text"]
