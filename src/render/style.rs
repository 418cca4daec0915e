//! Notation: one trait, two dialects (Unicode text and LaTeX), so the ELBO display and the
//! step-by-step derivation are written once.

use crate::derive::{FactorView, Range};

/// How symbols are written: Unicode text or LaTeX.
pub trait Style {
    /// A variable reference as written (`s[t-1]`, `o[1:T]`).
    fn var(&self, v: &str) -> String;
    /// A variable or parameter name.
    fn name(&self, n: &str) -> String;
    /// A factor `q(z | x)`.
    fn factor(&self, f: &FactorView) -> String {
        self.density(f.block, &f.target, &f.given)
    }
    /// A density `p(target | given)`.
    fn density(&self, block: &str, target: &str, given: &[String]) -> String;
    /// An expectation under q of `body`.
    fn expect(&self, under: &[String], body: &str) -> String;
    /// `KL(q ‖ p)`.
    fn kl(&self, q: &str, p: &str) -> String;
    /// The entropy `H[q]`.
    fn entropy(&self, q: &str) -> String;
    /// `log x`.
    fn log(&self, x: &str) -> String;
    /// A sum over the steps of `range`.
    fn sum(&self, range: Range, body: &str) -> String;
    /// A fraction.
    fn frac(&self, a: &str, b: &str) -> String;
    /// The temperature α.
    fn alpha(&self) -> &'static str;
    /// `≤`.
    fn leq(&self) -> &'static str;
    /// `≥`.
    fn geq(&self) -> &'static str;
    /// The minus sign.
    fn minus(&self) -> &'static str;
    /// Source code, as written.
    fn code(&self, s: &str) -> String;
    /// Prose.
    fn text(&self, s: &str) -> String;
    /// `𝔼_{sub}[ body ]`.
    fn expect_sub(&self, sub: &str, body: &str) -> String;
    /// An integral of `body` over `over`.
    fn integral(&self, body: &str, over: &str) -> String;
    /// An ellipsis.
    fn dots(&self) -> &'static str;
    /// The empty set.
    fn empty_set(&self) -> &'static str;
    /// The name of the bound, `ELBO`.
    fn elbo(&self) -> &'static str;
    /// The conditioning bar.
    fn bar(&self) -> &'static str;
    /// Space before a side remark on a math line.
    fn sep(&self) -> &'static str;
    /// A KL formula from the closed-form table.
    fn kl_formula(&self, f: crate::derive::KlForm) -> String;
    /// The entropy of a diagonal Normal with D dimensions.
    fn normal_entropy(&self) -> &'static str;
    /// `( body )`, for a multi-part integrand under a sum.
    fn paren(&self, body: &str) -> String;
    /// The log importance weight of one joint sample (IWAE).
    fn weight(&self) -> &'static str;
    /// The IWAE objective over K samples of the weight: `𝔼[ log (1/K) Σ_k exp w_k ]`.
    fn iwae_objective(&self) -> String;
    /// The forward variable `α_{t}(x)` of the forward algorithm.
    fn fwd_var(&self, t: &str, x: &str) -> String;
    /// `Σ_{over} body`.
    fn sum_over(&self, over: &str, body: &str) -> String;
    /// `log Σ_{k[1:T]} init · Π_{t=2..T} trans · Π_{t=1..T} (emissions)`: a chain summed out.
    /// `log Σ_{chain[1:T]} init Π_{t≥2} trans Π … emissions`; each emission group is the
    /// first step of its product (1 or 2; 0 for a base case at step 1, no product) and its
    /// factors.
    fn marginal(&self, chain: &str, init: &str, trans: &str, emissions: &[(u32, String)])
        -> String;
}

/// Unicode text.
pub struct Unicode;
/// LaTeX.
pub struct Latex;

