//! Embed the compiler: compile a model from a string, print its ELBO, the derivation and
//! the number of terms. Run with `cargo run --example print_elbo`.

use vic::render::Format;

const SOURCE: &str = r#"
model toy_ssm {
  observed x[t] : real
  latent   z[t] : real
  param a : real = 0.5
  p {
    z[1] ~ Normal(0, 1)
    z[t] ~ Normal(a * z[t-1], 1)
    x[t] ~ Normal(z[t], 0.5)
  }
  q {
    z[1] ~ Normal(x[1], 1)
    z[t] ~ Normal(a * z[t-1] + x[t], 1)
  }
}
"#;

fn main() -> Result<(), vic::Failure> {
    let model = vic::compile(SOURCE, "toy_ssm.vmodel")?;
    let elbo = model.elbo();
    println!("{}", model.render_elbo(Format::Text, false));
    println!("{}", vic::render::steps::text(model.ir(), &elbo));
    println!("{} terms", elbo.terms.len());
    Ok(())
}
