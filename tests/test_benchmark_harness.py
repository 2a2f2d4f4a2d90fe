"""The benchmarks' own machinery, checked cheaply (the benchmarks run in `make bench`)."""

from benchmarks.store_upload import PhaseTimer
from hubkit.store import Store


def test_the_upload_phase_timer_wraps_every_step_and_restores_it():
    # The store split moved Store's methods into base classes: the timer looked them up in
    # Store.__dict__ only and `python -m benchmarks.store_upload` died with KeyError.
    before = {name: getattr(owner, name) for owner, name, _ in PhaseTimer().targets}
    with PhaseTimer() as timer:
        assert len(timer.saved) == len(timer.targets)
        for owner, name, _ in timer.targets:
            assert getattr(owner, name) is not before[name], name
    for owner, name, _ in PhaseTimer().targets:
        assert getattr(owner, name) is before[name], name
    assert Store._get_item_or_none is before["_get_item_or_none"]
