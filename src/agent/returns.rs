//! Dreamer's λ-return over an imagined horizon, and its adjoint (the actor's gradient flows
//! through it into the imagined rewards and values).
//!
//! With rewards `r[0..H]`, values `v[0..=H]` and continuation flags `c[0..H]` (1, or 0 where an
//! imagined episode ends), discount `γ` and `λ`:
//! `R[H] = v[H]`, `R[t] = r[t] + γ c[t] ((1 − λ) v[t+1] + λ R[t+1])` for `t = H−1 … 0`.
//! `λ = 1` is the discounted return bootstrapped at the horizon, `λ = 0` the one-step TD target.
//! Arrays are time-major, `[t][b]` flattened with `b` fastest.

/// The λ-returns `R[0..H]` (`H × B`), given `rew` (`H × B`), `val` (`(H+1) × B`) and `cont`
/// (`H × B`).
pub fn lambda_return(
    rew: &[f32],
    val: &[f32],
    cont: &[f32],
    b: usize,
    gamma: f32,
    lambda: f32,
) -> Vec<f32> {
    let h = rew.len() / b.max(1);
    assert_eq!(val.len(), (h + 1) * b, "values need H + 1 rows");
    assert_eq!(cont.len(), h * b, "continuation flags need H rows");
    let mut out = vec![0.0; h * b];
    let mut next: Vec<f32> = val[h * b..].to_vec(); // R[H] = v[H]
    for t in (0..h).rev() {
        for (j, nx) in next.iter_mut().enumerate() {
            let i = t * b + j;
            let g = gamma * cont[i];
            let r = rew[i] + g * ((1.0 - lambda) * val[i + b] + lambda * *nx);
            out[i] = r;
            *nx = r;
        }
    }
    out
}

/// The adjoint of [`lambda_return`]: given `dR` (`H × B`, the loss's gradient with respect to
/// each return), the gradients with respect to the rewards (`H × B`) and the values
/// (`(H+1) × B`). The continuation flags are treated as constants.
pub fn lambda_return_grad(
    d_ret: &[f32],
    cont: &[f32],
    b: usize,
    gamma: f32,
    lambda: f32,
) -> (Vec<f32>, Vec<f32>) {
    let h = d_ret.len() / b.max(1);
    let mut d_rew = vec![0.0; h * b];
    let mut d_val = vec![0.0; (h + 1) * b];
    // A[t]: the total adjoint of R[t] = dR[t] + λ γ c[t−1] A[t−1].
    let mut acc = vec![0.0f32; b];
    for t in 0..h {
        for (j, ac) in acc.iter_mut().enumerate() {
            let i = t * b + j;
            let a = d_ret[i] + *ac;
            let g = gamma * cont[i];
            d_rew[i] = a;
            d_val[i + b] += g * (1.0 - lambda) * a;
            *ac = g * lambda * a;
        }
    }
    // R[H] = v[H].
    for j in 0..b {
        d_val[h * b + j] += acc[j];
    }
    (d_rew, d_val)
}

/// The gradient with respect to the continuation flags (read as probabilities: a learned
/// continuation head makes them differentiable): `dR/dc[t] = A[t] γ ((1 − λ) v[t+1] + λ R[t+1])`
/// with `A[t]` the total adjoint of `R[t]` and `R[H] = v[H]`; `ret` is [`lambda_return`]'s output.
pub fn lambda_return_grad_cont(
    d_ret: &[f32],
    val: &[f32],
    cont: &[f32],
    ret: &[f32],
    b: usize,
    gamma: f32,
    lambda: f32,
) -> Vec<f32> {
    let h = d_ret.len() / b.max(1);
    let mut d_cont = vec![0.0; h * b];
    let mut acc = vec![0.0f32; b];
    for t in 0..h {
        for (j, ac) in acc.iter_mut().enumerate() {
            let i = t * b + j;
            let a = d_ret[i] + *ac;
            let next = if t + 1 < h {
                ret[i + b]
            } else {
                val[h * b + j]
            };
            d_cont[i] = a * gamma * ((1.0 - lambda) * val[i + b] + lambda * next);
            *ac = gamma * cont[i] * lambda * a;
        }
    }
    d_cont
}

