//! The digits VAE through the library API, as a program embedding vic would use it:
//! compile the model, load its data, train, evaluate, print the per-term report.
//!
//! ```text
//! cargo run --release --example train_vae
//! ```

use std::path::Path;
use vic::lower::Program;
use vic::train::{specs_of, TrainConfig, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let source = std::fs::read_to_string(models.join("vae_digits.vmodel"))?;

    // Compile: parse + check (diagnostics carry source spans), then derive and lower the ELBO.
    let model = vic::compile(&source, "vae_digits.vmodel").map_err(|e| format!("{e:?}"))?;
    let program = Program::new(model.ir(), &model.elbo()).map_err(|e| format!("{e:?}"))?;

    // The model reads `data "data/digits.npz"`; validate the file against its observed variables.
    let data = vic::data::load(models.join("data/digits.npz"), &specs_of(&program), 1)?;
    println!("{} images of {} pixels", data.n, data.layout["x"].size);

    // 10% held out (seeded), Adam at 1e-3, minibatches of 128.
    let cfg = TrainConfig {
        batch: 128,
        lr: 1e-3,
        seed: 0,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(program, Some(data), cfg)?;
    for _ in 0..200 {
        let s = trainer.step()?;
        if s.step % 20 == 0 {
            println!(
                "step {:>3}  ELBO {:>8.2}  |grad| {:>7.2}",
                s.step, s.elbo, s.grad_norm
            );
        }
    }

    // Held-out ELBO per image, 10 draws each, with standard errors, term by term.
    let report = trainer.evaluate(None, 10, 0)?;
    print!("held-out:\n{}", report.text());
    Ok(())
}
