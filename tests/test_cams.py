"""CAM methods on tiny inputs whose answers are computed by hand (captum style).

The shared 2×2×2 example (rows i, columns j; channel k after the comma):

    A[..., 0] = [[1,  2],      A[..., 1] = [[4, -4],      (A < 0: a leaky activation)
                 [2,  3]]                   [1,  4]]
    g[..., 0] = [[1, -1],      g[..., 1] = [[2,  1],
                 [2,  0]]                   [-3, -1]]

Each expected map below is worked out in the comments, never by calling a formula.
"""

from __future__ import annotations

import numpy as np
import pytest

from yolocam_core.cams import (
    METHODS,
    CamMethod,
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    SeedCAM,
    get_method,
    method_names,
)

A = np.stack(
    [
        np.array([[1.0, 2.0], [2.0, 3.0]]),
        np.array([[4.0, -4.0], [1.0, 4.0]]),
    ],
    axis=-1,
).astype(np.float32)
G = np.stack(
    [
        np.array([[1.0, -1.0], [2.0, 0.0]]),
        np.array([[2.0, 1.0], [-3.0, -1.0]]),
    ],
    axis=-1,
).astype(np.float32)


def minmax(cam: np.ndarray) -> np.ndarray:
    """Min–max normalise to [0, 1] (the downstream step every map goes through)."""
    cam = np.asarray(cam, dtype=np.float64)
    return (cam - cam.min()) / (cam.max() - cam.min())


