//! The behaviour objectives of an `imagine` block ([`Imagination`]): the equation, the term
//! table, the derivation steps, in Unicode text and LaTeX from the same functions.

use super::elbo::num;
use super::steps::{Line, Step};
use super::style::tex_escape;
use crate::derive::imagine::{Imagination, ImaginedKind, ImaginedTerm, Learner};
use crate::derive::Method;
use crate::ir::{ImagineStart, Model, Read, TimeRef};
use std::fmt::Write;

/// The dialect: Unicode text or LaTeX math.
#[derive(Clone, Copy)]
pub struct Dialect {
    /// LaTeX when true.
    pub tex: bool,
}

impl Dialect {
    fn pick(self, text: &str, tex: &str) -> String {
        if self.tex {
            tex.to_string()
        } else {
            text.to_string()
        }
    }
    fn name(self, n: &str) -> String {
        if self.tex {
            if n.chars().count() == 1 {
                tex_escape(n)
            } else {
                format!("\\mathit{{{}}}", tex_escape(n))
            }
        } else {
            n.to_string()
        }
    }
    /// `x` at imagined step `sub` (`τ`, `τ+1`, `H+1`).
    fn at(self, n: &str, sub: &str) -> String {
        let name = self.name(n);
        if self.tex {
            format!("{name}_{{{}}}", sub.replace('τ', "\\tau").replace('−', "-"))
        } else if sub.chars().count() == 1 {
            format!("{name}_{sub}")
        } else {
            format!("{name}_{{{sub}}}")
        }
    }
    /// A read of the model at the imagined step `sub` (`τ`, `τ+1`, `16`).
    fn read(self, m: &Model, r: Read, sub: &str) -> String {
        let n = &m.vars[r.var].name;
        match r.time {
            TimeRef::Lag(0) => self.at(n, sub),
            TimeRef::Lag(k) => self.at(n, &format!("{sub}−{k}")),
            TimeRef::Step(k) => self.at(n, &k.to_string()),
            _ => self.name(n),
        }
    }
    fn bar(self) -> String {
        self.pick(" | ", " \\mid ")
    }
    fn density(self, m: &Model, block: &str, action: &str, reads: &[Read]) -> String {
        let given: Vec<String> = reads.iter().map(|r| self.read(m, *r, "τ")).collect();
        let a = self.at(action, "τ");
        if given.is_empty() {
            format!("{block}({a})")
        } else {
            format!("{block}({a}{}{})", self.bar(), given.join(", "))
        }
    }
    fn sum(self, from: &str, to: &str, body: &str) -> String {
        if self.tex {
            format!("\\sum_{{\\tau={from}}}^{{{to}}} {body}")
        } else {
            format!("Σ_{{τ={from}..{to}}} {body}")
        }
    }
    fn expect(self, body: &str) -> String {
        self.pick(
            &format!("𝔼[ {body} ]"),
            &format!("\\mathbb{{E}}\\left[ {body} \\right]"),
        )
    }
    fn pow(self, base: &str, exp: &str) -> String {
        if self.tex {
            format!("{base}^{{{}}}", exp.replace('τ', "\\tau").replace('−', "-"))
        } else if exp.chars().count() == 1 {
            format!("{base}^{exp}")
        } else {
            format!("{base}^{{{exp}}}")
        }
    }
    fn gamma(self) -> String {
        self.pick("γ", "\\gamma")
    }
    fn lambda(self) -> String {
        self.pick("λ", "\\lambda")
    }
    fn alpha(self) -> String {
        self.pick("α", "\\alpha")
    }
    fn minus(self) -> String {
        self.pick("−", "-")
    }
    fn frac(self, a: &str, b: &str) -> String {
        if self.tex {
            format!("\\frac{{{a}}}{{{b}}}")
        } else {
            format!("{a}/{b}")
        }
    }
    fn sg(self, x: &str) -> String {
        self.pick(&format!("sg({x})"), &format!("\\operatorname{{sg}}({x})"))
    }
    fn ret(self, sub: &str) -> String {
        let base = self.pick("R^λ", "R^{\\lambda}");
        if self.tex {
            format!("{base}_{{{}}}", sub.replace('τ', "\\tau"))
        } else if sub.chars().count() == 1 {
            format!("{base}_{sub}")
        } else {
            format!("{base}_{{{sub}}}")
        }
    }
    fn half(self) -> String {
        self.pick("½", "\\tfrac{1}{2}")
    }
    fn paren(self, x: &str) -> String {
        self.pick(&format!("({x})"), &format!("\\left({x}\\right)"))
    }
    fn sim(self) -> String {
        self.pick("~", "\\sim")
    }
    fn kl(self, q: &str, p: &str) -> String {
        self.pick(
            &format!("KL({q} ‖ {p})"),
            &format!("\\mathrm{{KL}}\\left({q} \\,\\|\\, {p}\\right)"),
        )
    }
    fn entropy(self, q: &str) -> String {
        self.pick(&format!("H[{q}]"), &format!("\\mathcal{{H}}[{q}]"))
    }
    fn log(self) -> String {
        self.pick("log", "\\log")
    }
    fn soft(self, sub: &str) -> String {
        if self.tex {
            format!("\\tilde{{r}}_{{{}}}", sub.replace('τ', "\\tau"))
        } else {
            format!("r̃_{sub}")
        }
    }
}

