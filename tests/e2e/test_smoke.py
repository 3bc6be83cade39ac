def test_system_answers(system, directions):
    assert set(directions) == {"auto", "semi_auto", "manual"}
    assert system.api("GET", "/healthz").json() == {"status": "ok"}
