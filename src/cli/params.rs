//! `vic params RUN [--format table|json|npz]`: the learned values of a run by name, the
//! constrained value (softplus etc. applied) beside the raw one ([`vic::train::named_params`]).

use super::session::open;
use crate::exit::{checkpoint_error, coded, flag_error, train_error};
use crate::exit::{FAILED, OK};
use std::path::{Path, PathBuf};
use vic::train::{NamedParam, TrainConfig, Trainer};

/// `--format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamsFormat {
    /// A table: name, shape, value, raw value (tensors as their mean and spread).
    Table,
    /// `{"name": {"shape", "transform", "value", "raw"}}`, values row-major.
    Json,
    /// A `.npz` (`--out`): one array per name (the value), `<name>.raw` beside a transformed one.
    Npz,
}

#[derive(clap::Args, Debug)]
pub struct ParamsArgs {
    /// A run directory (or its `checkpoint.safetensors`).
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// The model file [default: the copy the run keeps, RUN/model.vmodel].
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ParamsFormat::Table)]
    pub format: ParamsFormat,
    /// Output file for `--format npz`.
    #[arg(long, default_value = "params.npz")]
    pub out: PathBuf,
}

/// `vic params`: the learned values of a run by name.
pub fn run(a: ParamsArgs, color: bool) -> u8 {
    let (dir, ckpt) = if a.run.is_dir() {
        (a.run.clone(), a.run.join("checkpoint.safetensors"))
    } else {
        (
            a.run
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            a.run.clone(),
        )
    };
    let model = a
        .model
        .clone()
        .unwrap_or_else(|| dir.join(vic::train::rundir::SOURCE));
    if a.model.is_none() && !model.exists() {
        return flag_error(
            format!(
                "`{}` has no copy of its model (`{}`)",
                dir.display(),
                vic::train::rundir::SOURCE
            ),
            "pass the model file: vic params RUN --model FILE.vmodel",
        );
    }
    let session = match open(&model, color) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let cfg = TrainConfig {
        holdout: 0.0,
        ..TrainConfig::default()
    };
    let mut tr = match Trainer::new(session.program, None, cfg) {
        Ok(t) => t,
        Err(e) => return train_error(&e, "cannot set up the model"),
    };
    let info = match tr.load_params(&ckpt) {
        Ok(i) => i,
        Err(e) => {
            return checkpoint_error(
                format!("cannot load `{}`: {e}", ckpt.display()),
                "pass a run directory written by `vic run` for this model",
            )
        }
    };
    let all = vic::train::named_params(&tr.program.model, &tr.store);
    match a.format {
        ParamsFormat::Table => {
            println!(
                "{} at step {} ({} tensors, {} values)",
                tr.program.model.name,
                info.step,
                all.len(),
                all.iter().map(|p| p.raw.len()).sum::<usize>()
            );
            print!("{}", table(&all));
            OK
        }
        ParamsFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = all
                .iter()
                .map(|p| (p.name.clone(), serde_json::to_value(p).unwrap_or_default()))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::Value::Object(map)).unwrap_or_default()
            );
            OK
        }
        ParamsFormat::Npz => match npz(&a.out, &all) {
            Ok(()) => {
                println!("wrote {} arrays to {}", all.len(), a.out.display());
                OK
            }
            Err(e) => {
                coded(
                    vic::diag::Code::CannotWrite,
                    format!("cannot write `{}`: {e}", a.out.display()),
                    "check that the directory exists, is writable and has space",
                );
                FAILED
            }
        },
    }
}

/// A number as the table shows it.
fn num(x: f64) -> String {
    format!("{x:.6}")
}

/// A tensor's values: all of them when there are at most 4, else mean, sd and range.
fn values(v: &[f64]) -> String {
    if v.len() <= 4 {
        return v.iter().map(|x| num(*x)).collect::<Vec<_>>().join(" ");
    }
    let (m, _) = vic::train::mean_se(v);
    let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("mean {m:.4}, sd {sd:.4}, in [{lo:.4}, {hi:.4}]")
}

/// The table: name, shape, value, and the raw value with its map where one applies.
pub fn table(all: &[NamedParam]) -> String {
    let rows: Vec<[String; 4]> = all
        .iter()
        .map(|p| {
            let shape = format!(
                "({})",
                p.shape
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let raw = match p.transform {
                Some(t) => format!("{t}({})", values(&p.raw)),
                None => String::new(),
            };
            [p.name.clone(), shape, values(&p.value), raw]
        })
        .collect();
    let head = ["name", "shape", "value", "raw"].map(String::from);
    let mut w = [0usize; 4];
    for r in std::iter::once(&head).chain(&rows) {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&head).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = " ".repeat(w[i] - c.chars().count());
                format!("{c}{pad}")
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn npz(path: &Path, all: &[NamedParam]) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut w = ndarray_npy::NpzWriter::new(file);
    let arr = |shape: &[usize], v: &[f64]| {
        ndarray::ArrayD::from_shape_vec(shape.to_vec(), v.iter().map(|x| *x as f32).collect())
            .map_err(|e| e.to_string())
    };
    for p in all {
        w.add_array(p.name.as_str(), &arr(&p.shape, &p.value)?)
            .map_err(|e| e.to_string())?;
        if p.transform.is_some() {
            w.add_array(format!("{}.raw", p.name), &arr(&p.shape, &p.raw)?)
                .map_err(|e| e.to_string())?;
        }
    }
    w.finish().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_the_map_beside_the_raw_value_and_summarises_tensors() {
        let all = vec![
            NamedParam {
                name: "s".into(),
                shape: vec![1],
                transform: Some("softplus"),
                value: vec![1.0],
                raw: vec![0.5413248546],
            },
            NamedParam {
                name: "enc.0.weight".into(),
                shape: vec![2, 3],
                transform: None,
                value: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                raw: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            },
        ];
        // mean 3.5; population sd of 1..6 = sqrt(35/12) = 1.7078. The value column is as
        // wide as its widest cell (43 characters), columns two spaces apart.
        assert_eq!(
            table(&all),
            [
                format!("name          shape   value{}raw", " ".repeat(43 - 5 + 2)),
                format!(
                    "s             (1)     1.000000{}softplus(0.541325)",
                    " ".repeat(43 - 8 + 2)
                ),
                "enc.0.weight  (2, 3)  mean 3.5000, sd 1.7078, in [1.0000, 6.0000]".to_string(),
                String::new(),
            ]
            .join("\n")
        );
    }
}