/// The critic applied to the model state at step `sub` (`τ`, `τ+1`, `16`): `V(h_τ, s_τ)`.
fn value(d: Dialect, m: &Model, sub: &str) -> String {
    let Some(b) = &m.behaviour else {
        return String::new();
    };
    let args: Vec<String> = b
        .critic_parents
        .iter()
        .map(|r| d.read(m, *r, sub))
        .collect();
    format!("V({})", args.join(", "))
}

/// The per-step control term: `r_τ/α − KL(q ‖ p)` or `r_τ/α + H[q]`.
fn soft_reward(d: Dialect, m: &Model, im: &Imagination) -> String {
    let Some(b) = &m.behaviour else {
        return String::new();
    };
    let r = d.frac(&d.at("r", "τ"), &d.alpha());
    let q = d.density(m, "q", &im.action, &b.policy_parents);
    let p = d.density(m, "p", &im.action, &b.prior_parents);
    match im.terms.iter().find(|t| t.kind.is_kl_like()) {
        Some(ImaginedTerm {
            kind: ImaginedKind::Entropy { .. },
            ..
        }) => format!("{r} + {}", d.entropy(&q)),
        _ => format!("{r} {} {}", d.minus(), d.kl(&q, &p)),
    }
}

/// The equation lines: the actor's objective and the critic's loss.
pub fn equation(d: Dialect, m: &Model, im: &Imagination) -> Vec<Line> {
    let h = im.horizon.to_string();
    let h1 = (im.horizon + 1).to_string();
    let (g, l) = (d.gamma(), d.lambda());
    let mut lines = vec![
        Line {
            lhs: d.pick("J(π)", "J(\\pi)"),
            rhs: format!(
                "= {}",
                d.sum(
                    "1",
                    &h,
                    &format!("{} {}", d.pow(&g, "τ−1"), d.expect(&soft_reward(d, m, im)))
                )
            ),
        },
        Line {
            lhs: String::new(),
            rhs: format!("+ {} {}", d.pow(&g, &h), d.expect(&value(d, m, &h1))),
        },
    ];
    if im
        .terms
        .iter()
        .any(|t| t.kind == ImaginedKind::LambdaCorrection)
    {
        let hm1 = (im.horizon - 1).to_string();
        let body = format!(
            "(1 {} {l}) {} {} {}",
            d.minus(),
            d.pow(&g, "τ"),
            d.pow(&l, "τ−1"),
            d.expect(&format!(
                "{} {} {}",
                value(d, m, "τ+1"),
                d.minus(),
                d.at("G", "τ+1")
            ))
        );
        lines.push(Line {
            lhs: String::new(),
            rhs: format!("+ {}", d.sum("1", &hm1, &body)),
        });
    }
    lines.push(Line {
        lhs: String::new(),
        rhs: format!("= {}", d.expect(&d.ret("1"))),
    });
    lines.push(Line {
        lhs: "L(V)".into(),
        rhs: critic_loss(d, m, im),
    });
    lines
}

