"""Gradient-based and new loss-based weighting methods against oracles: small cases worked out by
hand from each paper's update rule (in the comments), the defining property of the method, or an
independent brute-force solution. LibMTL and the authors' code are PyTorch-only (not installable
beside this project's TensorFlow here), so the oracle is the update rule itself."""
import math

import numpy as np
import pytest
import tensorflow as tf

import inspect

from model.weighting import STRATEGIES, make_weighting

TASKS = ("text", "oc", "ml")
TWO = ("text", "oc")


def combine(name, grads, losses=None, **options):
    tasks = TASKS[:len(grads)]
    w = make_weighting(name, tasks, **options)
    g = tf.constant(grads, tf.float32)
    w.prepare(g.shape[1])
    losses = losses or {t: tf.constant(1.0) for t in tasks}
    return w, w.combine_gradients(g, losses).numpy()


def test_the_registry_says_what_each_strategy_takes():
    """The options the registry lists (what a space may set as <strategy>_<option>) are exactly
    the keyword arguments of the strategy's constructor, and its class knows its own name."""
    from model.weighting import strategy_class

    assert len(STRATEGIES) == 11
    for name, (_, options) in STRATEGIES.items():
        cls = strategy_class(name)
        keywords = [p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY]
        assert tuple(keywords) == options, (name, keywords, options)
        assert make_weighting(name, TASKS).name == name
    with pytest.raises(ValueError, match=r"weighting 'cagrad' takes options \['c'\], got \['alpha'\]"):
        make_weighting("cagrad", TASKS, alpha=1.0)


def test_pcgrad_projects_conflicting_gradients():
    # g1 = (1, 0), g2 = (-1, 1) conflict (g1.g2 = -1):
    # g1' = g1 - (-1)/|g2|^2 g2 = (1, 0) + (-0.5, 0.5) = (0.5, 0.5); g2' = g2 - (-1)/1 g1 = (0, 1); sum (0.5, 1.5)
    _, g = combine("pcgrad", [[1.0, 0.0], [-1.0, 1.0]])
    np.testing.assert_allclose(g, [0.5, 1.5], atol=1e-6)
    _, g = combine("pcgrad", [[1.0, 0.0], [1.0, 1.0]])  # no conflict: the plain sum
    np.testing.assert_allclose(g, [2.0, 1.0], atol=1e-6)


def test_pcgrad_result_is_orthogonal_to_what_it_conflicted_with_and_order_free_for_two_tasks():
    rng = np.random.default_rng(0)
    for _ in range(5):
        g1, g2 = rng.normal(size=(2, 6))
        if g1 @ g2 >= 0:
            g2 = -g2
        w = make_weighting("pcgrad", TWO)
        out = w.combine_gradients(tf.constant([g1, g2], tf.float32), {}).numpy()
        p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
        p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
        np.testing.assert_allclose(out, p1 + p2, rtol=1e-5, atol=1e-6)
        assert abs(p1 @ g2) < 1e-5 and abs(p2 @ g1) < 1e-5


def _cagrad_brute_force(grads, c, points=200001):
    """CAGrad for two tasks by a grid over the simplex w = (x, 1 - x) (LibMTL's objective)."""
    g = np.asarray(grads, float)
    gram = g @ g.T
    b = np.full(2, 0.5)
    scale = c * math.sqrt(gram.mean() + 1e-8) + 1e-8
    x = np.linspace(0, 1, points)
    ws = np.stack([x, 1 - x], 1)
    f = ws @ gram @ b + scale * np.sqrt(np.einsum("ij,jk,ik->i", ws, gram, ws) + 1e-8)
    w = ws[np.argmin(f)]
    gw = w @ g
    return (g.mean(0) + scale / (np.linalg.norm(gw) + 1e-8) * gw) / (1 + c ** 2)


@pytest.mark.parametrize("grads", [[[1.0, 0.0], [-0.5, 1.0]], [[2.0, 1.0, 0.0], [0.0, -1.0, 3.0]]])
def test_cagrad_matches_a_brute_force_search_of_its_objective(grads):
    _, g = combine("cagrad", grads, c=0.5)
    np.testing.assert_allclose(g, _cagrad_brute_force(grads, 0.5), atol=2e-4)
    _, mean = combine("cagrad", grads, c=0.0)  # c = 0: the mean gradient
    np.testing.assert_allclose(mean, np.mean(grads, 0), atol=1e-5)


