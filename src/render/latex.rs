//! A standalone, compilable LaTeX document: the ELBO in `align*`, and optionally the steps,
//! on a page sized to fit them.

use super::elbo::{bound, signed_terms, weight_term};
use super::steps::{latex_lines, steps};
use super::style::{tex_escape, Latex, Style};
use crate::derive::Elbo;
use crate::ir::Model;
use std::fmt::Write;

/// The document: the ELBO (and the steps) on one page as wide as the widest line of math
/// (measured by TeX in the preamble; at least 6 cm of text, 14 cm with the steps' prose) and as tall as its content
/// (cropped at the end), so that nothing is cut or shrunk and no page is mostly blank.
pub fn document(m: &Model, elbo: &Elbo, with_steps: bool) -> String {
    let s = Latex;
    let mut body = String::new();
    let _ = writeln!(
        body,
        "\\section*{{The ELBO of \\texttt{{{}}}}}",
        tex_escape(&m.name)
    );
    body.push_str(&equation(&s, elbo));
    if with_steps {
        let _ = writeln!(body, "\\section*{{Derivation}}");
        let _ = writeln!(body, "\\begin{{enumerate}}");
        for st in steps(&s, m, elbo) {
            let _ = writeln!(
                body,
                "\\item \\textbf{{{}}}. {}",
                tex_escape(&st.title),
                tex_escape(&st.why)
            );
            let _ = writeln!(body, "\\begin{{align*}}");
            let lines = latex_lines(&st.math);
            let n = lines.len();
            for (i, l) in lines.iter().enumerate() {
                let _ = writeln!(body, "{l}{}", if i + 1 < n { " \\\\" } else { "" });
            }
            let _ = writeln!(body, "\\end{{align*}}");
        }
        let _ = writeln!(body, "\\end{{enumerate}}");
    }
    if let Some(im) = &elbo.imagination {
        body.push_str(&super::imagine::latex(m, im, with_steps));
    }
    let mut out = preamble(&body, if with_steps { 14 } else { 6 });
    out.push_str("\\begin{document}\n");
    out.push_str(&body);
    out.push_str("\\end{document}\n");
    out
}