/// `= ½ Σ_τ 𝔼[(V(s_τ) − sg(R^λ_τ))²]`.
fn critic_loss(d: Dialect, m: &Model, im: &Imagination) -> String {
    let sq = format!(
        "{}^2",
        d.paren(&format!(
            "{} {} {}",
            value(d, m, "τ"),
            d.minus(),
            d.sg(&d.ret("τ"))
        ))
    );
    format!(
        "= {} {}",
        d.half(),
        d.sum("1", &im.horizon.to_string(), &d.expect(&sq))
    )
}

/// `R^λ_τ = r̃_τ + γ ((1 − λ) V(s_{τ+1}) + λ R^λ_{τ+1})`, right-hand side.
fn lambda_rhs(d: Dialect, m: &Model) -> String {
    format!(
        "= {} + {} {}",
        d.soft("τ"),
        d.gamma(),
        d.paren(&format!(
            "(1 {} {l}) {} + {l} {}",
            d.minus(),
            value(d, m, "τ+1"),
            d.ret("τ+1"),
            l = d.lambda()
        ))
    )
}

/// The `where` lines under the equation (Unicode text).
fn where_lines(m: &Model, im: &Imagination) -> Vec<String> {
    let d = Dialect { tex: false };
    let h1 = (im.horizon + 1).to_string();
    let mut lines = vec![
        format!(
            "where r = {},  α = {},  V = {},  γ = {},  λ = {},  H = {}",
            im.reward,
            num(im.alpha),
            im.critic,
            num(im.discount),
            num(im.lambda),
            im.horizon
        ),
        format!("      r̃_τ = {}", soft_reward(d, m, im)),
        format!(
            "      {} {},  {} = {}",
            d.ret("τ"),
            lambda_rhs(d, m),
            d.ret(&h1),
            value(d, m, &h1)
        ),
        format!(
            "      G_τ = Σ_{{k=τ..{h}}} γ^{{k−τ}} r̃_k + γ^{{{h1}−τ}} {}  (the λ = 1 return from τ)",
            value(d, m, &h1),
            h = im.horizon
        ),
    ];
    if let Some(c) = &im.continuation {
        lines.push(format!(
            "      γ is γ·{c} at each imagined step (the learned continuation: a terminated episode ends the sum; the critic's loss weighted by Π_{{k<τ}} P(continue))"
        ));
    }
    lines
}

fn weights_text(t: &ImaginedTerm, im: &Imagination) -> String {
    let h = im.horizon;
    match t.kind {
        ImaginedKind::Bootstrap => format!("γ^{h}"),
        ImaginedKind::LambdaCorrection => format!("(1−λ) γ^τ λ^(τ−1), τ = 1..{}", h - 1),
        ImaginedKind::CriticLoss => format!("½, τ = 1..{h}"),
        _ => format!("γ^(τ−1), τ = 1..{h}"),
    }
}

/// `vic elbo` text for the behaviour objectives.
pub fn text(m: &Model, im: &Imagination) -> String {
    let d = Dialect { tex: false };
    let mut out = String::new();
    let Some(b) = &m.behaviour else {
        return out;
    };
    let _ = writeln!(
        out,
        "\nbehaviour in imagination: from {}, {} follow p for H = {} steps with",
        match im.start {
            ImagineStart::Posterior => "posterior states of the data",
            ImagineStart::Prior =>
                "p's initial states and states the policy visits in p (known dynamics, no world model)",
        },
        im.state.join(", "),
        im.horizon
    );
    let _ = writeln!(
        out,
        "  {} ~ {} = {},  prior {} = {}",
        d.at(&im.action, "τ"),
        d.density(m, "q", &im.action, &b.policy_parents),
        im.policy_dist,
        d.density(m, "p", &im.action, &b.prior_parents),
        im.prior_dist
    );
    if !im.frozen.is_empty() {
        let _ = writeln!(out, "  world model frozen: {}", im.frozen.join(", "));
    }
    out.push('\n');
    for l in super::steps::text_lines(&equation(d, m, im)) {
        let _ = writeln!(out, "{l}");
    }
    for l in where_lines(m, im) {
        let _ = writeln!(out, "  {l}");
    }
    let _ = writeln!(out, "\nimagined terms");
    let w_kind = im
        .terms
        .iter()
        .map(|t| t.kind.name().chars().count())
        .max()
        .unwrap_or(0);
    let ws: Vec<String> = im.terms.iter().map(|t| weights_text(t, im)).collect();
    let w_w = ws.iter().map(|w| w.chars().count()).max().unwrap_or(0);
    let w_tr = im
        .terms
        .iter()
        .map(|t| t.trains.join(", ").chars().count())
        .max()
        .unwrap_or(0)
        .max("trains nothing".len());
    for (i, t) in im.terms.iter().enumerate() {
        let learner = match t.learner {
            Learner::Actor => "actor ",
            Learner::Critic => "critic",
        };
        let trains = if t.trains.is_empty() {
            "trains nothing".to_string()
        } else {
            t.trains.join(", ")
        };
        let method = match t.method {
            Method::Analytic => "analytic",
            Method::MonteCarlo => "Monte Carlo",
        };
        let _ = writeln!(
            out,
            "  {:>2}  {}  {learner}  {}  {}  {:<11}  {}",
            i + 1,
            super::pad_right(t.kind.name(), w_kind),
            super::pad_right(&ws[i], w_w),
            super::pad_right(&trains, w_tr),
            method,
            t.why
        );
    }
    out
}

