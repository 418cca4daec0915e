//! Data layer: loading, validating, splitting and minibatching datasets.
//!
//! # Inputs
//!
//! The model side describes what it observes with [`VarSpec`]s (name, whether the
//! variable is time-indexed, flattened feature size, and the kind of values its
//! likelihood supports) plus `min_len`, the sequence length its time lags need.
//! [`load`] reads a file, picks the format from its extension, and checks it
//! against those specs.
//!
//! * **`.npz`** (`numpy.savez` / `savez_compressed`): one array per variable, named
//!   after it. Static variables have shape `(N, dims…)`, time-indexed ones
//!   `(N, T, dims…)`. Trailing feature dims are flattened row-major and must
//!   multiply to the declared size (a 64-dim variable may be stored as `(N, 64)` or
//!   `(N, 8, 8)`); a size-1 variable may omit the feature axis (`(N,)` / `(N, T)`).
//!   An optional `mask` array of shape `(N, T)` with 0/1 (or bool) values marks the
//!   observed steps of ragged sequences. Any other arrays (e.g. `obs_mean`) are kept
//!   unvalidated in [`Dataset::extras`]; extras with an unsupported dtype are skipped.
//! * **`.npy`**: a single array, which is assigned to the single observed variable.
//! * **`.csv`**: comma-separated, one header row of column names, one row per data
//!   point; static variables only. A variable `x` of size `D` is read either from a
//!   single column `x` (only when `D = 1`) or from the columns `x.0`, `x.1`, …,
//!   `x.{D-1}` (in any column order). Cells may be quoted; blank lines are skipped;
//!   `nan`/`inf` parse but are then rejected as non-finite. Columns not claimed by a
//!   variable become `(N,)` extras.
//!
//! Accepted dtypes: float32/64, int8/16/32/64, uint8/16/32/64 and bool, all
//! converted to `f32`.
//!
//! # Validation
//!
//! Every fault is returned as a [`DataError`] with a stable code (`vic::E101`…
//! `vic::E116`, see [`DataError::code`]) and a one-line [`DataError::help`]. Checks
//! run in this order: presence (E103), rank (E104), feature size (E105), N
//! agreement (E106), T agreement (E107), N ≥ 1 (E114), T ≥ max(min_len, 1) (E108),
//! mask shape/values (E112), empty mask rows (E113), finiteness (E109), support
//! (E111). Positions where `mask == 0` are exempt from the finiteness and support
//! checks and are set to [`ValueKind::pad`] in the loaded arrays (0, or 1 for a positive
//! variable, ½ for a Beta-observed one: inside the support, so NaN padding is harmless).
//! Only `T` is compared with `min_len`, not each row's masked length.
//!
//! # Splits and minibatches
//!
//! [`Dataset::split`] makes a seeded train/held-out split, [`MiniBatcher`] yields
//! seeded row indices ([`SampleMode::WithReplacement`] as the Pyro/NumPyro
//! benchmarks do, or [`SampleMode::Epoch`] shuffled passes) and
//! [`Dataset::gather`] builds the batch. Seeds drive `rand::rngs::StdRng`
//! (reproducible for a given `rand` 0.8 version).

mod batch;
mod error;
mod read;
#[cfg(test)]
mod tests;

pub use batch::{MiniBatcher, SampleMode};
pub use error::DataError;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The kind of values a variable's likelihood supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Any finite real.
    Real,
    /// Values in `[0, 1]` (e.g. continuous Bernoulli, Beta).
    Unit,
    /// Exactly 0 or 1.
    Binary,
    /// `groups` consecutive blocks of `classes` values, each block all 0 except a single 1.
    /// The variable's `size` must be `groups * classes`.
    OneHot {
        /// Independent categorical groups per row and step.
        groups: usize,
        /// Classes per group.
        classes: usize,
    },
    /// Counts 0, 1, 2, … (a Poisson-observed variable).
    Count,
    /// Values > 0 (a Gamma- or LogNormal-observed variable; the family's name).
    Positive(&'static str),
    /// Values in the open interval (0, 1) (a Beta-observed variable).
    OpenUnit,
}

impl ValueKind {
    /// The value a masked-out (padded) step holds: one inside the support, so every
    /// likelihood's log-density and its gradients stay finite on padded steps (the runtimes
    /// multiply a padded step's term by the mask's 0, and 0·∞ would be NaN): 0 where 0 is in
    /// the support, 1 for a positive variable, ½ for the open unit interval.
    pub fn pad(self) -> f32 {
        match self {
            ValueKind::Positive(_) => 1.0,
            ValueKind::OpenUnit => 0.5,
            ValueKind::Real
            | ValueKind::Unit
            | ValueKind::Binary
            | ValueKind::OneHot { .. }
            | ValueKind::Count => 0.0,
        }
    }
}

