//! Whether to colour: `--color auto|always|never` (clap's `ColorChoice`), `NO_COLOR`
//! (<https://no-color.org>: any non-empty value turns colours off unless `--color always`),
//! and a terminal on stderr. One answer for clap's help and errors, vic's diagnostics and
//! miette's theme.

use clap::ColorChoice;

/// The `--color` value on a command line, read before clap parses it (clap's own usage errors
/// are printed before there is a parsed `Cli`). The last occurrence wins; anything that is not
/// a valid choice is left for clap to reject.
pub fn color_from_args<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> ColorChoice {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut choice = ColorChoice::Auto;
    let mut i = 0;
    while i < args.len() {
        let value = if args[i] == "--color" {
            i += 1;
            args.get(i).map(String::as_str)
        } else {
            args[i].strip_prefix("--color=")
        };
        match value {
            Some("always") => choice = ColorChoice::Always,
            Some("never") => choice = ColorChoice::Never,
            Some("auto") => choice = ColorChoice::Auto,
            _ => {}
        }
        if args[i..].first().is_some_and(|a| a == "--") {
            break;
        }
        i += 1;
    }
    choice
}

/// Whether output to stderr is coloured under `choice`.
pub fn use_color(choice: ColorChoice) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    decide(
        choice,
        no_color,
        dumb,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    )
}

fn decide(choice: ColorChoice, no_color: bool, dumb: bool, terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => !no_color && !dumb && terminal,
    }
}

/// miette's theme follows the same answer, for the diagnostics printed with `{:?}`.
pub fn install_miette_hook(color: bool) {
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(true)
                .build(),
        )
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> ColorChoice {
        color_from_args(v.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn the_flag_is_read_in_both_spellings_and_the_last_wins() {
        assert_eq!(args(&["vic", "run", "x"]), ColorChoice::Auto);
        assert_eq!(
            args(&["vic", "--color", "never", "run"]),
            ColorChoice::Never
        );
        assert_eq!(args(&["vic", "run", "--color=always"]), ColorChoice::Always);
        assert_eq!(
            args(&["vic", "--color", "always", "--color", "never"]),
            ColorChoice::Never
        );
        assert_eq!(args(&["vic", "--color", "purple"]), ColorChoice::Auto);
    }

    #[test]
    fn no_color_and_dumb_terminals_turn_auto_off_but_not_always() {
        assert!(decide(ColorChoice::Auto, false, false, true));
        assert!(!decide(ColorChoice::Auto, true, false, true));
        assert!(!decide(ColorChoice::Auto, false, true, true));
        assert!(!decide(ColorChoice::Auto, false, false, false));
        assert!(decide(ColorChoice::Always, true, true, false));
        assert!(!decide(ColorChoice::Never, false, false, true));
    }
}
