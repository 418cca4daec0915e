//! Data-layer errors. Every fault in a data file is reported as a [`DataError`]
//! value; the loader never panics on bad input.
//!
//! Each variant carries a stable code (`vic::E101` …), the path of the file, the
//! array (variable) name where one is involved, a message (the `Display` impl)
//! and a one-line help ([`DataError::help`]).

use crate::diag::Code;
use std::path::PathBuf;

/// A fault found while loading or validating a data file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    /// `vic::E101`: the file does not exist or cannot be read.
    #[error("cannot read data file `{}`: {reason}", path.display())]
    Unreadable {
        /// The data file.
        path: PathBuf,
        /// Why it cannot be read.
        reason: String,
    },

    /// `vic::E102`: the bytes are not a valid `.npz` / `.npy` / `.csv` file
    /// (truncated, garbage, unknown extension).
    #[error("`{}` is not a valid {format} file: {reason}", path.display())]
    InvalidFormat {
        /// The data file.
        path: PathBuf,
        /// The format tried (`npz`, `npy`, `csv`).
        format: String,
        /// The array inside an `.npz` archive, when the fault is in one of them.
        array: Option<String>,
        /// Why the bytes cannot be read.
        reason: String,
    },

    /// `vic::E103`: an observed variable has no array in the file.
    #[error("`{}`: no array `{array}` for observed variable `{array}` (found: {found})", path.display())]
    MissingArray {
        /// The data file.
        path: PathBuf,
        /// The array (a variable, or a CSV column).
        array: String,
        /// What the file has.
        found: String,
    },

    /// `vic::E104`: the array has too few axes.
    #[error("`{}`: array `{array}` has shape {shape:?} (rank {}), expected {expected}", path.display(), shape.len())]
    WrongRank {
        /// The data file.
        path: PathBuf,
        /// The array (a variable, or a CSV column).
        array: String,
        /// The array's shape as stored.
        shape: Vec<usize>,
        /// What the model needs.
        expected: String,
    },

    /// `vic::E105`: the trailing (feature) dimensions do not flatten to the declared size.
    #[error("`{}`: array `{array}` has shape {shape:?}; its feature dims flatten to {found}, but the variable is declared with size {expected}", path.display())]
    FeatureSize {
        /// The data file.
        path: PathBuf,
        /// The array (a variable, or a CSV column).
        array: String,
        /// The array's shape as stored.
        shape: Vec<usize>,
        /// What the model needs.
        expected: usize,
        /// What the file has.
        found: usize,
    },

    /// `vic::E106`: arrays disagree on the number of rows N.
    #[error("`{}`: array `{array}` has N = {found} rows, but `{reference}` has N = {expected}", path.display())]
    NMismatch {
        /// The data file.
        path: PathBuf,
        /// The array (a variable, or a CSV column).
        array: String,
        /// What the file has.
        found: usize,
        /// The array the others are compared with.
        reference: String,
        /// What the model needs.
        expected: usize,
    },

    /// `vic::E107`: time-indexed arrays disagree on the sequence length T.
    #[error("`{}`: array `{array}` has T = {found} steps, but `{reference}` has T = {expected}", path.display())]
    TMismatch {
        /// The data file.
        path: PathBuf,
        /// The array (a variable, or a CSV column).
        array: String,
        /// What the file has.
        found: usize,
        /// The array the others are compared with.
        reference: String,
        /// What the model needs.
        expected: usize,
    },

    /// `vic::E108`: sequences are shorter than the model's time lags require.
    #[error("`{}`: array `{array}` has T = {found} steps, but the model needs at least {min_len}", path.display())]
    TooShort {
        /// The data file.
        path: PathBuf,
        /// The array (a variable, or a CSV column).
        array: String,
        /// What the file has.
        found: usize,
        /// The shortest sequence the model's lags allow.
        min_len: usize,
    },

    /// `vic::E109`: a NaN or infinite value.
    #[error("`{}`: array `{array}` contains {value} at index {index:?} (first non-finite value)", path.display())]
    NonFinite {
        /// The data file.
        path: PathBuf,
        /// The array (a variable, or a CSV column).
        array: String,
        /// Multi-index into the array as stored in the file.
        index: Vec<usize>,
        /// The value, as text.
        value: String,
    },

    /// `vic::E110`: an element type the loader cannot convert to f32.
    #[error("`{}`: array `{array}` has unsupported dtype {dtype}", path.display())]
    UnsupportedDtype {
        /// The data file.
        path: PathBuf,
        /// The array (a variable, or a CSV column).
        array: String,
        /// The element type in the file.
        dtype: String,
    },

    /// `vic::E111`: a value outside the support of the variable's distribution.
    #[error("`{}`: array `{array}`: {detail} at index {index:?}", path.display())]
    OutOfSupport {
        /// The data file.
        path: PathBuf,
        /// The array (a variable, or a CSV column).
        array: String,
        /// Multi-index into the array as stored in the file.
        index: Vec<usize>,
        /// What is wrong.
        detail: String,
    },

    /// `vic::E112`: the mask has the wrong shape or values other than 0/1.
    #[error("`{}`: bad `mask`: {detail}", path.display())]
    BadMask {
        /// The data file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// `vic::E113`: a mask row with no observed step.
    #[error("`{}`: `mask` row {row} is all zeros (sequence {row} has no observed step)", path.display())]
    EmptyMaskRow {
        /// The data file.
        path: PathBuf,
        /// The 0-based row.
        row: usize,
    },

    /// `vic::E114`: the dataset has no rows.
    #[error("`{}`: the dataset is empty ({detail})", path.display())]
    EmptyDataset {
        /// The data file.
        path: PathBuf,
        /// What is empty.
        detail: String,
    },

    /// `vic::E115`: a CSV row with a different number of cells than the header.
    #[error("`{}`: line {line} has {found} cells, but the header has {expected}", path.display())]
    CsvRagged {
        /// The data file.
        path: PathBuf,
        /// The 1-based line of the CSV file.
        line: usize,
        /// What the file has.
        found: usize,
        /// What the model needs.
        expected: usize,
    },

    /// `vic::E116`: a CSV cell that is not a number.
    #[error("`{}`: line {line}, column `{column}`: cannot parse {cell:?} as a number", path.display())]
    CsvNonNumeric {
        /// The data file.
        path: PathBuf,
        /// The 1-based line of the CSV file.
        line: usize,
        /// The CSV column.
        column: String,
        /// The cell's text.
        cell: String,
    },
}

