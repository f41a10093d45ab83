from ct_llm.registry.routing import canary_bucket, choose_route


def test_no_production_routes_to_base():
    r = choose_route("c1", "base-model", None, None, 0.0)
    assert (r.served_model, r.model_version, r.variant) == ("base-model", "base-model", "base")


def test_canary_share_is_close_to_weight_and_sticky():
    keys = [f"conv-{i}" for i in range(4000)]
    routes = [choose_route(k, "b", "t-a-v1", "t-a-v2", 0.2) for k in keys]
    share = sum(r.variant == "canary" for r in routes) / len(keys)
    assert 0.17 < share < 0.23
    again = [choose_route(k, "b", "t-a-v1", "t-a-v2", 0.2) for k in keys]
    assert routes == again
    assert all(0 <= canary_bucket(k) < 1 for k in keys[:100])


def test_zero_weight_canary_gets_nothing():
    assert all(
        choose_route(f"c{i}", "b", "p", "c", 0.0).variant == "production" for i in range(200)
    )
