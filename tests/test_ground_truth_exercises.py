"""Notebook 10's exercise checks: each typical mistake, written the way a learner would, and the message
that names it. ``tests/test_exercises.py`` runs these cases with every other check's (``MISTAKES``)."""
import torch

from helpers.ground_truth.world import PARTS


def reliance_variant(probabilities=True, sign=1, explain_label=False):
    def reliance_on(model, world, scenes, part):
        with torch.no_grad():
            full = model(world.render(scenes)[0])
            without = model(world.render(scenes, without=part)[0])
        target = scenes.labels if explain_label else full.argmax(1)
        if probabilities:
            full, without = full.softmax(1), without.softmax(1)
        return sign * (full - without).gather(1, target[:, None])[:, 0]
    return reliance_on


def share_variant(energy=lambda m: m.clamp(min=0), density=False):
    def share(maps, mask):
        values = energy(maps)
        empty = values.flatten(1).sum(1) == 0
        values = torch.where(empty[:, None, None], torch.ones_like(values), values)
        inside = (values * mask).flatten(1).sum(1)
        if density:
            return inside / mask.flatten(1).sum(1) / values.flatten(1).mean(1)
        return inside / values.flatten(1).sum(1)
    return share


MISTAKES = {
    "check_reliance_on": [
        (reliance_variant(sign=-1), "sign is reversed"),
        (reliance_variant(probabilities=False), "compared logits"),
        (reliance_variant(explain_label=True), "true label"),
    ],
    "check_object_share": [
        (share_variant(energy=torch.abs), r"\|map\|"),
        (share_variant(density=True), "density"),
        (lambda maps, mask: share_variant()(maps.clamp_(min=0), mask), "changed the maps"),
    ],
}


def test_the_reference_solutions_written_out_here_pass(capsys):
    from helpers.exercises.ground_truth import check_object_share, check_reliance_on

    check_reliance_on(reliance_variant())
    check_object_share(share_variant())
    assert capsys.readouterr().out.count("✓") == 2
    assert len(PARTS) == 4