/// The critic's per-step weights: `w[0] = 1`, `w[t] = Π_{k<t} c[k]`, the probability that the
/// imagined episode is still going at step t (DreamerV2 weighs its losses by it).
pub fn alive_weights(cont: &[f32], b: usize) -> Vec<f32> {
    let h = cont.len() / b.max(1);
    let mut w = vec![1.0f32; h * b];
    for t in 1..h {
        for j in 0..b {
            w[t * b + j] = w[(t - 1) * b + j] * cont[(t - 1) * b + j];
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    #[test]
    fn matches_a_hand_computation() {
        // r = (1, 2, 3), v = (0.5, 1, 1.5, 2), γ = 0.9, λ = 0.5:
        // R3 = 2; R2 = 3 + .9(.5·2 + .5·2) = 4.8; R1 = 2 + .9(.5·1.5 + .5·4.8) = 4.835;
        // R0 = 1 + .9(.5·1 + .5·4.835) = 3.62575.
        let r = lambda_return(
            &[1., 2., 3.],
            &[0.5, 1., 1.5, 2.],
            &[1., 1., 1.],
            1,
            0.9,
            0.5,
        );
        for (a, b) in r.iter().zip([3.62575, 4.835, 4.8]) {
            close(*a, b);
        }
        // λ = 1: 1 + .9·2 + .81·3 + .729·2 = 6.688; λ = 0: 1 + .9·1 = 1.9.
        close(
            lambda_return(&[1., 2., 3.], &[0.5, 1., 1.5, 2.], &[1.; 3], 1, 0.9, 1.0)[0],
            6.688,
        );
        close(
            lambda_return(&[1., 2., 3.], &[0.5, 1., 1.5, 2.], &[1.; 3], 1, 0.9, 0.0)[0],
            1.9,
        );
        // An episode that ends after step 1: R1 = 2, R0 = 1 + .9(.5·1 + .5·2) = 2.35.
        let r = lambda_return(
            &[1., 2., 3.],
            &[0.5, 1., 1.5, 2.],
            &[1., 0., 1.],
            1,
            0.9,
            0.5,
        );
        close(r[1], 2.0);
        close(r[0], 2.35);
    }

    #[test]
    fn a_learned_continuation_discounts_by_its_probability_and_stops_at_a_terminal() {
        // c = (0.5, 0, 1): step 1 is terminal (P(continue) = 0), step 0 continues with
        // probability ½. γ = .9, λ = .5, r = (1, 2, 3), v = (0.5, 1, 1.5, 2):
        // R2 = 3 + .9·1·(.5·2 + .5·2) = 4.8; R1 = 2 + .9·0·(…) = 2;
        // R0 = 1 + .9·.5·(.5·1 + .5·2) = 1.675.
        let (r, v, c) = ([1., 2., 3.], [0.5, 1., 1.5, 2.], [0.5, 0., 1.]);
        let ret = lambda_return(&r, &v, &c, 1, 0.9, 0.5);
        for (a, b) in ret.iter().zip([1.675, 2.0, 4.8]) {
            close(*a, b);
        }
        // The critic's weights: alive at step 0 surely, at 1 with ½, at 2 never.
        assert_eq!(alive_weights(&c, 1), vec![1.0, 0.5, 0.0]);
        // dR0/dc: by hand, dR0/dc0 = .9(.5·1 + .5·R1) = .9·1.5 = 1.35; dR0/dc1 = .9·.5·.5·
        // .9·(.5·1.5 + .5·4.8) = .2025·3.15 = 0.637875; dR0/dc2 = .45·.5·0·… = 0.
        let d = lambda_return_grad_cont(&[1., 0., 0.], &v, &c, &ret, 1, 0.9, 0.5);
        close(d[0], 1.35);
        close(d[1], 0.637875);
        close(d[2], 0.0);
    }

    #[test]
    fn the_continuation_adjoint_matches_finite_differences() {
        let (h, b) = (4, 2);
        let rew: Vec<f32> = (0..h * b).map(|i| (i as f32 * 0.37).sin()).collect();
        let val: Vec<f32> = (0..(h + 1) * b).map(|i| (i as f32 * 0.71).cos()).collect();
        let cont = vec![0.9, 0.2, 0.0, 0.7, 1.0, 0.5, 0.3, 0.8];
        let w: Vec<f32> = (0..h * b).map(|i| 1.0 + i as f32 * 0.1).collect();
        let loss = |c: &[f32]| -> f64 {
            let ret = lambda_return(&rew, &val, c, b, 0.95, 0.7);
            ret.iter()
                .zip(&w)
                .map(|(a, k)| (*a as f64) * (*k as f64))
                .sum()
        };
        let ret = lambda_return(&rew, &val, &cont, b, 0.95, 0.7);
        let d = lambda_return_grad_cont(&w, &val, &cont, &ret, b, 0.95, 0.7);
        let eps = 1e-3f32;
        for i in 0..cont.len() {
            let (mut p, mut m) = (cont.clone(), cont.clone());
            p[i] += eps;
            m[i] -= eps;
            let fd = (loss(&p) - loss(&m)) / (2.0 * eps as f64);
            assert!(
                (fd - d[i] as f64).abs() < 2e-3,
                "cont {i}: {fd} vs {}",
                d[i]
            );
        }
    }

    #[test]
    fn batch_columns_are_independent() {
        // Two columns interleaved (b fastest) give the two single-column answers.
        let r = lambda_return(
            &[1., 10., 2., 20., 3., 30.],
            &[0.5, 5., 1., 10., 1.5, 15., 2., 20.],
            &[1.; 6],
            2,
            0.9,
            0.5,
        );
        close(r[0], 3.62575);
        close(r[1], 36.2575);
    }

    #[test]
    fn the_adjoint_matches_finite_differences() {
        let (h, b) = (4, 2);
        let rew: Vec<f32> = (0..h * b).map(|i| (i as f32 * 0.37).sin()).collect();
        let val: Vec<f32> = (0..(h + 1) * b).map(|i| (i as f32 * 0.71).cos()).collect();
        let cont = vec![1., 1., 0., 1., 1., 1., 1., 0.];
        let w: Vec<f32> = (0..h * b).map(|i| 1.0 + i as f32 * 0.1).collect();
        let loss = |r: &[f32], v: &[f32]| -> f64 {
            let ret = lambda_return(r, v, &cont, b, 0.95, 0.7);
            ret.iter()
                .zip(&w)
                .map(|(a, c)| (*a as f64) * (*c as f64))
                .sum()
        };
        let (dr, dv) = lambda_return_grad(&w, &cont, b, 0.95, 0.7);
        let eps = 1e-2f32; // the loss is linear, so central differences are exact up to rounding
        for i in 0..rew.len() {
            let (mut p, mut m) = (rew.clone(), rew.clone());
            p[i] += eps;
            m[i] -= eps;
            let fd = (loss(&p, &val) - loss(&m, &val)) / (2.0 * eps as f64);
            assert!(
                (fd - dr[i] as f64).abs() < 1e-3,
                "reward {i}: {fd} vs {}",
                dr[i]
            );
        }
        for i in 0..val.len() {
            let (mut p, mut m) = (val.clone(), val.clone());
            p[i] += eps;
            m[i] -= eps;
            let fd = (loss(&rew, &p) - loss(&rew, &m)) / (2.0 * eps as f64);
            assert!(
                (fd - dv[i] as f64).abs() < 1e-3,
                "value {i}: {fd} vs {}",
                dv[i]
            );
        }
        // v[0] never enters a return.
        assert_eq!((dv[0], dv[1]), (0.0, 0.0));
    }
}
