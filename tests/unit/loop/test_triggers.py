from ct_llm.loop.triggers import any_fired, volume_trigger


def test_volume_trigger_fires_at_threshold():
    assert volume_trigger(8, 8).fired
    below = volume_trigger(7, 8)
    assert not below.fired and "7 new usable feedback events < 8" in below.reason
    assert any_fired([below, volume_trigger(9, 8)])
    assert not any_fired([below])
