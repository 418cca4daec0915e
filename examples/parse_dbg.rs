//! Debug helper: print the IR dump or the diagnostics of a model file.
fn main() {
    let path = std::env::args().nth(1).expect("usage: parse_dbg FILE");
    let src = std::fs::read_to_string(&path).expect("readable file");
    match vic::compile(&src, &path) {
        Ok(m) => {
            print!("{}", m.ir().dump());
            for w in m.warnings() {
                println!("{}", vic::diag::render_plain(&w));
            }
        }
        Err(f) => print!("{f}"),
    }
}
