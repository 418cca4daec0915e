//! Checkpoints: parameters + Adam state + a JSON metadata string in one safetensors file.
//!
//! Tensors: `param/{name}`, `adam.m/{name}`, `adam.v/{name}` (f32, little-endian).
//! Metadata keys: `format` = [`FORMAT`], `meta` (caller's JSON, stored verbatim),
//! `adam` (`step lr β1 β2 eps wd decoupled`, absent without optimiser), `checksum` (FNV-1a
//! 64 over names, shapes and bytes, then the `meta` and `adam` strings, so corrupted or edited
//! data — a step, a model name, a config — is an error, not silent garbage). Parameters must be
//! finite.
//! Writes are atomic: temp file in the same directory, fsync, rename, fsync directory.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::nets::params::ParamStore;
use super::optim::{Adam, AdamConfig, Moments};
use super::{Dev, RtError};

/// Value of the `format` metadata key.
pub const FORMAT: &str = "vic-checkpoint-v2";

/// What [`load`] returns.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The parameters.
    pub params: ParamStore,
    /// Adam's state, when it was saved.
    pub adam: Option<Adam>,
    /// The caller's JSON metadata, verbatim.
    pub meta: String,
}

struct Fnv(u64);
impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// FNV-1a 64 of `bytes`, as 16 hex digits: a stable fingerprint (the same on every platform
/// and version), e.g. of a model's checked IR.
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut h = Fnv::new();
    h.eat(bytes);
    format!("{:016x}", h.0)
}

