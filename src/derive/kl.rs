//! The closed-form KL table: which `KL(q ‖ p)` pairs are computed exactly.

pub use crate::forms::KlForm;
use crate::ir::Family;

/// The closed form of `KL(q ‖ p)` for two families, if there is one. (`Flat` priors are
/// handled as entropies by the caller.)
pub fn closed_form(q: Family, p: Family) -> Option<KlForm> {
    q.kl_with(p)
}