def rng_inputs(seed: int = 0, shape=(5, 6, 7)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    acts = rng.normal(size=shape).astype(np.float32)
    grads = rng.normal(size=shape).astype(np.float32)
    return acts, grads


# Hand-computed maps ----------------------------------------------------------------


def test_seed_by_hand():
    # guided = (A > 0) * (g > 0) * g
    #   k=0: (0,0) A=1>0, g=1>0 -> 1; (0,1) g=-1 -> 0; (1,0) A=2>0, g=2>0 -> 2;
    #        (1,1) g=0 -> 0.                       mean = (1+0+2+0)/4 = 0.75
    #   k=1: (0,0) A=4>0, g=2>0 -> 2; (0,1) A=-4<0 -> 0 (although g=1>0);
    #        (1,0) g=-3 -> 0; (1,1) g=-1 -> 0.     mean = (2+0+0+0)/4 = 0.5
    # map = 0.75*A0 + 0.5*A1, no ReLU:
    #   (0,0) 0.75*1 + 0.5*4    =  2.75
    #   (0,1) 0.75*2 + 0.5*(-4) = -0.5   <- stays negative
    #   (1,0) 0.75*2 + 0.5*1    =  2.0
    #   (1,1) 0.75*3 + 0.5*4    =  4.25
    method = SeedCAM()
    np.testing.assert_allclose(method.channel_weights(A, G), [0.75, 0.5])
    np.testing.assert_allclose(method.compute(A, G), [[2.75, -0.5], [2.0, 4.25]], rtol=1e-6)


def test_gradcam_by_hand():
    # alpha_0 = (1 - 1 + 2 + 0)/4 = 0.5;  alpha_1 = (2 + 1 - 3 - 1)/4 = -0.25
    # map = 0.5*A0 - 0.25*A1:
    #   (0,0) 0.5*1 - 0.25*4    = -0.5  -> ReLU 0
    #   (0,1) 0.5*2 - 0.25*(-4) =  2.0
    #   (1,0) 0.5*2 - 0.25*1    =  0.75
    #   (1,1) 0.5*3 - 0.25*4    =  0.5
    method = GradCAM()
    np.testing.assert_allclose(method.channel_weights(A, G), [0.5, -0.25])
    np.testing.assert_allclose(method.compute(A, G), [[0.0, 2.0], [0.75, 0.5]], rtol=1e-6)


def test_gradcampp_by_hand():
    # a = g^2 / (2 g^2 + S_k g^3 + 1e-6), 0 where g == 0;  alpha_k = sum a * ReLU(g)
    # k=0: S_0 = 1+2+2+3 = 8
    #   (0,0) g=1:  1 / (2*1 + 8*1)  = 1/10;   ReLU(g) = 1 -> 1/10
    #   (0,1) g=-1: 1 / (2*1 - 8*1)  = -1/6;   ReLU(g) = 0 -> 0
    #   (1,0) g=2:  4 / (2*4 + 8*8)  = 1/18;   ReLU(g) = 2 -> 1/9
    #   (1,1) g=0:  a = 0                                  -> 0
    #   alpha_0 = 1/10 + 1/9 = 19/90
    # k=1: S_1 = 4-4+1+4 = 5
    #   (0,0) g=2:  4 / (2*4 + 5*8)  = 1/12;   ReLU(g) = 2 -> 1/6
    #   (0,1) g=1:  1 / (2*1 + 5*1)  = 1/7;    ReLU(g) = 1 -> 1/7
    #   (1,0), (1,1): g < 0, ReLU(g) = 0                   -> 0
    #   alpha_1 = 1/6 + 1/7 = 13/42
    # In 630ths: alpha_0 = 133/630, alpha_1 = 195/630. map = alpha_0*A0 + alpha_1*A1:
    #   (0,0) (133*1 + 195*4)/630    =  913/630
    #   (0,1) (133*2 + 195*(-4))/630 = -514/630 -> ReLU 0
    #   (1,0) (133*2 + 195*1)/630    =  461/630
    #   (1,1) (133*3 + 195*4)/630    = 1179/630
    # eps = 1e-6 against denominators >= 7 moves the answer by < 1e-6 relative.
    method = GradCAMPlusPlus()
    np.testing.assert_allclose(method.channel_weights(A, G), [19 / 90, 13 / 42], rtol=1e-5)
    expected = np.array([[913, 0], [461, 1179]]) / 630
    np.testing.assert_allclose(method.compute(A, G), expected, rtol=1e-5)


def test_hirescam_by_hand():
    # map = ReLU(g0*A0 + g1*A1):
    #   (0,0)  1*1 +  2*4    =  9
    #   (0,1) -1*2 +  1*(-4) = -6 -> 0
    #   (1,0)  2*2 + -3*1    =  1
    #   (1,1)  0*3 + -1*4    = -4 -> 0
    np.testing.assert_allclose(HiResCAM().compute(A, G), [[9.0, 0.0], [1.0, 0.0]])


def test_layercam_by_hand():
    # ReLU(g0) = [[1, 0], [2, 0]],  ReLU(g1) = [[2, 1], [0, 0]]
    # map = ReLU(ReLU(g0)*A0 + ReLU(g1)*A1):
    #   (0,0) 1*1 + 2*4    =  9
    #   (0,1) 0*2 + 1*(-4) = -4 -> 0
    #   (1,0) 2*2 + 0*1    =  4     (HiResCAM had 1 here: the -3 gradient is dropped)
    #   (1,1) 0*3 + 0*4    =  0
    np.testing.assert_allclose(LayerCAM().compute(A, G), [[9.0, 0.0], [4.0, 0.0]])


def test_eigencam_by_hand():
    # A = outer(m, v), m = [[1, 2], [3, 6]], v = (3, 4), |v| = 5.
    # Centred columns: (m - mean m) * v_k with mean m = 3 -> m_c = [[-2, -1], [0, 3]].
    # X = outer(m_c, v) is rank 1, v1 = ±v/5, so X @ v1 = ±5 * m_c.
    # Channel sum = 7m, positively correlated with +5*m_c, so the sign is +:
    #   5*m_c = [[-10, -5], [0, 15]] -> ReLU [[0, 0], [0, 15]]
    m = np.array([[1.0, 2.0], [3.0, 6.0]])
    acts = m[:, :, None] * np.array([3.0, 4.0])[None, None, :]
    np.testing.assert_allclose(EigenCAM().compute(acts, None), [[0, 0], [0, 15]], atol=1e-5)


# Properties -------------------------------------------------------------------------


def test_eigencam_rank_one_gives_back_the_map():
    # A = outer(map, v) with no noise: the result is exactly the centred map times |v|
    # (a positive scale), after ReLU; for a zero-mean map that is the map itself.
    rng = np.random.default_rng(1)
    cam = rng.uniform(0.0, 3.0, size=(6, 5))
    v = rng.uniform(0.1, 1.0, size=8)
    acts = cam[:, :, None] * v[None, None, :]
    got = EigenCAM().compute(acts.astype(np.float32), None)
    expected = np.maximum(cam - cam.mean(), 0) * np.linalg.norm(v)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

    zero_mean = cam - cam.mean()
    acts = zero_mean[:, :, None] * v[None, None, :]
    got = EigenCAM().compute(acts, None)
    np.testing.assert_allclose(got, np.maximum(zero_mean, 0) * np.linalg.norm(v), atol=1e-5)


def test_eigencam_matches_plain_svd_of_centred_activations():
    # Reference: pytorch-grad-cam's recipe (SVD of the centred (h*w, K) matrix itself),
    # with the sign taken so the map correlates with the channel sum.
    acts, _ = rng_inputs(10, shape=(9, 8, 5))
    acts = np.abs(acts).astype(np.float64)
    x = acts.reshape(-1, 5)
    x = x - x.mean(axis=0)
    projection = x @ np.linalg.svd(x)[2][0]
    if projection @ acts.sum(-1).ravel() < 0:
        projection = -projection
    expected = np.maximum(projection, 0).reshape(9, 8)
    np.testing.assert_allclose(EigenCAM().compute(acts, None), expected, rtol=1e-5, atol=1e-6)


def test_eigencam_sign_does_not_depend_on_the_svd(monkeypatch):
    acts, _ = rng_inputs(2)
    acts = np.abs(acts)
    before = EigenCAM().compute(acts, None)
    real_svd = np.linalg.svd
    calls = []

    def flipped_svd(x, *args, **kwargs):
        calls.append(x.shape)
        u, s, vt = real_svd(x, *args, **kwargs)
        return -u, s, -vt

    monkeypatch.setattr(np.linalg, "svd", flipped_svd)
    after = EigenCAM().compute(acts, None)
    assert len(calls) == 1
    np.testing.assert_array_equal(before, after)
    assert before.max() > 0


def test_gradcam_invariant_to_positive_gradient_scale():
    acts, grads = rng_inputs(3)
    base = GradCAM().compute(acts, grads)
    scaled = GradCAM().compute(acts, 7.5 * grads)
    assert base.max() > 0
    np.testing.assert_allclose(scaled, 7.5 * base, rtol=1e-5)
    np.testing.assert_allclose(minmax(scaled), minmax(base), atol=1e-6)


def test_seed_matches_the_article_snippet():
    """Our seed method against a direct transcription of the article's code.

    The article's map starts from ``np.ones`` (+1 at every location), ours from zero;
    a constant offset vanishes under min–max normalisation, so both are compared
    after it.
    """
    tf = pytest.importorskip("tensorflow")
    acts, grads = rng_inputs(4, shape=(13, 13, 16))
    output, grads_np = acts, grads

    # --- the article, verbatim apart from variable plumbing ---
    guided_grads = tf.cast(output > 0, "float32") * tf.cast(grads_np > 0, "float32") * grads_np
    weights = tf.reduce_mean(guided_grads, axis=(0, 1))
    cam = np.ones(output.shape[0:2], dtype=np.float32)
    for i, w in enumerate(weights):
        cam += w * output[:, :, i]
    # ---

    ours = SeedCAM().compute(acts, grads)
    np.testing.assert_allclose(np.asarray(cam) - 1.0, ours, atol=1e-5)
    np.testing.assert_allclose(minmax(cam), minmax(ours), atol=1e-5)


#: Methods that turn (activations, gradients) into a map (D-RISE works on images).
MAP_METHODS = method_names()


@pytest.mark.parametrize("name", MAP_METHODS)
def test_output_shape_dtype_and_inputs_untouched(name):
    acts, grads = rng_inputs(5)
    acts_copy, grads_copy = acts.copy(), grads.copy()
    method = get_method(name)
    cam = method.compute(acts, grads)
    assert cam.shape == (5, 6)
    assert cam.dtype == np.float32
    assert np.isfinite(cam).all()
    np.testing.assert_array_equal(acts, acts_copy)
    np.testing.assert_array_equal(grads, grads_copy)
    if method.apply_relu:
        assert cam.min() >= 0


@pytest.mark.parametrize("name", MAP_METHODS)
def test_float32_and_float64_inputs_agree(name):
    acts, grads = rng_inputs(6)
    method = get_method(name)
    np.testing.assert_allclose(
        method.compute(acts, grads),
        method.compute(acts.astype(np.float64), grads.astype(np.float64)),
        rtol=1e-6,
        atol=1e-6,
    )


# Validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MAP_METHODS)
def test_activations_must_be_3d(name):
    acts, grads = rng_inputs(7)
    with pytest.raises(ValueError, match=r"\(1, 5, 6, 7\)"):
        get_method(name).compute(acts[None], grads[None])


@pytest.mark.parametrize("name", [n for n in MAP_METHODS if METHODS[n].needs_gradients])
def test_gradient_shape_must_match(name):
    acts, grads = rng_inputs(8)
    with pytest.raises(ValueError, match=r"\(5, 6, 7\).*\(5, 6, 3\)"):
        get_method(name).compute(acts, grads[:, :, :3])
    with pytest.raises(ValueError, match="None"):
        get_method(name).compute(acts, None)


def test_eigencam_needs_no_gradients():
    acts, grads = rng_inputs(9)
    method = get_method("eigencam")
    assert not method.needs_gradients
    np.testing.assert_array_equal(method.compute(acts, None), method.compute(acts, grads))


def test_location_methods_have_no_channel_weights():
    for method in (HiResCAM(), LayerCAM(), EigenCAM()):
        with pytest.raises(NotImplementedError, match="compute"):
            method.channel_weights(A, G)


# Registry -------------------------------------------------------------------------------


def test_method_names_order():
    assert method_names(black_box=True) == [
        "seed",
        "gradcam",
        "gradcam++",
        "hirescam",
        "layercam",
        "eigencam",
        "odam",
        "drise",
    ]
    assert list(METHODS) == method_names(black_box=True)
    assert method_names() == method_names(black_box=True)[:-1]  # no drise in "all"


def test_registry_entries():
    for name, cls in METHODS.items():
        method = get_method(name)
        assert isinstance(method, cls)
        assert isinstance(method, CamMethod)
        assert cls.name == name
        assert cls.title
        assert cls.paper.startswith("http")
        assert cls.__doc__ and "Reference" in cls.__doc__
    assert [n for n, c in METHODS.items() if not c.needs_gradients] == ["eigencam", "drise"]
    assert [n for n, c in METHODS.items() if not c.apply_relu] == ["seed", "drise"]
    assert [n for n, c in METHODS.items() if c.black_box] == ["drise"]


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="'nope'") as info:
        get_method("nope")
    for name in method_names():
        assert name in str(info.value)
