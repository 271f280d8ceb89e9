"""The Gibbs half sweep of Bayesian SVD++ flipped (``models/bayes_flipped.py``) as Numba loops:
the same maths as its NumPy reference ``half_sweep``, the same arguments, the same draws (the
normals z come in from the caller), for one side of the model at a time.

For side row r (a user, say: R rows) with ratings n ∈ R(r), features q_n = [Q_other(n), 1],
each rating's noise precision α w_n:

    H_r = Σ w_n q_n q_nᵀ,  g_r = Σ w_n q_n e_n               the row's sufficient statistics
    w_r ~ N(Λ⁻¹ b, Λ⁻¹),  Λ = Λ_W + α H_r,  b = Λ_W μ_W + α (g_r + H_r w_r)
    g_r -= H_r δ;  P_r += δ[:F]                              the statistics follow the new row

then each bag row k (the rows holding k in their bag: B(k)):

    Λ = Λ_Y + α Σ_{r ∈ B(k)} s_r² H_r[:F,:F]
    b = Λ_Y μ_Y + α Σ_{r ∈ B(k)} s_r (g_r[:F] + s_r H_r[:F,:F] y_k)
    y_k ~ N(Λ⁻¹ b, Λ⁻¹);  g_r -= s_r H_r[:, :F] δ;  P_r += s_r δ   for r ∈ B(k)

A draw is w = L⁻ᵀ (L⁻¹ b + z), Λ = L Lᵀ (``draw``: Cholesky, then one forward and one back
substitution, written out: d is F + 1, a few dozen at most).
"""
import numpy as np

from . import jit


@jit
def draw(A, b, z, out):
    """out = L⁻ᵀ (L⁻¹ b + z), A = L Lᵀ (A is overwritten by L in its lower triangle)."""
    d = A.shape[0]
    for j in range(d):                       # Cholesky, column by column
        s = A[j, j]
        for p in range(j):
            s -= A[j, p] * A[j, p]
        A[j, j] = np.sqrt(s)
        for i in range(j + 1, d):
            s = A[i, j]
            for p in range(j):
                s -= A[i, p] * A[j, p]
            A[i, j] = s / A[j, j]
    c = np.empty(d)
    for i in range(d):                       # L c = b, then c + z
        s = b[i]
        for p in range(i):
            s -= A[i, p] * c[p]
        c[i] = s / A[i, i]
    for i in range(d):
        c[i] += z[i]
    for i in range(d - 1, -1, -1):           # Lᵀ out = c + z
        s = c[i]
        for p in range(i + 1, d):
            s -= A[p, i] * out[p]
        out[i] = s / A[i, i]


@jit
def matvec(A, x):
    out = np.zeros(A.shape[0])
    for a in range(A.shape[0]):
        for c in range(A.shape[1]):
            out[a] += A[a, c] * x[c]
    return out


@jit
def rows_loops(W, P, Q, rated_off, rated_n, other, e, w, mu_W, Lam_W, z_W, alpha):
    R, F = P.shape
    d = F + 1
    H = np.zeros((R, d, d))
    g = np.zeros((R, d))
    A = np.empty((d, d))
    b = np.empty(d)
    new = np.empty(d)
    prior_W = matvec(Lam_W, mu_W)                            # Λ_W μ_W
    for r in range(R):                                       # 1. the rows
        Hr, gr = H[r], g[r]
        for p in range(rated_off[r], rated_off[r + 1]):
            n = rated_n[p]
            q, wn = Q[other[n]], w[n]
            for a in range(F):                               # H_r += w q qᵀ, g_r += w q e (q = [Q, 1])
                wq = wn * q[a]
                for c in range(a + 1):
                    Hr[a, c] += wq * q[c]
                Hr[F, a] += wq
                gr[a] += wq * e[n]
            Hr[F, F] += wn
            gr[F] += wn * e[n]
        for a in range(d):                                   # symmetric: fill the upper half
            for c in range(a + 1, d):
                Hr[a, c] = Hr[c, a]
        for a in range(d):
            t = gr[a]
            for c in range(d):
                A[a, c] = Lam_W[a, c] + alpha * Hr[a, c]
                t += Hr[a, c] * W[r, c]
            b[a] = prior_W[a] + alpha * t
        draw(A, b, z_W[r], new)
        for a in range(d):                                   # δ into b
            b[a] = new[a] - W[r, a]
            W[r, a] = new[a]
        for a in range(d):
            t = 0.0
            for c in range(d):
                t += Hr[a, c] * b[c]
            gr[a] -= t
        for a in range(F):
            P[r, a] += b[a]
    return H, g