/// What the model observes: one entry per observed variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarSpec {
    /// The variable (the array's name in the file).
    pub name: String,
    /// Time-indexed (`(N, T, dims…)`) rather than static (`(N, dims…)`).
    pub timed: bool,
    /// Flattened feature size (product of the trailing dims).
    pub size: usize,
    /// Which values are allowed.
    pub kind: ValueKind,
}

impl VarSpec {
    /// A specification of one variable.
    pub fn new(name: impl Into<String>, timed: bool, size: usize, kind: ValueKind) -> Self {
        VarSpec {
            name: name.into(),
            timed,
            size,
            kind,
        }
    }
}

/// An array as read from a file: row-major `f32` data, its shape as stored, and the
/// dtype it was converted from.
#[derive(Debug, Clone, PartialEq)]
pub struct RawArray {
    /// Dimensions, row-major.
    pub shape: Vec<usize>,
    /// The values, converted to f32.
    pub data: Vec<f32>,
    /// The element type in the file (`f64`, `i32`, …).
    pub dtype: String,
}

impl RawArray {
    /// An in-memory array (recorded as `f32`).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        RawArray {
            shape,
            data,
            dtype: "float32".into(),
        }
    }
}

/// Layout of a validated variable inside [`Dataset::arrays`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarLayout {
    /// Whether the variable is time-indexed (`x[t]`).
    pub timed: bool,
    /// Values per row and step (the flattened feature size).
    pub size: usize,
}

/// A validated dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Number of rows (sequences, or data points for static-only data).
    pub n: usize,
    /// Sequence length, when there is a time-indexed variable.
    pub t: Option<usize>,
    /// One entry per observed variable: row-major `(N, T, size)` or `(N, size)`.
    pub arrays: BTreeMap<String, Vec<f32>>,
    /// `(N, T)` of 0.0/1.0, when the file has a `mask` and a time-indexed variable.
    pub mask: Option<Vec<f32>>,
    /// Layout of each entry in `arrays`.
    pub layout: BTreeMap<String, VarLayout>,
    /// Other arrays in the file, as stored, not validated (e.g. `obs_mean`).
    pub extras: BTreeMap<String, RawArray>,
    /// Where the data came from (for messages).
    pub source: PathBuf,
}

/// Loads and validates a data file; the format follows the extension
/// (`.npz`, `.npy`, `.csv`, case-insensitive).
pub fn load(
    path: impl AsRef<Path>,
    specs: &[VarSpec],
    min_len: usize,
) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    if !matches!(ext.as_str(), "npz" | "npy" | "csv") {
        // Report a missing file as such before complaining about the extension.
        read::read_bytes(path)?;
        return Err(DataError::InvalidFormat {
            path: path.to_path_buf(),
            format: if ext.is_empty() {
                "data".into()
            } else {
                format!(".{ext}")
            },
            array: None,
            reason: "unknown extension (expected .npz, .npy or .csv)".into(),
        });
    }
    let bytes = read::read_bytes(path)?;
    let raw = match ext.as_str() {
        "npz" => {
            let mut strict: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            strict.push("mask");
            read::read_npz(path, &bytes, &strict)?
        }
        "npy" => {
            let name = match specs {
                [one] => one.name.clone(),
                _ => path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("array")
                    .to_string(),
            };
            let a = read::read_npy(path, &bytes, &name)?;
            BTreeMap::from([(name, a)])
        }
        _ => csv_to_raw(path, &bytes, specs)?,
    };
    Dataset::from_raw(path, raw, specs, min_len)
}