impl Style for Unicode {
    fn var(&self, v: &str) -> String {
        v.to_string()
    }
    fn name(&self, n: &str) -> String {
        n.to_string()
    }
    fn density(&self, block: &str, target: &str, given: &[String]) -> String {
        if given.is_empty() {
            format!("{block}({target})")
        } else {
            format!("{block}({target} | {})", given.join(", "))
        }
    }
    fn expect(&self, under: &[String], body: &str) -> String {
        if under.is_empty() {
            body.to_string()
        } else {
            format!("𝔼_q[ {body} ]")
        }
    }
    fn kl(&self, q: &str, p: &str) -> String {
        format!("KL( {q} ‖ {p} )")
    }
    fn entropy(&self, q: &str) -> String {
        format!("H[ {q} ]")
    }
    fn log(&self, x: &str) -> String {
        format!("log {x}")
    }
    fn fwd_var(&self, t: &str, x: &str) -> String {
        if t.chars().count() > 1 {
            format!("α_{{{t}}}({x})")
        } else {
            format!("α_{t}({x})")
        }
    }
    fn sum_over(&self, over: &str, body: &str) -> String {
        format!("Σ_{{{over}}} {body}")
    }
    fn marginal(
        &self,
        chain: &str,
        init: &str,
        trans: &str,
        emissions: &[(u32, String)],
    ) -> String {
        let em: Vec<String> = emissions
            .iter()
            .map(|(t, e)| match t {
                0 => e.clone(),
                t => format!("Π_{{t={t}..T}} {e}"),
            })
            .collect();
        format!(
            "log Σ_{{{chain}[1:T]}} {init} Π_{{t=2..T}} {trans} {}",
            em.join(" ")
        )
    }
    fn sum(&self, range: Range, body: &str) -> String {
        match range {
            Range::Static | Range::At { .. } => body.to_string(),
            Range::From { t } => format!("Σ_{{t={t}..T}} {body}"),
        }
    }
    fn frac(&self, a: &str, b: &str) -> String {
        format!("{a} / {b}")
    }
    fn alpha(&self) -> &'static str {
        "α"
    }
    fn leq(&self) -> &'static str {
        "≤"
    }
    fn geq(&self) -> &'static str {
        "≥"
    }
    fn minus(&self) -> &'static str {
        "−"
    }
    fn code(&self, s: &str) -> String {
        s.to_string()
    }
    fn text(&self, s: &str) -> String {
        s.to_string()
    }
    fn expect_sub(&self, sub: &str, body: &str) -> String {
        if sub.chars().count() == 1 {
            format!("𝔼_{sub}[ {body} ]")
        } else {
            format!("𝔼_{{{sub}}}[ {body} ]")
        }
    }
    fn integral(&self, body: &str, over: &str) -> String {
        format!("∫ {body} d({over})")
    }
    fn dots(&self) -> &'static str {
        "…"
    }
    fn empty_set(&self) -> &'static str {
        "∅"
    }
    fn elbo(&self) -> &'static str {
        "ELBO"
    }
    fn bar(&self) -> &'static str {
        "|"
    }
    fn sep(&self) -> &'static str {
        "    "
    }
    fn kl_formula(&self, f: crate::derive::KlForm) -> String {
        f.formula().to_string()
    }
    fn normal_entropy(&self) -> &'static str {
        "Σᵢ log σᵢ + (D/2) log(2πe)"
    }
    fn paren(&self, body: &str) -> String {
        format!("( {body} )")
    }
    fn weight(&self) -> &'static str {
        "w"
    }
    fn iwae_objective(&self) -> String {
        "𝔼_q[ log (1/K) Σ_{k=1..K} exp w_k ]".into()
    }
}

/// Escape text for LaTeX's text mode (also inside `\\text{}` in math): the special
/// characters, the glyphs OT1 fonts get wrong, and the Unicode math signs of the text style.
pub fn tex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '_' | '%' | '&' | '#' | '$' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '\\' => out.push_str("\\textbackslash{}"),
            // OT1 text fonts draw these as other glyphs (`—`, `¡`, `¿`, `”`).
            '|' => out.push_str("\\textbar{}"),
            '<' => out.push_str("\\textless{}"),
            '>' => out.push_str("\\textgreater{}"),
            '"' => out.push_str("''"),
            '‖' => out.push_str("$\\|$"),
            '≤' => out.push_str("$\\le$"),
            '≥' => out.push_str("$\\ge$"),
            '−' => out.push('-'),
            '·' => out.push_str("$\\cdot$"),
            'α' => out.push_str("$\\alpha$"),
            'γ' => out.push_str("$\\gamma$"),
            'λ' => out.push_str("$\\lambda$"),
            'τ' => out.push_str("$\\tau$"),
            'π' => out.push_str("$\\pi$"),
            'η' => out.push_str("$\\eta$"),
            '≈' => out.push_str("$\\approx$"),
            '½' => out.push_str("$\\tfrac{1}{2}$"),
            'ε' => out.push_str("$\\varepsilon$"),
            'μ' => out.push_str("$\\mu$"),
            'σ' => out.push_str("$\\sigma$"),
            'Σ' => out.push_str("$\\Sigma$"),
            '𝔼' => out.push_str("$\\mathbb{E}$"),
            '∞' => out.push_str("$\\infty$"),
            'ℝ' => out.push_str("$\\mathbb{R}$"),
            '→' => out.push_str("$\\to$"),
            '⊆' => out.push_str("$\\subseteq$"),
            '×' => out.push_str("$\\times$"),
            c if c.is_ascii() => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

impl Latex {
    fn ident(&self, n: &str) -> String {
        if n.chars().count() == 1 {
            n.to_string()
        } else {
            format!("\\mathrm{{{}}}", n.replace('_', "\\_"))
        }
    }
}

