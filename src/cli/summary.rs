//! `vic check --summary`: what a model costs before it trains — parameters per net and in
//! total, the size of each latent, the chain's length, and the estimated memory of one
//! training step ([`vic::limits::run_bytes`], the estimate `vic run` refuses a run by).

use super::io::load_model;
use crate::exit::OK;
use std::path::{Path, PathBuf};
use vic::lower::Program;
use vic::train::{resolve_horizon, DEFAULT_BATCH};

/// `vic check --summary`: print each model's summary.
pub fn run(files: &[PathBuf], batch: Option<usize>, color: bool) -> u8 {
    let mut worst = OK;
    for path in files {
        match summary(path, batch, color) {
            Ok(text) => print!("{text}"),
            Err(c) => worst = worst.max(c),
        }
    }
    worst
}

fn summary(path: &Path, batch: Option<usize>, color: bool) -> Result<String, u8> {
    let model = load_model(path, color)?;
    let m = model.ir();
    let program = match Program::new(m, &model.elbo()) {
        Ok(p) => p,
        // `vic check` has printed the model's errors; a model it accepts but the runtime
        // cannot lower has no parameters to count.
        Err(_) => {
            eprintln!(
                "{}: no summary (the runtime cannot lower this model)",
                path.display()
            );
            return Err(crate::exit::FAILED);
        }
    };
    let store = program
        .init_params(
            &vic::runtime::Dev::default(),
            &mut vic::runtime::rng::seeded(0),
        )
        .map_err(|_| crate::exit::FAILED)?;
    let mut out = format!("{}  ({})\n", m.name, path.display());
    out.push_str("parameters\n");
    let mut total = 0usize;
    let mut rows: Vec<(String, usize)> = Vec::new();
    for (i, n) in m.nets.iter().enumerate() {
        let prefix = format!("{}.", vic::lower::net_prefix(m, i));
        let count: usize = store
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, p)| p.numel())
            .sum();
        rows.push((format!("net {}", n.name), count));
    }
    let plain: usize = store
        .iter()
        .filter(|(k, _)| !k.starts_with("net."))
        .map(|(_, p)| p.numel())
        .sum();
    if plain > 0 {
        rows.push(("params".into(), plain));
    }
    let w = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    for (name, count) in &rows {
        total += count;
        out.push_str(&format!("  {name:<w$}  {count:>10}\n"));
    }
    out.push_str(&format!("  {:<w$}  {total:>10}\n", "total"));
    out.push_str("latents\n");
    for v in m.vars.iter().filter(|v| v.role == vic::ir::Role::Latent) {
        out.push_str(&format!(
            "  {}{}  size {}\n",
            v.name,
            if v.timed { "[t]" } else { "" },
            v.ty.size()
        ));
    }
    let steps: Option<usize> = if !m.is_sequential() {
        Some(1)
    } else if m.is_control() {
        Some(resolve_horizon(None, m))
    } else {
        sequence_length(path, &program)
    };
    out.push_str(&format!(
        "chain     {}\n",
        match steps {
            Some(1) if !m.is_sequential() => "static (no time index)".to_string(),
            Some(t) if m.is_control() => format!("{t} steps (the horizon)"),
            Some(t) => format!("{t} steps (the data's sequences), lag {}", m.max_lag()),
            None => format!(
                "the data's length (no data file to read), lag {}",
                m.max_lag()
            ),
        }
    ));
    let b = batch
        .or(m.objective.batch.map(|b| b as usize))
        .unwrap_or(DEFAULT_BATCH);
    let k = m.objective.iwae.max(1) as usize;
    let t = steps.unwrap_or(1);
    let bytes = vic::limits::run_bytes(m, (b * k) as u64, t as u64);
    out.push_str(&format!(
        "memory    about {} per training step (batch {b}{}, {t} step{}; estimate)\n",
        vic::limits::human(bytes),
        if k > 1 {
            format!(" × {k} importance samples")
        } else {
            String::new()
        },
        if t == 1 { "" } else { "s" },
    ));
    // The runtime `vic run` would train on, from the same table the trainer reads.
    out.push_str(&format!(
        "runtime   {}\n",
        match vic::fused::support(&program) {
            Ok(()) => "fused".to_string(),
            Err(u) => format!("reference (the fused runtime lacks {})", u.0),
        }
    ));
    Ok(out)
}

/// The sequence length of the model's default data file, when it can be read.
fn sequence_length(path: &Path, program: &Program) -> Option<usize> {
    let data = path
        .parent()
        .unwrap_or(Path::new("."))
        .join(program.model.data.as_ref()?);
    let specs = vic::train::specs_of(program);
    vic::data::load(&data, &specs, program.plan.max_lag as usize + 1)
        .ok()?
        .t
}
