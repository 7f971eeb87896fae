import torch

from qsearch.loss import batch_hard_triplet_loss, pair_ranking_loss


def test_course_worked_example_gives_0_7035():
    v1 = torch.tensor([[0.26726124, 0.53452248, 0.80178373], [0.5178918, 0.57543534, 0.63297887]])
    v2 = torch.tensor([[0.26726124, 0.53452248, 0.80178373], [-0.5178918, -0.57543534, -0.63297887]])
    loss = batch_hard_triplet_loss(v1, v2, margin=0.25)
    assert loss.shape == ()
    assert abs(loss.item() - 0.7035) < 1e-3


def test_well_separated_batch_has_zero_loss():
    v = torch.eye(4)
    assert batch_hard_triplet_loss(v, v.clone()).item() == 0.0


def test_closest_negative_ignores_negatives_above_the_positive():
    # row 0's negative (0.9) beats its positive (0.5): it must not count as the closest negative
    v1 = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    v2 = torch.nn.functional.normalize(torch.tensor([[0.5, 0.866], [0.0, 1.0]]), dim=1)
    scores = v2 @ v1.T
    loss = batch_hard_triplet_loss(v1, v2, margin=0.25)
    pos0, neg0 = scores[0, 0], scores[0, 1]
    assert neg0 > pos0
    row0 = torch.relu(0.25 - pos0 + neg0) + torch.relu(0.25 - pos0 - 2.0)
    row1 = torch.relu(0.25 - scores[1, 1] + scores[1, 0]) * 2
    assert torch.isclose(loss, row0 + row1, atol=1e-6)


def test_a_pairs_weight_scales_its_own_row_of_the_loss():
    v1 = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [0.3, 1.0], [1.0, 1.0]]), dim=1)
    v2 = torch.nn.functional.normalize(torch.tensor([[0.4, 1.0], [1.0, 0.1], [1.0, 0.9]]), dim=1)
    rows = [batch_hard_triplet_loss(v1, v2, weights=torch.eye(3)[i]) for i in range(3)]
    assert all(r > 0 for r in rows[:2]), "the chosen rows have a loss of their own"
    assert torch.isclose(sum(rows), batch_hard_triplet_loss(v1, v2), atol=1e-6), "the rows add up to the unweighted loss"
    halved = batch_hard_triplet_loss(v1, v2, weights=torch.tensor([1.0, 0.5, 1.0]))
    assert torch.isclose(halved, rows[0] + 0.5 * rows[1] + rows[2], atol=1e-6)


def test_ranking_loss_penalises_non_duplicates_scored_above_duplicates():
    good = pair_ranking_loss(torch.tensor([0.9, 0.8]), torch.tensor([0.1, 0.2]))
    bad = pair_ranking_loss(torch.tensor([0.3]), torch.tensor([0.6]))
    assert good.item() == 0.0
    assert abs(bad.item() - 0.55) < 1e-6