def test_imtl_gives_equal_projections_on_every_task_direction():
    # two tasks, g1 = (1, 0), g2 = (0, 2): u1 = (1, 0), u2 = (0, 1); D = g1 - g2 = (1, -2),
    # U = u1 - u2 = (1, -1): a2 = (g1.U) / (D.U) = 1/3, a1 = 2/3, g = (2/3, 2/3)
    w, g = combine("imtl", [[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(g, [2 / 3, 2 / 3], atol=1e-6)
    assert w.weights() == pytest.approx({"text": 2 / 3, "oc": 1 / 3}, abs=1e-6)
    grads = np.random.default_rng(1).normal(size=(3, 7))
    _, g = combine("imtl", grads.tolist())
    units = grads / np.linalg.norm(grads, axis=1, keepdims=True)
    projections = units @ g
    np.testing.assert_allclose(projections, projections[0], rtol=1e-4)  # the paper's definition


def test_nash_mtl_solves_the_bargaining_system():
    # orthogonal g1 = (1, 0), g2 = (0, 2): M = diag(1, 4) / sqrt(17); (M a)_i = 1 / a_i gives
    # a1 = 17^(1/4) / 1, a2 = 17^(1/4) / 2, so g = 17^(1/4) (1, 1): equal progress on both tasks
    _, g = combine("nashmtl", [[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(g, [17 ** 0.25, 17 ** 0.25], rtol=1e-5)
    grads = np.random.default_rng(2).normal(size=(3, 5)).astype(np.float32)
    w, _ = combine("nashmtl", grads.tolist())
    a = np.array([w.weights()[t] for t in TASKS])
    m = grads @ grads.T / np.linalg.norm(grads @ grads.T)
    np.testing.assert_allclose(m @ a, 1 / a, rtol=1e-4)


def test_aligned_mtl_equalises_the_task_gradients():
    # M = diag(1, 4): eigenvalues 4 (task 2), 1 (task 1); B = sqrt(1) diag(1/1, 1/2), column sums
    # a = (1, 0.5): g = 1 (1, 0) + 0.5 (0, 2) = (1, 1); both aligned gradients have norm 1 (the smallest)
    _, g = combine("alignedmtl", [[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(g, [1.0, 1.0], atol=1e-5)


def test_db_mtl_balances_moving_averages_of_log_loss_gradients():
    # step 1: m = g + 0.9 / 1^0.5 (0 - g) = 0.1 g -> |m| = (0.1, 0.2), a = (2, 1), update (0.2, 0.2)
    # step 2: m = g + 0.9 / 2^0.5 (m - g) = g (1 - 0.63640) + 0.63640 (0.1 g) = 0.42724 g, same ratios
    w = make_weighting("dbmtl", TWO)
    w.prepare(2)
    g = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(w.combine_gradients(g, {}).numpy(), [0.2, 0.2], atol=1e-6)
    k = 1 - 0.9 / math.sqrt(2) + 0.9 / math.sqrt(2) * 0.1
    np.testing.assert_allclose(w.combine_gradients(g, {}).numpy(), [2 * k, 2 * k], rtol=1e-5)
    # the log transform, data parallel: d log L / dx = (dL/dx) / L with L the global loss
    x = tf.Variable(3.0)
    with tf.GradientTape() as tape:
        part = x ** 2 / 2  # one replica's half of the global loss L = x^2 = 9
        objective = w.objectives({"text": part, "oc": part}, {"text": tf.constant(9.0), "oc": tf.constant(9.0)})["text"]
    assert float(tape.gradient(objective, x)) == pytest.approx(3.0 / 9.0)  # half of d log(x^2)/dx = 2/3


def test_gradnorm_moves_weight_toward_the_task_with_the_smaller_gradient():
    # w = 2 softmax(s) = (1, 1); |g| = (1, 2); first step: L(0) = L, r = (1, 1), target = mean(G) = 1.5
    # d/ds_j sum_i |G_i - 1.5| with G_i = 2 softmax_i |g_i|: -1 * 2*1*0.5*(0.5) + 1 * 2*2*0.5*(-0.5) = -1.5
    # for s_1, +1.5 for s_2; one step of 0.025: s = (0.0375, -0.0375)
    w, g = combine("gradnorm", [[1.0, 0.0], [0.0, 2.0]], losses={"text": tf.constant(2.0), "oc": tf.constant(1.0)})
    np.testing.assert_allclose(g, [1.0, 2.0], atol=1e-6)  # this step uses w = (1, 1)
    np.testing.assert_allclose(w.logits.numpy(), [0.0375, -0.0375], atol=1e-6)


def test_famo_weights_and_logit_step():
    # z = (0.5, 0.5), L = (2, 0.5): c = 0.5/2 + 0.5/0.5 = 1.25; each L_i is weighted z_i / (c L_i) = (0.2, 0.8)
    # next step L = (1, 0.5): improvement d = (log 2, 0); J^T d = z (d - z.d) = (0.1733, -0.1733);
    # Adam's first step is lr * sign: logits (-0.025, 0.025): the task that improved less gains weight
    w = make_weighting("famo", TWO, lr=0.025, decay=0.0)
    total = w.combine({"text": tf.constant(2.0), "oc": tf.constant(0.5)})
    assert w.weights() == pytest.approx({"text": 0.2, "oc": 0.8}, rel=1e-5)
    assert float(total) == pytest.approx(0.8, rel=1e-5)
    w.combine({"text": tf.constant(1.0), "oc": tf.constant(0.5)})
    np.testing.assert_allclose(w.logits.numpy(), [-0.025, 0.025], atol=1e-6)


def _events(seed: int = 0, n: int = 6):
    """A fixed run of ``n`` steps on three tasks: per step the task losses and (gradient methods)
    per-task gradients of four shared parameters."""
    rng = np.random.default_rng(seed)
    return [({t: float(v) for t, v in zip(TASKS, rng.uniform(0.5, 2.0, 3))},
             rng.normal(size=(3, 4)).astype(np.float32)) for _ in range(n)]


def _step(w, losses: dict, grads: np.ndarray) -> np.ndarray:
    """One training step as the trainer takes it: a gradient method combines the per-task
    gradients; a loss method combines the losses, and a learned weighting (uncertainty) takes a
    gradient step on its own variables; every second step ends an epoch. Returns what the step
    produced (the shared gradient or the loss) and the weights applied."""
    tensors = {t: tf.constant(v) for t, v in losses.items()}
    if w.per_task_gradients:
        out = w.combine_gradients(tf.constant(grads), tensors).numpy()
    else:
        with tf.GradientTape() as tape:
            total = w.combine(tensors)
        for var, g in zip(w.trainable_variables, tape.gradient(total, w.trainable_variables)):
            var.assign_sub(0.1 * g)
        out = np.array([float(total)])
    return np.concatenate([out, list(w.weights().values())])


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_a_restored_weighting_takes_the_uninterrupted_next_steps(name):
    """Checkpoint at the end of the second epoch (after four steps, as the trainer checkpoints at
    epoch ends; the state goes through JSON, as a checkpoint stores it), restore into a fresh
    strategy, and the next four steps equal an uninterrupted run's. A strategy that forgot
    part of its state in get_state/set_state (say FAMO's Adam moments) fails here."""
    import json

    def fresh():
        w = make_weighting(name, TASKS)
        if w.per_task_gradients:
            w.prepare(4)
        return w

    events = _events(n=8)
    whole = fresh()
    expected = []
    for k, (losses, grads) in enumerate(events):
        expected.append(_step(whole, losses, grads))
        if k % 2:
            whole.end_epoch(losses)
    first = fresh()
    for k, (losses, grads) in enumerate(events[:4]):
        _step(first, losses, grads)
        if k % 2:
            first.end_epoch(losses)
    resumed = fresh()
    resumed.set_state(json.loads(json.dumps(first.get_state())))
    for k, (losses, grads) in enumerate(events[4:], start=4):
        np.testing.assert_allclose(_step(resumed, losses, grads), expected[k], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name}, step {k + 1}")
        if k % 2:
            resumed.end_epoch(losses)
