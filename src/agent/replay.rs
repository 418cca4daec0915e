//! The replay: every episode the agent has lived, kept in memory and saved as an `.npz` in
//! vic's dataset layout (`obs (N, T, O)`, `act (N, T, A)`, `rew (N, T)`, the continuation flags
//! `cont (N, T)` when the model has a continuation head, plus `mask (N, T)` when episodes differ
//! in length), so `vic run` can train a world model on it like on any dataset. Time
//! convention: `obs[t]` is seen before `act[t]`; `rew[t]` is that step's reward; `cont[t]` is 0
//! on the last step of an episode the environment *terminated* and 1 everywhere else (a
//! truncated episode continues: its value is bootstrapped).
//!
//! Windows: an episode of at least `T` steps gives every window of `T` consecutive steps; a
//! shorter one (CartPole's falls) gives one window, zero-padded, with a `mask` of its steps.

use crate::diag::{Code, Diagnostic};
use ndarray::{Array2, Array3};
use rand::Rng;
use std::path::Path;

/// One episode, `len` steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// `len × O`: the observation before each action.
    pub obs: Vec<f32>,
    /// `len × A`: the actions taken.
    pub act: Vec<f32>,
    /// `len`: the rewards.
    pub rew: Vec<f32>,
    /// `len`: 1, or 0 on the last step of a terminated episode.
    pub cont: Vec<f32>,
}

impl Episode {
    /// Its number of steps.
    pub fn len(&self) -> usize {
        self.rew.len()
    }
    /// True for an episode with no step.
    pub fn is_empty(&self) -> bool {
        self.rew.is_empty()
    }
    /// Whether the environment terminated it (its last step has `cont = 0`).
    pub fn terminated(&self) -> bool {
        self.cont.last() == Some(&0.0)
    }
    /// The undiscounted return.
    pub fn ret(&self) -> f64 {
        self.rew.iter().map(|&r| r as f64).sum()
    }
}

/// Array names in the saved file (the model's variable names).
#[derive(Clone, Debug, PartialEq)]
pub struct Names {
    /// The observation array (`o` in `models/rssm.vmodel`).
    pub obs: String,
    /// The action array.
    pub act: String,
    /// The reward array.
    pub rew: String,
    /// The continuation flags' array, when the model has a continuation head.
    pub cont: Option<String>,
}

/// Windows of `t` consecutive steps, time-major per row: `obs (B, T, O)`, `act (B, T, A)`,
/// `rew (B, T)`, flattened row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `B × T × O`.
    pub obs: Vec<f32>,
    /// `B × T × A`.
    pub act: Vec<f32>,
    /// `B × T`.
    pub rew: Vec<f32>,
    /// `B × T`: the continuation flags.
    pub cont: Vec<f32>,
    /// `B × T`: 1 on an episode's steps, 0 on padding; `None` when no window is padded.
    pub mask: Option<Vec<f32>>,
}

/// All episodes so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    /// Observation size.
    pub obs_dim: usize,
    /// Action size.
    pub act_dim: usize,
    /// The episodes, oldest first.
    pub episodes: Vec<Episode>,
}

fn io(path: &Path, what: &str, e: impl std::fmt::Display) -> Diagnostic {
    Diagnostic::new(
        Code::CannotWrite,
        format!("cannot {what} `{}`: {e}", path.display()),
    )
    .help("check that the run directory is writable and the disk is not full")
}

impl Replay {
    /// An empty replay.
    pub fn new(obs_dim: usize, act_dim: usize) -> Self {
        Replay {
            obs_dim,
            act_dim,
            episodes: Vec::new(),
        }
    }

    /// Adds an episode (its arrays must have the replay's sizes).
    pub fn push(&mut self, ep: Episode) {
        assert_eq!(ep.obs.len(), ep.len() * self.obs_dim, "observation size");
        assert_eq!(ep.act.len(), ep.len() * self.act_dim, "action size");
        assert_eq!(ep.cont.len(), ep.len(), "continuation flags");
        self.episodes.push(ep);
    }

    /// Environment steps stored.
    pub fn steps(&self) -> usize {
        self.episodes.iter().map(Episode::len).sum()
    }