fn csv_to_raw(
    path: &Path,
    bytes: &[u8],
    specs: &[VarSpec],
) -> Result<BTreeMap<String, RawArray>, DataError> {
    let csv = read::read_csv(path, bytes)?;
    let col = |name: &str| csv.columns.iter().position(|c| c == name);
    let mut used = vec![false; csv.columns.len()];
    let mut out = BTreeMap::new();
    for spec in specs {
        let single = if spec.size == 1 {
            col(&spec.name)
        } else {
            None
        };
        let cols: Vec<usize> = match single {
            Some(j) => vec![j],
            None => {
                let mut cols = Vec::with_capacity(spec.size);
                for d in 0..spec.size {
                    let name = format!("{}.{d}", spec.name);
                    match col(&name) {
                        Some(j) => cols.push(j),
                        None => {
                            let hint = if d == 0 && col(&spec.name).is_some() {
                                format!("column `{}` exists but a size-{} variable needs `{}.0`..`{}.{}`", spec.name, spec.size, spec.name, spec.name, spec.size - 1)
                            } else {
                                format!("CSV columns: {}", csv.columns.join(", "))
                            };
                            return Err(DataError::MissingArray {
                                path: path.to_path_buf(),
                                array: name,
                                found: hint,
                            });
                        }
                    }
                }
                cols
            }
        };
        if spec.timed {
            return Err(DataError::WrongRank {
                path: path.to_path_buf(),
                array: spec.name.clone(),
                shape: vec![csv.rows, cols.len()],
                expected: format!(
                    "(N, T, {}) for a time-indexed variable; CSV files hold static variables only, use .npz",
                    spec.size
                ),
            });
        }
        let mut data = Vec::with_capacity(csv.rows * cols.len());
        for i in 0..csv.rows {
            for &j in &cols {
                data.push(csv.values[j][i]);
            }
        }
        for &j in &cols {
            used[j] = true;
        }
        let shape = if single.is_some() {
            vec![csv.rows]
        } else {
            vec![csv.rows, cols.len()]
        };
        out.insert(spec.name.clone(), RawArray::new(shape, data));
    }
    for (j, name) in csv.columns.iter().enumerate() {
        if !used[j] {
            out.insert(
                name.clone(),
                RawArray::new(vec![csv.rows], csv.values[j].clone()),
            );
        }
    }
    Ok(out)
}

/// Converts a flat row-major index into a multi-index.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[k] = i % d;
            i /= d;
        }
    }
    idx
}

impl Dataset {
    /// Validates in-memory arrays (as read from `source`) against `specs`.
    /// `raw` may hold a `mask` and any extra arrays.
    pub fn from_raw(
        source: impl AsRef<Path>,
        mut raw: BTreeMap<String, RawArray>,
        specs: &[VarSpec],
        min_len: usize,
    ) -> Result<Dataset, DataError> {
        let path = source.as_ref().to_path_buf();
        let p = || path.clone();

        // Presence.
        for s in specs {
            if !raw.contains_key(&s.name) {
                let found: Vec<&str> = raw.keys().map(|k| k.as_str()).collect();
                return Err(DataError::MissingArray {
                    path: p(),
                    array: s.name.clone(),
                    found: if found.is_empty() {
                        "no arrays".into()
                    } else {
                        found.join(", ")
                    },
                });
            }
        }
        // Rank and feature size.
        for s in specs {
            let a = &raw[&s.name];
            let lead = 1 + s.timed as usize;
            let need = lead + (s.size != 1) as usize;
            let lead_desc = if s.timed { "N, T" } else { "N" };
            if a.shape.len() < need {
                return Err(DataError::WrongRank {
                    path: p(),
                    array: s.name.clone(),
                    shape: a.shape.clone(),
                    expected: if s.size == 1 {
                        format!("({lead_desc}) or ({lead_desc}, 1)")
                    } else {
                        format!(
                            "({lead_desc}, {}) or ({lead_desc}, dims…) with dims multiplying to {}",
                            s.size, s.size
                        )
                    },
                });
            }
            let found: usize = a.shape[lead..].iter().product();
            if found != s.size {
                return Err(DataError::FeatureSize {
                    path: p(),
                    array: s.name.clone(),
                    shape: a.shape.clone(),
                    expected: s.size,
                    found,
                });
            }
        }
        // N agreement (the mask too, if any).
        let n = match specs.first() {
            Some(s) => raw[&s.name].shape[0],
            None => raw
                .get("mask")
                .and_then(|m| m.shape.first().copied())
                .unwrap_or(0),
        };
        for s in specs.iter().skip(1) {
            let found = raw[&s.name].shape[0];
            if found != n {
                return Err(DataError::NMismatch {
                    path: p(),
                    array: s.name.clone(),
                    found,
                    reference: specs[0].name.clone(),
                    expected: n,
                });
            }
        }
        // T agreement.
        let first_timed = specs.iter().find(|s| s.timed);
        let t = first_timed.map(|s| raw[&s.name].shape[1]);
        if let (Some(t), Some(r)) = (t, first_timed) {
            for s in specs.iter().filter(|s| s.timed) {
                let found = raw[&s.name].shape[1];
                if found != t {
                    return Err(DataError::TMismatch {
                        path: p(),
                        array: s.name.clone(),
                        found,
                        reference: r.name.clone(),
                        expected: t,
                    });
                }
            }
        }
        if n == 0 {
            return Err(DataError::EmptyDataset {
                path: p(),
                detail: match specs.first() {
                    Some(s) => format!("array `{}` has N = 0 rows", s.name),
                    None => "no observed variables".into(),
                },
            });
        }
        if let (Some(t), Some(r)) = (t, first_timed) {
            if t < min_len.max(1) {
                return Err(DataError::TooShort {
                    path: p(),
                    array: r.name.clone(),
                    found: t,
                    min_len: min_len.max(1),
                });
            }
        }
        // Mask.
        let mask = match t {
            Some(t) => match raw.remove("mask") {
                Some(m) => {
                    if m.shape != [n, t] {
                        return Err(DataError::BadMask {
                            path: p(),
                            detail: format!("shape {:?}, expected [{n}, {t}] (N, T)", m.shape),
                        });
                    }
                    if let Some(i) = m.data.iter().position(|&v| v != 0.0 && v != 1.0) {
                        return Err(DataError::BadMask {
                            path: p(),
                            detail: format!(
                                "value {} at index {:?} is not 0 or 1",
                                m.data[i],
                                unravel(i, &m.shape)
                            ),
                        });
                    }
                    if let Some(row) =
                        (0..n).find(|&i| m.data[i * t..(i + 1) * t].iter().all(|&v| v == 0.0))
                    {
                        return Err(DataError::EmptyMaskRow { path: p(), row });
                    }
                    Some(m.data)
                }
                None => None,
            },
            None => None,
        };
        // Values: finiteness, then support, skipping masked-out steps.
        let mut arrays = BTreeMap::new();
        let mut layout = BTreeMap::new();
        for s in specs {
            let a = raw.remove(&s.name).expect("presence checked");
            let shape = a.shape;
            let mut data = a.data;
            let observed = |i: usize| -> bool {
                match (&mask, s.timed) {
                    (Some(m), true) => m[i / s.size] != 0.0,
                    _ => true,
                }
            };
            for (i, v) in data.iter_mut().enumerate() {
                if !observed(i) {
                    *v = s.kind.pad();
                } else if !v.is_finite() {
                    return Err(DataError::NonFinite {
                        path: p(),
                        array: s.name.clone(),
                        index: unravel(i, &shape),
                        value: format!("{v}"),
                    });
                }
            }
            check_support(&path, s, &data, &shape, &observed)?;
            arrays.insert(s.name.clone(), data);
            layout.insert(
                s.name.clone(),
                VarLayout {
                    timed: s.timed,
                    size: s.size,
                },
            );
        }
        Ok(Dataset {
            n,
            t,
            arrays,
            mask,
            layout,
            extras: raw,
            source: path,
        })
    }

