"""The promotion gate: a new version becomes what its short id means only if it does not regress.

When a version of an id is published with results on its task's yardstick (a dev set, such as
``sentiment-yardstick``), it is judged against the version the short id means at that moment
(the *baseline*): it is promoted unless its overall yardstick accuracy is more than
:data:`NOISE_BAND` below the baseline's. Either way it is published (an exact id always reaches
it); an unpromoted version records why in its manifest (``promotion``), ``registry show`` prints
it, and short ids skip it (:meth:`adapterhub.registry.resolver.Resolver.resolve`).

The band: the yardstick has 728 texts, so the overall accuracy of one adapter near 0.85 has a
standard error of about 1.3 points, and two adapters' paired difference has less (they share
the easy and hard texts); 1.5 points is about the spread of one recipe over seeds on the test
splits (0.8-1.6 points, README). A drop beyond it is a regression, not noise.

Versions without yardstick results (other tasks, entries published before the gate) are
promoted as before; so is the first judged version when the baseline has no yardstick results.
"""

from __future__ import annotations

from adapterhub.registry.manifest import Manifest, Metrics, Promotion

NOISE_BAND = 0.015
"""How far (accuracy, overall on the yardstick) below the baseline a version may score and
still be promoted."""


def _scores(board: Metrics) -> tuple[float | None, float | None]:
    values = board.values
    return values.get("accuracy"), values.get("hard_accuracy")


def judge(yardstick: Metrics | None, baseline: Manifest | None) -> Promotion:
    """The gate's decision for a version with ``yardstick`` results, against ``baseline`` (the
    manifest of the version its short id means now, or None when there is none)."""
    accuracy = None if yardstick is None else _scores(yardstick)[0]
    if accuracy is None:
        return Promotion(promoted=True, reason="no yardstick results: not judged")
    if baseline is None:
        return Promotion(promoted=True, reason="the first version: nothing to judge it against")
    old = None if baseline.yardstick is None else _scores(baseline.yardstick)[0]
    if old is None:
        return Promotion(
            promoted=True,
            reason=f"{baseline.id} has no yardstick results to judge against",
            baseline=baseline.id,
        )
    hard, old_hard = _scores(yardstick)[1], _scores(baseline.yardstick)[1]
    change = accuracy - old
    numbers = (
        f"{yardstick.dataset or 'yardstick'} accuracy {accuracy:.3f} vs {old:.3f} for "
        f"{baseline.id} ({100 * change:+.1f} points"
        + (
            f"; hard subset {hard:.3f} vs {old_hard:.3f}"
            if hard is not None and old_hard is not None
            else ""
        )
        + ")"
    )
    if change < -NOISE_BAND:
        reason = f"regresses beyond the {100 * NOISE_BAND:.1f}-point noise band: {numbers}"
        return Promotion(promoted=False, reason=reason, baseline=baseline.id, band=NOISE_BAND)
    reason = f"within the {100 * NOISE_BAND:.1f}-point noise band or better: {numbers}"
    return Promotion(promoted=True, reason=reason, baseline=baseline.id, band=NOISE_BAND)