impl Style for Latex {
    /// `s[t-1]` → `s_{t-1}`, `o[1:T]` → `o_{1:T}`; a LaTeX command (`\dots`) stays as is.
    fn var(&self, v: &str) -> String {
        if v.starts_with('\\') {
            return v.to_string();
        }
        match v.find('[') {
            Some(i) if v.ends_with(']') => {
                let idx = &v[i + 1..v.len() - 1];
                format!("{}_{{{}}}", self.ident(&v[..i]), idx.replace(':', "{:}"))
            }
            _ => self.ident(v),
        }
    }
    fn name(&self, n: &str) -> String {
        self.ident(n)
    }
    fn density(&self, block: &str, target: &str, given: &[String]) -> String {
        let t = self.var(target);
        if given.is_empty() {
            format!("{block}({t})")
        } else {
            let g: Vec<String> = given.iter().map(|x| self.var(x)).collect();
            format!("{block}({t} \\mid {})", g.join(", "))
        }
    }
    fn expect(&self, under: &[String], body: &str) -> String {
        if under.is_empty() {
            body.to_string()
        } else {
            format!("\\mathbb{{E}}_{{q}}\\left[ {body} \\right]")
        }
    }
    fn kl(&self, q: &str, p: &str) -> String {
        format!("\\mathrm{{KL}}\\left( {q} \\,\\middle\\|\\, {p} \\right)")
    }
    fn entropy(&self, q: &str) -> String {
        format!("\\mathrm{{H}}\\left[ {q} \\right]")
    }
    fn log(&self, x: &str) -> String {
        format!("\\log {x}")
    }
    fn fwd_var(&self, t: &str, x: &str) -> String {
        format!("\\alpha_{{{t}}}({x})")
    }
    fn sum_over(&self, over: &str, body: &str) -> String {
        format!("\\sum_{{{over}}} {body}")
    }
    fn marginal(
        &self,
        chain: &str,
        init: &str,
        trans: &str,
        emissions: &[(u32, String)],
    ) -> String {
        let em: Vec<String> = emissions
            .iter()
            .map(|(t, e)| match t {
                0 => e.clone(),
                t => format!("\\prod_{{t={t}}}^{{T}} {e}"),
            })
            .collect();
        format!(
            "\\log \\sum_{{{}}} {init} \\prod_{{t=2}}^{{T}} {trans} {}",
            self.var(&format!("{chain}[1:T]")),
            em.join(" ")
        )
    }
    fn sum(&self, range: Range, body: &str) -> String {
        match range {
            Range::Static | Range::At { .. } => body.to_string(),
            Range::From { t } => format!("\\sum_{{t={t}}}^{{T}} {body}"),
        }
    }
    fn frac(&self, a: &str, b: &str) -> String {
        format!("\\frac{{{a}}}{{{b}}}")
    }
    fn alpha(&self) -> &'static str {
        "\\alpha"
    }
    fn leq(&self) -> &'static str {
        "\\le"
    }
    fn geq(&self) -> &'static str {
        "\\ge"
    }
    fn minus(&self) -> &'static str {
        "-"
    }
    fn code(&self, s: &str) -> String {
        format!("\\texttt{{{}}}", tex_escape(s))
    }
    fn text(&self, s: &str) -> String {
        format!("\\text{{{}}}", tex_escape(s))
    }
    fn expect_sub(&self, sub: &str, body: &str) -> String {
        format!("\\mathbb{{E}}_{{{sub}}}\\left[ {body} \\right]")
    }
    fn integral(&self, body: &str, over: &str) -> String {
        format!("\\int {body} \\, d({over})")
    }
    fn dots(&self) -> &'static str {
        "\\dots"
    }
    fn empty_set(&self) -> &'static str {
        "\\emptyset"
    }
    fn elbo(&self) -> &'static str {
        "\\mathrm{ELBO}"
    }
    fn bar(&self) -> &'static str {
        "\\mid"
    }
    fn sep(&self) -> &'static str {
        " \\quad "
    }
    fn kl_formula(&self, f: crate::derive::KlForm) -> String {
        f.formula_tex().to_string()
    }
    fn normal_entropy(&self) -> &'static str {
        r"\sum_i \log \sigma_i + \frac{D}{2} \log(2 \pi e)"
    }
    fn paren(&self, body: &str) -> String {
        format!("\\left( {body} \\right)")
    }
    fn weight(&self) -> &'static str {
        "w"
    }
    fn iwae_objective(&self) -> String {
        r"\mathbb{E}_{q}\left[ \log \frac{1}{K} \sum_{k=1}^{K} \exp w_{k} \right]".into()
    }
}

#[cfg(test)]
mod tests {
    use super::tex_escape;

    #[test]
    fn text_escapes_the_characters_ot1_fonts_draw_wrong() {
        assert_eq!(
            tex_escape("p(a|b) < 1 > 0 \"x\""),
            "p(a\\textbar{}b) \\textless{} 1 \\textgreater{} 0 ''x''"
        );
        assert_eq!(
            tex_escape("a_b & 50% #1 {x}"),
            "a\\_b \\& 50\\% \\#1 \\{x\\}"
        );
    }
}