/// The derivation of the behaviour objectives, step by step.
pub fn steps(d: Dialect, m: &Model, im: &Imagination) -> Vec<Step> {
    let Some(b) = &m.behaviour else {
        return vec![];
    };
    let h = im.horizon.to_string();
    let h1 = (im.horizon + 1).to_string();
    let g = d.gamma();
    let q = d.density(m, "q", &im.action, &b.policy_parents);
    let p = d.density(m, "p", &im.action, &b.prior_parents);
    let one = |lhs: String, rhs: String| Line { lhs, rhs };
    let state = im.state.join(", ");
    let mut out = vec![
        Step {
            title: "Imagined trajectories".into(),
            why: format!(
                "Start from a posterior state of the data ({state} at a step of a training sequence, sampled from q), then for τ = 1..{h} draw the action from the policy and the next state from the learned p, whose parameters are frozen in this phase. The states follow p, so their log-ratio log p − log q is zero: only the actions carry a KL."
            ),
            math: vec![one(d.at(&im.action, "τ"), format!("{} {q}", d.sim()))],
        },
        Step {
            title: "Control as inference over the horizon".into(),
            why: "One optimality variable per imagined step, log p(O_τ = 1 | ·) = r_τ/α, and the action prior p; Jensen's inequality with the policy as the posterior over actions gives a lower bound, discounted by γ: p_γ is the imagined process that ends with probability 1 − γ at each step (for γ = 1, p itself).".into(),
            math: vec![one(
                d.pick(&format!("log p_γ(O_{{1..{h}}} = 1)"), &format!("\\log p_{{\\gamma}}(O_{{1:{h}}} = 1)")),
                format!(
                    "{} {}",
                    d.pick("≥", "\\geq"),
                    d.sum("1", &h, &format!("{} {}", d.pow(&g, "τ−1"), d.expect(&soft_reward(d, m, im))))
                ),
            )],
        },
    ];
    if let Some(t) = im.terms.iter().find(|t| t.kind.is_kl_like()) {
        let rhs = match t.kind {
            ImaginedKind::Entropy { .. } => format!("= {} {}", d.minus(), d.entropy(&q)),
            _ => format!(
                "= {}",
                d.expect(&format!("{lg} {q} {} {lg} {p}", d.minus(), lg = d.log()))
            ),
        };
        out.push(Step {
            title: "The action KL".into(),
            why: t.why.clone(),
            math: vec![one(d.kl(&q, &p), rhs)],
        });
    }
    out.push(Step {
        title: "Bootstrap from the critic".into(),
        why: "The steps after the horizon are replaced by the critic's value of the last imagined state, discounted by γ^H; the critic's parameters are constants in the actor's objective.".into(),
        math: vec![one(
            d.pick("tail", "\\text{tail}"),
            format!("{} {} {}", d.pick("≈", "\\approx"), d.pow(&g, &h), value(d, m, &h1)),
        )],
    });
    out.push(Step {
        title: "The λ-return".into(),
        why: "Dreamer's estimator mixes the n-step bootstraps with weights (1 − λ) λ^(n−1); for λ = 1 it is the bound above, for λ < 1 it adds a correction against the λ = 1 returns G_τ that has zero mean when V is the policy's soft value.".into(),
        math: vec![
            one(d.ret("τ"), lambda_rhs(d, m)),
            one(d.ret(&h1), format!("= {}", value(d, m, &h1))),
        ],
    });
    out.push(Step {
        title: "The critic".into(),
        why: format!(
            "The critic regresses on the λ-return under stop-gradient, so the target does not move with V; only the critic's parameters ({}) learn from this loss.",
            m.nets[b.critic_net].name
        ),
        math: vec![one("L(V)".into(), critic_loss(d, m, im))],
    });
    let mut trains: Vec<String> = Vec::new();
    for t in im.terms.iter().filter(|t| t.learner == Learner::Actor) {
        for n in &t.trains {
            if !trains.contains(n) {
                trains.push(n.clone());
            }
        }
    }
    out.push(Step {
        title: "What each objective trains".into(),
        why: format!(
            "The actor's objective trains {}{}; the world model ({}) is frozen.",
            if trains.is_empty() {
                "nothing".into()
            } else {
                trains.join(", ")
            },
            if im.learned_prior {
                " (the learned prior through the KL only)"
            } else {
                ""
            },
            if im.frozen.is_empty() {
                "nothing".into()
            } else {
                im.frozen.join(", ")
            }
        ),
        math: vec![],
    });
    out
}

