//! Distribution families on `(rows, cols)` parameters; densities are summed over cols to
//! `(rows, 1)` (the `*_elem` variants keep `(rows, cols)`).

pub mod bernoulli;
pub mod categorical;
pub mod flat;
pub mod laplace;
pub mod normal;
pub mod tanh_normal;
pub mod uniform;