    /// `b` windows of `t` steps, each from an episode drawn with probability proportional to
    /// its number of windows (one for an episode shorter than `t`, padded and masked), at a
    /// uniform start. `None` when the replay is empty.
    pub fn sample(&self, b: usize, t: usize, rng: &mut impl Rng) -> Option<Batch> {
        let weights: Vec<usize> = self
            .episodes
            .iter()
            .map(|e| {
                (e.len() + 1)
                    .saturating_sub(t)
                    .max(usize::from(!e.is_empty()))
            })
            .collect();
        let total: usize = weights.iter().sum();
        if total == 0 || t == 0 {
            return None;
        }
        let (o, a) = (self.obs_dim, self.act_dim);
        let mut out = Batch {
            obs: Vec::with_capacity(b * t * o),
            act: Vec::with_capacity(b * t * a),
            rew: Vec::with_capacity(b * t),
            cont: Vec::with_capacity(b * t),
            mask: None,
        };
        let mut mask = Vec::with_capacity(b * t);
        for _ in 0..b {
            // The k-th window overall: find its episode and start.
            let mut k = rng.gen_range(0..total);
            let mut e = 0;
            while k >= weights[e] {
                k -= weights[e];
                e += 1;
            }
            let ep = &self.episodes[e];
            let len = t.min(ep.len());
            out.obs.extend_from_slice(&ep.obs[k * o..(k + len) * o]);
            out.act.extend_from_slice(&ep.act[k * a..(k + len) * a]);
            out.rew.extend_from_slice(&ep.rew[k..k + len]);
            out.cont.extend_from_slice(&ep.cont[k..k + len]);
            mask.resize(mask.len() + len, 1.0);
            if len < t {
                let pad = t - len;
                out.obs.resize(out.obs.len() + pad * o, 0.0);
                out.act.resize(out.act.len() + pad * a, 0.0);
                out.rew.resize(out.rew.len() + pad, 0.0);
                out.cont.resize(out.cont.len() + pad, 0.0);
                mask.resize(mask.len() + pad, 0.0);
            }
        }
        if mask.contains(&0.0) {
            out.mask = Some(mask);
        }
        Some(out)
    }