/// The behaviour steps as Unicode text, numbered from `first`.
pub fn steps_text(m: &Model, im: &Imagination, first: usize) -> String {
    let all = steps(Dialect { tex: false }, m, im);
    let mut out = String::from("\nbehaviour in imagination: the derivation\n\n");
    for (i, st) in all.iter().enumerate() {
        let _ = writeln!(out, "{}.  {}", first + i, st.title);
        let _ = writeln!(out, "    {}", st.why);
        for l in super::steps::text_lines(&st.math) {
            let _ = writeln!(out, "      {l}");
        }
        out.push('\n');
    }
    out
}

/// The LaTeX section for the behaviour objectives (and its derivation).
pub fn latex(m: &Model, im: &Imagination, with_steps: bool) -> String {
    let d = Dialect { tex: true };
    let mut out = String::new();
    let _ = writeln!(out, "\\section*{{Behaviour in imagination}}");
    let _ = writeln!(
        out,
        "{}, ${}$ follow $p$ for $H = {}$ steps{}; $\\gamma = {}$, $\\lambda = {}$, $\\alpha = {}$; the reward $r$ is \\texttt{{{}}} and the critic $V$ is \\texttt{{{}}}.{}",
        match im.start {
            ImagineStart::Posterior => "\\noindent From posterior states of the data",
            // Ragged: a long reward in typewriter type has no glue to justify with.
            ImagineStart::Prior => "{\\raggedright\\noindent From $p$'s initial states and the states the policy visits in $p$ (known dynamics)",
        },
        im.state.iter().map(|s| d.name(s)).collect::<Vec<_>>().join(", "),
        im.horizon,
        match im.start {
            ImagineStart::Posterior => ", the world model frozen",
            ImagineStart::Prior => "",
        },
        num(im.discount),
        num(im.lambda),
        num(im.alpha),
        tex_escape(&im.reward),
        tex_escape(&im.critic),
        match im.start {
            ImagineStart::Posterior => "",
            ImagineStart::Prior => "\\par}",
        }
    );
    out.push_str("\\begin{align*}\n");
    let lines = super::steps::latex_lines(&equation(d, m, im));
    let n = lines.len();
    for (i, l) in lines.iter().enumerate() {
        let _ = writeln!(out, "{l}{}", if i + 1 < n { " \\\\" } else { "" });
    }
    out.push_str("\\end{align*}\n");
    if with_steps {
        let _ = writeln!(out, "\\subsection*{{Derivation}}");
        let _ = writeln!(out, "\\begin{{enumerate}}");
        for st in steps(d, m, im) {
            let _ = writeln!(
                out,
                "\\item \\textbf{{{}}}. {}",
                tex_escape(&st.title),
                tex_escape(&st.why)
            );
            if st.math.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\\begin{{align*}}");
            let lines = super::steps::latex_lines(&st.math);
            let n = lines.len();
            for (i, l) in lines.iter().enumerate() {
                let _ = writeln!(out, "{l}{}", if i + 1 < n { " \\\\" } else { "" });
            }
            let _ = writeln!(out, "\\end{{align*}}");
        }
        let _ = writeln!(out, "\\end{{enumerate}}");
    }
    out
}
