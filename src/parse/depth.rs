//! A lexical pre-scan that bounds bracket nesting before the recursive-descent parser runs.

use crate::diag::{Code, Diagnostic};
use crate::span::Span;

/// Returns an `E002` diagnostic at the first bracket that opens level `max + 1`.
pub fn check_depth(src: &str, max: usize) -> Option<Diagnostic> {
    let bytes = src.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(
                        Diagnostic::new(
                            Code::TooDeep,
                            format!("brackets nested more than {max} deep"),
                        )
                        .label(Span::new(i, i + 1), "this bracket is too deep")
                        .help("split the expression with a `state` node, or remove redundant parentheses"),
                    );
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}