/// The rows of every `align*` block of `body`, each split at its alignment point (the first
/// `&` that is not `\&`) into the left and right column, line ends dropped; further `&`s are
/// dropped too.
fn math_blocks(body: &str) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = Vec::new();
    let mut inside = false;
    for l in body.lines() {
        match l {
            "\\begin{align*}" => {
                inside = true;
                out.push(Vec::new());
            }
            "\\end{align*}" => inside = false,
            _ if inside => {
                let l = l.strip_suffix(" \\\\").unwrap_or(l);
                let (mut left, mut right) = (String::new(), String::new());
                let mut split = false;
                let mut prev = ' ';
                for c in l.chars() {
                    if c == '&' && prev != '\\' {
                        split = true;
                    } else if split {
                        right.push(c);
                    } else {
                        left.push(c);
                    }
                    prev = c;
                }
                if let Some(b) = out.last_mut() {
                    b.push(if split {
                        (left, right)
                    } else {
                        (String::new(), left)
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The preamble: packages; the widest `align*` block measured into `\vicw` (the widest left
/// column plus the widest right column, as `align*` sets them) or section heading; the page
/// set from it (geometry), at least `min_cm` of text wide; and the page height cropped to the
/// content at the end.
fn preamble(body: &str, min_cm: u32) -> String {
    let mut out = String::new();
    out.push_str("\\documentclass{article}\n");
    out.push_str("\\usepackage{amsmath,amssymb}\n");
    out.push_str("% The page: as wide as the widest block of math.\n");
    out.push_str("\\newlength{\\vicw}\\newlength{\\vicx}\\newlength{\\vicl}\\newlength{\\vicr}\\newlength{\\vicpw}\n");
    out.push_str("\\newcommand{\\vicblock}{\\global\\vicl=0pt\\global\\vicr=0pt}\n");
    out.push_str("\\newcommand{\\vicrow}[2]{\\settowidth{\\vicx}{$\\displaystyle #1$}\\ifdim\\vicx>\\vicl \\global\\vicl=\\vicx\\fi\\settowidth{\\vicx}{$\\displaystyle {}#2$}\\ifdim\\vicx>\\vicr \\global\\vicr=\\vicx\\fi}\n");
    out.push_str("\\newcommand{\\vicendblock}{\\vicx=\\vicl\\advance\\vicx by \\vicr\\ifdim\\vicx>\\vicw \\global\\vicw=\\vicx\\fi}\n");
    out.push_str("\\newcommand{\\vicheading}[1]{\\settowidth{\\vicx}{\\Large\\bfseries #1}\\ifdim\\vicx>\\vicw \\global\\vicw=\\vicx\\fi}\n");
    for h in body
        .lines()
        .filter_map(|l| l.strip_prefix("\\section*{")?.strip_suffix('}'))
    {
        let _ = writeln!(out, "\\vicheading{{{h}}}");
    }
    for block in math_blocks(body) {
        out.push_str("\\vicblock\n");
        for (l, r) in block {
            let _ = writeln!(out, "\\vicrow{{{l}}}{{{r}}}");
        }
        out.push_str("\\vicendblock\n");
    }
    out.push_str("\\addtolength{\\vicw}{3em}\n");
    let _ = writeln!(
        out,
        "\\ifdim\\vicw<{min_cm}cm \\setlength{{\\vicw}}{{{min_cm}cm}}\\fi"
    );
    out.push_str("\\setlength{\\vicpw}{\\vicw}\\addtolength{\\vicpw}{3cm}\n");
    out.push_str("% One tall page, cropped to its content at the end of the document.\n");
    out.push_str("\\usepackage[paperwidth=\\vicpw,textwidth=\\vicw,paperheight=500cm,top=1.5cm,textheight=495cm,nohead,nofoot]{geometry}\n");
    out.push_str("\\pagestyle{empty}\n");
    out.push_str("\\allowdisplaybreaks\n");
    out.push_str("\\AtEndDocument{\\par\\ifdefined\\pdfpageheight\\global\\pdfpageheight=\\dimexpr\\pagetotal+3cm\\relax\\else\\ifdefined\\pageheight\\global\\pageheight=\\dimexpr\\pagetotal+3cm\\relax\\fi\\fi}\n");
    out
}

/// The ELBO as an `align*` block.
pub fn equation(s: &dyn Style, elbo: &Elbo) -> String {
    let mut out = String::from("\\begin{align*}\n");
    if elbo.iwae > 1 {
        // The importance-weighted bound: the log of an average of K importance weights.
        let _ = writeln!(
            out,
            "{}_{{\\mathrm{{IWAE}}, K = {}}} &= {} \\\\",
            s.elbo(),
            elbo.iwae,
            s.iwae_objective()
        );
        let _ = writeln!(out, "&{} {} \\\\", s.leq(), bound(s, &elbo.bound));
        let n = elbo.terms.len();
        for (i, t) in elbo.terms.iter().enumerate() {
            let (neg, body) = weight_term(s, elbo, t);
            let sign = match (neg, i) {
                (true, _) => "- ",
                (false, 0) => "",
                (false, _) => "+ ",
            };
            let end = if i + 1 < n { " \\\\" } else { "" };
            if i == 0 {
                let _ = writeln!(out, "{} &= {sign}{body}{end}", s.weight());
            } else {
                let _ = writeln!(out, "&\\quad {sign}{body}{end}");
            }
        }
        out.push_str("\\end{align*}\n");
        let _ = writeln!(
            out,
            "\\noindent Here $w$ is the log importance weight of one joint sample of the latents from $q$, and $w_k$ is $w$ at the $k$-th of $K$ independent samples."
        );
        return out;
    }
    let terms = signed_terms(s, elbo);
    for (i, (neg, body)) in terms.iter().enumerate() {
        let sign = if *neg {
            "- "
        } else if i == 0 {
            ""
        } else {
            "+ "
        };
        if i == 0 {
            let _ = writeln!(out, "{} &= {sign}{body} \\\\", s.elbo());
        } else {
            let _ = writeln!(out, "&\\quad {sign}{body} \\\\");
        }
    }
    if terms.is_empty() {
        let _ = writeln!(out, "{} &= 0 \\\\", s.elbo());
    }
    let _ = writeln!(
        out,
        "&{} {}",
        super::elbo::relation(s, elbo),
        bound(s, &elbo.bound)
    );
    out.push_str("\\end{align*}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_split_rows_at_the_alignment_point() {
        let body = "\\section*{x}\n\\begin{align*}\na &= b \\\\\n&\\quad - \\text{c \\& d}\n\\end{align*}\ntext & more\n\\begin{align*}\nx\n\\end{align*}\n";
        let blocks = math_blocks(body);
        let row = |l: &str, r: &str| (l.to_string(), r.to_string());
        assert_eq!(
            blocks,
            [
                vec![row("a ", "= b"), row("", "\\quad - \\text{c \\& d}")],
                vec![row("", "x")]
            ]
        );
        let pre = preamble(body, 6);
        assert!(pre.contains(
            "\\vicblock\n\\vicrow{a }{= b}\n\\vicrow{}{\\quad - \\text{c \\& d}}\n\\vicendblock\n\\vicblock\n\\vicrow{}{x}\n\\vicendblock\n"
        ));
        assert!(pre.contains("\\ifdim\\vicw<6cm \\setlength{\\vicw}{6cm}\\fi"));
        assert!(pre.contains("\\vicheading{x}\n"));
        assert!(!pre.contains("more"));
    }
}