@jit
def bag_rows_loops(Y, P, H, g, s, hold_off, hold_ids, mu_Y, Lam_Y, z_Y, alpha):
    F = Y.shape[1]
    d = F + 1
    prior_Y = matvec(Lam_Y, mu_Y)                            # Λ_Y μ_Y
    Ab = np.empty((F, F))
    bb = np.empty(F)
    newb = np.empty(F)
    for k in range(Y.shape[0]):                              # 2. the bag rows
        for a in range(F):
            bb[a] = 0.0
            for c in range(a + 1):
                Ab[a, c] = 0.0
        yk = Y[k]
        for p in range(hold_off[k], hold_off[k + 1]):       # Σ s_r g_r[:F], Σ s_r² H_r[:F,:F]
            r = hold_ids[p]
            sr, Hr, gr = s[r], H[r], g[r]
            s2 = sr * sr
            for a in range(F):
                bb[a] += sr * gr[a]
                for c in range(a + 1):
                    Ab[a, c] += s2 * Hr[a, c]
        for a in range(F):                                   # + (Σ s_r² H_r) y_k: the pull
            for c in range(a + 1, F):                        # without y_k's own share
                Ab[a, c] = Ab[c, a]
        for a in range(F):
            t = 0.0
            for c in range(F):
                t += Ab[a, c] * yk[c]
            bb[a] = prior_Y[a] + alpha * (bb[a] + t)
        for a in range(F):
            for c in range(F):
                Ab[a, c] = Lam_Y[a, c] + alpha * Ab[a, c]
        draw(Ab, bb, z_Y[k], newb)
        for a in range(F):                                   # δ into bb
            bb[a] = newb[a] - yk[a]
            yk[a] = newb[a]
        for p in range(hold_off[k], hold_off[k + 1]):
            r = hold_ids[p]
            sr, Hr, gr = s[r], H[r], g[r]
            for a in range(d):
                t = 0.0
                for c in range(F):
                    t += Hr[a, c] * bb[c]
                gr[a] -= sr * t
            for a in range(F):
                P[r, a] += sr * bb[a]


def as_f64(a):
    return np.ascontiguousarray(a, np.float64)


def draw_rows(W, P, Q, rated, other, e, w, hyper_W, z_W, alpha):
    """``bayes_flipped.draw_rows``'s arguments, its loops compiled: step 1, returns H and g."""
    (mu_W, Lam_W) = hyper_W
    return rows_loops(W, P, Q, rated[0], rated[1], other, e, w, as_f64(mu_W), as_f64(Lam_W),
                      z_W, float(alpha))


def draw_bag_rows(Y, P, H, g, s, holders, hyper_Y, z_Y, alpha):
    """``bayes_flipped.draw_bag_rows``'s arguments, its loops compiled: step 2, in place."""
    (mu_Y, Lam_Y) = hyper_Y
    bag_rows_loops(Y, P, H, g, s, holders[0], holders[1], as_f64(mu_Y), as_f64(Lam_Y), z_Y,
                   float(alpha))


def half_sweep(W, Y, P, Q, s, holders, rated, other, e, w, hyper_W, hyper_Y, z_W, z_Y, alpha):
    """``bayes_flipped.half_sweep``'s arguments, its two steps compiled (in place, float64)."""
    H, g = draw_rows(W, P, Q, rated, other, e, w, hyper_W, z_W, alpha)
    draw_bag_rows(Y, P, H, g, s, holders, hyper_Y, z_Y, alpha)
