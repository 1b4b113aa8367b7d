"""Muon: Newton-Schulz orthogonalisation, the update rule, state round trip."""
import math

import pytest
import torch

from elfs2t.optim.muon import Muon, muon_scale, newton_schulz


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (48, 48)])
def test_newton_schulz_singular_values_near_one(shape):
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    if shape[0] == shape[1]:  # a square Gaussian matrix has tiny singular values; give it a floor
        u, s, vh = torch.linalg.svd(g)
        g = u @ torch.diag(s.clamp_min(0.05 * s.max())) @ vh
    o = newton_schulz(g, steps=5)
    assert o.shape == g.shape and o.dtype == g.dtype
    s = torch.linalg.svdvals(o)
    assert s.min() > 0.6 and s.max() < 1.25, s
    # Same singular vectors: o is about U V^T of g, so <o, U V^T> / ||U V^T||^2 is close to 1.
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    polar = u @ vh
    assert (o * polar).sum() / polar.pow(2).sum() == pytest.approx(1.0, abs=0.2)
    # Near-orthogonal: o o^T (wide) or o^T o (tall) is close to the identity.
    gram = o @ o.T if shape[0] <= shape[1] else o.T @ o
    assert (gram - torch.eye(gram.shape[0])).abs().max() < 0.6


def test_newton_schulz_is_scale_invariant_and_rejects_vectors():
    g = torch.randn(16, 8)
    torch.testing.assert_close(newton_schulz(g), newton_schulz(1000.0 * g), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="matrix"):
        newton_schulz(torch.randn(5))


def test_muon_scale_rule():
    assert muon_scale((64, 16)) == pytest.approx(2.0)  # fan_out / fan_in = 4
    assert muon_scale((16, 64)) == 1.0
    assert muon_scale((8, 2, 2)) == pytest.approx(math.sqrt(2.0))


def test_first_muon_step_by_hand():
    """Step 1: bias-corrected momentum equals the gradient, so the update is -lr * scale * NS(G)."""
    w = torch.nn.Parameter(torch.randn(12, 4))
    g = torch.randn(12, 4)
    w0 = w.detach().clone()
    opt = Muon([{"params": [w], "use_muon": True}], lr=0.1, momentum=0.95)
    w.grad = g.clone()
    opt.step()
    expected = w0 - 0.1 * math.sqrt(3.0) * newton_schulz(g)
    torch.testing.assert_close(w.detach(), expected)
    # The update's spectral norm is about lr * scale (all singular values near 1).
    top = torch.linalg.svdvals(w.detach() - w0).max()
    assert 0.1 * math.sqrt(3.0) * 0.6 < top < 0.1 * math.sqrt(3.0) * 1.25


def test_second_muon_step_nesterov_bias_correction():
    w = torch.nn.Parameter(torch.randn(6, 6))
    g1, g2 = torch.randn(6, 6), torch.randn(6, 6)
    opt = Muon([w], lr=0.01, momentum=0.9)
    w.grad = g1.clone()
    opt.step()
    w1 = w.detach().clone()
    w.grad = g2.clone()
    opt.step()
    m = 0.9 * (0.1 * g1) + 0.1 * g2
    m_hat = m / (1 - 0.9**2)
    u = 0.9 * m_hat + 0.1 * g2
    torch.testing.assert_close(w.detach(), w1 - 0.01 * newton_schulz(u))


def test_adam_group_matches_torch_adamw():
    torch.manual_seed(0)
    b1 = torch.nn.Parameter(torch.randn(7))
    b2 = torch.nn.Parameter(b1.detach().clone())
    ours = Muon([{"params": [b1], "use_muon": False}], lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    ref = torch.optim.AdamW([b2], lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    for _ in range(3):
        g = torch.randn(7)
        b1.grad, b2.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    torch.testing.assert_close(b1.detach(), b2.detach())


def test_vector_in_muon_group_is_refused():
    with pytest.raises(ValueError, match="Adam"):
        Muon([torch.nn.Parameter(torch.zeros(3))])


def test_state_dict_round_trip_continues_identically():
    def make():
        torch.manual_seed(3)
        w = torch.nn.Parameter(torch.randn(5, 3))
        b = torch.nn.Parameter(torch.randn(5))
        return w, b, Muon([{"params": [w], "use_muon": True}, {"params": [b], "use_muon": False}], lr=0.05)

    grads = [(torch.randn(5, 3), torch.randn(5)) for _ in range(4)]
    w, b, opt = make()
    for gw, gb in grads:
        w.grad, b.grad = gw.clone(), gb.clone()
        opt.step()
    w2, b2, opt2 = make()
    for gw, gb in grads[:2]:
        w2.grad, b2.grad = gw.clone(), gb.clone()
        opt2.step()
    w3, b3, opt3 = make()
    with torch.no_grad():
        w3.copy_(w2)
        b3.copy_(b2)
    opt3.load_state_dict(opt2.state_dict())
    for gw, gb in grads[2:]:
        w3.grad, b3.grad = gw.clone(), gb.clone()
        opt3.step()
    assert torch.equal(w3, w) and torch.equal(b3, b)
