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


def test_ranking_loss_penalises_non_duplicates_scored_above_duplicates():
    good = pair_ranking_loss(torch.tensor([0.9, 0.8]), torch.tensor([0.1, 0.2]))
    bad = pair_ranking_loss(torch.tensor([0.3]), torch.tensor([0.6]))
    assert good.item() == 0.0
    assert abs(bad.item() - 0.55) < 1e-6