fn checksum<'a>(
    entries: impl Iterator<Item = (&'a str, &'a [usize], &'a [u8])>,
    info: &HashMap<String, String>,
) -> String {
    let mut h = Fnv::new();
    for (name, shape, data) in entries {
        h.eat(name.as_bytes());
        for d in shape {
            h.eat(&(*d as u64).to_le_bytes());
        }
        h.eat(data);
    }
    for key in ["format", "meta", "adam"] {
        h.eat(key.as_bytes());
        match info.get(key) {
            Some(v) => {
                h.eat(&(v.len() as u64).to_le_bytes());
                h.eat(v.as_bytes());
            }
            None => h.eat(&u64::MAX.to_le_bytes()),
        }
    }
    format!("{:016x}", h.0)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RtError + '_ {
    move |source| RtError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad(path: &Path, msg: impl Into<String>) -> RtError {
    RtError::Checkpoint {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Saves `store`, the optimiser state and `meta` to `path` atomically.
pub fn save(
    path: &Path,
    store: &ParamStore,
    adam: Option<&Adam>,
    meta: &str,
) -> Result<(), RtError> {
    let mut entries: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, p) in store.iter() {
        entries.insert(
            format!("param/{name}"),
            (p.shape(), f32_bytes(&p.to_host())),
        );
    }
    let mut info = HashMap::new();
    if let Some(a) = adam {
        for (name, st) in &a.state {
            let shape = store.get(name)?.shape();
            entries.insert(format!("adam.m/{name}"), (shape.clone(), f32_bytes(&st.m)));
            entries.insert(format!("adam.v/{name}"), (shape, f32_bytes(&st.v)));
        }
        let c = &a.cfg;
        info.insert(
            "adam".to_string(),
            format!(
                "{} {} {} {} {} {} {}",
                a.step, c.lr, c.betas[0], c.betas[1], c.eps, c.weight_decay, c.decoupled
            ),
        );
    }
    info.insert("format".to_string(), FORMAT.to_string());
    info.insert("meta".to_string(), meta.to_string());
    let sum = checksum(
        entries
            .iter()
            .map(|(k, (s, d))| (k.as_str(), s.as_slice(), d.as_slice())),
        &info,
    );
    info.insert("checksum".to_string(), sum);
    let mut views = Vec::with_capacity(entries.len());
    for (k, (s, d)) in &entries {
        let v = TensorView::new(Dtype::F32, s.clone(), d).map_err(|e| bad(path, e.to_string()))?;
        views.push((k.clone(), v));
    }
    let bytes = safetensors::serialize(views, &Some(info)).map_err(|e| bad(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` via a temp file in the same directory, fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RtError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let fname = path
        .file_name()
        .ok_or_else(|| bad(path, "path has no file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{fname}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all(); // directory fsync: best effort (not supported everywhere)
    }
    Ok(())
}

fn parse_adam(path: &Path, s: &str) -> Result<(u64, AdamConfig), RtError> {
    let f: Vec<&str> = s.split_whitespace().collect();
    let num = |i: usize| -> Result<f64, RtError> {
        f.get(i)
            .and_then(|x| x.parse::<f64>().ok())
            .ok_or_else(|| bad(path, format!("bad adam metadata `{s}`")))
    };
    let step = f
        .first()
        .and_then(|x| x.parse::<u64>().ok())
        .ok_or_else(|| bad(path, format!("bad adam metadata `{s}`")))?;
    let decoupled = match f.get(6) {
        Some(&"true") => true,
        Some(&"false") => false,
        _ => return Err(bad(path, format!("bad adam metadata `{s}`"))),
    };
    Ok((
        step,
        AdamConfig {
            lr: num(1)?,
            betas: [num(2)?, num(3)?],
            eps: num(4)?,
            weight_decay: num(5)?,
            decoupled,
        },
    ))
}

/// Loads a checkpoint written by [`save`]; every malformed input is an `Err`.
pub fn load(path: &Path, dev: &Dev) -> Result<Checkpoint, RtError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| bad(path, format!("{e:?}")))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(path, format!("{e:?}")))?;
    let info = header.metadata().clone().unwrap_or_default();
    match info.get("format") {
        Some(f) if f == FORMAT => {}
        Some(f) if f == "vic-checkpoint-v1" => {
            return Err(bad(
                path,
                "written by an older vic (vic-checkpoint-v1, whose metadata is not checksummed); train again",
            ))
        }
        other => return Err(bad(path, format!("format is {other:?}, expected {FORMAT}"))),
    }
    let meta = info.get("meta").cloned().unwrap_or_default();
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(
                path,
                format!("tensor `{name}` is {:?}, expected F32", view.dtype()),
            ));
        }
        tensors.insert(name, (view.shape().to_vec(), view.data().to_vec()));
    }
    let sum = checksum(
        tensors
            .iter()
            .map(|(k, (s, d))| (k.as_str(), s.as_slice(), d.as_slice())),
        &info,
    );
    if info.get("checksum") != Some(&sum) {
        return Err(bad(path, "checksum mismatch (corrupted file)"));
    }
    let to_f32 = |d: &[u8]| -> Vec<f32> {
        d.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let mut params = ParamStore::new(dev.clone());
    let mut m = BTreeMap::new();
    let mut v = BTreeMap::new();
    for (k, (shape, data)) in &tensors {
        if let Some(name) = k.strip_prefix("param/") {
            let values = to_f32(data);
            if let Some(i) = values.iter().position(|x| !x.is_finite()) {
                return Err(bad(
                    path,
                    format!("parameter `{name}` holds {} at element {i}", values[i]),
                ));
            }
            params.insert_host(name, shape, values)?;
        } else if let Some(name) = k.strip_prefix("adam.m/") {
            m.insert(name.to_string(), to_f32(data));
        } else if let Some(name) = k.strip_prefix("adam.v/") {
            v.insert(name.to_string(), to_f32(data));
        } else {
            return Err(bad(path, format!("unexpected tensor `{k}`")));
        }
    }
    let adam = match info.get("adam") {
        None => None,
        Some(s) => {
            let (step, cfg) = parse_adam(path, s)?;
            let mut state = BTreeMap::new();
            for (name, mm) in m {
                let vv = v
                    .remove(&name)
                    .ok_or_else(|| bad(path, format!("adam.v/{name} missing")))?;
                if mm.len() != params.get(&name)?.numel() || vv.len() != mm.len() {
                    return Err(bad(
                        path,
                        format!("adam state of `{name}` has the wrong size"),
                    ));
                }
                state.insert(name, Moments { m: mm, v: vv });
            }
            if let Some(name) = v.keys().next() {
                return Err(bad(path, format!("adam.m/{name} missing")));
            }
            Some(Adam { cfg, step, state })
        }
    };
    Ok(Checkpoint { params, adam, meta })
}
