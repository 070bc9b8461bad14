"""Notebook 08's exercise checks: each typical mistake, written the way a learner would, and the message
that names it. ``tests/test_exercises.py`` runs these cases with every other check's (``MISTAKES``)."""
import torch


def masks_variant(descending=True, counting=lambda k, pixels, steps: round(k * pixels / steps), stages=None,
                  removed=True):
    def deletion_masks(saliency_map, steps):
        order = torch.argsort(saliency_map.flatten(), descending=descending, stable=True)
        masks = torch.zeros(steps + 1, saliency_map.numel(), dtype=torch.bool)
        for k in range(steps + 1):
            masks[k, order[:counting(k, saliency_map.numel(), steps)]] = True
        masks = masks if removed else ~masks
        return masks.view(steps + 1, *saliency_map.shape)[: stages]
    return deletion_masks


def share_variant(energy=lambda m: m.clamp(min=0), transposed=False, per_pixel=False):
    def energy_share(saliency_map, box):
        x0, y0, x1, y1 = box
        values = energy(saliency_map)
        inside = values[x0:x1, y0:y1] if transposed else values[y0:y1, x0:x1]
        return float(inside.sum() / (inside.numel() if per_pixel else values.sum()))
    return energy_share


MISTAKES = {
    "check_deletion_masks": [
        (masks_variant(descending=False), "most relevant first"),
        (masks_variant(removed=False), "True where the pixel has been removed"),
        (masks_variant(counting=lambda k, pixels, steps: int(k * pixels / steps)), "rounded the pixel counts down"),
        (masks_variant(stages=-1), "steps \\+ 1 stages"),
        (lambda m, steps: masks_variant()(m.abs_(), steps), "changed the map"),
    ],
    "check_energy_share": [
        (share_variant(energy=torch.abs), "\\|map\\|"),
        (share_variant(energy=lambda m: m), "signed map"),
        (share_variant(transposed=True), "rows are y"),
        (share_variant(per_pixel=True), "pixel count"),
        (lambda m, box: float("nan"), "total energy is not zero"),
    ],
}


def test_the_reference_solutions_written_out_here_pass(capsys):
    from helpers.exercises.judging import check_deletion_masks, check_energy_share

    check_deletion_masks(masks_variant())
    check_energy_share(share_variant())
    assert capsys.readouterr().out.count("✓") == 2
