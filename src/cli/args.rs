//! The flags of `vic sample`, shared by the command, its posterior predictive and its plots.

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    /// The model file (`.vmodel`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// A checkpoint (`checkpoint.safetensors`) or a run directory.
    #[arg(long, value_name = "RUN")]
    pub params: PathBuf,
    /// Number of draws.
    #[arg(long, default_value_t = 16)]
    pub n: usize,
    /// Steps per drawn sequence [default: the data's length, else the model's horizon, else
    /// 50].
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Data for inputs and for `--condition`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Follow the posterior on the data's first K steps, then run p open loop.
    #[arg(long, default_value_t = 0)]
    pub condition: usize,
    /// Random seed of the draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file.
    #[arg(long, default_value = "samples.npz")]
    pub out: PathBuf,
    /// Also write an SVG of sampled against real sequences.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Posterior predictive: follow q on every step of the data and draw each observed
    /// variable from p given the posterior (reconstructions); prints a predictive check.
    #[arg(long)]
    pub posterior: bool,
    /// With --posterior: also filtered one-step predictions (p one step open loop from the
    /// posterior at t − 1), written as `<name>_onestep`, checked and plotted.
    #[arg(long)]
    pub one_step: bool,
    /// Draws per sequence for --posterior.
    #[arg(long, default_value_t = 100)]
    pub draws: usize,
    /// With --plot: draw a static observed variable as a grid of images of this shape (e.g. 8x8).
    #[arg(long, value_name = "HxW")]
    pub image_shape: Option<String>,
    /// cpu, or cuda (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `HxW` → (H, W).
pub fn parse_shape(s: &str) -> Option<(usize, usize)> {
    let (h, w) = s.split_once(['x', 'X', '×'])?;
    let (h, w) = (h.trim().parse().ok()?, w.trim().parse().ok()?);
    (h > 0 && w > 0).then_some((h, w))
}