    /// A validated variable's data, row-major `(N, T, size)` or `(N, size)`.
    pub fn array(&self, name: &str) -> Option<&[f32]> {
        self.arrays.get(name).map(|v| v.as_slice())
    }

    /// An unvalidated extra array (e.g. `obs_mean`).
    pub fn extra(&self, name: &str) -> Option<&RawArray> {
        self.extras.get(name)
    }

    /// Number of `f32`s per row of a variable (`T * size` or `size`).
    pub fn row_len(&self, name: &str) -> Option<usize> {
        let l = self.layout.get(name)?;
        Some(if l.timed {
            self.t.unwrap_or(0) * l.size
        } else {
            l.size
        })
    }

    /// Observed length of each sequence (mask row sums; `T` for every row without a mask).
    pub fn seq_lens(&self) -> Option<Vec<usize>> {
        let t = self.t?;
        Some(match &self.mask {
            Some(m) => m
                .chunks(t)
                .map(|r| r.iter().filter(|&&v| v != 0.0).count())
                .collect(),
            None => vec![t; self.n],
        })
    }

    /// Rows `indices` (in that order, repeats allowed) as a new dataset; extras are
    /// copied unchanged.
    ///
    /// # Panics
    /// If an index is `>= self.n` (indices come from [`MiniBatcher`] or [`Dataset::split`]).
    pub fn gather(&self, indices: &[usize]) -> Dataset {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.n) {
            panic!(
                "Dataset::gather: row index {bad} out of range (n = {})",
                self.n
            );
        }
        let take = |v: &[f32], row: usize| -> Vec<f32> {
            let mut out = Vec::with_capacity(indices.len() * row);
            for &i in indices {
                out.extend_from_slice(&v[i * row..(i + 1) * row]);
            }
            out
        };
        let arrays = self
            .arrays
            .iter()
            .map(|(k, v)| (k.clone(), take(v, self.row_len(k).unwrap_or(0))))
            .collect();
        Dataset {
            n: indices.len(),
            t: self.t,
            arrays,
            mask: self.mask.as_ref().map(|m| take(m, self.t.unwrap_or(0))),
            layout: self.layout.clone(),
            extras: self.extras.clone(),
            source: self.source.clone(),
        }
    }

    /// Seeded random split into `(train, heldout)`. `round(n * holdout_fraction)` rows
    /// (fraction clamped to `[0, 1]`, NaN = 0) are held out, but train keeps at least
    /// one row when `n >= 1`. Both parts keep the original row order.
    pub fn split(&self, holdout_fraction: f64, seed: u64) -> (Dataset, Dataset) {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let (_, k) = split_sizes(self.n, holdout_fraction);
        let mut perm: Vec<usize> = (0..self.n).collect();
        perm.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let mut held = perm[..k].to_vec();
        let mut train = perm[k..].to_vec();
        held.sort_unstable();
        train.sort_unstable();
        (self.gather(&train), self.gather(&held))
    }
}

