"""The refund timeline names who did each step in words, never as an internal id."""

from payback.web.console_queries import actor_label


def test_actor_labels():
    names = {"usr_1": "Ada Lovelace (ada@shop.test)"}
    assert actor_label("usr_1", names) == "Ada Lovelace (ada@shop.test)"
    assert actor_label("system", names) == "Payback (automatic)"
    assert actor_label("gateway:sandbox", names) == "Payment gateway (sandbox)"
    assert actor_label("customer:cus_1", names) == "The customer"
    assert actor_label("key_9", names) == "key_9"
