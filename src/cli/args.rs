//! The flags of `vic sample` (shared by the command, its posterior predictive and its plots)
//! and of `vic agent` (shared by its two modes, a learned world model and known dynamics).

use std::path::PathBuf;
use vic::agent::known::KnownConfig;
use vic::agent::learn::AgentConfig;

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

/// The defaults of every flag (the library's, shared with `vic.agent`).
const D: AgentConfig = AgentConfig::DEFAULT;

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// The model file (`.vmodel`) with an `imagine` block.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The environment: `pendulum` (built in) or `gym:ID` (Gymnasium through the bridge).
    #[arg(long, default_value = "pendulum")]
    pub env: String,
    /// Training environment steps in all, counting resumed ones.
    #[arg(long, default_value_t = D.env_steps)]
    pub env_steps: u64,
    /// Output directory (episodes.jsonl, metrics.jsonl, checkpoint, replay.npz, returns.svg).
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its checkpoint (its replay and counters too).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Start over in a directory that already holds a run.
    #[arg(long)]
    pub force: bool,
    /// Random seed: parameters, environment resets, replay windows, noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Environment steps of uniformly random actions before learning.
    #[arg(long, default_value_t = D.prefill)]
    pub prefill: u64,
    /// Environment steps per update (one world-model and one behaviour update).
    #[arg(long, default_value_t = D.train_every)]
    pub train_every: u64,
    /// World-model batch: replay windows per update.
    #[arg(long, default_value_t = D.batch)]
    pub batch: usize,
    /// World-model batch: steps per window (every other step's posterior starts an imagined
    /// rollout, by default: --starts).
    #[arg(long, default_value_t = D.length)]
    pub length: usize,
    /// The world model's Adam learning rate.
    #[arg(long, default_value_t = D.model_lr)]
    pub model_lr: f64,
    /// The actor's Adam learning rate.
    /// [default: 2e-4; 3e-4 with known dynamics (`start = prior`)]
    #[arg(long)]
    pub actor_lr: Option<f64>,
    /// The critic's Adam learning rate.
    /// [default: 5e-4; 3e-4 with known dynamics (`start = prior`)]
    #[arg(long)]
    pub critic_lr: Option<f64>,
    /// DreamerV3's return normalisation: divide the actor's return (not its entropy bonus) by
    /// max(1, S), S a moving average of the 95th − 5th percentile range of the imagined returns
    #[arg(long)]
    pub return_norm: bool,
    /// DreamerV3's symlog rewards: the world model learns symlog(r), imagination reads symexp
    #[arg(long)]
    pub symlog_rewards: bool,
    /// A slow (EMA) target critic for the λ-returns, moving this fraction per update
    /// (DreamerV3: 0.02; 0: off)
    #[arg(long, default_value_t = D.behaviour.slow_critic)]
    pub slow_critic: f64,
    /// Training environment steps between evaluations (0: none).
    #[arg(long, default_value_t = D.eval_every)]
    pub eval_every: u64,
    /// Episodes per evaluation, acting with the policy's mode.
    #[arg(long, default_value_t = D.eval_episodes)]
    pub eval_episodes: usize,
    /// Worker threads (0: one per core, at most 2).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// With --resume: only act N episodes with the policy's mode in --env (reset seeds
    /// 2,000,000 + k) and print their mean return; nothing is trained or written.
    #[arg(long, value_name = "N", requires = "resume")]
    pub evaluate: Option<usize>,
    /// Known dynamics (`start = prior`): behaviour updates in all (no environment steps).
    #[arg(long, default_value_t = KnownConfig::default().updates)]
    pub updates: u64,
    /// Start states per behaviour update: with a world model, that many of the batch's
    /// posterior states, evenly spaced along each window.
    /// [default: half of --batch × --length, 400; 512 with known dynamics (`start = prior`)]
    #[arg(long)]
    pub starts: Option<usize>,
}
