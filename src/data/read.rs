//! File readers: `.npz`, `.npy` and `.csv` into [`RawArray`]s (f32, row-major,
//! shape as stored). No validation against the model happens here.

use super::error::DataError;
use super::RawArray;
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, ReadNpzError, ReadableElement};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

/// Reads the whole file, mapping I/O faults to `E101`.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn to_raw<T: Copy>(a: ArrayD<T>, f: impl Fn(T) -> f32, dtype: &str) -> RawArray {
    RawArray {
        shape: a.shape().to_vec(),
        data: a.iter().map(|&v| f(v)).collect(),
        dtype: dtype.to_string(),
    }
}

/// Outcome of one typed attempt at decoding an `.npy` stream.
enum Attempt {
    Ok(RawArray),
    /// The stored dtype is none of the supported ones; the descriptor is attached.
    WrongType(String),
    /// The stream is broken.
    Broken(String),
}

/// Where an `.npy` stream comes from: an in-memory `.npy` file or an npz member.
enum Src<'a, 'b> {
    Bytes(&'b [u8]),
    Npz(&'a mut ndarray_npy::NpzReader<Cursor<&'b [u8]>>, &'a str),
}

impl Src<'_, '_> {
    fn read<T: ReadableElement + Copy>(&mut self, f: impl Fn(T) -> f32, dtype: &str) -> Attempt {
        let res: Result<ArrayD<T>, ReadNpyError> = match self {
            Src::Bytes(b) => ArrayD::<T>::read_npy(Cursor::new(*b)),
            Src::Npz(npz, entry) => match npz.by_name::<ndarray::OwnedRepr<T>, IxDyn>(entry) {
                Ok(a) => Ok(a),
                Err(ReadNpzError::Npy(e)) => Err(e),
                Err(e) => return Attempt::Broken(e.to_string()),
            },
        };
        match res {
            Ok(a) => Attempt::Ok(to_raw(a, f, dtype)),
            Err(ReadNpyError::WrongDescriptor(d)) => Attempt::WrongType(d.to_string()),
            Err(e) => Attempt::Broken(e.to_string()),
        }
    }
}

/// Tries each supported element type in turn.
fn decode_any(mut src: Src<'_, '_>) -> Attempt {
    macro_rules! try_type {
        ($t:ty, $f:expr, $name:expr) => {{
            match src.read::<$t>($f, $name) {
                Attempt::WrongType(_) => {}
                other => return other,
            }
        }};
    }
    try_type!(f32, |v| v, "float32");
    try_type!(f64, |v| v as f32, "float64");
    try_type!(i64, |v| v as f32, "int64");
    try_type!(i32, |v| v as f32, "int32");
    try_type!(i16, |v| v as f32, "int16");
    try_type!(i8, |v| v as f32, "int8");
    try_type!(u8, |v| v as f32, "uint8");
    try_type!(u16, |v| v as f32, "uint16");
    try_type!(u32, |v| v as f32, "uint32");
    try_type!(u64, |v| v as f32, "uint64");
    // Last candidate: its `WrongType` carries the stored descriptor for the report.
    src.read::<bool>(|v| if v { 1.0 } else { 0.0 }, "bool")
}

/// Guards against headers declaring absurd shapes (which would make the npy reader
/// try to allocate them): the element count may not exceed the byte count.
fn check_npy_header_size(bytes: &[u8]) -> Result<(), String> {
    check_npy_elements(bytes, bytes.len() as u128)
}

/// The element count an npy header (at the start of `bytes`) declares may not exceed `size`.
fn check_npy_elements(bytes: &[u8], size: u128) -> Result<(), String> {
    let head = &bytes[..bytes.len().min(65_536)];
    let text = String::from_utf8_lossy(head);
    if let Some(start) = text.find("'shape':") {
        let rest = &text[start + 8..];
        if let (Some(open), Some(close)) = (rest.find('('), rest.find(')')) {
            if open < close {
                let mut count: u128 = 1;
                for part in rest[open + 1..close].split(',') {
                    let p = part.trim().trim_end_matches('L');
                    if p.is_empty() {
                        continue;
                    }
                    let d: u128 = p.parse().map_err(|_| format!("bad shape entry {p:?}"))?;
                    count = count.saturating_mul(d);
                }
                if count > size {
                    return Err(format!(
                        "header declares {count} elements but the array has only {size} bytes (truncated?)"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// [`check_npy_header_size`] for every member of an npz archive, before the npy reader sees
/// it: a member's element count may not exceed its stored size, nor the size deflate can
/// expand its compressed bytes to (so a lying zip directory cannot ask for more either).
fn check_npz_headers(bytes: &[u8]) -> Result<(), (String, String)> {
    use std::io::Read;
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return Ok(()); // the npz reader reports a broken archive
    };
    for i in 0..zip.len() {
        let Ok(f) = zip.by_index(i) else { continue };
        let name = f
            .name()
            .strip_suffix(".npy")
            .unwrap_or(f.name())
            .to_string();
        let bound = f.size().min(
            f.compressed_size()
                .saturating_mul(1100)
                .saturating_add(65_536),
        );
        let mut head = Vec::new();
        if f.take(65_536).read_to_end(&mut head).is_err() {
            continue; // the npz reader reports the broken member
        }
        check_npy_elements(&head, bound as u128).map_err(|e| (name, e))?;
    }
    Ok(())
}

fn finish(path: &Path, array: &str, format: &str, a: Attempt) -> Result<RawArray, DataError> {
    match a {
        Attempt::Ok(r) => Ok(r),
        Attempt::WrongType(dtype) => Err(DataError::UnsupportedDtype {
            path: path.to_path_buf(),
            array: array.to_string(),
            dtype,
        }),
        Attempt::Broken(reason) => Err(DataError::InvalidFormat {
            path: path.to_path_buf(),
            format: format.to_string(),
            array: Some(array.to_string()).filter(|s| !s.is_empty()),
            reason,
        }),
    }
}

/// Reads a single `.npy` array.
pub(crate) fn read_npy(path: &Path, bytes: &[u8], name: &str) -> Result<RawArray, DataError> {
    if let Err(reason) = check_npy_header_size(bytes) {
        return Err(DataError::InvalidFormat {
            path: path.to_path_buf(),
            format: "npy".into(),
            array: None,
            reason,
        });
    }
    finish(path, name, "npy", decode_any(Src::Bytes(bytes)))
}

/// Reads every array of an `.npz` archive. Arrays of the names in `strict` must decode;
/// others with an unsupported dtype are skipped (they are extras nobody asked for).
pub(crate) fn read_npz(
    path: &Path,
    bytes: &[u8],
    strict: &[&str],
) -> Result<BTreeMap<String, RawArray>, DataError> {
    let invalid = |array: Option<String>, reason: String| DataError::InvalidFormat {
        path: path.to_path_buf(),
        format: "npz".into(),
        array,
        reason,
    };
    check_npz_headers(bytes).map_err(|(array, reason)| invalid(Some(array), reason))?;
    let mut npz = ndarray_npy::NpzReader::new(Cursor::new(bytes))
        .map_err(|e| invalid(None, e.to_string()))?;
    let entries = npz.names().map_err(|e| invalid(None, e.to_string()))?;
    let mut out = BTreeMap::new();
    for entry in entries {
        let name = entry.strip_suffix(".npy").unwrap_or(&entry).to_string();
        match finish(path, &name, "npz", decode_any(Src::Npz(&mut npz, &entry))) {
            Ok(a) => {
                out.insert(name, a);
            }
            Err(DataError::UnsupportedDtype { .. }) if !strict.contains(&name.as_str()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// A parsed CSV file: column names (header order) and one `Vec` per column.
#[derive(Debug)]
pub(crate) struct Csv {
    pub columns: Vec<String>,
    pub values: Vec<Vec<f32>>,
    pub rows: usize,
}

/// Whether a header names pandas' index column: `df.to_csv(path)` writes the index first,
/// with an empty name (or `Unnamed: 0` after a round trip through `pd.read_csv`).
fn pandas_index(name: &str) -> bool {
    name.is_empty() || name.starts_with("Unnamed: ")
}

/// Parses a comma-separated file with a header row (RFC 4180 through the `csv` crate: quoted
/// cells, `""` inside quotes, CRLF line ends), after an optional UTF-8 byte-order mark.
/// Blank lines are skipped; spaces around cells are ignored; `nan`/`inf` parse (and are
/// rejected later as non-finite). pandas' index column (an unnamed first column) is refused
/// with advice, so that it is not mistaken for data.
pub(crate) fn read_csv(path: &Path, bytes: &[u8]) -> Result<Csv, DataError> {
    let invalid = |reason: String| DataError::InvalidFormat {
        path: path.to_path_buf(),
        format: "csv".into(),
        array: None,
        reason,
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(invalid(format!("not UTF-8 text ({e})")));
    }
    if bytes.contains(&0) {
        return Err(invalid("contains NUL bytes (binary data?)".into()));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut records = reader.records().filter(|r| match r {
        // A line of spaces is a record of one empty cell: a blank line.
        Ok(r) => !(r.len() == 1 && r[0].is_empty()),
        Err(_) => true,
    });
    // The line a record starts on, counted from its byte offset (the csv crate's own line
    // count does not count the blank lines it skips).
    let line_of = |r: &csv::StringRecord| {
        let mut at = r
            .position()
            .map_or(0, |p| p.byte() as usize)
            .min(bytes.len());
        while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
            at += 1;
        }
        1 + bytes[..at].iter().filter(|b| **b == b'\n').count()
    };
    let header = records
        .next()
        .ok_or_else(|| invalid("no header row (empty file)".into()))?
        .map_err(|e| invalid(e.to_string()))?;
    let columns: Vec<String> = header.iter().map(str::to_string).collect();
    if columns.len() > 1 && pandas_index(&columns[0]) {
        return Err(invalid(format!(
            "the first column is unnamed ({:?}): it looks like the index pandas writes with `df.to_csv(path)`; save with `df.to_csv(path, index=False)`, or drop the column",
            columns[0]
        )));
    }
    for (i, c) in columns.iter().enumerate() {
        if c.is_empty() {
            return Err(invalid(format!(
                "header column {} has an empty name",
                i + 1
            )));
        }
        if columns[..i].contains(c) {
            return Err(invalid(format!("header names column `{c}` twice")));
        }
    }
    let mut values = vec![Vec::new(); columns.len()];
    let mut rows = 0;
    for record in records {
        let record = record.map_err(|e| invalid(e.to_string()))?;
        let line = line_of(&record);
        if record.len() != columns.len() {
            return Err(DataError::CsvRagged {
                path: path.to_path_buf(),
                line,
                found: record.len(),
                expected: columns.len(),
            });
        }
        for (j, c) in record.iter().enumerate() {
            let v: f32 = c.parse().map_err(|_| DataError::CsvNonNumeric {
                path: path.to_path_buf(),
                line,
                column: columns[j].clone(),
                cell: c.to_string(),
            })?;
            values[j].push(v);
        }
        rows += 1;
    }
    Ok(Csv {
        columns,
        values,
        rows,
    })
}

#[cfg(test)]
mod csv_tests {
    use super::read_csv;
    use crate::data::DataError;
    use std::path::Path;

    fn read(text: &[u8]) -> Result<super::Csv, DataError> {
        read_csv(Path::new("t.csv"), text)
    }

    #[test]
    fn quoted_cells_a_bom_and_crlf_are_read() {
        let c = read(b"\xEF\xBB\xBF\"x.0\",y\r\n\"1.5\", 2 \r\n\r\n-3,\"4e-1\"\r\n").unwrap();
        assert_eq!(c.columns, ["x.0", "y"]);
        assert_eq!(c.rows, 2);
        assert_eq!(c.values, [vec![1.5, -3.0], vec![2.0, 0.4]]);
    }

    #[test]
    fn a_quoted_comma_is_one_cell_and_not_a_number() {
        let e = read(b"x,y\n1,2\n\"3,5\",6\n").unwrap_err();
        match e {
            DataError::CsvNonNumeric {
                line, column, cell, ..
            } => {
                assert_eq!((line, column.as_str(), cell.as_str()), (3, "x", "3,5"));
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn pandas_index_column_is_refused_with_advice() {
        for head in ["", "Unnamed: 0"] {
            let text = format!("{head},x,y\n0,1,2\n1,3,4\n");
            let e = read(text.as_bytes()).unwrap_err();
            assert!(e.to_string().contains("index=False"), "{e}");
            assert_eq!(e.code(), "vic::E102");
        }
    }

    #[test]
    fn ragged_rows_name_their_line() {
        let e = read(b"a,b\n1,2\n\n3\n").unwrap_err();
        assert!(
            matches!(
                e,
                DataError::CsvRagged {
                    line: 4,
                    found: 1,
                    expected: 2,
                    ..
                }
            ),
            "{e}"
        );
    }
}