impl DataError {
    /// The stable diagnostic code, e.g. `"vic::E105"`.
    pub fn code(&self) -> &'static str {
        use DataError::*;
        match self {
            Unreadable { .. } => Code::DataUnreadable.as_str(),
            InvalidFormat { .. } => Code::DataInvalidFormat.as_str(),
            MissingArray { .. } => Code::DataMissingArray.as_str(),
            WrongRank { .. } => Code::DataWrongRank.as_str(),
            FeatureSize { .. } => Code::DataFeatureSize.as_str(),
            NMismatch { .. } => Code::DataNMismatch.as_str(),
            TMismatch { .. } => Code::DataTMismatch.as_str(),
            TooShort { .. } => Code::DataTooShort.as_str(),
            NonFinite { .. } => Code::DataNonFinite.as_str(),
            UnsupportedDtype { .. } => Code::DataUnsupportedDtype.as_str(),
            OutOfSupport { .. } => Code::DataOutOfSupport.as_str(),
            BadMask { .. } => Code::DataBadMask.as_str(),
            EmptyMaskRow { .. } => Code::DataEmptyMaskRow.as_str(),
            EmptyDataset { .. } => Code::DataEmptyDataset.as_str(),
            CsvRagged { .. } => Code::DataCsvRagged.as_str(),
            CsvNonNumeric { .. } => Code::DataCsvNonNumeric.as_str(),
        }
    }

    /// A one-line hint on how to fix the fault.
    pub fn help(&self) -> &'static str {
        use DataError::*;
        match self {
            Unreadable { .. } => "check the path passed with --data (relative paths are resolved against the current directory)",
            InvalidFormat { .. } => "the file may be truncated or not what its extension says; re-export it with numpy.savez / numpy.save / a CSV writer (supported: .npz, .npy, .csv)",
            MissingArray { .. } => "name each array after the observed variable it holds (numpy.savez(path, x=..., y=...)); CSV columns are `x` or `x.0`..`x.{D-1}`",
            WrongRank { .. } => "static variables need shape (N, dims...) and time-indexed ones (N, T, dims...); add the missing axis (e.g. x[..., None])",
            FeatureSize { .. } => "the trailing dims must multiply to the size declared in the model (e.g. a 64-dim variable as (N, 64) or (N, 8, 8)); check the declaration and whether the variable is time-indexed",
            NMismatch { .. } => "every array must have the same number of rows (first axis)",
            TMismatch { .. } => "pad time-indexed arrays to a common length T and pass a `mask` array of shape (N, T)",
            TooShort { .. } => "the model's time lags need longer sequences; use longer trajectories or reduce the lags",
            NonFinite { .. } => "remove or impute NaN/Inf values; for padding in ragged sequences set `mask` to 0 at those steps",
            UnsupportedDtype { .. } => "convert the array to float32/float64/int/uint8/bool before saving (e.g. x.astype(numpy.float32))",
            OutOfSupport { .. } => "binary variables take 0/1, unit variables values in [0, 1], one-hot variables exactly one 1 per group, Poisson-observed ones counts 0, 1, 2, …, Gamma- and LogNormal-observed ones values > 0, Beta-observed ones values in (0, 1); rescale or change the variable's distribution",
            BadMask { .. } => "`mask` must have shape (N, T) matching the time-indexed arrays, with 0/1 or bool values",
            EmptyMaskRow { .. } => "drop sequences with no observed step, or set at least one mask entry of the row to 1",
            EmptyDataset { .. } => "the file must contain at least one row (N >= 1)",
            CsvRagged { .. } => "every CSV line must have one cell per header column",
            CsvNonNumeric { .. } => "CSV cells must be numbers (e.g. 0.5, -1, 1e-3, nan); encode categories as integers or one-hot columns",
        }
    }

    /// The file the fault was found in.
    pub fn path(&self) -> &std::path::Path {
        use DataError::*;
        match self {
            Unreadable { path, .. }
            | InvalidFormat { path, .. }
            | MissingArray { path, .. }
            | WrongRank { path, .. }
            | FeatureSize { path, .. }
            | NMismatch { path, .. }
            | TMismatch { path, .. }
            | TooShort { path, .. }
            | NonFinite { path, .. }
            | UnsupportedDtype { path, .. }
            | OutOfSupport { path, .. }
            | BadMask { path, .. }
            | EmptyMaskRow { path, .. }
            | EmptyDataset { path, .. }
            | CsvRagged { path, .. }
            | CsvNonNumeric { path, .. } => path,
        }
    }

    /// The array (variable, or CSV column) involved, where there is one.
    pub fn array(&self) -> Option<&str> {
        use DataError::*;
        match self {
            InvalidFormat { array, .. } => array.as_deref(),
            MissingArray { array, .. }
            | WrongRank { array, .. }
            | FeatureSize { array, .. }
            | NMismatch { array, .. }
            | TMismatch { array, .. }
            | TooShort { array, .. }
            | NonFinite { array, .. }
            | UnsupportedDtype { array, .. }
            | OutOfSupport { array, .. } => Some(array),
            CsvNonNumeric { column, .. } => Some(column),
            BadMask { .. } | EmptyMaskRow { .. } => Some("mask"),
            Unreadable { .. } | EmptyDataset { .. } | CsvRagged { .. } => None,
        }
    }

    /// The 1-based line number, for CSV faults.
    pub fn line(&self) -> Option<usize> {
        match self {
            DataError::CsvRagged { line, .. } | DataError::CsvNonNumeric { line, .. } => {
                Some(*line)
            }
            _ => None,
        }
    }

    /// `[vic::E105] <message>\n  help: <help>`, for plain-text reports.
    pub fn report(&self) -> String {
        format!("[{}] {}\n  help: {}", self.code(), self, self.help())
    }
}