/// The sizes `(train, held out)` of [`Dataset::split`] of `n` rows with `holdout_fraction`
/// held out: the held-out count is rounded, and at least one row is left to train on.
pub fn split_sizes(n: usize, holdout_fraction: f64) -> (usize, usize) {
    let f = if holdout_fraction.is_nan() {
        0.0
    } else {
        holdout_fraction.clamp(0.0, 1.0)
    };
    let k = ((n as f64 * f).round() as usize).min(n.saturating_sub(1));
    (n - k, k)
}

fn check_support(
    path: &Path,
    s: &VarSpec,
    data: &[f32],
    shape: &[usize],
    observed: &dyn Fn(usize) -> bool,
) -> Result<(), DataError> {
    let err = |i: usize, detail: String| DataError::OutOfSupport {
        path: path.to_path_buf(),
        array: s.name.clone(),
        index: unravel(i, shape),
        detail,
    };
    match s.kind {
        ValueKind::Real => {}
        ValueKind::Unit => {
            if let Some(i) =
                (0..data.len()).find(|&i| observed(i) && !(0.0..=1.0).contains(&data[i]))
            {
                return Err(err(
                    i,
                    format!(
                        "value {} is outside [0, 1] (unit-interval variable)",
                        data[i]
                    ),
                ));
            }
        }
        ValueKind::Binary => {
            if let Some(i) =
                (0..data.len()).find(|&i| observed(i) && data[i] != 0.0 && data[i] != 1.0)
            {
                return Err(err(
                    i,
                    format!("value {} is not 0 or 1 (binary variable)", data[i]),
                ));
            }
        }
        ValueKind::Count => {
            if let Some(i) = (0..data.len())
                .find(|&i| observed(i) && !(data[i] >= 0.0 && data[i].fract() == 0.0))
            {
                return Err(err(
                    i,
                    format!(
                        "value {} is not a count 0, 1, 2, … (Poisson-observed variable)",
                        data[i]
                    ),
                ));
            }
        }
        ValueKind::Positive(family) => {
            if let Some(i) = (0..data.len()).find(|&i| observed(i) && data[i] <= 0.0) {
                return Err(err(
                    i,
                    format!("value {} is not > 0 ({family}-observed variable)", data[i]),
                ));
            }
        }
        ValueKind::OpenUnit => {
            if let Some(i) =
                (0..data.len()).find(|&i| observed(i) && !(data[i] > 0.0 && data[i] < 1.0))
            {
                return Err(err(
                    i,
                    format!(
                        "value {} is outside the open interval (0, 1) (Beta-observed variable)",
                        data[i]
                    ),
                ));
            }
        }
        ValueKind::OneHot { groups, classes } => {
            if groups * classes != s.size || classes == 0 {
                return Err(err(
                    0,
                    format!("one-hot spec of {groups} groups x {classes} classes does not match size {}", s.size),
                ));
            }
            for (g, block) in data.chunks(classes).enumerate() {
                let start = g * classes;
                if !observed(start) {
                    continue;
                }
                if let Some(j) = block.iter().position(|&v| v != 0.0 && v != 1.0) {
                    return Err(err(
                        start + j,
                        format!("value {} is not 0 or 1 (one-hot variable)", block[j]),
                    ));
                }
                let ones = block.iter().filter(|&&v| v == 1.0).count();
                if ones != 1 {
                    return Err(err(
                        start,
                        format!("one-hot block of {classes} classes starting here has {ones} ones (expected exactly 1)"),
                    ));
                }
            }
        }
    }
    Ok(())
}