    /// Writes the replay as an `.npz` (episodes padded to the longest with zeros, and a `mask`
    /// when they differ in length), through a temporary file renamed into place.
    pub fn save(&self, path: &Path, names: &Names) -> Result<(), Diagnostic> {
        let n = self.episodes.len();
        let t = self.episodes.iter().map(Episode::len).max().unwrap_or(0);
        let (o, a) = (self.obs_dim, self.act_dim);
        let mut obs = Array3::<f32>::zeros((n, t, o));
        let mut act = Array3::<f32>::zeros((n, t, a));
        let mut rew = Array2::<f32>::zeros((n, t));
        let mut cont = Array2::<f32>::zeros((n, t));
        let mut mask = Array2::<f32>::zeros((n, t));
        for (i, ep) in self.episodes.iter().enumerate() {
            for s in 0..ep.len() {
                for d in 0..o {
                    obs[[i, s, d]] = ep.obs[s * o + d];
                }
                for d in 0..a {
                    act[[i, s, d]] = ep.act[s * a + d];
                }
                rew[[i, s]] = ep.rew[s];
                cont[[i, s]] = ep.cont[s];
                mask[[i, s]] = 1.0;
            }
        }
        let ragged = self.episodes.iter().any(|e| e.len() != t);
        let tmp = path.with_extension("npz.tmp");
        let file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, "create", e))?;
        let mut npz = ndarray_npy::NpzWriter::new_compressed(file);
        let write = |npz: &mut ndarray_npy::NpzWriter<std::fs::File>| -> Result<(), String> {
            npz.add_array(names.obs.as_str(), &obs)
                .map_err(|e| e.to_string())?;
            npz.add_array(names.act.as_str(), &act)
                .map_err(|e| e.to_string())?;
            npz.add_array(names.rew.as_str(), &rew)
                .map_err(|e| e.to_string())?;
            if let Some(c) = &names.cont {
                npz.add_array(c.as_str(), &cont)
                    .map_err(|e| e.to_string())?;
            }
            if ragged {
                npz.add_array("mask", &mask).map_err(|e| e.to_string())?;
            }
            Ok(())
        };
        write(&mut npz).map_err(|e| io(&tmp, "write", e))?;
        npz.finish().map_err(|e| io(&tmp, "write", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io(path, "write", e))
    }

    /// Reads a replay written by [`Replay::save`] (to resume an agent).
    pub fn load(path: &Path, names: &Names) -> Result<Replay, Diagnostic> {
        use ndarray::{ArrayD, Ix2, Ix3};
        use ndarray_npy::NpzReader;
        let bad = |e: String| {
            Diagnostic::new(
                Code::BadCheckpoint,
                format!("cannot read the replay `{}`: {e}", path.display()),
            )
            .help("the run directory's replay is damaged; start a new run with `--force`")
        };
        let f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let mut z = NpzReader::new(f).map_err(|e| bad(e.to_string()))?;
        let mut get = |name: &str| -> Result<ArrayD<f32>, String> {
            z.by_name::<ndarray::OwnedRepr<f32>, ndarray::IxDyn>(name)
                .map_err(|e| format!("array `{name}`: {e}"))
        };
        let obs = get(&names.obs)
            .and_then(|a| a.into_dimensionality::<Ix3>().map_err(|e| e.to_string()))
            .map_err(bad)?;
        let act = get(&names.act)
            .and_then(|a| a.into_dimensionality::<Ix3>().map_err(|e| e.to_string()))
            .map_err(bad)?;
        let rew = get(&names.rew)
            .and_then(|a| a.into_dimensionality::<Ix2>().map_err(|e| e.to_string()))
            .map_err(bad)?;
        let cont = match &names.cont {
            Some(c) => Some(
                get(c)
                    .and_then(|a| a.into_dimensionality::<Ix2>().map_err(|e| e.to_string()))
                    .map_err(bad)?,
            ),
            None => None,
        };
        let (n, t, o) = obs.dim();
        if cont.as_ref().is_some_and(|c| c.dim() != (n, t)) {
            return Err(bad(
                "the continuation flags disagree with the rewards".into()
            ));
        }
        let a = act.dim().2;
        if act.dim().0 != n || act.dim().1 != t || rew.dim() != (n, t) {
            return Err(bad(format!(
                "arrays disagree: {:?}, {:?}, {:?}",
                obs.dim(),
                act.dim(),
                rew.dim()
            )));
        }
        let mask = get("mask")
            .ok()
            .map(|m| {
                m.into_dimensionality::<Ix2>()
                    .map_err(|e| bad(e.to_string()))
            })
            .transpose()?;
        if let Some(m) = &mask {
            if m.dim() != (n, t) {
                return Err(bad(format!(
                    "`mask` has shape {:?}, the episodes {:?}",
                    m.dim(),
                    (n, t)
                )));
            }
        }
        let mut r = Replay::new(o, a);
        for i in 0..n {
            let len = match &mask {
                Some(m) => (0..t).take_while(|&s| m[[i, s]] > 0.5).count(),
                None => t,
            };
            r.push(Episode {
                obs: (0..len)
                    .flat_map(|s| (0..o).map(move |d| (s, d)))
                    .map(|(s, d)| obs[[i, s, d]])
                    .collect(),
                act: (0..len)
                    .flat_map(|s| (0..a).map(move |d| (s, d)))
                    .map(|(s, d)| act[[i, s, d]])
                    .collect(),
                rew: (0..len).map(|s| rew[[i, s]]).collect(),
                cont: (0..len)
                    .map(|s| cont.as_ref().map_or(1.0, |c| c[[i, s]]))
                    .collect(),
            });
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn episode(len: usize, base: f32) -> Episode {
        Episode {
            obs: (0..len * 2).map(|i| base + i as f32).collect(),
            act: (0..len).map(|i| -(base + i as f32)).collect(),
            rew: (0..len).map(|i| base * 10.0 + i as f32).collect(),
            cont: (0..len)
                .map(|i| if i + 1 == len { 0.0 } else { 1.0 })
                .collect(),
        }
    }

    fn names() -> Names {
        Names {
            obs: "o".into(),
            act: "a".into(),
            rew: "r".into(),
            cont: Some("c".into()),
        }
    }

    /// Whether a reward of the long episode (base 100) is its last step (4 of 0..5).
    fn k_last(rew: f32) -> bool {
        rew == 1004.0
    }

    #[test]
    fn windows_are_consecutive_steps_of_one_episode() {
        let mut r = Replay::new(2, 1);
        r.push(episode(5, 100.0));
        r.push(episode(2, 200.0)); // too short for t = 3: one padded, masked window
        let mut rng = StdRng::seed_from_u64(0);
        let b = r.sample(64, 3, &mut rng).unwrap();
        let mask = b.mask.as_ref().expect("a padded window is masked");
        let mut starts = std::collections::BTreeSet::new();
        let mut short = 0;
        for w in 0..64 {
            let rew = &b.rew[w * 3..w * 3 + 3];
            if rew[0] >= 2000.0 {
                // The short episode: its 2 steps, then padding; its terminal flag kept.
                short += 1;
                assert_eq!(rew, &[2000.0, 2001.0, 0.0]);
                assert_eq!(&b.cont[w * 3..w * 3 + 3], &[1.0, 0.0, 0.0]);
                assert_eq!(&mask[w * 3..w * 3 + 3], &[1.0, 1.0, 0.0]);
                continue;
            }
            assert_eq!(&mask[w * 3..w * 3 + 3], &[1.0, 1.0, 1.0]);
            assert!(rew[0] >= 1000.0 && rew[0] < 2000.0, "from the long episode");
            assert_eq!(b.cont[w * 3 + 2], if k_last(rew[2]) { 0.0 } else { 1.0 });
            let k = (rew[0] - 1000.0) as usize;
            starts.insert(k);
            assert_eq!(
                rew,
                &[1000.0 + k as f32, 1001.0 + k as f32, 1002.0 + k as f32]
            );
            assert_eq!(b.act[w * 3], -(100.0 + k as f32));
            assert_eq!(b.obs[w * 6], 100.0 + 2.0 * k as f32);
        }
        assert_eq!(
            starts.into_iter().collect::<Vec<_>>(),
            vec![0, 1, 2],
            "every start drawn"
        );
        // 3 windows of the long episode, 1 of the short: about a quarter of 64 draws.
        assert!((8..=26).contains(&short), "{short}");
        assert!(Replay::new(2, 1).sample(1, 6, &mut rng).is_none());
        assert_eq!(r.steps(), 7);
    }

    #[test]
    fn save_and_load_round_trip_ragged_episodes_through_vics_loader() {
        let mut r = Replay::new(2, 1);
        r.push(episode(4, 1.0));
        r.push(episode(3, 2.0));
        let dir = std::env::temp_dir().join(format!("vic-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("replay.npz");
        r.save(&path, &names()).unwrap();
        assert_eq!(Replay::load(&path, &names()).unwrap(), r);
        // vic's dataset loader reads it as a masked sequence dataset.
        use crate::data::{load, ValueKind, VarSpec};
        let specs = [
            VarSpec::new("o", true, 2, ValueKind::Real),
            VarSpec::new("a", true, 1, ValueKind::Real),
            VarSpec::new("r", true, 1, ValueKind::Real),
            VarSpec::new("c", true, 1, ValueKind::Real),
        ];
        let ds = load(&path, &specs, 1).expect("loads");
        assert_eq!(ds.seq_lens(), Some(vec![4, 3]));
        assert_eq!(ds.array("r").unwrap()[4..8], [20.0, 21.0, 22.0, 0.0]);
        assert_eq!(ds.array("c").unwrap()[0..4], [1.0, 1.0, 1.0, 0.0]);
        // A mask of the wrong shape is a diagnostic, not an index panic.
        {
            use ndarray::{Array2, Array3};
            let f = std::fs::File::create(&path).unwrap();
            let mut w = ndarray_npy::NpzWriter::new(f);
            w.add_array("o", &Array3::<f32>::zeros((2, 4, 2))).unwrap();
            w.add_array("a", &Array3::<f32>::zeros((2, 4, 1))).unwrap();
            w.add_array("r", &Array2::<f32>::zeros((2, 4))).unwrap();
            w.add_array("c", &Array2::<f32>::zeros((2, 4))).unwrap();
            w.add_array("mask", &Array2::<f32>::ones((1, 4))).unwrap();
            w.finish().unwrap();
            let e = Replay::load(&path, &names()).unwrap_err();
            assert_eq!(e.code, Code::BadCheckpoint);
            assert!(e.message.contains("mask"), "{}", e.message);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
