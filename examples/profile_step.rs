//! Profiling aid: N training steps of a model on its default data (no evaluation).
//! `cargo run --release --example profile_step -- models/vae_digits.vmodel 200 128`
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "models/vae_digits.vmodel".into());
    let steps: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let batch: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(128);
    let src = std::fs::read_to_string(&path).expect("model file");
    let m = vic::compile(&src, &path).expect("model compiles");
    let prog = vic::lower::Program::new(m.ir(), &m.elbo()).expect("model lowers");
    let data = m.ir().data.as_ref().map(|d| {
        let p = std::path::Path::new(&path).parent().unwrap().join(d);
        vic::data::load(p, &vic::train::specs_of(&prog), 1).expect("data")
    });
    let cfg = vic::train::TrainConfig {
        batch,
        holdout: 0.0,
        ..Default::default()
    };
    let mut tr = vic::train::Trainer::new(prog, data, cfg).expect("trainer");
    tr.step().expect("warm-up step");
    let t0 = std::time::Instant::now();
    let mut last = 0.0;
    for _ in 0..steps {
        last = tr.step().expect("step").elbo;
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{steps} steps in {s:.3} s: {:.1} steps/s, last ELBO {last:.3}",
        steps as f64 / s
    );
}
